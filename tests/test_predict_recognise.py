"""The correlation engine: fingerprints from the twin, the recogniser, the baseline, readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from small_system import SPEC, small_topology

from twin.predict.fingerprints import (
    NoiseModel,
    fault_documents,
    fingerprints,
    plan,
    simulate_window,
)
from twin.predict.localise import changes, rank_services, standardised_change
from twin.predict.recognise import fit
from twin.predict.windows import Telemetry, nezha_kind, read_nezha, uninformative
from twin.topology import Topology


@pytest.fixture(scope="module")
def topo() -> Topology:
    return small_topology()


@pytest.fixture(scope="module")
def live(topo: Topology) -> Telemetry:
    """Production's stand-in: a long fault-free stretch of the same system."""
    return simulate_window(topo, SPEC, [], 1.0, 99, SPEC.warmup_s + 20 * SPEC.window_s)


@pytest.fixture(scope="module")
def cases(topo: Topology, live: Telemetry, tmp_path_factory: pytest.TempPathFactory) -> list:
    quiet = np.ones(len(live.times), dtype=bool)
    return fingerprints(topo, live, quiet, SPEC, 7, tmp_path_factory.mktemp("fp"))


def _held_out(topo: Topology, kind: str, target: str, x: float, seed: int) -> Telemetry:
    start = SPEC.warmup_s + SPEC.before_s + 11.0
    docs = fault_documents(topo, kind, target, x, start, SPEC.during_s)
    duration = SPEC.warmup_s + SPEC.before_s + SPEC.during_s + 2 * SPEC.window_s
    return simulate_window(topo, SPEC, docs, 1.0, seed, duration)


def test_classifier_trained_on_fingerprints_recognises_held_out_faults_above_chance(
    topo: Topology, cases: list
) -> None:
    model = fit(cases, seed=3)
    held = [
        ("cpu_exhaustion", "a", 4.0),
        ("error_rate", "b", 0.4),
        ("latency", "c", 0.3),
        ("cpu_exhaustion", "c", 5.0),
        ("error_rate", "a", 0.5),
        ("latency", "b", 0.5),
    ]
    start = SPEC.warmup_s + SPEC.before_s + 11.0
    kinds_right = top1 = 0
    for i, (kind, target, x) in enumerate(held):
        tel = _held_out(topo, kind, target, x, 1000 + i)
        rec = model.recognise(changes(tel, start, SPEC.during_s, SPEC.before_s))
        kinds_right += rec.kind == kind
        top1 += rec.root_cause[0].service == target
        assert math.isclose(sum(c.probability for c in rec.root_cause), 1.0, abs_tol=1e-9)
    # chance: 1 in 4 kinds (none included), 1 in 4 services
    assert kinds_right >= 4, kinds_right
    assert top1 >= 4, top1


def test_baseline_ranks_the_service_with_a_step_change_first() -> None:
    rng = np.random.default_rng(0)
    n = 30
    times = np.arange(1, n + 1) * 60.0
    services = {
        s: {
            "latency_p95": 0.1 * np.exp(rng.normal(0, 0.1, n)),
            "rate": 10 * np.exp(rng.normal(0, 0.1, n)),
        }
        for s in ("x", "y", "z")
    }
    services["y"]["latency_p95"][20:23] *= 3.0  # the step, windows ending 21-23 min
    tel = Telemetry(times, 60.0, services, {}, {}, (("x", "y"), ("x", "z")))
    ch = changes(tel, 20 * 60.0, 180.0, 600.0)
    ranked = rank_services(ch)
    assert ranked[0].service == "y"
    assert ranked[0].metric == "latency_p95"


def test_standardised_change_is_robust_to_one_spike_before() -> None:
    before = np.array([1.0, 1.1, 0.9, 1.0, 50.0])
    assert abs(standardised_change(before, np.array([1.05, 0.95]))) < 1.0
    assert math.isnan(standardised_change(np.array([np.nan]), np.array([1.0])))


def test_a_success_share_has_no_relative_floor() -> None:
    """95% after a flat 100% is a large change (a relative floor would call it one spread)."""
    tel = Telemetry(
        np.arange(1, 11) * 60.0,
        60.0,
        {},
        {},
        {"success": np.array([1.0] * 7 + [0.95] * 3)},
    )
    ch = changes(tel, 7 * 60.0, 180.0, 420.0)
    assert ch.entry["success"] <= -40


def _write_nezha(folder: Path) -> None:
    t = 1_000_000 + 60 * np.arange(20)
    rows = [
        "Time,TimeStamp,ServiceName,SuccessRate(%),LatencyP50(s),LatencyP90(s),LatencyP95(s),LatencyP99(s)"
    ]
    rows += [f"x,{ti},Frontend,100,0.1,0.2,0.3,0.4" for ti in t]
    (folder / "front_service.csv").write_text("\n".join(rows) + "\n")
    head = (
        "Time,TimeStamp,PodName,CpuUsageRate(%),MemoryUsage(Mi),PodServerLatencyP95(s),"
        "PodWorkload(Ops),PodSuccessRate(%)"
    )
    for pod, off in (("front-5f6585d649-abcde", 0), ("back-7b598fc7d-lmggd", 5_000)):
        body = [f"x,{ti + off},{pod},{10 + i % 3},5,0.0{1 + i % 2},9,0" for i, ti in enumerate(t)]
        (folder / f"{pod}_metric.csv").write_text("\n".join([head, *body]) + "\n")
    (folder / "dependency.csv").write_text("Source,Target,Weight\nfront,back,1\nfront,10.0.0.1,1\n")
    (folder / "source_50.csv").write_text(
        "time,timestamp,front_back,front_unknown\n" + "".join(f"x,{ti},0.01,0.02\n" for ti in t)
    )
    faults = {
        "00": [
            {
                "inject_time": "2022-01-01 00:05:00",
                "inject_timestamp": str(t[5]),
                "inject_pod": "back-7b598fc7d-lmggd",
                "inject_type": "network_delay",
            },
            {
                "inject_time": "2022-01-01 00:10:00",
                "inject_timestamp": str(t[10]),
                "inject_pod": "back-7b598fc7d-lmggd",
                "inject_type": "disk_full",
            },
        ]
    }
    (folder / "day-fault_list.json").write_text(json.dumps(faults))


def test_nezha_reader_counts_unmapped_metrics_and_types_instead_of_crashing(tmp_path: Path) -> None:
    _write_nezha(tmp_path)
    tel, faults = read_nezha(tmp_path)
    assert "pod:MemoryUsage(Mi)" in tel.unmapped
    assert "edge:front_unknown" in tel.unmapped
    assert set(tel.services) == {"front", "back"}
    assert "front->back" in tel.edges
    assert ("service", "success") in uninformative(tel)
    assert [nezha_kind(f.type) for f in faults] == ["latency", None]
    # a pod file off by a constant clock but the same span is put back, and said
    assert np.isfinite(tel.services["back"]["cpu"]).sum() == 20
    assert any("shifted" in n for n in tel.notes)


def test_fingerprints_are_deterministic_by_seed_and_cached(
    topo: Topology, live: Telemetry, cases: list, tmp_path: Path
) -> None:
    quiet = np.ones(len(live.times), dtype=bool)
    spec = SPEC.model_copy(
        update={"kinds": ("error_rate",), "levels": 1, "none_runs": 1, "targets": ("a",)}
    )
    a = fingerprints(topo, live, quiet, spec, 5)
    b = fingerprints(topo, live, quiet, spec, 5, tmp_path)
    assert [c.changes for c in a] == [c.changes for c in b]
    files = list(tmp_path.glob("fingerprints-*.json"))
    assert len(files) == 1
    c = fingerprints(topo, live, quiet, spec, 5, tmp_path)  # from the cache
    assert json.dumps([x.changes.entry for x in c], default=str) == json.dumps(
        [x.changes.entry for x in a], default=str
    )
    d = fingerprints(topo, live, quiet, spec, 6)
    assert [x.changes.entry for x in d] != [x.changes.entry for x in a]
    m1, m2 = fit(cases, seed=1), fit(cases, seed=1)
    ch = cases[-1].changes
    assert m1.recognise(ch) == m2.recognise(ch)


def test_noise_model_adds_only_what_the_twin_lacks() -> None:
    live = NoiseModel({"service|a|rate": 0.5}, {"service|rate": 0.5})
    added = live.added({"service|a|rate": 0.3})
    assert math.isclose(added.get("service", "a", "rate"), 0.4)
    assert added.get("service", "other", "rate") == 0.5  # unseen names take the median
    assert live.added({"service|a|rate": 0.9}).get("service", "a", "rate") == 0.0


def _tel(services: dict[str, dict[str, np.ndarray]]) -> Telemetry:
    n = len(next(iter(next(iter(services.values())).values())))
    return Telemetry(
        times=np.arange(1.0, n + 1.0),
        window=1.0,
        services=services,
        edges={},
        entry={"success": np.linspace(0.9, 1.0, n)},
        calls=(),
    )


def test_a_success_share_held_at_one_is_a_reading_but_held_at_zero_is_silence() -> None:
    ones, zeros = np.ones(8), np.zeros(8)
    healthy = _tel({"a": {"success": ones}, "b": {"success": ones}})
    assert ("service", "success") not in uninformative(healthy)
    broken = _tel({"a": {"success": zeros}, "b": {"success": zeros}})
    assert ("service", "success") in uninformative(broken)
    flat_rate = _tel({"a": {"rate": ones, "success": ones}})
    assert ("service", "rate") in uninformative(flat_rate)  # only a share has a healthy end


def test_latency_is_trained_on_the_wire_and_inside_the_callee(topo: Topology) -> None:
    runs = [r for r in plan(topo, SPEC) if r.kind == "latency"]
    assert {(r.target, r.inside) for r in runs} == {
        (t, inside) for t in ("a", "b", "c") for inside in (False, True)
    }  # the entry, which nothing calls, takes no network kind
    assert all(not r.inside for r in plan(topo, SPEC) if r.kind != "latency")
    without = plan(topo, SPEC.model_copy(update={"in_service": False}))
    assert {r.inside for r in without if r.kind == "latency"} == {False}


def test_a_wait_inside_a_service_shows_in_its_own_latency_and_one_on_the_wire_does_not(
    topo: Topology,
) -> None:
    start = SPEC.warmup_s + SPEC.before_s
    duration = start + SPEC.during_s + SPEC.window_s
    docs = fault_documents(topo, "latency", "c", 0.3, start, SPEC.during_s)

    def read(inside: bool) -> tuple[float, float, float]:
        tel = simulate_window(topo, SPEC, docs, 1.0, 11, duration, inside)
        ch = changes(tel, start, SPEC.during_s, SPEC.before_s)
        c, edge = ch.services["c"], ch.edges["a->c"]
        return c["latency_p99"], edge["server_p50"], edge["client_p50"]

    p99, server, client = read(inside=True)
    assert p99 > 10.0 and server > 10.0 and client > 10.0
    p99, server, client = read(inside=False)
    assert abs(p99) < 3.0 and abs(server) < 3.0 and client > 10.0
    # the callers see the same either way: the simulation is one and the same
    wire = simulate_window(topo, SPEC, docs, 1.0, 11, duration, False)
    inner = simulate_window(topo, SPEC, docs, 1.0, 11, duration, True)
    assert np.array_equal(wire.entry["latency_p99"], inner.entry["latency_p99"], equal_nan=True)
    # and the wait holds no worker: the callee's busy share does not move
    cpu = changes(inner, start, SPEC.during_s, SPEC.before_s).services["c"]["cpu"]
    assert abs(cpu) < 3.0
