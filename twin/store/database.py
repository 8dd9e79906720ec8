"""The connection to the failure-mode database and its writes: campaigns, runs, failure
modes, mitigations and chaos results, each in one transaction."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from twin.errors import InputError, TwinError
from twin.io import DocProblem
from twin.store.chaos import parse_chaos_file
from twin.store.checks import check_json, text, utc_instant
from twin.store.connect import WRITE, driver_problem, ensure_schema, open_engine, safe_url
from twin.store.schema import (
    CHAOS_FIELDS,
    FORMAT_CHARS,
    OUTCOME_CHARS,
    TEST_ID_CHARS,
    CampaignRow,
    ChaosResultRow,
    FailureModeRow,
    MitigationRow,
    RunRow,
    _now,
)

DEFAULT_FILE = "twin.db"
"""The embedded database used when no URL is given (``$TWIN_DB`` overrides it)."""


def resolve_url(url: str | None) -> str:
    """A SQLAlchemy URL from ``None`` (the default file), a path, or a URL; ``postgresql://``
    uses psycopg 3, the driver we install."""
    if not url:
        url = os.environ.get("TWIN_DB") or DEFAULT_FILE
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion did: new rows, identical ones skipped, changed ones updated.

    ``outcomes`` says it per record, in the order given (``added``, ``unchanged`` or
    ``updated``), so a caller that sent one document can answer for that document.
    """

    added: int = 0
    unchanged: int = 0
    updated: int = 0
    outcomes: tuple[str, ...] = ()

    def __add__(self, other: IngestReport) -> IngestReport:
        return IngestReport(
            self.added + other.added,
            self.unchanged + other.unchanged,
            self.updated + other.updated,
            self.outcomes + other.outcomes,
        )


class Store:
    """A connection to the failure-mode database; creates (or upgrades) its tables when
    needed, race-safe across processes (:mod:`twin.store.connect`)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        self.engine = open_engine(self.url)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self.engine.execution_options(**WRITE), expire_on_commit=False)
        try:
            ensure_schema(self.engine)
        except InputError:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises. A write
        transaction holds SQLite's write lock from its start (``BEGIN IMMEDIATE``), so
        concurrent writers queue instead of failing. A driver error (a lock held past the
        busy timeout, a lost server) is one :class:`InputError` line naming the database."""
        sessions = self._writes if write else self._reads
        try:
            with sessions() as session, session.begin():
                yield session
        except DBAPIError as exc:
            raise InputError(
                f"database: {driver_problem(exc)}", source=safe_url(self.url)
            ) from None

    def _insert(self, table: Any) -> Any:
        """``INSERT`` that can skip rows whose natural key already exists, per dialect."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # -- campaigns and runs -------------------------------------------------------------------

    def begin_campaign(
        self, *, key: str, name: str, topology: str, spec: dict[str, Any], runs_total: int
    ) -> int:
        """The campaign's id, creating its row the first time (resuming reuses it)."""
        with self.transaction() as s:
            stmt = self._insert(CampaignRow).values(
                key=key,
                name=name,
                topology=topology,
                spec=spec,
                runs_total=runs_total,
                status="running",
                started_at=_now(),
            )
            s.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
            cid = s.scalar(select(CampaignRow.id).where(CampaignRow.key == key))
        if cid is None:  # pragma: no cover - the row was just written
            raise TwinError("campaign row vanished")
        return int(cid)

    def add_runs(self, campaign_id: int, rows: Sequence[dict[str, Any]]) -> int:
        """Record finished runs in one transaction; runs already there are skipped.
        Returns how many were new."""
        if not rows:
            return 0
        values = [_run_values(campaign_id, r) for r in rows]
        added = 0
        with self.transaction() as s:
            for i in range(0, len(values), 500):  # stay under SQLite's bound-parameter limit
                stmt = self._insert(RunRow).values(values[i : i + 500])
                done = s.connection().execute(
                    stmt.on_conflict_do_nothing(index_elements=["campaign_id", "run_id"]).returning(
                        RunRow.id
                    )
                )
                added += _inserted(done)
        return added

    def finish_campaign(
        self,
        campaign_id: int,
        modes: Sequence[dict[str, Any]],
        mitigations: Sequence[dict[str, Any]],
    ) -> None:
        """Record failure modes and mitigations and mark the campaign finished, atomically."""
        with self.transaction() as s:
            ids: dict[tuple[Any, ...], int] = {}
            for m in modes:
                ids[_mode_key(m)] = self._upsert_mode(s, m)
            for mit in mitigations:
                mode_id = ids.get(tuple(mit["mode"]))
                if mode_id is None:
                    continue
                values = {
                    "failure_mode_id": mode_id,
                    "policy": mit["policy"],
                    "policy_document": mit.get("policy_document"),
                    "holds_everywhere": bool(mit["holds_everywhere"]),
                    "holds_up_to": mit.get("holds_up_to"),
                    "availability": mit.get("availability"),
                    "latency_p99": mit.get("latency_p99"),
                    "evidence": {
                        "scenario": mit.get("scenario"),
                        "instead_of": mit.get("instead_of"),
                    },
                }
                stmt = self._insert(MitigationRow).values(values)
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["failure_mode_id", "policy"],
                        set_={k: v for k, v in values.items() if k != "failure_mode_id"},
                    )
                )
            row = s.get(CampaignRow, campaign_id)
            if row is not None:
                row.status = "finished"
                row.finished_at = _now()

    def _upsert_mode(self, s: Session, m: dict[str, Any]) -> int:
        """Insert the mode, or (its trigger already there, perhaps from a concurrent campaign)
        lock the stored row and merge into it."""
        key = _mode_key(m)
        fields = {
            k: m.get(k)
            for k in (
                "intensity_threshold",
                "intensity_held",
                "direction",
                "slos_breached",
                "services",
                "failure_reasons",
                "blast_radius",
                "availability",
                "latency_p99",
                "severity",
                "scenario",
            )
        }
        trigger = dict(
            zip(("topology", "policy", "fault_kind", "target", "load"), key, strict=True)
        )
        stmt = self._insert(FailureModeRow).values(
            **trigger, evidence=m["evidence"], updated_at=_now(), **fields
        )
        inserted = s.connection().execute(
            stmt.on_conflict_do_nothing(index_elements=list(trigger)).returning(FailureModeRow.id)
        )
        found = s.scalar(
            select(FailureModeRow)
            .where(*(getattr(FailureModeRow, k) == v for k, v in trigger.items()))
            .with_for_update()
        )
        if found is None:  # pragma: no cover - the row was just written or found
            raise TwinError("failure mode row vanished")
        if _inserted(inserted):
            return int(found.id)
        ev = found.evidence or {}
        merged = {
            k: sorted(set(ev.get(k, [])) | set(m["evidence"].get(k, [])))
            for k in ("campaigns", "runs")
        }
        old, new = found.intensity_threshold, m.get("intensity_threshold")
        lower = m.get("direction") == "below"
        keep_old = old is not None and (new is None or (new < old if lower else new > old))
        if not keep_old or found.severity < m["severity"]:
            for k, v in fields.items():
                setattr(found, k, v)
            if keep_old:
                found.intensity_threshold = old
        found.evidence = merged
        found.updated_at = _now()
        return int(found.id)

    def failure_modes(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Failure modes, worst first, each with its recommended mitigations."""
        with self.transaction(write=False) as s:
            q = select(FailureModeRow).order_by(FailureModeRow.severity.desc(), FailureModeRow.id)
            if limit is not None:
                q = q.limit(limit)
            modes = list(s.scalars(q))
            mits: dict[int, list[MitigationRow]] = {}
            for mit in s.scalars(select(MitigationRow).order_by(MitigationRow.id)):
                mits.setdefault(mit.failure_mode_id, []).append(mit)
            out = []
            for m in modes:
                d = {c.name: getattr(m, c.name) for c in FailureModeRow.__table__.columns}
                d["updated_at"] = m.updated_at.isoformat() if m.updated_at else None
                d["mitigations"] = [
                    {
                        "policy": x.policy,
                        "holds_everywhere": x.holds_everywhere,
                        "holds_up_to": x.holds_up_to,
                        "availability": x.availability,
                        "latency_p99": x.latency_p99,
                    }
                    for x in sorted(
                        mits.get(m.id, []),
                        key=lambda x: (not x.holds_everywhere, -(x.availability or 0.0)),
                    )
                ]
                out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        """Rows per table, for reports and tests."""
        with self.transaction(write=False) as s:
            return {
                t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
                for t in (CampaignRow, RunRow, FailureModeRow, MitigationRow, ChaosResultRow)
            }

    # -- chaos results --------------------------------------------------------------------------

    def insert_new(
        self, s: Session, table: Any, rows: Sequence[dict[str, Any]], keys: Sequence[str]
    ) -> list[bool]:
        """Insert the rows whose natural key is not there yet, in one multi-row statement;
        True for each row that was new (a row repeated within ``rows`` is new once). The
        database decides (``ON CONFLICT DO NOTHING ... RETURNING``), so racing writers
        agree and a conflict is "already there", never an integrity error."""
        if not rows:
            return []
        cols = [getattr(table, k) for k in keys]
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=list(keys))
        # many parameter sets for one cached statement: SQLAlchemy sends them as multi-row
        # INSERTs in pages ("insertmanyvalues") and gathers every page's RETURNING rows
        inserted = {tuple(r) for r in s.connection().execute(stmt.returning(*cols), rows)}
        out = []
        for r in rows:
            key = tuple(r[k] for k in keys)
            out.append(key in inserted)
            inserted.discard(key)
        return out

    def write_chaos(self, s: Session, records: Sequence[dict[str, Any]]) -> list[str]:
        """Write chaos records inside the caller's transaction; for each, ``added``,
        ``unchanged`` (its identity is stored with the same content hash) or ``updated``.

        Each record is checked first (:func:`check_record`), so both backends accept and
        refuse the same things and a refusal stores nothing. A record whose identity is
        already stored, whether from an earlier run, earlier in this batch or from another
        process writing at the same moment, is compared by content hash under a row lock."""
        now = _now()
        rows = [{**check_record(r), "ingested_at": now} for r in records]
        new = self.insert_new(s, ChaosResultRow, rows, _CHAOS_KEY)
        outcomes = ["added" if n else "unchanged" for n in new]
        seen: dict[tuple[Any, ...], ChaosResultRow] = {}
        for i, row in enumerate(rows):
            if new[i]:
                continue
            key = tuple(row[k] for k in _CHAOS_KEY)
            found = seen.get(key)
            if found is None:
                found = s.scalar(
                    select(ChaosResultRow)
                    .where(
                        ChaosResultRow.format == row["format"],
                        ChaosResultRow.test_id == row["test_id"],
                        ChaosResultRow.started_at == row["started_at"],
                    )
                    .with_for_update()
                )
                if found is None:  # pragma: no cover - the conflicting row is committed
                    raise TwinError("chaos result row vanished")
                seen[key] = found
            if found.content_hash != row["content_hash"]:
                for k, v in row.items():
                    setattr(found, k, v)
                outcomes[i] = "updated"
        s.flush()
        return outcomes

    def ingest(self, records: Sequence[dict[str, Any]]) -> IngestReport:
        """Store normalised chaos results (see :func:`parse_chaos`) in one transaction
        (:meth:`write_chaos` says how each is decided)."""
        with self.transaction() as s:
            outcomes = self.write_chaos(s, records)
        return IngestReport(
            added=outcomes.count("added"),
            unchanged=outcomes.count("unchanged"),
            updated=outcomes.count("updated"),
            outcomes=tuple(outcomes),
        )

    def ingest_files(self, paths: Sequence[str | Path]) -> IngestReport:
        """Parse every file first (a bad file stores nothing), then store all in one go."""
        records: list[dict[str, Any]] = []
        for p in paths:
            records += parse_chaos_file(Path(p))
        return self.ingest(records)

    def chaos_results(self) -> list[dict[str, Any]]:
        """Every stored chaos result, oldest first."""
        with self.transaction(write=False) as s:
            rows = s.scalars(select(ChaosResultRow).order_by(ChaosResultRow.started_at))
            cols = [c.name for c in ChaosResultRow.__table__.columns]
            return [{c: getattr(r, c) for c in cols if c != "ingested_at"} for r in rows]


_CHAOS_KEY = ("format", "test_id", "started_at")


def _inserted(result: Any) -> int:
    """Rows an ``INSERT ... ON CONFLICT DO NOTHING ... RETURNING id`` wrote (0 when the key
    was there). Counted from the returned ids: drivers disagree on ``rowcount``."""
    return len(result.all())


_CHAOS_COLUMNS = (*CHAOS_FIELDS, "content_hash", "source", "document")


def check_record(r: dict[str, Any]) -> dict[str, Any]:
    """A normalised chaos result as the row to write, after the checks both backends need
    (:mod:`twin.store.checks`): text fields within their columns, the start as its UTC
    instant, finite JSON without NUL bytes. :func:`parse_chaos` has already made these
    checks with line numbers; this repeats them for records built any other way."""
    source = str(r.get("source") or "<chaos result>")
    try:
        missing = [k for k in _CHAOS_COLUMNS if k not in r and k != "document"]
        if missing:
            raise DocProblem((), f"not a normalised chaos result: missing {', '.join(missing)}")
        row = {k: r.get(k) for k in _CHAOS_COLUMNS}
        text(row["format"], ("format",), FORMAT_CHARS)
        text(row["test_id"], ("test_id",), TEST_ID_CHARS)
        row["started_at"] = utc_instant(row["started_at"], ("started_at",))
        for k in ("expected_outcome", "actual_outcome"):
            if row[k] is not None:
                text(row[k], (k,), OUTCOME_CHARS)
        if row["passed"] is not None and not isinstance(row["passed"], bool):
            raise DocProblem(("passed",), "expected true, false or null")
        if row["details"] is not None and not isinstance(row["details"], str):
            raise DocProblem(("details",), "expected a string")
        text(row["content_hash"], ("content_hash",), 64)
        text(row["source"], ("source",), 1 << 20)
        check_json({k: row[k] for k in ("parameters", "faults", "fault_kinds", "details")})
        check_json(row["document"], ("document",))
    except DocProblem as exc:
        raise InputError(exc.message, source=source, where=exc.where if exc.loc else None) from None
    return row


def _mode_key(m: dict[str, Any]) -> tuple[Any, ...]:
    return (m["topology"], m["policy"], m["fault_kind"], m["target"], round(float(m["load"]), 3))


def _run_values(campaign_id: int, r: dict[str, Any]) -> dict[str, Any]:
    failures = {k[9:]: int(v) for k, v in r.items() if k.startswith("failures_") and v}
    return {
        "campaign_id": campaign_id,
        "run_id": r["run_id"],
        "scenario": r["scenario"],
        "policy": r["policy"],
        "replication": int(r["replication"]),
        "seed": int(r["seed"]),
        "origin": r["origin"],
        "fault_kind": r["fault_kind"],
        "target": r["target"],
        "intensity": r.get("intensity"),
        "load": float(r["load"]),
        "requests": int(r["requests"]),
        "succeeded": int(r["succeeded"]),
        "failed": int(r["failed"]),
        "availability": r.get("availability"),
        "latency_p99": r.get("latency_p99"),
        "slo_breached": bool(r["slo_breached"]),
        "blast_radius": int(r["blast_radius"]),
        "affected": json.loads(r["affected_services"]),
        "failures": failures,
    }
