"""Service-time distributions from samples: lognormal, gamma or the data itself.

Each candidate is fitted by maximum likelihood (location fixed at 0: times are positive)
and judged by the Kolmogorov-Smirnov test. The best-fitting parametric family is kept when
the test does not reject it; otherwise the samples' quantiles are used (an ``empirical``
distribution), since a wrong tail shape is what breaks p99 predictions. The verdict and
every test statistic are returned, so the report can say why each choice was made.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from twin.distributions import AnyDist, Constant, Empirical, Exponential, Gamma, LogNormal

ALPHA = 0.05
"""KS p-value below which a family is rejected."""
MIN_FIT = 8
"""Fewer samples than this: no test is meaningful, a moment-matched gamma is used."""
FLOOR = 1e-6
"""Seconds; zero self times (all time spent in calls) are raised to this for the fits."""
QUANTILES = 101
"""Points of an empirical distribution (0, 1%, ..., 100%)."""


@dataclass
class Fit:
    """The chosen distribution, and the evidence for it."""

    dist: AnyDist
    family: str
    n: int
    mean: float
    cv: float
    reason: str
    tests: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "n": self.n,
            "mean": self.mean,
            "cv": self.cv,
            "reason": self.reason,
            "ks": self.tests,
        }


def _lognormal(x: np.ndarray) -> tuple[AnyDist, Any]:
    s, _, scale = stats.lognorm.fit(x, floc=0)
    s = max(float(s), 1e-6)
    mean = float(scale) * math.exp(s * s / 2)
    cv = math.sqrt(math.expm1(s * s))
    return LogNormal(mean=mean, cv=cv), stats.lognorm(s, 0, scale)


def _gamma(x: np.ndarray) -> tuple[AnyDist, Any]:
    a, _, scale = stats.gamma.fit(x, floc=0)
    a = max(float(a), 1e-6)
    return Gamma(mean=a * float(scale), cv=1 / math.sqrt(a)), stats.gamma(a, 0, scale)


_FAMILIES = {"lognormal": _lognormal, "gamma": _gamma}


def empirical(x: np.ndarray) -> Empirical:
    """The samples' quantiles at 0, 1%, ..., 100% (a bounded table, however many samples)."""
    ps = np.linspace(0.0, 1.0, QUANTILES)
    qs = np.quantile(x, ps)
    qs = np.maximum.accumulate(np.maximum(qs, 0.0))
    return Empirical(quantiles={round(float(p), 4): float(q) for p, q in zip(ps, qs, strict=True)})


def fit_service_time(samples: np.ndarray | list[float], *, alpha: float = ALPHA) -> Fit:
    """Pick lognormal, gamma or empirical for positive samples (seconds) by a KS test."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Fit(Constant(mean=0.0), "constant", 0, 0.0, 0.0, "no samples: zero time")
    mean = float(x.mean())
    cv = float(x.std(ddof=1) / mean) if n > 1 and mean > 0 else 0.0
    if mean <= 0.0:
        return Fit(Constant(mean=0.0), "constant", n, 0.0, 0.0, "all samples are zero")
    if n < MIN_FIT or cv < 1e-3:
        if cv < 1e-3:
            return Fit(Constant(mean=mean), "constant", n, mean, cv, "no spread in the samples")
        dist: AnyDist = Gamma(mean=mean, cv=cv) if cv > 0 else Exponential(mean=mean)
        return Fit(dist, "gamma", n, mean, cv, f"only {n} samples: moment-matched gamma")
    xf = np.maximum(x, FLOOR)
    tests: dict[str, dict[str, float]] = {}
    fitted: dict[str, AnyDist] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fitter in _FAMILIES.items():
            try:
                dist, frozen = fitter(xf)
            except (ValueError, RuntimeError, FloatingPointError):
                continue
            res = stats.kstest(xf, frozen.cdf)
            tests[name] = {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}
            fitted[name] = dist
    if not tests:
        return Fit(empirical(x), "empirical", n, mean, cv, "no family could be fitted", tests)
    best = max(tests, key=lambda k: tests[k]["pvalue"])
    p = tests[best]["pvalue"]
    if p >= alpha:
        reason = f"KS p={p:.3g} >= {alpha}: {best} not rejected (best of {', '.join(tests)})"
        return Fit(fitted[best], best, n, mean, cv, reason, tests)
    reason = f"every family rejected (best {best}, KS p={p:.2g} < {alpha}): using the data"
    return Fit(empirical(x), "empirical", n, mean, cv, reason, tests)
