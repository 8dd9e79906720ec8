"""Streaming statistics: memory is fixed by the value range, never by the number of samples."""

from __future__ import annotations

import math
from collections.abc import Iterable

BUCKETS_PER_DECADE = 200
"""Relative bucket width 10^(1/200) - 1 = 1.16%: quantiles within 0.6% of the exact value."""


def either(p: float, q: float) -> float:
    """Probability that at least one of two independent events (probabilities ``p``, ``q``)
    happens: how overlapping faults' error, loss and corruption probabilities combine."""
    return 1 - (1 - p) * (1 - q)


_ZERO = -(10**9)
_LOG10 = math.log10
_FLOOR = math.floor


class LogHistogram:
    """Sparse log-bucketed histogram: exact count, sum, min and max; quantiles to 0.6%.

    Buckets live in a dict, so memory follows the spread of values (at most ~200 buckets per
    decade actually seen), not how many were added.
    """

    __slots__ = ("counts", "hi", "lo", "n", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def add(self, x: float) -> None:
        i = _FLOOR(_LOG10(x) * BUCKETS_PER_DECADE) if x > 0.0 else _ZERO
        c = self.counts
        c[i] = c.get(i, 0) + 1
        self.n += 1
        self.total += x
        if x < self.lo:
            self.lo = x
        if x > self.hi:
            self.hi = x

    def merge(self, other: LogHistogram) -> None:
        c = self.counts
        for i, k in other.counts.items():
            c[i] = c.get(i, 0) + k
        self.n += other.n
        self.total += other.total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)

    def clear(self) -> None:
        self.counts.clear()
        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """Values below which a fraction q of samples fall (bucket geometric midpoints,
        clamped to the exact min and max). One pass over the buckets for all of ``qs``:
        monitor windows ask for three quantiles of every entry each window."""
        qs = list(qs)
        if not self.n or not qs:
            return [math.nan] * len(qs)
        counts = self.counts
        lo, hi = self.lo, self.hi
        if len(counts) == 1:  # one bucket: every quantile is its midpoint, clamped
            (i,) = counts
            value = 0.0 if i == _ZERO else 10 ** ((i + 0.5) / BUCKETS_PER_DECADE)
            v, n = min(max(value, lo), hi), self.n
            return [v if q * n <= n else hi for q in qs]
        order = sorted(range(len(qs)), key=qs.__getitem__)
        out = [hi] * len(qs)
        n = self.n
        j = 0
        rank = qs[order[0]] * n
        seen = 0
        for i in sorted(counts):
            seen += counts[i]
            while seen >= rank:
                value = 0.0 if i == _ZERO else 10 ** ((i + 0.5) / BUCKETS_PER_DECADE)
                out[order[j]] = min(max(value, lo), hi)
                j += 1
                if j == len(qs):
                    return out
                rank = qs[order[j]] * n
        return out

    def quantile(self, q: float) -> float:
        return self.quantiles([q])[0]

    def summary(self) -> dict[str, float]:
        """mean, p50, p95, p99 (and max) in the unit of the samples; NaN when empty."""
        p50, p95, p99 = self.quantiles((0.5, 0.95, 0.99))
        return {
            "mean": self.mean,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "max": self.hi if self.n else math.nan,
        }
