"""Mitigation behaviour with no SimPy in it: breaker, retry budget, backoff, token bucket,
autoscaling decision. The engine drives them with its clock; tests drive them directly."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from twin.policy import Autoscale, CircuitBreaker, Retries


class CircuitState(IntEnum):
    """A circuit breaker's state, the one representation both engines report in a stretch's
    ``breakers``. An integer so stretches stay plain data; ``label`` is the name metrics
    files and logs use."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2

    @property
    def label(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        return self.name.lower()


CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class BreakerState:
    """Count-based circuit breaker (Resilience4j semantics).

    Closed: the last ``window`` outcomes are kept; once ``min_requests`` are in and the
    failure rate reaches the threshold it opens. Open: calls are refused until ``open_for``
    has passed, then it is half-open: ``half_open_probes`` calls go through and, when all have
    answered, it closes if their failure rate is below the threshold, else opens again.
    """

    __slots__ = (
        "cfg",
        "fails",
        "opened_at",
        "outcomes",
        "probe_fails",
        "probe_seen",
        "probes_left",
        "state",
        "transitions",
    )

    def __init__(self, cfg: CircuitBreaker) -> None:
        self.cfg = cfg
        self.state = CLOSED
        self.outcomes: deque[bool] = deque()
        self.fails = 0
        self.opened_at = -math.inf
        self.probes_left = 0
        self.probe_seen = 0
        self.probe_fails = 0
        self.transitions: list[tuple[float, CircuitState]] = []

    def allow(self, now: float) -> bool:
        """May a call go through now? (Open becomes half-open lazily, on the first ask.)"""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now - self.opened_at < self.cfg.open_for:
                return False
            self._to(HALF_OPEN, now)
            self.probes_left = self.cfg.half_open_probes
            self.probe_seen = self.probe_fails = 0
        if self.probes_left > 0:
            self.probes_left -= 1
            return True
        return False

    def record(self, ok: bool, now: float) -> None:
        if self.state == CLOSED:
            q = self.outcomes
            q.append(ok)
            if not ok:
                self.fails += 1
            if len(q) > self.cfg.window and not q.popleft():
                self.fails -= 1
            if self.fails:
                n = len(q)
                if n >= self.cfg.min_requests and self.fails >= self.cfg.failure_rate * n:
                    self._open(now)
        elif self.state == HALF_OPEN:
            self.probe_seen += 1
            if not ok:
                self.probe_fails += 1
            if self.probe_seen >= self.cfg.half_open_probes:
                if self.probe_fails >= self.cfg.failure_rate * self.probe_seen:
                    self._open(now)
                else:
                    self._to(CLOSED, now)
                    self.outcomes.clear()
                    self.fails = 0
        # outcomes that arrive while open (calls issued before it opened) are ignored

    def _open(self, now: float) -> None:
        self._to(OPEN, now)
        self.opened_at = now

    def _to(self, state: CircuitState, now: float) -> None:
        self.state = state
        self.transitions.append((now, state))


class RetryBudget:
    """At most ``ratio`` retries per request over a sliding window (1-second buckets)."""

    __slots__ = ("buckets", "ratio", "requests", "retries", "span")

    def __init__(self, ratio: float, window: float) -> None:
        self.ratio = ratio
        self.span = max(1, math.ceil(window))
        self.buckets: deque[list[int]] = deque()  # [second, requests, retries]
        self.requests = 0
        self.retries = 0

    def _slot(self, now: float) -> list[int]:
        sec = int(now)
        b = self.buckets
        if not b or b[-1][0] != sec:
            b.append([sec, 0, 0])
            while b[0][0] <= sec - self.span:
                old = b.popleft()
                self.requests -= old[1]
                self.retries -= old[2]
        return b[-1]

    def on_request(self, now: float) -> None:
        b = self.buckets
        slot = b[-1] if b and b[-1][0] == int(now) else self._slot(now)
        slot[1] += 1
        self.requests += 1

    def try_retry(self, now: float) -> bool:
        slot = self._slot(now)
        if self.retries + 1 > self.ratio * self.requests:
            return False
        slot[2] += 1
        self.retries += 1
        return True


def backoff_delay(cfg: Retries, retry: int, uniform: Callable[[], float]) -> float:
    """Seconds to wait before retry number ``retry`` (1-based), jitter drawn from ``uniform``."""
    if cfg.backoff == "constant":
        w = cfg.base
    elif cfg.backoff == "linear":
        w = cfg.base * retry
    else:
        w = cfg.base * 2.0 ** (retry - 1)
    w = min(cfg.cap, w)
    if cfg.jitter == "full":
        return w * uniform()
    if cfg.jitter == "equal":
        return w / 2 + w / 2 * uniform()
    return w


class TokenBucket:
    """``rps`` tokens a second, at most ``burst`` saved; refilled lazily on each ask."""

    __slots__ = ("burst", "last", "rps", "tokens")

    def __init__(self, rps: float, burst: float) -> None:
        self.rps = rps
        self.burst = burst
        self.tokens = burst
        self.last = 0.0

    def take(self, now: float) -> bool:
        t = self.tokens + (now - self.last) * self.rps
        self.last = now
        if t > self.burst:
            t = self.burst
        if t >= 1.0:
            self.tokens = t - 1.0
            return True
        self.tokens = t
        return False


def desired_replicas(cfg: Autoscale, current: int, utilization: float) -> int:
    """The HPA rule: ceil(current * utilization / target), clamped to [min, max], with the
    HPA's 10% tolerance band around the target (no change inside it)."""
    ratio = utilization / cfg.target_utilization
    if abs(ratio - 1.0) <= 0.1:
        return max(cfg.min, min(cfg.max, current))
    return max(cfg.min, min(cfg.max, math.ceil(current * ratio - 1e-9)))
