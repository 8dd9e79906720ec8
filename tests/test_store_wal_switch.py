"""The switch to WAL on a fresh SQLite file, when another connection switches it too: SQLite
can answer ``database is locked`` at once there, without waiting out the busy timeout, so
the switch is retried for as long as that timeout; any other error is not retried."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from twin.store.connect import switch_to_wal


class Cursor:
    """A DB-API cursor whose first ``refusals`` executions fail with ``error``."""

    def __init__(self, refusals: int, error: str = "database is locked") -> None:
        self.refusals, self.error, self.calls = refusals, error, 0

    def execute(self, sql: str, *_: Any) -> None:
        self.calls += 1
        if self.calls <= self.refusals:
            raise sqlite3.OperationalError(self.error)


def test_a_locked_switch_is_retried_until_it_goes_through() -> None:
    cur = Cursor(refusals=3)
    switch_to_wal(cur, timeout_s=5.0)
    assert cur.calls == 4


def test_a_switch_still_locked_after_the_timeout_says_so() -> None:
    cur = Cursor(refusals=10**6)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switch_to_wal(cur, timeout_s=0.05)
    assert cur.calls > 1


def test_another_error_is_not_retried() -> None:
    cur = Cursor(refusals=5, error="file is not a database")
    with pytest.raises(sqlite3.OperationalError, match="not a database"):
        switch_to_wal(cur, timeout_s=5.0)
    assert cur.calls == 1
