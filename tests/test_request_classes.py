"""Request classes: an entry's mix splits its arrivals among its service's operations, each
class calls its own callee operations with its own network times, and both engines agree."""

from __future__ import annotations

from typing import Any

import pytest

from twin.errors import InputError
from twin.scenario import Scenario
from twin.sim.engine import Simulation
from twin.sim.fluid import FluidSimulation
from twin.topology import Topology

SLOW, FAST, NET = 0.05, 0.002, 0.1


def two_classes(mix: dict[str, float] | None = None, **entry: Any) -> dict[str, Any]:
    """Class x calls b:slow; class y calls b:fast over a call with its own 0.1 s latency."""
    const = {"dist": "constant"}
    return {
        "name": "classes",
        "services": {
            "a": {
                "workers": 50,
                "operations": {
                    "x": {"service_time": const | {"mean": 0.001}, "calls": [{"to": "b:slow"}]},
                    "y": {
                        "service_time": const | {"mean": 0.001},
                        "calls": [{"to": "b:fast", "latency": const | {"mean": NET}}],
                    },
                },
            },
            "b": {
                "workers": 50,
                "operations": {
                    "slow": {"service_time": const | {"mean": SLOW}},
                    "fast": {"service_time": const | {"mean": FAST}},
                },
            },
        },
        "workload": [{"entry": "a", "rate": 20.0, "mix": mix or {"x": 0.25, "y": 0.75}} | entry],
    }


def test_each_class_reaches_its_own_callee_operation_and_the_entry_mean_is_the_mixture() -> None:
    topo = Topology.model_validate(two_classes())
    s = Simulation(topo, Scenario(duration=200, warmup=10)).run().summary
    x, y = 0.001 + SLOW, 0.001 + NET + FAST
    # constant times: the only randomness is the class draw, so the mean is the mixture's
    assert s.entries["a"].latency.mean == pytest.approx(0.25 * x + 0.75 * y, rel=0.02)
    assert s.entries["a"].latency.p50 == pytest.approx(y, rel=0.01)


def test_the_mix_shares_the_arrivals_within_sampling_error() -> None:
    topo = Topology.model_validate(two_classes({"x": 0.3, "y": 0.7}))
    res = Simulation(topo, Scenario(duration=300, warmup=0)).run()
    # b's busy time tells how many calls each operation got: n_x * SLOW + n_y * FAST
    total = res.summary.entries["a"].requests
    busy = res.summary.services["b"].utilization * 50 * 300
    n_x = (busy - total * FAST) / (SLOW - FAST)
    sd = (total * 0.3 * 0.7) ** 0.5
    assert abs(n_x - 0.3 * total) < 4 * sd + 2


def test_an_entry_without_a_mix_simulates_as_before_and_draws_no_class() -> None:
    one = two_classes()
    one["workload"] = [{"entry": "a:x", "rate": 20.0}]
    s = Simulation(Topology.model_validate(one), Scenario(duration=50, warmup=5)).run().summary
    assert s.entries["a:x"].latency.mean == pytest.approx(0.001 + SLOW, rel=1e-6)


def test_the_fluid_engine_splits_the_entry_by_the_mix_and_uses_each_calls_latency() -> None:
    topo = Topology.model_validate(two_classes())
    st = FluidSimulation(topo, Scenario(duration=60)).step(30.0)
    x, y = 0.001 + SLOW, 0.001 + NET + FAST
    assert st["entries"]["a"]["latency"]["mean"] == pytest.approx(0.25 * x + 0.75 * y, rel=0.01)
    # the mixture's p99 is the slower class's (75% of requests are at y)
    assert st["entries"]["a"]["latency"]["p99"] == pytest.approx(y, rel=0.01)


def test_the_fluid_engine_counts_an_edges_link_latency() -> None:
    doc = two_classes()
    doc["workload"] = [{"entry": "a:x", "rate": 5.0}]
    doc["network"] = {"links": {"a->b": {"latency": {"dist": "constant", "mean": 0.2}}}}
    st = FluidSimulation(Topology.model_validate(doc), Scenario(duration=60)).step(30.0)
    assert st["entries"]["a:x"]["latency"]["mean"] == pytest.approx(0.001 + 0.2 + SLOW, rel=0.01)


def test_traffic_equations_split_the_entry_rate_by_the_mix() -> None:
    rates = Topology.model_validate(two_classes()).operation_rates()
    assert rates["a:x"] == pytest.approx(5.0)
    assert rates["a:y"] == pytest.approx(15.0)
    assert rates["b:slow"] == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mix": {"x": 0.5, "nope": 0.5}}, "workload[0].mix.nope: service 'a' has no operation"),
        ({"mix": {"x": 0.5, "y": 0.2}}, "workload[0].mix: shares sum to 0.7"),
        ({"entry": "a:x"}, "workload[0].entry: with a mix, name the service only"),
    ],
)
def test_a_bad_mix_is_one_line_naming_its_place(change: dict[str, Any], message: str) -> None:
    doc = two_classes()
    doc["workload"][0] |= change
    with pytest.raises(InputError) as err:
        Topology.from_dict(doc)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
