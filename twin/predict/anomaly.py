"""An anomaly score on the forecast residual, with a threshold that adapts to the series.

Each point's residual (observed less the one-step forecast made before it arrived, from
:class:`~twin.predict.forecast.HoltWinters`) is standardised by a robust running scale: the
median and the MAD of the last ``window`` residuals. The median removes a bias the forecaster
has not yet learnt; the MAD times 1.4826 estimates the residuals' standard deviation while
ignoring up to half of the window being anomalous, so a burst of anomalies does not widen the
threshold that is meant to catch it.

The score is the two-sided normal tail probability of the standardised residual,
``p = P(|Z| >= |z|)``, reported as its *surprise* ``-log10 p`` (finite for any z: computed
from ``log_ndtr``, not from ``1 - cdf``). A point is anomalous when ``p < tail``: on a series
whose residuals are Gaussian, that is the false-positive rate per point, whatever the series'
scale, and the threshold in the series' own unit (``tail`` quantile x scale) follows the
series as its noise grows or shrinks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import log_ndtr

from twin.predict.forecast import Forecast, HoltWinters
from twin.predict.robust import WindowedMedian

_LOG10 = math.log(10.0)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One point's anomaly score (all finite; a skipped point scores 0)."""

    forecast: Forecast
    """What the forecaster expected and predicts next."""
    z: float
    """Standardised residual: (residual - running median) / robust scale; 0.0 when skipped."""
    p_value: float
    """Two-sided normal tail probability of ``z`` (1.0 when skipped or not ready)."""
    surprise: float
    """``-log10(p_value)``: 3 means a one-in-a-thousand residual."""
    threshold: float
    """The surprise at which a point is anomalous: ``-log10(tail)``."""
    is_anomaly: bool
    """``surprise >= threshold`` once the detector is ready."""
    ready: bool
    """True once the forecaster is fitted and the scale has ``min_points`` residuals."""
    skipped: bool
    """True when the point was missing or not finite."""

    @property
    def t(self) -> float:
        """The point's time."""
        return self.forecast.t


class AnomalyDetector:
    """Forecast residual -> robust z -> tail probability, for one series."""

    def __init__(
        self,
        forecaster: HoltWinters | None = None,
        *,
        tail: float = 1e-3,
        window: int = 500,
        min_points: int = 30,
    ) -> None:
        """``forecaster``: the series' model (default: :class:`HoltWinters` with the season
        found from the data). ``tail``: the two-sided tail probability that flags a point.
        ``window``: residuals the robust scale is taken over. ``min_points``: residuals needed
        before any point is scored."""
        if not 0.0 < tail < 1.0:
            raise ValueError(f"tail: a probability in (0, 1) expected, got {tail}")
        if min_points < 3 or min_points > window:
            raise ValueError("min_points: between 3 and window expected")
        self.forecaster = forecaster if forecaster is not None else HoltWinters()
        self.tail = tail
        self.threshold = -math.log10(tail)
        self.min_points = min_points
        self._residuals = WindowedMedian(window)
        self.points = 0
        """Points seen, skipped ones included."""
        self.skipped = 0
        """Points skipped because they were missing or not finite."""
        self.flagged = 0
        """Points flagged anomalous."""

    def update(self, t: float, value: float) -> Anomaly:
        """Score the point ``(t, value)`` against the forecast made before it arrived."""
        self.points += 1
        fc = self.forecaster.update(t, value)
        if fc.residual is None:
            self.skipped += 1
            return Anomaly(fc, 0.0, 1.0, 0.0, self.threshold, False, self._ready(fc), True)
        ready = self._ready(fc)
        z = 0.0
        if ready:
            sigma = self._residuals.sigma(floor=_floor(fc))
            z = (fc.residual - self._residuals.median()) / sigma
        if fc.ready:
            self._residuals.push(fc.residual)
        surprise = tail_surprise(z)
        flagged = ready and surprise >= self.threshold
        self.flagged += flagged
        return Anomaly(
            forecast=fc,
            z=z,
            p_value=10.0**-surprise,
            surprise=surprise,
            threshold=self.threshold,
            is_anomaly=flagged,
            ready=ready,
            skipped=False,
        )

    def _ready(self, fc: Forecast) -> bool:
        return fc.ready and len(self._residuals) >= self.min_points


def tail_surprise(z: float) -> float:
    """``-log10 P(|Z| >= |z|)`` for a standard normal Z, finite for every finite z."""
    log_p = math.log(2.0) + float(log_ndtr(-abs(z)))
    return max(0.0, -log_p / _LOG10)


def _floor(fc: Forecast) -> float:
    """Smallest residual scale: a relative epsilon of the series' magnitude.

    A series that sits on one value has a MAD of 0; without a floor any change would have an
    infinite z. The floor keeps z finite and still flags such a change as extreme.
    """
    return 1e-9 * max(1.0, abs(fc.expected))
