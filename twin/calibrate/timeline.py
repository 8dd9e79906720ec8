"""When telemetry was observed: which timestamps are too far from the data to be real, and
how long the capture actually watched the system.

Telemetry of unknown quality carries timestamps no capture can have: an unset clock (1970),
a unit read wrongly (microseconds taken as nanoseconds, x1000), a span dated 2100, a Zipkin
``timestamp`` of 1e40. One such value used as the start or end of the observation window
turns 5 requests per second into 1e-7, so every reader passes its times through here first.

**Far in time.** A timestamp is far when it lies outside Tukey's far-out fences around the
quartiles of the data's times, widened to a floor:

    lo = q25 - max(FENCE_IQRS x IQR, FENCE_FLOOR_SECONDS)
    hi = q75 + max(FENCE_IQRS x IQR, FENCE_FLOOR_SECONDS)

Quartiles and the IQR ignore the top and bottom quarter of the data, so up to a quarter of
the values can be anywhere without moving the fences. The floor (a week either side of the
quartiles) is what keeps a real capture whole however its data are spread: any capture up
to a week long, and two captures up to a week apart however unequal in size (one day of
data and, a few days later, a tenth as much), stay entirely inside; a longer capture widens
the fences with its own IQR. A clock off by years, units off by a factor of 1,000 or more,
or a value like 1e40 are always far.

**The observed window.** Rates are counts over the time the capture watched the system.
That time is the union of the spans' intervals, with silences (stretches in which nothing
at all was seen) longer than ``max(SILENCE_FLOOR_SECONDS, SILENCE_ARRIVALS x median gap
between arrivals)`` left out: two days captured a week apart are two days of observation,
not nine. The threshold is far beyond any gap a steady arrival process makes (a Poisson
gap exceeds 1,000 times its median with probability e^-693), so a continuous capture is one
stretch and its window is exactly its last end minus its first start.

Two limits hold whatever the data say. A time whose size is beyond ``RESOLVABLE_SECONDS``
(2^53 microseconds, about 285 years either side of 1970) cannot be told from its neighbour a
microsecond away in a double, so no duration measured there means anything: it is always far,
and the fences are drawn from the other times. And the fences describe the bulk of the data:
when more than a quarter of the times are wrong in the same way, the wrong ones are the bulk,
which the checks after this one (a window of no time, spans with no parent) then show.

Both rules cost a sort; nothing here loops over time itself, so a span dated 1e30 cannot
make work proportional to its date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FENCE_IQRS = 3.0
"""Interquartile ranges beyond the quartiles at which a timestamp is far (Tukey's far out)."""
FENCE_FLOOR_SECONDS = 7 * 86_400.0
"""The fences are never nearer the quartiles than this: captures up to a week stay whole."""
RESOLVABLE_SECONDS = 2.0**53 * 1e-6
"""Times larger than this (in size) cannot resolve a microsecond in a double: always far."""
SILENCE_FLOOR_SECONDS = 3_600.0
"""A silence shorter than this is always observation time."""
SILENCE_ARRIVALS = 1_000.0
"""...and so is one shorter than this many median gaps between arrivals."""


def time_fences(times: np.ndarray) -> tuple[float, float]:
    """The [lo, hi] outside which a timestamp is far from the data (see the module docstring);
    (-inf, inf) when no finite time is given."""
    t = np.asarray(times, dtype=float)
    t = t[np.isfinite(t) & (np.abs(t) <= RESOLVABLE_SECONDS)]
    if len(t) == 0:
        return -RESOLVABLE_SECONDS, RESOLVABLE_SECONDS
    q25, q75 = (float(q) for q in np.quantile(t, [0.25, 0.75]))
    half = max(FENCE_IQRS * (q75 - q25), FENCE_FLOOR_SECONDS)
    return q25 - half, q75 + half


def far_in_time(times: np.ndarray, fences: tuple[float, float]) -> np.ndarray:
    """Which of ``times`` lie outside ``fences`` or beyond RESOLVABLE_SECONDS (a non-finite
    time is not far: it is counted on its own, before this)."""
    t = np.asarray(times, dtype=float)
    lo, hi = max(fences[0], -RESOLVABLE_SECONDS), min(fences[1], RESOLVABLE_SECONDS)
    far: np.ndarray = np.isfinite(t) & ((t < lo) | (t > hi))
    return far


@dataclass(frozen=True)
class Window:
    """How long a capture watched the system: ``seconds`` over ``stretches`` stretches of
    activity from ``first`` to ``last`` (Unix seconds), silences of more than
    ``silence_seconds`` left out."""

    seconds: float
    stretches: int
    first: float
    last: float
    silence_seconds: float


def observed_window(
    starts: np.ndarray, ends: np.ndarray, arrivals: np.ndarray | None = None
) -> Window:
    """The observed time of intervals ``[starts[i], ends[i]]`` (see the module docstring);
    ``arrivals`` (e.g. trace start times) set the typical gap, default the starts."""
    s = np.asarray(starts, dtype=float)
    e = np.asarray(ends, dtype=float)
    if len(s) == 0:
        return Window(0.0, 0, 0.0, 0.0, SILENCE_FLOOR_SECONDS)
    a = np.sort(np.asarray(arrivals if arrivals is not None else s, dtype=float))
    gaps = np.diff(a)
    typical = float(np.median(gaps)) if len(gaps) else 0.0
    silence = max(SILENCE_FLOOR_SECONDS, SILENCE_ARRIVALS * typical)
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    reach = np.maximum.accumulate(e)  # the latest end seen so far
    # a new stretch starts where a span begins more than `silence` after everything before
    breaks = np.flatnonzero(s[1:] - reach[:-1] > silence) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks - 1, [len(s) - 1]))
    if len(firsts) == 1:
        seconds = float(e.max() - s.min())  # one stretch: last end minus first start
    else:
        seconds = float(np.sum(reach[lasts] - s[firsts]))
    return Window(seconds, len(firsts), float(s[0]), float(reach[-1]), silence)


__all__ = [
    "FENCE_FLOOR_SECONDS",
    "FENCE_IQRS",
    "RESOLVABLE_SECONDS",
    "SILENCE_ARRIVALS",
    "SILENCE_FLOOR_SECONDS",
    "Window",
    "far_in_time",
    "observed_window",
    "time_fences",
]
