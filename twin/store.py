"""The failure-mode database: campaigns, runs, failure modes, chaos results, mitigations.

SQLAlchemy 2.x over SQLite (an embedded file, the default) or PostgreSQL (by URL). Why
these rules:

- **Every write is one transaction**, so a process killed mid-campaign leaves whole rows or
  none: SQLite's journal and PostgreSQL's WAL roll back what was not committed.
- **Natural keys with unique constraints** make every write idempotent: a run is keyed by
  (campaign, run id), a failure mode by its trigger (topology, policy, fault kind, target,
  load), a chaos result by (format, test id, start time), a mitigation by (mode, policy).
  Writing the same thing twice is a no-op, or an update when the content changed, never a
  second row; resuming a campaign or re-ingesting a file is always safe.
- The store takes plain dicts (rows as :mod:`twin.campaign` writes them), so it depends on
  nothing above the documents.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from twin.errors import InputError, TwinError
from twin.faults import by_chaos_rank
from twin.io import DocProblem, _located
from twin.safeload import loads_json, read_text

DEFAULT_FILE = "twin.db"
"""The embedded database used when no URL is given (``$TWIN_DB`` overrides it)."""


class Base(DeclarativeBase):
    """Declarative root of the store's tables."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class CampaignRow(Base):
    """One campaign (a spec expanded to a fixed set of runs); ``key`` identifies it."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    topology: Mapped[str] = mapped_column(String(200))
    spec: Mapped[Any] = mapped_column(JSON)
    runs_total: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RunRow(Base):
    """One simulated run of a campaign: its scenario parameters and headline figures."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("campaign_id", "run_id", name="uq_runs_campaign_run"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(64))
    scenario: Mapped[str] = mapped_column(String(500))
    policy: Mapped[str] = mapped_column(String(200))
    replication: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)  # seeds are unsigned 32-bit
    origin: Mapped[str] = mapped_column(String(20))
    fault_kind: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(500))
    intensity: Mapped[float | None] = mapped_column(Float, nullable=True)
    load: Mapped[float] = mapped_column(Float)
    requests: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    availability: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    slo_breached: Mapped[bool] = mapped_column(Boolean)
    blast_radius: Mapped[int] = mapped_column(Integer)
    affected: Mapped[Any] = mapped_column(JSON)
    failures: Mapped[Any] = mapped_column(JSON)


class FailureModeRow(Base):
    """A way the system fails: trigger (what), effect (how badly, how far), evidence (where
    it was seen). Re-found modes merge their evidence and keep the lowest threshold seen."""

    __tablename__ = "failure_modes"
    __table_args__ = (
        UniqueConstraint(
            "topology", "policy", "fault_kind", "target", "load", name="uq_failure_mode_trigger"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topology: Mapped[str] = mapped_column(String(200))
    policy: Mapped[str] = mapped_column(String(200))
    fault_kind: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(500))
    load: Mapped[float] = mapped_column(Float)
    intensity_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    intensity_held: Mapped[float | None] = mapped_column(Float, nullable=True)
    direction: Mapped[str] = mapped_column(String(10))
    slos_breached: Mapped[Any] = mapped_column(JSON)
    services: Mapped[Any] = mapped_column(JSON)
    failure_reasons: Mapped[Any] = mapped_column(JSON)
    blast_radius: Mapped[int] = mapped_column(Integer)
    availability: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    severity: Mapped[float] = mapped_column(Float)
    scenario: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class MitigationRow(Base):
    """A policy that kept the SLOs where a failure mode broke them, with the figures."""

    __tablename__ = "mitigations"
    __table_args__ = (UniqueConstraint("failure_mode_id", "policy", name="uq_mitigation"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    failure_mode_id: Mapped[int] = mapped_column(ForeignKey("failure_modes.id", ondelete="CASCADE"))
    policy: Mapped[str] = mapped_column(String(200))
    policy_document: Mapped[Any] = mapped_column(JSON, nullable=True)
    holds_everywhere: Mapped[bool] = mapped_column(Boolean)
    holds_up_to: Mapped[float | None] = mapped_column(Float, nullable=True)
    availability: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    evidence: Mapped[Any] = mapped_column(JSON)


class ChaosResultRow(Base):
    """One chaos test run on the real system, as reported by the tool that ran it."""

    __tablename__ = "chaos_results"
    __table_args__ = (UniqueConstraint("format", "test_id", "started_at", name="uq_chaos_result"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    format: Mapped[str] = mapped_column(String(20))
    test_id: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[str] = mapped_column(String(40))
    parameters: Mapped[Any] = mapped_column(JSON)
    faults: Mapped[Any] = mapped_column(JSON)
    fault_kinds: Mapped[Any] = mapped_column(JSON)
    expected_outcome: Mapped[str | None] = mapped_column(String(100), nullable=True)
    actual_outcome: Mapped[str | None] = mapped_column(String(100), nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(1000))
    ingested_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


# -- connection -------------------------------------------------------------------------------


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


# -- chaos result formats -----------------------------------------------------------------------

_CHAOS_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (c.name, c.chaos_words) for c in by_chaos_rank()
)


def chaos_kind(name: str) -> str | None:
    """The twin fault kind a chaos tool's fault or action name most likely injected."""
    text = name.lower()
    for kind, words in _CHAOS_KINDS:
        if any(w in text for w in words):
            return kind
    return None


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record(
    fmt: str,
    test_id: str,
    started: str,
    parameters: Any,
    faults: list[Any],
    expected: str | None,
    actual: str | None,
    passed: bool,
    details: str | None,
    source: str,
    original: Any,
) -> dict[str, Any]:
    kinds = sorted(
        {k for f in faults if (k := chaos_kind(str(f.get("type") or f.get("name") or "")))}
    )
    return {
        "format": fmt,
        "test_id": test_id,
        "started_at": started,
        "parameters": parameters or {},
        "faults": faults,
        "fault_kinds": kinds,
        "expected_outcome": expected,
        "actual_outcome": actual,
        "passed": passed,
        "details": details,
        "content_hash": _hash(original),
        "source": source,
    }


def _timestamp(value: Any, loc: tuple[str | int, ...]) -> str:
    """The timestamp as given, once it is known to be ISO 8601 (``Z`` allowed)."""
    if not isinstance(value, str) or not value:
        raise DocProblem(loc, "expected an ISO 8601 timestamp string, e.g. 2024-10-27T10:00:00Z")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DocProblem(
            loc, f"expected an ISO 8601 timestamp, e.g. 2024-10-27T10:00:00Z, got {value!r}"
        ) from None
    return value


def _parse_plain(doc: dict[str, Any], where: str, at: tuple[int, ...] = ()) -> dict[str, Any]:
    if not doc.get("timestamp"):
        raise DocProblem((*at, "timestamp"), "required field is missing")
    if not isinstance(doc["test_id"], str) or not doc["test_id"].strip():
        raise DocProblem((*at, "test_id"), "expected a non-empty string")
    started = _timestamp(doc["timestamp"], (*at, "timestamp"))
    faults = doc.get("injected_faults") or []
    if not isinstance(faults, list):
        raise DocProblem((*at, "injected_faults"), "expected a list of objects")
    for i, f in enumerate(faults):
        if not isinstance(f, dict):
            raise DocProblem((*at, "injected_faults", i), "expected an object")
    params = doc.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise DocProblem((*at, "parameters"), "expected an object")
    expected = doc.get("expected_outcome")
    actual = doc.get("actual_outcome")
    return _record(
        "chaos-json",
        doc["test_id"],
        started,
        doc.get("parameters"),
        faults,
        None if expected is None else str(expected),
        None if actual is None else str(actual),
        expected is None or actual == expected,
        doc.get("failure_details"),
        where,
        doc,
    )


def _parse_journal(doc: dict[str, Any], where: str, at: tuple[int, ...] = ()) -> dict[str, Any]:
    """A Chaos Toolkit journal: the experiment's actions are the faults; it passed when it
    completed without the steady state deviating."""
    exp = doc.get("experiment") or {}
    if not doc.get("start"):
        raise DocProblem((*at, "start"), "required field is missing (Chaos Toolkit journal)")
    start = _timestamp(doc["start"], (*at, "start"))
    if not isinstance(exp, dict):
        raise DocProblem((*at, "experiment"), "expected an object")
    if not isinstance(doc.get("run") or [], list):
        raise DocProblem((*at, "run"), "expected a list of activity results")
    faults = []
    for item in doc.get("run") or []:
        act = item.get("activity") or {}
        if act.get("type") != "action":
            continue
        prov = act.get("provider") or {}
        faults.append(
            {
                "type": act.get("name") or prov.get("func") or "action",
                "provider": prov.get("func") or prov.get("path") or prov.get("url"),
                "arguments": prov.get("arguments") or {},
                "duration": item.get("duration"),
                "status": item.get("status"),
            }
        )
    status = str(doc.get("status") or "unknown")
    deviated = bool(doc.get("deviated"))
    passed = status == "completed" and not deviated
    problems = []
    for phase, state in (doc.get("steady_states") or {}).items():
        if isinstance(state, dict) and state.get("steady_state_met") is False:
            bad = [
                (p.get("activity") or {}).get("name", "?")
                for p in state.get("probes") or []
                if p.get("tolerance_met") is False
            ]
            problems.append(f"steady state not met {phase}: {', '.join(bad) or '?'}")
    details = "; ".join([f"status {status}", *problems]) if not passed else None
    return _record(
        "chaostoolkit",
        str(exp.get("title") or "untitled experiment"),
        start,
        {k: v for k, v in (exp.get("configuration") or {}).items() if "secret" not in k.lower()},
        faults,
        "steady state holds",
        "deviated" if deviated else status,
        passed,
        details,
        where,
        {k: v for k, v in doc.items() if k not in ("node", "platform")},
    )


def parse_chaos(
    data: Any, source: str = "<chaos result>", text: str | None = None
) -> list[dict[str, Any]]:
    """Normalise chaos results: the plain JSON shape (``test_id``, ``timestamp``,
    ``injected_faults``, ``expected_outcome``, ``actual_outcome``...), a list of them, or a
    Chaos Toolkit journal (recognised by ``chaoslib-version`` / ``experiment``). A problem is
    one :class:`InputError` naming ``source:line`` (when ``text`` is given) and the path."""
    docs = data if isinstance(data, list) else [data]
    out = []
    try:
        for i, doc in enumerate(docs):
            at: tuple[int, ...] = (i,) if isinstance(data, list) else ()
            if not isinstance(doc, dict):
                raise DocProblem(at, "expected a JSON object")
            if "chaoslib-version" in doc or ("experiment" in doc and "run" in doc):
                out.append(_parse_journal(doc, source, at))
            elif "test_id" in doc:
                out.append(_parse_plain(doc, source, at))
            else:
                raise DocProblem(
                    at, "not a chaos result: expected test_id/timestamp or a Chaos Toolkit journal"
                )
    except DocProblem as exc:
        raise _located(exc.loc, exc.message, source, text) from None
    return out


def parse_chaos_file(path: Path) -> list[dict[str, Any]]:
    """Read and normalise one chaos result file (JSON)."""
    text = read_text(path, "telemetry")
    try:
        data = loads_json(text, str(path), "telemetry")
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from None
    return parse_chaos(data, str(path), text)


__all__ = [
    "IngestReport",
    "SQLAlchemyError",
    "Store",
    "chaos_kind",
    "parse_chaos",
    "parse_chaos_file",
    "resolve_url",
]
