"""Request classes from traces: spans generated from a known topology whose entry serves
three kinds of request (different call bundles, self times and waits on the wire) are
calibrated back to three classes with their shares, bundles and times; a rare signature
joins the nearest class; an entry with one signature stays one operation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from span_csv import SpanCsv
from typer.testing import CliRunner

from twin.bounds import check_name
from twin.calibrate.build import BuildOptions, build_topology
from twin.calibrate.callgraph import CallGraph, build_callgraph
from twin.calibrate.classes import RequestClass, split_classes
from twin.calibrate.traces import read_traces
from twin.cli import app
from twin.io import parse_model
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

N = 2000
# class -> (share, calls in order as (service, count choices), own seconds, wire seconds)
Calls = list[tuple[str, tuple[int, ...]]]
CLASSES: dict[str, tuple[float, Calls, float, float]] = {
    "browse": (0.50, [("catalog", (2, 3)), ("cart", (1,))], 0.004, 0.002),
    "buy": (0.35, [("cart", (1,)), ("payment", (1,))], 0.008, 0.010),
    "ping": (0.15, [], 0.001, 0.0),
}
RARE: Calls = [("catalog", (1,)), ("cart", (1,)), ("payment", (1,))]  # nearest to "buy"
SERVER = {"catalog": 0.003, "cart": 0.002, "payment": 0.005}


def _write(path: Path, *, seed: int, rare: int = 0, only: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    table = SpanCsv()
    span = table.span

    names = list(CLASSES)
    shares = np.array([CLASSES[k][0] for k in names])
    t = 1_700_000_000.0
    for i in range(N + rare):
        t += float(rng.exponential(0.05))
        kind = only or str(rng.choice(names, p=shares / shares.sum()))
        _, calls, own, wire = CLASSES[kind]
        if i >= N:
            calls, own, wire = RARE, 0.003, 0.001
        trace = f"t{i}"
        root = table.open_root()
        now = t + float(rng.exponential(own))
        for svc, counts in calls:
            for _ in range(int(rng.choice(counts))):
                d = float(rng.exponential(SERVER[svc]))
                client = span(trace, root, "front", f"call {svc}", now, now + d + wire)
                span(trace, client, svc, "Get", now + wire / 2, now + wire / 2 + d)
                now += d + wire
        table.close_root(root, trace, "front", "hipstershop.Front/Recv.", t, now)
    table.write(path)


@pytest.fixture(scope="module")
def spans_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("classes") / "spans.csv"
    _write(p, seed=3, rare=4)
    return p


@pytest.fixture(scope="module")
def calibrated(spans_file: Path) -> Topology:
    out = spans_file.parent / "out"
    r = CliRunner().invoke(
        app, ["calibrate", "--traces", str(spans_file), "--out", str(out), "--predict", "0"]
    )
    assert r.exit_code == 0, r.output
    return Topology.load(out / "topology.yaml")


@pytest.fixture(scope="module")
def graph(spans_file: Path) -> CallGraph:
    return build_callgraph(read_traces([spans_file])[0])


def _classes(graph: CallGraph) -> list[RequestClass]:
    ((key, instances),) = graph.entry_instances.items()
    return split_classes(key, instances)


def _bundle(topo: Topology, op: str) -> dict[str, float]:
    """Mean calls per request from an operation to each callee service."""
    out: dict[str, float] = {}
    for c in topo.services["front"].operations[op].calls:
        svc = c.to.split(":")[0]
        out[svc] = out.get(svc, 0.0) + c.probability * c.count
    return out


def test_three_classes_recovered_with_shares_within_sampling_error(calibrated: Topology) -> None:
    (entry,) = calibrated.workload
    assert entry.entry == "front" and len(entry.mix) == 3
    shares = sorted(entry.mix.values(), reverse=True)
    for got, (want, *_) in zip(shares, CLASSES.values(), strict=True):
        assert abs(got - want) < 4 * math.sqrt(want * (1 - want) / N), (got, want)


def test_each_class_calls_its_own_bundle_with_its_mean_counts(calibrated: Topology) -> None:
    (entry,) = calibrated.workload
    by_size = sorted(entry.mix, key=lambda k: -entry.mix[k])
    browse, buy, ping = (_bundle(calibrated, op) for op in by_size)
    assert browse.keys() == {"catalog", "cart"} and browse["catalog"] == pytest.approx(2.5, abs=0.1)
    assert browse["cart"] == pytest.approx(1.0)
    # the rare signature joined "buy": its catalog calls are a small share of buy's requests
    assert buy["cart"] == pytest.approx(1.0) and buy["payment"] == pytest.approx(1.0)
    assert buy.get("catalog", 0.0) < 0.02
    assert ping == {}


def test_callees_are_shared_across_classes(calibrated: Topology) -> None:
    assert set(calibrated.services["cart"].operations) == {"Get"}
    ops = calibrated.services["front"].operations
    targets = {c.to for op in ops.values() for c in op.calls if c.to.startswith("cart")}
    assert targets == {"cart:Get"}


def test_class_self_times_and_wire_times_are_each_classes_own(calibrated: Topology) -> None:
    (entry,) = calibrated.workload
    ops = calibrated.services["front"].operations
    by_size = sorted(entry.mix, key=lambda k: -entry.mix[k])
    for op, (_, calls, own, wire) in zip(by_size, CLASSES.values(), strict=True):
        got = ops[op].service_time.expected()
        assert abs(got - own) < 4 * own / math.sqrt(N * 0.15) + 1e-4, (op, got, own)
        # a request's wire time on an edge is drawn once: the calls' latencies sum to it
        for svc, counts in calls:
            total = sum(
                c.probability * c.count * c.latency.expected()
                for c in ops[op].calls
                if c.to.startswith(svc) and c.latency is not None
            )
            assert total == pytest.approx(wire * float(np.mean(counts)), rel=0.1), (op, svc)


def test_rare_signature_merges_into_the_nearest_class(graph: CallGraph) -> None:
    found = _classes(graph)
    assert len(found) == 3
    buy = next(c for c in found if any(k[0] == "payment" for k in c.call_set))
    assert "cart/Get x1, catalog/Get x1, payment/Get x1" in buy.signatures
    assert sum(buy.signatures.values()) == buy.requests


def test_class_names_are_valid_readable_and_distinct(calibrated: Topology) -> None:
    names = list(calibrated.services["front"].operations)
    assert len(set(names)) == 3
    for n in names:
        check_name(n)
        assert n.startswith("hipstershop.Front/Recv.[")
    assert any(n.endswith("[no calls]") for n in names)
    assert any("payment.Get" in n for n in names)  # same tails: qualified by service


def test_single_signature_entry_stays_one_operation_without_mix(tmp_path: Path) -> None:
    p = tmp_path / "one.csv"
    _write(p, seed=5, only="buy")
    topo = build_topology(build_callgraph(read_traces([p])[0])).topology
    (entry,) = topo.workload
    assert entry.mix == {} and entry.entry == "front:hipstershop.Front/Recv."
    assert list(topo.services["front"].operations) == ["hipstershop.Front/Recv."]


def test_classes_off_gives_one_operation(graph: CallGraph) -> None:
    topo = build_topology(graph, BuildOptions(classes=False)).topology
    assert topo.workload[0].mix == {}
    assert list(topo.services["front"].operations) == ["hipstershop.Front/Recv."]


def test_calibrated_topology_simulates_at_the_observed_mix(calibrated: Topology) -> None:
    sc = parse_model(Scenario, {"duration": 120, "warmup": 10, "seed": 1})
    s = Simulation(calibrated, sc).run().summary
    (entry,) = calibrated.workload
    assert s.requests > 0 and s.succeeded == s.requests
    assert abs(s.requests / 110 - entry.rate) < 4 * math.sqrt(entry.rate * 110) / 110
    # service rates follow the mix: payment is called once by "buy" requests only
    pay = s.services["payment"].arrivals / s.requests
    assert abs(pay - CLASSES["buy"][0]) < 0.05
