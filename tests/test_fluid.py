"""The aggregated (fluid) twin against queueing theory, the request-level engine and its
own invariants; and the environment built on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.policy import Policy
from twin.scenario import Scenario
from twin.sim.engine import Simulation
from twin.sim.fluid import FluidSimulation, erlang_c
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
OB = Topology.load(ROOT / "topologies" / "online-boutique.yaml")


def one_queue(workers: int, rate: float, mean: float) -> Topology:
    return Topology.model_validate(
        {
            "name": "mmc",
            "services": {
                "s": {
                    "workers": workers,
                    "operations": {
                        "default": {"service_time": {"dist": "exponential", "mean": mean}}
                    },
                }
            },
            "workload": [{"entry": "s", "rate": rate}],
        }
    )


def scenario(duration: float = 60.0, faults: list[dict[str, object]] | None = None) -> Scenario:
    return Scenario.model_validate({"duration": duration, "window": 5, "faults": faults or []})


def test_erlang_c_matches_known_values() -> None:
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    # M/M/2 with a = 1: P(wait) = a^2/(2-a) / (1 + a + a^2/(2-a)) = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


@pytest.mark.parametrize(("workers", "rho"), [(1, 0.5), (1, 0.8), (3, 0.7)])
def test_mean_latency_is_the_mmc_result(workers: int, rho: float) -> None:
    mean, c = 0.01, workers
    rate = rho * c / mean
    sim = FluidSimulation(one_queue(c, rate, mean), scenario())
    st = sim.step(30.0)
    wq = erlang_c(c, rate * mean) / (c / mean - rate)
    assert st["entries"]["s"]["latency"]["mean"] == pytest.approx(wq + mean, rel=1e-9)
    assert st["services"]["s"]["utilization"] == pytest.approx(rho, rel=1e-9)


def test_requests_are_conserved_at_the_entry() -> None:
    sim = FluidSimulation(
        OB,
        scenario(
            faults=[
                {
                    "kind": "error_rate",
                    "target": "cartservice",
                    "start": 10,
                    "duration": 20,
                    "probability": 0.5,
                }
            ]
        ),
    )
    for _ in range(6):
        e = sim.step(10.0)["entries"]["frontend"]
        assert e["succeeded"] + e["failed"] == pytest.approx(60.0 * 10.0)


def test_utilisation_per_service_is_within_ten_points_of_the_engine() -> None:
    des = Simulation(OB, scenario(), seed=4, series="none")
    des.step(10.0)
    d = des.step(50.0)["services"]
    fluid = FluidSimulation(OB, scenario())
    fluid.step(10.0)
    f = fluid.step(50.0)["services"]
    for name in OB.services:
        assert f[name]["utilization"] == pytest.approx(d[name]["utilization"], abs=0.10), name


def test_an_outage_on_the_critical_path_fails_the_entry_as_in_the_engine() -> None:
    faults = [{"kind": "outage", "target": "currencyservice", "start": 20, "duration": 20}]
    for sim in (
        FluidSimulation(OB, scenario(60, faults)),
        Simulation(OB, scenario(60, faults), seed=1, series="none"),
    ):
        avail = []
        for _ in range(12):
            e = sim.step(5.0)["entries"]["frontend"]
            avail.append(e["succeeded"] / max(1.0, e["succeeded"] + e["failed"]))
        assert min(avail[:4]) > 0.95 and max(avail[5:8]) < 0.05 and min(avail[9:]) > 0.95


def test_an_overloading_surge_breaks_the_p99_slo_in_both_twins() -> None:
    faults = [
        {"kind": "traffic_surge", "target": "frontend", "start": 10, "duration": 30, "rate": 90.0}
    ]
    for sim in (
        FluidSimulation(OB, scenario(50, faults)),
        Simulation(OB, scenario(50, faults), seed=2, series="none"),
    ):
        p99 = [sim.step(5.0)["entries"]["frontend"]["latency"]["p99"] for _ in range(8)]
        assert p99[1] < 0.5 and max(p99[4:8]) > 0.5


def test_extra_replicas_lower_utilisation_and_are_counted() -> None:
    sim = FluidSimulation(OB, scenario(120))
    sim.step(10.0)
    before = sim.step(10.0)["services"]["frontend"]
    pinned = {"min": 2, "max": 2, "boot_time": 10.0, "cooldown": 0.0, "period": 5.0}
    sim.apply(Policy.model_validate({"services": {"frontend": {"autoscale": pinned}}}))
    for _ in range(4):
        after = sim.step(10.0)["services"]["frontend"]
    assert after["replicas"] == pytest.approx(2.0)
    assert after["utilization"] == pytest.approx(before["utilization"] / 2, rel=0.05)


def test_same_inputs_give_the_same_stretches() -> None:
    faults = [
        {
            "kind": "cpu_exhaustion",
            "target": "productcatalogservice",
            "start": 5,
            "duration": 20,
            "factor": 3.0,
        }
    ]
    a = [FluidSimulation(OB, scenario(40, faults)).step(40.0) for _ in range(2)]
    assert a[0] == a[1]


def test_the_environment_on_the_fluid_twin_passes_gymnasiums_checker() -> None:
    pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    from agents.env import MitigationEnv

    env = MitigationEnv(fidelity="fluid")
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and np.all((obs >= 0) & (obs <= 1))
