"""``verdict.json``: what ``twin check-change`` decided and why, as a typed record."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figure(_Doc):
    """A paired mean difference (after - before) with its 90% interval."""

    mean: float
    lo: float
    hi: float


class SloFigures(_Doc):
    """One SLO before and after the change: the mean of the runs' figures and the share of
    runs that met the objective."""

    target: float = Field(description="the topology's objective (seconds, or a share)")
    before: float | None = Field(description="mean over the paired runs, before")
    after: float | None = Field(description="mean over the paired runs, after")
    met_before: float | None = Field(description="share of runs meeting the objective, before")
    met_after: float | None = Field(description="share of runs meeting the objective, after")


class VerdictFinding(_Doc):
    """A static check's finding; ``new``: the change introduced it (a reason for no-go)."""

    check: str = Field(description="the check's family (timeout, retry-budget, ...)")
    subject: str = Field(description="the edge (a->b) or the service")
    reason: str
    new: bool


class VerdictMethod(_Doc):
    """How the verdict was reached, so a reader can redo it."""

    load: float = Field(description="load multiplier of the runs")
    replications: int = Field(description="paired runs (the fault-free one included)")
    seed: int
    duration: float = Field(description="simulated seconds per run")
    warmup: float = Field(description="seconds excluded from every figure")
    window: float = Field(description="seconds per measured window (breach minutes count them)")
    faults_from: Literal["risk", "catalogue"] = Field(description="where the faults came from")
    faults: list[dict[str, Any]] = Field(description="the fault of each faulty run, in order")
    risk_threshold: float = Field(description="no-go above this lower end of the risk")
    breach_share_threshold: float = Field(
        description="no-go above this lower end of the change in breach time (a share)"
    )
    interval: float = Field(description="width of the intervals (0.9)")


class Verdict(_Doc):
    """The decision on a change set, with the figures behind it.

    ``risk`` is the change in P(SLO breach) of a run under the horizon's likely faults
    (after - before, paired runs, 90% paired-bootstrap interval); ``breach_minutes`` is the
    change in minutes out of an SLO per run, on the same runs."""

    name: str = Field(description="the change set's name")
    decision: Literal["go", "no-go"]
    risk: Figure = Field(description="change in P(SLO breach), {mean, lo, hi}")
    breach_minutes: Figure = Field(description="change in breach minutes per run")
    p_breach_before: float = Field(description="share of runs breaching an SLO before")
    p_breach_after: float = Field(description="share of runs breaching an SLO after")
    reasons: list[str] = Field(description="why no-go; empty for go")
    notes: list[str] = Field(description="what the reader should know beside the reasons")
    slo: dict[str, SloFigures] = Field(description="per SLO, before and after")
    findings: list[VerdictFinding] = Field(description="static checks' findings")
    method: VerdictMethod
    wall_seconds: float = Field(description="wall time of the check (seconds)")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


__all__ = ["Figure", "SloFigures", "Verdict", "VerdictFinding", "VerdictMethod"]
