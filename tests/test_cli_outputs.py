"""`twin simulate` writes what DESIGN.md promises, and the engine can be stepped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_twin

from twin.policy import Policy
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

CHAIN = """\
name: chain3
hosts:
  node-a: {cores: 2}
services:
  a:
    workers: 3
    host: node-a
    operations:
      default:
        service_time: {dist: exponential, mean: 0.05}
        calls:
          - {to: b, probability: 1.0}
          - {to: c, probability: 0.5, count: 3, parallel: true}
  b:
    operations:
      default: {service_time: {dist: exponential, mean: 0.1}}
  c:
    workers: 2
    operations:
      default: {service_time: 0.01}
network:
  links:
    "a->b": {latency: {dist: lognormal, mean: 0.002, cv: 0.5}}
workload:
  - {entry: a, rate: 2.4}
slo: {latency_p99: 10.0, availability: 0.999}
"""


def twin(*args: str) -> subprocess.CompletedProcess[str]:
    return run_twin(*args)


@pytest.fixture()
def chain(tmp_path: Path) -> Path:
    p = tmp_path / "chain3.yaml"
    p.write_text(CHAIN)
    return p


def test_simulate_writes_summary_timeseries_and_report(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = twin("simulate", str(chain), "--duration", "300", "--warmup", "30", "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    for key in (
        "requests",
        "succeeded",
        "failed",
        "failures",
        "latency",
        "entries",
        "services",
        "wall_seconds",
    ):
        assert key in s
    assert set(s["latency"]) >= {"mean", "p50", "p95", "p99"}
    assert s["requests"] == s["succeeded"] + s["failed"] + s["in_flight"]
    assert set(s["services"]) == {"a", "b", "c"}
    for svc in s["services"].values():
        assert {"arrivals", "completions", "utilization", "rejected", "latency"} <= set(svc)
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert list(ts.columns) == ["time", "window", "scope", "name", "family", "metric", "value"]
    assert set(ts["scope"]) == {"entry", "service"}
    assert {"requests", "latency", "resources"} <= set(ts["family"])
    html = (out / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') >= 2
    assert "chain3" in r.stdout and "requests" in r.stdout


def test_replications_give_confidence_intervals_that_bracket_the_mean(
    chain: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    r = twin(
        "simulate",
        str(chain),
        "--duration",
        "200",
        "--replications",
        "3",
        "--workers",
        "2",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["replications"] == 3 and len(set(s["seeds"])) == 3
    ci = s["ci"]["latency"]["mean"]
    assert ci["lo"] < s["latency"]["mean"] < ci["hi"]
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert sorted(ts["replication"].unique()) == [0, 1, 2]


def test_replications_do_not_depend_on_the_number_of_workers(chain: Path, tmp_path: Path) -> None:
    sums = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        r = twin(
            "simulate",
            str(chain),
            "--duration",
            "100",
            "--replications",
            "2",
            "--workers",
            workers,
            "--out",
            str(out),
        )
        assert r.returncode == 0, r.stderr
        s = json.loads((out / "summary.json").read_text())
        s.pop("wall_seconds")
        sums.append(s)
    assert sums[0] == sums[1]


def test_stepping_in_windows_gives_the_same_results_as_one_run(chain: Path) -> None:
    topo = Topology.load(chain)
    sc = Scenario(duration=120, warmup=10, seed=5, window=1.0)
    whole = Simulation(topo, sc).run().summary.to_json()
    sim = Simulation(topo, sc)
    seen = 0
    while sim.now < 120:
        w = sim.step(10.0)
        seen += w["entries"]["a"]["arrivals"]
    res = sim.results()
    stepped = res.summary.to_json()
    for s in (whole, stepped):
        s.pop("wall_seconds")
        s.pop("events")
    assert stepped == whole
    ts = res.timeseries.frame()
    arrivals = ts[(ts["scope"] == "entry") & (ts["metric"] == "arrivals")]["value"].sum()
    assert seen == arrivals > 0  # each step reported exactly the arrivals of its stretch


def test_apply_changes_the_policy_from_that_moment_on(chain: Path) -> None:
    topo = Topology.load(chain)
    sc = Scenario(duration=100, seed=2)
    sim = Simulation(topo, sc)
    sim.run(until=50)
    before = sim.results().summary["edges"]["a->b"]["timeouts"]
    sim.apply(Policy.from_dict({"clients": {"a->b": {"timeout": 0.001}}}))
    after = sim.run().summary["edges"]["a->b"]["timeouts"]
    assert before == 0 and after > 0


def test_trace_sample_is_written_when_asked(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "tr"
    r = twin(
        "simulate", str(chain), "--duration", "200", "--trace-sample", "0.5", "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    tr = pd.read_parquet(out / "trace.parquet")
    assert {"entry", "start", "end", "outcome"} <= set(tr.columns)
    assert (tr["end"] >= tr["start"]).all() and len(tr) > 50
