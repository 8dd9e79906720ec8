"""Asynchronous calls and brokers: the caller does not wait, requests stay conserved, and a
broker's backlog behaves as the M/M/c queue of its consumer pool."""

from __future__ import annotations

import math
from typing import Any

import pytest

from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.fluid import FluidSimulation
from twin.topology import Topology


def _svc(dist: str, mean: float, calls: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
    op: dict[str, Any] = {"service_time": {"dist": dist, "mean": mean}}
    if calls:
        op["calls"] = calls
    return {**kw, "operations": {"default": op}}


def _topo(services: dict[str, Any], rate: float) -> Topology:
    return Topology.from_dict(
        {"name": "async", "services": services, "workload": [{"entry": "a", "rate": rate}]}
    )


def _scenario(duration: float, warmup: float = 0.0, **kw: Any) -> Scenario:
    return Scenario.model_validate({"duration": duration, "warmup": warmup, "seed": 4, **kw})


def erlang_c(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_an_asynchronous_call_adds_nothing_to_the_callers_latency_and_never_fails_it() -> None:
    topo = _topo(
        {
            "a": _svc("constant", 0.01, [{"to": "slow", "asynchronous": True}], workers=50),
            "slow": _svc("constant", 2.0, workers=200),
        },
        rate=20,
    )
    faults = [
        {"kind": "error_rate", "target": "slow", "start": 0, "duration": 300, "probability": 1.0}
    ]
    s = Simulation(topo, _scenario(300, faults=faults)).run().summary
    assert s.failed == 0
    assert s.latency.mean == pytest.approx(0.01)
    assert s.latency.p99 == pytest.approx(0.01, rel=0.02)
    # the callee still did the work of every call: it is loaded and fails on its own
    assert s.services["slow"].arrivals == s.services["a"].arrivals
    assert s.services["slow"].failed >= s.services["a"].arrivals - 200
    assert s.services["slow"].utilization == pytest.approx(20 * 2.0 / 200, rel=0.05)


def test_requests_are_conserved_with_asynchronous_children_and_brokers_in_flight() -> None:
    topo = _topo(
        {
            "a": _svc("exponential", 0.02, [{"to": "q"}, {"to": "b", "asynchronous": True}]),
            "q": _svc("exponential", 0.3, [{"to": "b"}], broker=True, workers=2),
            "b": _svc("exponential", 0.05, workers=4),
        },
        rate=10,
    )
    sim = Simulation(topo, _scenario(100))
    s = sim.run(until=60).summary
    assert s.requests == s.succeeded + s.failed + s.in_flight
    held_total = 0
    for name, svc in sim.services.items():
        held = sum(len(r.jobs) for r in svc.replicas)
        held_total += held
        row = s.services[name]
        assert row.arrivals == row.completions + row.failed + held, name
    assert sim.ctx.arrived - sim.ctx.done == held_total
    assert held_total > s.in_flight  # children outlive the requests that made them


def test_a_brokers_consumers_serve_its_backlog_as_an_mmc_queue() -> None:
    lam, mu, c = 1.8, 1.0, 3
    topo = _topo(
        {
            "a": _svc("constant", 0.01, [{"to": "q"}], workers=10),
            "q": _svc("exponential", 1 / mu, broker=True, workers=c),
        },
        rate=lam,
    )
    res = Simulation(topo, _scenario(8_000, warmup=200)).run()
    s = res.summary
    wait = erlang_c(c, lam / mu) / (c * mu - lam)
    assert s.services["q"].latency.mean == pytest.approx(wait + 1 / mu, rel=0.05)
    # the producer waits for the acknowledgement only
    assert s.latency.mean == pytest.approx(0.01)
    # the backlog is the queue length the monitor reports
    df = res.timeseries.frame()
    queue = df[(df["name"] == "q") & (df["metric"] == "queue") & (df["time"] >= 200)]["value"]
    assert queue.mean() == pytest.approx(lam * wait, rel=0.1)


def test_a_backlog_drains_at_the_consumer_pools_rate() -> None:
    workers, seconds = 4, 0.5  # the pool consumes 8 messages per second
    topo = _topo(
        {
            "a": _svc("constant", 0.001, [{"to": "q"}], workers=10),
            "q": _svc("constant", seconds, broker=True, workers=workers),
        },
        rate=20,
    )
    load = {"profile": [{"at": 0, "multiplier": 1.0}, {"at": 50, "multiplier": 0.0}]}
    df = Simulation(topo, _scenario(120, load=load)).run().timeseries.frame()
    q = df[(df["name"] == "q") & (df["metric"] == "queue")].set_index("time")["value"]
    span = float(q.index[q.index >= 90][0] - q.index[q.index >= 60][0])
    drained = float(q[q.index >= 60].iloc[0] - q[q.index >= 90].iloc[0])
    assert drained / span == pytest.approx(workers / seconds, rel=0.03)


def test_a_full_broker_refuses_the_publish() -> None:
    topo = _topo(
        {
            "a": _svc("constant", 0.001, [{"to": "q"}], workers=10),
            "q": _svc("constant", 0.5, broker=True, workers=1, queue_limit=5),
        },
        rate=10,
    )
    s = Simulation(topo, _scenario(100)).run().summary
    assert s.failures.get("REJECTED", 0) == s.services["q"].rejected > 0
    assert s.succeeded == s.services["q"].arrivals - s.services["q"].rejected


def test_fluid_rates_match_the_request_level_engine_with_asynchronous_calls() -> None:
    topo = _topo(
        {
            "a": _svc(
                "exponential", 0.01, [{"to": "q"}, {"to": "b", "asynchronous": True}], workers=10
            ),
            "q": _svc("exponential", 0.2, [{"to": "b", "count": 2}], broker=True, workers=4),
            "b": _svc("exponential", 0.01, workers=4),
        },
        rate=12,
    )
    sc = _scenario(600)
    des = Simulation(topo, sc).run().summary
    fluid = FluidSimulation(topo, sc).step(600)
    for name in ("a", "q", "b"):
        assert fluid.services[name].arrivals == pytest.approx(des.services[name].arrivals, rel=0.03)
    # the entry waits for its processing and the broker's acknowledgement only
    assert fluid.entries["a"].latency.mean == pytest.approx(des.latency.mean, rel=0.1)
