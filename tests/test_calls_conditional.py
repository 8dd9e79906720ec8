"""Conditional calls (``when``): rates against the binomial theory, the traffic equations,
the fluid engine, the document's checks, and today's results for topologies without them."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import yaml

from twin.errors import InputError
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.fluid import FluidSimulation
from twin.topology import Call, Topology, expected_calls


def _svc(mean: float, calls: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"service_time": {"dist": "exponential", "mean": mean}}
    if calls:
        op["calls"] = calls
    return {"workers": 20, **kw, "operations": {"default": op}}


def _topology(calls: list[dict[str, Any]], rate: float = 40.0, **links: Any) -> Topology:
    doc = {
        "name": "conditional",
        "services": {
            "a": _svc(0.005, calls),
            "cache": _svc(0.002),
            "db": _svc(0.01),
            "fallback": _svc(0.004),
        },
        "network": {"links": links},
        "workload": [{"entry": "a", "rate": rate}],
    }
    return Topology.from_dict(doc)


def _errors(target: str, p: float, duration: float) -> Scenario:
    faults = [
        {"kind": "error_rate", "target": target, "start": 0, "duration": duration, "probability": p}
    ]
    return Scenario.model_validate(
        {"duration": duration, "warmup": 0, "seed": 11, "faults": faults}
    )


def _within_binomial(k: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(k - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def test_fallback_arrival_rate_is_upstream_error_share_times_caller_rate() -> None:
    topo = _topology(
        [
            {"to": "cache", "optional": True},
            {"to": "fallback", "when": "previous_failed", "probability": 0.5},
        ]
    )
    s = Simulation(topo, _errors("cache", 0.3, 300)).run().summary.services
    failed = s["cache"].failed
    assert _within_binomial(failed, s["a"].arrivals, 0.3)
    # each failure of the cache is followed by the fallback with probability 0.5
    assert _within_binomial(s["fallback"].arrivals, failed, 0.5)
    rate_ratio = s["fallback"].arrivals / s["a"].arrivals
    assert rate_ratio == pytest.approx(0.3 * 0.5, abs=0.015)


def test_previous_ok_call_follows_only_successes() -> None:
    topo = _topology(
        [
            {"to": "cache", "optional": True},
            {"to": "db", "when": "previous_ok", "probability": 0.4},
        ]
    )
    s = Simulation(topo, _errors("cache", 0.25, 300)).run().summary.services
    assert _within_binomial(s["db"].arrivals, s["cache"].completions, 0.4)


def test_a_second_fallback_runs_only_when_the_first_fallback_failed() -> None:
    topo = _topology(
        [
            {"to": "cache", "optional": True},
            {"to": "db", "when": "previous_failed", "optional": True},
            {"to": "fallback", "when": "previous_failed"},
        ]
    )
    sc = Scenario.model_validate(
        {
            "duration": 400,
            "seed": 5,
            "faults": [
                {"kind": "error_rate", "target": t, "start": 0, "duration": 400, "probability": 0.5}
                for t in ("cache", "db")
            ],
        }
    )
    s = Simulation(topo, sc).run().summary.services
    assert s["db"].arrivals == s["cache"].failed
    assert s["fallback"].arrivals == s["db"].failed


def test_fluid_rates_match_the_request_level_engine() -> None:
    topo = _topology(
        [
            {"to": "cache", "optional": True},
            {"to": "fallback", "when": "previous_failed", "probability": 0.5},
            {"to": "db", "when": "previous_ok", "probability": 0.6},
        ]
    )
    sc = _errors("cache", 0.3, 600)
    des = Simulation(topo, sc).run().summary.services
    fluid = FluidSimulation(topo, sc).step(600).services
    for name in ("cache", "fallback", "db"):
        assert fluid[name].arrivals == pytest.approx(des[name].arrivals, rel=0.05), name


def test_traffic_equations_count_a_fallback_by_the_links_loss() -> None:
    topo = _topology(
        [
            {"to": "cache", "optional": True},
            {"to": "fallback", "when": "previous_failed", "probability": 0.5},
            {"to": "db", "when": "previous_ok"},
        ],
        rate=10.0,
        **{"a->cache": {"loss": 0.2}},
    )
    rates = topo.operation_rates()
    assert rates["cache:default"] == pytest.approx(10.0)
    assert rates["fallback:default"] == pytest.approx(10.0 * 0.2 * 0.5)
    # db follows the fallback's stage, which was made (and succeeded) in 10% of requests
    assert rates["db:default"] == pytest.approx(10.0 * 0.2 * 0.5)


def test_expected_calls_without_conditions_is_probability_times_count_exactly() -> None:
    calls = [Call(to="b", probability=0.3, count=3), Call(to="c", probability=0.7, parallel=True)]
    assert expected_calls(calls, [0.5, 0.5]) == [0.3 * 3, 0.7 * 1]


def test_expected_calls_of_a_sequential_conditional_call_count_its_repetitions_once() -> None:
    calls = [
        Call(to="b", probability=0.5, optional=True),
        Call(to="c", when="previous_ok", count=3, probability=0.5),
    ]
    # b made half of the time, succeeds 80% of those: c's stage opens 40% of the time
    assert expected_calls(calls, [0.2, 0.0]) == pytest.approx([0.5, 0.4 * 0.5 * 3])


@pytest.mark.parametrize(
    ("calls", "path"),
    [
        ([{"to": "db", "when": "previous_ok"}], "calls[0].when"),
        ([{"to": "cache"}, {"to": "db", "when": "previous_failed"}], "calls[1].when"),
        (
            [
                {"to": "cache", "optional": True, "asynchronous": True},
                {"to": "db", "when": "previous_failed"},
            ],
            "calls[1].when",
        ),
    ],
)
def test_a_condition_that_can_never_hold_is_refused_with_its_path(
    calls: list[dict[str, Any]], path: str
) -> None:
    with pytest.raises(InputError, match=re.escape(path)):
        _topology(calls)


GOLDEN = """
name: golden
services:
  a: {workers: 4, operations: {default: {service_time: {dist: exponential, mean: 0.02},
      calls: [{to: b, probability: 0.7}, {to: c, parallel: true, count: 2},
              {to: b, parallel: true}, {to: c, optional: true}]}}}
  b: {workers: 2, operations: {default: {service_time: {dist: exponential, mean: 0.03}}}}
  c: {workers: 2, operations: {default: {service_time: {dist: exponential, mean: 0.01}}}}
workload: [{entry: a, rate: 30}]
"""


def test_topologies_without_the_new_fields_give_the_same_results_as_before() -> None:
    """Figures of this run before conditional and asynchronous calls existed."""
    sc = Scenario.model_validate(
        {
            "duration": 200,
            "warmup": 20,
            "seed": 3,
            "faults": [
                {
                    "kind": "error_rate",
                    "target": "c",
                    "start": 50,
                    "duration": 100,
                    "probability": 0.2,
                }
            ],
        }
    )
    doc = yaml.safe_load(GOLDEN)
    explicit = yaml.safe_load(GOLDEN)
    for call in explicit["services"]["a"]["operations"]["default"]["calls"]:
        call.update(when="always", asynchronous=False)
    explicit["services"]["b"]["broker"] = False
    for d in (doc, explicit):
        s = Simulation(Topology.from_dict(d), sc).run().summary
        assert (s.requests, s.succeeded, s.failed) == (5353, 4240, 1111)
        assert s.latency.mean == 0.15687749357937197
        assert s.latency.p99 == 0.7038822279364568
        assert {n: v.arrivals for n, v in s.services.items()} == {
            "a": 5353,
            "b": 9069,
            "c": 14944,
        }
