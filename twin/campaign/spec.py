"""Campaign documents: what to run (lists, grids, seeded samples, incident history)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from twin.bounds import (
    MAX_FAULTS,
    MAX_MULTIPLIER,
    MAX_SEED,
    Finite,
    Int,
    Multiplier,
    PeriodSeconds,
    PositiveSeconds,
    Seconds,
    Seed,
)
from twin.faults import KINDS, Fault, FaultKind
from twin.io import DocProblem
from twin.policy import Policy
from twin.scenario import Load
from twin.topology import SLO, Topology

DEFAULT_INTENSITY: dict[str, float] = {k: c.intensity.typical for k, c in KINDS.items()}
"""What one unit of ``intensity`` means is each kind's (``twin.faults``: its ``intensity.unit``;
e.g. an outage's is the share of replicas, a traffic kind's a multiple of the entry's rate);
this is the value a campaign uses when it names none."""

LOWER_IS_WORSE = {k for k, c in KINDS.items() if c.intensity.lower_is_worse}
"""Kinds whose intensity hurts more as it falls; the threshold search runs the other way."""

AFFECTED_SHARE = 0.01
"""A service is in the blast radius of a run when at least this share of its requests failed,
or when its own p99 alone exceeds the end-to-end latency objective."""

_FAULT: TypeAdapter[Any] = TypeAdapter(Fault)


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_SAMPLE_KINDS: tuple[str, ...] = tuple(k for k, c in KINDS.items() if c.in_default_sample)


def _unprotected() -> dict[str, str | Policy | None]:
    return {"none": None}


def intensity_problem(kind: str, x: float) -> str | None:
    """Why ``x`` is not an intensity of ``kind`` (outside the kind's range), or None.

    Out-of-range intensities are refused rather than clamped: an error intensity of 3 is a
    mistake, and running it as 1 would hide it."""
    spec = KINDS[kind].intensity
    below = x <= spec.low if spec.low_open else x < spec.low
    if below or x > spec.high:
        left = "(" if spec.low_open else "["
        return (
            f"intensity {x:g} is outside {kind}'s range {left}{spec.low:g}, {spec.high:g}] "
            f"({spec.unit})"
        )
    return None


def _check_intensity(kind: str | None, x: float) -> None:
    problem = None if kind is None or kind not in KINDS else intensity_problem(kind, x)
    if problem is not None:
        raise ValueError(problem)


class ScenarioItem(_Doc):
    """An explicit scenario: faults exactly as in a scenario document, and a load."""

    name: str = Field(min_length=1)
    load: Multiplier | Load = Field(default=1.0, description="multiplier, or a load document")
    faults: list[Fault] = Field(default_factory=list, max_length=MAX_FAULTS)


class FaultSweep(_Doc):
    """One fault kind swept over targets and intensities.

    ``targets``: names, ``"*"`` (every service; every edge for kinds that only target edges;
    every entry for traffic kinds) or ``"edges"`` (every call edge, for kinds that accept
    one).
    ``params`` are further fixed fields of the fault (e.g. ``detection``, ``cost``).
    """

    kind: FaultKind
    targets: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    intensities: list[Finite] | None = Field(
        default=None,
        min_length=1,
        description="in the kind's unit and range (see each kind); default: one typical",
    )
    params: dict[str, Int | Finite | str | bool] = Field(default_factory=dict)

    @field_validator("intensities")
    @classmethod
    def _in_range(cls, value: list[float] | None, info: ValidationInfo) -> list[float] | None:
        for x in value or []:
            _check_intensity(info.data.get("kind"), x)
        return value


class Grid(_Doc):
    """Every combination of fault (kind x target x intensity) and load multiplier."""

    faults: list[FaultSweep] = Field(min_length=1)
    loads: list[Multiplier] = Field(default_factory=lambda: [1.0], min_length=1)


class Range(_Doc):
    """A uniform draw in [low, high], or log-uniform when ``log`` (both ends positive)."""

    low: Finite
    high: Finite
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    def draw(self, rng: np.random.Generator) -> float:
        u = float(rng.random())
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


DEFAULT_RANGE: dict[str, Range] = {
    k: Range(low=c.intensity.sample[0], high=c.intensity.sample[1], log=c.intensity.sample_log)
    for k, c in KINDS.items()
}
"""The intensities a seeded random campaign draws from, by kind."""


class RandomSample(_Doc):
    """``count`` scenarios drawn with a seed: kind, target, intensity and load at random."""

    count: Int = Field(ge=1, le=100_000)
    seed: Seed | None = Field(default=None, description="default: the campaign seed")
    kinds: list[FaultKind] = Field(
        default_factory=lambda: list(_SAMPLE_KINDS),
        min_length=1,
    )
    targets: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    intensity: dict[FaultKind, Range] = Field(
        default_factory=dict, description="by kind; both ends within the kind's range"
    )
    load: Range = Field(
        default_factory=lambda: Range(low=1.0, high=1.0),
        description=f"load multipliers, within [0, {MAX_MULTIPLIER:g}]",
    )
    faults: Int = Field(default=1, ge=1, le=10, description="independent faults per scenario")

    @field_validator("intensity")
    @classmethod
    def _in_range(cls, value: dict[str, Range]) -> dict[str, Range]:
        for kind, r in value.items():
            _check_intensity(kind, r.low)
            _check_intensity(kind, r.high)
        return value

    @field_validator("load")
    @classmethod
    def _load_in_range(cls, value: Range) -> Range:
        if value.low < 0.0 or value.high > MAX_MULTIPLIER:
            raise ValueError(f"load multipliers are within [0, {MAX_MULTIPLIER:g}]")
        return value


class History(_Doc):
    """Scenarios resembling past incidents, and neighbours that have not happened yet.

    The log (CSV or JSON; fields time, service, symptom, duration, cause) is grouped by
    (fault kind, service); each group becomes one scenario. Neighbours: the same fault at up
    to ``neighbours`` adjacent services in the call graph that never had it, and the past
    incident at each extra ``severities`` multiplier (worse than anything seen so far).
    """

    path: str = Field(description="incident log, relative to the campaign file")
    neighbours: Int = Field(default=2, ge=0, le=1_000)
    severities: list[Annotated[float, Field(gt=0.0, le=MAX_MULTIPLIER)]] = Field(
        default_factory=lambda: [2.0], description="multipliers of the past intensity"
    )
    symptoms: dict[str, FaultKind] = Field(
        default_factory=dict, description="extra keyword -> fault kind, checked first"
    )
    intensities: dict[FaultKind, Finite] = Field(
        default_factory=dict, description="by kind, in the kind's unit and range"
    )

    @field_validator("intensities")
    @classmethod
    def _in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, x in value.items():
            _check_intensity(kind, x)
        return value


class Campaign(_Doc):
    """A fault campaign: which scenarios, under which policies, how many replications."""

    name: str = Field(min_length=1)
    description: str = ""
    topology: str = Field(description="topology YAML, relative to the campaign file")
    duration: PositiveSeconds = Field(default=300.0, description="simulated seconds per run")
    warmup: Seconds = Field(default=30.0, description="seconds; shorter than duration")
    window: PeriodSeconds = Field(default=5.0, description="seconds per curve point")
    seed: Seed = Field(default=1, description=f"0 to {MAX_SEED}")
    replications: Int = Field(default=1, ge=1, le=10_000)
    fault_start: Seconds | None = Field(
        default=None, description="seconds, before duration; default: a quarter in"
    )
    fault_duration: PositiveSeconds | None = Field(default=None, description="default: half")
    slo: SLO | None = Field(default=None, description="judge runs by this (default: topology's)")
    baseline: bool = Field(default=True, description="add a fault-free scenario per load")
    policies: dict[str, str | Policy | None] = Field(
        default_factory=_unprotected,
        description="name -> policy file (relative), inline policy, or null (unprotected)",
    )
    scenarios: list[ScenarioItem] = Field(default_factory=list)
    grid: Grid | None = None
    sample: RandomSample | None = None
    history: History | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        if self.warmup >= self.duration:
            raise ValueError(f"warmup ({self.warmup}) must be shorter than duration")
        if not self.policies:
            raise ValueError("policies: name at least one (null means unprotected)")
        if not (self.baseline or self.scenarios or self.grid or self.sample or self.history):
            raise ValueError("no scenarios: give scenarios, grid, sample or history")
        return self

    def cross_check(self) -> None:
        """Generated faults start inside every run: at or after its end, none would happen."""
        if self.fault_start is not None and self.fault_start >= self.duration:
            raise DocProblem(
                ("fault_start",),
                f"fault_start ({self.fault_start:g}) must be before the end of the run "
                f"(duration {self.duration:g}): no fault would happen",
            )

    def fault_window(self) -> tuple[float, float]:
        """(start, duration) of generated faults: by default the middle half of the measured
        time, so curves show before, during and after."""
        measured = self.duration - self.warmup
        start = self.warmup + measured / 4 if self.fault_start is None else self.fault_start
        dur = measured / 2 if self.fault_duration is None else self.fault_duration
        return start, dur

    def judged_slo(self, topology: Topology) -> SLO:
        """The objectives runs are judged by: the campaign's, else the topology's, else 99%."""
        slo = self.slo or topology.slo
        if slo.latency_p99 is None and slo.availability is None:
            return SLO(availability=0.99)
        return slo


ROW_VERSION = 3
"""Bump when the row layout or its meaning changes, so old part files are not reused."""
