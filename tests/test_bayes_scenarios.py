"""Posterior draws become valid Scenario documents, for every service-level fault kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.bayes import synthetic
from twin.bayes.evidence import read_history
from twin.bayes.failure import impact_design
from twin.bayes.risk import _FIELD, RiskInputs, posterior_scenarios
from twin.bayes.runs import build_impact
from twin.io import parse_model
from twin.scenario import Scenario

KINDS = list(_FIELD)
SERVICES = ["a", "b", "c"]


def _inputs(tmp_path: Path, rates: np.ndarray) -> RiskInputs:
    log = tmp_path / "log.csv"
    synthetic.incident_log(SERVICES, KINDS, seed=2, days=365).to_csv(log, index=False)
    hist = read_history(log, services=SERVICES, kinds=KINDS)
    runs, _ = synthetic.impact_runs(SERVICES, KINDS, ("none",), replications=1)
    imp = build_impact(runs, source="runs.parquet")
    design = impact_design(imp.rows, imp.policies)
    return RiskInputs(hist.services, hist.kinds, rates, {}, design, imp, hist)


def test_every_service_level_kind_samples_into_a_valid_scenario(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 0.05, size=(50, len(SERVICES), len(KINDS)))
    inp = _inputs(tmp_path, rates)
    docs = posterior_scenarios(inp, 20, seed=3, horizon_days=30.0, modes=len(KINDS) * 3)
    seen = set()
    for i, doc in enumerate(docs):
        sc = parse_model(Scenario, doc, source=f"doc {i}")
        for fault in sc.faults:
            seen.add(fault.kind)
            assert fault.sample is not None
            assert fault.target in SERVICES
            if _FIELD[fault.kind] is not None:
                # the field our intensity goes to is the one the scenario scales
                assert fault.intensity_field() == _FIELD[fault.kind]
    assert seen == set(KINDS)


def test_a_likelier_fault_recurs_more_often_in_its_scenarios(tmp_path: Path) -> None:
    # one draw, one mode per kind; the gap mean is window / (rate x horizon): inverse in rate
    rates = np.full((1, len(SERVICES), len(KINDS)), 0.01)
    rates[0, 0, 0] = 0.04
    inp = _inputs(tmp_path, rates)
    hot_key = (inp.services[0], inp.kinds[0])
    (doc,) = posterior_scenarios(inp, 1, seed=1, horizon_days=30.0, duration=1860, warmup=60)
    gaps = {(f["target"], f["kind"]): f["sample"]["interval"]["mean"] for f in doc["faults"]}
    hot = gaps[hot_key]
    assert hot == pytest.approx(1800 / (0.04 * 30))
    assert all(hot < g for key, g in gaps.items() if key != hot_key)
