"""Canary against baseline, per metric, the way Kayenta judges it, plus the variance check it
lacks.

For each metric the two samples (a value per step of the metric's time series, or one per
request) go through:

1. **NaN strategy**: ``remove`` drops missing values, ``replace`` counts them as 0 (a
   counter with no events in a step, such as errors).
2. **Outliers**: values outside ``[Q1 - k IQR, Q3 + k IQR]`` of their own sample are dropped
   (``k = outlier_factor``, 3 as in Kayenta; ``keep`` skips this). A sample whose IQR is 0
   (an error series that is mostly 0) keeps every value: otherwise every error is an
   "outlier".
3. **Location**: the Mann-Whitney U test (scipy) and the Hodges-Lehmann shift (median of all
   canary - baseline differences) with its distribution-free confidence interval (the order
   statistics of those differences at the U test's critical value, normal approximation). An
   interval above 0 is a candidate *High*, below 0 a candidate *Low*. Unlike Kayenta, a
   sparse series (errors in fewer than half the steps, where that median is 0 whatever the
   error rate) is decided by the U test's p-value (below ``1 - confidence``) and the means.
4. **Effect size**: a candidate High stays High only when the canary/baseline mean ratio
   reaches ``allowed_increase`` and the shift reaches ``min_shift`` (an absolute floor, so a
   change from 0.0 to 0.001 errors per second is not a failure); Low likewise with
   ``allowed_decrease``. ``direction`` says which way is bad (``increase``: a Low passes).
5. **Variance**: Mann-Whitney compares locations and misses a canary that is as fast on the
   median but far more erratic. When location passes, a Brown-Forsythe test (Levene around
   medians) with a robust spread ratio (IQR canary / IQR baseline) at or above
   ``allowed_spread_increase`` marks the metric High, reason ``variance``.

A metric with fewer than ``min_samples`` values on either side is *NoData*. The score is
``100 x weight(Pass) / weight(Pass + High + Low)``; a critical metric classified High (or
Low, for ``either``) at or beyond ``critical_increase`` forces the score to 0. The whole
judgement is ``pass`` at or above ``pass_score``, ``marginal`` at or above
``marginal_score``, else ``fail``; ``nodata`` when no metric could be judged. Unlike Kayenta,
a judgement with a NoData metric cannot pass: it is at best ``marginal`` (the metrics with
data may be the uninformative ones, such as errors of a canary whose slow requests have not
completed yet).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from twin.bounds import Finite, Int, Name, Probability

Classification = Literal["High", "Low", "Pass", "NoData"]
"""A metric's class, as Kayenta names them."""

Verdict = Literal["pass", "marginal", "fail", "nodata"]
"""The whole judgement's class."""

MAX_JUDGED_SAMPLES = 2_000
"""Values kept per side (evenly spaced) so the pairwise differences stay at most 4 million."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricRule(_Doc):
    """How one metric is judged (Kayenta's ``analysisConfigurations.canary``)."""

    name: Name = Field(description="the metric's name in reports")
    direction: Literal["increase", "decrease", "either"] = Field(
        default="increase", description="which change is bad: latency and errors `increase`"
    )
    nan_strategy: Literal["remove", "replace"] = Field(
        default="remove", description="`replace` counts a missing value as 0"
    )
    outliers: Literal["remove", "keep"] = Field(
        default="remove", description="drop values beyond `outlier_factor` IQRs of the quartiles"
    )
    outlier_factor: Finite = Field(default=3.0, gt=0.0, le=100.0)
    critical: bool = Field(default=False, description="a failure forces the score to 0")
    weight: Finite = Field(default=1.0, gt=0.0, le=1e6, description="weight in the score")
    allowed_increase: Finite = Field(
        default=1.1, ge=1.0, le=1e6, description="canary/baseline mean ratio tolerated (1.1: +10%)"
    )
    allowed_decrease: Finite = Field(
        default=0.9, gt=0.0, le=1.0, description="canary/baseline mean ratio tolerated downwards"
    )
    critical_increase: Finite | None = Field(
        default=None,
        ge=1.0,
        le=1e6,
        description="for a critical metric: the ratio at which a High fails the whole canary "
        "(none: any High of a critical metric does)",
    )
    min_shift: Finite = Field(
        default=0.0, ge=0.0, description="smallest |Hodges-Lehmann shift| that can fail, in units"
    )
    allowed_spread_increase: Finite = Field(
        default=2.0, ge=1.0, le=1e6, description="IQR ratio canary/baseline tolerated"
    )
    variance_check: bool = Field(
        default=True,
        description="off for per-step aggregates of unequal traffic: a step's mean over fewer "
        "requests spreads more whatever the version does",
    )
    min_samples: Int = Field(default=5, ge=2, le=1_000_000)


class JudgeSettings(_Doc):
    """Score thresholds and test levels."""

    confidence: Probability = Field(
        default=0.98, gt=0.5, lt=1.0, description="of the Hodges-Lehmann interval (Kayenta: 98%)"
    )
    variance_alpha: Probability = Field(
        default=0.01, gt=0.0, lt=0.5, description="level of the Brown-Forsythe test"
    )
    pass_score: Finite = Field(default=95.0, ge=0.0, le=100.0)
    marginal_score: Finite = Field(default=75.0, ge=0.0, le=100.0)


class MetricVerdict(_Doc):
    """One metric's outcome, with every figure behind it."""

    name: str
    classification: Classification
    reason: str = Field(description="why, in words")
    critical_failure: bool = False
    canary_count: int = Field(description="values judged after NaN and outlier handling")
    baseline_count: int
    canary_mean: float | None = None
    baseline_mean: float | None = None
    mean_ratio: float | None = Field(default=None, description="canary mean / baseline mean")
    shift: float | None = Field(default=None, description="Hodges-Lehmann canary - baseline")
    shift_lo: float | None = None
    shift_hi: float | None = None
    p_value: float | None = Field(default=None, description="Mann-Whitney U, two-sided")
    spread_ratio: float | None = Field(default=None, description="IQR canary / IQR baseline")
    variance_p: float | None = Field(default=None, description="Brown-Forsythe p-value")


class Judgement(_Doc):
    """The canary's score and class over all metrics."""

    score: float | None = Field(description="0..100, none when no metric had data")
    classification: Verdict
    reason: str
    metrics: list[MetricVerdict]


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def clean(values: Sequence[float] | np.ndarray, rule: MetricRule) -> np.ndarray:
    """The sample after the rule's NaN strategy and outlier removal."""
    x = np.asarray(values, dtype=float).ravel()
    bad = ~np.isfinite(x)
    x = np.where(bad, 0.0, x) if rule.nan_strategy == "replace" else x[~bad]
    if rule.outliers == "remove" and len(x) >= 4:
        q1, q3 = np.quantile(x, [0.25, 0.75])
        k = rule.outlier_factor * (q3 - q1)
        if k > 0:  # a zero-width fence would drop every rare event (errors in a few steps)
            x = x[(x >= q1 - k) & (x <= q3 + k)]
    if len(x) > MAX_JUDGED_SAMPLES:
        x = np.sort(x)[np.linspace(0, len(x) - 1, MAX_JUDGED_SAMPLES).astype(int)]
    return x


def hodges_lehmann(
    canary: np.ndarray, baseline: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """The Hodges-Lehmann shift (median of canary - baseline differences) and its
    distribution-free interval: the k-th smallest and largest differences, k being the
    Mann-Whitney critical value at ``confidence`` (normal approximation), as R's
    ``wilcox.test(conf.int=TRUE)`` and Kayenta compute it."""
    from scipy.stats import norm

    d = np.sort(np.subtract.outer(canary, baseline).ravel())
    n, m = len(canary), len(baseline)
    z = float(norm.ppf(0.5 + confidence / 2))
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    k = min(max(k, 0), (len(d) - 1) // 2)
    return float(np.median(d)), float(d[k]), float(d[len(d) - 1 - k])


def _iqr(x: np.ndarray) -> float:
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return float(q3 - q1)


def judge_metric(
    canary: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    rule: MetricRule,
    settings: JudgeSettings | None = None,
) -> MetricVerdict:
    """Classify one metric (see the module docstring for the steps)."""
    from scipy.stats import levene, mannwhitneyu

    s = settings or JudgeSettings()
    c, b = clean(canary, rule), clean(baseline, rule)
    if len(c) < rule.min_samples or len(b) < rule.min_samples:
        return MetricVerdict(
            name=rule.name,
            classification="NoData",
            reason=f"{len(c)} canary and {len(b)} baseline values (need {rule.min_samples})",
            canary_count=len(c),
            baseline_count=len(b),
        )
    cm, bm = float(np.mean(c)), float(np.mean(b))
    if bm != 0.0:
        ratio = cm / bm
    else:
        ratio = 1.0 if cm == 0.0 else math.copysign(math.inf, cm)
    if np.ptp(np.concatenate([c, b])) == 0.0:
        p = 1.0  # every value equal: no evidence of a difference (scipy would divide by 0)
    else:
        p = float(mannwhitneyu(c, b, alternative="two-sided").pvalue)
    shift, lo, hi = hodges_lehmann(c, b, s.confidence)
    ic, ib = _iqr(c), _iqr(b)
    if ib > 0:
        spread = ic / ib
    else:
        spread = 1.0 if ic == 0 else math.inf
    var_p = float("nan")
    if np.std(c) > 0 or np.std(b) > 0:
        var_p = float(levene(c, b, center="median").pvalue)

    up_bad = rule.direction in ("increase", "either")
    down_bad = rule.direction in ("decrease", "either")
    cls: Classification = "Pass"
    reason = f"no shift at {s.confidence:.0%} (interval {lo:.4g}..{hi:.4g})"
    alpha = 1.0 - s.confidence
    # sparse series (errors in a few steps): the median of the differences is 0 whenever
    # fewer than half the pairs differ, so the U test's p-value and the means decide
    sparse = shift == 0.0 and p < alpha
    effect = shift if not sparse else cm - bm
    if lo > 0 or (sparse and cm > bm):
        if not up_bad:
            reason = "higher, and an increase is allowed"
        elif ratio < rule.allowed_increase:
            reason = f"higher by {ratio:.3g}x, within the allowed {rule.allowed_increase:g}x"
        elif abs(effect) < rule.min_shift:
            reason = f"higher by {effect:.4g}, below the {rule.min_shift:g} that matters"
        else:
            cls = "High"
            reason = f"higher: shift {effect:.4g} ({lo:.4g}..{hi:.4g}), {ratio:.3g}x, p={p:.2g}"
    elif hi < 0 or (sparse and cm < bm):
        if not down_bad:
            reason = "lower, and a decrease is allowed"
        elif ratio > rule.allowed_decrease:
            reason = f"lower by {ratio:.3g}x, within the allowed {rule.allowed_decrease:g}x"
        elif abs(effect) < rule.min_shift:
            reason = f"lower by {effect:.4g}, below the {rule.min_shift:g} that matters"
        else:
            cls = "Low"
            reason = f"lower: shift {effect:.4g} ({lo:.4g}..{hi:.4g}), {ratio:.3g}x, p={p:.2g}"
    if (
        cls == "Pass"
        and rule.variance_check
        and up_bad
        and math.isfinite(var_p)
        and var_p < s.variance_alpha
        and spread >= rule.allowed_spread_increase
    ):
        cls = "High"
        reason = (
            f"variance: spread {spread:.3g}x the baseline's (Brown-Forsythe p={var_p:.2g}), "
            f"location unchanged (Mann-Whitney p={p:.2g})"
        )
    critical = (
        rule.critical
        and cls in ("High", "Low")
        and (
            rule.critical_increase is None
            or (cls == "High" and ratio >= rule.critical_increase)
            or (cls == "Low" and ratio > 0 and 1 / ratio >= rule.critical_increase)
        )
    )
    return MetricVerdict(
        name=rule.name,
        classification=cls,
        reason=reason,
        critical_failure=critical,
        canary_count=len(c),
        baseline_count=len(b),
        canary_mean=_finite_or_none(cm),
        baseline_mean=_finite_or_none(bm),
        mean_ratio=_finite_or_none(ratio),
        shift=_finite_or_none(shift),
        shift_lo=_finite_or_none(lo),
        shift_hi=_finite_or_none(hi),
        p_value=_finite_or_none(p),
        spread_ratio=_finite_or_none(spread),
        variance_p=_finite_or_none(var_p),
    )


def score(verdicts: Sequence[MetricVerdict], rules: Sequence[MetricRule]) -> float | None:
    """``100 x weight(Pass) / weight(Pass, High, Low)``; 0 on a critical failure; none when
    every metric is NoData."""
    weights = {r.name: r.weight for r in rules}
    if any(v.critical_failure for v in verdicts):
        return 0.0
    judged = [v for v in verdicts if v.classification != "NoData"]
    total = sum(weights.get(v.name, 1.0) for v in judged)
    if total == 0:
        return None
    passed = sum(weights.get(v.name, 1.0) for v in judged if v.classification == "Pass")
    return 100.0 * passed / total


def judge(
    canary: Mapping[str, Sequence[float] | np.ndarray],
    baseline: Mapping[str, Sequence[float] | np.ndarray],
    rules: Sequence[MetricRule],
    settings: JudgeSettings | None = None,
) -> Judgement:
    """Judge every metric that has a rule; a metric missing on one side is NoData."""
    s = settings or JudgeSettings()
    verdicts = [judge_metric(canary.get(r.name, []), baseline.get(r.name, []), r, s) for r in rules]
    sc = score(verdicts, rules)
    failed = [v for v in verdicts if v.classification in ("High", "Low")]
    crit = [v.name for v in verdicts if v.critical_failure]
    if sc is None:
        return Judgement(
            score=None, classification="nodata", reason="no metric had data", metrics=verdicts
        )
    if crit:
        cls: Verdict = "fail"
        reason = f"critical metric failed: {', '.join(crit)}"
    else:
        cls = "pass" if sc >= s.pass_score else "marginal" if sc >= s.marginal_score else "fail"
        if cls == "pass" and any(v.classification == "NoData" for v in verdicts):
            # a pass on the metrics that happen to have data says nothing of the others
            # (a slow canary's latency has no value until its first requests complete)
            cls = "marginal"
            failed = [v for v in verdicts if v.classification == "NoData"]
        reason = f"score {sc:.0f}: " + (
            "; ".join(f"{v.name} {v.classification} ({v.reason})" for v in failed)
            if failed
            else "every judged metric passed"
        )
    return Judgement(score=sc, classification=cls, reason=reason, metrics=verdicts)


__all__ = [
    "MAX_JUDGED_SAMPLES",
    "Classification",
    "JudgeSettings",
    "Judgement",
    "MetricRule",
    "MetricVerdict",
    "Verdict",
    "clean",
    "hodges_lehmann",
    "judge",
    "judge_metric",
    "score",
]
