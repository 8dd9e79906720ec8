"""Transient episodes inside a trace window: found, named, and set aside from the steady state.

A capture of a few minutes can hold a stall: for some seconds one service (or the wait on
it) takes ten times its usual time, then recovers. Fitted as if stationary, that stall is
spread over every simulated minute, and the twin's tail is the stall's, not the system's
usual one. A twin calibrated for the steady state should be fitted on the steady state, and
say what it left out. This module does that, before the call graph is built.

**Series.** Each span's *exclusive time* is its duration minus the union of its children's
intervals (clipped to it): a server span's own work, and for a client span that wraps one
remote call, the time beyond the callee's span (network and queueing before the callee
starts). Spans are grouped in series by (service, operation); a series with fewer than
``MIN_SPANS`` spans is not scanned.

**Scan.** The window is cut into ``BINS`` equal bins. For every interval of whole bins,
the spans starting inside are compared with the rest by the Wilcoxon rank-sum statistic,
standardised (``z``: ranks are distribution-free, so a heavy tail cannot make an episode on
its own). The interval with the largest ``z`` is the series' candidate: the epidemic
(two change-point) alternative of Levin & Kline, searched exhaustively.

**An episode** is a candidate that is all of:

- unlikely as chance: ``z >= Z_MIN``. Over 600 simulated stationary series (50-2,000
  lognormal values) the maximum over all intervals never passed 4.2; spans of one request
  and of one busy second are correlated (series with nothing to see reach 6.4 in a real
  minute), so the bar is higher;
- large: the median exclusive time inside is at least ``STRETCH_MIN`` times the median
  outside. A slow drift or a busy second moves a busy series' median by 10-30%, a stall
  moves the typical span, not only the tail;
- material: the median inside exceeds the median outside by at least ``MATERIAL`` of the
  window's median request (trace) duration. A few milliseconds more on a wait under
  100 ms requests (a busy neighbour on a shared machine) passes the other tests and
  changes nothing users see; a stall that shapes the tail adds a good share of a request;
- transient: at most ``MAX_SHARE`` of the window, with at least ``MIN_INSIDE`` of the
  series' spans inside (and outside). The scan searches intervals of any length, so a
  slow regime that fills most of the window is found as that long interval and refused,
  not cut into a transient-sized piece: what fills most of the window is the steady state.

**Set aside.** The requests affected are those with a span of the flagged series starting in
the candidate interval. From the earliest start of such a request to the interval's end,
every request that starts is set aside, whole, and that stretch of time leaves the observed
window, so rates stay unbiased (requests over time watched). Overlapping intervals of
several series are one stretch. Episodes whose stretches together cover more than
``MAX_SHARE`` of the window are reported and kept in the fit, for the reason a single long
one is refused. A capture with no episode is returned as it came (the same
table object), so its calibration is the same, bit for bit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from twin.calibrate.callgraph import _union_length

BINS = 100
"""Equal bins the window is scanned on (a 60 s capture: 0.6 s bins)."""
MIN_SPANS = 30
"""A series with fewer spans is not scanned."""
MIN_INSIDE = 10
"""An episode holds at least this many spans of its series."""
MAX_SHARE = 0.5
"""An episode covers at most this share of the window: the rest is the steady state."""
Z_MIN = 6.0
"""Standardised rank-sum (inside vs outside) at which an interval is not chance."""
STRETCH_MIN = 3.0
"""Median exclusive time inside over median outside at which an interval is a stall."""
MATERIAL = 0.1
"""Share of the median request's duration an episode must add to a span to be a stall."""


@dataclass(frozen=True)
class Episode:
    """One stretch of a series' spans far slower than the rest of the window."""

    service: str
    operation: str
    callee: str | None  # for a client span: the service of the call it wraps
    start: float  # unix seconds, first bin of the interval
    end: float  # unix seconds, end of its last bin
    spans: int  # spans of the series starting inside
    series_spans: int  # spans of the series in the whole window
    z: float  # standardised rank-sum inside vs outside
    median_inside: float  # seconds of exclusive time
    median_outside: float

    @property
    def stretch(self) -> float | None:
        """Median inside over median outside (None when the outside median is 0)."""
        return self.median_inside / self.median_outside if self.median_outside > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "callee": self.callee,
            "start": self.start,
            "duration_seconds": self.end - self.start,
            "spans": self.spans,
            "series_spans": self.series_spans,
            "z": self.z,
            "median_inside_seconds": self.median_inside,
            "median_outside_seconds": self.median_outside,
            "stretch": self.stretch,
        }


@dataclass(frozen=True)
class SetAside:
    """What leaving the episodes out removed: the stretches of request start times, the
    requests (traces) and spans in them, and the observed seconds they took."""

    episodes: tuple[Episode, ...]
    stretches: tuple[tuple[float, float], ...]  # unix seconds, request start times
    requests: int
    spans: int
    seconds: float
    kept: bool  # true: found and reported but left in the fit

    def to_dict(self) -> dict[str, Any]:
        return {
            "episodes": [e.to_dict() for e in self.episodes],
            "set_aside": not self.kept and bool(self.episodes),
            "stretches": [{"start": a, "duration_seconds": b - a} for a, b in self.stretches],
            "requests": self.requests,
            "spans": self.spans,
            "seconds": self.seconds,
            "notes": self.lines(),
        }

    def lines(self) -> list[str]:
        """One line per episode, for the command's notes and the report."""
        out = []
        what = "kept in the fit" if self.kept else "set aside"
        for e in self.episodes:
            via = f" (wait on {e.callee})" if e.callee else ""
            out.append(
                f"transient: {e.service} {e.operation}{via}: {e.spans} of {e.series_spans} "
                f"spans from {_iso(e.start)} for {e.end - e.start:.1f} s had a median "
                f"{e.median_inside * 1e3:.3g} ms against {e.median_outside * 1e3:.3g} ms "
                f"(z {e.z:.1f})"
            )
        if self.episodes:
            out.append(
                f"transient: {self.requests} requests ({self.spans} spans) starting in "
                f"{self.seconds:.1f} s {what}"
                + ("" if self.kept else " (--keep-transients keeps them)")
            )
        return out


def _iso(t: float) -> str:
    return pd.Timestamp(t, unit="s").strftime("%Y-%m-%d %H:%M:%S UTC")


def exclusive_times(spans: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per span (in table order): its duration minus the union of its children's intervals,
    clipped to it; and, for a span whose one child is in another service (a client span),
    that child's row (-1 otherwise), which names the callee it waits on."""
    n = len(spans)
    key = (spans["trace_id"] + "/" + spans["span_id"]).to_numpy(dtype=object)
    pkey = (spans["trace_id"] + "/" + spans["parent_id"]).to_numpy(dtype=object)
    has_parent = (spans["parent_id"] != "").to_numpy()
    index = {k: i for i, k in enumerate(key)}
    start = spans["start"].to_numpy(dtype=float)
    end = spans["end"].to_numpy(dtype=float)
    svc = spans["service"].to_numpy(dtype=object)
    kids: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        if has_parent[i]:
            p = index.get(pkey[i], -1)
            if p >= 0 and p != i:
                kids[p].append(i)
    ex = np.maximum(end - start, 0.0)
    remote = np.full(n, -1, dtype=np.int64)
    for p, ch in kids.items():
        ex[p] = max(
            0.0,
            (end[p] - start[p]) - _union_length([(start[c], end[c]) for c in ch], start[p], end[p]),
        )
        others = {svc[c] for c in ch}
        if len(ch) == 1 and others != {svc[p]}:
            remote[p] = ch[0]
    return ex, remote


def scan(
    times: np.ndarray, values: np.ndarray, lo: float, hi: float, bins: int = BINS
) -> tuple[float, int, int]:
    """The interval of whole bins of [lo, hi] whose values rank highest against the rest:
    (z, first bin, end bin) by the standardised Wilcoxon rank-sum; z is 0 when no interval
    leaves ``MIN_INSIDE`` values on each side."""
    n = len(values)
    ranks = pd.Series(values).rank().to_numpy()
    width = (hi - lo) / bins if hi > lo else 1.0
    b = np.clip(((times - lo) / width).astype(np.int64), 0, bins - 1)
    cs = np.concatenate(([0.0], np.cumsum(np.bincount(b, weights=ranks, minlength=bins))))
    cn = np.concatenate(([0.0], np.cumsum(np.bincount(b, minlength=bins))))
    s = cs[None, :] - cs[:, None]  # [first, end): ranks inside
    m = cn[None, :] - cn[:, None]
    first, last = np.indices(s.shape)
    ok = (last > first) & (m >= MIN_INSIDE) & (m <= n - MIN_INSIDE)
    if not ok.any():
        return 0.0, 0, 0
    var = np.where(ok, m * (n - m) * (n + 1) / 12.0, 1.0)
    z = np.where(ok, (s - m * (n + 1) / 2.0) / np.sqrt(var), -np.inf)
    a, e = np.unravel_index(int(np.argmax(z)), z.shape)
    return float(z[a, e]), int(a), int(e)


def find_episodes(spans: pd.DataFrame, bins: int = BINS) -> tuple[list[Episode], np.ndarray]:
    """Every series' episode (see the module docstring), strongest first, and per span the
    index of the episode it is a flagged span of (-1: none)."""
    flagged = np.full(len(spans), -1, dtype=np.int64)
    if len(spans) < MIN_SPANS:
        return [], flagged
    df = spans.reset_index(drop=True)
    ex, remote = exclusive_times(df)
    start = df["start"].to_numpy(dtype=float)
    lo, hi = float(start.min()), float(df["end"].max())
    if hi <= lo:
        return [], flagged
    width = (hi - lo) / bins
    by_trace = df.groupby("trace_id")
    request = float(np.median(by_trace["end"].max() - by_trace["start"].min()))
    svc = df["service"].to_numpy(dtype=object)
    found: list[tuple[Episode, np.ndarray]] = []
    groups: dict[Any, Any] = df.groupby(["service", "operation"], sort=True).indices
    for group, members in groups.items():
        service, operation = group
        rows = np.asarray(members, dtype=np.int64)
        if len(rows) < MIN_SPANS:
            continue
        z, a, e = scan(start[rows], ex[rows], lo, hi, bins)
        if z < Z_MIN or e - a > MAX_SHARE * bins:
            continue
        t0, t1 = lo + a * width, lo + e * width
        b = np.clip(((start[rows] - lo) / width).astype(np.int64), 0, bins - 1)
        inside = (b >= a) & (b < e)
        med_in, med_out = float(np.median(ex[rows][inside])), float(np.median(ex[rows][~inside]))
        if med_in < STRETCH_MIN * med_out or med_in <= 0:
            continue
        if med_in - med_out < MATERIAL * request:
            continue
        callees = {str(svc[remote[i]]) for i in rows[inside] if remote[i] >= 0}
        found.append(
            (
                Episode(
                    service=str(service),
                    operation=str(operation),
                    callee=callees.pop() if len(callees) == 1 else None,
                    start=t0,
                    end=t1,
                    spans=int(inside.sum()),
                    series_spans=len(rows),
                    z=z,
                    median_inside=med_in,
                    median_outside=med_out,
                ),
                rows[inside],
            )
        )
    found.sort(key=lambda f: -f[0].z)
    for j, (_, rows) in enumerate(found):
        flagged[rows] = np.where(flagged[rows] < 0, j, flagged[rows])
    return [f[0] for f in found], flagged


def set_aside(
    spans: pd.DataFrame, keep: bool = False, bins: int = BINS
) -> tuple[pd.DataFrame, SetAside]:
    """The spans to fit the steady state on and what was left out (see the module
    docstring). With no episode, or with ``keep``, ``spans`` is returned as it came."""
    episodes, flagged = find_episodes(spans, bins)
    if not episodes:
        return spans, SetAside((), (), 0, 0, 0.0, keep)
    df = spans.reset_index(drop=True)
    first = df.groupby("trace_id")["start"].transform("min").to_numpy(dtype=float)
    trace_start = df.groupby("trace_id")["start"].min()
    stretches: list[tuple[float, float]] = []
    for j, e in enumerate(episodes):
        hit = flagged == j
        a = min(float(first[hit].min()), e.start) if hit.any() else e.start
        stretches.append((a, e.end))
    merged: list[tuple[float, float]] = []
    for a, b in sorted(stretches):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    # episodes of several series that together cover most of the window are its steady
    # state, as one long episode would be: found, reported and kept in the fit
    span = float(df["end"].max()) - float(df["start"].min())
    keep = keep or sum(b - a for a, b in merged) > MAX_SHARE * span
    ts = trace_start.to_numpy(dtype=float)
    out = np.zeros(len(ts), dtype=bool)
    for a, b in merged:
        out |= (ts >= a) & (ts < b)
    gone = set(trace_start.index[out])
    drop = df["trace_id"].isin(gone).to_numpy()
    record = SetAside(
        episodes=tuple(episodes),
        stretches=tuple(merged),
        requests=len(gone),
        spans=int(drop.sum()),
        seconds=float(sum(b - a for a, b in merged)),
        kept=keep,
    )
    if keep:
        return spans, record
    return spans[~drop], record


__all__ = [
    "BINS",
    "MATERIAL",
    "MAX_SHARE",
    "MIN_INSIDE",
    "MIN_SPANS",
    "STRETCH_MIN",
    "Z_MIN",
    "Episode",
    "SetAside",
    "exclusive_times",
    "find_episodes",
    "scan",
    "set_aside",
]
