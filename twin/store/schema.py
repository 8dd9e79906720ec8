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
