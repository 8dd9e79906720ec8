"""Faults: each kind does what its model in ``twin.scenario`` documents.

Every test compares a run with the fault against a fault-free baseline with the same seed.
Streams are seeded per purpose (arrivals, work of each service, the fault's own draws), so
the baseline sees the very same arrivals and service times: differences come from the fault
alone, which makes many checks exact or nearly so. Where a figure is random the tolerance
is derived from its sampling distribution, as the comment at each check says: 4 standard
errors of a binomial or Poisson count, of a compound-Poisson amount of work, or of batch
means of consecutive requests' latencies (batches long against the queue's relaxation time).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stats_helpers import Z, binomial_tol, series

from twin.faults import FaultWindow, fault_windows, scale_fault
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
    **kw: Any,
) -> dict[str, Any]:
    st = time if isinstance(time, dict) else {"dist": "constant", "mean": time}
    return {
        "replicas": replicas,
        "workers": workers,
        "operations": {"default": {"service_time": st, "calls": calls or []}},
        **kw,
    }


def exp(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}


def const(mean: float) -> dict[str, Any]:
    return {"dist": "constant", "mean": mean}


def topology(rate: float, entry: str = "a", **services: dict[str, Any]) -> Topology:
    return Topology.from_dict(
        {"name": "t", "services": services, "workload": [{"entry": entry, "rate": rate}]}
    )


def chain(rate: float, callee: dict[str, Any] | None = None, **extra: dict[str, Any]) -> Topology:
    """Entry ``a`` (1 ms, many workers) calls ``b`` (10 ms exponential unless told) once."""
    return topology(rate, a=svc(0.001, calls=[{"to": "b"}]), b=callee or svc(exp(0.01)), **extra)


def scenario(duration: float, *faults: dict[str, Any], seed: int = 11, **kw: Any) -> Scenario:
    return Scenario.model_validate(
        {"duration": duration, "seed": seed, "faults": list(faults), **kw}
    )


def pair(
    topo: Topology, duration: float, *faults: dict[str, Any], **kw: Any
) -> tuple[Simulation, Simulation]:
    """(baseline, faulty) simulations: same topology, seed and load."""
    return (
        Simulation(topo, scenario(duration, **kw)),
        Simulation(topo, scenario(duration, *faults, **kw)),
    )


def stretches(sim: Simulation, *cuts: float) -> list[dict[str, Any]]:
    """``step`` from one cut to the next: the figures of each stretch."""
    out = []
    for a, b in zip((0.0, *cuts[:-1]), cuts, strict=True):
        out.append(sim.step(b - a))
    return out


def between(s: pd.Series, lo: float, hi: float) -> pd.Series:
    return s[(s.index >= lo) & (s.index < hi)]


def traced(sim: Simulation) -> pd.DataFrame:
    """Every request's start, end and outcome (``trace_sample=1``), with its latency."""
    df = sim.run().trace_frame()
    df["latency"] = df["end"] - df["start"]
    return df.sort_values("start", kind="stable").reset_index(drop=True)


def batch_means(x: np.ndarray, batches: int = 20) -> tuple[float, float]:
    """Mean and its standard error from ``batches`` batch means of consecutive values."""
    parts = np.array_split(np.asarray(x, dtype=float), batches)
    means = np.array([p.mean() for p in parts])
    return float(np.mean(x)), float(means.std(ddof=1) / math.sqrt(batches))


def mmc_mean_sojourn(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    top = a**c / math.factorial(c) * c / (c - a)
    wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return wait / (c * mu - lam) + 1.0 / mu


# -- latency ----------------------------------------------------------------------------------


def test_service_latency_fault_adds_its_delay_to_mean_latency_during_its_window_only() -> None:
    delay = 0.2
    fault = {"kind": "latency", "target": "b", "start": 100, "duration": 100, "delay": exp(delay)}
    base, hit = pair(chain(20.0), 300, fault)
    b0, b1, b2 = (w["entries"]["a"] for w in stretches(base, 100, 200, 300))
    f0, f1, f2 = (w["entries"]["a"] for w in stretches(hit, 100, 200, 300))
    assert f0 == b0  # before the fault: the very same run
    # b has 100 workers: no queueing, so each request gains exactly its own delay draw;
    # the mean of ~2000 Exp(0.2) draws has standard error 0.2 / sqrt(n)
    n = f1["succeeded"]
    rise = f1["latency"]["mean"] - b1["latency"]["mean"]
    assert rise == pytest.approx(delay, abs=Z * delay / math.sqrt(n))
    # after it only the few requests delayed across t = 200 differ
    assert f2["latency"]["mean"] - b2["latency"]["mean"] < 0.005
    assert f1["failed"] == f2["failed"] == 0


def test_a_service_latency_fault_holds_the_worker() -> None:
    """The delay is spent on a worker: utilisation rises by rate x delay / workers."""
    fault = {"kind": "latency", "target": "b", "start": 0, "delay": const(0.1)}
    base, hit = pair(chain(20.0, svc(const(0.01), workers=10)), 100, fault)
    u0 = base.run().summary["services"]["b"]["utilization"]
    u1 = hit.run().summary["services"]["b"]["utilization"]
    # the same ~2000 arrivals each hold a worker 0.1 s longer: (u1 - u0) = n * 0.1 / (10 T)
    n = hit.results().summary["services"]["b"]["arrivals"]
    assert u1 - u0 == pytest.approx(n * 0.1 / (10 * 100), rel=0.01)


def test_edge_latency_fault_adds_its_delay_as_network_time_during_its_window_only() -> None:
    delay = 0.05
    fault = {
        "kind": "latency",
        "target": "a->b",
        "start": 100,
        "duration": 100,
        "delay": const(delay),
    }
    base, hit = pair(chain(20.0), 300, fault)
    b0, b1, b2 = (w["entries"]["a"] for w in stretches(base, 100, 200, 300))
    f0, f1, f2 = (w["entries"]["a"] for w in stretches(hit, 100, 200, 300))
    assert f0 == b0
    # a constant delay on every call sent in the window; only the ~1 request straddling
    # each edge of the window is counted on the other side
    assert f1["latency"]["mean"] - b1["latency"]["mean"] == pytest.approx(delay, rel=0.02)
    assert f2["latency"]["mean"] - b2["latency"]["mean"] < 0.002
    # network time holds no worker of b
    ub = [
        w["services"]["b"]["utilization"]
        for w in stretches(Simulation(chain(20.0), scenario(300, fault)), 100, 200)
    ]
    ub0 = [
        w["services"]["b"]["utilization"]
        for w in stretches(Simulation(chain(20.0), scenario(300)), 100, 200)
    ]
    assert ub[1] == pytest.approx(ub0[1], rel=0.05)


# -- error rate -------------------------------------------------------------------------------


def test_error_rate_fails_a_fraction_p_of_requests_with_error() -> None:
    p = 0.25
    topo = topology(40.0, a=svc(exp(0.01)))
    s = (
        Simulation(topo, scenario(200, {"kind": "error_rate", "target": "a", "probability": p}))
        .run()
        .summary
    )
    assert set(s["failures"]) == {"ERROR"}
    n = s["requests"]
    assert s["failures"]["ERROR"] / n == pytest.approx(p, abs=binomial_tol(p, n))


def test_error_rate_on_a_callee_fails_callers_only_inside_its_window() -> None:
    p = 0.5
    fault = {"kind": "error_rate", "target": "b", "start": 50, "duration": 100, "probability": p}
    base, hit = pair(chain(20.0), 200, fault)
    assert base.run().summary["failed"] == 0
    res = hit.run()
    errors = series(res, "entry", "a", "failures", "ERROR")
    assert between(errors, 0, 50).sum() == 0
    assert between(errors, 150, 200).sum() == 0
    arrivals = between(series(res, "entry", "a", "requests", "arrivals"), 50, 150).sum()
    n = int(arrivals)
    assert between(errors, 50, 150).sum() / n == pytest.approx(p, abs=binomial_tol(p, n))
    # the callee does the work, then fails: it counts the errors as its own
    assert res.summary["services"]["b"]["failures"]["ERROR"] == res.summary["failures"]["ERROR"]


# -- outages ----------------------------------------------------------------------------------


def test_outage_of_all_replicas_fails_requests_with_service_down_during_the_window_only() -> None:
    topo = chain(20.0, svc(exp(0.01), replicas=2))
    fault = {"kind": "outage", "target": "b", "start": 100, "duration": 30}
    base, hit = pair(topo, 200, fault)
    assert base.run().summary["failed"] == 0
    res = hit.run()
    assert set(res.summary["failures"]) == {"SERVICE_DOWN"}
    down = series(res, "entry", "a", "failures", "SERVICE_DOWN")
    ok = series(res, "entry", "a", "requests", "succeeded")
    # what b held when it died fails at t = 100 itself, which the monitor books in the
    # window that closes at that instant, [99, 100); nothing fails before
    assert between(down, 0, 99).sum() == 0
    assert between(down, 99, 100).sum() <= 3
    assert between(down, 130, 200).sum() == 0
    # every 1-second window of the outage has failures (P(no arrival) = e^-20) and no success
    assert (between(down, 100, 130) > 0).all()
    assert between(ok, 100.5, 130).sum() == 0
    assert (between(ok, 131, 200) > 0).all()


def test_outage_of_one_replica_of_two_halves_capacity_without_a_total_outage() -> None:
    # b alone: 2 replicas x 1 worker, 100 ms exponential, 6/s: 30% busy, 60% on one
    topo = topology(6.0, entry="b", b=svc(exp(0.1), workers=1, replicas=2))
    fault = {"kind": "outage", "target": "b", "start": 100, "duration": 200, "replicas": 1}
    base, hit = pair(topo, 400, fault)
    before_b, during_b, after_b = stretches(base, 100, 300, 400)
    before = hit.step(100)
    # a step ending at t = 100 has not yet run what is due at 100, the fault included
    assert hit.state()["services"]["b"]["capacity"] == 2
    w = [hit.step(1) for _ in range(200)]
    after = hit.step(100)
    assert hit.state()["services"]["b"]["ready"] == 2
    # never a total outage: successes in (almost) every second; capacity is one worker
    assert sum(x["entries"]["b"]["succeeded"] > 0 for x in w) > 0.95 * 200
    # only what sat on the killed replica at t = 100 fails
    failed = sum(x["entries"]["b"]["failed"] for x in w)
    assert failed <= 5
    assert set().union(*(x["entries"]["b"]["failures"] for x in w)) <= {"SERVICE_DOWN"}
    # the same work on half the capacity: utilisation doubles (same seed, same draws, so
    # only the work in progress at the stretch's ends differs)
    u_hit = sum(x["services"]["b"]["utilization"] for x in w) / len(w)
    assert u_hit / during_b["services"]["b"]["utilization"] == pytest.approx(2.0, rel=0.05)
    # and the queue shows it: one M/M/1 at 60% instead of two queues at 30%
    lat_hit = np.average(
        [x["entries"]["b"]["latency"]["mean"] or 0.0 for x in w],
        weights=[x["entries"]["b"]["succeeded"] for x in w],
    )
    assert lat_hit > 1.5 * during_b["entries"]["b"]["latency"]["mean"]
    assert before["entries"]["b"] == before_b["entries"]["b"]
    assert after["services"]["b"]["utilization"] == pytest.approx(
        after_b["services"]["b"]["utilization"], rel=0.1
    )


def test_outage_of_one_replica_is_visible_in_state() -> None:
    topo = topology(6.0, entry="b", b=svc(exp(0.1), workers=1, replicas=2))
    fault = {"kind": "outage", "target": "b", "start": 10, "duration": 10, "replicas": 1}
    sim = Simulation(topo, scenario(30, fault))
    sim.step(15)
    st = sim.state()["services"]["b"]
    assert (st["ready"], st["capacity"], st["replicas"]) == (1, 1, 2)
    sim.step(10)
    st = sim.state()["services"]["b"]
    assert (st["ready"], st["capacity"]) == (2, 2)


def _placed_b(*faults: dict[str, Any], duration: float = 50) -> Simulation:
    topo = Topology.from_dict(
        {
            "name": "overlap",
            "hosts": {"h": {"cores": 64}},  # never short of a core or a worker
            "services": {"b": svc(const(0.01), host="h")},
            "workload": [{"entry": "b", "rate": 20.0}],
        }
    )
    return Simulation(topo, scenario(duration, *faults))


def _ready_at(sim: Simulation, times: list[float]) -> list[int]:
    out = []
    for t in times:
        sim.run(until=t)
        out.append(sim.state()["services"]["b"]["ready"])
    return out


def test_overlapping_outages_keep_a_service_down_until_the_last_one_ends() -> None:
    sim = _placed_b(
        {"kind": "outage", "target": "b", "start": 10, "duration": 20},  # [10, 30)
        {"kind": "outage", "target": "host:h", "start": 20, "duration": 20},  # [20, 40)
    )
    assert _ready_at(sim, [5, 15, 25, 35, 45]) == [1, 0, 0, 0, 1]


def test_a_replica_killed_by_oom_stays_down_while_an_outage_lasts() -> None:
    leak = {
        "kind": "memory_leak",
        "target": "b",
        "start": 0,
        "duration": 100,
        "growth_mb_per_s": 100.0,
        "limit_mb": 512.0,
        "baseline_mb": 12.0,
        "restart_time": 10.0,
    }  # OOM at 5, back at 15
    outage = {"kind": "outage", "target": "b", "start": 6, "duration": 30}  # [6, 36)
    sim = _placed_b(leak, outage, duration=100)
    assert _ready_at(sim, [4, 10, 17, 25, 33]) == [1, 0, 0, 0, 0]


def test_overlapping_cpu_faults_multiply_their_factors() -> None:
    sim = _placed_b(
        {"kind": "cpu_exhaustion", "target": "b", "start": 10, "duration": 20, "factor": 2.0},
        {"kind": "cpu_exhaustion", "target": "host:h", "start": 20, "duration": 20, "factor": 3.0},
    )
    lat = [
        w["entries"]["b"]["latency"]["mean"]
        for w in stretches(sim, 9, 10.1, 19, 20.1, 29, 30.1, 39, 40.1, 50)
    ]
    # constant 10 ms on idle cores: a stretch that starts 0.1 s after a change holds only
    # requests begun after it: [10.1, 19) x2, [20.1, 29) x6, [30.1, 39) x3, [40.1, 50) x1
    assert lat[0] == pytest.approx(0.01)
    assert lat[2] == pytest.approx(0.02)
    assert lat[4] == pytest.approx(0.06)
    assert lat[6] == pytest.approx(0.03)
    assert lat[8] == pytest.approx(0.01)


PLACED = {
    "name": "placed",
    "hosts": {"h1": {"cores": 16, "zone": "z1"}, "h2": {"cores": 16, "zone": "z2"}},
    "services": {
        "a": svc(0.001, calls=[{"to": x, "optional": True} for x in ("b", "c", "d")]),
        "b": svc(exp(0.01), host="h1"),
        "c": svc(exp(0.01), host="h2"),
        "d": svc(exp(0.01), zone="z1"),
    },
    "workload": [{"entry": "a", "rate": 20.0}],
}


@pytest.mark.parametrize(
    ("target", "hit"),
    [("host:h1", {"b"}), ("host:h2", {"c"}), ("zone:z1", {"b", "d"}), ("zone:z2", {"c"})],
)
def test_host_and_zone_outages_hit_exactly_the_services_placed_there(
    target: str, hit: set[str]
) -> None:
    topo = Topology.from_dict(PLACED)
    fault = {"kind": "outage", "target": target, "start": 20, "duration": 20}
    s = Simulation(topo, scenario(60, fault)).run().summary
    for name in ("b", "c", "d"):
        down = s["services"][name]["failures"].get("SERVICE_DOWN", 0)
        if name in hit:
            # all the ~Poisson(400) calls of the window are refused: 4 standard errors
            assert down > 20 * 20 - Z * math.sqrt(20 * 20)
        else:
            assert down == 0
            assert s["services"][name]["failed"] == 0
    assert s["failed"] == 0  # the calls are optional: a degrades, never fails
    assert s["services"]["a"]["failures"] == {}


# -- packet loss ------------------------------------------------------------------------------

LOSSY = {
    "a": svc(0.001, calls=[{"to": "b", "optional": True}, {"to": "c", "optional": True}]),
    "b": svc(exp(0.01)),
    "c": svc(exp(0.01), calls=[{"to": "b"}]),
}


def test_packet_loss_on_an_edge_loses_a_fraction_p_of_its_calls_as_network_loss() -> None:
    p = 0.2
    topo = topology(40.0, **LOSSY)
    fault = {"kind": "packet_loss", "target": "c->b", "probability": p}
    s = Simulation(topo, scenario(200, fault)).run().summary
    c = s["services"]["c"]
    assert set(c["failures"]) == {"NETWORK_LOSS"}
    n = c["arrivals"]
    assert c["failures"]["NETWORK_LOSS"] / n == pytest.approx(p, abs=binomial_tol(p, n))
    # a lost call never reaches b; the other edge into b loses nothing
    calls = s["edges"]["c->b"]["attempts"] + s["edges"]["a->b"]["attempts"]
    assert s["services"]["b"]["arrivals"] == calls - c["failures"]["NETWORK_LOSS"]
    assert s["services"]["a"]["failed"] == 0


def test_packet_loss_on_a_service_loses_calls_on_every_edge_into_it() -> None:
    p = 0.2
    topo = topology(40.0, **LOSSY)
    fault = {"kind": "packet_loss", "target": "b", "probability": p}
    s = Simulation(topo, scenario(200, fault)).run().summary
    calls = s["edges"]["c->b"]["attempts"] + s["edges"]["a->b"]["attempts"]
    lost = calls - s["services"]["b"]["arrivals"]
    assert lost / calls == pytest.approx(p, abs=binomial_tol(p, calls))
    n = s["services"]["c"]["arrivals"]
    frac_c = s["services"]["c"]["failures"]["NETWORK_LOSS"] / n
    assert frac_c == pytest.approx(p, abs=binomial_tol(p, n))
    # the entry's optional calls lose too, but a itself never fails
    assert s["failed"] == 0


# -- bandwidth --------------------------------------------------------------------------------


def test_bandwidth_fault_delays_each_response_by_at_least_size_over_bandwidth_and_queues() -> None:
    size, service = 2048, 0.05  # a response takes 0.05 s on the link
    lam = 10.0  # link busy 50%
    topo = chain(lam, svc(const(0.01)))
    fault = {
        "kind": "bandwidth",
        "target": "a->b",
        "start": 50,
        "duration": 400,
        "bytes_per_second": size / service,
    }
    base = traced(Simulation(topo, scenario(500), trace_sample=1.0))
    hit = traced(Simulation(topo, scenario(500, fault), trace_sample=1.0))
    assert len(base) == len(hit)
    assert (base["start"].to_numpy() == hit["start"].to_numpy()).all()  # same requests
    extra = hit["latency"].to_numpy() - base["latency"].to_numpy()
    start = hit["start"].to_numpy()
    inside = (start >= 50) & (start < 450 - 0.02)
    outside = (start < 50 - 0.02) | (start >= 450 + 5)
    assert np.all(extra[outside] == 0)
    # no response is faster than its transmission time
    assert extra[inside].min() >= service - 1e-9
    # b's departures are Poisson (M/D/inf), so the link is an M/D/1 queue: mean wait
    # rho * D / (2 (1 - rho)) on top of the transmission; batch means give the error
    rho = lam * service
    expected = service + rho * service / (2 * (1 - rho))
    mean, se = batch_means(extra[inside])
    assert mean == pytest.approx(expected, abs=Z * se)
    assert mean > service + 0.01  # the link queues


# -- cpu exhaustion ---------------------------------------------------------------------------


def test_cpu_exhaustion_multiplies_service_time_and_mm1_latency_follows_the_new_rho() -> None:
    lam, mean_s, factor = 4.0, 0.1, 1.5
    topo = topology(lam, entry="b", b=svc(exp(mean_s), workers=1))
    fault = {"kind": "cpu_exhaustion", "target": "b", "factor": factor}
    base = traced(Simulation(topo, scenario(2000, warmup=50), trace_sample=1.0))
    hit = traced(Simulation(topo, scenario(2000, fault, warmup=50), trace_sample=1.0))
    for df, s in ((base, mean_s), (hit, mean_s * factor)):
        lat = df[(df["start"] >= 50) & (df["outcome"] == "OK")]["latency"].to_numpy()
        # M/M/1 sojourn S / (1 - rho); batches of ~400 requests (100 s) against a
        # relaxation time of a few seconds are nearly independent
        theory = s / (1 - lam * s)
        mean, se = batch_means(lat)
        assert mean == pytest.approx(theory, abs=Z * se)
    u_base = Simulation(topo, scenario(2000)).run().summary["services"]["b"]["utilization"]
    u_hit = Simulation(topo, scenario(2000, fault)).run().summary["services"]["b"]["utilization"]
    assert u_hit / u_base == pytest.approx(factor, rel=0.02)  # same draws, 1.5x as long


def test_cpu_exhaustion_on_a_host_slows_exactly_the_services_placed_there() -> None:
    topo = Topology.from_dict(
        {
            "name": "host",
            "hosts": {"h": {"cores": 64}},
            "services": {
                "a": svc(0.001, calls=[{"to": "b"}, {"to": "c"}]),
                "b": svc(0.01, host="h"),
                "c": svc(0.01),
            },
            "workload": [{"entry": "a", "rate": 20.0}],
        }
    )
    fault = {"kind": "cpu_exhaustion", "target": "host:h", "start": 0, "factor": 3.0}
    s = Simulation(topo, scenario(50, fault)).run().summary
    # constant times, idle cores: latency is service time exactly
    assert s["services"]["b"]["latency"]["mean"] == pytest.approx(0.03, rel=1e-6)
    assert s["services"]["c"]["latency"]["mean"] == pytest.approx(0.01, rel=1e-6)


# -- memory leak ------------------------------------------------------------------------------

LEAK = {
    "kind": "memory_leak",
    "target": "b",
    "start": 20,
    "duration": 130,
    "growth_mb_per_s": 10.0,
    "limit_mb": 512.0,
    "baseline_mb": 128.0,
    "restart_time": 5.0,
    "gc_slowdown": 1.0,
}


def _leak_topology() -> Topology:
    # b: one replica, idle workers, constant 10 ms: latency is the (slowed) service time
    return topology(20.0, entry="b", b=svc(const(0.01), workers=10))


def test_memory_leak_kills_at_limit_minus_baseline_over_growth_and_restarts() -> None:
    res = Simulation(_leak_topology(), scenario(200, LEAK)).run()
    kills = [f for f in res.summary["faults"] if f["kind"] == "oom_kill"]
    to_limit = (LEAK["limit_mb"] - LEAK["baseline_mb"]) / LEAK["growth_mb_per_s"]  # 38.4 s
    expected, t = [], LEAK["start"]
    while t + to_limit < LEAK["start"] + LEAK["duration"]:
        t += to_limit
        expected.append(t)
        t += LEAK["restart_time"]  # the leak starts again from baseline after the restart
    assert expected == pytest.approx([58.4, 101.8, 145.2])
    assert [k["start"] for k in kills] == pytest.approx(expected)
    assert [k["end"] - k["start"] for k in kills] == pytest.approx([5.0] * len(expected))
    down = series(res, "entry", "b", "failures", "SERVICE_DOWN")
    ok = series(res, "entry", "b", "requests", "succeeded")
    for k in expected:
        lo, hi = math.floor(k), math.ceil(k + LEAK["restart_time"])
        assert (between(down, lo + 1, hi - 1) > 0).all()
        assert between(ok, lo + 1, hi - 1).sum() == 0
    dead = np.zeros(len(down), dtype=bool)
    for k in expected:
        dead |= (down.index >= math.floor(k)) & (down.index < math.ceil(k + 5))
    assert down[~dead].sum() == 0
    assert set(res.summary["failures"]) == {"SERVICE_DOWN"}
    base = Simulation(_leak_topology(), scenario(200)).run().summary
    assert base["failed"] == 0


def test_memory_leak_slows_processing_by_gc_before_the_kill() -> None:
    sim = Simulation(_leak_topology(), scenario(200, LEAK))
    sim.step(20)
    early = sim.step(1)["entries"]["b"]["latency"]["mean"]  # [20, 21): ~25% of the limit
    sim.step(57 - sim.now)
    late = sim.step(1)["entries"]["b"]["latency"]["mean"]  # [57, 58): ~98%

    def slowdown(t: float) -> float:
        used = LEAK["baseline_mb"] + LEAK["growth_mb_per_s"] * (t - LEAK["start"])
        return 1 + LEAK["gc_slowdown"] * (used / LEAK["limit_mb"]) ** 2

    # a request's time is fixed when it begins; averaged over a 1 s window the factor moves
    # by < 4%, and the window mean lies between its ends
    assert slowdown(20) * 0.01 * 0.999 <= early <= slowdown(21) * 0.01 * 1.001
    assert slowdown(56.99) * 0.01 * 0.999 <= late <= slowdown(58) * 0.01 * 1.001
    assert late > 1.8 * 0.01


# -- pool exhaustion --------------------------------------------------------------------------


def test_pool_exhaustion_removes_a_fraction_of_workers_and_latency_follows_mmc() -> None:
    lam, mu, workers, fraction = 12.0, 10.0, 4, 0.5
    topo = topology(lam, entry="b", b=svc(exp(1 / mu), workers=workers))
    fault = {"kind": "pool_exhaustion", "target": "b", "fraction": fraction}
    sim = Simulation(topo, scenario(2000, fault, warmup=50), trace_sample=1.0)
    sim.step(1)
    assert sim.state()["services"]["b"]["capacity"] == workers // 2
    df = traced(sim)
    lat = df[(df["start"] >= 50) & (df["outcome"] == "OK")]["latency"].to_numpy()
    mean, se = batch_means(lat)
    assert mean == pytest.approx(mmc_mean_sojourn(lam, mu, 2), abs=Z * se)
    assert mean > 1.3 * mmc_mean_sojourn(lam, mu, workers)
    s_hit = sim.results().summary["services"]["b"]
    s_base = Simulation(topo, scenario(2000, warmup=50)).run().summary["services"]["b"]
    # utilisation is over the workers left: the same work on half of them
    assert s_hit["utilization"] / s_base["utilization"] == pytest.approx(2.0, rel=0.03)


def test_pool_exhaustion_lasts_only_its_window() -> None:
    topo = topology(12.0, entry="b", b=svc(exp(0.1), workers=4))
    fault = {"kind": "pool_exhaustion", "target": "b", "fraction": 0.5, "start": 10, "duration": 20}
    sim = Simulation(topo, scenario(50, fault))
    capacity = []
    for t in (5, 15, 25, 35):
        sim.run(until=t)
        capacity.append(sim.state()["services"]["b"]["capacity"])
    assert capacity == [4, 2, 2, 4]


# -- data corruption --------------------------------------------------------------------------


@pytest.mark.parametrize("detection", [0.0, 0.5, 1.0])
def test_corruption_passes_each_consumer_undetected_with_probability_one_minus_d(
    detection: float,
) -> None:
    p = 0.3
    fault = {"kind": "data_corruption", "target": "b", "probability": p, "detection": detection}
    s = Simulation(chain(40.0), scenario(200, fault)).run().summary
    n = s["requests"]
    silent = p * (1 - detection)
    caught = p * detection
    assert s["corrupted"] / n == pytest.approx(silent, abs=binomial_tol(silent, n))
    assert s["failures"].get("CORRUPTED", 0) / n == pytest.approx(
        caught, abs=binomial_tol(caught, n)
    )
    if detection == 0.0:
        assert "CORRUPTED" not in s["failures"]
    if detection == 1.0:
        assert s["corrupted"] == 0
    # corrupted answers count as successes at the entry
    assert s["succeeded"] + s["failed"] + s["in_flight"] == n
    assert s["succeeded"] >= s["corrupted"]


def test_corruption_two_consumers_deep_slips_through_with_one_minus_d_squared() -> None:
    p, d = 0.4, 0.5
    topo = topology(
        40.0,
        a=svc(0.001, calls=[{"to": "b"}]),
        b=svc(0.001, calls=[{"to": "c"}]),
        c=svc(exp(0.01)),
    )
    fault = {"kind": "data_corruption", "target": "c", "probability": p, "detection": d}
    s = Simulation(topo, scenario(200, fault)).run().summary
    n = s["requests"]
    silent = p * (1 - d) ** 2
    caught = p * (1 - (1 - d) ** 2)
    assert s["corrupted"] / n == pytest.approx(silent, abs=binomial_tol(silent, n))
    assert s["failures"]["CORRUPTED"] / n == pytest.approx(caught, abs=binomial_tol(caught, n))
    # b caught its share (p d) and a the rest of the caught ones (p (1 - d) d)
    b_caught = s["services"]["b"]["failures"]["CORRUPTED"]
    nb = s["services"]["b"]["arrivals"]
    assert b_caught / nb == pytest.approx(p * d, abs=binomial_tol(p * d, nb))


def test_corruption_is_counted_only_inside_the_fault_window() -> None:
    fault = {
        "kind": "data_corruption",
        "target": "b",
        "probability": 0.5,
        "detection": 0.0,
        "start": 50,
        "duration": 50,
    }
    res = Simulation(chain(20.0), scenario(150, fault)).run()
    bad = series(res, "entry", "a", "requests", "corrupted")
    assert between(bad, 0, 50).sum() == 0
    assert between(bad, 101, 150).sum() == 0
    assert between(bad, 50, 100).sum() > 300  # ~500 expected


# -- traffic: surge and attack ----------------------------------------------------------------


def test_traffic_surge_adds_user_requests_during_its_window() -> None:
    extra = 10.0
    fault = {"kind": "traffic_surge", "target": "a", "start": 100, "duration": 100, "rate": extra}
    base, hit = pair(chain(10.0), 300, fault)
    rb, rh = base.run(), hit.run()
    # same seed: the regular arrivals are identical, the surge adds Poisson(1000) requests
    diff = rh.summary["requests"] - rb.summary["requests"]
    assert diff == pytest.approx(extra * 100, abs=Z * math.sqrt(extra * 100))
    arr_b = series(rb, "entry", "a", "requests", "arrivals")
    arr_h = series(rh, "entry", "a", "requests", "arrivals")
    assert (between(arr_h, 0, 100) == between(arr_b, 0, 100)).all()
    assert (between(arr_h, 200, 300) == between(arr_b, 200, 300)).all()
    assert between(arr_h - arr_b, 100, 200).sum() == diff
    assert rh.summary["attack"] == {}
    # surge requests go all the way (bar one still in a's 1 ms at the end)
    assert rh.summary["requests"] - 1 <= rh.summary["services"]["b"]["arrivals"]
    assert rh.summary["services"]["b"]["arrivals"] <= rh.summary["requests"]


def test_attack_requests_are_reported_apart_yet_load_the_system() -> None:
    rate, cost = 10.0, 2.0
    topo = chain(10.0, svc(exp(0.05), workers=2))  # users alone: b 25% busy
    fault = {
        "kind": "attack",
        "target": "a",
        "start": 100,
        "duration": 100,
        "rate": rate,
        "cost": cost,
    }
    base, hit = pair(topo, 300, fault)
    b0, b1, _ = stretches(base, 100, 200, 300)
    h0, h1, _ = stretches(hit, 100, 200, 300)
    sb, sh = base.results().summary, hit.results().summary
    # users' figures count users only: the same requests as without the attack
    assert sh["requests"] == sb["requests"]
    assert sh["services"]["b"]["arrivals"] == sb["services"]["b"]["arrivals"]
    attack = sh["attack"]["a"]
    assert attack["requests"] == pytest.approx(rate * 100, abs=Z * math.sqrt(rate * 100))
    assert sb["attack"] == {}
    # yet the attack costs b (each attack request cost x the work): 25% -> 75% busy
    assert h1["services"]["b"]["utilization"] > b1["services"]["b"]["utilization"] + 0.35
    assert h1["entries"]["a"]["latency"]["mean"] > 1.5 * b1["entries"]["a"]["latency"]["mean"]
    assert h0["entries"]["a"] == b0["entries"]["a"]
    assert h1["entries"]["a"]["arrivals"] == b1["entries"]["a"]["arrivals"]


# -- sampled faults ---------------------------------------------------------------------------

SAMPLED = {
    "kind": "error_rate",
    "target": "b",
    "start": 50,
    "duration": 200,
    "probability": 0.4,
    "sample": {
        "interval": exp(20.0),
        "duration": exp(5.0),
        "intensity": {"dist": "uniform", "low": 0.5, "high": 1.5},
    },
}


def _sampled_log(seed: int) -> list[dict[str, Any]]:
    return Simulation(chain(20.0), scenario(300, SAMPLED, seed=seed)).run().summary["faults"]


def test_sampled_fault_windows_repeat_with_the_seed_and_change_with_another() -> None:
    a, b, c = _sampled_log(1), _sampled_log(1), _sampled_log(2)
    assert a == b
    assert len(a) >= 3
    assert [(w["start"], w["end"]) for w in a] != [(w["start"], w["end"]) for w in c]


def test_sampled_fault_windows_fall_inside_the_fault_window() -> None:
    for seed in range(1, 4):
        for w in _sampled_log(seed):
            assert 50 <= w["start"] < w["end"] <= 250


def test_sampled_fault_intensity_is_scaled_and_applied_in_the_engine() -> None:
    scen = scenario(300, SAMPLED, seed=3)
    windows = fault_windows(scen)
    ps = [w.fault.probability for w in windows]  # type: ignore[union-attr]
    assert all(0.2 <= p <= 0.6 for p in ps)
    assert len(set(ps)) == len(ps)  # each occurrence drew its own scale
    res = Simulation(chain(20.0), scen).run()
    errors = series(res, "entry", "a", "failures", "ERROR")
    inside = np.zeros(len(errors), dtype=bool)
    for w in windows:
        inside |= (errors.index >= math.floor(w.start)) & (errors.index < math.ceil(w.end))
    assert errors[~inside].sum() == 0
    # errors in an occurrence are Poisson(lambda * length * p): thinned Poisson arrivals
    expected = sum(20.0 * (w.end - w.start) * p for w, p in zip(windows, ps, strict=True))
    assert errors.sum() == pytest.approx(expected, abs=Z * math.sqrt(expected))


# -- fault_windows ----------------------------------------------------------------------------


def _windows(
    *faults: dict[str, Any], duration: float = 100, seed: int = 1, horizon: float | None = None
) -> list[FaultWindow]:
    return fault_windows(scenario(duration, *faults, seed=seed), horizon)


def test_fixed_fault_window_is_start_to_start_plus_duration() -> None:
    (w,) = _windows({"kind": "outage", "target": "b", "start": 10, "duration": 5})
    assert (w.index, w.start, w.end) == (0, 10, 15)


def test_fault_without_duration_lasts_to_the_end_or_horizon() -> None:
    f = {"kind": "outage", "target": "b", "start": 10}
    assert [(w.start, w.end) for w in _windows(f)] == [(10, 100)]
    assert [(w.start, w.end) for w in _windows(f, horizon=40)] == [(10, 40)]


def test_fault_windows_are_clipped_to_the_run_and_dropped_beyond_it() -> None:
    late = {"kind": "outage", "target": "b", "start": 90, "duration": 50}
    never = {"kind": "outage", "target": "b", "start": 120, "duration": 5}
    assert [(w.start, w.end) for w in _windows(late, never)] == [(90, 100)]


def test_fault_windows_are_sorted_by_start_and_keep_their_fault_index() -> None:
    ws = _windows(
        {"kind": "outage", "target": "b", "start": 50, "duration": 5},
        {"kind": "outage", "target": "c", "start": 10, "duration": 5},
    )
    assert [(w.index, w.start) for w in ws] == [(1, 10), (0, 50)]


def test_sampled_windows_are_disjoint_ordered_and_inside_the_fault_window() -> None:
    ws = _windows(SAMPLED, duration=300, seed=9)
    assert len(ws) >= 3
    for w in ws:
        assert 50 <= w.start < w.end <= 250
    for prev, nxt in itertools.pairwise(ws):
        assert prev.end <= nxt.start


def test_sampling_seed_overrides_the_scenario_seed() -> None:
    own = {**SAMPLED, "sample": {**SAMPLED["sample"], "seed": 42}}
    a = [(w.start, w.end) for w in _windows(own, duration=300, seed=1)]
    b = [(w.start, w.end) for w in _windows(own, duration=300, seed=2)]
    assert a == b
    c = [(w.start, w.end) for w in _windows(SAMPLED, duration=300, seed=1)]
    d = [(w.start, w.end) for w in _windows(SAMPLED, duration=300, seed=2)]
    assert c != d


def test_sampled_windows_statistics_follow_their_distributions() -> None:
    f = {
        **SAMPLED,
        "start": 0,
        "duration": 20000,
        "sample": {"interval": exp(20.0), "duration": const(5.0)},
    }
    ws = _windows(f, duration=20000, seed=4)
    # a renewal process: each cycle is an Exp(20) gap then 5 s on; ~800 cycles
    assert all(w.end - w.start == pytest.approx(5.0) for w in ws[:-1])
    gaps = np.array([b.start - a.end for a, b in itertools.pairwise(ws)])
    n = len(gaps)
    assert gaps.mean() == pytest.approx(20.0, abs=Z * 20.0 / math.sqrt(n))
    assert len(ws) == pytest.approx(20000 / 25, rel=0.15)


def test_scale_fault_caps_probabilities_keeps_cpu_factor_at_least_one_and_scales_delay() -> None:
    scen = scenario(
        100,
        {"kind": "error_rate", "target": "b", "probability": 0.6},
        {"kind": "cpu_exhaustion", "target": "b", "factor": 2.0},
        {"kind": "latency", "target": "b", "delay": const(0.2)},
        {"kind": "pool_exhaustion", "target": "b", "fraction": 0.5},
        {"kind": "outage", "target": "b"},
    )
    err, cpu, lat, pool, out = scen.faults
    assert scale_fault(err, 2.0).probability == 1.0  # type: ignore[union-attr]
    assert scale_fault(err, 0.5).probability == pytest.approx(0.3)  # type: ignore[union-attr]
    assert scale_fault(cpu, 0.25).factor == 1.0  # type: ignore[union-attr]
    assert scale_fault(cpu, 1.5).factor == pytest.approx(3.0)  # type: ignore[union-attr]
    assert scale_fault(lat, 3.0).delay.expected() == pytest.approx(0.6)  # type: ignore[union-attr]
    assert scale_fault(pool, 4.0).fraction == 1.0  # type: ignore[union-attr]
    assert scale_fault(out, 3.0) is out  # no intensity to scale
    assert scale_fault(err, 1.0) is err
