"""The baselines against their published definitions, and the Monte Carlo look-ahead's
bounds: the SRE workbook's burn-rate page (detection time (1 - SLO) / error ratio x window x
burn factor), Prometheus' predict_linear (least squares, extrapolated), and P(breach) and
time to breach from a twin stepped through the SteppedTwin protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.predict.breach import (
    PAGE_RULES,
    BurnRateAlert,
    LinearAlert,
    availability_broken,
    detection_seconds,
    predict_linear,
    resolving_requests,
    stretch_breaches,
    time_to_breach,
)
from twin.predict.failures import FailureExcess
from twin.scenario import Scenario
from twin.sim.fluid import FluidSimulation
from twin.topology import Topology


def _fire_time(objective: float, error_ratio: float, rule_index: int = 0) -> float:
    """Feed one hour of clean 1-s windows, then errors; answer when the page fires."""
    alert = BurnRateAlert(objective, rules=[PAGE_RULES[rule_index]])
    t = 0.0
    for _ in range(int(PAGE_RULES[rule_index].long_s)):
        t += 1.0
        assert not alert.update(t, 1.0, 0.0, 100.0)
    start = t
    while t - start < PAGE_RULES[rule_index].long_s:
        t += 1.0
        if alert.update(t, 1.0, 100.0 * error_ratio, 100.0):
            return t - start
    return math.inf


def test_burn_rate_page_fires_after_the_workbook_detection_time() -> None:
    # 99.9% SLO, every request failing: the 1 h window reaches 14.4x after 51.84 s
    assert detection_seconds(0.999, 1.0, 3600, 14.4) == pytest.approx(51.84)
    assert _fire_time(0.999, 1.0) == 52.0
    # 10% errors: ten times longer
    assert _fire_time(0.999, 0.1) == math.ceil(detection_seconds(0.999, 0.1, 3600, 14.4))


def test_burn_rate_below_the_factor_never_pages() -> None:
    # 1% errors at 99.9% is a burn of 10x < 14.4x: the 1 h / 5 min page never fires
    assert detection_seconds(0.999, 0.01, 3600, 14.4) == math.inf
    assert _fire_time(0.999, 0.01) == math.inf


def test_burn_rate_needs_both_windows() -> None:
    alert = BurnRateAlert(0.999, rules=[PAGE_RULES[0]])
    t = 0.0
    for _ in range(60):  # a 60 s burst of errors, then clean: the long window is still high
        t += 1.0
        alert.update(t, 1.0, 100.0, 100.0)
    for _ in range(300):
        t += 1.0
        fired = alert.update(t, 1.0, 0.0, 100.0)
    assert alert.burn(t, 3600) > 14.4  # the hour still burns...
    assert not fired  # ...but the last 5 minutes are clean: no page


def test_predict_linear_recovers_a_known_line() -> None:
    t = np.arange(0.0, 600.0, 15.0)
    v = 3.0 + 0.01 * t
    assert predict_linear(t, v, at=600.0, ahead=300.0) == pytest.approx(3.0 + 0.01 * 900.0)
    assert math.isnan(predict_linear([1.0], [2.0], at=1.0, ahead=10.0))


def test_linear_alert_fires_when_the_extrapolation_crosses() -> None:
    alert = LinearAlert(range_s=600.0, ahead_s=600.0, threshold=10.0)
    fired = [alert.update(t, 1.0 + 0.01 * t) for t in range(0, 1200, 60)]
    # 1 + 0.01 x (t + 600) > 10 once t > 300 s: the first window after is 360 s
    first = next(t for t, f in zip(range(0, 1200, 60), fired, strict=True) if f)
    assert first == 360


CHAIN = Topology.model_validate(
    {
        "name": "two",
        "services": {
            "a": {
                "workers": 4,
                "operations": {
                    "default": {
                        "service_time": {"dist": "exponential", "mean": 0.01},
                        "calls": [{"to": "b"}],
                    }
                },
            },
            "b": {
                "workers": 2,
                "operations": {"default": {"service_time": {"dist": "exponential", "mean": 0.02}}},
            },
        },
        "workload": [{"entry": "a", "rate": 20}],
        "slo": {"latency_p99": 0.5, "availability": 0.99},
    }
)


def _twin(faults: list[dict[str, object]]) -> FluidSimulation:
    return FluidSimulation(CHAIN, Scenario.model_validate({"duration": 700, "faults": faults}))


def test_time_to_breach_is_certain_and_early_under_an_outage() -> None:
    est = time_to_breach(
        lambda rng: _twin(
            [{"kind": "error_rate", "target": "b", "start": 0, "duration": 700, "probability": 0.5}]
        ),
        stretch_breaches(0.5, 0.99),
        horizon_s=600,
        step_s=60,
        replications=3,
        rng=np.random.default_rng(1),
    )
    assert est.probability == 1.0
    assert est.time_to_breach_s == 60.0  # the first window already breaks availability


def test_time_to_breach_is_none_on_a_healthy_twin() -> None:
    est = time_to_breach(
        lambda rng: _twin([]),
        stretch_breaches(0.5, 0.99),
        horizon_s=600,
        step_s=60,
        replications=2,
        rng=np.random.default_rng(1),
    )
    assert est.probability == 0.0 and est.time_to_breach_s is None
    assert len(est.first_breach_s) == 2


def test_availability_needs_enough_requests_to_resolve_the_objective() -> None:
    assert resolving_requests(0.99) == pytest.approx(200.0)
    # one failure in a 75-request window is 1.3%, but 75 requests cannot resolve 99%
    assert not availability_broken(1, 75, 0.99)
    assert not availability_broken(2, 75, 0.99)
    assert availability_broken(3, 75, 0.99)  # three cannot fit a 200-request budget of two
    assert availability_broken(75, 75, 0.99)  # everything failing breaks it at once
    assert availability_broken(11, 1000, 0.99) and not availability_broken(10, 1000, 0.99)


def test_availability_sli_pools_windows_back_until_they_resolve_the_objective() -> None:
    sli = FailureExcess(0.99)  # the watch judges availability on the failure count's span

    def update(failed: float, total: float) -> bool:
        return sli.update(failed, total).broken

    # 75-request windows: a stray failure every other window is 0.7% over the pool: held
    got = [update(float(i % 2), 75.0) for i in range(12)]
    assert not any(got)
    assert not any(update(0.0, 75.0) for _ in range(3))
    # two failures a window (2.7%): the first window's two fit the budget of the pool (three
    # windows, 225 requests), the second window's do not
    got = [update(2.0, 75.0) for _ in range(3)]
    assert got == [False, True, True]
    # the pool forgets: clean windows bring it back once the failures leave the pool
    got = [update(0.0, 75.0) for _ in range(4)]
    assert not got[-1]
