"""The whole risk analysis from files: read evidence, fit both models, check, compute risk.

``twin risk`` and the app call :func:`analyse`; it never prints and never exits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.bayes.checks import Diagnostics, Thresholds, diagnose
from twin.bayes.evidence import History, read_history
from twin.bayes.failure import (
    ImpactPriors,
    OccurrencePriors,
    build_impact_model,
    build_occurrence_model,
    impact_design,
)
from twin.bayes.fit import Fit, FitOptions, fit
from twin.bayes.risk import RiskInputs, RiskOptions, check_services, compute_risk, risk_inputs
from twin.bayes.runs import Impact, build_impact, read_chaos, read_runs


@dataclass
class Analysis:
    """Evidence, fits, diagnostics and (when the diagnostics pass) the risk."""

    history: History
    impact: Impact
    fits: dict[str, Fit]
    diagnostics: list[Diagnostics]
    inputs: RiskInputs | None = None
    risk: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.diagnostics)


def load_evidence(
    history: str | Path,
    results: str | Path,
    db: str | None = None,
    *,
    services: list[str] | None = None,
    period_days: float = 30.0,
) -> tuple[History, Impact]:
    """Read and validate every input; problems are one-line InputErrors."""
    runs, slo, source = read_runs(results)
    real = [read_chaos(db)] if db else []
    impact = build_impact(runs, source=source, slo=slo, real=real)
    known = services
    hint = ""
    if known is None:
        hint = "the campaign's targets; give --topology to name every service"
        known = list(
            dict.fromkeys(t for t in impact.rows["target"] if "->" not in t and ":" not in t)
        )
    kinds = list(dict.fromkeys(impact.rows["fault_kind"]))
    hist = read_history(
        history, services=known, kinds=kinds, period_days=period_days, services_hint=hint
    )
    return hist, impact


def analyse(
    history: History,
    impact: Impact,
    *,
    fit_options: FitOptions | None = None,
    thresholds: Thresholds | None = None,
    risk_options: RiskOptions | None = None,
    occurrence_priors: OccurrencePriors | None = None,
    impact_priors: ImpactPriors | None = None,
) -> Analysis:
    """Fit the occurrence and impact models, check them, and compute the risk if they pass."""
    started = time.perf_counter()
    fo = fit_options or FitOptions()
    ro = risk_options or RiskOptions()
    design = impact_design(impact.rows, impact.policies)
    occ = fit(build_occurrence_model(history.counts, occurrence_priors), fo)
    imp = fit(build_impact_model(impact.rows, impact_priors, design), fo)
    diags = [
        diagnose(occ, model="occurrence", thresholds=thresholds),
        diagnose(imp, model="impact", thresholds=thresholds),
    ]
    notes = [*history.notes, *impact.notes, *check_services(history, impact, None)]
    out = Analysis(history, impact, {"occurrence": occ, "impact": imp}, diags, notes=notes)
    if out.ok:
        out.inputs = risk_inputs(
            occ.idata, history, imp.idata, design, impact, seed=ro.seed, max_draws=ro.max_draws
        )
        out.risk = compute_risk(out.inputs, ro)
    out.seconds = time.perf_counter() - started
    return out
