"""Failed requests the baseline does not explain: a count test on the availability SLI.

A share compared with its forecast window by window cannot anticipate an error ramp on a
system that rarely fails: at 5 requests/s a 15 s window holds 0-1 failures while the error
rate climbs through 0.5-1%, so a share detector sees one odd window, then a normal one, and
speaks only once the objective is already broken. Failures are counts, and their evidence
adds up: :class:`FailureExcess` asks, over the same latest windows the availability SLI is
judged on (:class:`twin.predict.breach.TrailingCounts`, at least ``2 / (1 - objective)``
requests), how likely that many failures are at the rate the system failed at while it was
normal.

- The normal rate ``p0`` is the Jeffreys estimate ``(failed + 0.5) / (requests + 1)`` over
  the windows the watch judged normal, taken only once they have left the tested span (the
  reference is never the sample under test). A watch with little history is cautious; one
  that has seen thousands of clean requests is not fooled by a stray failure.
- Real failures come in bursts (a retried timeout, a pod restart), more spread than a
  binomial. The normal windows' Pearson dispersion ``phi`` (at least 1) divides both counts
  before the tail is taken (an effective sample size), so a system whose normal failures
  are bursty needs proportionally more of them.
- The tail ``P(X >= failed)`` for ``X ~ Binomial(requests, p0)`` is the regularised
  incomplete beta ``I_p0(failed, requests - failed + 1)``, which takes the non-integer
  counts rates give.
- Failures count only when they are also *material*: at least ``share`` (a half) of the
  rate the objective allows. A clean system's first failed request in an hour is
  improbable, and harmless; two in the last 200 at a 99% objective are both.

The verdict: ``tail < alpha``. With ``alpha = 1e-3`` and four 15 s windows a minute, a
system that fails at its normal rate raises this at most ``240 x 1e-3 = 0.24`` times an hour
(fewer: consecutive tests share windows).

:func:`service_failures` asks the same question of every service's own requests over the
suspect windows, against its own normal windows: which services fail more than they used
to. Failures travel up the call graph (a caller whose call failed fails too), so the
service that fails while none of the services it calls do is where the failures start
(:func:`twin.predict.evidence.error_origins`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy.special import betainc

from twin.predict import sources as src
from twin.predict.breach import TrailingCounts, availability_broken, resolving_requests


@dataclass(frozen=True)
class FailureTest:
    """One window's verdict: ``failed`` of ``requests`` over the latest windows, the count
    ``expected`` at the normal rate, the tail's surprise ``-log10 P``, whether it is an
    excess (improbable *and* material), and whether the same counts break the objective
    (:func:`twin.predict.breach.availability_broken`: the availability SLI, on one span with
    the count)."""

    failed: float
    requests: float
    expected: float
    surprise: float
    excess: bool
    broken: bool


def binomial_tail(failed: float, requests: float, p0: float) -> float:
    """``P(X >= failed)`` for ``X ~ Binomial(requests, p0)``, for real-valued counts."""
    if failed <= 0.0:
        return 1.0
    if failed > requests:
        return 0.0
    return float(betainc(failed, requests - failed + 1.0, p0))


def normal_rate(normal: Iterable[tuple[float, float]]) -> float:
    """The failure rate of ``(failed, requests)`` windows, Jeffreys estimate
    ``(failed + 0.5) / (requests + 1)``: never 0, so a clean history still allows for the
    failure it has not seen, and the fewer requests it holds, the more it allows."""
    f = n = 0.0
    for b, t in normal:
        f += b
        n += t
    return (f + 0.5) / (n + 1.0)


def dispersion(normal: Sequence[tuple[float, float]], p0: float) -> float:
    """Pearson chi-square over degrees of freedom of ``(failed, requests)`` windows at the
    rate ``p0``, at least 1: how much burstier than a binomial the failures are."""
    k = len(normal)
    if k < 2:
        return 1.0
    chi2 = sum((b - t * p0) ** 2 / (t * p0 * (1.0 - p0)) for b, t in normal if t > 0)
    return max(1.0, chi2 / (k - 1))


def count_tail(
    failed: float,
    requests: float,
    normal: Sequence[tuple[float, float]],
    p0: float | None = None,
) -> float:
    """``P(X >= failed)`` at the normal windows' rate ``p0`` (:func:`normal_rate` unless
    given), both counts divided by their dispersion (an effective sample size)."""
    p0 = normal_rate(normal) if p0 is None else p0
    phi = dispersion(normal, p0)
    return binomial_tail(failed / phi, requests / phi, p0)


def window_failures(w: src.Window, service: str) -> tuple[float, float] | None:
    """``(failed, requests)`` of ``service`` over window ``w``, from its request rate and
    success share; None when the window has either missing."""
    m = w.services.get(service, {})
    rate, ok = m.get(src.RATE), m.get(src.SUCCESS)
    if rate is None or ok is None or not (math.isfinite(rate) and math.isfinite(ok)):
        return None
    n = max(rate, 0.0) * w.seconds
    return n * min(max(1.0 - ok, 0.0), 1.0), n


def service_failures(
    recent: Sequence[src.Window], normal: Sequence[src.Window]
) -> dict[str, float]:
    """Per service with counted requests in both, the tail ``P(X >= failed)`` of its failed
    requests pooled over ``recent`` against its rate over ``normal`` (:func:`count_tail`).
    A service that failed nothing in ``recent`` has tail 1."""
    out: dict[str, float] = {}
    names = {s for w in recent for s in w.services}
    for s in sorted(names):
        now = [x for x in (window_failures(w, s) for w in recent) if x is not None]
        ref = [x for x in (window_failures(w, s) for w in normal) if x is not None]
        if not now or not ref:
            continue
        failed = sum(b for b, _ in now)
        requests = sum(t for _, t in now)
        out[s] = count_tail(failed, requests, ref) if requests > 0 else 1.0
    return out


@dataclass
class _Held:
    """A window inside the tested span: whether the watch judged it normal, and whether an
    excess was raised while it was there (then it never joins the baseline)."""

    failed: float
    requests: float
    normal: bool = False
    tainted: bool = False


class FailureExcess:
    """Failures over the latest windows against the normal rate (see the module).

    The baseline is disjoint from what is tested: a window joins it only once it has left
    the tested span, if the watch judged it normal and no excess was raised while it was in
    the span or on the window that pushed it out. Otherwise the first failures of a ramp,
    one a window, would each pass as normal and raise the rate the next ones are tested
    against."""

    def __init__(
        self,
        objective: float,
        alpha: float = 1e-3,
        share: float = 0.5,
        normal_windows: int = 240,
    ) -> None:
        if not 0.0 < objective < 1.0:
            raise ValueError(f"objective must be in (0, 1), got {objective}")
        self.objective = objective
        self.allowed = 1.0 - objective
        self.alpha = alpha
        self.share = share
        self.span = TrailingCounts(resolving_requests(objective))
        self.held: deque[_Held] = deque()
        self.normal: deque[tuple[float, float]] = deque(maxlen=normal_windows)

    def rate(self) -> float:
        """The normal failure rate, Jeffreys estimate (:func:`normal_rate`)."""
        return normal_rate(self.normal)

    def dispersion(self, p0: float) -> float:
        """The normal windows' dispersion at ``p0`` (:func:`dispersion`)."""
        return dispersion(self.normal, p0)

    def update(self, failed: float, requests: float) -> FailureTest:
        """Add one window (``failed`` of ``requests``) and test the span it completes."""
        gone = [self.held.popleft() for _ in self.span.push(failed, requests)]
        self.held.append(_Held(max(failed, 0.0), max(requests, 0.0)))
        ft = self.test(self.span.failed, self.span.total)
        if ft.excess:
            for h in self.held:
                h.tainted = True
        else:  # a window leaving the span joins the baseline only if this test is clean too
            self.normal.extend(
                (h.failed, h.requests) for h in gone if h.normal and not h.tainted and h.requests
            )
        return ft

    def settle(self, normal: bool) -> None:
        """Say whether the window just added was normal (the watch decides after the test)."""
        if self.held:
            self.held[-1].normal = normal

    def test(self, failed: float, requests: float) -> FailureTest:
        """The verdict on ``failed`` of ``requests`` against the baseline as it stands."""
        p0 = self.rate()
        broken = availability_broken(failed, requests, self.objective)
        if requests <= 0.0:
            return FailureTest(failed, requests, 0.0, 0.0, False, broken)
        tail = count_tail(failed, requests, self.normal, p0)
        surprise = -math.log10(tail) if tail > 0.0 else math.inf
        material = failed >= self.share * self.allowed * requests
        return FailureTest(
            failed=failed,
            requests=requests,
            expected=p0 * requests,
            surprise=min(surprise, 300.0),
            excess=bool(material and tail < self.alpha),
            broken=broken,
        )


__all__ = [
    "FailureExcess",
    "FailureTest",
    "binomial_tail",
    "count_tail",
    "dispersion",
    "normal_rate",
    "service_failures",
    "window_failures",
]
