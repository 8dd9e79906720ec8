"""CPU limits as the kernel's CFS bandwidth control enforces them, against theory.

A replica with limit L and period P may use Q = L x P CPU-seconds per period; its workers
run at once and spend Q together; spent, they wait for the next period. A job of work c that
arrives alone, s seconds before its period ends, with the quota whole:

- c <= min(Q, s): done after c;
- s >= Q: it runs Q, waits s - Q, then each further period gives Q after a wait of P - Q;
- s < Q: the period ends first (no wait), then as above from the next period.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from twin.bundled import bundled_topology_path
from twin.errors import InputError
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.fluid import FluidSimulation, throttle_delay
from twin.topology import Topology

P = 0.1


def topo(
    limit: float | None,
    rate: float,
    *,
    workers: int = 1,
    dist: str = "constant",
    work: float = 0.05,
    queue_limit: int | None = None,
    host_cores: int | None = None,
) -> Topology:
    svc: dict[str, Any] = {
        "workers": workers,
        "operations": {"default": {"service_time": {"dist": dist, "mean": work}}},
    }
    if limit is not None:
        svc["cpu_limit"] = limit
    if queue_limit is not None:
        svc["queue_limit"] = queue_limit
    doc: dict[str, Any] = {
        "name": "q",
        "services": {"a": svc},
        "workload": [{"entry": "a", "rate": rate}],
    }
    if host_cores is not None:
        doc["hosts"] = {"h": {"cores": host_cores}}
        svc["host"] = "h"
    return Topology.from_dict(doc)


def alone(work: float, quota: float, period: float, s: float) -> float:
    """Response time of a lone job (the cases of the module docstring)."""
    first = min(quota, s)
    rest = work - first
    if rest <= 1e-15:
        return work
    k = math.ceil(rest / quota - 1e-12)  # further periods that give it quota
    return s + (k - 1) * period + rest - (k - 1) * quota


def test_a_lone_request_completes_when_the_quota_periods_say() -> None:
    # c = 0.05, L = 0.25: Q = 0.025, two periods' quota per request
    sim = Simulation(topo(0.25, 0.05), Scenario(duration=20000, warmup=0, seed=3), trace_sample=1)
    sim.run()
    rows = sorted(sim.trace_rows, key=lambda r: r[2])
    checked = 0
    last_end = -1.0
    for _, _, t0, t1, reason, _ in rows:
        assert reason == "OK"
        period_start = math.floor(t0 / P) * P
        if last_end < period_start - 1e-9:  # nothing else ran in its period: quota whole
            s = period_start + P - t0
            assert t1 - t0 == pytest.approx(alone(0.05, 0.025, P, s), abs=1e-9)
            checked += 1
        last_end = max(last_end, t1)
    assert checked > 900


def test_mean_response_at_low_load_is_the_phase_average_of_the_throttled_time() -> None:
    # uniform phase: s in [Q, P] gives c + (s - Q) (mean 0.0875), s < Q gives 0.125
    expected = 0.75 * 0.0875 + 0.25 * 0.125
    # so rare that two requests almost never meet (a meeting only lengthens responses)
    t = topo(0.25, 0.01)
    sc = Scenario(duration=200_000, warmup=0, seed=5, window=1000)
    s = Simulation(t, sc).run().summary
    assert s.latency.mean == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("work", [0.01, 0.05, 0.0837, 0.2])
def test_fluid_throttle_delay_is_the_phase_average_of_the_lone_job(work: float) -> None:
    quota = 0.025
    n = 20000
    numeric = sum(alone(work, quota, P, P * (i + 0.5) / n) - work for i in range(n)) / n
    assert throttle_delay(work, quota, P) == pytest.approx(numeric, abs=1e-5)


@pytest.mark.parametrize("workers", [1, 4])
def test_throughput_caps_at_limit_over_work(workers: int) -> None:
    t = topo(0.25, 10.0, workers=workers, dist="exponential", queue_limit=20)
    s = Simulation(t, Scenario(duration=2000, warmup=100, seed=1)).run().summary
    assert s.throughput == pytest.approx(0.25 / 0.05, rel=0.02)


def test_cpu_used_over_completions_is_the_work_per_request() -> None:
    """Utilisation law: CPU-seconds used / requests served = CPU-seconds per request."""
    sim = Simulation(
        topo(0.25, 3.0, workers=2, dist="exponential"), Scenario(duration=3000, seed=2)
    )
    s = sim.run().summary
    served = s.services["a"].completions
    assert sim.services["a"].cpu_seconds / served == pytest.approx(0.05, rel=0.03)


def test_a_topology_without_limits_runs_bit_for_bit_as_before() -> None:
    # figures of the engine before CPU limits existed, same documents and seed
    t = Topology.load(bundled_topology_path("online-boutique"))
    sc = Scenario.model_validate(
        {
            "duration": 120,
            "warmup": 10,
            "seed": 7,
            "faults": [
                {
                    "kind": "cpu_exhaustion",
                    "target": "currencyservice",
                    "start": 30,
                    "duration": 30,
                    "factor": 3.0,
                }
            ],
        }
    )
    sim = Simulation(t, sc)
    s = sim.run().summary
    assert (s.requests, s.succeeded, sim.events) == (6480, 6479, 185636)
    assert s.latency.mean == 0.39091628974529213
    assert s.latency.p99 == 2.968246743463242


def test_a_limit_never_spent_changes_no_response_time() -> None:
    """Two workers can use at most 2 cores: a limit of 2 is never spent."""
    runs = []
    for limit in (None, 2.0):
        sim = Simulation(
            topo(limit, 20.0, workers=2, dist="exponential", work=0.05),
            Scenario(duration=300, seed=4),
            trace_sample=1,
        )
        sim.run()
        runs.append(sorted(sim.trace_rows, key=lambda r: r[2]))
    assert len(runs[0]) == len(runs[1])
    for a, b in zip(*runs, strict=True):
        assert a[3] == pytest.approx(b[3], abs=1e-9)


def test_a_hog_taking_a_share_of_the_quota_lowers_capacity_by_that_share() -> None:
    t = topo(0.25, 10.0, workers=2, dist="exponential", queue_limit=20)
    sc = Scenario.model_validate(
        {
            "duration": 2000,
            "warmup": 100,
            "seed": 1,
            "faults": [{"kind": "cpu_exhaustion", "target": "a", "quota_share": 0.6}],
        }
    )
    s = Simulation(t, sc).run().summary
    assert s.throughput == pytest.approx((1 - 0.6) * 0.25 / 0.05, rel=0.03)


def test_contention_taking_host_cores_lowers_capacity_to_the_cores_left() -> None:
    t = topo(None, 100.0, workers=4, dist="exponential", queue_limit=20, host_cores=4)
    sc = Scenario.model_validate(
        {
            "duration": 500,
            "warmup": 50,
            "seed": 1,
            "faults": [{"kind": "cpu_exhaustion", "target": "host:h", "cores": 3}],
        }
    )
    s = Simulation(t, sc).run().summary
    assert s.throughput == pytest.approx(1 / 0.05, rel=0.03)


def test_cores_given_back_when_contention_ends_restore_capacity() -> None:
    t = topo(None, 100.0, workers=4, dist="exponential", queue_limit=20, host_cores=4)
    sc = Scenario.model_validate(
        {
            "duration": 500,
            "warmup": 250,
            "seed": 1,
            "faults": [{"kind": "cpu_exhaustion", "target": "a", "cores": 3, "duration": 200}],
        }
    )
    s = Simulation(t, sc).run().summary
    assert s.throughput == pytest.approx(4 / 0.05, rel=0.03)


@pytest.mark.parametrize("workers", [1, 4])
def test_fluid_and_request_level_agree_on_the_mean_at_moderate_load(workers: int) -> None:
    t = topo(0.25, 2.5, workers=workers, dist="exponential")  # quota half used
    s = Simulation(t, Scenario(duration=6000, warmup=200, seed=2)).run().summary
    f = FluidSimulation(t, Scenario(duration=600)).step(600)
    fluid = f.entries["a"].latency.mean
    assert fluid is not None
    assert fluid == pytest.approx(s.latency.mean, rel=0.10)


def test_fluid_capacity_under_a_hog_is_what_the_hog_leaves() -> None:
    t = topo(0.25, 10.0, workers=2, dist="exponential", queue_limit=20)
    sc = Scenario.model_validate(
        {"duration": 100, "faults": [{"kind": "cpu_exhaustion", "target": "a", "quota_share": 0.6}]}
    )
    fluid = FluidSimulation(t, sc)
    fluid.step(50)  # the queue fills first
    f = fluid.step(50)
    assert f.services["a"].succeeded / 50 == pytest.approx(0.4 * 0.25 / 0.05, rel=0.02)


def test_a_replica_killed_while_throttled_conserves_requests() -> None:
    t = topo(0.1, 5.0, workers=2, dist="exponential")
    sc = Scenario.model_validate(
        {
            "duration": 60,
            "seed": 1,
            "faults": [{"kind": "outage", "target": "a", "start": 20, "duration": 5}],
        }
    )
    s = Simulation(t, sc).run().summary
    assert s.failures.get("SERVICE_DOWN", 0) > 0
    assert s.requests == s.succeeded + s.failed + s.in_flight


def test_a_cpu_limit_on_a_service_placed_on_a_host_is_refused_by_name() -> None:
    doc = topo(None, 1.0, host_cores=2).to_dict()
    doc["services"]["a"]["cpu_limit"] = 0.5
    with pytest.raises(InputError, match=r"services\.a\.cpu_limit"):
        Topology.from_dict(doc)


def test_a_quota_share_on_a_service_without_a_limit_is_refused_by_name() -> None:
    sc = Scenario.model_validate(
        {"faults": [{"kind": "cpu_exhaustion", "target": "a", "quota_share": 0.5}]}
    )
    with pytest.raises(InputError, match="quota_share"):
        Simulation(topo(None, 1.0), sc)


def test_a_quota_fault_speaks_the_capacity_slowdown_as_its_intensity() -> None:
    from twin.faults import CpuExhaustionFault

    f = CpuExhaustionFault.model_validate(
        {"kind": "cpu_exhaustion", "target": "a", "quota_share": 0.5}
    )
    assert f.intensity_of(topo(0.2, 1.0)) == pytest.approx(2.0)
    assert f.scaled(2.0).intensity_of(topo(0.2, 1.0)) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="one of"):
        CpuExhaustionFault.model_validate(
            {"kind": "cpu_exhaustion", "target": "a", "quota_share": 0.5, "factor": 2.0}
        )
