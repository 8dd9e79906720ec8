"""One series' detector: the forecaster, the residual anomaly score and the level-shift check.

The three work on one stream: :class:`~twin.predict.anomaly.AnomalyDetector` forecasts each
point and scores its residual; :class:`~twin.predict.changepoint.ChangePointDetector` runs
on the same standardised residuals (nearly independent, as a CUSUM wants them, where the raw
metric is seasonal and autocorrelated). A level shift shows in the residuals as a run of same-
signed errors while the robust forecaster, which clips large errors, slowly catches up; the
CUSUM adds that run up and signals it, and the forecaster is then re-levelled at once so the
new level is not reported as a string of anomalies.

Two outputs, for two uses:

- ``is_alert``: either check passes its own threshold (the residual's normal tail below
  ``tail``, or the CUSUM above ``h``). This is the operating point, fixed in advance.
- ``score`` in [0, 1): a ranking of evidence that is comparable across series. Real metrics'
  residuals are heavy-tailed to different degrees, so a normal tail probability ranks the
  points of a spiky series above the real incidents of a quiet one. The score is instead
  distribution-free: each check's evidence (|z|, and the CUSUM statistic) divided by the
  largest it reached over the previous ``record_window`` points, the larger of the two
  ratios mapped as ``r / (1 + r)``. It passes 0.5 when the evidence is the strongest in that
  window; for independent, identically distributed evidence that happens with probability
  1 / (record_window + 1) per point, whatever the distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.predict.anomaly import Anomaly, AnomalyDetector
from twin.predict.changepoint import ChangePoint, ChangePointDetector
from twin.predict.forecast import HoltWinters
from twin.predict.robust import RunningMax

RECORD_SCORE = 0.5
"""The score of evidence equal to the strongest of the previous ``record_window`` points."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One point's verdict."""

    anomaly: Anomaly
    """The residual's anomaly score (with the forecast)."""
    change: ChangePoint
    """The level-shift check on the standardised residuals."""
    score: float
    """Evidence in [0, 1) relative to the series' own recent record (0.5: equal to it)."""
    is_alert: bool
    """An anomalous point or a signalled level shift (each check at its own threshold)."""

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
        record_window: int = 500,
        bounded: bool = False,
    ) -> None:
        """``period``: season length in points (None: found from the data). ``horizon``:
        steps ahead of the banded forecast. ``tail``: the residual tail probability that flags
        a point. ``cusum_k``, ``cusum_h``: the level-shift check's reference and threshold.
        ``record_window``: points the score's record is kept over. ``bounded``: the
        forecast held to the range shown (:class:`~twin.predict.forecast.HoltWinters`)."""
        self.anomaly = AnomalyDetector(
            HoltWinters(period=period, horizon=horizon, bounded=bounded), tail=tail
        )
        self.change = ChangePointDetector(k=cusum_k, h=cusum_h)
        self._z_record = RunningMax(record_window)
        self._cusum_record = RunningMax(record_window)

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
        score = 0.0
        if a.ready:
            z, stat = abs(a.z), c.statistic
            ratio = max(_ratio(z, self._z_record.max()), _ratio(stat, self._cusum_record.max()))
            score = ratio / (1.0 + ratio)
            self._z_record.push(z)
            self._cusum_record.push(stat)
        return Detection(a, c, score, a.is_anomaly or c.changed)


def _ratio(x: float, record: float) -> float:
    """x over the record; a first nonzero value against a zero record counts as a new one."""
    if record > 0.0:
        return x / record
    return 1.0 if x > 0.0 else 0.0
