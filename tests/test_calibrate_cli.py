"""`twin calibrate` on trace files of systems nobody here wrote: the topology's services and
call edges are exactly the trace's. The expected sets are computed here straight from the raw
files, without the project's readers."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from typer.testing import CliRunner

from twin.cli import app
from twin.topology import Topology

DATA = SHARED_DATA / "traces"
JAEGER = DATA / "deathstarbench-social-jaeger.json"
NEZHA = DATA / "nezha-ob-2022-08-22-0353-spans.csv"

needs_data = pytest.mark.skipif(
    not JAEGER.exists(), reason=f"the public dataset {JAEGER} is absent"
)


def _jaeger_truth(path: Path) -> tuple[set[str], set[tuple[str, str]]]:
    doc = json.loads(path.read_text())
    services: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for trace in doc["data"]:
        svc_of = {p: v["serviceName"] for p, v in trace["processes"].items()}
        span_svc = {s["spanID"]: svc_of[s["processID"]] for s in trace["spans"]}
        services |= set(span_svc.values())
        for s in trace["spans"]:
            for ref in s["references"]:
                parent = span_svc.get(ref["spanID"])
                if parent and parent != span_svc[s["spanID"]]:
                    edges.add((parent, span_svc[s["spanID"]]))
    return services, edges


def _nezha_truth(path: Path) -> tuple[set[str], set[tuple[str, str]]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    pod = re.compile(r"-[a-z0-9]+-[a-z0-9]+$")
    svc = {r["SpanID"]: pod.sub("", r["PodName"]) for r in rows}
    edges = {
        (svc[r["ParentID"]], svc[r["SpanID"]])
        for r in rows
        if r["ParentID"] in svc and svc[r["ParentID"]] != svc[r["SpanID"]]
    }
    return set(svc.values()), edges


def _calibrate(tmp_path: Path, *args: str) -> Topology:
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["calibrate", *args, "--out", str(out), "--predict", "30"])
    assert r.exit_code == 0, r.output
    return Topology.load(out / "topology.yaml")


@needs_data
@pytest.mark.parametrize(
    ("path", "truth"), [(JAEGER, _jaeger_truth), (NEZHA, _nezha_truth)], ids=["jaeger", "nezha"]
)
def test_calibrated_services_and_edges_are_exactly_the_traces(path, truth, tmp_path) -> None:
    services, edges = truth(path)
    topo = _calibrate(tmp_path, "--traces", str(path))
    g = topo.service_graph()
    assert set(g.nodes) == services  # none missing, none invented
    assert set(g.edges) == edges
    assert len(edges) >= 11


@needs_data
def test_calibrated_topology_runs_in_twin_simulate(tmp_path) -> None:
    _calibrate(tmp_path, "--traces", str(JAEGER))
    out = tmp_path / "sim"
    r = CliRunner().invoke(
        app,
        [
            "simulate",
            str(tmp_path / "out" / "topology.yaml"),
            "--duration",
            "20",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "summary.json").read_text())["requests"] > 0


@needs_data
def test_calibrate_writes_report_with_observed_next_to_twin(tmp_path) -> None:
    _calibrate(tmp_path, "--traces", str(JAEGER))
    rec = json.loads((tmp_path / "out" / "calibration.json").read_text())
    entry = next(r for r in rec["comparison"] if r["scope"].startswith("entry"))
    assert entry["mean_observed"] > 0 and entry["mean_twin"] > 0
    assert entry["mean_accuracy"] > 0.8  # the twin at the observed load matches its source
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Observed vs twin" in report and "nginx-web-server" in report


@needs_data
def test_truncated_trace_file_gives_partial_usable_topology(tmp_path) -> None:
    cut = tmp_path / "cut.json"
    text = JAEGER.read_text()
    cut.write_text(text[: int(len(text) * 0.55)])
    topo = _calibrate(tmp_path, "--traces", str(cut))
    rec = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert rec["read"]["problems"]["truncated files (read up to the last complete value)"] == 1
    assert 0 < rec["read"]["spans"] < 660
    services, _ = _jaeger_truth(JAEGER)
    assert set(topo.services) <= services


def test_missing_trace_file_is_one_line_exit_2(tmp_path) -> None:
    r = CliRunner().invoke(
        app, ["calibrate", "--traces", str(tmp_path / "nope.json"), "--out", str(tmp_path)]
    )
    assert r.exit_code == 2
    assert "trace file not found" in r.output and len(r.output.strip().splitlines()) == 1


def test_unknown_json_is_rejected_with_the_formats_we_read(tmp_path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    r = CliRunner().invoke(app, ["calibrate", "--traces", str(p), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "OTLP/JSON" in r.output


def test_calibrate_without_inputs_says_what_to_give(tmp_path) -> None:
    r = CliRunner().invoke(app, ["calibrate", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert "--traces" in r.output


@needs_data
def test_run_calibration_returns_the_record_it_writes(tmp_path: Path) -> None:
    from twin.calibrate import CalibrationConfig, run_calibration

    rec = run_calibration(
        CalibrationConfig(out=tmp_path / "o", traces=(JAEGER,), predict_seconds=10.0)
    )
    written = json.loads((tmp_path / "o" / "calibration.json").read_text())
    services, edges = _jaeger_truth(JAEGER)
    assert (rec.services, rec.edges) == (len(services), len(edges))
    assert rec.topology == Topology.load(tmp_path / "o" / "topology.yaml").name
    assert [r["scope"] for r in rec.comparison] == [r["scope"] for r in written["comparison"]]
    assert set(rec.document) == set(written)


def test_a_calibration_config_needs_exactly_one_metrics_source_and_something_to_read(
    tmp_path: Path,
) -> None:
    from pydantic import ValidationError

    from twin.calibrate import CalibrationConfig

    with pytest.raises(ValidationError, match="give prometheus or metrics, not both"):
        CalibrationConfig(out=tmp_path, prometheus="http://x", metrics=tmp_path / "m.json")
    with pytest.raises(ValidationError, match="nothing to calibrate from"):
        CalibrationConfig(out=tmp_path)
    with pytest.raises(ValidationError, match="workers"):
        CalibrationConfig(out=tmp_path, traces=(JAEGER,), workers={"a": 0})


def test_accuracy_is_one_minus_the_relative_error_and_none_without_a_measure() -> None:
    import math

    from twin.calibrate import accuracy, accuracy_or_none

    assert accuracy(90.0, 100.0) == pytest.approx(0.9)
    assert accuracy(110.0, 100.0) == pytest.approx(0.9)
    assert accuracy(300.0, 100.0) == pytest.approx(-1.0)
    assert math.isnan(accuracy(1.0, 0.0))
    assert accuracy_or_none(None, 1.0) is None and accuracy_or_none(1.0, 0.0) is None
