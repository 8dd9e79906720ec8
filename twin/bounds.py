"""What a number or a name in a document may hold: one home for every document's limits.

Every numeric field of a topology, scenario, policy, fault or campaign document is one of the
types below, or one of them narrowed further by its own ``Field``. Three rules hold for all:

- **Finite.** ``.inf`` and ``.nan`` are refused: an infinite rate or duration has no run to
  simulate, and a ``nan`` compares false with every bound, so it would slip past all of them.
- **Strict.** A count is an integer, never ``true`` (YAML's ``true`` is Python's 1), ``2.0``
  or ``"2"``; a number is never ``true`` or ``false`` (a quoted number, ``"0.5"``, is read as
  the number, as before).
- **Bounded.** Each field has a documented range. The ranges are generous (well beyond any
  system the twin is meant to model) but finite, so no single value can ask for unbounded
  work or memory, and every value the samplers and engines see is one they handle exactly.
  How much work a whole run asks for (rate x duration x fan-out) is judged by the
  simulation's budget, not here.

Names of services, operations, hosts and zones follow :data:`NAME_RULE`, so a name can never
be mistaken for the policy's ``"*"`` wildcard, an edge ``"a->b"`` or the ``"svc:op"`` form.

The limits are module constants, so the reference (``docs/reference.md``), the design notes
and the error messages all quote the same figures.
"""

from __future__ import annotations

import math
import operator
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict

# -- limits ---------------------------------------------------------------------------------

MAX_SECONDS = 10_000_000.0
"""Longest time any field may give, in seconds (about 116 days)."""

MIN_PERIOD_SECONDS = 0.01
"""Shortest repeating period a document may ask for, in seconds: a time-series window, an
autoscaler period, the mean gap between sampled fault occurrences, an OOM restart. Each of
them sets how many times something is done per simulated second."""

MAX_RATE = 1_000_000.0
"""Most requests per second of one workload entry, one extra traffic class or one rate
limiter."""

MAX_MULTIPLIER = 1_000.0
"""Most a load multiplier, a campaign load, an intensity multiple or a severity may scale."""

MAX_FACTOR = 1_000.0
"""Largest slow-down factor, processing-cost multiplier or GC slow-down."""

MAX_REPLICAS = 10_000
"""Most replicas of one service (also the autoscaler's ceiling and an outage's count)."""

MAX_WORKERS = 10_000
"""Most workers of one replica (also a bulkhead's concurrency)."""

MAX_CORES = 10_000
"""Most cores of one host."""

MAX_QUEUE = 1_000_000
"""Longest queue limit of one replica."""

MAX_CALL_COUNT = 1_000
"""Most calls one call entry makes per request."""

MAX_BYTES = 1e12
"""Most bytes (a response size) or bytes per second (a disk or a link) any field may give:
one terabyte."""

MAX_MEGABYTES = 10_000_000.0
"""Most megabytes (or megabytes per second, for a leak's growth) a memory field may give."""

MAX_DIST_VALUE = 1e12
"""Largest mean, bound or sample of a distribution, in the unit of its field."""

MIN_DIST_MEAN = 1e-9
"""The mean a positive-mean distribution (exponential, lognormal, gamma) is given when it is
scaled by 0 (a sampled intensity of 0): the smallest that still means "almost nothing"."""

MIN_CV = 1e-6
"""Smallest coefficient of variation of a lognormal or gamma (a constant has none)."""

MAX_CV_GAMMA = 10.0
"""Largest cv of a gamma: its shape 1/cv^2 stays at least 0.01, where numpy's sampler loses
no more than a share 6e-4 of draws to underflow (they become 0) and keeps the mean."""

MAX_CV_LOGNORMAL = 100.0
"""Largest cv of a lognormal: its log-sd stays below 3.04, so draws stay finite and the tail
stays one that a run of realistic length can estimate."""

MAX_SAMPLES = 100_000
"""Most observed samples or quantile points of an empirical distribution."""

MAX_RETRIES = 100
"""Most retries of one call; also the largest retry budget (extra attempts per request)."""

MAX_CALLS = 1_000_000
"""Most calls a circuit breaker counts in its window or waits for."""

MAX_SEED = 2**63 - 1
"""Largest seed: what every database the results go to stores as an integer."""

MAX_NAME_LENGTH = 200
"""Longest name of a service, operation, host or zone."""

MAX_FAULTS = 1_000
"""Most faults in one scenario, and most steps in one load profile."""

NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} characters, without ':' (it separates service and operation), "
    "'*' (the policy's wildcard), '->' (an edge), control characters, or spaces at either end"
)
"""What a service, operation, host or zone name may be, in words."""


# -- numbers ----------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``true`` is not a number, though Python counts it as 1; ``.inf`` and ``.nan`` are
    refused as such before any range is checked (``nan`` fails every comparison, so a range
    alone would report it as, say, "not greater than 0")."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    if isinstance(value, (float, str)):
        try:
            x = float(value)
        except ValueError:
            return value  # not a number at all: the type check words it
        if not math.isfinite(x):
            raise ValueError(f"expected a finite number, got {value}")
    return value


def _as_index(value: Any) -> Any:
    """Integers from numpy (``np.int64``) are integers; ``True`` and ``2.0`` are not."""
    if isinstance(value, (bool, int, float, str)) or not hasattr(type(value), "__index__"):
        return value
    return operator.index(value)


Finite = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_finite)]
"""Any finite number (an integer is read as one); never ``.inf``, ``.nan`` or a bool."""

Int = Annotated[int, BeforeValidator(_as_index), Strict()]
"""An integer, strictly: ``true`` and ``2.0`` are refused."""

Probability = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1.0), BeforeValidator(_finite)]
"""A probability or a share, in [0, 1]."""

Seconds = Annotated[
    float, Field(allow_inf_nan=False, ge=0.0, le=MAX_SECONDS), BeforeValidator(_finite)
]
"""A time or a delay in seconds, in [0, :data:`MAX_SECONDS`]."""

PositiveSeconds = Annotated[
    float, Field(allow_inf_nan=False, gt=0.0, le=MAX_SECONDS), BeforeValidator(_finite)
]
"""A length of time in seconds, in (0, :data:`MAX_SECONDS`]."""

PeriodSeconds = Annotated[
    float,
    Field(allow_inf_nan=False, ge=MIN_PERIOD_SECONDS, le=MAX_SECONDS),
    BeforeValidator(_finite),
]
"""A repeating period in seconds, in [:data:`MIN_PERIOD_SECONDS`, :data:`MAX_SECONDS`]."""

Rate = Annotated[float, Field(allow_inf_nan=False, gt=0.0, le=MAX_RATE), BeforeValidator(_finite)]
"""Requests per second, in (0, :data:`MAX_RATE`]."""

Multiplier = Annotated[
    float, Field(allow_inf_nan=False, ge=0.0, le=MAX_MULTIPLIER), BeforeValidator(_finite)
]
"""A load multiplier, in [0, :data:`MAX_MULTIPLIER`]."""

Factor = Annotated[
    float, Field(allow_inf_nan=False, ge=1.0, le=MAX_FACTOR), BeforeValidator(_finite)
]
"""A slow-down factor, in [1, :data:`MAX_FACTOR`]."""

BytesPerSecond = Annotated[
    float, Field(allow_inf_nan=False, gt=0.0, le=MAX_BYTES), BeforeValidator(_finite)
]
"""A disk's or a link's bandwidth, in (0, :data:`MAX_BYTES`] bytes per second."""

Megabytes = Annotated[
    float, Field(allow_inf_nan=False, ge=0.0, le=MAX_MEGABYTES), BeforeValidator(_finite)
]
"""Memory in MB, in [0, :data:`MAX_MEGABYTES`]."""

DistValue = Annotated[
    float, Field(allow_inf_nan=False, ge=0.0, le=MAX_DIST_VALUE), BeforeValidator(_finite)
]
"""A distribution's value (a bound, a sample, a quantile), in [0, :data:`MAX_DIST_VALUE`]."""

DistMean = Annotated[
    float, Field(allow_inf_nan=False, gt=0.0, le=MAX_DIST_VALUE), BeforeValidator(_finite)
]
"""A distribution's positive mean, in (0, :data:`MAX_DIST_VALUE`]."""

Seed = Annotated[int, BeforeValidator(_as_index), Strict(), Field(ge=0, le=MAX_SEED)]
"""A seed, in [0, :data:`MAX_SEED`]."""


# -- names ----------------------------------------------------------------------------------


def name_problem(value: str) -> str | None:
    """Why ``value`` is not a valid name (:data:`NAME_RULE`), or None when it is one."""
    if not value:
        return "a name may not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"a name has at most {MAX_NAME_LENGTH} characters, this one {len(value)}"
    if ":" in value:
        return f"name {value!r} may not contain ':' (it separates service and operation)"
    if "*" in value:
        return f"name {value!r} may not contain '*' (the policy's wildcard)"
    if "->" in value:
        return f"name {value!r} may not contain '->' (it names an edge a->b)"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f"name {value!r} may not contain control characters"
    if value != value.strip():
        return f"name {value!r} may not start or end with a space"
    return None


def check_name(value: str) -> str:
    """``value`` if it is a valid name; ValueError saying what is wrong otherwise."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_reference(value: str) -> str:
    """``"service"`` or ``"service:operation"``, each part a valid name."""
    svc, sep, op = value.partition(":")
    check_name(svc)
    if sep:
        check_name(op)
    return value


def safe_name(raw: str) -> str:
    """A valid name made from any text (for names read from telemetry): forbidden characters
    become ``_``, the ends are trimmed, and an empty result becomes ``"_"``."""
    text = raw.replace("->", "_").replace(":", "_").replace("*", "_")
    text = "".join("_" if ord(c) < 32 or ord(c) == 127 else c for c in text).strip()
    return (text or "_")[:MAX_NAME_LENGTH]


Name = Annotated[str, Strict(), AfterValidator(check_name)]
"""A service, operation, host or zone name: :data:`NAME_RULE`."""

Reference = Annotated[str, Strict(), AfterValidator(check_reference)]
"""``"service"`` or ``"service:operation"``, each part a :data:`Name`."""


__all__ = [
    "MAX_BYTES",
    "MAX_CALLS",
    "MAX_CALL_COUNT",
    "MAX_CORES",
    "MAX_CV_GAMMA",
    "MAX_CV_LOGNORMAL",
    "MAX_DIST_VALUE",
    "MAX_FACTOR",
    "MAX_FAULTS",
    "MAX_MEGABYTES",
    "MAX_MULTIPLIER",
    "MAX_NAME_LENGTH",
    "MAX_QUEUE",
    "MAX_RATE",
    "MAX_REPLICAS",
    "MAX_RETRIES",
    "MAX_SAMPLES",
    "MAX_SECONDS",
    "MAX_SEED",
    "MAX_WORKERS",
    "MIN_CV",
    "MIN_DIST_MEAN",
    "MIN_PERIOD_SECONDS",
    "NAME_RULE",
    "BytesPerSecond",
    "DistMean",
    "DistValue",
    "Factor",
    "Finite",
    "Int",
    "Megabytes",
    "Multiplier",
    "Name",
    "PeriodSeconds",
    "PositiveSeconds",
    "Probability",
    "Rate",
    "Reference",
    "Seconds",
    "Seed",
    "check_name",
    "check_reference",
    "name_problem",
    "safe_name",
]
