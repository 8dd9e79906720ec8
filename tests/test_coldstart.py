"""Cold starts of a serverless function's instances, against theory.

One instance, Poisson arrivals at rate λ, keep-alive K, requests short beside the gaps: a
request starts cold when the gap since the previous one exceeds K, which has probability
exp(-λK); its latency is then the work plus the cold start c, so the mean latency is
w + c exp(-λK). Instances that are never reclaimed start cold once each.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from twin.calibrate.coldstart import ColdStartFit, fit_periods, fit_requests, with_cold_starts
from twin.calibrate.petshop import build_topology, cold_starts, node_table
from twin.calibrate.spans import COLUMNS as SPAN_COLUMNS
from twin.errors import InputError
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.budget import CallGraph
from twin.sim.fluid import FluidSimulation
from twin.topology import Topology


def doc(
    rate: float,
    *,
    cold: float | None = 0.001,
    keep_alive: float | None = 1.0,
    work: float = 1e-4,
    workers: int = 1,
    replicas: int = 1,
) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "workers": workers,
        "replicas": replicas,
        "operations": {"op": {"service_time": {"dist": "constant", "mean": work}}},
    }
    if cold is not None:
        svc["cold_start"] = {"dist": "constant", "mean": cold}
    if keep_alive is not None:
        svc["keep_alive"] = keep_alive
    return {"name": "fn", "services": {"f": svc}, "workload": [{"entry": "f", "rate": rate}]}


def topo(rate: float, **kw: Any) -> Topology:
    return Topology.from_dict(doc(rate, **kw))


@pytest.mark.parametrize(("lam", "k"), [(1.0, 1.0), (0.5, 3.0), (2.0, 0.25)])
def test_one_instance_starts_cold_with_probability_exp_minus_rate_times_keep_alive(
    lam: float, k: float
) -> None:
    sim = Simulation(topo(lam, keep_alive=k), Scenario(duration=10000 / lam, warmup=0, seed=1))
    sim.run()
    f = sim.services["f"]
    n = f.cold_starts + f.warm_starts
    share = f.cold_starts / n
    p = math.exp(-lam * k)
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n) + 0.005


def test_mean_latency_is_work_plus_cold_start_times_the_cold_share() -> None:
    lam, k, c, w = 1.0, 1.0, 0.01, 0.002
    s = (
        Simulation(
            topo(lam, keep_alive=k, cold=c, work=w), Scenario(duration=20000, warmup=100, seed=2)
        )
        .run()
        .summary
    )
    assert s.latency.mean == pytest.approx(w + c * math.exp(-lam * k), rel=0.03)


def test_instances_never_reclaimed_start_cold_once_each() -> None:
    sim = Simulation(
        topo(5.0, keep_alive=None, work=0.3, workers=8), Scenario(duration=2000, warmup=0, seed=3)
    )
    sim.run()
    f = sim.services["f"]
    assert 1 <= f.cold_starts <= 8  # one per instance the load ever needed at once
    assert f.warm_starts > 9000


def test_a_longer_keep_alive_leaves_fewer_cold_starts_down_to_the_pool_size() -> None:
    # 4 rps of 1 s work on up to 16 instances: the most recently idle instance is taken, so
    # the deepest ones (needed only at peaks of concurrency) expire first; the longer the
    # keep-alive, the fewer reclaimed, and never reclaimed leaves one cold start per instance
    cold = []
    for k in (2.0, 20.0, 200.0, None):
        sim = Simulation(
            topo(4.0, keep_alive=k, work=1.0, workers=16), Scenario(duration=3000, warmup=0, seed=4)
        )
        sim.run()
        cold.append(sim.services["f"].cold_starts)
    assert cold == sorted(cold, reverse=True)
    assert cold[0] > 2 * cold[1] and cold[1] > cold[2]
    assert 4 <= cold[-1] <= 16


def test_a_topology_without_the_fields_runs_as_before_for_the_same_seed() -> None:
    plain = topo(3.0, cold=None, keep_alive=None, work=0.2, workers=2)
    # the same document, written and read back: the fields are not written when unset
    again = Topology.from_dict(plain.to_dict())
    assert "cold_start" not in plain.to_yaml() and "keep_alive" not in plain.to_yaml()
    a = Simulation(plain, Scenario(duration=500, warmup=0, seed=5)).run().summary
    b = Simulation(again, Scenario(duration=500, warmup=0, seed=5)).run().summary
    assert a.latency == b.latency
    assert a.requests == b.requests


def test_cold_starts_leave_other_services_draws_unchanged() -> None:
    d = doc(3.0, cold=None, keep_alive=None, work=0.05, workers=2)
    d["services"]["g"] = {
        "cold_start": {"dist": "exponential", "mean": 0.5},
        "keep_alive": 2.0,
        "operations": {"op": {"service_time": {"dist": "exponential", "mean": 0.01}}},
    }
    d["workload"].append({"entry": "g", "rate": 0.3})
    with_g = (
        Simulation(Topology.from_dict(d), Scenario(duration=500, warmup=0, seed=6)).run().summary
    )
    alone = (
        Simulation(
            topo(3.0, cold=None, keep_alive=None, work=0.05, workers=2),
            Scenario(duration=500, warmup=0, seed=6),
        )
        .run()
        .summary
    )
    assert with_g.services["f"].latency == alone.services["f"].latency


def test_keep_alive_without_cold_start_is_refused_with_the_field_named() -> None:
    with pytest.raises(InputError, match=r"services\.f\.keep_alive"):
        Topology.from_dict(doc(1.0, cold=None, keep_alive=5.0))


def test_fluid_engine_adds_the_expected_cold_start_as_the_request_level_engine() -> None:
    lam, k, c, w = 0.5, 2.0, 0.05, 0.01
    t = topo(lam, keep_alive=k, cold=c, work=w)
    s = Simulation(t, Scenario(duration=20000, warmup=100, seed=7)).run().summary
    fl = FluidSimulation(t, Scenario(duration=600)).step(600).entries["f"].latency.mean
    assert fl is not None and s.latency.mean is not None
    # at 1.4% utilisation the single worker's queueing adds about 1.5%
    assert fl == pytest.approx(w + c * math.exp(-lam * k), rel=0.03)
    assert fl == pytest.approx(s.latency.mean, rel=0.03)


def test_analytic_utilisation_counts_the_cold_start_work() -> None:
    lam, k, c, w = 0.5, 2.0, 0.2, 0.01
    t = topo(lam, keep_alive=k, cold=c, work=w)
    rho = CallGraph(t).utilisation({"f:op": lam})["f"]
    assert rho == pytest.approx(lam * (w + c * math.exp(-lam * k)))
    assert t.service_graph().nodes["f"]["utilization"] == pytest.approx(rho)
    plain = topo(lam, cold=None, keep_alive=None, work=w)
    assert CallGraph(plain).utilisation({"f:op": lam})["f"] == pytest.approx(lam * w)


# -- calibration ------------------------------------------------------------------------------


def _periods(
    rng: np.random.Generator, w: float, c: float, k: float, n: int = 400, seconds: float = 300.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-period (rate, mean latency, requests) of one instance under Poisson arrivals whose
    rate changes from period to period, simulated request by request."""
    rates = rng.uniform(0.002, 0.05, size=n)
    means, counts = [], []
    last = -math.inf
    t0 = 0.0
    for r in rates:
        t = t0
        lats = []
        while True:
            t += rng.exponential(1.0 / r)
            if t >= t0 + seconds:
                break
            cold = t - last > k
            lats.append(w + (c if cold else 0.0))
            last = t
        t0 += seconds
        means.append(float(np.mean(lats)) if lats else math.nan)
        counts.append(len(lats))
    return rates, np.array(means), np.array(counts, dtype=float)


def test_fit_of_periods_recovers_warm_time_cold_start_and_keep_alive() -> None:
    rng = np.random.default_rng(8)
    rates, means, counts = _periods(rng, w=0.5, c=2.0, k=60.0)
    fit = fit_periods(rates, means, counts)
    assert isinstance(fit, ColdStartFit)
    assert fit.warm == pytest.approx(0.5, abs=0.1)
    assert fit.cold_start == pytest.approx(2.0, rel=0.15)
    assert fit.keep_alive == pytest.approx(60.0, rel=0.3)


def test_fit_of_periods_finds_nothing_when_latency_does_not_follow_the_rate() -> None:
    rng = np.random.default_rng(9)
    rates = rng.uniform(0.002, 0.05, size=400)
    counts = np.maximum(1.0, np.round(rates * 300))
    means = 3.0 + rng.normal(0.0, 0.3, size=400) / np.sqrt(counts)
    assert fit_periods(rates, means, counts) is None


def test_fit_of_requests_splits_by_the_gap_since_the_previous_request() -> None:
    rng = np.random.default_rng(10)
    t = np.cumsum(rng.exponential(30.0, size=3000))
    gap = np.diff(t, prepend=-math.inf)
    lat = 0.4 + rng.gamma(4.0, 0.01, size=t.size) + np.where(gap > 45.0, 1.5, 0.0)
    fit = fit_requests(t, lat)
    assert fit is not None
    assert fit.keep_alive == pytest.approx(45.0, rel=0.1)
    assert fit.cold_start == pytest.approx(1.5, rel=0.05)
    assert fit.warm == pytest.approx(0.44, rel=0.05)


def test_petshop_calibration_gives_function_nodes_cold_starts_that_reproduce_their_mean() -> None:
    rng = np.random.default_rng(11)
    _, means, counts = _periods(rng, w=0.3, c=1.2, k=40.0, n=300)
    rows = []
    for node in ("fn_AWS::Lambda", "db_AWS::DynamoDB"):  # a function, and a node that is not
        for i, (n, m) in enumerate(zip(counts, means, strict=True)):
            if n > 0:
                t = 300.0 * i
                rows.append((t, node, "requests", "Sum", n))
                rows.append((t, node, "latency", "Average", m))
                rows.append((t, node, "availability", "Average", 100.0))
    tidy = pd.DataFrame(rows, columns=["t", "node", "metric", "statistic", "value"])
    fits = cold_starts(tidy)
    assert set(fits) == {"fn_AWS::Lambda"}
    doc, _ = build_topology(node_table(tidy), [], cold=fits)
    fn = doc["services"]["fn_AWS__Lambda"]
    assert fn["keep_alive"] == pytest.approx(40.0, rel=0.3)
    assert "cold_start" not in doc["services"]["db_AWS__DynamoDB"]
    # the twin at the level's rate reproduces the node's mean latency (the calibration's:
    # the mean over periods), cold starts included
    topo = Topology.from_dict(doc)
    s = Simulation(topo, Scenario(duration=200000, warmup=0, seed=12, window=1000.0)).run().summary
    observed = float(np.mean(means[counts > 0]))
    twin = s.services["fn_AWS__Lambda"].latency.mean
    assert twin is not None
    assert twin == pytest.approx(observed, rel=0.06)


def test_a_function_whose_latency_falls_with_its_callees_gets_no_cold_start() -> None:
    rng = np.random.default_rng(13)
    _, means, counts = _periods(rng, w=0.3, c=1.2, k=40.0, n=300)
    rows = []
    for i, (n, m) in enumerate(zip(counts, means, strict=True)):
        if n > 0:  # the callee is what warms up; the function adds 50 ms of its own
            for node, lat in (("fn_AWS::Lambda", m + 0.05), ("db_AWS::DynamoDB", m)):
                rows.append((300.0 * i, node, "requests", "Sum", n))
                rows.append((300.0 * i, node, "latency", "Average", lat))
    tidy = pd.DataFrame(rows, columns=["t", "node", "metric", "statistic", "value"])
    fits = cold_starts(tidy)
    assert "fn_AWS::Lambda" in fits  # its own figures alone do show the fall
    edges = [("fn_AWS::Lambda", "db_AWS::DynamoDB")]
    doc, info = build_topology(node_table(tidy), edges, cold=fits)
    assert "cold_start" not in doc["services"]["fn_AWS__Lambda"]
    assert "fn_AWS::Lambda" in info["_cold_rejected"]
    # its own latency (less its callee's, period by period) shows no cold start at all
    own = cold_starts(tidy, calls={"fn_AWS::Lambda": [("db_AWS::DynamoDB", 1.0)]})
    assert "fn_AWS::Lambda" not in own


def test_spans_give_a_function_its_cold_starts_and_leave_its_warm_service_time() -> None:
    rng = np.random.default_rng(14)
    starts = np.cumsum(rng.exponential(30.0, size=1500))
    gaps = np.diff(starts, prepend=-math.inf)
    own = 0.2 + rng.gamma(4.0, 0.005, size=starts.size) + np.where(gaps > 45.0, 0.8, 0.0)
    rows = []
    for i, (t, o) in enumerate(zip(starts, own, strict=True)):
        end = t + o + 0.1  # its own time, then a 100 ms call to the database
        rows.append((f"t{i}", f"s{i}", "root", "fn", "fn-1", "op", "server", t, end, False, ""))
        rows.append(
            (f"t{i}", f"c{i}", f"s{i}", "fn", "fn-1", "db", "client", t + o, end, False, "")
        )
    spans = pd.DataFrame(rows, columns=SPAN_COLUMNS)
    share = float(np.mean(gaps[1:] > 45.0))
    topology = Topology.from_dict(
        {
            "name": "fn",
            "services": {
                "fn": {
                    "workers": 8,
                    "operations": {
                        "op": {
                            "service_time": {
                                "dist": "lognormal",
                                "mean": float(own.mean()),
                                "cv": 0.5,
                            },
                            "calls": [{"to": "db"}],
                        }
                    },
                },
                "db": {"operations": {"op": {"service_time": {"dist": "constant", "mean": 0.1}}}},
            },
            "workload": [{"entry": "fn", "rate": 1 / 30}],
        }
    )
    out, fits = with_cold_starts(topology, spans)
    assert set(fits) == {"fn"}  # the database has no server spans of its own here
    fn = out.services["fn"]
    assert fn.keep_alive == pytest.approx(45.0, rel=0.1)
    assert fn.cold_start is not None and fn.cold_start.expected() == pytest.approx(0.8, rel=0.05)
    # the service time is the warm own time; the cold starts come back through the fields
    warm = fn.operations["op"].service_time.expected()
    assert warm == pytest.approx(0.22, rel=0.05)
    assert warm + fn.cold_start.expected() * share == pytest.approx(own.mean(), rel=0.01)


def test_twin_calibrate_with_cold_starts_gives_a_traced_function_its_fields(tmp_path) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    rng = np.random.default_rng(15)
    starts = 1.7e9 + np.cumsum(rng.exponential(20.0, size=600))
    gaps = np.diff(starts, prepend=-math.inf)
    own = 0.05 + rng.gamma(4.0, 0.002, size=starts.size) + np.where(gaps > 30.0, 0.6, 0.0)
    lines = [
        "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration"
    ]
    for i, (t, o) in enumerate(zip(starts, own, strict=True)):
        t0, t1 = int(t * 1e9), int((t + o) * 1e9)
        lines.append(
            f"{i:032x},{i:016x},root,fn-579b9bff58-t2dbm,fn/Handle,{t0},{t1},{(t1 - t0) // 1000}"
        )
    path = tmp_path / "spans.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["calibrate", "--traces", str(path), "--predict", "0"]
    plain = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "plain")])
    cold = CliRunner().invoke(app, [*args, "--cold-starts", "--out", str(tmp_path / "cold")])
    assert plain.exit_code == 0 and cold.exit_code == 0, (plain.output, cold.output)
    without = Topology.load(tmp_path / "plain" / "topology.yaml").services["fn"]
    fn = Topology.load(tmp_path / "cold" / "topology.yaml").services["fn"]
    assert without.cold_start is None  # off by default
    assert fn.keep_alive == pytest.approx(30.0, rel=0.15)
    assert fn.cold_start is not None and fn.cold_start.expected() == pytest.approx(0.6, rel=0.05)
