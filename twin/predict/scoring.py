"""The Numenta Anomaly Benchmark's scoring rules, for any labelled anomaly windows.

A faithful port of NAB v1.1's scorer (numenta/NAB, ``nab/sweeper.py``, ``nab/optimizer.py``,
``nab/scorer.py``, ``nab/runner.py`` normalisation, ``config/profiles.json``), so a detector
scored here can be set beside NAB's published scoreboard, and any labelled stream (injected
faults, incidents) can be scored the same way. The rules:

- Each series has anomaly windows (first and last index, inclusive). The first
  ``min(floor(0.15 n), 0.15 x 5000)`` points are a probation period: not scored.
- A detection (score >= threshold) at position i of a window of width W scores
  ``A_TP x sigma(i) / sigma(-1)`` with the scaled sigmoid ``sigma(y) = 2 / (1 + e^(5y)) - 1``
  and ``y = -(right - i + 1) / W``: the window's first point earns the full ``A_TP``, its last
  about 0. Only the best detection in a window counts; a window without one costs ``-A_FN``.
- A detection outside every window costs ``A_FP x sigma(y)`` with ``y`` its distance past the
  previous window's right edge over that window's width less one (so a detection just after
  a window costs little, one far from any window ``-A_FP``), and ``-A_FP`` before the first
  window.
- The threshold is one for the whole corpus, chosen to maximise the summed score; the raw
  score is normalised as ``100 (S - S_null) / (S_perfect - S_null)``, where the null detector
  never detects (it scores ``-A_FN`` per window) and the perfect one detects each window's
  first point (``A_TP`` per window).

One deviation, in a case NAB's own code cannot reach without crashing: when a series' lowest
score is above the corpus threshold (every point is a detection), the series is scored with
every point detected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PROBATION_FRACTION = 0.15
"""Leading fraction of each series that is not scored (NAB's ``probationaryPercent``)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """NAB's application profile: the weights of true positives, false positives and misses."""

    name: str
    tp: float
    fp: float
    fn: float


STANDARD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
"""NAB's standard profile (``config/profiles.json``)."""
REWARD_LOW_FP = Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0)
"""NAB's profile that rewards few false positives."""
REWARD_LOW_FN = Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
"""NAB's profile that rewards few misses."""
PROFILES = (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN)


@dataclass(frozen=True, slots=True)
class Series:
    """One scored series: its detector scores in [0, 1] and its anomaly windows."""

    name: str
    scores: Sequence[float]
    windows: Sequence[tuple[int, int]]
    """(first, last) point index of each window, inclusive, in time order, not overlapping."""


@dataclass(frozen=True, slots=True)
class Point:
    """One scorable point: its detector score, what a detection there is worth, its window."""

    score: float
    weight: float
    window: str | None


@dataclass(frozen=True, slots=True)
class ThresholdScore:
    """The total score and the counts of points when detecting at ``score >= threshold``."""

    threshold: float
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    hit: int
    """Windows with at least one detection."""


@dataclass(frozen=True, slots=True)
class SeriesScore:
    """One series scored at the corpus threshold."""

    name: str
    score: float
    tp: int
    fp: int
    fn: int
    windows: int
    hit: int
    """Windows with at least one detection."""
    null: float
    """The null detector's score on this series (for normalising a subset of the corpus)."""


@dataclass(frozen=True, slots=True)
class CorpusScore:
    """A detector's result on a corpus under one profile."""

    profile: Profile
    threshold: float
    raw: float
    """Summed score of the series at the corpus-optimised threshold."""
    null: float
    """The null detector's raw score (never detects)."""
    perfect: float
    """The perfect detector's raw score (A_TP per window)."""
    normalised: float
    """``100 (raw - null) / (perfect - null)``: 0 is the null detector, 100 the perfect."""
    series: tuple[SeriesScore, ...]


def scaled_sigmoid(position: float) -> float:
    """NAB's ``scaledSigmoid``: 2 sigmoid(-5 y) - 1, and -1 beyond y = 3."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(n: int) -> float:
    """Points at the start of an n-point series that are not scored."""
    return min(math.floor(PROBATION_FRACTION * n), PROBATION_FRACTION * 5000)


def sweep(series: Series, profile: Profile) -> list[Point]:
    """Every point of ``series`` with the score a detection there earns (``calcSweepScore``).

    Probationary points are dropped.
    """
    max_tp = scaled_sigmoid(-1.0)
    probation = probation_length(len(series.scores))
    pending = list(series.windows)
    points: list[Point] = []
    window: tuple[int, int] | None = None
    name: str | None = None
    prev_right: int | None = None
    prev_width = 0.0
    for i, score in enumerate(series.scores):
        if window is None and pending and i == pending[0][0]:
            window = pending.pop(0)
            name = f"{series.name}|{window[0]}"
        if window is not None:
            width = float(window[1] - window[0] + 1)
            weight = scaled_sigmoid(-(window[1] - i + 1) / width) * profile.tp / max_tp
        else:
            if prev_right is None:
                unweighted = -1.0
            else:
                gap = prev_width - 1.0
                past = abs(prev_right - i) / gap if gap > 0 else math.inf
                unweighted = scaled_sigmoid(past)
            weight = unweighted * profile.fp
        if i >= probation:
            points.append(Point(float(score), weight, name))
        if window is not None and i == window[1]:
            prev_right, prev_width = i, float(window[1] - window[0] + 1)
            window, name = None, None
    return points


def by_threshold(points: Sequence[Point], profile: Profile) -> list[ThresholdScore]:
    """The score at every distinct threshold, highest first (``calcScoreByThreshold``)."""
    ranked = sorted(points, key=lambda p: p.score, reverse=True)
    parts: dict[str, float] = {"fp": 0.0}
    for p in ranked:
        if p.window is not None:
            parts[p.window] = -profile.fn
    tn = sum(1 for p in ranked if p.window is None)
    fn = len(ranked) - tn
    tp = fp = 0
    hit: set[str] = set()
    threshold = 1.1
    rows: list[ThresholdScore] = []
    for p in ranked:
        if p.score != threshold:
            rows.append(ThresholdScore(threshold, sum(parts.values()), tp, tn, fp, fn, len(hit)))
            threshold = p.score
        if p.window is not None:
            tp += 1
            fn -= 1
            hit.add(p.window)
            parts[p.window] = max(parts[p.window], p.weight)
        else:
            fp += 1
            tn -= 1
            parts["fp"] += p.weight
    rows.append(ThresholdScore(threshold, sum(parts.values()), tp, tn, fp, fn, len(hit)))
    return rows


def at_threshold(rows: Sequence[ThresholdScore], threshold: float) -> ThresholdScore:
    """The row of ``rows`` that detecting at ``score >= threshold`` gives (``scoreDataSet``)."""
    previous = rows[0]
    for row in rows:
        if row.threshold == threshold:
            return row
        if row.threshold < threshold:
            return previous
        previous = row
    return rows[-1]


def optimise(corpus: Sequence[Series], profile: Profile) -> ThresholdScore:
    """The threshold that maximises the corpus' summed score (``optimizeThreshold``)."""
    points = [p for s in corpus for p in sweep(s, profile)]
    rows = by_threshold(points, profile)
    return max(rows, key=lambda r: r.score)  # the first (highest threshold) of equals


def score_corpus(
    corpus: Sequence[Series], profile: Profile = STANDARD, threshold: float | None = None
) -> CorpusScore:
    """Score each series of ``corpus`` at one threshold, and normalise.

    ``threshold`` None: the threshold that maximises the corpus' score (NAB's protocol);
    a number: that threshold, fixed in advance (a detector's own operating point).
    """
    for s in corpus:
        _check(s)
    if threshold is None:
        threshold = optimise(corpus, profile).threshold
    null_corpus = [Series(s.name, [0.5] * len(s.scores), s.windows) for s in corpus]
    null_threshold = optimise(null_corpus, profile).threshold
    rows = []
    for s, z in zip(corpus, null_corpus, strict=True):
        row = at_threshold(by_threshold(sweep(s, profile), profile), threshold)
        zero = at_threshold(by_threshold(sweep(z, profile), profile), null_threshold)
        rows.append(
            SeriesScore(
                s.name, row.score, row.tp, row.fp, row.fn, len(s.windows), row.hit, zero.score
            )
        )
    raw = sum(r.score for r in rows)
    null = sum(r.null for r in rows)
    perfect = profile.tp * sum(len(s.windows) for s in corpus)
    return CorpusScore(
        profile, threshold, raw, null, perfect, normalise(raw, null, perfect), tuple(rows)
    )


def normalise(raw: float, null: float, perfect: float) -> float:
    """NAB's normalisation: 0 for the null detector's score, 100 for the perfect one's."""
    span = perfect - null
    return 100.0 * (raw - null) / span if span > 0 else 0.0


def _check(series: Series) -> None:
    n = len(series.scores)
    last = -1
    for first, end in series.windows:
        if not 0 <= first <= end < n or first <= last:
            raise ValueError(f"{series.name}: windows must be in order, inside 0..{n - 1}")
        last = end
    for v in series.scores:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{series.name}: detector scores must lie in [0, 1]")
