"""The risk report: one run of the Bayesian analysis and the shape of ``risk.json``.

:func:`assess` reads the evidence a :class:`RiskConfig` names and fits the models;
:func:`risk_report` turns an analysis whose diagnostics passed into a :class:`RiskReport`,
the document ``twin risk`` writes as ``risk.json``. Keeping the shape here, typed, means the
command line, the explorer and scripts read the same fields and mypy catches a misspelt one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.bayes.analysis import Analysis, analyse, load_evidence
from twin.bayes.fit import FitOptions
from twin.bayes.risk import RiskOptions, priorities
from twin.errors import TwinError


class RiskConfig(BaseModel):
    """What one risk assessment reads and how it samples."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    history: Path = Field(description="Incident log (CSV/JSON) or counts table.")
    results: Path = Field(description="Campaign output folder (runs.parquet).")
    db: str | None = Field(default=None, description="Failure-mode database URL (chaos results).")
    horizon_days: float = Field(default=30.0, gt=0, description="Risk horizon, days.")
    period_days: float = Field(default=30.0, gt=0, description="Period length of the log, days.")
    services: list[str] | None = Field(
        default=None,
        description="Every known service, e.g. a topology's (default: the campaign's targets).",
    )
    policy: str | None = Field(
        default=None, description="Policy in force (default: the campaign's first)."
    )
    load: float = Field(default=1.0, ge=0, description="Load multiplier to judge at.")
    method: Literal["nutpie", "pymc", "advi"] = Field(
        default="nutpie", description="nutpie or pymc (NUTS), or advi (fast, approximate)."
    )
    draws: int = Field(default=2000, ge=1, description="Draws per chain.")
    tune: int = Field(default=1000, ge=0, description="Tuning steps per chain.")
    chains: int = Field(default=2, ge=1, description="Chains.")
    seed: int = Field(default=1, description="Seed of sampling and of the posterior simulation.")
    progress: bool = Field(default=False, description="Show the samplers' progress bars.")


class RiskEvidence(BaseModel):
    """What the report rests on, so a reader can tell a thin one from a well-fed one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    history: str = Field(description="The incident log read.")
    incidents: int = Field(description="Incidents in it.")
    exposure_days: float = Field(description="Service-days of exposure it covers.")
    campaign: str = Field(description="The campaign results read.")
    chaos: str | None = Field(description="The chaos-results database, if any.")
    real_results: int = Field(description="Real (chaos-test) runs.")
    simulated_runs: int = Field(description="Campaign runs in the twin.")


class RiskReport(BaseModel):
    """``risk.json``: failure probabilities, expected SLO-breach minutes and remediation
    priorities over a horizon, with the diagnostics and evidence behind them. Intervals are
    ``{"mean", "lo", "hi"}`` at ``interval`` credibility."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon_days: float = Field(description="Horizon the risk is over, days.")
    interval: float = Field(description="Credibility of every interval (0.9: 5th-95th).")
    policy: str = Field(description="Policy in force.")
    policies: list[str] = Field(description="Policies the campaign compared.")
    load: float = Field(description="Load multiplier judged at.")
    slo: dict[str, Any] = Field(description="SLO targets of the campaign.")
    slos: list[str] = Field(description="SLOs judged ('any' is any of them).")
    error_budget_minutes: float = Field(description="Error budget over the horizon, minutes.")
    draws: int = Field(description="Posterior draws simulated.")
    services: list[dict[str, Any]] = Field(description="Per service, ranked by breach minutes.")
    failure_modes: list[dict[str, Any]] = Field(
        description="Per (service, fault kind), ranked by expected breach minutes."
    )
    twin_vs_real: dict[str, Any] = Field(description="Twin-vs-real discrepancy by fault kind.")
    priorities: list[dict[str, Any]] = Field(description="The remediation list, worst first.")
    method: str = Field(description="Sampler used.")
    diagnostics: list[dict[str, Any]] = Field(description="Per model: r-hat, ESS, divergences.")
    evidence: RiskEvidence
    notes: list[str] = Field(description="What the reader should know about the evidence.")
    wall_seconds: float = Field(description="Wall time of the assessment, seconds.")


class RiskRefused(TwinError):
    """The sampler's diagnostics failed: no risk is reported. A refusal on the merits (exit
    3), with the message ``refusing to report: <model> model: <problems> | ...``."""

    exit_code = 3
    label = ""


def runs_of(rows: Any, source: str) -> int:
    """Runs (not binomial rows) of one source: the trials of a single SLO."""
    first = rows[rows["slo"] == rows["slo"].iloc[0]]
    return int(first.loc[first["source"] == source, "trials"].sum())


def assess(config: RiskConfig, *, on_evidence: Callable[[str], None] | None = None) -> Analysis:
    """Read the evidence, fit the models and (when the diagnostics pass) compute the risk.

    ``on_evidence`` hears one line on what was read before the (long) sampling starts."""
    hist, impact = load_evidence(
        config.history,
        config.results,
        config.db,
        services=config.services,
        period_days=config.period_days,
    )
    if on_evidence is not None:
        on_evidence(
            f"evidence: {int(hist.counts['incidents'].sum())} incidents, "
            f"{len(hist.services)} services x {len(hist.kinds)} fault kinds; "
            f"{runs_of(impact.rows, 'sim')} campaign runs, {runs_of(impact.rows, 'real')} real "
            f"results; sampling with {config.method}..."
        )
    return analyse(
        hist,
        impact,
        fit_options=FitOptions(
            method=config.method,
            draws=config.draws,
            tune=config.tune,
            chains=config.chains,
            seed=config.seed,
            progress=config.progress,
        ),
        risk_options=RiskOptions(
            horizon_days=config.horizon_days,
            policy=config.policy,
            load=config.load,
            seed=config.seed,
        ),
    )


def refusal(analysis: Analysis) -> RiskRefused:
    """Why an analysis whose diagnostics failed is not reported."""
    return RiskRefused(
        "refusing to report: "
        + " | ".join(
            f"{d.model} model: {'; '.join(d.problems)}" for d in analysis.diagnostics if d.problems
        )
    )


def risk_report(config: RiskConfig, analysis: Analysis, *, wall_seconds: float) -> RiskReport:
    """The report of an analysis; raises :class:`RiskRefused` if its diagnostics failed."""
    if not analysis.ok or analysis.risk is None:
        raise refusal(analysis)
    hist, impact = analysis.history, analysis.impact
    return RiskReport(
        **analysis.risk,
        priorities=priorities(analysis.risk),
        method=config.method,
        diagnostics=[d.to_dict() for d in analysis.diagnostics],
        evidence=RiskEvidence(
            history=hist.source,
            incidents=int(hist.counts["incidents"].sum()),
            exposure_days=float(hist.counts["exposure_days"].sum()),
            campaign=impact.source,
            chaos=config.db,
            real_results=runs_of(impact.rows, "real"),
            simulated_runs=runs_of(impact.rows, "sim"),
        ),
        notes=analysis.notes,
        wall_seconds=wall_seconds,
    )
