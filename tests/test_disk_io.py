"""Disk I/O: operations that read or write queue FIFO at their disk, and the disk_io fault
slows that disk; everything without I/O runs exactly as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agents.env import MitigationEnv
from agents.scenarios import FaultSpec
from twin.errors import InputError
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.fluid import FluidSimulation
from twin.topology import Topology

BANDWIDTH = 1.0e6  # bytes/s
SIZE = 50_000.0  # bytes per request: 0.05 s at full bandwidth
S = SIZE / BANDWIDTH


def station(rate: float, io: str = "constant", *, with_io: bool = True) -> Topology:
    """One service whose only work is its disk I/O (workers never the bottleneck)."""
    op: dict[str, Any] = {"service_time": 0.0}
    if with_io:
        op["io"] = {"dist": io, "mean": SIZE}
    return Topology.from_dict(
        {
            "name": "disk",
            "services": {
                "s": {"workers": 1000, "disk_bandwidth": BANDWIDTH, "operations": {"default": op}}
            },
            "workload": [{"entry": "s", "rate": rate}],
        }
    )


def mean_latency(topo: Topology, *faults: dict[str, Any], seed: int = 3) -> float:
    sc = Scenario(duration=3000, warmup=100, seed=seed, faults=list(faults))
    return float(Simulation(topo, sc).run().summary["latency"]["mean"])


def md1(rate: float, s: float) -> float:
    rho = rate * s
    return s + rho * s / (2 * (1 - rho))


def mm1(rate: float, s: float) -> float:
    return s / (1 - rate * s)


def test_a_disk_queues_like_md1_for_constant_io_and_mm1_for_exponential_io() -> None:
    assert mean_latency(station(10.0)) == pytest.approx(md1(10.0, S), rel=0.05)
    assert mean_latency(station(10.0, "exponential")) == pytest.approx(mm1(10.0, S), rel=0.08)


def test_io_adds_its_transfer_time_to_an_operation_at_light_load() -> None:
    base = mean_latency(station(1.0, with_io=False))
    assert base == 0.0
    assert mean_latency(station(1.0)) == pytest.approx(md1(1.0, S), rel=0.02)


@pytest.mark.parametrize("factor", [2.0, 3.0])
def test_a_disk_io_fault_divides_the_disk_bandwidth_by_its_factor(factor: float) -> None:
    fault = {"kind": "disk_io", "target": "s", "factor": factor}
    slowed = mean_latency(station(4.0), fault)
    assert slowed == pytest.approx(md1(4.0, S * factor), rel=0.06)
    assert slowed > mean_latency(station(4.0)) * 1.5


def test_a_host_disk_is_shared_by_the_services_placed_on_it() -> None:
    op = {"service_time": 0.0, "io": {"dist": "constant", "mean": SIZE}}
    topo = Topology.from_dict(
        {
            "name": "shared",
            "hosts": {"h": {"cores": 64, "disk_bandwidth": BANDWIDTH}},
            "services": {
                n: {"workers": 100, "host": "h", "operations": {"default": op}} for n in "ab"
            },
            "workload": [{"entry": "a", "rate": 5.0}, {"entry": "b", "rate": 5.0}],
        }
    )
    sc = Scenario(duration=3000, warmup=100, seed=4)
    lat = Simulation(topo, sc).run().summary["entries"]["a"]["latency"]["mean"]
    assert lat == pytest.approx(md1(10.0, S), rel=0.06)  # both streams on one disk


TWO = """\
name: two
services:
  a:
    workers: 2
    disk_bandwidth: 1.0e6
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        io: {dist: exponential, mean: 20000}
  b:
    workers: 2
    disk_bandwidth: 1.0e6
    operations:
      default: {service_time: {dist: exponential, mean: 0.01}}
workload:
  - {entry: a, rate: 20}
  - {entry: b, rate: 20}
"""


def _entries(topo: Topology, *faults: dict[str, Any], seed: int = 1) -> dict[str, Any]:
    sc = Scenario(duration=200, warmup=10, seed=seed, faults=list(faults))
    return dict(Simulation(topo, sc).run().summary["entries"])


def test_operations_without_io_run_exactly_as_without_disks() -> None:
    topo = Topology.from_dict(yaml.safe_load(TWO))
    data = yaml.safe_load(TWO)
    del data["services"]["a"]["operations"]["default"]["io"]
    for s in data["services"].values():
        del s["disk_bandwidth"]
    plain = Topology.from_dict(data)
    assert _entries(topo)["b"] == _entries(plain)["b"]
    # a disk fault on a service without I/O changes nothing at all
    slowed = _entries(topo, {"kind": "disk_io", "target": "b", "factor": 8.0})
    assert slowed == _entries(topo)


def test_disk_runs_repeat_with_the_seed_and_change_with_another() -> None:
    topo = Topology.from_dict(yaml.safe_load(TWO))
    fault = {"kind": "disk_io", "target": "a", "factor": 3.0, "start": 50, "duration": 60}
    assert _entries(topo, fault) == _entries(topo, fault)
    assert _entries(topo, fault)["a"] != _entries(topo, fault, seed=2)["a"]


def test_the_fluid_engine_adds_the_disk_wait_to_the_operation() -> None:
    for io, theory in (("constant", md1), ("exponential", mm1)):
        fluid = FluidSimulation(station(10.0, io), Scenario(duration=100))
        lat = fluid.step(100)["entries"]["s"]["latency"]["mean"]
        assert lat == pytest.approx(theory(10.0, S), rel=0.02)
    fault = {"kind": "disk_io", "target": "s", "factor": 2.0}
    fluid = FluidSimulation(station(5.0), Scenario(duration=100, faults=[fault]))
    assert fluid.step(100)["entries"]["s"]["latency"]["mean"] == pytest.approx(
        md1(5.0, 2 * S), rel=0.02
    )


def test_io_needs_a_disk_and_a_disk_fault_needs_a_disk_somewhere() -> None:
    data = yaml.safe_load(TWO)
    del data["services"]["a"]["disk_bandwidth"]
    with pytest.raises(InputError, match="I/O needs a disk"):
        Topology.from_dict(data)
    plain = Topology.from_dict(
        {
            "name": "p",
            "services": {"s": {"operations": {"default": {"service_time": 0.01}}}},
            "workload": [{"entry": "s", "rate": 1}],
        }
    )
    sc = Scenario(faults=[{"kind": "disk_io", "target": "s", "factor": 2.0}])
    with pytest.raises(Exception, match="needs a disk"):
        sc.check_against(plain)


def test_a_disk_fault_flows_through_the_agents_env_on_a_topology_with_disks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO)
    env = MitigationEnv(topology=str(path), episode_seconds=30.0, interval=10.0)
    assert "disk_io" in env.catalogue.kinds
    spec = FaultSpec("disk_io", "a", 0.0, 30.0, 8.0)
    env.reset(seed=1, options={"fault": spec})
    obs, reward, *_ = env.step(env.last_action)
    assert np.isfinite(reward) and np.all(np.isfinite(obs))
    assert isinstance(env.sim, Simulation)
    assert [f["kind"] for f in env.sim.faults.log] == ["disk_io"]
