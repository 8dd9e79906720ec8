"""Streaming counters per service and entry: cumulative (after warm-up) and per window.

Nothing here keeps a record per request: counters, log histograms and one row per window.
"""

from __future__ import annotations

import math
from typing import Any

from twin.outcomes import REASONS
from twin.results import StretchLatency
from twin.stats import LogHistogram

NCODES = len(REASONS) + 1
_IDLE = (("requests", "arrivals", 0.0), ("requests", "succeeded", 0.0), ("requests", "failed", 0.0))


class Counters:
    """Outcomes and latency of one scope (a service or an entry)."""

    __slots__ = (
        "arrivals",
        "counts",
        "hist",
        "s_arrivals",
        "s_counts",
        "s_hist",
        "w_arrivals",
        "w_counts",
        "w_hist",
        "w_hist_u",
    )

    def __init__(self) -> None:
        self.arrivals = 0  # measured (arrived after warm-up)
        self.counts = [0] * NCODES  # measured outcomes by code (0 = success)
        self.hist = LogHistogram()  # measured successful latencies
        self.w_arrivals = 0  # this window, everything
        self.w_counts = [0] * NCODES
        self.w_hist = LogHistogram()  # this window, measured
        self.w_hist_u = LogHistogram()  # this window, arrived before warm-up
        self.s_arrivals = 0  # since the last step() began (windows add to it as they close)
        self.s_counts = [0] * NCODES
        self.s_hist = LogHistogram()

    def reset_stretch(self) -> None:
        self.s_arrivals = 0
        self.s_counts = [0] * NCODES
        self.s_hist.clear()

    def stretch(self) -> dict[str, Any]:
        """Figures since :meth:`reset_stretch`: what one ``step`` of the engine saw (the
        fields of :class:`~twin.results.EntryStretch`)."""
        c = self.s_counts
        h = self.s_hist
        p50, p95, p99 = h.quantiles((0.5, 0.95, 0.99))
        lat = _clean({"mean": h.mean, "p50": p50, "p95": p95, "p99": p99})
        return {
            "arrivals": self.s_arrivals,
            "succeeded": c[0],
            "failed": sum(c) - c[0],
            "failures": {REASONS[i - 1]: c[i] for i in range(1, NCODES) if c[i]},
            "latency": StretchLatency.model_construct(
                mean=lat["mean"], p50=lat["p50"], p95=lat["p95"], p99=lat["p99"]
            ),
        }

    def window_rows(self) -> list[tuple[str, str, float]]:
        """(family, metric, value) rows for the window just closed; resets the window."""
        wc = self.w_counts
        if not self.w_arrivals and not self.w_hist.n and not self.w_hist_u.n and not any(wc):
            # an idle window (most of a large topology's small entries, most seconds)
            return list(_IDLE)
        ok = wc[0]
        rows: list[tuple[str, str, float]] = [
            ("requests", "arrivals", float(self.w_arrivals)),
            ("requests", "succeeded", float(ok)),
            ("requests", "failed", float(sum(wc) - ok)),
        ]
        for code in range(1, NCODES):
            if wc[code]:
                rows.append(("failures", REASONS[code - 1], float(wc[code])))
        h = self.w_hist
        if self.w_hist_u.n:
            h = LogHistogram()
            h.merge(self.w_hist)
            h.merge(self.w_hist_u)
        if h.n:
            p50, p95, p99 = h.quantiles((0.5, 0.95, 0.99))
            rows += [
                ("latency", "mean", h.mean),
                ("latency", "p50", p50),
                ("latency", "p95", p95),
                ("latency", "p99", p99),
            ]
        self._close(h)
        return rows

    def roll_window(self) -> None:
        """Close the window without reporting it (no series kept): the totals and the
        stretch get exactly what :meth:`window_rows` would give them, without quantiles."""
        if not (self.w_arrivals or self.w_hist.n or self.w_hist_u.n or any(self.w_counts)):
            return  # an idle window adds nothing
        h = self.w_hist
        if self.w_hist_u.n:
            h = LogHistogram()
            h.merge(self.w_hist)
            h.merge(self.w_hist_u)
        self._close(h)

    def _close(self, h: LogHistogram) -> None:
        self.hist.merge(self.w_hist)
        self.s_hist.merge(h)
        self.s_arrivals += self.w_arrivals
        self.s_counts = [a + b for a, b in zip(self.s_counts, self.w_counts, strict=True)]
        self.w_hist.clear()
        self.w_hist_u.clear()
        self.w_arrivals = 0
        self.w_counts = [0] * NCODES

    def summary(self) -> dict[str, Any]:
        c = self.counts
        failures = {REASONS[i - 1]: c[i] for i in range(1, NCODES) if c[i]}
        return {
            "requests": self.arrivals,
            "succeeded": c[0],
            "failed": sum(c) - c[0],
            "failures": failures,
            "latency": _clean(self.hist.summary()),
        }


def _clean(d: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an empty histogram reports nulls."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
