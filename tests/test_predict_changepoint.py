"""The CUSUM level-shift check: delay as theory says, no alarm on stationary data, nan-safe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.predict.changepoint import ChangePointDetector
from twin.predict.detector import SeriesDetector


def _first_change(values: np.ndarray, det: ChangePointDetector) -> int | None:
    for i, v in enumerate(values):
        if det.update(float(i), float(v)).changed:
            return i
    return None


@pytest.mark.parametrize(("shift", "bound"), [(3.0, 10), (1.0, 45), (-2.0, 15)])
def test_a_level_shift_is_signalled_within_the_theoretical_delay(shift: float, bound: int) -> None:
    # Siegmund: delay ~ (h + 1.166) / (|shift| - k) = 3.7, 18.3, 6.1 points for h=8, k=0.5.
    delays = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y = rng.normal(0.0, 1.0, 500)
        y[300:] += shift
        at = _first_change(y, ChangePointDetector())
        assert at is not None and at >= 300
        delays.append(at - 300)
    assert float(np.median(delays)) <= bound


def test_the_direction_and_size_of_the_shift_are_estimated() -> None:
    rng = np.random.default_rng(21)
    y = 10.0 + rng.normal(0.0, 1.0, 400)
    y[250:] -= 4.0
    det = ChangePointDetector()
    hits = [c for i, v in enumerate(y) if (c := det.update(float(i), float(v))).changed]
    assert hits[0].direction == "down"
    assert hits[0].start is not None and 249 <= hits[0].start <= 252
    assert -5.5 < hits[0].shift < -2.5  # the mean of the few points since the start


def test_no_change_is_signalled_on_stationary_data() -> None:
    # Two-sided in-control run length ~9,600 points: over 20,000 points about 2 alarms.
    alarms = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        det = ChangePointDetector()
        for i, v in enumerate(rng.normal(5.0, 2.0, 2000)):
            alarms += det.update(float(i), float(v)).changed
    assert alarms <= 8


def test_missing_points_are_skipped_and_counted() -> None:
    det = ChangePointDetector()
    rng = np.random.default_rng(22)
    for i, v in enumerate(rng.normal(size=200)):
        r = det.update(float(i), math.nan if i % 10 == 0 else float(v))
        assert math.isfinite(r.upper) and math.isfinite(r.lower)
    assert det.skipped == 20 and det.points == 200


def test_same_stream_same_changes() -> None:
    rng = np.random.default_rng(23)
    y = rng.normal(size=600)
    y[300:] += 2.0
    one, two = ChangePointDetector(), ChangePointDetector()
    assert [one.update(float(i), float(v)) for i, v in enumerate(y)] == [
        two.update(float(i), float(v)) for i, v in enumerate(y)
    ]


def test_the_series_detector_alerts_on_a_level_shift_of_a_seasonal_metric() -> None:
    rng = np.random.default_rng(24)
    n, period = 2000, 48
    y = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0.0, 0.5, n)
    y[1600:] += 2.0  # 4 sigma of the noise, well inside the season's swing
    y[700] = math.nan
    det = SeriesDetector(period=period)
    res = [det.update(float(i), float(v)) for i, v in enumerate(y)]
    assert any(r.is_alert for r in res[1600:1620])
    assert all(0.0 <= r.score < 1.0 for r in res)
    assert det.forecaster.skipped == 1
    # After the shift is signalled the forecaster is re-levelled: no string of alerts.
    assert sum(r.is_alert for r in res[1650:]) <= 3
