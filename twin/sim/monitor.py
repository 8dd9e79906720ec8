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

Row = tuple[float, float, str, str, str, str, float]
"""One time-series row: window start (s), window length (s), scope, name, family, metric,
value."""


class Counters:
    """Outcomes and latency of one scope (a service or an entry)."""

    __slots__ = (
        "arrivals",
        "counts",
        "hist",
        "s_arrivals",
        "s_counts",
        "s_hist",
        "stretching",
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
        # a run that is never stepped never reads a stretch: until the first
        # reset_stretch, closing windows skips the stretch's histogram and counts
        self.stretching = False

    def reset_stretch(self) -> None:
        self.stretching = True
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

    @property
    def active(self) -> bool:
        """Whether the open window saw anything: an arrival or an answer (every latency
        sample comes with an answer, so an inactive window has empty histograms)."""
        return bool(self.w_arrivals) or any(self.w_counts)

    def emit_window(self, rows: list[Row], t0: float, span: float, scope: str, name: str) -> None:
        """Append the rows of the window just closed (``t0``, ``span`` in seconds) to
        ``rows`` and reset the window. An idle window appends its three zero rows and
        touches no histogram: its cost does not depend on what earlier windows saw."""
        wc = self.w_counts
        arrivals = self.w_arrivals
        done = sum(wc)
        if not arrivals and not done:
            # an idle window (most of a large topology's small entries, most seconds)
            rows += (
                (t0, span, scope, name, "requests", "arrivals", 0.0),
                (t0, span, scope, name, "requests", "succeeded", 0.0),
                (t0, span, scope, name, "requests", "failed", 0.0),
            )
            return
        ok = wc[0]
        rows += (
            (t0, span, scope, name, "requests", "arrivals", float(arrivals)),
            (t0, span, scope, name, "requests", "succeeded", float(ok)),
            (t0, span, scope, name, "requests", "failed", float(done - ok)),
        )
        if done != ok:
            for code in range(1, NCODES):
                if wc[code]:
                    rows.append(
                        (t0, span, scope, name, "failures", REASONS[code - 1], float(wc[code]))
                    )
        h = self._window_hist()
        n = h.n
        if n:
            if n == 1:  # one sample: every quantile is that sample
                p50 = p95 = p99 = h.lo
            else:
                p50, p95, p99 = h.quantiles((0.5, 0.95, 0.99))
            rows += (
                (t0, span, scope, name, "latency", "mean", h.mean),
                (t0, span, scope, name, "latency", "p50", p50),
                (t0, span, scope, name, "latency", "p95", p95),
                (t0, span, scope, name, "latency", "p99", p99),
            )
        self._close(h, done - ok, ok)

    def window_rows(self) -> list[tuple[str, str, float]]:
        """(family, metric, value) rows for the window just closed; resets the window."""
        rows: list[Row] = []
        self.emit_window(rows, 0.0, 0.0, "", "")
        return [(r[4], r[5], r[6]) for r in rows]

    def roll_window(self) -> None:
        """Close the window without reporting it (no series kept): the totals and the
        stretch get exactly what :meth:`window_rows` would give them, without quantiles."""
        wc = self.w_counts
        done = sum(wc)
        if not self.w_arrivals and not done:
            return  # an idle window adds nothing
        h = self._window_hist() if self.stretching else self.w_hist
        self._close(h, done - wc[0], wc[0])

    def _window_hist(self) -> LogHistogram:
        """The window's latencies, measured or not (a merged copy only when some arrived
        before the warm-up ended)."""
        if not self.w_hist_u.n:
            return self.w_hist
        h = LogHistogram()
        h.merge(self.w_hist)
        h.merge(self.w_hist_u)
        return h

    def _close(self, h: LogHistogram, failed: int, ok: int) -> None:
        """Add the window to the totals (and the stretch, once stepping began), then reset
        it. ``h`` holds every latency of the window (it may be ``w_hist`` itself)."""
        if self.stretching:
            if h.n:
                self.s_hist.merge(h)
            self.s_arrivals += self.w_arrivals
            if failed:
                self.s_counts = [a + b for a, b in zip(self.s_counts, self.w_counts, strict=True)]
            else:
                self.s_counts[0] += ok
        if self.w_hist.n:
            self.hist.merge(self.w_hist)
            self.w_hist.clear()
        if self.w_hist_u.n:
            self.w_hist_u.clear()
        if failed:
            self.w_counts = [0] * NCODES
        else:
            self.w_counts[0] = 0
        self.w_arrivals = 0

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
