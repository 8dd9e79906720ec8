"""One series' detector: the forecaster, the residual anomaly score and the level-shift check.

The three work on one stream: :class:`~twin.predict.anomaly.AnomalyDetector` forecasts each
point and scores its residual; :class:`~twin.predict.changepoint.ChangePointDetector` runs
on the same standardised residuals (nearly independent, as a CUSUM wants them, where the raw
metric is seasonal and autocorrelated). A level shift shows in the residuals as a run of same-
signed errors while the robust forecaster, which clips large errors, slowly catches up; the
CUSUM adds that run up and signals it, and the forecaster is then re-levelled at once so the
new level is not reported as a string of anomalies.

The combined score puts both checks on one scale: each one's evidence divided by its own
threshold (surprise / -log10(tail) and CUSUM / h), the larger of the two, mapped to [0, 1) as
``r / (1 + r)``. A point is an alert when the score reaches 0.5, that is when either check
passes its own threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.predict.anomaly import Anomaly, AnomalyDetector
from twin.predict.changepoint import ChangePoint, ChangePointDetector
from twin.predict.forecast import HoltWinters

ALERT_SCORE = 0.5
"""The combined score at which either check passes its own threshold."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One point's verdict."""

    anomaly: Anomaly
    """The residual's anomaly score (with the forecast)."""
    change: ChangePoint
    """The level-shift check on the standardised residuals."""
    score: float
    """Combined evidence in [0, 1): 0.5 is where either check passes its threshold."""
    is_alert: bool
    """``score >= 0.5`` (an anomalous point or a signalled level shift)."""

    @property
    def t(self) -> float:
        """The point's time."""
        return self.anomaly.t


class SeriesDetector:
    """Forecast, anomaly score and change-point check for one series, one point at a time."""

    def __init__(
        self,
        *,
        period: int | None = None,
        horizon: int = 1,
        tail: float = 1e-3,
        cusum_k: float = 0.5,
        cusum_h: float = 8.0,
    ) -> None:
        """``period``: season length in points (None: found from the data). ``horizon``:
        steps ahead of the banded forecast. ``tail``: the residual tail probability that flags
        a point. ``cusum_k``, ``cusum_h``: the level-shift check's reference and threshold."""
        self.anomaly = AnomalyDetector(HoltWinters(period=period, horizon=horizon), tail=tail)
        self.change = ChangePointDetector(k=cusum_k, h=cusum_h)

    @property
    def forecaster(self) -> HoltWinters:
        """The series' forecaster."""
        return self.anomaly.forecaster

    def update(self, t: float, value: float) -> Detection:
        """Take the point ``(t, value)`` and return the combined verdict."""
        a = self.anomaly.update(t, value)
        c = self.change.update(t, a.z if a.ready else float("nan"))
        if c.changed and a.forecast.value is not None:
            self.forecaster.relevel(a.forecast.value)
        ratio = max(a.surprise / a.threshold, c.statistic / c.threshold)
        if c.changed:
            ratio = max(ratio, 1.0)
        score = ratio / (1.0 + ratio)
        return Detection(a, c, score, score >= ALERT_SCORE)
