"""Fault campaigns: generation, identical results anywhere, resume, and surviving kills."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import child_env, run_twin
from pg_server import postgres_url  # noqa: F401 - a fixture

from twin.campaign import (
    VOLATILE,
    Outcome,
    load_campaign,
    parse_duration,
    run_campaign,
)
from twin.errors import InputError
from twin.outcomes import REASONS

CHAIN = """\
name: chain3
services:
  a:
    workers: 4
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        calls: [{to: b}]
  b:
    replicas: 2
    workers: 2
    operations:
      default:
        service_time: {dist: exponential, mean: 0.02}
        calls: [{to: c, probability: 0.8}]
  c:
    workers: 2
    operations:
      default: {service_time: {dist: exponential, mean: 0.02}}
workload:
  - {entry: a, rate: 30}
slo: {latency_p99: 0.5, availability: 0.99}
"""

GUARDED = """\
clients:
  "*": {timeout: 0.5, retries: {max: 2, base: 0.01, budget: 0.5}}
"""

CAMPAIGN = """\
name: chain-test
topology: chain3.yaml
duration: {duration}
warmup: 2
seed: 5
replications: 2
policies:
  none: null
  guarded: guarded.yaml
grid:
  faults:
    - {{kind: error_rate, targets: [c], intensities: [0.05, 0.4]}}
    - {{kind: outage, targets: [b], intensities: [1.0]}}
"""


def write_campaign(d: Path, duration: float = 12, extra: str = "") -> Path:
    (d / "chain3.yaml").write_text(CHAIN)
    (d / "guarded.yaml").write_text(GUARDED)
    spec = d / "campaign.yaml"
    spec.write_text(CAMPAIGN.format(duration=duration) + extra)
    return spec


def stable(o: Outcome | pd.DataFrame) -> pd.DataFrame:
    """Rows without the columns that measure the machine rather than the system."""
    runs = o.runs if isinstance(o, Outcome) else o
    return runs.drop(columns=list(VOLATILE)).reset_index(drop=True)


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    return write_campaign(tmp_path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Outcome]:
    """The campaign run once, serially, in-process: what every other engine must match."""
    d = tmp_path_factory.mktemp("reference")
    s = write_campaign(d)
    return s, run_campaign(load_campaign(s), d / "out", workers=1)


# -- generation ---------------------------------------------------------------------------------


def test_grid_is_every_fault_kind_target_intensity_and_load(tmp_path: Path) -> None:
    spec = write_campaign(tmp_path)
    spec.write_text(
        spec.read_text()
        + "    - {kind: latency, targets: ['*'], intensities: [0.1, 0.2, 0.3]}\n"
        + "  loads: [1.0, 1.5]\n"
    )
    plan = load_campaign(spec)
    names = [s.name for s in plan.scenarios]
    # baselines per load + (2 error_rate + 1 outage + 3 services x 3 latencies) x 2 loads
    assert len(names) == 2 + (2 + 1 + 9) * 2
    assert "grid/latency/b/0.2/x1.5" in names and "baseline/x1.5" in names
    sc = next(s for s in plan.scenarios if s.name == "grid/latency/b/0.2/x1.5")
    assert sc.params["fault_kind"] == "latency" and sc.params["load"] == 1.5
    assert sc.scenario.faults[0].delay.expected() == pytest.approx(0.2)
    assert len(plan.tasks()) == len(names) * 2 * 2  # x policies x replications


def test_random_sample_is_reproducible_with_its_seed(tmp_path: Path) -> None:
    extra = "sample: {count: 6, seed: %d, kinds: [latency, cpu_exhaustion, packet_loss]}\n"
    write_campaign(tmp_path, extra=extra % 11)
    a = [s.name for s in load_campaign(tmp_path / "campaign.yaml").scenarios]
    b = [s.name for s in load_campaign(tmp_path / "campaign.yaml").scenarios]
    write_campaign(tmp_path, extra=extra % 12)
    c = [s.name for s in load_campaign(tmp_path / "campaign.yaml").scenarios]
    assert a == b
    assert a != c
    assert sum(n.startswith("sample/") for n in a) == 6


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_history_resembles_past_incidents_and_adds_neighbours_not_yet_seen(
    tmp_path: Path, fmt: str
) -> None:
    incidents = [
        {
            "time": "2024-01-03T10:00Z",
            "service": "c",
            "symptom": "slow responses",
            "duration": "15m",
            "cause": "disk",
        },
        {
            "time": "2024-02-01T10:00Z",
            "service": "c",
            "symptom": "p99 latency spike",
            "duration": "5m",
            "cause": "GC",
        },
        {
            "time": "2024-03-01T12:00Z",
            "service": "b",
            "symptom": "503 errors",
            "duration": 120,
            "cause": "bad deploy",
        },
        {
            "time": "2024-03-09T12:00Z",
            "service": "payments",
            "symptom": "outage",
            "duration": "1h",
            "cause": "db",
        },
    ]
    if fmt == "csv":
        head = "time,service,symptom,duration,cause\n"
        body = "".join(",".join(str(i[k]) for k in i) + "\n" for i in incidents)
        (tmp_path / "incidents.csv").write_text(head + body)
    else:
        (tmp_path / "incidents.json").write_text(json.dumps({"incidents": incidents}))
    write_campaign(
        tmp_path,
        duration=100,
        extra=f"history: {{path: incidents.{fmt}, neighbours: 1, severities: [2.0]}}\n",
    )
    plan = load_campaign(tmp_path / "campaign.yaml")
    by_name = {s.name: s for s in plan.scenarios}
    past = by_name["history/latency/c"]
    assert past.params["incidents"] == 2
    # the median incident (10 min) is longer than the fault window: the window caps it
    assert past.scenario.faults[0].duration == pytest.approx((100 - 2) / 2)
    assert by_name["history/error_rate/b"].params["fault_duration"] == pytest.approx(49.0)
    # neighbours: a worse version, and the same fault next door where it never happened
    assert "neighbour/latency/c/x2" in by_name
    assert by_name["neighbour/latency/c/x2"].params["intensity"] == pytest.approx(0.4)
    assert "neighbour/latency/b" in by_name  # b calls c and never had a latency incident
    assert "neighbour/error_rate/a" in by_name or "neighbour/error_rate/c" in by_name
    assert any("payments" in n for n in plan.notes)  # unknown service: skipped, said so


@pytest.mark.parametrize(
    ("log", "message"),
    [
        (
            "time,service,symptom,duration,cause\nT,c,slow,15m,disk\nT,b,503 errors,soon,x\n",
            r"incidents.csv:3: duration: cannot read 'soon'",
        ),
        ("when,who,what\nT,c,slow\n", r"incidents.csv:1: incident log needs a header"),
    ],
)
def test_a_bad_incident_log_is_one_line_naming_file_and_line(
    tmp_path: Path, log: str, message: str
) -> None:
    (tmp_path / "incidents.csv").write_text(log)
    write_campaign(tmp_path, extra="history: {path: incidents.csv}\n")
    with pytest.raises(InputError, match=message) as err:
        load_campaign(tmp_path / "campaign.yaml")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("PT15M", 900.0),
        ("00:15:00", 900.0),
        ("2 hours", 7200.0),
        ("soon", None),
    ],
)
def test_incident_durations_read_in_common_spellings(text: Any, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_bad_campaign_is_one_line_naming_file_line_and_path(tmp_path: Path) -> None:
    spec = write_campaign(tmp_path)
    spec.write_text(spec.read_text().replace("targets: [c]", "targets: [nosuch]"))
    with pytest.raises(InputError) as err:
        load_campaign(spec)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{spec}:12: grid.faults[0].targets:"), msg
    assert "nosuch" in msg


# -- results --------------------------------------------------------------------------------


def test_runs_parquet_has_one_row_per_run_and_duckdb_queries_it(
    reference: tuple[Path, Outcome],
) -> None:
    import duckdb

    _, o = reference
    runs = pd.read_parquet(o.out / "runs.parquet")
    assert len(runs) == 4 * 2 * 2  # (baseline + 3 grid scenarios) x 2 policies x 2 replications
    for col in (
        "scenario",
        "policy",
        "replication",
        "seed",
        "requests",
        "succeeded",
        "failed",
        "latency_p99",
        "fault_kind",
        "target",
        "intensity",
        "load",
    ):
        assert col in runs.columns
    assert runs["run_id"].is_unique
    # common random numbers: replication r has the same seed under every scenario and policy
    assert runs.groupby("replication")["seed"].nunique().eq(1).all()
    q = duckdb.sql(
        f"SELECT policy, fault_kind, avg(availability) AS availability, max(latency_p99) AS p99 "
        f"FROM '{o.out / 'runs.parquet'}' GROUP BY ALL ORDER BY availability"
    ).df()
    assert set(q["policy"]) == {"none", "guarded"}
    worst = q.iloc[0]
    assert worst["fault_kind"] in ("outage", "error_rate")
    summary = json.loads((o.out / "summary.json").read_text())
    assert summary["runs"] == 16 and summary["failure_modes"]
    agg = pd.read_parquet(o.out / "aggregated.parquet")
    assert len(agg) == 8 and {"availability_lo", "availability_hi"} <= set(agg.columns)


def test_aggregated_table_is_the_replication_mean_with_a_student_t_95_interval(
    reference: tuple[Path, Outcome],
) -> None:
    from scipy import stats

    runs, agg = reference[1].runs, reference[1].aggregated
    assert len(agg) == runs.groupby(["scenario", "policy"]).ngroups
    for _, row in agg.iterrows():
        g = runs[(runs["scenario"] == row["scenario"]) & (runs["policy"] == row["policy"])]
        assert row["replications"] == len(g) == 2
        for m in ("availability", "latency_p99"):
            xs = g[m].to_numpy(dtype=float)
            mean = xs.mean()
            half = stats.t.ppf(0.975, len(xs) - 1) * xs.std(ddof=1) / np.sqrt(len(xs))
            assert row[m] == pytest.approx(mean)
            assert row[f"{m}_lo"] == pytest.approx(mean - half)
            assert row[f"{m}_hi"] == pytest.approx(mean + half)
            assert row[f"{m}_lo"] <= row[m] <= row[f"{m}_hi"]


def test_run_campaign_takes_a_file_path_and_reports_progress_to_the_last_run(
    reference: tuple[Path, Outcome], tmp_path: Path
) -> None:
    spec, ref = reference
    seen: list[tuple[int, int]] = []
    o = run_campaign(spec, tmp_path / "out", on_progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (16, 16)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    pd.testing.assert_frame_equal(stable(o), stable(ref))


def test_requests_are_conserved_in_every_row(reference: tuple[Path, Outcome]) -> None:
    runs = reference[1].runs
    assert (runs["requests"] == runs["succeeded"] + runs["failed"] + runs["in_flight"]).all()
    fails = runs[[f"failures_{r}" for r in REASONS]].sum(axis=1)
    assert (fails == runs["failed"]).all()


def test_failure_modes_name_trigger_effect_and_evidence(reference: tuple[Path, Outcome]) -> None:
    o = reference[1]
    outage = [m for m in o.modes if m["fault_kind"] == "outage" and m["policy"] == "none"]
    assert outage, o.modes
    m = outage[0]
    assert m["target"] == "b" and m["intensity_threshold"] == 1.0
    assert "availability" in m["slos_breached"]
    assert set(m["services"]) == {"a", "b"} and m["blast_radius"] == 2
    assert "SERVICE_DOWN" in m["failure_reasons"]
    assert len(m["evidence"]["runs"]) == 2
    sev = [x["severity"] for x in o.modes]
    assert sev == sorted(sev, reverse=True)
    # retries mask a 5% error rate at c: the guarded policy is recommended for it
    rec = [x for x in o.mitigations if x["mode"][2] == "error_rate" and x["mode"][1] == "none"]
    assert any(x["policy"] == "guarded" for x in rec), o.mitigations


def test_graph_only_baseline_agrees_with_the_simulated_outage(
    reference: tuple[Path, Outcome],
) -> None:
    agg = reference[1].aggregated
    row = agg[(agg["scenario"] == "grid/outage/b/1/x1") & (agg["policy"] == "none")].iloc[0]
    assert row["graph_availability"] == pytest.approx(0.5)  # down for half the measured time
    assert row["availability"] == pytest.approx(row["graph_availability"], abs=0.05)


# -- execution ------------------------------------------------------------------------------


def test_same_seed_same_rows_on_one_or_two_local_processes(
    reference: tuple[Path, Outcome], tmp_path: Path
) -> None:
    spec, ref = reference
    two = run_campaign(load_campaign(spec), tmp_path / "two", workers=2)
    pd.testing.assert_frame_equal(stable(two), stable(ref))


def test_resume_skips_finished_runs(reference: tuple[Path, Outcome], tmp_path: Path) -> None:
    spec, ref = reference
    plan = load_campaign(spec)
    seen: list[str] = []

    def crash_after_five(row: dict[str, Any]) -> None:
        seen.append(row["run_id"])
        if len(seen) == 5:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        run_campaign(plan, tmp_path / "out", on_row=crash_after_five)
    assert len(list((tmp_path / "out" / "parts").glob("*.parquet"))) == 5
    again: list[str] = []
    o = run_campaign(plan, tmp_path / "out", on_row=lambda r: again.append(r["run_id"]))
    assert (o.executed, o.reused) == (11, 5)
    assert not set(again) & set(seen)
    pd.testing.assert_frame_equal(stable(o), stable(ref))
    third = run_campaign(plan, tmp_path / "out")
    assert (third.executed, third.reused) == (0, 16)


def test_a_killed_local_worker_process_has_its_runs_rerun(
    reference: tuple[Path, Outcome], tmp_path: Path
) -> None:
    spec, ref = reference
    killed: list[int] = []

    def kill_a_worker(_: dict[str, Any]) -> None:
        if not killed:
            victim = multiprocessing.active_children()[0]
            killed.append(victim.pid or 0)
            os.kill(victim.pid or 0, signal.SIGKILL)

    o = run_campaign(load_campaign(spec), tmp_path / "out", workers=2, on_row=kill_a_worker)
    assert killed
    pd.testing.assert_frame_equal(stable(o), stable(ref))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped so the kernel kills it if this test process dies (util-linux setpriv
    sets the parent-death signal and execs): no server outlives a crashed test run."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else cmd


@pytest.fixture()
def dask_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A scheduler and two single-threaded workers, separate processes on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = child_env()
    log = (tmp_path / "dask.log").open("wb")

    def start(*args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "dask", *args, "--host", "127.0.0.1", "--no-dashboard"]
        return subprocess.Popen(
            die_with_parent(cmd), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
        )

    scheduler = start("scheduler", "--port", str(port), "--idle-timeout", "300s")
    workers = [
        start(
            "worker",
            address,
            "--nthreads",
            "1",
            "--no-nanny",
            "--name",
            f"w{i}",
            "--death-timeout",
            "30s",
            "--lifetime",
            "600s",
        )
        for i in range(2)
    ]
    try:
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in (*workers, scheduler):  # a test cluster holds nothing worth a clean shutdown
            p.kill()
            p.wait()
        log.close()


def test_same_seed_same_rows_on_a_dask_cluster_even_when_a_worker_is_killed(
    reference: tuple[Path, Outcome],
    dask_cluster: tuple[str, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
) -> None:
    spec, ref = reference
    address, workers = dask_cluster
    killed: list[int] = []

    def kill_a_worker(_: dict[str, Any]) -> None:
        if not killed:
            killed.append(workers[0].pid)
            workers[0].send_signal(signal.SIGKILL)

    o = run_campaign(load_campaign(spec), tmp_path / "out", cluster=address, on_row=kill_a_worker)
    assert killed and workers[0].wait(timeout=10) == -signal.SIGKILL
    assert o.summary["engine"] == f"dask {address}"
    pd.testing.assert_frame_equal(stable(o), stable(ref))


def twin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_twin(*args, cwd=cwd)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_killed_campaign_leaves_no_partial_or_duplicated_rows_in_the_database_and_resumes(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    import sqlalchemy as sa

    spec = write_campaign(tmp_path, duration=40)
    if backend == "sqlite":
        db = str(tmp_path / "modes.db")
        url = f"sqlite:///{db}"
    else:
        db = url = request.getfixturevalue("postgres_url")
        from twin.store import Base, Store

        with Store(url) as fresh:  # the server is shared by the module: start from empty tables
            Base.metadata.drop_all(fresh.engine)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "twin.cli", "campaign", str(spec), "--out", str(out)]
    cmd += ["--db", db, "--workers", "2"]
    env = child_env()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    parts = out / "parts"
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.parquet"))) >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the campaign ended before it could be killed"
    workers = psutil.Process(proc.pid).children()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "worker processes outlived the killed campaign"
    on_disk = {p.stem for p in parts.glob("*.parquet")}

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as con:
        if backend == "sqlite":
            assert con.exec_driver_sql("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [r[0] for r in con.exec_driver_sql("SELECT run_id FROM runs")]
        assert len(ids) == len(set(ids)), "duplicated runs"
        assert set(ids) <= on_disk, "a run in the database has no result file"
        assert 4 <= len(on_disk) < 16
        nulls = con.exec_driver_sql(
            "SELECT count(*) FROM runs "
            "WHERE requests IS NULL OR succeeded IS NULL OR scenario IS NULL"
        ).fetchone()
        assert nulls == (0,)
        assert con.exec_driver_sql("SELECT count(*) FROM failure_modes").fetchone() == (0,)
        assert con.exec_driver_sql("SELECT status FROM campaigns").fetchall() == [("running",)]

    r = twin("campaign", str(spec), "--out", str(out), "--db", db)
    assert r.returncode == 0, r.stderr
    with engine.connect() as con:
        counts = con.exec_driver_sql("SELECT count(*), count(DISTINCT run_id) FROM runs")
        assert counts.fetchone() == (16, 16)
        assert con.exec_driver_sql("SELECT status FROM campaigns").fetchall() == [("finished",)]
        modes = con.exec_driver_sql("SELECT count(*) FROM failure_modes").fetchone()[0]
    engine.dispose()
    assert modes > 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 16 and runs["run_id"].is_unique
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reused"] == len(on_disk)
    fresh = run_campaign(load_campaign(spec), tmp_path / "fresh")
    pd.testing.assert_frame_equal(stable(runs), stable(fresh))


def test_campaign_command_writes_tables_report_and_plots(tmp_path: Path) -> None:
    spec = write_campaign(tmp_path)
    out = tmp_path / "out"
    r = twin("campaign", str(spec), "--out", str(out), "--workers", "2", "--no-db")
    assert r.returncode == 0, r.stderr
    for name in (
        "runs.parquet",
        "aggregated.parquet",
        "summary.json",
        "report.html",
        "impact.png",
        "blast-radius.png",
        "response.png",
        "curves.png",
    ):
        assert (out / name).exists(), name
    html = (out / "report.html").read_text()
    assert "Failure modes, worst first" in html and 'src="blast-radius.png"' in html
    assert "16 runs" in r.stdout


def test_campaign_command_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    spec = write_campaign(tmp_path)
    spec.write_text(spec.read_text().replace("replications: 2", "replications: 0"))
    r = twin("campaign", str(spec), "--out", str(tmp_path / "o"), "--no-db")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "replications" in r.stderr
    r = twin("campaign", str(tmp_path / "missing.yaml"), "--no-db")
    assert r.returncode == 2 and "file not found" in r.stderr
    good = write_campaign(tmp_path)
    r = twin("campaign", str(good), "--workers", "2", "--cluster", "tcp://127.0.0.1:1", "--no-db")
    assert r.returncode == 2 and "not both" in r.stderr
