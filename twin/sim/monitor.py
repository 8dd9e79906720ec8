"""Streaming counters per service and entry: cumulative (after warm-up) and per window.

Nothing here keeps a record per request: counters, log histograms and one row per window.
"""

from __future__ import annotations

import math
from typing import Any

from twin.outcomes import REASONS
from twin.results import StretchLatency
from twin.results.series import Block, Metrics
from twin.stats import LogHistogram

NCODES = len(REASONS) + 1

COUNTS: Metrics = (("requests", "arrivals"), ("requests", "succeeded"), ("requests", "failed"))
LATENCY: Metrics = (("latency", "mean"), ("latency", "p50"), ("latency", "p95"), ("latency", "p99"))
COUNTS_LATENCY: Metrics = COUNTS + LATENCY
_ZEROS = (0.0, 0.0, 0.0)


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

    def emit_window(
        self, blocks: list[Block], t0: float, span: float, scope: str, name: str
    ) -> None:
        """Append the window just closed (``t0``, ``span`` in seconds) to ``blocks`` and
        reset it. An idle window appends its three zero counts and touches no histogram:
        its cost does not depend on what earlier windows saw."""
        wc = self.w_counts
        arrivals = self.w_arrivals
        done = sum(wc)
        if not arrivals and not done:
            # an idle window (most of a large topology's small entries, most seconds)
            blocks.append((t0, span, scope, name, COUNTS, _ZEROS))
            return
        ok = wc[0]
        metrics = COUNTS
        values: tuple[float, ...] = (float(arrivals), float(ok), float(done - ok))
        if done != ok:
            failures = [code for code in range(1, NCODES) if wc[code]]
            metrics += tuple(("failures", REASONS[code - 1]) for code in failures)
            values += tuple(float(wc[code]) for code in failures)
        h = self._window_hist()
        n = h.n
        if n:
            p50, p95, p99 = h.quantiles((0.5, 0.95, 0.99))
            metrics = COUNTS_LATENCY if metrics is COUNTS else metrics + LATENCY
            values += (h.mean, p50, p95, p99)
        blocks.append((t0, span, scope, name, metrics, values))
        self._close(h, done - ok, ok)

    def take_counts(self) -> tuple[float, float, float]:
        """The open window's arrivals, successes and failures; then the window is closed
        as :meth:`roll_window` closes it (no quantiles: attack traffic reports counts)."""
        wc = self.w_counts
        ok = wc[0]
        counts = (float(self.w_arrivals), float(ok), float(sum(wc) - ok))
        self.roll_window()
        return counts

    def roll_window(self) -> None:
        """Close the window without reporting it (no series kept): the totals and the
        stretch get exactly what :meth:`emit_window` would give them, without quantiles."""
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
