"""A streaming change-point check for level shifts: a two-sided CUSUM on robust z-scores.

Page's CUSUM (1954) accumulates the standardised excess over a reference shift ``k``:

    S+ = max(0, S+ + z - k)        S- = max(0, S- - z - k)

and signals when either passes ``h``. With ``k = 0.5`` (tuned to a shift of one standard
deviation) and ``h = 8``, Siegmund's approximation gives an in-control average run length of
about 19,000 points per side (about 9,600 for the two-sided check) on independent Gaussian
points, and a detection delay of about ``(h + 1.166) / (delta - k)`` points for a shift of
``delta`` standard deviations: about 4 points for 3 sigma, 18 for 1 sigma.

The reference level and scale are the median and MAD of the last ``window`` points since the
last change, so a slowly moving series is followed and outliers do not move the reference.
After a signal the check restarts: the reference is rebuilt from the ``warmup`` points that
follow, and no change is signalled meanwhile. Feed it a series whose points are close to
independent (a forecaster's residuals, or a deseasonalised metric): autocorrelated input
shortens the run length between false alarms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from twin.predict.robust import WindowedMedian


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """The CUSUM state after one point (all finite)."""

    t: float
    """The point's time."""
    upper: float
    """S+: accumulated evidence of an upward shift, in standard deviations."""
    lower: float
    """S-: accumulated evidence of a downward shift, in standard deviations."""
    threshold: float
    """h: the statistic at which a change is signalled."""
    changed: bool
    """True on the point where a change is signalled."""
    direction: Literal["up", "down"] | None
    """Which way the level moved, on a signalled change."""
    start: float | None
    """On a signalled change: the time the excess began to accumulate (the change estimate)."""
    shift: float
    """On a signalled change: the estimated shift in the series' unit (mean excess since
    ``start``); 0.0 otherwise."""
    ready: bool
    """True once the reference has ``warmup`` points."""
    skipped: bool
    """True when the point was missing or not finite."""

    @property
    def statistic(self) -> float:
        """The larger of the two sides, max(S+, S-)."""
        return max(self.upper, self.lower)


class ChangePointDetector:
    """Two-sided CUSUM with a robust, sliding reference, for one series."""

    def __init__(
        self,
        *,
        k: float = 0.5,
        h: float = 8.0,
        window: int = 200,
        warmup: int = 30,
    ) -> None:
        """``k``: reference shift in standard deviations. ``h``: decision threshold.
        ``window``: points the reference median and MAD are taken over. ``warmup``: points
        needed (at start and after each change) before a change can be signalled."""
        if k < 0.0 or h <= 0.0:
            raise ValueError("k >= 0 and h > 0 expected")
        if warmup < 3 or warmup > window:
            raise ValueError("warmup: between 3 and window expected")
        self.k = k
        self.h = h
        self.window = window
        self.warmup = warmup
        self._ref = WindowedMedian(window)
        self._up = 0.0
        self._down = 0.0
        self._up_start: tuple[float, float, int] | None = None  # (time, sum of x, count)
        self._down_start: tuple[float, float, int] | None = None
        self.points = 0
        """Points seen, skipped ones included."""
        self.skipped = 0
        """Points skipped because they were missing or not finite."""
        self.changes = 0
        """Changes signalled."""

    def update(self, t: float, value: float) -> ChangePoint:
        """Take the point ``(t, value)``; say whether the level has shifted."""
        self.points += 1
        ready = len(self._ref) >= self.warmup
        if value is None or not math.isfinite(value):
            self.skipped += 1
            return self._result(t, ready, skipped=True)
        if not ready:
            self._ref.push(value)
            return self._result(t, False)
        med = self._ref.median()
        sigma = self._ref.sigma(floor=1e-9 * max(1.0, abs(med)))
        z = (value - med) / sigma
        self._up = max(0.0, self._up + z - self.k)
        self._down = max(0.0, self._down - z - self.k)
        self._up_start = _track(self._up_start, self._up, t, value)
        self._down_start = _track(self._down_start, self._down, t, value)
        if self._up > self.h or self._down > self.h:
            up = self._up >= self._down
            began = self._up_start if up else self._down_start
            assert began is not None
            result = ChangePoint(
                t=float(t),
                upper=self._up,
                lower=self._down,
                threshold=self.h,
                changed=True,
                direction="up" if up else "down",
                start=began[0],
                shift=began[1] / began[2] - med,
                ready=True,
                skipped=False,
            )
            self.changes += 1
            self._restart()
            return result
        self._ref.push(value)
        return self._result(t, True)

    def _restart(self) -> None:
        self._ref = WindowedMedian(self.window)
        self._up = self._down = 0.0
        self._up_start = self._down_start = None

    def _result(self, t: float, ready: bool, *, skipped: bool = False) -> ChangePoint:
        return ChangePoint(
            t=float(t),
            upper=self._up,
            lower=self._down,
            threshold=self.h,
            changed=False,
            direction=None,
            start=None,
            shift=0.0,
            ready=ready,
            skipped=skipped,
        )


def _track(
    began: tuple[float, float, int] | None, stat: float, t: float, x: float
) -> tuple[float, float, int] | None:
    """Where the current run of a CUSUM side began, and the sum and count of its points."""
    if stat <= 0.0:
        return None
    if began is None:
        return (float(t), x, 1)
    return (began[0], began[1] + x, began[2] + 1)
