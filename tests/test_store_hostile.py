"""Hostile chaos results and databases: every one is a single located line (exit 2 on the
command line) or, for the same run in other timestamp forms, one row; SQLite and PostgreSQL
accept and refuse exactly the same things, because the store checks before it inserts."""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_twin
from pg_server import postgres_url  # noqa: F401 - a fixture
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
)
from test_store import CHAOS, JOURNAL, open_store

from twin.errors import InputError
from twin.store import Store, parse_chaos
from twin.store.schema import TEST_ID_CHARS

BIG_TEST_ID = "x" * 10_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every test on a real SQLite file and on a real PostgreSQL server."""
    yield from open_store(request, tmp_path)


def _with(base: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


# (name, document, expected: a regex the one-line error matches, or None when accepted)
CORPUS: list[tuple[str, Any, str | None]] = [
    (
        "nan-in-parameters",
        _with(CHAOS, ("parameters", "rate"), math.nan),
        r"parameters.rate: "
        r"expected a finite number, got nan",
    ),
    (
        "inf-in-fault",
        _with(CHAOS, ("injected_faults", 0, "value"), math.inf),
        r"injected_faults\[0\].value: expected a finite number",
    ),
    (
        "10-mb-test-id",
        _with(CHAOS, ("test_id",), BIG_TEST_ID),
        rf"test_id: 10000000 characters, longer than the {TEST_ID_CHARS} allowed",
    ),
    ("nul-in-test-id", _with(CHAOS, ("test_id",), "a\x00b"), r"test_id: text contains a NUL"),
    (
        "nul-in-details",
        _with(CHAOS, ("failure_details",), "boom\x00"),
        r"failure_details: text contains a NUL",
    ),
    ("nul-in-a-key", _with(CHAOS, ("parameters",), {"a\x00": 1}), r"the key contains a NUL"),
    (
        "lone-surrogate",
        _with(CHAOS, ("actual_outcome",), "fail\ud800"),
        r"actual_outcome: text is not valid Unicode",
    ),
    (
        "outcome-object",
        _with(CHAOS, ("actual_outcome",), {"code": 500}),
        r"actual_outcome: expected a string, number or boolean",
    ),
    (
        "long-outcome",
        _with(CHAOS, ("expected_outcome",), "y" * 201),
        r"expected_outcome: 201 characters, longer than the 200 allowed",
    ),
    (
        "timestamp-number",
        _with(CHAOS, ("timestamp",), 1730000000),
        r"timestamp: expected an ISO 8601 timestamp string",
    ),
    (
        "timestamp-year-0",
        _with(CHAOS, ("timestamp",), "0000-01-01T00:00:00Z"),
        r"timestamp: expected an ISO 8601 timestamp",
    ),
    (
        "parameters-list",
        _with(CHAOS, ("parameters",), [1, 2]),
        r"parameters: expected an object, got a list",
    ),
    (
        "fault-type-number",
        _with(CHAOS, ("injected_faults", 0, "type"), 7),
        r"injected_faults\[0\].type: expected a string",
    ),
    (
        "journal-run-item-number",
        _with(JOURNAL, ("run", 0), 5),
        r"run\[0\]: expected an activity result object, got a number",
    ),
    (
        "journal-activity-string",
        _with(JOURNAL, ("run", 0, "activity"), "kill"),
        r"run\[0\].activity: expected an object, got a string",
    ),
    (
        "journal-provider-list",
        _with(JOURNAL, ("run", 0, "activity", "provider"), []),
        r"run\[0\].activity.provider: expected an object, got a list",
    ),
    ("journal-status-number", _with(JOURNAL, ("status",), 3), r"status: expected a string"),
    (
        "journal-deviated-string",
        _with(JOURNAL, ("deviated",), "yes"),
        r"deviated: expected true or false, got a string",
    ),
    (
        "journal-steady-states-list",
        _with(JOURNAL, ("steady_states",), []),
        r"steady_states: expected an object, got a list",
    ),
    (
        "journal-probes-string",
        _with(JOURNAL, ("steady_states", "after", "probes"), "x"),
        r"steady_states.after.probes: expected a list",
    ),
    (
        "journal-probe-number",
        _with(JOURNAL, ("steady_states", "after", "probes"), [1]),
        r"steady_states.after.probes\[0\]: expected an object",
    ),
    (
        "journal-configuration-list",
        _with(JOURNAL, ("experiment", "configuration"), ["a"]),
        r"experiment.configuration: expected an object, got a list",
    ),
    (
        "journal-title-object",
        _with(JOURNAL, ("experiment", "title"), {"t": 1}),
        r"experiment.title: expected a string, got an object",
    ),
    # accepted, and stored the same on both backends
    ("details-object", _with(CHAOS, ("failure_details",), {"status": 500, "path": "/users"}), None),
    ("details-list", _with(CHAOS, ("failure_details",), ["a", 1]), None),
    ("outcome-number", _with(CHAOS, ("actual_outcome",), 500), None),
    ("longest-test-id", _with(CHAOS, ("test_id",), "t" * TEST_ID_CHARS), None),
    ("unicode-and-big-int", _with(CHAOS, ("parameters",), {"名前": "✓ ünïcode", "n": 2**70}), None),
    (
        "deeply-nested-parameters",
        _with(CHAOS, ("parameters",), json.loads("[" * 50 + "]" * 50)),
        r"parameters: expected an object, got a list",
    ),
]


@pytest.mark.parametrize(("name", "doc", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_both_backends_accept_and_refuse_the_same_corpus(
    store: Store, name: str, doc: Any, expected: str | None
) -> None:
    """The same expectation for every case on SQLite and PostgreSQL: a refusal is the same
    one-line message and stores nothing; an acceptance reads back exactly as parsed."""
    if expected is not None:
        with pytest.raises(InputError, match=expected) as err:
            store.ingest(parse_chaos(doc, "corpus.json"))
        assert "\n" not in str(err.value)
        assert store.chaos_results() == []
        return
    records = parse_chaos(doc, "corpus.json")
    assert store.ingest(records).added == 1
    (row,) = store.chaos_results()
    for key in ("test_id", "started_at", "parameters", "faults", "details", "actual_outcome"):
        assert row[key] == records[0][key], key
    assert row["document"] == doc
    assert store.ingest(parse_chaos(doc, "corpus.json")).unchanged == 1


def test_structured_failure_details_are_kept_as_json_text(store: Store) -> None:
    doc = _with(CHAOS, ("failure_details",), {"status": 500, "path": "/users"})
    store.ingest(parse_chaos(doc))
    assert json.loads(store.chaos_results()[0]["details"]) == {"status": 500, "path": "/users"}


def _bypassing_the_parser(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    rec = copy.deepcopy(parse_chaos(CHAOS, "api")[0])
    mutate(rec)
    return rec


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["parameters"].update(x=math.nan), r"api: parameters.x: expected a finite"),
        (lambda r: r.update(test_id="x" * 501), r"api: test_id: 501 characters"),
        (lambda r: r.update(started_at="last week"), r"api: started_at: expected an ISO 8601"),
        (lambda r: r.update(details={"a": 1}), r"api: details: expected a string"),
        (lambda r: r.pop("content_hash"), r"api: not a normalised chaos result: missing"),
        (lambda r: r["faults"].append({"t": "\x00"}), r"api: faults\[2\].t: text contains a NUL"),
    ],
)
def test_records_built_without_the_parser_are_checked_before_insert_too(
    store: Store, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        store.ingest([_bypassing_the_parser(mutate)])
    assert store.chaos_results() == []


def test_the_same_instant_in_other_timestamp_forms_is_one_row(store: Store) -> None:
    forms = [
        "2024-10-27T10:00:00Z",
        "2024-10-27T10:00:00+00:00",
        "2024-10-27T11:00:00+01:00",
        "2024-10-27T10:00:00.000Z",
        "2024-10-27T05:00:00-05:00",
    ]
    reports = [store.ingest(parse_chaos({**CHAOS, "timestamp": t})) for t in forms]
    assert [r.outcomes for r in reports] == [("added",)] + [("unchanged",)] * 4
    (row,) = store.chaos_results()
    assert row["started_at"] == "2024-10-27T10:00:00.000000Z"
    assert row["document"]["timestamp"] == forms[0]  # the raw text stays in the document
    later = store.ingest(parse_chaos({**CHAOS, "timestamp": "2024-10-27T10:00:00.5Z"}))
    assert later.added == 1  # half a second later is another run


def _old_chaos_table(meta: MetaData) -> Table:
    """The chaos-results table as the store laid it out before instants were normalised."""
    return Table(
        "chaos_results",
        meta,
        Column("id", Integer, primary_key=True),
        Column("format", String(20)),
        Column("test_id", String(500)),
        Column("started_at", String(40)),
        Column("parameters", JSON),
        Column("faults", JSON),
        Column("fault_kinds", JSON),
        Column("expected_outcome", String(100), nullable=True),
        Column("actual_outcome", String(100), nullable=True),
        Column("passed", Boolean, nullable=False),
        Column("details", Text, nullable=True),
        Column("content_hash", String(64)),
        Column("source", String(1000)),
        Column("ingested_at", DateTime),
        UniqueConstraint("format", "test_id", "started_at", name="uq_chaos_result"),
    )


def test_an_old_chaos_table_is_upgraded_keeping_one_row_per_instant(store: Store) -> None:
    from datetime import datetime

    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE chaos_results")
        old = _old_chaos_table(MetaData())
        old.create(conn)
        base = parse_chaos(CHAOS)[0]
        keep = ("format", "test_id", "parameters", "faults", "fault_kinds", "passed", "source")
        keep += ("expected_outcome", "actual_outcome")
        for i, (stamp, details) in enumerate(
            [
                ("2024-10-27T10:00:00Z", "first"),
                ("2024-10-27T11:00:00+01:00", "latest"),
                ("2024-10-28T10:00:00Z", "another run"),
            ]
        ):
            row = {k: base[k] for k in keep}
            conn.execute(
                insert(old).values(
                    **row,
                    started_at=stamp,
                    details=details,
                    content_hash="old",
                    ingested_at=datetime(2024, 11, 1, i),
                )
            )
    upgraded = Store(store.url)
    try:
        rows = upgraded.chaos_results()
        assert [(r["started_at"], r["details"]) for r in rows] == [
            ("2024-10-27T10:00:00.000000Z", "latest"),
            ("2024-10-28T10:00:00.000000Z", "another run"),
        ]
        again = upgraded.ingest(parse_chaos({**CHAOS, "failure_details": "latest"}))
        assert again.outcomes == ("unchanged",)  # the hash was recomputed on upgrade
    finally:
        upgraded.close()


# -- on the command line ----------------------------------------------------------------------


def _one_line_exit_2(r: Any) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("twin: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("random-bytes", os.urandom(4096) + b"\xff", "not UTF-8 text"),
        ("nan", json.dumps(_with(CHAOS, ("parameters", "x"), math.nan)).encode(), "finite"),
        ("big-test-id", json.dumps(_with(CHAOS, ("test_id",), BIG_TEST_ID)).encode(), "500"),
        ("nul", json.dumps(_with(CHAOS, ("test_id",), "a\x00")).encode(), "NUL"),
        ("journal-types", json.dumps(_with(JOURNAL, ("run", 0, "activity"), 1)).encode(), "run"),
        ("deep", b"[" * 100_000, "nested too deeply"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "",
)
def test_every_hostile_chaos_file_is_one_line_and_exit_2_and_stores_nothing(
    tmp_path: Path, name: str, content: bytes, needle: str
) -> None:
    (tmp_path / "ok.json").write_text(json.dumps(CHAOS))
    (tmp_path / f"{name}.json").write_bytes(content)
    r = run_twin("ingest", "ok.json", f"{name}.json", "--db", "t.db", cwd=tmp_path, timeout=60)
    _one_line_exit_2(r)
    assert needle in r.stderr
    assert Store(str(tmp_path / "t.db")).counts()["chaos_results"] == 0


def test_timestamp_forms_on_the_command_line_are_one_row(tmp_path: Path) -> None:
    names = []
    for i, stamp in enumerate(("Z", "+00:00", "+01:00", ".000Z")):
        t = "2024-10-27T11:00:00+01:00" if stamp == "+01:00" else f"2024-10-27T10:00:00{stamp}"
        (tmp_path / f"r{i}.json").write_text(json.dumps({**CHAOS, "timestamp": t}))
        names.append(f"r{i}.json")
    r = run_twin("ingest", *names, "--db", "t.db", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "1 new, 3 already there, 0 updated" in r.stdout


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("text-file", lambda p: p.write_text("hello, I am not a database\n" * 20)),
        ("random-bytes", lambda p: p.write_bytes(os.urandom(8192))),
        ("directory", lambda p: p.mkdir()),
    ],
)
def test_a_db_that_is_not_a_database_is_one_line_and_exit_2(
    tmp_path: Path, name: str, make: Callable[[Path], Any]
) -> None:
    (tmp_path / "ok.json").write_text(json.dumps(CHAOS))
    make(tmp_path / name)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_twin("ingest", "ok.json", "--db", name, cwd=tmp_path, timeout=60)
    _one_line_exit_2(r)
    assert "cannot open database" in r.stderr and name in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left beside it


def test_an_old_sqlite_row_holding_nan_survives_the_upgrade(tmp_path: Path) -> None:
    """SQLite used to store a NaN silently: upgrading keeps that row rather than failing."""
    from datetime import datetime

    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        old = _old_chaos_table(MetaData())
        old.create(conn)
        base = parse_chaos(CHAOS)[0]
        keep = ("format", "test_id", "faults", "fault_kinds", "passed", "source")
        conn.execute(
            insert(old).values(
                **{k: base[k] for k in keep},
                parameters={"rate": math.nan},
                started_at="2024-10-27T10:00:00Z",
                content_hash="old",
                ingested_at=datetime(2024, 11, 1),
            )
        )
    engine.dispose()
    with Store(str(tmp_path / "old.db")) as upgraded:
        (row,) = upgraded.chaos_results()
        assert math.isnan(row["parameters"]["rate"])
        assert row["started_at"] == "2024-10-27T10:00:00.000000Z"
