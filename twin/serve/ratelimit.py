"""A token bucket per caller: ``rate`` requests a second on average, bursts of ``burst``.

The bucket lives in the server process: with several worker processes each keeps its own,
so a caller spread over ``N`` workers may reach ``N`` times the rate (docs/serve.md). A
refused request is told when one request will be allowed again (``Retry-After``, whole
seconds, at least 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Buckets by caller id; ``rate <= 0`` turns limiting off."""

    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _now(self) -> float:
        return self._clock()

    def take(self, caller: str) -> float | None:
        """None if the request may go ahead, else seconds until it would."""
        if self.rate <= 0:
            return None
        now = self._now()
        b = self._buckets.get(caller)
        if b is None:
            b = self._buckets[caller] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return None
        return (1.0 - b.tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` in whole seconds (rounded up, at least 1)."""
        return str(max(1, math.ceil(wait)))


__all__ = ["RateLimiter"]
