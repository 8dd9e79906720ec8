"""The residual anomaly score: flags injected spikes, keeps its nominal false-positive rate."""

from __future__ import annotations

import math

import numpy as np

from twin.predict.anomaly import AnomalyDetector, tail_surprise
from twin.predict.forecast import HoltWinters
from twin.predict.robust import RunningMax, WindowedMedian


def test_an_injected_spike_is_flagged_and_the_clean_points_mostly_not() -> None:
    rng = np.random.default_rng(11)
    n, period = 2000, 48
    y = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0.0, 0.5, n)
    y[1500] += 6.0  # 12 sigma
    det = AnomalyDetector(HoltWinters(period=period), tail=1e-3)
    res = [det.update(float(i), float(v)) for i, v in enumerate(y)]
    assert res[1500].is_anomaly
    assert res[1500].surprise > 10
    others = sum(r.is_anomaly for i, r in enumerate(res) if i != 1500)
    assert others <= 10  # nominal 1e-3 of ~1900 scored points: about 2


def test_false_positive_rate_is_near_the_nominal_tail_on_gaussian_noise() -> None:
    rng = np.random.default_rng(12)
    n, tail = 10000, 0.01
    det = AnomalyDetector(HoltWinters(period=0), tail=tail)
    res = [det.update(float(i), float(v)) for i, v in enumerate(rng.normal(3.0, 1.0, n))]
    scored = [r for r in res if r.ready]
    rate = sum(r.is_anomaly for r in scored) / len(scored)
    assert 0.5 * tail <= rate <= 1.6 * tail


def test_the_tail_surprise_matches_the_normal_distribution_and_stays_finite() -> None:
    assert math.isclose(tail_surprise(1.959963984540054), -math.log10(0.05), rel_tol=1e-9)
    assert tail_surprise(0.0) == 0.0
    assert math.isfinite(tail_surprise(1e6)) and tail_surprise(1e6) > 1e11


def test_missing_points_are_skipped_and_counted_never_a_nan() -> None:
    rng = np.random.default_rng(13)
    y = rng.normal(0.0, 1.0, 600).tolist()
    y[100] = math.nan
    y[400] = -math.inf
    det = AnomalyDetector(HoltWinters(period=0))
    res = [det.update(float(i), v) for i, v in enumerate(y)]
    assert det.skipped == 2
    assert res[400].skipped and not res[400].is_anomaly
    assert all(math.isfinite(r.z) and math.isfinite(r.surprise) for r in res)


def test_a_series_that_sits_on_one_value_scores_finite_and_flags_a_change() -> None:
    y = [5.0] * 300 + [6.0] + [5.0] * 50
    det = AnomalyDetector(HoltWinters(period=0))
    res = [det.update(float(i), v) for i, v in enumerate(y)]
    assert all(math.isfinite(r.z) for r in res)
    assert res[300].is_anomaly
    assert not any(r.is_anomaly for r in res[:300])


def test_same_stream_same_scores() -> None:
    rng = np.random.default_rng(14)
    y = rng.normal(0.0, 1.0, 800)
    one, two = AnomalyDetector(), AnomalyDetector()
    a = [one.update(float(i), float(v)) for i, v in enumerate(y)]
    b = [two.update(float(i), float(v)) for i, v in enumerate(y)]
    assert a == b


def test_windowed_median_and_mad_match_numpy_over_the_window() -> None:
    rng = np.random.default_rng(15)
    xs = rng.standard_t(3, 400)
    w = WindowedMedian(101, refresh=1)
    for x in xs:
        w.push(float(x))
    last = xs[-101:]
    assert math.isclose(w.median(), float(np.median(last)))
    assert math.isclose(w.mad(), float(np.median(np.abs(last - np.median(last)))))
    assert len(w) == 101


def test_running_max_is_the_max_of_the_last_window_values() -> None:
    rng = np.random.default_rng(16)
    xs = rng.normal(size=500)
    m = RunningMax(37)
    for i, x in enumerate(xs):
        m.push(float(x))
        assert m.max() == float(xs[max(0, i - 36) : i + 1].max())
