"""The failure-mode database's tables: one declarative class per table, with the natural
keys (unique constraints) that make every write idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


TEST_ID_CHARS = 500
"""Longest test id (a test's name, or ``namespace/Kind/name`` for Kubernetes objects)."""
OUTCOME_CHARS = 200
"""Longest expected or actual outcome (a word or a short phrase, e.g. ``success``)."""
FORMAT_CHARS = 20
INSTANT_CHARS = 27
"""``YYYY-MM-DDTHH:MM:SS.ffffffZ``: every start instant is stored in this one UTC form, so the
same test run written with ``Z``, ``+00:00``, ``.000Z`` or another zone is one key."""


class ChaosResultRow(Base):
    """One chaos test run on the real system, as reported by the tool that ran it.

    ``started_at`` is the normalised UTC instant (see :data:`INSTANT_CHARS`); ``document`` is
    the result as the tool wrote it (timestamps in their original text); ``passed`` is empty
    when the tool gives no verdict (a Chaos Mesh experiment records injection, not whether
    the system held). ``content_hash`` covers the normalised fields, so the same result
    written in another timestamp form or key order is unchanged, not updated.
    """

    __tablename__ = "chaos_results"
    __table_args__ = (UniqueConstraint("format", "test_id", "started_at", name="uq_chaos_result"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    format: Mapped[str] = mapped_column(String(FORMAT_CHARS))
    test_id: Mapped[str] = mapped_column(String(TEST_ID_CHARS))
    started_at: Mapped[str] = mapped_column(String(40))
    parameters: Mapped[Any] = mapped_column(JSON)
    faults: Mapped[Any] = mapped_column(JSON)
    fault_kinds: Mapped[Any] = mapped_column(JSON)
    expected_outcome: Mapped[str | None] = mapped_column(String(OUTCOME_CHARS), nullable=True)
    actual_outcome: Mapped[str | None] = mapped_column(String(OUTCOME_CHARS), nullable=True)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    document: Mapped[Any] = mapped_column(JSON, nullable=True)
    ingested_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


CHAOS_FIELDS = (
    "format",
    "test_id",
    "started_at",
    "parameters",
    "faults",
    "fault_kinds",
    "expected_outcome",
    "actual_outcome",
    "passed",
    "details",
)
"""The fields that make a chaos result what it is: the content hash covers exactly these."""
