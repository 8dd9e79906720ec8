"""The accuracy measure behind every observed-vs-twin figure: calibration reports and the
experiments that check the twin on data it has not seen."""

from __future__ import annotations


def accuracy(pred: float, meas: float) -> float:
    """PerfSim's accuracy: 1 - |predicted - measured| / measured (NaN when measured is 0).

    Relative, so figures of different scales (a 2 ms and a 2 s latency) compare; 1 is exact,
    0 is off by the whole measured value, and it goes negative beyond that."""
    return 1.0 - abs(pred - meas) / abs(meas) if meas else float("nan")


def accuracy_or_none(pred: float | None, meas: float | None) -> float | None:
    """:func:`accuracy`, or None where a figure is missing or the measured one is 0."""
    if pred is None or meas is None or meas == 0:
        return None
    return accuracy(pred, meas)
