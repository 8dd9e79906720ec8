"""Documents received from outside, kept whole: the raw bodies of chaos results, external
simulations, incidents, OTLP telemetry batches, alerts, change verdicts, calibration evidence
(where the twin and the real system disagreed) and the answers given to ``Idempotency-Key``
requests.

Why these rules:

- **A document's identity is its content**: the SHA-256 of its canonical JSON (sorted keys,
  no spaces) is a unique key, so sending the same document twice stores one row and the
  second write learns that it already existed, from the database itself (``INSERT ... ON
  CONFLICT DO NOTHING RETURNING``), even when two writers race.
- **Many writes, one transaction**: :func:`write_batch` stores the documents of many requests
  at once, so a server can group its commits and still acknowledge each request only after
  the commit that holds it. A killed writer leaves whole batches or none.
- Chaos results are stored in the store's own ``chaos_results`` table, keyed by (format,
  test id, start); the batch form here gives each record its own answer (added, unchanged,
  updated) with the same content-hash rule as :meth:`twin.store.Store.ingest`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from twin.errors import InputError
from twin.store.database import Store
from twin.store.schema import Base, ChaosResultRow, FailureModeRow, MitigationRow, _now

Status = Literal["created", "already_existed", "updated"]


def content_hash(doc: Any) -> str:
    """SHA-256 (hex) of a JSON value's canonical text: the same document always hashes the
    same, whatever its key order or spacing was on the wire."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RawDocumentRow(Base):
    """A chaos result body exactly as received (parsed JSON), before it was mapped to
    records; the records' ``source`` names it as ``sha256:<content_hash>``."""

    __tablename__ = "raw_documents"
    __table_args__ = (UniqueConstraint("kind", "content_hash", name="uq_raw_document"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(64))
    document: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class SimulationRow(Base):
    """An external discrete-event simulation (parameters, events, time series, metadata) or
    one of the twin's own summaries."""

    __tablename__ = "simulations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tool: Mapped[str] = mapped_column(String(100))
    document: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class IncidentRow(Base):
    """One incident, in the columns ``twin risk --history`` reads; ``time`` is the UTC
    instant in ISO 8601 and ``duration_seconds`` is seconds."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[str] = mapped_column(String(40))
    service: Mapped[str] = mapped_column(String(500))
    fault_kind: Mapped[str] = mapped_column(String(100))
    symptom: Mapped[str | None] = mapped_column(Text, nullable=True)
    cause: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    intensity: Mapped[float | None] = mapped_column(Float, nullable=True)
    document: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class TelemetryBatchRow(Base):
    """One OTLP/JSON export request (``traces`` or ``metrics``) as the collector sent it,
    ids kept as the hex text OTLP/JSON writes; ``items`` counts its spans or data points."""

    __tablename__ = "telemetry_batches"
    __table_args__ = (UniqueConstraint("signal", "content_hash", name="uq_telemetry_batch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signal: Mapped[str] = mapped_column(String(20))
    content_hash: Mapped[str] = mapped_column(String(64))
    items: Mapped[int] = mapped_column(Integer)
    document: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class AlertRow(Base):
    """A warning raised about the live system: which failure mode, where, how likely
    (``probability`` in [0, 1]) and how soon (``lead_seconds``)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    raised_at: Mapped[str] = mapped_column(String(40))
    service: Mapped[str] = mapped_column(String(500))
    failure_mode: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20))
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    lead_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    document: Mapped[Any] = mapped_column(JSON)


class ChangeRow(Base):
    """A change judged by the twin: its name, the verdict (e.g. go / no-go) and the whole
    verdict document."""

    __tablename__ = "changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    submitted_at: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    verdict: Mapped[str] = mapped_column(String(40))
    document: Mapped[Any] = mapped_column(JSON)


class CalibrationEvidenceRow(Base):
    """One figure on which the twin was checked against the real system: what it predicted,
    what was measured, the accuracy (PerfSim's form, in [-inf, 1]; empty when the comparison
    is a counted miss) and whether they disagree beyond the comparison's tolerance. Rows with
    ``disagrees`` are where the twin is wrong: read them back with :func:`page` (table
    ``calibration_evidence``, filters such as ``("topology", name)`` or
    ``("disagrees", True)``)."""

    __tablename__ = "calibration_evidence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    observed_at: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(100))
    topology: Mapped[str] = mapped_column(String(200))
    scenario: Mapped[str] = mapped_column(String(500))
    fault_kind: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(500))
    metric: Mapped[str] = mapped_column(String(100))
    predicted: Mapped[float | None] = mapped_column(Float, nullable=True)
    measured: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    disagrees: Mapped[bool] = mapped_column(Boolean)
    document: Mapped[Any] = mapped_column(JSON)


class IdempotencyKeyRow(Base):
    """The answer given to a request that carried an ``Idempotency-Key``: a retry with the
    same key and body gets the same answer, a retry with another body is refused. Keys are
    per token, so one client cannot see another's answers."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("token_id", "key", name="uq_idempotency_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


_TABLES: dict[str, Any] = {
    "simulations": SimulationRow,
    "incidents": IncidentRow,
    "telemetry_batches": TelemetryBatchRow,
    "alerts": AlertRow,
    "changes": ChangeRow,
    "calibration_evidence": CalibrationEvidenceRow,
}
"""The document tables written by :func:`write_batch`, by name."""

_KEYS: dict[str, list[str]] = {
    "telemetry_batches": ["signal", "content_hash"],
}


@dataclass
class Write:
    """What one request writes: rows for a document table (each with its ``content_hash``)
    or chaos records (from :func:`twin.store.parse_chaos`, table ``chaos_results``), and the
    raw body (``kind``, ``content_hash``, ``document``). With ``idempotency`` (``token_id``,
    ``key``, ``endpoint``, ``request_hash``), the answer that ``answer`` builds from the
    statuses is kept in the same transaction. :func:`write_batch` fills ``statuses`` (one per
    row, in order) and ``answered``."""

    table: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] | None = None
    idempotency: dict[str, Any] | None = None
    answer: Callable[[Write], tuple[int, Any]] | None = None
    statuses: list[Status] = field(default_factory=list)
    answered: tuple[int, Any] | None = None


def write_batch(store: Store, writes: Sequence[Write]) -> None:
    """Store every write in ONE transaction and set each one's statuses: ``created``, or
    ``already_existed`` when the same content (or, for chaos results, the same identity with
    the same content) was there, or ``updated`` when a chaos result changed. Nothing is
    written if anything fails, so a caller acknowledges a write only after this returns."""
    with store.transaction() as s:
        raws = [w.raw for w in writes if w.raw is not None]
        if raws:
            store.insert_new(s, RawDocumentRow, raws, ["kind", "content_hash"])
        by_table: dict[str, list[Write]] = {}
        for w in writes:
            by_table.setdefault(w.table, []).append(w)
        for table, group in by_table.items():
            rows = [r for w in group for r in w.rows]
            if table == "chaos_results":
                statuses = _write_chaos(store, s, rows)
            else:
                keys = _KEYS.get(table, ["content_hash"])
                new = store.insert_new(s, _TABLES[table], rows, keys)
                statuses = ["created" if n else "already_existed" for n in new]
            at = 0
            for w in group:
                w.statuses = list(statuses[at : at + len(w.rows)])
                at += len(w.rows)
        answers = []
        for w in writes:
            if w.answer is not None:
                w.answered = w.answer(w)
                if w.idempotency is not None:
                    code, body = w.answered
                    answers.append({**w.idempotency, "status_code": code, "response": body})
        # a key stored meanwhile by a concurrent request keeps its first answer
        store.insert_new(s, IdempotencyKeyRow, answers, ["token_id", "key"])


def find_answer(store: Store, token_id: str, key: str) -> dict[str, Any] | None:
    """The answer kept for this token's ``Idempotency-Key``, or None."""
    with store.transaction() as s:
        row = s.scalar(
            select(IdempotencyKeyRow).where(
                IdempotencyKeyRow.token_id == token_id, IdempotencyKeyRow.key == key
            )
        )
        if row is None:
            return None
        return {
            "endpoint": row.endpoint,
            "request_hash": row.request_hash,
            "status_code": row.status_code,
            "response": row.response,
        }


_STATUS = {"added": "created", "unchanged": "already_existed", "updated": "updated"}


def _write_chaos(store: Store, s: Session, records: list[dict[str, Any]]) -> list[Status]:
    """Chaos records through the store's one write path, in this batch's transaction."""
    return [cast(Status, _STATUS[o]) for o in store.write_chaos(s, records)]


# -- reading ----------------------------------------------------------------------------------

Filter = tuple[str, Any]


def page(
    store: Store,
    table: str,
    *,
    limit: int,
    cursor: int = 0,
    filters: Sequence[Filter] = (),
    min_filters: Sequence[Filter] = (),
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of a table in id order, after row id ``cursor``, with equality filters
    (``column == value``) and lower bounds (``column >= value``); returns the rows as dicts
    and the cursor of the next page (None on the last page)."""
    model = _READABLE[table]
    q = select(model).where(model.id > cursor)
    for col, value in filters:
        q = q.where(getattr(model, col) == value)
    for col, value in min_filters:
        q = q.where(getattr(model, col) >= value)
    q = q.order_by(model.id).limit(limit + 1)
    cols = [c.name for c in model.__table__.columns]
    with store.transaction() as s:
        found = list(s.scalars(q))
        items = [{c: _plain(getattr(r, c)) for c in cols} for r in found[:limit]]
    nxt = int(found[limit - 1].id) if len(found) > limit else None
    return items, nxt


def mitigations_of(store: Store, mode_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The recommended mitigations of the given failure modes, best first (holds everywhere,
    then highest availability), as :meth:`twin.store.Store.failure_modes` orders them."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in mode_ids}
    if not mode_ids:
        return out
    with store.transaction() as s:
        q = select(MitigationRow).where(MitigationRow.failure_mode_id.in_(list(mode_ids)))
        for x in s.scalars(q.order_by(MitigationRow.id)):
            out[x.failure_mode_id].append(
                {
                    "policy": x.policy,
                    "holds_everywhere": x.holds_everywhere,
                    "holds_up_to": x.holds_up_to,
                    "availability": x.availability,
                    "latency_p99": x.latency_p99,
                }
            )
    for v in out.values():
        v.sort(key=lambda m: (not m["holds_everywhere"], -(m["availability"] or 0.0)))
    return out


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def counts(store: Store) -> dict[str, int]:
    """Rows per document table (chaos results included), for reports and tests."""
    with store.transaction() as s:
        return {
            name: int(s.scalar(select(func.count()).select_from(m)) or 0)
            for name, m in {**_READABLE, "raw_documents": RawDocumentRow}.items()
        }


def add_alerts(store: Store, alerts: Sequence[dict[str, Any]]) -> list[Status]:
    """Store alerts (``raised_at``, ``service``, ``failure_mode``, ``severity``,
    ``probability``, ``lead_seconds``, ``message``; the whole dict is kept as the
    document); the same alert twice is one row."""
    rows = [
        {
            "content_hash": content_hash(a),
            "raised_at": str(a["raised_at"]),
            "service": str(a["service"]),
            "failure_mode": str(a["failure_mode"]),
            "severity": str(a.get("severity", "warning")),
            "probability": a.get("probability"),
            "lead_seconds": a.get("lead_seconds"),
            "message": str(a.get("message", "")),
            "document": dict(a),
        }
        for a in alerts
    ]
    w = Write("alerts", rows)
    write_batch(store, [w])
    return w.statuses


def add_changes(store: Store, changes: Sequence[dict[str, Any]]) -> list[Status]:
    """Store change verdicts (``submitted_at``, ``name``, ``verdict``; the whole dict is kept
    as the document); the same verdict twice is one row."""
    rows = [
        {
            "content_hash": content_hash(c),
            "submitted_at": str(c["submitted_at"]),
            "name": str(c["name"]),
            "verdict": str(c["verdict"]),
            "document": dict(c),
        }
        for c in changes
    ]
    w = Write("changes", rows)
    write_batch(store, [w])
    return w.statuses


EVIDENCE_FIELDS = (
    "observed_at",
    "source",
    "topology",
    "scenario",
    "fault_kind",
    "target",
    "metric",
    "predicted",
    "measured",
    "accuracy",
    "disagrees",
)
"""The columns of a calibration-evidence record; the whole dict is kept as its document."""


def add_calibration_evidence(store: Store, evidence: Sequence[dict[str, Any]]) -> list[Status]:
    """Store twin-vs-reality comparisons (:data:`EVIDENCE_FIELDS`, each figure a finite
    number or None), one row per metric; the same record twice is one row. A record that is
    not of this shape is refused whole (InputError naming the record and field), so a batch
    stores all or nothing."""
    rows = []
    for i, e in enumerate(evidence):
        missing = [k for k in EVIDENCE_FIELDS if k not in e]
        if missing:
            raise InputError(f"evidence[{i}]: missing {', '.join(missing)}")
        for k in ("predicted", "measured", "accuracy"):
            v = e[k]
            ok = v is None or (
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            )
            if not ok:
                raise InputError(f"evidence[{i}].{k}: expected a finite number or null, got {v!r}")
        if not isinstance(e["disagrees"], bool):
            raise InputError(f"evidence[{i}].disagrees: expected true or false")
        row = {k: e[k] if k in _EVIDENCE_NUMBERS else str(e[k]) for k in EVIDENCE_FIELDS}
        rows.append({**row, "content_hash": content_hash(e), "document": dict(e)})
    w = Write("calibration_evidence", rows)
    write_batch(store, [w])
    return w.statuses


_EVIDENCE_NUMBERS = {"predicted", "measured", "accuracy", "disagrees"}


_READABLE: dict[str, Any] = {
    **_TABLES,
    "chaos_results": ChaosResultRow,
    "failure_modes": FailureModeRow,
}


__all__ = [
    "EVIDENCE_FIELDS",
    "AlertRow",
    "CalibrationEvidenceRow",
    "ChangeRow",
    "IdempotencyKeyRow",
    "IncidentRow",
    "RawDocumentRow",
    "SimulationRow",
    "Status",
    "TelemetryBatchRow",
    "Write",
    "add_alerts",
    "add_calibration_evidence",
    "add_changes",
    "content_hash",
    "counts",
    "find_answer",
    "mitigations_of",
    "page",
    "write_batch",
]
