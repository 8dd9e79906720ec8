"""Two ``twin ingest`` processes at once, into a database neither has created yet.

Each round starts two real command-line processes together on a fresh database (a new SQLite
file; a new PostgreSQL database), each with files of its own and two files both ingest, so
the schema is created concurrently and the shared records are inserted concurrently. Every
round must end with both processes exiting 0 and every record stored exactly once, the
shared ones reported as added by one process and "already there" by the other.

``TWIN_STORE_ROUNDS`` sets the rounds per backend (5 in the suite; the figures in
docs/store.md are from ``TWIN_STORE_ROUNDS=20``); the per-round wall times are
printed (``pytest -s``) as ``store-concurrency <backend>: ...``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import child_env
from pg_server import postgres_url  # noqa: F401 - a fixture
from test_store_formats import LITMUS, NETWORK_CHAOS, POD_CHAOS

from twin.store import Store

ROUNDS = int(os.environ.get("TWIN_STORE_ROUNDS", "5"))
PER_FILE = 5
_REPORT = re.compile(r"(\d+) new, (\d+) already there, (\d+) updated")

pytestmark = pytest.mark.slow


def _plain(name: str) -> list[dict[str, Any]]:
    return [
        {
            "test_id": f"{name}-{i}",
            "timestamp": f"2024-10-27T10:0{i}:00Z",
            "parameters": {"rate": 10 * i},
            "injected_faults": [{"type": "network_latency", "value": 100 + i}],
            "expected_outcome": "success",
            "actual_outcome": "success" if i % 2 else "failure",
        }
        for i in range(PER_FILE)
    ]


def _files(folder: Path) -> tuple[list[str], list[str], int]:
    """Four files for each process and two both ingest (one plain, one of Kubernetes objects);
    returns the two argument lists and how many distinct records they hold."""
    folder.mkdir()
    own: dict[str, list[str]] = {"a": [], "b": []}
    for who, paths in own.items():
        for k in range(4):
            path = folder / f"{who}{k}.json"
            path.write_text(json.dumps(_plain(f"{who}{k}")))
            paths.append(str(path))
    shared = [folder / "shared-plain.json", folder / "shared-kube.json"]
    shared[0].write_text(json.dumps(_plain("shared")))
    shared[1].write_text(
        json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [LITMUS, POD_CHAOS, NETWORK_CHAOS]}
        )
    )
    both = [str(p) for p in shared]
    return own["a"] + both, own["b"] + both, 8 * PER_FILE + PER_FILE + 3


def _round(db: str, a: list[str], b: list[str], cwd: Path) -> tuple[float, list[Any]]:
    """Start both processes, then wait for both; returns the wall time and their results."""
    env = child_env()
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "twin.cli", "ingest", *files, "--db", db],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        for files in (a, b)
    ]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append((p.returncode, out, err))
    return time.perf_counter() - start, results


def _check_round(results: list[Any], store: Store, distinct: int, shared: int) -> None:
    totals = [0, 0, 0]
    for code, out, err in results:
        assert code == 0 and err == "", (code, out, err)
        found = _REPORT.search(out)
        assert found, out
        totals = [t + int(x) for t, x in zip(totals, found.groups(), strict=True)]
    added, already, updated = totals
    assert (added, already, updated) == (distinct, shared, 0)
    rows = store.chaos_results()
    keys = [(r["format"], r["test_id"], r["started_at"]) for r in rows]
    assert len(keys) == len(set(keys)) == distinct  # every record exactly once


def _run_rounds(backend: str, fresh_db: Callable[[int], str], tmp_path: Path) -> None:
    times = []
    for i in range(ROUNDS):
        a, b, distinct = _files(tmp_path / f"files{i}")
        db = fresh_db(i)
        wall, results = _round(db, a, b, tmp_path)
        times.append(wall)
        with Store(db) as store:
            _check_round(results, store, distinct, PER_FILE + 3)
    print(
        f"\nstore-concurrency {backend}: {ROUNDS} rounds of 2 processes, "
        f"{distinct + PER_FILE + 3} records ingested per round ({distinct} distinct, "
        f"{PER_FILE + 3} by both); wall s min {min(times):.2f} "
        f"median {statistics.median(times):.2f} max {max(times):.2f} total {sum(times):.1f}"
    )


def test_two_concurrent_ingests_into_a_fresh_sqlite_file_store_every_record_once(
    tmp_path: Path,
) -> None:
    _run_rounds("sqlite", lambda i: str(tmp_path / f"round{i}.db"), tmp_path)


@pytest.fixture
def fresh_pg_databases(postgres_url: str) -> Iterator[Callable[[int], str]]:  # noqa: F811
    """A new, empty PostgreSQL database per round on the throwaway server; dropped after."""
    import psycopg

    made: list[str] = []
    base, _, _ = postgres_url.rpartition("/")

    def fresh(i: int) -> str:
        name = f"twin_round_{i}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return f"{base}/{name}"

    yield fresh
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_two_concurrent_ingests_into_a_fresh_postgresql_database_store_every_record_once(
    fresh_pg_databases: Callable[[int], str], tmp_path: Path
) -> None:
    _run_rounds("postgresql", fresh_pg_databases, tmp_path)
