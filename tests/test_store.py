"""The failure-mode database: idempotent, transactional, on SQLite files and real PostgreSQL."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_twin
from pg_server import postgres_url  # noqa: F401 - a fixture

from twin.errors import InputError
from twin.store import Store, parse_chaos, resolve_url

CHAOS = {
    "test_id": "deploy_v2.3_highload",
    "timestamp": "2024-10-27T10:00:00Z",
    "parameters": {"concurrent_users": 1000, "request_rate": 500},
    "injected_faults": [
        {"type": "network_latency", "duration": 2, "value": 200},
        {"type": "cpu_hog", "process": "api_server", "duration": 1},
    ],
    "expected_outcome": "success",
    "actual_outcome": "failure",
    "failure_details": "500 error on /users endpoint",
}

JOURNAL = {
    "chaoslib-version": "1.42.3",
    "platform": "Linux",
    "node": "ci-runner-7",
    "experiment": {
        "version": "1.0.0",
        "title": "Checkout survives a cart outage",
        "configuration": {"base_url": "http://shop.local", "api_secret_token": "x"},
        "steady-state-hypothesis": {"title": "checkout answers", "probes": []},
        "method": [],
    },
    "start": "2024-11-02T08:15:00.000001",
    "end": "2024-11-02T08:16:10.100000",
    "duration": 70.1,
    "status": "completed",
    "deviated": True,
    "steady_states": {
        "before": {"steady_state_met": True, "probes": []},
        "after": {
            "steady_state_met": False,
            "probes": [
                {
                    "activity": {"type": "probe", "name": "checkout-p99-under-1s"},
                    "status": "succeeded",
                    "tolerance_met": False,
                },
            ],
        },
    },
    "run": [
        {
            "activity": {
                "type": "action",
                "name": "terminate-cart-pods",
                "provider": {
                    "type": "python",
                    "module": "chaosk8s.pod.actions",
                    "func": "terminate_pods",
                    "arguments": {"label_selector": "app=cart"},
                },
            },
            "status": "succeeded",
            "start": "2024-11-02T08:15:05",
            "end": "2024-11-02T08:15:06",
            "duration": 1.0,
        },
        {
            "activity": {"type": "probe", "name": "count-cart-pods"},
            "status": "succeeded",
            "duration": 0.2,
        },
    ],
    "rollbacks": [],
}


def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on a real SQLite file or on a real PostgreSQL server (``request.param``), with
    empty tables; closed afterwards. The store fixtures of the store test modules use it."""
    if request.param == "sqlite":
        s = Store(str(tmp_path / "modes.db"))
    else:
        url = request.getfixturevalue("postgres_url")
        s = Store(url)
        from twin.store import Base

        Base.metadata.drop_all(s.engine)  # each test starts from empty tables
        Base.metadata.create_all(s.engine)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same tests on a real SQLite file and on a real PostgreSQL server."""
    yield from open_store(request, tmp_path)


# -- chaos results ----------------------------------------------------------------------------


def test_ingesting_the_same_chaos_result_twice_gives_one_row(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "result.json"
    f.write_text(json.dumps(CHAOS))
    first = store.ingest_files([f])
    second = store.ingest_files([f, f])
    assert (first.added, first.unchanged) == (1, 0)
    assert (second.added, second.unchanged, second.updated) == (0, 2, 0)
    rows = store.chaos_results()
    assert len(rows) == 1
    r = rows[0]
    assert r["test_id"] == "deploy_v2.3_highload" and r["passed"] is False
    assert r["fault_kinds"] == ["cpu_exhaustion", "latency"]
    assert r["parameters"]["request_rate"] == 500
    assert r["details"] == "500 error on /users endpoint"


def test_a_changed_chaos_result_updates_its_row_instead_of_adding_one(store: Store) -> None:
    store.ingest(parse_chaos(CHAOS))
    fixed = copy.deepcopy(CHAOS)
    fixed["failure_details"] = "500 error on /users endpoint (pool exhausted)"
    rep = store.ingest(parse_chaos(fixed))
    assert (rep.added, rep.updated) == (0, 1)
    rerun = {**CHAOS, "timestamp": "2024-10-28T10:00:00Z", "actual_outcome": "success"}
    assert store.ingest(parse_chaos([rerun])).added == 1  # a new run of the test is a new row
    rows = store.chaos_results()
    assert len(rows) == 2
    assert rows[0]["details"].endswith("(pool exhausted)") and rows[1]["passed"] is True


def test_chaos_toolkit_journal_is_ingested_with_its_actions_and_verdict(store: Store) -> None:
    rec = parse_chaos(JOURNAL, "journal.json")[0]
    assert rec["format"] == "chaostoolkit"
    assert rec["test_id"] == "Checkout survives a cart outage"
    assert rec["passed"] is False and rec["actual_outcome"] == "deviated"
    assert [f["type"] for f in rec["faults"]] == ["terminate-cart-pods"]
    assert rec["fault_kinds"] == ["outage"]
    assert "checkout-p99-under-1s" in rec["details"]
    assert "api_secret_token" not in rec["parameters"]
    assert store.ingest([rec]).added == 1
    again = copy.deepcopy(JOURNAL)
    again["node"] = "another-runner"  # where it ran does not make it a different result
    assert store.ingest(parse_chaos(again)).unchanged == 1
    assert len(store.chaos_results()) == 1


def test_a_bad_file_in_a_batch_stores_nothing(store: Store, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(CHAOS))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"test_id": "x"}))
    with pytest.raises(InputError, match="timestamp: required field is missing"):
        store.ingest_files([good, bad])
    assert store.chaos_results() == []
    broken = tmp_path / "broken.json"
    broken.write_text('{"test_id": ')
    with pytest.raises(InputError, match=r"broken.json:1: invalid JSON"):
        store.ingest_files([broken])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"test_id": 5,\n "timestamp": "2024-10-27T10:00:00Z"}', r"r.json:1: test_id: expected"),
        (
            '{"test_id": "a",\n "timestamp": "2024-10-27T10:00:00Z",\n "injected_faults": "x"}',
            r"r.json:3: injected_faults: expected a list",
        ),
        (
            '[{"test_id": "a", "timestamp": "2024-10-27T10:00:00Z"},\n'
            ' {"test_id": "b",\n  "timestamp": "yesterday"}]',
            r"r.json:3: \[1\]\.timestamp: expected an ISO 8601 timestamp",
        ),
        ('{"start": "2024-10-27T10:00:00Z",\n "experiment": {}, "run": 3}', r"r.json:2: run:"),
        ('{"hello": 1}', r"r.json: not a chaos result"),
    ],
)
def test_a_bad_chaos_result_is_one_line_naming_file_line_and_path(
    store: Store, tmp_path: Path, text: str, message: str
) -> None:
    f = tmp_path / "r.json"
    f.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        store.ingest_files([f])
    assert "\n" not in str(err.value)
    assert store.chaos_results() == []


# -- campaigns, runs, failure modes ------------------------------------------------------------


def _row(i: int, **over: Any) -> dict[str, Any]:
    row = {
        "run_id": f"run{i:03d}",
        "scenario": "grid/outage/b/1/x1",
        "policy": "none",
        "replication": i,
        "seed": 4_000_000_000 + i,
        "origin": "grid",
        "fault_kind": "outage",
        "target": "b",
        "intensity": 1.0,
        "load": 1.0,
        "requests": 100,
        "succeeded": 60,
        "failed": 40,
        "availability": 0.6,
        "latency_p99": 0.2,
        "slo_breached": True,
        "blast_radius": 2,
        "affected_services": '["a", "b"]',
        "failures_SERVICE_DOWN": 40,
        "failures_TIMEOUT": 0,
    }
    row.update(over)
    return row


def _mode(threshold: float, campaign: str, runs: list[str], severity: float) -> dict[str, Any]:
    return {
        "topology": "chain3",
        "policy": "none",
        "fault_kind": "error_rate",
        "target": "c",
        "load": 1.0,
        "intensity_threshold": threshold,
        "intensity_held": None,
        "direction": "above",
        "slos_breached": ["availability"],
        "services": ["a", "b", "c"],
        "failure_reasons": {"ERROR": 12},
        "blast_radius": 3,
        "availability": 0.9,
        "latency_p99": 0.3,
        "severity": severity,
        "scenario": "s",
        "evidence": {"campaigns": [campaign], "runs": runs},
    }


def test_recording_the_same_runs_twice_keeps_one_row_each(store: Store) -> None:
    spec = {"name": "c"}
    cid = store.begin_campaign(key="k1", name="c", topology="chain3", spec=spec, runs_total=3)
    assert (
        store.begin_campaign(key="k1", name="c", topology="chain3", spec=spec, runs_total=3) == cid
    )
    assert store.add_runs(cid, [_row(0), _row(1)]) == 2
    assert store.add_runs(cid, [_row(1), _row(2)]) == 1
    assert store.counts()["runs"] == 3 and store.counts()["campaigns"] == 1


def test_refound_failure_modes_merge_evidence_and_keep_the_lowest_threshold(store: Store) -> None:
    c1 = store.begin_campaign(key="k1", name="one", topology="chain3", spec={}, runs_total=1)
    c2 = store.begin_campaign(key="k2", name="two", topology="chain3", spec={}, runs_total=1)
    mit = {
        "mode": ["chain3", "none", "error_rate", "c", 1.0],
        "policy": "guarded",
        "policy_document": {"clients": {"*": {"timeout": 0.5}}},
        "holds_everywhere": False,
        "holds_up_to": 0.05,
        "availability": 0.999,
        "latency_p99": 0.2,
        "instead_of": {"availability": 0.9},
        "scenario": "s",
    }
    store.finish_campaign(c1, [_mode(0.3, "k1", ["r1"], 5.0)], [mit])
    store.finish_campaign(c2, [_mode(0.1, "k2", ["r2"], 9.0)], [mit])
    store.finish_campaign(c2, [_mode(0.1, "k2", ["r2"], 9.0)], [mit])  # resumed: no change
    modes = store.failure_modes()
    assert len(modes) == 1
    m = modes[0]
    assert m["intensity_threshold"] == 0.1 and m["severity"] == 9.0
    assert m["evidence"] == {"campaigns": ["k1", "k2"], "runs": ["r1", "r2"]}
    assert [x["policy"] for x in m["mitigations"]] == ["guarded"]
    assert store.counts()["mitigations"] == 1


def test_failure_modes_are_listed_worst_first(store: Store) -> None:
    cid = store.begin_campaign(key="k", name="c", topology="chain3", spec={}, runs_total=1)
    a = _mode(0.1, "k", [], 2.0)
    b = {**_mode(0.1, "k", [], 40.0), "target": "b"}
    c = {**_mode(0.1, "k", [], 7.0), "target": "a"}
    store.finish_campaign(cid, [a, b, c], [])
    assert [m["target"] for m in store.failure_modes()] == ["b", "a", "c"]
    assert [m["target"] for m in store.failure_modes(limit=1)] == ["b"]


def test_a_campaign_records_its_runs_and_modes_once_even_when_rerun(
    store: Store, tmp_path: Path
) -> None:
    from test_campaign import write_campaign

    from twin.campaign import load_campaign, run_campaign

    plan = load_campaign(write_campaign(tmp_path))
    o = run_campaign(plan, tmp_path / "out", store=store)
    counts = store.counts()
    assert counts["runs"] == len(o.runs) == 16 and counts["campaigns"] == 1
    assert counts["failure_modes"] == len(o.modes) > 0
    run_campaign(plan, tmp_path / "out2", store=store)  # every run again, elsewhere
    assert store.counts() == counts


def test_database_urls_default_to_an_embedded_file(tmp_path: Path) -> None:
    assert resolve_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url(None).startswith("sqlite:///") and resolve_url(None).endswith(".db")
    Store(str(tmp_path / "new" / "dir" / "x.db")).close()  # parent folders are created
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cannot open database"):
        Store(str(tmp_path / "file" / "x.db"))


def _twin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_twin(*args, cwd=cwd)


def test_ingest_and_modes_commands(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(CHAOS))
    (tmp_path / "j.json").write_text(json.dumps(JOURNAL))
    r = _twin("ingest", "r.json", "j.json", "r.json", "--db", "t.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 new, 1 already there" in r.stdout
    r = _twin("modes", "--db", "t.db", cwd=tmp_path)
    assert r.returncode == 0 and "no failure modes recorded yet (2 chaos results" in r.stdout
    (tmp_path / "bad.json").write_text("[1]")
    r = _twin("ingest", "bad.json", "--db", "t.db", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    s = Store(str(tmp_path / "t.db"))
    cid = s.begin_campaign(key="k", name="c", topology="chain3", spec={}, runs_total=1)
    s.finish_campaign(cid, [_mode(0.1, "k", ["r"], 3.5)], [])
    s.close()
    r = _twin("modes", "--db", "t.db", "--json", cwd=tmp_path)
    assert r.returncode == 0
    assert json.loads(r.stdout)[0]["fault_kind"] == "error_rate"
    r = _twin("modes", "--db", "t.db", cwd=tmp_path)
    assert "3.5x" in r.stdout and "error_rate at c" in r.stdout
