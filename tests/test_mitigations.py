"""Mitigations: what each one promises, checked on its SimPy-free core and in the engine.

Every engine test runs a small system (two or three services, tens of requests a second, a
few hundred simulated seconds) with a fixed seed, so a passing test keeps passing. Where a
figure is random, the tolerance is derived from its sampling distribution, as the comment
at each check says: counts of independent outcomes are binomial (4 standard errors), and a
utilisation is work done over capacity, where the work of Poisson arrivals is compound
Poisson (variance lambda * T * E[S^2]).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stats_helpers import Z, binomial_tol, series

from twin.mitigations import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerState,
    RetryBudget,
    TokenBucket,
    backoff_delay,
    desired_replicas,
)
from twin.policy import Autoscale, CircuitBreaker, Policy, Retries
from twin.results import Results
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

# -- helpers ----------------------------------------------------------------------------------


def svc(
    time: dict[str, Any] | float,
    *,
    calls: list[Any] | None = None,
    workers: int = 100,
    replicas: int = 1,
    queue_limit: int | None = None,
) -> dict[str, Any]:
    st = time if isinstance(time, dict) else {"dist": "constant", "mean": time}
    return {
        "replicas": replicas,
        "workers": workers,
        "queue_limit": queue_limit,
        "operations": {"default": {"service_time": st, "calls": calls or []}},
    }


def exp(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}


def chain(rate: float, callee: dict[str, Any], **extra: dict[str, Any]) -> Topology:
    """Entry ``a`` (fast, many workers, non-blocking) calls ``b`` once per request."""
    services = {"a": svc(0.001, calls=[{"to": "b"}]), "b": callee, **extra}
    return Topology.from_dict(
        {"name": "chain", "services": services, "workload": [{"entry": "a", "rate": rate}]}
    )


def single(rate: float, service: dict[str, Any]) -> Topology:
    return Topology.from_dict(
        {"name": "single", "services": {"a": service}, "workload": [{"entry": "a", "rate": rate}]}
    )


def scenario(duration: float, *faults: dict[str, Any], seed: int = 7, **kw: Any) -> Scenario:
    return Scenario.model_validate(
        {"duration": duration, "seed": seed, "faults": list(faults), **kw}
    )


def run(topo: Topology, scen: Scenario, policy: dict[str, Any] | None = None) -> Results:
    return Simulation(topo, scen, Policy.from_dict(policy or {})).run()


def between(s: pd.Series, lo: float, hi: float) -> pd.Series:
    return s[(s.index >= lo) & (s.index < hi)]


def retries(max_: int, **kw: Any) -> dict[str, Any]:
    """Retries with no wait unless told (the arithmetic tests want none)."""
    return {"max": max_, "backoff": "constant", "base": 0.0, "jitter": "none", **kw}


# -- retries: arithmetic ----------------------------------------------------------------------


@pytest.mark.parametrize(("p", "r"), [(0.3, 1), (0.3, 2), (0.5, 3)])
def test_retries_give_success_one_minus_p_to_the_r_plus_1_and_load_a_geometric_sum(
    p: float, r: int
) -> None:
    topo = chain(40.0, svc(exp(0.01)))
    scen = scenario(300, {"kind": "error_rate", "target": "b", "probability": p})
    res = run(topo, scen, {"clients": {"a->b": {"retries": retries(r)}}})
    s = res.summary
    n = s["requests"]
    edge = s["edges"]["a->b"]
    assert s["in_flight"] < 5  # the run ends with a handful of requests under way

    # caller-visible success: each call is r+1 independent Bernoulli(1-p) tries
    q = 1 - p ** (r + 1)
    assert s["succeeded"] / n == pytest.approx(q, abs=binomial_tol(q, n))

    # callee load per call: K = number of attempts, P(K > k) = p^k for k <= r
    load = sum(p**k for k in range(r + 1))
    ek2 = sum((2 * k + 1) * p**k for k in range(r + 1))  # E[K^2] = sum (2k+1) P(K > k)
    sd = math.sqrt(ek2 - load**2)
    arrivals = s["services"]["b"]["arrivals"]
    assert n - 2 <= edge["calls"] <= n  # a request still in a's 1 ms has not called yet
    assert edge["attempts"] == arrivals
    assert arrivals / n == pytest.approx(load, abs=Z * sd / math.sqrt(n))
    assert edge["retries"] == edge["attempts"] - edge["calls"]


def test_failures_after_all_retries_are_reported_as_retries_exhausted() -> None:
    p, r = 0.5, 2
    topo = chain(40.0, svc(exp(0.01)))
    scen = scenario(200, {"kind": "error_rate", "target": "b", "probability": p})
    res = run(topo, scen, {"clients": {"a->b": {"retries": retries(r)}}})
    s = res.summary
    n = s["requests"]
    assert set(s["failures"]) == {"RETRIES_EXHAUSTED"}
    assert s["failures"]["RETRIES_EXHAUSTED"] == s["failed"]
    expected = p ** (r + 1)
    assert s["failed"] / n == pytest.approx(expected, abs=binomial_tol(expected, n))
    # the callee saw only its own injected errors
    assert set(s["services"]["b"]["failures"]) == {"ERROR"}


def test_without_retries_the_callee_error_reaches_the_caller_as_error() -> None:
    p = 0.3
    topo = chain(40.0, svc(exp(0.01)))
    scen = scenario(200, {"kind": "error_rate", "target": "b", "probability": p})
    s = run(topo, scen).summary
    assert set(s["failures"]) == {"ERROR"}
    assert s["edges"]["a->b"]["attempts"] == s["edges"]["a->b"]["calls"]
    assert s["failed"] / s["requests"] == pytest.approx(p, abs=binomial_tol(p, s["requests"]))


# -- backoff ----------------------------------------------------------------------------------


def _retries(**kw: Any) -> Retries:
    return Retries.model_validate({"base": 0.1, "cap": 1.0, "jitter": "none", **kw})


def _one() -> float:
    return 1.0


def _zero() -> float:
    return 0.0


def test_constant_backoff_waits_base_every_time() -> None:
    cfg = _retries(backoff="constant")
    assert [backoff_delay(cfg, k, _one) for k in (1, 2, 5)] == pytest.approx([0.1, 0.1, 0.1])


def test_linear_backoff_waits_base_times_k_up_to_the_cap() -> None:
    cfg = _retries(backoff="linear")
    got = [backoff_delay(cfg, k, _one) for k in (1, 2, 3, 10, 20)]
    assert got == pytest.approx([0.1, 0.2, 0.3, 1.0, 1.0])


def test_exponential_backoff_doubles_from_base_up_to_the_cap() -> None:
    cfg = _retries(backoff="exponential")
    got = [backoff_delay(cfg, k, _one) for k in (1, 2, 3, 4, 5, 6)]
    assert got == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_cap_below_base_caps_the_first_retry_too() -> None:
    cfg = _retries(backoff="exponential", base=0.5, cap=0.2)
    assert backoff_delay(cfg, 1, _one) == pytest.approx(0.2)


@pytest.mark.parametrize("backoff", ["constant", "linear", "exponential"])
def test_full_jitter_draws_in_zero_to_w_and_equal_jitter_in_half_w_to_w(backoff: str) -> None:
    rng = np.random.default_rng(3)

    def u() -> float:
        return float(rng.random())

    for k in range(1, 8):
        w = backoff_delay(_retries(backoff=backoff), k, _one)
        full = _retries(backoff=backoff, jitter="full")
        equal = _retries(backoff=backoff, jitter="equal")
        # the extremes of the uniform draw map onto the ends of the interval
        assert backoff_delay(full, k, _zero) == 0.0
        assert backoff_delay(full, k, _one) == pytest.approx(w)
        assert backoff_delay(equal, k, _zero) == pytest.approx(w / 2)
        assert backoff_delay(equal, k, _one) == pytest.approx(w)
        fs = [backoff_delay(full, k, u) for _ in range(200)]
        es = [backoff_delay(equal, k, u) for _ in range(200)]
        assert all(0.0 <= x <= w for x in fs)
        assert all(w / 2 <= x <= w for x in es)
        # and they spread over it: 200 uniform draws leave no gap wider than a third of it
        assert max(fs) - min(fs) > 2 * w / 3
        assert max(es) - min(es) > 2 * (w / 2) / 3


def test_no_jitter_is_deterministic() -> None:
    cfg = _retries(backoff="exponential", jitter="none")
    assert backoff_delay(cfg, 3, _zero) == backoff_delay(cfg, 3, _one) == pytest.approx(0.4)


def test_engine_waits_the_exponential_backoff_between_attempts() -> None:
    """A callee down on [10, 11): a call that arrives at t fails at once each time until
    its retry lands after 11; with waits 0.2, 0.4, 0.8 (no jitter) a request that needed k
    retries takes 0.2 * (2^k - 1) s plus the two services' 1 ms each."""
    topo = chain(20.0, svc(0.001))
    scen = scenario(20, {"kind": "outage", "target": "b", "start": 10.0, "duration": 1.0})
    pol = {"clients": {"a->b": {"retries": {**retries(3, base=0.2), "backoff": "exponential"}}}}
    sim = Simulation(topo, scen, Policy.from_dict(pol), trace_sample=1.0)
    res = sim.run()
    assert res.summary["failed"] == 0
    tr = res.trace_frame()
    hit = tr[(tr["start"] >= 10.0 - 0.001) & (tr["start"] < 11.0 - 0.001)]
    assert len(hit) > 10
    for start, end in zip(hit["start"], hit["end"], strict=True):
        first_try = start + 0.001  # a's own processing, then the call
        k = 0
        wait = 0.0
        while first_try + wait < 11.0:  # the attempt at first_try + wait finds b down
            k += 1
            wait += 0.2 * 2 ** (k - 1)
        assert end - start == pytest.approx(wait + 0.002, abs=1e-9)
    assert (hit["end"] - hit["start"]).max() > 0.6 + 0.002  # some needed two retries or more


# -- retry budget -----------------------------------------------------------------------------


def test_retry_budget_caps_retries_at_its_ratio_of_calls_and_denies_the_rest() -> None:
    budget = 0.2
    topo = chain(40.0, svc(exp(0.01)))
    scen = scenario(300, {"kind": "error_rate", "target": "b", "probability": 0.8})
    pol = {"clients": {"a->b": {"retries": retries(3, budget=budget, budget_window=10)}}}
    edge = run(topo, scen, pol).summary["edges"]["a->b"]
    # the sliding-window bound holds at each retry; over the run it can exceed the ratio
    # only by the requests of one window's edge effect (a few per thousand here)
    assert edge["retries"] / edge["calls"] <= budget + 0.01
    assert edge["retries"] / edge["calls"] >= budget - 0.02  # and the budget is used
    assert edge["budget_denied"] > 0
    # without a budget the same run retries far more
    free = run(topo, scen, {"clients": {"a->b": {"retries": retries(3)}}})
    assert free.summary["edges"]["a->b"]["retries"] > 5 * edge["retries"]


def test_retry_budget_allows_ratio_times_requests_in_the_window() -> None:
    b = RetryBudget(0.5, 10.0)
    for _ in range(10):
        b.on_request(0.2)
    assert [b.try_retry(0.5) for _ in range(6)] == [True] * 5 + [False]


def test_retry_budget_denies_a_retry_with_no_request_behind_it() -> None:
    b = RetryBudget(0.2, 10.0)
    assert not b.try_retry(0.0)
    for _ in range(4):
        b.on_request(0.0)
    assert not b.try_retry(0.0)  # 1 retry > 0.2 * 4
    b.on_request(0.0)
    assert b.try_retry(0.0)  # 1 <= 0.2 * 5
    assert not b.try_retry(0.0)


def test_retry_budget_forgets_requests_and_retries_older_than_its_window() -> None:
    b = RetryBudget(1.0, 10.0)  # the window: the current second and the nine before it
    for _ in range(3):
        b.on_request(0.5)
    assert b.try_retry(1.2)
    assert b.try_retry(9.9)  # second 0's requests still count
    assert not b.try_retry(10.5)  # they have left the window: no request funds a retry
    b.on_request(10.5)
    assert not b.try_retry(10.6)  # 2 retries (seconds 1, 9) in the window > 1 x 1 request
    b.on_request(11.0)  # second 1's retry leaves: 1 retry, 2 requests
    assert b.try_retry(11.0)
    assert not b.try_retry(11.0)


# -- circuit breaker: the state machine -------------------------------------------------------


def _breaker(**kw: Any) -> BreakerState:
    cfg = {"failure_rate": 0.5, "window": 4, "min_requests": 4, "open_for": 5.0}
    cfg.update(kw)
    return BreakerState(CircuitBreaker.model_validate(cfg))


def test_breaker_stays_closed_until_min_requests_then_opens_at_the_threshold() -> None:
    b = _breaker()
    for ok in (False, False, False):
        b.record(ok, 1.0)
    assert b.state == CLOSED  # 100% failures but only 3 < min_requests calls
    b.record(True, 2.0)
    assert b.state == OPEN  # 3 of 4 >= 50%
    assert b.transitions == [(2.0, OPEN)]


def test_breaker_opens_exactly_at_the_failure_rate_not_below() -> None:
    b = _breaker(window=4, min_requests=4, failure_rate=0.5)
    for ok in (True, True, True, False):
        b.record(ok, 1.0)
    assert b.state == CLOSED  # 1 of 4 = 25%
    b.record(False, 1.0)  # window is now T T F F (the oldest T fell out): 50%
    assert b.state == OPEN


def test_breaker_counts_only_the_last_window_calls() -> None:
    b = _breaker(window=4, min_requests=4, failure_rate=0.75)
    for ok in (False, False, True, True, True, True):
        b.record(ok, 1.0)
    assert b.state == CLOSED
    # old failures slid out: two new ones make 2/4 = 50% < 75%
    b.record(False, 1.0)
    b.record(False, 1.0)
    assert b.state == CLOSED
    b.record(False, 1.0)  # 3/4
    assert b.state == OPEN


def _open_breaker(probes: int = 2) -> BreakerState:
    b = _breaker(half_open_probes=probes)
    for _ in range(4):
        b.record(False, 10.0)
    assert b.state == OPEN
    return b


def test_open_breaker_refuses_calls_until_open_for_has_passed() -> None:
    b = _open_breaker()
    assert not b.allow(10.0)
    assert not b.allow(14.99)
    assert b.state == OPEN
    assert b.allow(15.0)
    assert b.state == HALF_OPEN


def test_half_open_breaker_lets_exactly_the_probes_through() -> None:
    b = _open_breaker(probes=2)
    assert [b.allow(15.0) for _ in range(4)] == [True, True, False, False]


def test_half_open_breaker_closes_after_successful_probes() -> None:
    b = _open_breaker(probes=2)
    assert b.allow(15.0) and b.allow(15.0)
    b.record(True, 15.1)
    assert b.state == HALF_OPEN  # waits for every probe
    b.record(True, 15.2)
    assert b.state == CLOSED
    assert b.allow(15.3)
    # the window starts afresh: it takes min_requests new failures to open again
    for _ in range(3):
        b.record(False, 16.0)
    assert b.state == CLOSED


def test_half_open_breaker_reopens_after_failed_probes_for_another_open_for() -> None:
    b = _open_breaker(probes=2)
    assert b.allow(15.0) and b.allow(15.0)
    b.record(True, 15.1)
    b.record(False, 15.2)  # 1 of 2 failed >= 50%
    assert b.state == OPEN
    assert not b.allow(20.1)
    assert b.allow(20.2)
    assert [s for _, s in b.transitions] == [OPEN, HALF_OPEN, OPEN, HALF_OPEN]


def test_outcomes_that_arrive_while_open_are_ignored() -> None:
    b = _open_breaker()
    for _ in range(10):
        b.record(True, 11.0)
    assert b.state == OPEN
    assert not b.allow(12.0)


# -- circuit breaker: in the engine -----------------------------------------------------------

BREAKER = {"failure_rate": 0.5, "window": 20, "min_requests": 10, "open_for": 1.0}


def _breaker_run(with_breaker: bool) -> Results:
    topo = chain(50.0, svc(exp(0.01)))
    scen = scenario(150, {"kind": "outage", "target": "b", "start": 60, "duration": 30})
    pol = {"clients": {"a->b": {"circuit_breaker": BREAKER}}} if with_breaker else {}
    return run(topo, scen, pol)


def test_breaker_opens_on_an_outage_and_sheds_the_callee_load() -> None:
    guarded = _breaker_run(True)
    bare = _breaker_run(False)
    s = guarded.summary
    assert s["failures"].get("CIRCUIT_OPEN", 0) > 0
    assert s["edges"]["a->b"]["circuit_open"] == s["failures"]["CIRCUIT_OPEN"]
    arr = between(series(guarded, "service", "b", "requests", "arrivals"), 60, 90).sum()
    arr_bare = between(series(bare, "service", "b", "requests", "arrivals"), 60, 90).sum()
    # no breaker: all ~1500 calls reach the dead callee; with it: the min_requests that
    # open it, then one probe per open_for second
    assert arr_bare > 1300
    assert arr < 0.1 * arr_bare
    assert arr <= BREAKER["min_requests"] + 30 * 1.1 / BREAKER["open_for"] + 5


def test_breaker_refuses_only_during_the_fault_and_closes_after_it() -> None:
    res = _breaker_run(True)
    opened = series(res, "entry", "a", "failures", "CIRCUIT_OPEN")
    assert between(opened, 0, 60).sum() == 0
    assert between(opened, 60, 90).sum() > 0
    # well after the fault (one open_for and a probe later) nothing is refused
    assert between(opened, 92, 150).sum() == 0
    ok = between(series(res, "entry", "a", "requests", "succeeded"), 92, 150)
    arrivals = between(series(res, "entry", "a", "requests", "arrivals"), 92, 150)
    assert ok.sum() >= arrivals.sum() - 5  # a few are still in flight at window edges
    assert res.summary["edges"]["a->b"]["breaker_transitions"] >= 3  # open, half, closed


def test_breaker_state_is_visible_through_step() -> None:
    topo = chain(50.0, svc(exp(0.01)))
    scen = scenario(150, {"kind": "outage", "target": "b", "start": 60, "duration": 30})
    sim = Simulation(
        topo, scen, Policy.from_dict({"clients": {"a->b": {"circuit_breaker": BREAKER}}})
    )
    w = sim.step(60)
    assert w["breakers"]["a->b"] == CLOSED
    assert "CIRCUIT_OPEN" not in w["entries"]["a"]["failures"]
    w = sim.step(10)
    assert w["breakers"]["a->b"] in (OPEN, HALF_OPEN)
    assert w["entries"]["a"]["failures"]["CIRCUIT_OPEN"] > 0
    sim.step(25)  # to 95: the fault ended at 90
    w = sim.step(30)
    assert w["breakers"]["a->b"] == CLOSED
    assert "CIRCUIT_OPEN" not in w["entries"]["a"]["failures"]
    assert w["entries"]["a"]["failed"] == 0


# -- timeouts and abandoned work --------------------------------------------------------------

SLOW_CALLEE = svc(0.1, workers=20)  # constant 0.1 s: longer than the 0.05 s timeout


def test_timed_out_calls_fail_at_the_caller_but_the_callee_still_does_the_work() -> None:
    lam, duration = 20.0, 200
    topo = chain(lam, SLOW_CALLEE)
    sim = Simulation(
        topo, scenario(duration), Policy.from_dict({"clients": {"a->b": {"timeout": 0.05}}})
    )
    s = sim.run().summary
    assert s["succeeded"] == 0
    assert set(s["failures"]) == {"TIMEOUT"}
    edge = s["edges"]["a->b"]
    assert edge["calls"] == edge["attempts"]
    # every attempt times out, bar those issued in the last 0.05 s (still pending at the end)
    assert edge["calls"] - 3 <= edge["timeouts"] <= edge["calls"]
    b = s["services"]["b"]
    # the callee finishes every abandoned request (bar those still running at the end)
    assert b["completions"] + sim.state()["services"]["b"]["busy"] == b["arrivals"]
    assert b["failed"] == 0
    # and its utilisation is the full work: N * 0.1 over 20 workers * T, N ~ Poisson(lam T)
    n = b["arrivals"]
    assert b["utilization"] == pytest.approx(n * 0.1 / (20 * duration), rel=0.01)
    expected = lam * 0.1 / 20
    assert b["utilization"] == pytest.approx(
        expected, abs=Z * math.sqrt(lam * duration) * 0.1 / (20 * duration)
    )


def test_timeouts_with_retries_multiply_callee_arrivals_and_utilisation_by_r_plus_1() -> None:
    lam, duration, r = 20.0, 200, 2
    topo = chain(lam, SLOW_CALLEE)
    once = run(topo, scenario(duration), {"clients": {"a->b": {"timeout": 0.05}}}).summary
    storm = run(
        topo, scenario(duration), {"clients": {"a->b": {"timeout": 0.05, "retries": retries(r)}}}
    ).summary
    calls = storm["edges"]["a->b"]["calls"]
    b = storm["services"]["b"]
    # every attempt times out, so every call makes exactly r + 1 attempts (bar the calls
    # of the last 0.1 s, cut short by the end of the run: ~2 calls, < 10 attempts short)
    assert (r + 1) * calls - 10 <= b["arrivals"] <= (r + 1) * calls
    assert set(storm["failures"]) == {"RETRIES_EXHAUSTED"}
    ratio = b["utilization"] / once["services"]["b"]["utilization"]
    assert ratio == pytest.approx(r + 1, rel=0.01)  # same arrivals (same seed), 3x the work


def test_a_call_faster_than_its_timeout_is_unaffected() -> None:
    topo = chain(20.0, svc(0.01))
    s = run(topo, scenario(100), {"clients": {"a->b": {"timeout": 0.05}}}).summary
    assert s["failed"] == 0
    assert s["edges"]["a->b"]["timeouts"] == 0


def test_no_retries_are_sent_for_requests_whose_caller_has_died() -> None:
    # b takes 1 s, the caller gives up after 0.5 s and retries 3 times 0.5 s apart; at
    # t = 10 the caller dies: its in-flight requests fail, and nothing can reach it since
    topo = chain(20.0, svc(1.0))
    scen = scenario(20, {"kind": "outage", "target": "a", "start": 10, "duration": 10})
    pol = {"clients": {"a->b": {"timeout": 0.5, "retries": retries(3, base=0.5)}}}
    sim = Simulation(topo, scen, Policy.from_dict(pol))
    sim.step(10.2)
    assert sim.state()["services"]["a"]["ready"] == 0
    w = sim.step(5)
    assert w["services"]["b"]["arrivals"] == 0


# -- rate limit -------------------------------------------------------------------------------


def test_token_bucket_admits_its_burst_then_rps() -> None:
    tb = TokenBucket(rps=2.0, burst=3.0)
    assert [tb.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert tb.take(0.5)  # 0.5 s * 2 rps = one token
    assert not tb.take(0.5)
    assert not tb.take(0.7)  # 0.4 token
    assert tb.take(1.0)
    # a long idle spell saves at most `burst` tokens
    assert [tb.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_over_a_long_run_admits_rps_times_t_plus_burst_at_most() -> None:
    tb = TokenBucket(rps=5.0, burst=10.0)
    times = np.arange(0.0, 100.0, 0.01)  # offered 100 a second
    admitted = sum(tb.take(float(t)) for t in times)
    assert admitted == pytest.approx(5.0 * times[-1] + 10.0, abs=1)


def test_rate_limit_admits_rps_in_steady_state_and_refuses_the_rest_as_rate_limited() -> None:
    lam, rps, burst = 40.0, 10.0, 5.0
    topo = single(lam, svc(exp(0.01)))
    pol = {"services": {"a": {"rate_limit": {"rps": rps, "burst": burst}}}}
    sim = Simulation(topo, scenario(220), Policy.from_dict(pol))
    sim.step(20)
    w = sim.step(200)["entries"]["a"]
    # over 200 s the bucket hands out rps * 200 tokens (+ at most `burst` saved ones); with
    # 4x as many offers the bucket is almost never full, so few tokens go to waste
    assert w["succeeded"] <= rps * 200 + burst
    assert w["succeeded"] >= 0.99 * rps * 200
    assert set(w["failures"]) == {"RATE_LIMITED"}
    assert w["failures"]["RATE_LIMITED"] == pytest.approx(w["arrivals"] - w["succeeded"], abs=2)


# -- queue limit (load shedding) --------------------------------------------------------------


def test_a_small_queue_limit_under_overload_rejects_as_mm1k_predicts() -> None:
    lam, mu, limit = 20.0, 10.0, 2
    topo = single(lam, svc(exp(1 / mu), workers=1))
    s = run(topo, scenario(300), {"services": {"a": {"queue_limit": limit}}}).summary
    assert set(s["failures"]) == {"REJECTED"}
    assert s["services"]["a"]["rejected"] == s["failures"]["REJECTED"]
    # M/M/1/K with K = limit + 1 in the system: P(block) = (1 - rho) rho^K / (1 - rho^(K+1))
    rho, k = lam / mu, limit + 1
    p_block = (1 - rho) * rho**k / (1 - rho ** (k + 1))
    frac = s["failures"]["REJECTED"] / s["requests"]
    # blocking indicators are correlated over a busy cycle; 2x the binomial error covers
    # the short (K = 3) correlation span
    assert frac == pytest.approx(p_block, abs=2 * binomial_tol(p_block, s["requests"]))


def test_without_a_queue_limit_nothing_is_rejected_and_the_queue_grows() -> None:
    topo = single(20.0, svc(exp(0.1), workers=1))
    sim = Simulation(topo, scenario(60))
    w = sim.step(60)
    assert "REJECTED" not in w["entries"]["a"]["failures"]
    assert sim.state()["services"]["a"]["queue"] > 100


def erlang_b(c: int, a: float) -> float:
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def test_queue_limit_zero_blocks_as_erlang_b() -> None:
    c, lam, mu = 3, 30.0, 10.0
    topo = single(lam, svc(exp(1 / mu), workers=c))
    s = run(topo, scenario(500, warmup=10), {"services": {"a": {"queue_limit": 0}}}).summary
    expected = erlang_b(c, lam / mu)  # 0.346
    frac = s["failures"]["REJECTED"] / s["requests"]
    # loose: 2x the binomial error (the exact fidelity check lives in test_queueing_theory)
    assert frac == pytest.approx(expected, abs=2 * binomial_tol(expected, s["requests"]))


# -- bulkhead ---------------------------------------------------------------------------------


def test_bulkhead_never_lets_more_than_max_concurrency_run_on_a_replica() -> None:
    maxc = 3
    topo = single(25.0, svc(exp(0.1), workers=10))
    sim = Simulation(
        topo, scenario(100), Policy.from_dict({"services": {"a": {"max_concurrency": maxc}}})
    )
    busiest = 0
    for _ in range(400):
        sim.step(0.25)
        st = sim.state()["services"]["a"]
        busiest = max(busiest, st["busy"])
        assert st["busy"] <= maxc
    assert busiest == maxc  # the limit binds (offered load 2.5 workers, bursts above 3)


def test_bulkhead_bounds_utilisation_by_max_concurrency_over_workers_per_replica() -> None:
    maxc, workers = 2, 8
    # offered work: 6 workers' worth on 2 replicas of 8; the bulkhead allows 2 per replica
    topo = single(60.0, svc(exp(0.1), workers=workers, replicas=2))
    pol = {"services": {"a": {"max_concurrency": maxc}}}
    s = run(topo, scenario(60), pol).summary
    assert s["services"]["a"]["utilization"] <= maxc / workers + 1e-9
    assert s["services"]["a"]["utilization"] > 0.95 * maxc / workers  # saturated
    free = run(topo, scenario(60)).summary
    assert free["services"]["a"]["utilization"] > 0.3  # 6 / 16 without the bulkhead


def test_bulkhead_counts_requests_waiting_on_their_calls() -> None:
    """A non-blocking service hands its worker back while it waits on a call, but the request
    is still in progress: the bulkhead bounds those too, so throughput <= maxc / call time."""
    maxc = 2
    topo = chain(40.0, svc(0.1))  # b: 0.1 s, many workers
    pol = {"services": {"a": {"max_concurrency": maxc}}}
    sim = Simulation(topo, scenario(60), Policy.from_dict(pol))
    sim.step(10)
    w = sim.step(50)["entries"]["a"]
    # each request holds a bulkhead slot for >= 0.101 s: at most maxc / 0.101 per second
    assert w["succeeded"] <= 50 * maxc / 0.101 + maxc
    assert w["succeeded"] >= 0.95 * 50 * maxc / 0.101


# -- autoscaler -------------------------------------------------------------------------------


def test_desired_replicas_is_ceil_current_times_util_over_target() -> None:
    cfg = Autoscale(min=1, max=5, target_utilization=0.5)
    assert desired_replicas(cfg, 2, 0.75) == 3  # 2 * 1.5 exactly, no rounding up
    assert desired_replicas(cfg, 2, 0.9) == 4  # ceil(3.6)
    assert desired_replicas(cfg, 1, 1.0) == 2


def test_desired_replicas_keeps_the_count_inside_the_ten_percent_band() -> None:
    cfg = Autoscale(min=1, max=5, target_utilization=0.5)
    assert desired_replicas(cfg, 3, 0.5) == 3
    assert desired_replicas(cfg, 3, 0.54) == 3
    assert desired_replicas(cfg, 3, 0.46) == 3
    assert desired_replicas(cfg, 3, 0.56) == 4  # ratio 1.12: ceil(3.36)


def test_desired_replicas_is_clamped_to_min_and_max() -> None:
    cfg = Autoscale(min=2, max=5, target_utilization=0.5)
    assert desired_replicas(cfg, 4, 1.0) == 5
    assert desired_replicas(cfg, 4, 0.01) == 2
    assert desired_replicas(cfg, 1, 0.0) == 2


AUTOSCALE = {
    "min": 1,
    "max": 3,
    "target_utilization": 0.5,
    "period": 5,
    "boot_time": 10,
    "cooldown": 60,
}


def _autoscaled(
    profile: list[dict[str, float]] | None, duration: float, **cfg: float
) -> Simulation:
    # a alone can serve 10/s; 15/s arrive: overloaded until it scales out
    topo = single(15.0, svc(exp(0.1), workers=1))
    load = {"profile": profile} if profile else {}
    scen = scenario(duration, load=load)
    pol = {"services": {"a": {"autoscale": {**AUTOSCALE, **cfg}}}}
    return Simulation(topo, scen, Policy.from_dict(pol))


def test_autoscaler_adds_replicas_after_period_plus_boot_time_and_never_beyond_max() -> None:
    sim = _autoscaled(None, 100)
    seen: list[tuple[float, int, int]] = []
    while sim.now < 100:
        sim.step(0.5)
        st = sim.state()["services"]["a"]
        seen.append((sim.now, st["ready"], st["replicas"]))
    ready = {t: r for t, r, _ in seen}
    # first decision at t = period (5): one more replica, serving from 5 + boot_time = 15
    # (a step that ends at t has not yet run the events due at t itself)
    assert all(r == 1 for t, r in ready.items() if t <= 15)
    assert ready[15.5] == 2
    # the second decision (t = 15, both replicas busy) asks for more: capped at max = 3
    assert all(r == 2 for t, r in ready.items() if 15 < t <= 25)
    assert ready[25.5] == 3
    assert max(n for _, _, n in seen) == AUTOSCALE["max"]
    assert max(r for _, r, _ in seen) == AUTOSCALE["max"]


def test_autoscaler_scales_in_only_after_the_cooldown() -> None:
    # the load drops to a tenth at t = 30; the last scale-out was at t = 15, so the first
    # scale-in may come at 15 + cooldown = 75 (a decision tick), not before
    sim = _autoscaled([{"at": 0, "multiplier": 1.0}, {"at": 30, "multiplier": 0.1}], 100)
    ready: dict[float, int] = {}
    while sim.now < 100:
        sim.step(0.5)
        ready[sim.now] = sim.state()["services"]["a"]["ready"]
    assert ready[30.0] == 3
    assert all(r == 3 for t, r in ready.items() if 25 < t <= 75)
    assert ready[75.5] == 1
    assert all(r == 1 for t, r in ready.items() if t >= 75.5)


def test_replica_seconds_grow_with_scale_out() -> None:
    duration = 70  # before 15 + cooldown: no scale-in can happen
    s = _autoscaled(None, duration).run().summary
    fixed = run(single(15.0, svc(exp(0.1), workers=1)), scenario(duration)).summary
    assert fixed["services"]["a"]["replica_seconds"] == pytest.approx(duration)
    # a pod costs from its decision, booting included: 1 on [0, 5), 2 on [5, 15), 3 after
    expected = 5 * 1 + 10 * 2 + (duration - 15) * 3
    assert s["services"]["a"]["replica_seconds"] == pytest.approx(expected)
    assert s["replica_seconds"] == pytest.approx(expected)


def test_autoscaling_out_relieves_the_overload() -> None:
    sim = _autoscaled(None, 200, cooldown=1000)  # out only: a quiet spell cannot scale in
    sim.step(50)
    w = sim.step(150)
    assert w["services"]["a"]["ready"] == 3
    # 3 replicas at 15/s: utilisation 0.5 (target); compound-Poisson work error
    util = w["services"]["a"]["utilization"]
    assert util == pytest.approx(0.5, abs=Z * math.sqrt(15 * 150 * 2 * 0.1**2) / (3 * 150))


# -- failover ---------------------------------------------------------------------------------

FAILOVER = {"to": "s", "when_error_rate": 0.5, "window": 5, "min_requests": 10, "hold": 20}


def _failover_run(with_failover: bool) -> Results:
    topo = chain(20.0, svc(exp(0.01)), s=svc(exp(0.01)))
    scen = scenario(
        200, {"kind": "error_rate", "target": "b", "probability": 0.9, "start": 50, "duration": 50}
    )
    pol = {"services": {"b": {"failover": FAILOVER}}} if with_failover else {}
    return run(topo, scen, pol)


def test_failover_moves_calls_to_the_standby_during_the_fault() -> None:
    res = _failover_run(True)
    standby = series(res, "service", "s", "requests", "arrivals")
    assert between(standby, 0, 50).sum() == 0
    assert between(standby, 50, 100).sum() > 0.6 * 20 * 50
    # the caller recovers: once switched (a window or two), most requests succeed
    ok = between(series(res, "entry", "a", "requests", "succeeded"), 50, 100).sum()
    arrivals = between(series(res, "entry", "a", "requests", "arrivals"), 50, 100).sum()
    bare = _failover_run(False)
    ok_bare = between(series(bare, "entry", "a", "requests", "succeeded"), 50, 100).sum()
    assert ok_bare / arrivals < 0.2
    assert ok / arrivals > 0.8


def test_failover_returns_to_the_primary_after_hold_once_it_is_healthy() -> None:
    res = _failover_run(True)
    standby = series(res, "service", "s", "requests", "arrivals")
    primary = series(res, "service", "b", "requests", "arrivals")
    # the last switch happens before 100 (the fault's end) and lasts `hold` = 20 s
    assert between(standby, 121, 200).sum() == 0
    assert between(primary, 121, 200).min() > 0
    ok = between(series(res, "entry", "a", "requests", "succeeded"), 121, 200).sum()
    arrivals = between(series(res, "entry", "a", "requests", "arrivals"), 121, 200).sum()
    assert ok >= arrivals - 2


def test_failover_holds_for_hold_seconds_before_trying_the_primary() -> None:
    topo = chain(20.0, svc(exp(0.01)), s=svc(exp(0.01)))
    scen = scenario(
        200, {"kind": "error_rate", "target": "b", "probability": 0.9, "start": 50, "duration": 10}
    )
    sim = Simulation(topo, scen, Policy.from_dict({"services": {"b": {"failover": FAILOVER}}}))
    active: dict[float, bool] = {}
    while sim.now < 120:
        sim.step(1)
        active[sim.now] = sim.state()["services"]["b"]["failover_active"]
    on = [t for t, a in active.items() if a]
    # the error rate over the last `window` = 5 s passes 50% within that window
    assert 50 < on[0] <= 50 + FAILOVER["window"]
    # it stays on for `hold` seconds, though the fault ended at 60, then tries b again
    assert on == [on[0] + k for k in range(FAILOVER["hold"])]
    assert not any(a for t, a in active.items() if t >= on[0] + FAILOVER["hold"])


def test_failover_window_is_in_seconds_whatever_the_step_size() -> None:
    topo = chain(20.0, svc(exp(0.01)), s=svc(exp(0.01)))
    scen = scenario(
        100, {"kind": "error_rate", "target": "b", "probability": 0.9, "start": 20, "duration": 60}
    )
    # 5 s at 20/s hold ~100 requests: min_requests 50 is met within the first seconds
    pol = Policy.from_dict({"services": {"b": {"failover": {**FAILOVER, "min_requests": 50}}}})
    ran = Simulation(topo, scen, pol).run().summary
    stepped = Simulation(topo, scen, pol)
    while stepped.now < 100:
        stepped.step(0.1)
    sb = stepped.results().summary
    assert ran["services"]["s"]["arrivals"] > 500
    assert sb["services"]["s"]["arrivals"] == pytest.approx(
        ran["services"]["s"]["arrivals"], rel=0.1
    )


# -- policy changes mid-run -------------------------------------------------------------------


def test_apply_adds_a_timeout_that_changes_the_outcome_from_then_on_only() -> None:
    topo = chain(20.0, svc(0.2))
    sim = Simulation(topo, scenario(200))
    before = sim.step(100)["entries"]["a"]
    sim.apply(Policy.from_dict({"clients": {"a->b": {"timeout": 0.1}}}))
    sim.step(1)  # calls in flight at the change were issued without a timeout
    after = sim.step(99)["entries"]["a"]
    assert before["failed"] == 0 and before["succeeded"] > 1800
    assert after["succeeded"] == 0
    assert set(after["failures"]) == {"TIMEOUT"}
    assert after["failed"] > 1800


def test_apply_removing_a_timeout_lets_calls_succeed_again() -> None:
    topo = chain(20.0, svc(0.2))
    sim = Simulation(topo, scenario(200), Policy.from_dict({"clients": {"*": {"timeout": 0.1}}}))
    before = sim.step(100)["entries"]["a"]
    sim.apply(Policy())
    sim.step(1)
    after = sim.step(99)["entries"]["a"]
    assert before["succeeded"] == 0
    assert after["failed"] == 0 and after["succeeded"] > 1800


def test_apply_shortening_a_timeout_takes_effect_for_the_next_calls() -> None:
    topo = chain(20.0, svc(0.2))
    sim = Simulation(topo, scenario(200), Policy.from_dict({"clients": {"a->b": {"timeout": 10}}}))
    before = sim.step(100)["entries"]["a"]
    sim.apply(Policy.from_dict({"clients": {"a->b": {"timeout": 0.1}}}))
    sim.step(1)
    after = sim.step(99)["entries"]["a"]
    assert before["failed"] == 0
    assert after["succeeded"] == 0  # every call takes 0.2 s > 0.1 s


def test_apply_keeps_results_before_the_change_identical_to_a_run_without_it() -> None:
    topo = chain(20.0, svc(exp(0.05)))
    scen = scenario(200, {"kind": "error_rate", "target": "b", "probability": 0.3})
    plain = Simulation(topo, scen)
    changed = Simulation(topo, scen)
    a = plain.step(100)
    b = changed.step(100)
    assert a["entries"] == b["entries"]
    changed.apply(Policy.from_dict({"clients": {"a->b": {"retries": retries(2)}}}))
    a = plain.step(100)["entries"]["a"]
    b = changed.step(100)["entries"]["a"]
    assert b["failed"] < 0.3 * a["failed"]  # retries now hide most errors


def test_a_call_issued_while_timeouts_fire_does_not_double_schedule_the_timer() -> None:
    # the first of two sequential optional calls times out; the job issues the second call
    # on the same edge from inside the timer's loop (a campaign crashed on this once)
    topo = topology_seq()
    pol = {"clients": {"a->b": {"timeout": 0.5}}}
    s = run(topo, scenario(30), pol).summary
    assert s["edges"]["a->b"]["timeouts"] > 0
    assert s["requests"] == s["succeeded"] + s["failed"] + s["in_flight"]


def topology_seq() -> Topology:
    calls = [{"to": "b", "count": 2, "optional": True}]
    return Topology.from_dict(
        {
            "name": "seq",
            "services": {"a": svc(0.001, calls=calls), "b": svc(1.0)},
            "workload": [{"entry": "a", "rate": 5.0}],
        }
    )
