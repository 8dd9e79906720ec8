"""Drift prediction: the change history read from snapshots, change logs and managedFields,
the hierarchical model's coords, alerts above the threshold, and held-out skill."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.bayes.drift import (
    DriftPriors,
    build_drift_model,
    holdout,
    synthetic_history,
    tidy_counts,
)
from twin.drift.history import field_class, from_changelog, from_managed_fields, from_snapshots
from twin.drift.manifests import index
from twin.drift.run import alerts_from
from twin.errors import InputError
from twin.io import dump_yaml


def _deploy(replicas: int, image: str = "a:1") -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "a"},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "a", "image": image}]}},
        },
    }


def test_field_classes_of_pointers() -> None:
    assert field_class("/spec/replicas") == "replicas"
    assert field_class("/spec/template/spec/containers/0/resources/limits/cpu") == "resources"
    assert field_class("/spec/template/spec/containers/1/image") == "image"
    assert field_class("/spec/template/spec/containers/0/env/3/value") == "env"
    assert field_class("/spec/template/spec/hostNetwork") == "security"
    assert field_class("") == "resource"
    assert field_class("/spec/selector") == "other"


def test_snapshots_become_changes_per_resource_class_and_span(tmp_path: Path) -> None:
    states = {"2026-11-01": _deploy(2), "2026-11-11": _deploy(3), "2026-11-21": _deploy(3, "a:2")}
    for name, obj in states.items():
        (tmp_path / f"{name}.yaml").write_text(dump_yaml(obj))
    (tmp_path / "notes.yaml").write_text(dump_yaml(_deploy(9)))  # no timestamp: not a snapshot
    df = from_snapshots(tmp_path)
    got = df[df["changes"] > 0].set_index("field_class")["changes"].to_dict()
    assert got == {"replicas": 1, "image": 1}
    assert set(df["exposure_days"]) == {20.0}


def test_managed_fields_count_each_later_write_as_a_change() -> None:
    obj = _deploy(2)
    obj["metadata"]["creationTimestamp"] = "2026-11-01T00:00:00Z"  # type: ignore[index]
    obj["metadata"]["managedFields"] = [  # type: ignore[index]
        {
            "manager": "kubectl-client-side-apply",
            "time": "2026-11-01T00:00:00Z",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        },
        {
            "manager": "kubectl-scale",
            "time": "2026-11-05T00:00:00Z",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        },
    ]
    df = from_managed_fields(index([(obj, "o")]), datetime(2026, 11, 11, tzinfo=UTC))
    changed = df[df["changes"] > 0]
    assert list(zip(changed["field_class"], changed["manager"], strict=True)) == [
        ("replicas", "kubectl-scale")
    ]
    assert set(df["exposure_days"]) == {10.0}


def test_a_change_log_with_a_bad_time_is_one_line(tmp_path: Path) -> None:
    good = tmp_path / "log.csv"
    good.write_text(
        "time,resource,field_class,manager\n2026-11-01T00:00:00Z,D/x/a,replicas,k\n2026-11-03T00:00:00Z,D/x/b,image,h\n"
    )
    df = from_changelog(good)
    assert df["changes"].sum() == 2 and set(df["exposure_days"]) == {2.0}
    bad = tmp_path / "bad.csv"
    bad.write_text("time,resource,field_class,manager\nyesterday,D/x/a,replicas,k\n")
    with pytest.raises(InputError, match="row 2: time 'yesterday' is not ISO-8601"):
        from_changelog(bad)


def test_the_model_has_named_coords_for_resource_class_and_manager() -> None:
    h = synthetic_history(
        np.random.default_rng(1), resources=5, classes=("replicas", "image"), managers=("k", "h")
    )
    model = build_drift_model(tidy_counts(h.events, h.rates, 0.0, 60.0))
    assert len(model.coords["resource"]) == 5
    assert list(model.coords["field_class"]) == ["replicas", "image"]
    assert list(model.coords["manager"]) == ["k", "h"]
    with pytest.raises(InputError, match="missing column"):
        build_drift_model(pd.DataFrame({"resource": ["a"]}))


def test_groups_with_few_levels_are_fixed_effects_and_resources_learn_a_spread() -> None:
    """60 resources share a learnt spread; 6 field classes and 4 managers are too few to
    identify one, so each level is a fixed effect. The cut is the priors' ``pool_from``."""
    h = synthetic_history(np.random.default_rng(1), resources=12)
    train = tidy_counts(h.events, h.rates, 0.0, 60.0)
    free = {v.name for v in build_drift_model(train).free_RVs}
    assert "resource_sd" in free
    assert {"class_effect", "manager_effect"} <= free
    assert not {"class_sd", "manager_sd"} & free
    pooled_all = {v.name for v in build_drift_model(train, DriftPriors(pool_from=2)).free_RVs}
    assert {"resource_sd", "class_sd", "manager_sd"} <= pooled_all


def test_alerts_are_the_resources_at_or_above_the_threshold_most_likely_first() -> None:
    table = pd.DataFrame(
        {
            "resource": ["a", "b", "c"],
            "probability": [0.2, 0.9, 0.5],
            "low": [0.1, 0.8, 0.3],
            "high": [0.3, 0.95, 0.7],
            "top_field_class": ["image"] * 3,
            "top_manager": ["k"] * 3,
        }
    )
    alerts = alerts_from(table, threshold=0.5, horizon_days=30.0, interval=0.9)
    assert [a.resource for a in alerts] == ["b", "c"]
    assert all(a.kind == "drift-predicted" and a.horizon_days == 30.0 for a in alerts)


def test_held_out_brier_beats_the_base_rate() -> None:
    """One synthetic 90-day history (seed 0), fitted on 60 days, scored on the last 30; the
    pooled coverage over many seeds is measured by experiments/drift_prediction.py."""
    from twin.bayes.fit import FitOptions, fit

    h = synthetic_history(np.random.default_rng(0), resources=60)
    train = tidy_counts(h.events, h.rates, 0.0, 60.0)
    f = fit(build_drift_model(train), FitOptions(draws=1000, tune=1000, chains=2, seed=0))
    ho = holdout(h, f.idata, train, train_days=60.0, horizon_days=30.0)
    assert 0.1 < ho.drifted_share < 0.9  # both outcomes occur: the score means something
    assert ho.brier < ho.brier_base_rate
    assert ho.coverage_true_probability >= 0.75


def test_a_quiet_history_keeps_its_resource_spread_and_its_intervals_cover() -> None:
    """Seed 12: 31 changes over 60 resources in 90 days (21 in the training days), counts
    that look alike by chance. A weak spread prior let them pull the resource spread to about
    half its true value and the intervals covered 68% of the true probabilities; the firmer
    prior keeps the spread near the truth (1) and the coverage at 80% (measured)."""
    from twin.bayes.checks import diagnose
    from twin.bayes.fit import FitOptions, fit

    h = synthetic_history(np.random.default_rng(12), resources=60)
    train = tidy_counts(h.events, h.rates, 0.0, 60.0)
    assert train["changes"].sum() < 30  # quiet indeed
    f = fit(build_drift_model(train), FitOptions(draws=1000, tune=1000, chains=2, seed=12))
    assert diagnose(f, model="drift").ok
    assert float(f.idata.posterior["resource_sd"].mean()) > 0.6
    ho = holdout(h, f.idata, train, train_days=60.0, horizon_days=30.0)
    assert ho.coverage_true_probability >= 0.75
