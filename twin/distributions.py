"""One ``Distribution`` type for service times, latencies, fault intensities and arrival gaps.

Samplers draw in blocks from a numpy ``Generator`` and hand values out one at a time: a
scalar numpy call costs about as much as a whole simulated event, a list pop costs little.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from twin.bounds import (
    MAX_CV_GAMMA,
    MAX_CV_LOGNORMAL,
    MAX_DIST_VALUE,
    MAX_SAMPLES,
    MIN_CV,
    MIN_DIST_MEAN,
    DistMean,
    DistValue,
    Finite,
    Probability,
)
from twin.io import register_union_tags

BLOCK = 4096
FIRST_BLOCK = 64


def _within(x: float, low: float) -> float:
    """A scaled value kept in a distribution's range (scaling by 0, or by a large sampled
    intensity, must not make a distribution the documents would refuse)."""
    return min(MAX_DIST_VALUE, max(low, x))


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def expected(self) -> float:  # pragma: no cover - overridden
        """The mean of the distribution, in its own unit."""
        raise NotImplementedError

    def variance(self) -> float:
        """The variance of the distribution, in its own unit squared (the fluid engine's
        queueing formulas need the second moment, not only the mean)."""
        return float(getattr(self, "cv", 0.0) * self.expected()) ** 2

    def scaled(self, k: float) -> AnyDist:  # pragma: no cover - overridden
        """The distribution of ``k`` times a draw (``k`` >= 0), kept within the ranges."""
        raise NotImplementedError

    def _block(self, rng: np.random.Generator, n: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        """A zero-argument callable returning one draw; blocks of draws come from ``rng``."""
        return _BlockSampler(lambda n: self._block(rng, n))


class Constant(_Dist):
    """Always ``mean`` seconds (or units of whatever the field measures)."""

    dist: Literal["constant"] = "constant"
    mean: DistValue = Field(description="seconds (or the unit of the field)")

    def expected(self) -> float:
        return self.mean

    def scaled(self, k: float) -> Constant:
        return Constant(mean=_within(self.mean * k, 0.0))

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        value = self.mean
        return lambda: value


class Exponential(_Dist):
    """Memoryless, with the given ``mean`` (rate = 1 / mean)."""

    dist: Literal["exponential"] = "exponential"
    mean: DistMean = Field(description="seconds (or the unit of the field)")

    def expected(self) -> float:
        return self.mean

    def variance(self) -> float:
        return self.expected() ** 2

    def scaled(self, k: float) -> Exponential:
        return Exponential(mean=_within(self.mean * k, MIN_DIST_MEAN))

    def _block(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)


class LogNormal(_Dist):
    """Heavy-ish tail, given by its ``mean`` and coefficient of variation ``cv``."""

    dist: Literal["lognormal"] = "lognormal"
    mean: DistMean = Field(description="seconds (or the unit of the field)")
    cv: Finite = Field(ge=MIN_CV, le=MAX_CV_LOGNORMAL, description="standard deviation / mean")

    def expected(self) -> float:
        return self.mean

    def scaled(self, k: float) -> LogNormal:
        return LogNormal(mean=_within(self.mean * k, MIN_DIST_MEAN), cv=self.cv)

    def _block(self, rng: np.random.Generator, n: int) -> np.ndarray:
        s2 = math.log1p(self.cv**2)
        return rng.lognormal(math.log(self.mean) - s2 / 2, math.sqrt(s2), n)


class Gamma(_Dist):
    """Given by ``mean`` and ``cv``; cv 1 is exponential, cv < 1 is more regular."""

    dist: Literal["gamma"] = "gamma"
    mean: DistMean = Field(description="seconds (or the unit of the field)")
    cv: Finite = Field(ge=MIN_CV, le=MAX_CV_GAMMA, description="standard deviation / mean")

    def expected(self) -> float:
        return self.mean

    def scaled(self, k: float) -> Gamma:
        return Gamma(mean=_within(self.mean * k, MIN_DIST_MEAN), cv=self.cv)

    def _block(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean / shape, n)


class Uniform(_Dist):
    """Flat between ``low`` and ``high``."""

    dist: Literal["uniform"] = "uniform"
    low: DistValue
    high: DistValue

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def expected(self) -> float:
        return (self.low + self.high) / 2

    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def scaled(self, k: float) -> Uniform:
        return Uniform(low=_within(self.low * k, 0.0), high=_within(self.high * k, 0.0))

    def _block(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


class Empirical(_Dist):
    """Observed ``samples`` (resampled), or ``quantiles`` {probability: value} interpolated.

    Quantiles must include probabilities 0 and 1 so the support is explicit.
    """

    dist: Literal["empirical"] = "empirical"
    samples: list[DistValue] | None = Field(default=None, max_length=MAX_SAMPLES)
    quantiles: dict[Probability, DistValue] | None = Field(default=None, max_length=MAX_SAMPLES)

    @model_validator(mode="after")
    def _one_source(self) -> Empirical:
        if (self.samples is None) == (self.quantiles is None):
            raise ValueError("give exactly one of `samples` or `quantiles`")
        if self.samples is not None and not self.samples:
            raise ValueError("`samples` is empty")
        if self.quantiles is not None:
            ps = sorted(self.quantiles)
            if len(ps) < 2 or ps[0] != 0.0 or ps[-1] != 1.0:
                raise ValueError("`quantiles` must include probabilities 0 and 1")
            vs = [self.quantiles[p] for p in ps]
            if any(b < a for a, b in itertools.pairwise(vs)):
                raise ValueError("`quantiles` values must not decrease with probability")
        return self

    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.quantiles is not None
        ps = np.array(sorted(self.quantiles))
        return ps, np.array([self.quantiles[p] for p in ps])

    def expected(self) -> float:
        if self.samples is not None:
            return float(np.mean(self.samples))
        ps, vs = self._table()
        return float(np.trapezoid(vs, ps))

    def variance(self) -> float:
        if self.samples is not None:
            return float(np.var(self.samples))
        ps, vs = self._table()
        # x(p) is linear between knots, so E[x^2] is exact per segment
        a, b, dp = vs[:-1], vs[1:], np.diff(ps)
        second = float(np.sum((a * a + a * b + b * b) / 3 * dp))
        return max(0.0, second - self.expected() ** 2)

    def scaled(self, k: float) -> Empirical:
        if self.samples is not None:
            return Empirical(samples=[_within(s * k, 0.0) for s in self.samples])
        assert self.quantiles is not None
        return Empirical(quantiles={p: _within(v * k, 0.0) for p, v in self.quantiles.items()})

    def _block(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.samples is not None:
            return rng.choice(np.asarray(self.samples, dtype=float), n)
        ps, vs = self._table()
        out: np.ndarray = np.interp(rng.random(n), ps, vs)
        return out


Dist = Annotated[
    Constant | Exponential | LogNormal | Gamma | Uniform | Empirical,
    Field(discriminator="dist"),
    BeforeValidator(lambda v: _coerce(v)),  # noqa: PLW0108 - _coerce is defined below
]


register_union_tags("constant", "exponential", "lognormal", "gamma", "uniform", "empirical")

AnyDist = Constant | Exponential | LogNormal | Gamma | Uniform | Empirical


def _coerce(value: Any) -> Any:
    """A bare number means a constant, so ``delay: 0.2`` reads naturally."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"dist": "constant", "mean": value}
    return value


class _BlockSampler:
    """Draws in blocks that start small and double up to BLOCK: a sampler used a few times
    (most of them, in a topology of thousands of services) does not pay for 4,096 draws.
    numpy's generators fill arrays value by value, so the stream is the same whatever the
    block sizes (tests/test_distributions.py checks it)."""

    __slots__ = ("_buf", "_draw", "_i", "_size")

    def __init__(self, draw: Callable[[int], np.ndarray]) -> None:
        self._draw = draw
        self._buf: list[float] = []
        self._i = 0
        self._size = FIRST_BLOCK

    def __call__(self) -> float:
        i = self._i
        buf = self._buf
        if i >= len(buf):
            buf = self._buf = self._draw(self._size).tolist()
            self._size = min(BLOCK, self._size * 2)
            i = 0
        self._i = i + 1
        return buf[i]


def uniform_sampler(rng: np.random.Generator) -> Callable[[], float]:
    """U(0, 1) draws in blocks, for Bernoulli decisions on the hot path."""
    return _BlockSampler(rng.random)


__all__ = [
    "Constant",
    "Dist",
    "Empirical",
    "Exponential",
    "Gamma",
    "LogNormal",
    "Uniform",
    "uniform_sampler",
]
