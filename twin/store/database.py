"""The connection to the failure-mode database and its writes: campaigns, runs, failure
modes, mitigations and chaos results, each in one transaction."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from twin.errors import InputError, TwinError
from twin.store.chaos import parse_chaos_file
from twin.store.schema import (
    Base,
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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the campaign's writes
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process kills
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion did: new rows, identical ones skipped, changed ones updated."""

    added: int = 0
    unchanged: int = 0
    updated: int = 0

    def __add__(self, other: IngestReport) -> IngestReport:
        return IngestReport(
            self.added + other.added,
            self.unchanged + other.unchanged,
            self.updated + other.updated,
        )


class Store:
    """A connection to the failure-mode database; creates its tables when missing."""

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        try:
            self.engine: Engine = create_engine(self.url, future=True)
        except (ArgumentError, ImportError) as exc:
            raise InputError(f"cannot use database URL: {exc}", source=_safe(self.url)) from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            db_file = self.engine.url.database
            if db_file and db_file != ":memory:":
                with contextlib.suppress(OSError):  # connecting will say what is wrong
                    Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise InputError(
                f"cannot open database: {str(exc.orig).strip().splitlines()[0]}",
                source=_safe(self.url),
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield session

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
        with self.transaction() as s:
            before = s.scalar(
                select(func.count()).select_from(RunRow).where(RunRow.campaign_id == campaign_id)
            )
            for i in range(0, len(values), 500):  # stay under SQLite's bound-parameter limit
                stmt = self._insert(RunRow).values(values[i : i + 500])
                s.execute(stmt.on_conflict_do_nothing(index_elements=["campaign_id", "run_id"]))
            after = s.scalar(
                select(func.count()).select_from(RunRow).where(RunRow.campaign_id == campaign_id)
            )
        return int(after or 0) - int(before or 0)

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
        key = _mode_key(m)
        found = s.scalar(
            select(FailureModeRow).where(
                FailureModeRow.topology == key[0],
                FailureModeRow.policy == key[1],
                FailureModeRow.fault_kind == key[2],
                FailureModeRow.target == key[3],
                FailureModeRow.load == key[4],
            )
        )
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
        if found is None:
            row = FailureModeRow(
                topology=key[0],
                policy=key[1],
                fault_kind=key[2],
                target=key[3],
                load=key[4],
                evidence=m["evidence"],
                updated_at=_now(),
                **fields,
            )
            s.add(row)
            s.flush()
            return int(row.id)
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
        with self.transaction() as s:
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
        with self.transaction() as s:
            return {
                t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
                for t in (CampaignRow, RunRow, FailureModeRow, MitigationRow, ChaosResultRow)
            }

    # -- chaos results --------------------------------------------------------------------------

    def ingest(self, records: Sequence[dict[str, Any]]) -> IngestReport:
        """Store normalised chaos results (see :func:`parse_chaos`) in one transaction."""
        report = IngestReport()
        with self.transaction() as s:
            for r in records:
                found = s.scalar(
                    select(ChaosResultRow).where(
                        ChaosResultRow.format == r["format"],
                        ChaosResultRow.test_id == r["test_id"],
                        ChaosResultRow.started_at == r["started_at"],
                    )
                )
                if found is None:
                    s.add(ChaosResultRow(**r, ingested_at=_now()))
                    s.flush()  # a second copy later in the same batch must see this one
                    report += IngestReport(added=1)
                elif found.content_hash == r["content_hash"]:
                    report += IngestReport(unchanged=1)
                else:
                    for k, v in r.items():
                        setattr(found, k, v)
                    found.ingested_at = _now()
                    report += IngestReport(updated=1)
        return report

    def ingest_files(self, paths: Sequence[str | Path]) -> IngestReport:
        """Parse every file first (a bad file stores nothing), then store all in one go."""
        records: list[dict[str, Any]] = []
        for p in paths:
            records += parse_chaos_file(Path(p))
        return self.ingest(records)

    def chaos_results(self) -> list[dict[str, Any]]:
        """Every stored chaos result, oldest first."""
        with self.transaction() as s:
            rows = s.scalars(select(ChaosResultRow).order_by(ChaosResultRow.started_at))
            cols = [c.name for c in ChaosResultRow.__table__.columns]
            return [{c: getattr(r, c) for c in cols if c != "ingested_at"} for r in rows]


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


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
