"""Closed-loop and mixed workloads: users who wait for their answer and think before the next
request, against queueing theory (the machine-repairman model) and the open loop."""

from __future__ import annotations

import math
from typing import Any

import pytest

from twin.errors import InputError
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.budget import estimate
from twin.sim.fluid import FluidSimulation
from twin.sim.workload import Users
from twin.topology import Topology


def machine_repairman(users: int, service: float, think: float) -> tuple[float, float]:
    """Exact throughput and mean response time of M/M/1//N, the finite-source queue (the
    machine-repairman model): one exponential server of mean ``service``, ``users`` sources
    with exponential think times of mean ``think``. With r = service / think,
    p0 = 1 / sum_{n=0..N} N! / (N - n)! r^n, X = (1 - p0) / service, R = N / X - think
    (the interactive response-time law). Kleinrock, Queueing Systems vol. 1 (1975), s. 3.10;
    Lazowska et al., Quantitative System Performance (1984), ch. 6."""
    r = service / think
    p0 = 1.0 / sum(math.perm(users, n) * r**n for n in range(users + 1))
    x = (1.0 - p0) / service
    return x, users / x - think


def closed_topology(
    users: int, service: float, think: float, *, rate: float | None = None, **entry: Any
) -> Topology:
    x, _ = machine_repairman(users, service, think)
    return Topology.from_dict(
        {
            "name": "repairman",
            "services": {
                "s": {
                    "operations": {"op": {"service_time": {"dist": "exponential", "mean": service}}}
                }
            },
            "workload": [
                {
                    "entry": "s",
                    "rate": rate if rate is not None else x,
                    "users": users,
                    "think_time": {"dist": "exponential", "mean": think},
                    **entry,
                }
            ],
        }
    )


def test_machine_repairman_mean_response_and_throughput_within_2_percent_of_exact() -> None:
    users, service, think = 10, 0.1, 1.0  # the server ~80% busy: queueing matters
    x_exact, r_exact = machine_repairman(users, service, think)
    topo = closed_topology(users, service, think)
    done = lat_sum = 0.0
    seconds = 0.0
    for seed in range(4):
        s = Simulation(topo, Scenario(duration=2600, warmup=100, seed=seed)).run().summary
        assert s.latency.mean is not None and s.throughput is not None
        done += s.succeeded
        lat_sum += s.latency.mean * s.succeeded
        seconds += s.measured_seconds
    r, x = lat_sum / done, done / seconds
    assert abs(r - r_exact) / r_exact < 0.02, (r, r_exact)
    assert abs(x - x_exact) / x_exact < 0.02, (x, x_exact)


def test_a_closed_loop_never_has_more_requests_in_flight_than_users() -> None:
    topo = closed_topology(7, 0.5, 0.2, rate=1.9)  # saturated: users queue at the server
    sim = Simulation(topo, Scenario(duration=300, seed=3))
    peak = 0
    for _ in range(300):
        sim.step(1.0)
        peak = max(peak, sim.entries["s"].inflight)
    (users,) = [src for src in sim.sources if isinstance(src, Users)]
    assert users.peak == 7  # every user waited at once, and never more
    assert peak <= 7
    assert not any(type(src).__name__ == "Source" for src in sim.sources)  # no open part


def test_closed_loop_throttles_where_the_open_loop_diverges_on_a_saturating_fault() -> None:
    users, service, think = 10, 0.1, 1.0
    x, _ = machine_repairman(users, service, think)  # 7.85/s: the server ~80% busy
    slow = Scenario.model_validate(
        {
            "duration": 400,
            "seed": 2,
            "faults": [
                {"kind": "cpu_exhaustion", "target": "s", "start": 0, "duration": 400, "factor": 2}
            ],
        }
    )
    closed = Simulation(closed_topology(users, service, think), slow).run().summary
    open_topo = Topology.from_dict(
        closed_topology(users, service, think).to_dict() | {"workload": [{"entry": "s", "rate": x}]}
    )
    opened = Simulation(open_topo, slow).run().summary
    assert closed.throughput is not None and opened.latency.p50 is not None
    assert closed.latency.p50 is not None and closed.latency.mean is not None
    # the slowed server serves 5/s: the users slow down to it, the open loop keeps sending 7.85
    assert closed.throughput < 5.0 * 1.02
    assert closed.latency.mean < users * service * 2  # never more than N in the queue
    assert closed.entries["s"].in_flight <= users
    assert opened.latency.p50 > 20 * closed.latency.p50  # a queue growing ~2.85/s for 400 s
    assert opened.entries["s"].in_flight > 500


def test_throughput_falls_when_the_service_slows() -> None:
    fast = Simulation(closed_topology(10, 0.05, 1.0), Scenario(duration=600, seed=1)).run()
    slow = Simulation(closed_topology(10, 0.2, 1.0, rate=4.0), Scenario(duration=600, seed=1)).run()
    assert fast.summary.throughput is not None and slow.summary.throughput is not None
    x_fast, _ = machine_repairman(10, 0.05, 1.0)
    x_slow, _ = machine_repairman(10, 0.2, 1.0)
    assert slow.summary.throughput < 0.6 * fast.summary.throughput
    assert slow.summary.throughput == pytest.approx(x_slow, rel=0.05)
    assert fast.summary.throughput == pytest.approx(x_fast, rel=0.05)


def test_the_mix_shares_of_a_closed_loop_are_honoured() -> None:
    topo = Topology.from_dict(
        {
            "name": "mix",
            "services": {
                "front": {
                    "workers": 100,
                    "operations": {
                        "page": {
                            "service_time": {"dist": "constant", "mean": 0.001},
                            "calls": [{"to": "a"}],
                        },
                        "cart": {
                            "service_time": {"dist": "constant", "mean": 0.001},
                            "calls": [{"to": "b"}],
                        },
                    },
                },
                "a": {
                    "workers": 100,
                    "operations": {"op": {"service_time": {"dist": "constant", "mean": 0.001}}},
                },
                "b": {
                    "workers": 100,
                    "operations": {"op": {"service_time": {"dist": "constant", "mean": 0.001}}},
                },
            },
            "workload": [
                {
                    "entry": "front",
                    "rate": 15.0,
                    "users": 20,
                    "think_time": {"dist": "exponential", "mean": 1.0},
                    "mix": {"page": 0.7, "cart": 0.3},
                }
            ],
        }
    )
    s = Simulation(topo, Scenario(duration=500, seed=4)).run().summary
    a, b = s.services["a"].arrivals, s.services["b"].arrivals
    n = a + b
    share = a / n
    assert n == s.entries["front"].requests
    assert abs(share - 0.7) < 3 * math.sqrt(0.7 * 0.3 / n)


def test_the_load_profile_multiplies_the_users_over_time() -> None:
    # a think time far above the response time: the rate follows the users, X ~ N / Z
    topo = closed_topology(20, 0.001, 1.0, rate=19.0)
    topo = Topology.from_dict(
        topo.to_dict()
        | {
            "services": {
                "s": {
                    "workers": 50,
                    "operations": {"op": {"service_time": {"dist": "constant", "mean": 0.001}}},
                }
            }
        }
    )
    profile = [
        {"at": 0, "multiplier": 1},
        {"at": 400, "multiplier": 2},
        {"at": 800, "multiplier": 0.26},
    ]
    sim = Simulation(
        topo, Scenario.model_validate({"duration": 1200, "seed": 5, "load": {"profile": profile}})
    )
    (users,) = [src for src in sim.sources if isinstance(src, Users)]
    rates, counts = [], []
    for _ in range(3):
        sim.step(50.0)  # the step's transient
        st = sim.step(350.0)
        rates.append(st.entries["s"].arrivals / 350.0)
        counts.append(users.count)
    assert counts == [20, 40, 5]  # 20 x 0.26 = 5.2 users: rounded to 5
    for rate, n in zip(rates, counts, strict=True):
        assert rate == pytest.approx(n / 1.001, rel=0.08)


def test_users_removed_by_a_load_step_leave_after_their_current_request() -> None:
    topo = closed_topology(6, 1.0, 0.01, rate=0.9)  # one slow server: 5 users wait, 1 served
    scenario = Scenario.model_validate(
        {
            "duration": 100,
            "seed": 1,
            "load": {"profile": [{"at": 0, "multiplier": 1}, {"at": 10, "multiplier": 0.5}]},
        }
    )
    sim = Simulation(topo, scenario)
    (users,) = [src for src in sim.sources if isinstance(src, Users)]
    sim.step(10.0 + 1e-9)
    assert users.count == 3
    assert users.waiting + len(users.thinking) > 3  # the leavers still wait for their answers
    sim.step(60.0)
    assert users.leaving == 0
    assert users.waiting + len(users.thinking) == 3


def test_a_mixed_entry_adds_poisson_arrivals_to_its_users() -> None:
    topo = closed_topology(10, 0.001, 2.0, rate=9.0, open_rate=4.0)
    topo = Topology.from_dict(
        topo.to_dict()
        | {
            "services": {
                "s": {
                    "workers": 50,
                    "operations": {"op": {"service_time": {"dist": "constant", "mean": 0.001}}},
                }
            }
        }
    )
    s = Simulation(topo, Scenario(duration=2000, warmup=50, seed=6)).run().summary
    assert s.throughput == pytest.approx(4.0 + 10 / 2.001, rel=0.04)


def test_same_seed_same_results_for_a_closed_loop() -> None:
    topo = closed_topology(10, 0.1, 1.0)
    a = Simulation(topo, Scenario(duration=200, seed=9)).run().summary
    b = Simulation(topo, Scenario(duration=200, seed=9)).run().summary
    assert a.model_dump(exclude={"wall_seconds"}) == b.model_dump(exclude={"wall_seconds"})


@pytest.mark.parametrize(
    ("entry", "where", "says"),
    [
        ({"users": 5}, "workload[0].think_time", "required with `users`"),
        (
            {"think_time": {"dist": "constant", "mean": 1}},
            "workload[0].think_time",
            "needs `users`",
        ),
        ({"open_rate": 1.0}, "workload[0].open_rate", "needs `users`"),
        (
            {"users": 5, "think_time": {"dist": "constant", "mean": 0}},
            "workload[0].think_time",
            "a mean above 0",
        ),
        (
            {"users": 5, "think_time": {"dist": "constant", "mean": 1}, "open_rate": 3.0},
            "workload[0].open_rate",
            "at most `rate`",
        ),
        (
            {"users": 1, "think_time": {"dist": "constant", "mean": 1}},
            "workload[0].rate",
            "users / mean think time",
        ),
    ],
)
def test_closed_fields_that_disagree_are_one_line_errors(
    entry: dict[str, Any], where: str, says: str
) -> None:
    doc = {
        "name": "bad",
        "services": {
            "s": {"operations": {"op": {"service_time": {"dist": "constant", "mean": 0.1}}}}
        },
        "workload": [{"entry": "s", "rate": 2.0, **entry}],
    }
    with pytest.raises(InputError) as err:
        Topology.from_dict(doc, source="t.yaml")
    line = str(err.value)
    assert "\n" not in line and where in line and says in line


def test_the_fluid_engine_follows_the_interactive_law_within_10_percent_of_exact() -> None:
    users, service, think = 10, 0.1, 1.0
    x_exact, _ = machine_repairman(users, service, think)
    fluid = FluidSimulation(closed_topology(users, service, think), Scenario(duration=400))
    fluid.step(100.0)
    st = fluid.step(300.0).entries["s"]
    x = st.arrivals / 300.0
    assert st.latency.mean is not None
    assert x == pytest.approx(x_exact, rel=0.10)
    assert x == pytest.approx(users / (st.latency.mean + think), rel=0.01)  # X = N / (R + Z)


def test_the_fluid_closed_loop_stays_bounded_where_the_open_loop_backlog_grows() -> None:
    users, service, think = 10, 0.1, 1.0
    slow = Scenario.model_validate(
        {
            "duration": 400,
            "faults": [
                {"kind": "cpu_exhaustion", "target": "s", "start": 0, "duration": 400, "factor": 2}
            ],
        }
    )
    closed = FluidSimulation(closed_topology(users, service, think), slow)
    closed.step(100.0)
    c = closed.step(300.0).entries["s"]
    assert c.arrivals / 300.0 < 5.0 * 1.02
    assert c.latency.mean is not None and c.latency.mean < users * service * 2


def test_the_work_estimate_bounds_a_closed_loop_by_users_over_think_time() -> None:
    topo = closed_topology(10, 0.1, 2.0, rate=4.0)
    est = estimate(topo, Scenario(duration=1000))
    assert est.entry_requests == pytest.approx(10 / 2.0 * 1000)
    run = Simulation(topo, Scenario(duration=1000, seed=1)).run().summary
    assert run.requests <= est.entry_requests
