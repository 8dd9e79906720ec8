"""Opening the failure-mode database safely when several processes share it.

Two ``twin ingest`` or campaign processes may open a fresh database at the same moment, and
keep writing side by side. The rules that make that safe, per backend:

- **SQLite.** Every connection waits up to :data:`BUSY_TIMEOUT_MS` for a lock instead of
  failing with ``database is locked`` (set first). The switch to WAL is retried for as
  long: two connections switching a fresh file at once can be told ``database is locked``
  straight away, without SQLite's busy handler waiting at all. Every
  write transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock before its first
  read, so two writers queue instead of both reading, both trying to upgrade to a write, and
  one failing. Reads start a plain ``BEGIN`` and, in WAL mode, never wait for a writer.
- **PostgreSQL.** Connecting gives up after :data:`CONNECT_TIMEOUT_S`; waiting for a lock
  gives up after the same :data:`BUSY_TIMEOUT_MS`, each with one line, never a hang.
- **Creating or upgrading the tables** happens in one write transaction that holds a lock
  (SQLite's write lock; a PostgreSQL transaction-level advisory lock) and looks again at what
  exists once it holds it, so the second process finds the tables the first made instead of
  failing with ``table ... already exists``. When every table is already there in its
  current shape, nothing is locked.

Anything the driver refuses while opening (a file that is not a database, a folder, a server
that does not answer) is one :class:`~twin.errors.InputError` naming the database.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, Table, create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError

from twin.errors import InputError
from twin.store.checks import utc_instant
from twin.store.records import content_hash
from twin.store.schema import Base, ChaosResultRow

BUSY_TIMEOUT_MS = 30_000
"""How long a connection waits for another process's lock before giving up (ms)."""
CONNECT_TIMEOUT_S = 10
"""How long connecting to a PostgreSQL server may take (s)."""
WRITE = {"twin_write": True}
"""Execution options of a connection whose transactions write (``BEGIN IMMEDIATE``)."""
_SCHEMA_LOCK = 0x7477696E5F7374  # a fixed advisory-lock key for schema work ("twin_st")
SUPPORTED = ("sqlite", "postgresql")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


def driver_problem(exc: DBAPIError) -> str:
    """The driver's own first line (``file is not a database``), without SQLAlchemy's
    statement dump and link."""
    lines = str(exc.orig).strip().splitlines() if exc.orig is not None else []
    return lines[0] if lines else type(exc.orig or exc).__name__


def switch_to_wal(cur: Any, timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """``PRAGMA journal_mode=WAL`` on the DB-API cursor ``cur``, retried while SQLite says
    ``database is locked``, for up to ``timeout_s`` (then that error stands): another
    connection switching the same fresh file holds the lock, and SQLite refuses at once
    there instead of waiting out its busy timeout. Any other error is raised at once."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writers
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.1)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun by _sqlite_begin, not the driver
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: later locks wait
        switch_to_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")  # durable across process kills
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("twin_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def open_engine(url: str) -> Engine:
    """An engine for ``url`` with the locking rules above; refuses other backends."""
    shown = safe_url(url)
    try:
        engine = create_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise InputError(f"cannot use database URL: {exc}", source=shown) from None
    name = engine.dialect.name
    if name not in SUPPORTED:
        engine.dispose()
        raise InputError(
            f"unsupported database {name!r}: use a SQLite file or a postgresql:// URL",
            source=shown,
        )
    if name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        db_file = engine.url.database
        if db_file and db_file != ":memory:":
            with contextlib.suppress(OSError):  # connecting will say what is wrong
                Path(db_file).parent.mkdir(parents=True, exist_ok=True)
    else:
        engine.dispose()
        engine = create_engine(
            url,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c lock_timeout={BUSY_TIMEOUT_MS}",
            },
        )
    return engine


def _current(conn: Connection) -> bool:
    """Every table exists, in the current shape."""
    insp = inspect(conn)
    names = set(insp.get_table_names())
    if not set(Base.metadata.tables) <= names:
        return False
    return "document" in {c["name"] for c in insp.get_columns("chaos_results")}


def ensure_schema(engine: Engine) -> None:
    """Create the missing tables and upgrade old ones, race-safe (see the module's notes)."""
    try:
        with engine.connect() as conn:
            if _current(conn):
                return
        with engine.execution_options(**WRITE).begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            if "chaos_results" in inspect(conn).get_table_names() and not _current(conn):
                _upgrade_chaos_results(conn)
            Base.metadata.create_all(conn)
    except DBAPIError as exc:
        raise InputError(
            f"cannot open database: {driver_problem(exc)}", source=safe_url(str(engine.url))
        ) from None


def _upgrade_chaos_results(conn: Connection) -> None:
    """Rewrite a chaos-results table from before start instants were normalised: each start
    becomes its UTC instant, a test run stored several times under different timestamp forms
    keeps its latest ingestion, and the raw-document column is added (empty for old rows).
    One transaction: a failure leaves the old table as it was."""
    old = Table("chaos_results", MetaData(), autoload_with=conn)
    rows = [
        dict(r._mapping) for r in conn.execute(select(old).order_by(old.c.ingested_at, old.c.id))
    ]
    old.drop(conn)
    table = ChaosResultRow.__table__
    table.create(conn)  # type: ignore[attr-defined]
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    columns = {c.name for c in table.columns}
    for row in rows:
        with contextlib.suppress(InputError):  # a start that does not parse stays as it was
            row["started_at"] = utc_instant(row["started_at"], ())
        values = {k: v for k, v in row.items() if k in columns and k != "id"}
        values["document"] = None
        values["content_hash"] = content_hash(values)
        key = (values["format"], values["test_id"], values["started_at"])
        latest[key] = values  # oldest ingestion first: the latest one is kept
    if latest:
        conn.execute(table.insert(), list(latest.values()))  # type: ignore[attr-defined]
