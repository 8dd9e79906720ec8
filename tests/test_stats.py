"""LogHistogram: quantiles within a bucket of the exact order statistic, merges lose nothing."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from twin.stats import BUCKETS_PER_DECADE, LogHistogram

WIDTH = 10 ** (1 / BUCKETS_PER_DECADE)  # one bucket's ratio of upper to lower edge

values = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e4)), min_size=1, max_size=300
)
fractions = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=6)


def _hist(xs: list[float]) -> LogHistogram:
    h = LogHistogram()
    for x in xs:
        h.add(x)
    return h


@settings(max_examples=300, deadline=None)
@given(values, fractions)
def test_quantiles_asked_together_equal_quantiles_asked_one_by_one(
    xs: list[float], qs: list[float]
) -> None:
    h = _hist(xs)
    assert h.quantiles(qs) == [h.quantile(q) for q in qs]


@settings(max_examples=300, deadline=None)
@given(values, fractions)
def test_quantile_lies_within_one_bucket_of_the_exact_order_statistic(
    xs: list[float], qs: list[float]
) -> None:
    h = _hist(xs)
    ordered = sorted(xs)
    for q, got in zip(qs, h.quantiles(qs), strict=True):
        # the smallest value with at least q * n samples at or below it
        k = max(0, math.ceil(q * len(xs) - 1e-9) - 1)
        exact = ordered[k]
        assert min(xs) <= got <= max(xs)
        if exact == 0.0:
            assert got == 0.0
        else:
            assert exact / WIDTH <= got <= exact * WIDTH


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_merging_two_histograms_equals_adding_every_value_to_one(
    xs: list[float], ys: list[float]
) -> None:
    merged = _hist(xs)
    merged.merge(_hist(ys))
    both = _hist(xs + ys)
    assert merged.counts == both.counts
    assert (merged.n, merged.lo, merged.hi) == (both.n, both.lo, both.hi)
    assert math.isclose(merged.total, both.total, rel_tol=1e-12, abs_tol=1e-12)
    assert merged.quantiles((0.5, 0.95, 0.99)) == both.quantiles((0.5, 0.95, 0.99))


def test_empty_histogram_reports_nan_for_every_quantile() -> None:
    assert all(math.isnan(v) for v in LogHistogram().quantiles((0.5, 0.99)))
    assert LogHistogram().quantiles(()) == []


def test_quantiles_of_one_bucket_are_its_midpoint_within_the_samples_range() -> None:
    one_bucket = LogHistogram()
    for x in (0.1, 0.1005, 0.101):  # within one 1.16% bucket
        one_bucket.add(x)
    assert len(one_bucket.counts) == 1
    p50, p99, above = one_bucket.quantiles((0.5, 0.99, 1.5))
    assert 0.1 <= p50 == p99 <= 0.101
    assert above == 0.101  # a fraction above 1 is never reached: the largest sample
    spread = LogHistogram()
    for x in (0.1, 0.1005, 0.101, 10.0):
        spread.add(x)
    assert spread.quantiles((0.5,)) == [p50]
