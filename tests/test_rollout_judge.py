"""The canary judge: Kayenta's per-metric classification, checked against scipy and known
cases, and the variance check Mann-Whitney alone lacks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from twin.change.judge import (
    JudgeSettings,
    MetricRule,
    clean,
    hodges_lehmann,
    judge,
    judge_metric,
)


def _rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_identical_samples_pass_with_a_zero_shift() -> None:
    x = _rng().lognormal(-3, 0.5, 60)
    v = judge_metric(x, x.copy(), MetricRule(name="latency"))
    assert v.classification == "Pass"
    assert v.shift == 0.0 and v.shift_lo is not None and v.shift_lo <= 0 <= (v.shift_hi or 0)
    assert v.p_value == pytest.approx(1.0)


def test_a_threefold_latency_is_high() -> None:
    g = _rng(2)
    base = g.lognormal(-3, 0.3, 40)
    v = judge_metric(base * 3 * g.lognormal(0, 0.05, 40), base, MetricRule(name="latency"))
    assert v.classification == "High"
    assert v.mean_ratio is not None and 2.5 < v.mean_ratio < 3.5


def test_the_p_value_is_scipys_mann_whitney() -> None:
    g = _rng(3)
    a, b = g.normal(1.0, 1, 30), g.normal(0.0, 1, 25)
    v = judge_metric(a, b, MetricRule(name="m", outliers="keep"))
    assert v.p_value == pytest.approx(stats.mannwhitneyu(a, b).pvalue)


def test_the_hodges_lehmann_interval_covers_a_known_shift_as_often_as_it_claims() -> None:
    g = _rng(4)
    hits = 0
    trials = 300
    for _ in range(trials):
        a, b = g.normal(0.5, 1, 20), g.normal(0.0, 1, 20)
        _est, lo, hi = hodges_lehmann(a, b, 0.9)
        hits += lo <= 0.5 <= hi
    # 90% interval: the binomial 99.9% band around 270 of 300
    assert 250 <= hits <= 290


def test_hodges_lehmann_is_the_median_of_pairwise_differences() -> None:
    a, b = np.array([1.0, 2.0, 7.0]), np.array([0.0, 1.0])
    est, _, _ = hodges_lehmann(a, b, 0.9)
    assert est == np.median([1, 0, 2, 1, 7, 6])


def test_a_variance_only_increase_is_caught_by_the_variance_check_not_mann_whitney() -> None:
    g = _rng(5)
    base = g.normal(100.0, 5.0, 200)
    canary = g.normal(100.0, 25.0, 200)
    assert stats.mannwhitneyu(canary, base).pvalue > 0.05  # location: no difference
    v = judge_metric(canary, base, MetricRule(name="latency"))
    assert v.classification == "High"
    assert v.reason.startswith("variance")
    assert v.spread_ratio is not None and v.spread_ratio > 3


def test_a_shift_below_the_allowed_increase_passes() -> None:
    g = _rng(6)
    base = g.normal(100.0, 1.0, 100)
    canary = base * 1.05
    strict = judge_metric(canary, base, MetricRule(name="m", allowed_increase=1.0))
    lenient = judge_metric(canary, base, MetricRule(name="m", allowed_increase=1.1))
    assert strict.classification == "High" and lenient.classification == "Pass"


def test_direction_increase_lets_a_decrease_pass_and_either_does_not() -> None:
    g = _rng(7)
    base = g.normal(10.0, 1.0, 50)
    faster = base / 3
    assert judge_metric(faster, base, MetricRule(name="m")).classification == "Pass"
    either = judge_metric(faster, base, MetricRule(name="m", direction="either"))
    assert either.classification == "Low"


def test_too_few_values_is_nodata_and_nan_strategies_differ() -> None:
    nan = np.array([np.nan] * 8 + [1.0, 1.0])
    assert judge_metric(nan, np.ones(10), MetricRule(name="m")).classification == "NoData"
    assert len(clean(nan, MetricRule(name="m", nan_strategy="replace"))) == 10


def test_iqr_outlier_removal_drops_a_single_spike() -> None:
    x = np.r_[np.linspace(1.0, 2.0, 20), 1000.0]
    assert 1000.0 not in clean(x, MetricRule(name="m"))
    assert 1000.0 in clean(x, MetricRule(name="m", outliers="keep"))


def test_score_is_pass_share_and_a_critical_failure_forces_zero() -> None:
    g = _rng(8)
    base = g.normal(10.0, 1.0, 50)
    data_c = {"a": base * 3, "b": base, "c": base, "d": base}
    data_b = dict.fromkeys(data_c, base)
    rules = [MetricRule(name=k) for k in data_c]
    j = judge(data_c, data_b, rules)
    assert j.score == pytest.approx(75.0) and j.classification == "marginal"
    crit = [MetricRule(name="a", critical=True), *rules[1:]]
    jc = judge(data_c, data_b, crit)
    assert jc.score == 0.0 and jc.classification == "fail"
    assert judge(data_b, data_b, rules).classification == "pass"
    none = judge({}, {}, rules)
    assert none.classification == "nodata" and none.score is None


def test_critical_increase_spares_a_small_rise_of_a_critical_metric() -> None:
    g = _rng(9)
    base = g.normal(10.0, 0.5, 50)
    rule = MetricRule(name="m", critical=True, allowed_increase=1.0, critical_increase=2.0)
    small = judge_metric(base * 1.3, base, rule)
    big = judge_metric(base * 3.0, base, rule)
    assert small.classification == "High" and not small.critical_failure
    assert big.critical_failure


def test_thresholds_set_the_class() -> None:
    g = _rng(10)
    base = g.normal(10.0, 1.0, 50)
    data_c = {"a": base * 3, "b": base}
    data_b = {"a": base, "b": base}
    rules = [MetricRule(name="a"), MetricRule(name="b")]
    assert judge(data_c, data_b, rules).classification == "fail"
    lax = JudgeSettings(pass_score=90, marginal_score=50)
    assert judge(data_c, data_b, rules, lax).classification == "marginal"


def test_rare_errors_are_not_outliers_when_most_steps_have_none() -> None:
    canary = np.r_[np.zeros(12), [0.5, 1.0] * 4]
    v = judge_metric(canary, np.zeros(20), MetricRule(name="errors", min_shift=0.01))
    assert v.canary_count == 20 and v.classification == "High"


def test_a_pass_with_a_metric_without_data_is_only_marginal() -> None:
    base = _rng(11).normal(10.0, 1.0, 50)
    rules = [MetricRule(name="errors"), MetricRule(name="latency")]
    j = judge({"errors": base, "latency": base[:2]}, {"errors": base, "latency": base}, rules)
    assert j.score == 100.0 and j.classification == "marginal"
    assert "latency NoData" in j.reason
