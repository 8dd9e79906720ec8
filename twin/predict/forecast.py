"""A streaming seasonal forecaster: robust additive Holt-Winters, refitted on a bounded window.

One :class:`HoltWinters` per series takes one point at a time (``update(t, value)``) and
returns a frozen :class:`Forecast`: what it expected for this point (the one-step forecast made
before the point arrived, so the residual is an honest out-of-sample error), the seasonal
component, and a point forecast with a prediction band ``horizon`` steps ahead.

The model is additive Holt-Winters with a damped trend in error-correction form (ETS(A,Ad,A)):

    expected = level + phi * trend + season[phase]
    e        = value - expected            (clipped at k sigma: see below)
    level    = level + phi * trend + alpha * e
    trend    = phi * trend + alpha * beta * e
    season   = season[phase] + gamma * e

Why this and not statsmodels' ETS refitted every K points: statsmodels has no online filter
(a new point means a refit or a re-run of the whole window). On NAB's real series the
refitted ETS forecasts somewhat better (mean MASE 0.64 against 0.71 one step ahead) at 34
times the CPU per point, too slow for replaying a day of every pod's metrics in minutes
(``docs/predict.md`` has the measured comparison, ``benchmarks/forecast.py`` reproduces it).
The smoothing constants here are chosen by a small grid search over the bounded window
every ``refit_every`` points.

Three choices make it fit for live telemetry:

- **Robust updates** (Gelper, Fried and Croux, 2010): the error that enters the state is
  clipped at ``robust_k`` times the one-step scale, so a spike does not drag the level and the
  season after it and the next points are not flagged as the spike's echo. From the
  :data:`SHIFT_RUN`-th consecutive clipped error on one side the clip is lifted: that is a
  level shift, and the level follows it at once.
- **Bounded memory**: the state is a level, a trend, one value per phase of the season and
  the last ``history`` points (for the refit), plus ``horizon`` pending forecasts.
- **Season found, not assumed**: with ``period=None`` the season length is the lag of the
  highest autocorrelation peak of the window at each refit (none when no peak reaches
  ``MIN_SEASON_ACF``), so the caller need not know the sampling step or the daily rhythm.

A missing or non-finite value is skipped and counted: the state steps forward without a
correction (the season keeps its phase), and nothing downstream sees a ``nan``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import product
from statistics import NormalDist

import numpy as np

from twin.predict.robust import MAD_TO_SIGMA

MIN_SEASON_ACF = 0.3
"""Autocorrelation a peak must reach to be taken as the season (below it: no season)."""

MIN_SEASON_PROMINENCE = 0.2
"""How far a season's peak must rise above the lowest autocorrelation at shorter lags: a
persistent (random-walk-like) series has a slowly decaying autocorrelation with small bumps,
not a season."""
PEAK_TOLERANCE = 0.85
"""A peak at least this fraction of the highest one, at a shorter lag, is the season."""
FIT_SEASONS = 4
"""The refit runs over the last this many seasons of the window (at least FIT_POINTS)."""
FIT_POINTS = 500
"""Fewest points of the window the refit runs over (when the window holds them)."""

ALPHAS = (0.05, 0.15, 0.35, 0.7)
"""Level smoothing constants the refit chooses from."""
BETAS = (0.0, 0.1)
"""Trend smoothing (as a fraction of alpha) the refit chooses from; 0 keeps the trend flat."""
GAMMAS = (0.05, 0.25)
"""Season smoothing constants the refit chooses from (seasonal series only)."""

SHIFT_RUN = 3
"""Consecutive errors beyond the clip, on one side, that are taken as a level shift: the
error then enters the state unclipped, so the level follows the shift at once instead of
``alpha x robust_k`` scales per point. A spike is one point; a shift persists."""

_MIN_POINTS = 24
"""Fewest points in the window before the first fit: below it forecasts are the last value."""
_SCALE_RATE = 0.02
"""Weight of a new squared error in the running error scales (about 50 points' memory)."""


@dataclass(frozen=True, slots=True)
class Forecast:
    """What the forecaster knew at one point of the stream (all finite; ``None`` = absent)."""

    t: float
    """The point's time, as given (unix seconds by convention)."""
    value: float | None
    """The observed value; ``None`` when the point was missing or not finite (skipped)."""
    expected: float
    """The one-step forecast of this point, made before it arrived."""
    residual: float | None
    """``value - expected``; ``None`` for a skipped point."""
    scale: float
    """Running one-step error scale (a standard deviation, in the series' unit)."""
    seasonal: float
    """The seasonal component of this point (0.0 without a season)."""
    horizon: int
    """Steps ahead of ``point``, ``lower`` and ``upper``."""
    point: float
    """Forecast of the value ``horizon`` steps after this one."""
    lower: float
    """Lower edge of the prediction band at ``horizon`` (nominal coverage ``level``)."""
    upper: float
    """Upper edge of the prediction band at ``horizon``."""
    period: int
    """Season length in use, in points (0 = no season)."""
    ready: bool
    """True once the model has been fitted (before that, forecasts are the last value)."""
    skipped: bool
    """True when this point was missing or not finite and did not update the model."""


@dataclass(frozen=True, slots=True)
class Params:
    """Smoothing constants of the filter."""

    alpha: float
    beta: float
    gamma: float
    phi: float


class HoltWinters:
    """Online robust Holt-Winters for one series (see the module docstring)."""

    def __init__(
        self,
        *,
        period: int | None = None,
        horizon: int = 1,
        level: float = 0.95,
        history: int = 2000,
        refit_every: int | None = None,
        max_period: int | None = None,
        damping: float = 0.98,
        robust_k: float = 3.0,
        bounded: bool = False,
    ) -> None:
        """Set up an empty model.

        ``period``: season length in points (0: none; ``None``: found from the data).
        ``horizon``: steps ahead of the banded forecast. ``level``: the band's nominal
        coverage. ``history``: points kept for the refit. ``refit_every``: points between
        refits (default: one season, at least 200). ``max_period``: longest season searched
        (default: a third of ``history``). ``damping``: phi of the damped trend.
        ``robust_k``: errors beyond this many scales are clipped before they update the state.
        ``bounded``: hold the forecast to the range the series has shown in its fitting window
        and since (:meth:`_bounded`); off, the model may extrapolate a trend past it.
        """
        if period is not None and (period < 0 or period == 1):
            raise ValueError(f"period: 0 (none) or at least 2 points expected, got {period}")
        if horizon < 1:
            raise ValueError(f"horizon: at least 1 step expected, got {horizon}")
        if not 0.0 < level < 1.0:
            raise ValueError(f"level: a coverage in (0, 1) expected, got {level}")
        if history < 2 * _MIN_POINTS:
            raise ValueError(f"history: at least {2 * _MIN_POINTS} points expected")
        if period is not None and history < 2 * period + _MIN_POINTS:
            raise ValueError(f"history: at least two seasons ({2 * period} points) expected")
        if refit_every is not None and refit_every < 1:
            raise ValueError("refit_every: at least 1 point expected")
        if not 0.0 < damping <= 1.0:
            raise ValueError(f"damping: a factor in (0, 1] expected, got {damping}")
        if robust_k <= 0.0:
            raise ValueError(f"robust_k: a positive number of scales expected, got {robust_k}")
        self.fixed_period = period
        self.horizon = horizon
        self.level = level
        self.history = history
        self.max_period = max_period if max_period is not None else history // 3
        self.refit_every = refit_every
        self.damping = damping
        self.robust_k = robust_k
        self.bounded = bounded
        self._z = NormalDist().inv_cdf(0.5 + level / 2.0)
        self._window: deque[float] = deque(maxlen=history)
        self._pending: deque[float] = deque(maxlen=horizon)
        self.params: Params | None = None
        self.period = period or 0
        self._level = 0.0
        self._trend = 0.0
        self._season: list[float] = []
        self._phase = 0
        self._var1 = 0.0
        self._varh = 0.0
        self._nh = 0
        self._since_fit = 0
        self._run = 0  # signed count of consecutive errors beyond the clip, on one side
        self._lo, self._hi = -math.inf, math.inf  # the range shown since the last fit
        self.points = 0
        """Points seen, skipped ones included."""
        self.skipped = 0
        """Points skipped because they were missing or not finite."""

    # -- the stream --------------------------------------------------------------------------

    def update(self, t: float, value: float) -> Forecast:
        """Take the point ``(t, value)`` and return what was forecast and what is next."""
        self.points += 1
        finite = value is not None and math.isfinite(value)
        if not finite:
            self.skipped += 1
        expected = self._expected()
        seasonal = self._season[self._phase] if self._season else 0.0
        residual: float | None = None
        if finite:
            residual = value - expected
            self._observe(value, residual)
        else:
            self._step(None)
        self._since_fit += 1
        if self._due():
            self._fit()
        point = self._ahead(self.horizon)
        scale = math.sqrt(self._var1)
        spread = self._z * self._scale_h(scale)
        self._pending.append(point)
        return Forecast(
            t=float(t),
            value=float(value) if finite else None,
            expected=expected,
            residual=residual,
            scale=scale,
            seasonal=seasonal,
            horizon=self.horizon,
            point=point,
            lower=point - spread,
            upper=point + spread,
            period=self.period,
            ready=self.params is not None,
            skipped=not finite,
        )

    def predict(self, steps: int) -> float:
        """Point forecast of the value ``steps`` after the last point (no band: the band is
        tracked for ``horizon`` only)."""
        if steps < 1:
            raise ValueError(f"steps: at least 1 expected, got {steps}")
        return self._ahead(steps)

    def deseasonalised(self, forecast: Forecast) -> float | None:
        """The point's value less its seasonal component (``None`` when it was skipped)."""
        return None if forecast.value is None else forecast.value - forecast.seasonal

    def relevel(self, value: float) -> None:
        """Move the level so the next forecast starts from ``value`` (after a level shift)."""
        if math.isfinite(value) and self.params is not None:
            season = self._season[self._phase] if self._season else 0.0
            self._level = value - season
            self._trend = 0.0

    # -- internals ---------------------------------------------------------------------------

    def _expected(self) -> float:
        if self.params is None:
            return self._window[-1] if self._window else 0.0
        season = self._season[self._phase] if self._season else 0.0
        return self._bounded(self._level + self.params.phi * self._trend + season)

    def _ahead(self, h: int) -> float:
        """Forecast of the value h steps after the last point."""
        if self.params is None:
            return self._window[-1] if self._window else 0.0
        phi = self.params.phi
        damp = h if phi == 1.0 else phi * (1.0 - phi**h) / (1.0 - phi)
        season = self._season[(self._phase + h - 1) % self.period] if self._season else 0.0
        return self._bounded(self._level + damp * self._trend + season)

    def _bounded(self, forecast: float) -> float:
        """With ``bounded``, the forecast held to the range the series has shown in its
        fitting window and since. A season fitted over a run of incidents a few minutes
        apart answers each with a dip elsewhere in the period (an additive season sums to
        about zero), and forecast an entry latency of -11 s an hour after the last one: a
        page on a quiet system. Where a trend may rightly run past the range (a benchmark's
        ramps), the model is left unbounded."""
        return min(self._hi, max(self._lo, forecast)) if self.bounded else forecast

    def _scale_h(self, scale1: float) -> float:
        if self.horizon == 1:
            return scale1
        if self._nh >= 20:
            return math.sqrt(self._varh)
        return scale1 * math.sqrt(self.horizon)

    def _observe(self, value: float, residual: float) -> None:
        sigma = math.sqrt(self._var1)
        self._var1 = _scale_step(self._var1, residual, self.robust_k, len(self._window))
        if len(self._pending) == self.horizon and self.horizon > 1:
            err = value - self._pending[0]
            self._varh = _scale_step(self._varh, err, self.robust_k, self._nh)
            self._nh += 1
        self._window.append(value)
        self._lo, self._hi = min(self._lo, value), max(self._hi, value)
        if self.params is not None:
            bound = self.robust_k * sigma if sigma > 0.0 else math.inf
            self._run = _exceed_run(self._run, residual, bound)
            if abs(self._run) < SHIFT_RUN:
                residual = max(-bound, min(bound, residual))
            self._step(residual)

    def _step(self, error: float | None) -> None:
        """Advance the state one point; ``error`` None: no observation (a skipped point)."""
        if self.params is None:
            return
        p = self.params
        e = 0.0 if error is None else error
        self._level = self._level + p.phi * self._trend + p.alpha * e
        self._trend = p.phi * self._trend + p.alpha * p.beta * e
        if self._season:
            self._season[self._phase] += p.gamma * e
            self._phase = (self._phase + 1) % self.period

    def _due(self) -> bool:
        n = len(self._window)
        if self.params is None:
            need = 2 * self.fixed_period + _MIN_POINTS if self.fixed_period else _MIN_POINTS
            return n >= need
        every = self.refit_every or max(self.period, 200)
        return self._since_fit >= every

    def _fit(self) -> None:
        """Choose the season and the smoothing constants on the window; restart from there."""
        self._since_fit = 0
        xs = np.asarray(self._window, dtype=float)
        if self.fixed_period is None:
            self.period = detect_period(xs, self.max_period)
        m = self.period
        xs = xs[-max(FIT_SEASONS * m, FIT_POINTS) :]
        self._lo, self._hi = float(xs.min()), float(xs.max())
        gammas = GAMMAS if m else (0.0,)
        best: tuple[float, Params, _State] | None = None
        for alpha, beta, gamma in product(ALPHAS, BETAS, gammas):
            if gamma > 1.0 - alpha:
                continue
            params = Params(alpha, beta, gamma, self.damping)
            loss, state = _run(xs, m, params, self.robust_k)
            if best is None or loss < best[0]:
                best = (loss, params, state)
        assert best is not None
        first = self.params is None
        _, self.params, state = best
        self._level, self._trend = state.level, state.trend
        self._season, self._phase = state.season, state.phase
        if first:
            self._var1 = state.var


@dataclass(slots=True)
class _State:
    level: float
    trend: float
    season: list[float]
    phase: int
    var: float


def _scale_step(var: float, err: float, k: float, n: int) -> float:
    """One step of the running squared-error scale, with errors clipped at k scales.

    The first points average plainly (rate 1/(n+1)) so the scale is usable early; after that
    the rate is :data:`_SCALE_RATE`.
    """
    if var > 0.0:
        bound = k * math.sqrt(var)
        err = max(-bound, min(bound, err))
    rate = max(_SCALE_RATE, 1.0 / (n + 1))
    return (1.0 - rate) * var + rate * err * err


def _run(xs: np.ndarray, m: int, p: Params, k: float) -> tuple[float, _State]:
    """Filter ``xs`` from a classical start; return the clipped one-step loss and the state."""
    n = len(xs)
    values = xs.tolist()
    if m:
        first = values[:m]
        level = sum(first) / m
        trend = (sum(values[m : 2 * m]) / m - level) / m
        season = [v - level for v in first]
        start = m
        level += (m - 1) / 2.0 * trend  # from the season's middle to its last point
    else:
        level, trend, season, start = values[0], 0.0, [], 1
    diffs = np.diff(xs[: max(start + 1, _MIN_POINTS)])
    spread = float(np.median(np.abs(diffs - np.median(diffs)))) * MAD_TO_SIGMA
    var = max(spread * spread / 2.0, 1e-12)
    alpha, beta, gamma, phi = p.alpha, p.beta, p.gamma, p.phi
    loss = 0.0
    phase = 0
    run = 0
    for i in range(start, n):
        s = season[phase] if m else 0.0
        e = values[i] - (level + phi * trend + s)
        bound = k * math.sqrt(var)
        c = bound if e > bound else (-bound if e < -bound else e)
        loss += c * c
        var = (1.0 - _SCALE_RATE) * var + _SCALE_RATE * c * c
        run = _exceed_run(run, e, bound)
        if abs(run) >= SHIFT_RUN:
            c = e
        level = level + phi * trend + alpha * c
        trend = phi * trend + alpha * beta * c
        if m:
            season[phase] = s + gamma * c
            phase = phase + 1 if phase + 1 < m else 0
    return loss, _State(level, trend, season, phase, var)


def _exceed_run(run: int, error: float, bound: float) -> int:
    """The signed run of consecutive errors beyond ``bound`` after ``error``."""
    if error > bound:
        return run + 1 if run > 0 else 1
    if error < -bound:
        return run - 1 if run < 0 else -1
    return 0


def detect_period(xs: np.ndarray, max_period: int) -> int:
    """The season length of ``xs`` in points: the highest autocorrelation peak, or 0.

    The series is detrended (least-squares line) first; a lag counts as a peak when its
    autocorrelation exceeds both neighbours' and :data:`MIN_SEASON_ACF`, and rises at least
    :data:`MIN_SEASON_PROMINENCE` above the lowest value at shorter lags. Lags up to
    ``min(max_period, len(xs) // 2)`` are searched, so at least two seasons are seen.
    """
    n = len(xs)
    top = min(max_period, n // 2)
    if top < 3:
        return 0
    idx = np.arange(n, dtype=float)
    slope, intercept = np.polyfit(idx, xs, 1)
    y = xs - (slope * idx + intercept)
    denom = float(np.dot(y, y))
    if denom <= 0.0 or not math.isfinite(denom):
        return 0
    size = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(y, size)
    raw = np.fft.irfft((spec * np.conj(spec)).real, size)[: top + 2]
    acf = raw * n / (denom * (n - np.arange(top + 2)))  # unbiased: each lag's own pair count
    trough = np.minimum.accumulate(acf[1 : top + 2])  # trough[lag - 1]: min over 1..lag
    peaks = [
        lag
        for lag in range(2, top + 1)
        if acf[lag] > MIN_SEASON_ACF
        and acf[lag] > acf[lag - 1]
        and acf[lag] >= acf[lag + 1]
        and acf[lag] - trough[lag - 1] >= MIN_SEASON_PROMINENCE
    ]
    if not peaks:
        return 0
    # A season's multiples peak as high as the season itself (higher, by noise): the first
    # peak within PEAK_TOLERANCE of the highest is the season.
    highest = max(float(acf[lag]) for lag in peaks)
    return next(lag for lag in peaks if acf[lag] >= PEAK_TOLERANCE * highest)
