"""Bayesian failure probabilities, risk and remediation priorities (PyMC).

- :mod:`twin.bayes.evidence`: incident logs, campaign runs and chaos results -> tidy frames,
  with one-line errors naming the file, row and column.
- :mod:`twin.bayes.failure`: the models (fault occurrence, impact given a fault,
  time to failure), each ``build_*_model(tidy_df, priors) -> pm.Model`` with named coords.
- :mod:`twin.bayes.fit`: sampling (nutpie, PyMC NUTS) and a fast variational option.
- :mod:`twin.bayes.checks`: r-hat, effective sample size, divergences; refuse on failure.
- :mod:`twin.bayes.risk`: posterior simulation into risk, priorities and scenario files.
- :mod:`twin.bayes.riskreport`: one assessment from a ``RiskConfig`` and the typed
  ``RiskReport`` that ``risk.json`` holds.

PyMC, ArviZ and nutpie are imported inside the functions that need them, so importing
this package (and ``twin --help``) stays fast.
"""

from twin.bayes.analysis import Analysis, analyse, load_evidence
from twin.bayes.checks import Diagnostics, DiagnosticsError, Thresholds, diagnose, require
from twin.bayes.drift import build_drift_model
from twin.bayes.evidence import History, history_from_counts, parse_horizon, read_history
from twin.bayes.failure import (
    ImpactPriors,
    OccurrencePriors,
    TTFPriors,
    build_impact_model,
    build_occurrence_model,
    build_ttf_model,
    occurrence_rates,
)
from twin.bayes.fit import Fit, FitOptions, fit
from twin.bayes.report import write_report
from twin.bayes.risk import (
    RiskInputs,
    RiskOptions,
    compute_risk,
    posterior_scenarios,
    priorities,
)
from twin.bayes.riskreport import (
    RiskConfig,
    RiskEvidence,
    RiskRefused,
    RiskReport,
    assess,
    risk_report,
)
from twin.bayes.runs import Impact, build_impact, read_chaos, read_runs

__all__ = [
    "Analysis",
    "Diagnostics",
    "DiagnosticsError",
    "Fit",
    "FitOptions",
    "History",
    "Impact",
    "ImpactPriors",
    "OccurrencePriors",
    "RiskConfig",
    "RiskEvidence",
    "RiskInputs",
    "RiskOptions",
    "RiskRefused",
    "RiskReport",
    "TTFPriors",
    "Thresholds",
    "analyse",
    "assess",
    "build_drift_model",
    "build_impact",
    "build_impact_model",
    "build_occurrence_model",
    "build_ttf_model",
    "compute_risk",
    "diagnose",
    "fit",
    "history_from_counts",
    "load_evidence",
    "occurrence_rates",
    "parse_horizon",
    "posterior_scenarios",
    "priorities",
    "read_chaos",
    "read_history",
    "read_runs",
    "require",
    "risk_report",
    "write_report",
]
