"""The streaming forecaster against theory: seasonal tracking, band coverage, nan, memory."""

from __future__ import annotations

import math

import numpy as np

from twin.predict.forecast import HoltWinters, detect_period


def _sine(n: int, period: int, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10.0 + 3.0 * np.sin(2 * np.pi * t / period) + rng.normal(0.0, sigma, n)


def test_forecast_beats_the_seasonal_naive_forecast_on_a_noisy_sine() -> None:
    # The seasonal naive error y_t - y_{t-m} has variance 2 sigma^2; a model that has learnt
    # the season should be close to sigma^2.
    period, sigma = 48, 0.5
    y = _sine(3000, period, sigma, seed=1)
    hw = HoltWinters(period=period)
    res = [hw.update(float(i), float(v)) for i, v in enumerate(y)]
    tail = slice(1000, None)
    model = np.sqrt(np.mean([r.residual**2 for r in res[tail]]))  # type: ignore[operator]
    naive = np.sqrt(np.mean((y[1000:] - y[1000 - period : -period]) ** 2))
    assert model < 0.85 * naive
    assert model < 1.25 * sigma


def test_the_season_is_found_from_the_data_when_not_given() -> None:
    y = _sine(3000, 48, 0.5, seed=2)
    hw = HoltWinters()
    for i, v in enumerate(y):
        hw.update(float(i), float(v))
    assert hw.period == 48


def test_detect_period_finds_the_season_and_none_in_noise_or_a_random_walk() -> None:
    rng = np.random.default_rng(3)
    assert detect_period(_sine(1000, 24, 0.5, seed=3), 300) == 24
    assert detect_period(rng.normal(size=1000), 300) == 0
    assert detect_period(np.cumsum(rng.normal(size=1000)), 300) == 0


def test_the_band_covers_about_its_nominal_level_on_gaussian_noise() -> None:
    rng = np.random.default_rng(4)
    n, h = 6000, 3
    y = 5.0 + rng.normal(0.0, 2.0, n)
    hw = HoltWinters(period=0, horizon=h, level=0.9)
    res = [hw.update(float(i), float(v)) for i, v in enumerate(y)]
    hits = [res[i - h].lower <= y[i] <= res[i - h].upper for i in range(500, n)]
    assert 0.87 <= float(np.mean(hits)) <= 0.93


def test_missing_points_are_skipped_counted_and_never_give_a_nan() -> None:
    y = _sine(1500, 48, 0.5, seed=5).tolist()
    for i in range(600, 1500, 97):
        y[i] = math.nan
    y[700] = math.inf
    hw = HoltWinters(period=48, horizon=4)
    res = [hw.update(float(i), v) for i, v in enumerate(y)]
    assert hw.skipped == sum(1 for v in y if not math.isfinite(v))
    for r in res:
        numbers = [r.expected, r.scale, r.seasonal, r.point, r.lower, r.upper]
        assert all(math.isfinite(x) for x in numbers)
        assert (r.value is None) == r.skipped == (r.residual is None)
    # The season keeps its phase through the gaps: forecasts after them are still good.
    late = [abs(r.residual) for r in res[1200:] if r.residual is not None]
    assert float(np.mean(late)) < 3 * 0.5


def test_same_stream_same_forecasts() -> None:
    y = _sine(1200, 30, 0.5, seed=6)
    one, two = HoltWinters(horizon=5), HoltWinters(horizon=5)
    a = [one.update(float(i), float(v)) for i, v in enumerate(y)]
    b = [two.update(float(i), float(v)) for i, v in enumerate(y)]
    assert a == b


def test_memory_is_bounded_by_the_history() -> None:
    hw = HoltWinters(period=10, history=200, horizon=3)
    for i in range(5000):
        hw.update(float(i), math.sin(i / 3.0))
    assert len(hw._window) == 200
    assert len(hw._pending) == 3
    assert len(hw._season) == 10


def test_a_spike_does_not_drag_the_forecast_after_it() -> None:
    # Robust updates: the error that enters the state is clipped, so the point after a
    # 50-sigma spike is forecast as if the spike had not happened.
    y = _sine(1500, 48, 0.5, seed=7)
    y[1200] += 25.0
    hw = HoltWinters(period=48)
    res = [hw.update(float(i), float(v)) for i, v in enumerate(y)]
    after = res[1201].residual
    assert after is not None and abs(after) < 2.0


def test_a_bounded_season_learnt_from_periodic_incidents_never_forecasts_outside_the_range() -> (
    None
):
    # a latency near 1 s with a three-point incident at 30 s every 9 points for 300 points,
    # then quiet: the additive season answers each incident with dips elsewhere in the period
    rng = np.random.default_rng(12)
    n_faulty, n_quiet = 300, 300
    xs = 1.0 + 0.1 * rng.standard_normal(n_faulty + n_quiet)
    for start in range(0, n_faulty, 9):
        xs[start : start + 3] = 30.0
    low, high = float(xs.min()), float(xs.max())

    def outside(bounded: bool) -> int:
        hw = HoltWinters(history=600, bounded=bounded)
        ready = [f for f in (hw.update(float(i), float(x)) for i, x in enumerate(xs)) if f.ready]
        assert ready
        return sum(not (low <= f.expected <= high and low <= f.point <= high) for f in ready)

    assert outside(bounded=True) == 0
    assert outside(bounded=False) > 0  # the artefact the bound is for
