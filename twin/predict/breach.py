"""When will the SLO break? The twin's answer, and the two rules SREs use today beside it.

- :func:`time_to_breach`: Monte Carlo over the twin. A few short replications step a
  :class:`~twin.sim.SteppedTwin` forward from the current observed state (the load and
  service-time scale the follower estimated, the recognised fault applied at an intensity
  drawn around the observed one), window by window up to the horizon; P(breach) is the share
  of replications that breach, the time to breach the mean first-breach time of those that
  do. Work is bounded: replications x horizon / step steps, nothing more.
- :class:`BurnRateAlert`: the SRE workbook's multi-window, multi-burn-rate page (chapter
  "Alerting on SLOs", recipe 6): 14.4x the budget over 1 h *and* 5 min, or 6x over 6 h *and*
  30 min. A burn rate is the error ratio over a window divided by ``1 - objective``; both
  windows of a pair must exceed the factor. With a 99.9% objective and every request
  failing, the 1 h window reaches 14.4x after (1 - 0.999) / 1.0 x 3600 s x 14.4 = 51.8 s.
- :func:`predict_linear`: Prometheus' ``predict_linear(v[range], t)``: the least-squares
  line over the range, evaluated ``t`` seconds after the evaluation time;
  :class:`LinearAlert` fires when it crosses a threshold.

Windows the baselines see are ``(end time, seconds, bad, total)``: bad requests (failed,
or for a latency SLO the requests of windows whose p99 broke the target, the workbook's
window-based SLI) out of all requests.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from twin.results import Stretch
from twin.sim.stepped import SteppedTwin

# -- burn rate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurnRule:
    """One multi-window rule: fire when the burn rate over both windows exceeds ``factor``."""

    long_s: float
    short_s: float
    factor: float
    name: str


PAGE_RULES: tuple[BurnRule, ...] = (
    BurnRule(3600.0, 300.0, 14.4, "page-1h-5m"),
    BurnRule(21600.0, 1800.0, 6.0, "page-6h-30m"),
)
"""The workbook's paging pair for a 30-day budget: 2% of it in an hour, 5% in six hours."""


def detection_seconds(
    objective: float, error_ratio: float, window_s: float, factor: float
) -> float:
    """How long a constant ``error_ratio`` takes to fire a rule's long window after a clean
    history: (1 - objective) / error_ratio x window x factor (infinite when it never can)."""
    if error_ratio <= 0:
        return math.inf
    t = (1.0 - objective) / error_ratio * window_s * factor
    return t if t <= window_s else math.inf


class BurnRateAlert:
    """The multi-window burn-rate page, streamed over windows. :meth:`update` answers the
    rules firing at the end of this window (empty when none)."""

    def __init__(self, objective: float, rules: Sequence[BurnRule] = PAGE_RULES) -> None:
        if not 0.0 < objective < 1.0:
            raise ValueError(f"objective must be in (0, 1), got {objective}")
        self.objective, self.rules = objective, tuple(rules)
        self.horizon = max(r.long_s for r in self.rules)
        self.buf: deque[tuple[float, float, float, float]] = deque()

    def burn(self, now: float, span_s: float) -> float:
        """Burn rate over the windows ending in (now - span, now]; a window straddling the
        edge counts by its overlap, as a rate over a range would."""
        bad = total = 0.0
        for end, secs, b, n in reversed(self.buf):
            start = end - secs
            if end <= now - span_s:
                break
            share = 1.0 if start >= now - span_s else (end - (now - span_s)) / secs
            bad += b * share
            total += n * share
        return (bad / total) / (1.0 - self.objective) if total > 0 else 0.0

    def update(self, end: float, seconds: float, bad: float, total: float) -> list[str]:
        self.buf.append((end, seconds, max(bad, 0.0), max(total, 0.0)))
        while self.buf and self.buf[0][0] <= end - self.horizon:
            self.buf.popleft()
        return [
            r.name
            for r in self.rules
            if self.burn(end, r.long_s) > r.factor and self.burn(end, r.short_s) > r.factor
        ]


# -- predict_linear ----------------------------------------------------------------------------


def predict_linear(
    times: Sequence[float], values: Sequence[float], at: float, ahead: float
) -> float:
    """Prometheus' ``predict_linear``: least squares over the points, evaluated at
    ``at + ahead``; NaN with fewer than two points (Prometheus returns nothing)."""
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    if len(t) < 2:
        return math.nan
    x = t - at
    xm, vm = float(x.mean()), float(v.mean())
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (v - vm)).sum() / sxx) if sxx > 0 else 0.0
    return vm + slope * (ahead - xm)


class LinearAlert:
    """``predict_linear(metric[range_s], ahead_s) > threshold``, streamed over windows."""

    def __init__(self, range_s: float, ahead_s: float, threshold: float) -> None:
        self.range_s, self.ahead_s, self.threshold = range_s, ahead_s, threshold
        self.buf: deque[tuple[float, float]] = deque()

    def update(self, t: float, value: float | None) -> bool:
        if value is not None and math.isfinite(value):
            self.buf.append((t, value))
        while self.buf and self.buf[0][0] < t - self.range_s:
            self.buf.popleft()
        if len(self.buf) < 2:
            return False
        ts, vs = zip(*self.buf, strict=True)
        return predict_linear(ts, vs, t, self.ahead_s) > self.threshold


# -- Monte Carlo over the twin -----------------------------------------------------------------


@dataclass(frozen=True)
class BreachEstimate:
    """P(breach within ``horizon_s``) over ``replications``, and the mean time to the first
    breaching window of those that breach (None when none does)."""

    probability: float
    time_to_breach_s: float | None
    replications: int
    horizon_s: float
    first_breach_s: tuple[float | None, ...]


def time_to_breach(
    make_twin: Callable[[np.random.Generator], SteppedTwin],
    breached: Callable[[Stretch], bool],
    *,
    horizon_s: float,
    step_s: float,
    replications: int,
    rng: np.random.Generator,
    warmup_s: float = 0.0,
) -> BreachEstimate:
    """Step ``replications`` twins (each built by ``make_twin`` from its own generator, so
    each draws its own fault intensity and load) ``step_s`` at a time up to ``horizon_s``
    after ``warmup_s``; a replication's breach time is the end of its first window for which
    ``breached`` holds."""
    if replications < 1 or horizon_s <= 0 or step_s <= 0:
        raise ValueError("replications, horizon and step must be positive")
    firsts: list[float | None] = []
    for child in rng.spawn(replications):
        twin = make_twin(child)
        if warmup_s > 0:
            twin.step(warmup_s)
        first: float | None = None
        elapsed = 0.0
        while elapsed < horizon_s - 1e-9:
            stretch = twin.step(min(step_s, horizon_s - elapsed))
            elapsed += float(stretch.seconds)
            if breached(stretch):
                first = elapsed
                break
            if float(stretch.seconds) <= 0:  # the scenario ended: nothing more to see
                break
        firsts.append(first)
    hits = [f for f in firsts if f is not None]
    return BreachEstimate(
        probability=len(hits) / replications,
        time_to_breach_s=float(np.mean(hits)) if hits else None,
        replications=replications,
        horizon_s=horizon_s,
        first_breach_s=tuple(firsts),
    )


# -- availability judged over enough requests ------------------------------------------------


def resolving_requests(objective: float) -> float:
    """The fewest requests an availability objective is judged over: 2 / (1 - objective)
    (200 at 99%). Fewer cannot resolve it: at 75 requests one failure is 1.3%, so a single
    failed request would break a 99% objective on its own."""
    return 2.0 / (1.0 - objective)


def availability_broken(failed: float, total: float, objective: float) -> bool:
    """Whether ``failed`` of ``total`` requests break ``objective``, counting at least
    :func:`resolving_requests`: failed > (1 - objective) x max(total, that many). A run of
    failures breaks it at once (every request of a 75-request window failing is 75 > 2);
    one stray failure in a short window does not."""
    return failed > (1.0 - objective) * max(total, resolving_requests(objective))


class TrailingCounts:
    """The latest windows' (failed, requests) that together hold at least ``need`` requests
    (or every window there is): the span an availability objective is judged over."""

    def __init__(self, need: float) -> None:
        self.need = need
        self.buf: deque[tuple[float, float]] = deque()

    def push(self, failed: float, total: float) -> list[tuple[float, float]]:
        """Add one window; answer the windows that left the span, oldest first."""
        self.buf.append((max(failed, 0.0), max(total, 0.0)))
        gone: list[tuple[float, float]] = []
        while len(self.buf) > 1 and self.total - self.buf[0][1] >= self.need:
            gone.append(self.buf.popleft())
        return gone

    @property
    def failed(self) -> float:
        """Failed requests over the span."""
        return sum(b for b, _ in self.buf)

    @property
    def total(self) -> float:
        """Requests over the span."""
        return sum(t for _, t in self.buf)


def stretch_breaches(
    latency_p99: float | None, availability: float | None
) -> Callable[[Stretch], bool]:
    """The SLO as a predicate on a twin's stretch: any entry's p99 above the target, or its
    success share below the objective."""

    def breached(s: Stretch) -> bool:
        for e in s.entries.values():
            done = float(e.succeeded) + float(e.failed)
            if availability is not None and availability_broken(
                float(e.failed), done, availability
            ):
                return True
            p99 = e.latency.p99
            if latency_p99 is not None and p99 is not None and float(p99) > latency_p99:
                return True
        return False

    return breached


__all__ = [
    "PAGE_RULES",
    "BreachEstimate",
    "BurnRateAlert",
    "BurnRule",
    "LinearAlert",
    "TrailingCounts",
    "availability_broken",
    "detection_seconds",
    "predict_linear",
    "resolving_requests",
    "stretch_breaches",
    "time_to_breach",
]
