"""The live shadow's predictions: forecasts, anomaly scores and level shifts, per series.

Every class takes one point at a time (``update(t, value)``), returns a frozen result, keeps
bounded memory, gives the same results for the same stream, and skips (and counts) a missing
or non-finite point rather than let a ``nan`` through.

- :mod:`twin.predict.forecast`: :class:`HoltWinters`, robust additive Holt-Winters with a
  damped trend, the season found from the data, refitted on a bounded window; a point
  forecast and a prediction band at a horizon.
- :mod:`twin.predict.anomaly`: :class:`AnomalyDetector`, the forecast residual standardised
  by a running median and MAD, scored by its normal tail probability against a fixed tail.
- :mod:`twin.predict.changepoint`: :class:`ChangePointDetector`, a two-sided CUSUM with a
  robust sliding reference, for level shifts.
- :mod:`twin.predict.detector`: :class:`SeriesDetector`, the three on one series, with one
  combined score in [0, 1) (0.5 = alert).
- :mod:`twin.predict.scoring`: the Numenta Anomaly Benchmark's scoring rules (scaled-sigmoid
  windows, profiles, corpus threshold, null-to-perfect normalisation) for labelled streams.
- :mod:`twin.predict.robust`: median and MAD over a bounded sliding window.

The watch beside production builds on them (imported by module, so importing this package
stays light): :mod:`twin.predict.sources` (live and replayed telemetry in windows),
:mod:`twin.predict.breach` (time to breach by Monte Carlo over the twin; the burn-rate and
``predict_linear`` baselines), :mod:`twin.predict.failures` (failed requests counted
against the normal rate), :mod:`twin.predict.alerts` (the alert document, grouping,
Alertmanager webhook), :mod:`twin.predict.watch` (the loop) and :mod:`twin.predict.outputs`
(one ``twin watch`` run and its files).
"""

from twin.predict.anomaly import Anomaly, AnomalyDetector
from twin.predict.changepoint import ChangePoint, ChangePointDetector
from twin.predict.detector import Detection, SeriesDetector
from twin.predict.forecast import Forecast, HoltWinters, detect_period
from twin.predict.scoring import CorpusScore, Series, score_corpus

__all__ = [
    "Anomaly",
    "AnomalyDetector",
    "ChangePoint",
    "ChangePointDetector",
    "CorpusScore",
    "Detection",
    "Forecast",
    "HoltWinters",
    "Series",
    "SeriesDetector",
    "detect_period",
    "score_corpus",
]
