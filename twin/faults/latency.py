"""``latency``: extra delay at a service or on an edge."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from twin.bounds import MAX_SECONDS
from twin.distributions import AnyDist, Dist
from twin.faults.base import (
    FaultBase,
    FluidEngine,
    Intensity,
    Picker,
    RequestEngine,
    Targets,
)
from twin.topology import Topology


class LatencyFault(FaultBase):
    """Extra delay: at a service it holds the worker (not a core); on an edge, network time."""

    kind: Literal["latency"]
    delay: Dist = Field(description=f"added seconds (a mean of at most {MAX_SECONDS:g})")

    label: ClassVar[str] = "latency (slow service or link)"
    listing: ClassVar[int] = 10
    targets: ClassVar[Targets] = Targets(service=True, edge=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="seconds of added delay (the delay's mean)",
        field="delay",
        low=0.0,
        high=MAX_SECONDS,
        typical=0.2,
        sample=(0.02, 1.0),
        sample_log=True,
        picker=Picker(
            "added delay (s)",
            0.01,
            5.0,
            0.5,
            0.01,
            "every request (or call on an edge) waits this long",
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = (
        "latency",
        "slow",
        "timeout",
        "timed out",
        "degraded",
        "lag",
    )
    symptom_rank: ClassVar[int] = 110
    incident_example: ClassVar[str] = "p99 latency degraded"
    chaos_words: ClassVar[tuple[str, ...]] = ("latency", "delay", "slow")
    chaos_rank: ClassVar[int] = 10
    fmea_detection: ClassVar[int] = 4
    in_default_sample: ClassVar[bool] = True
    agent_levels: ClassVar[tuple[float, ...]] = (0.1, 0.3, 1.0)  # added seconds per request
    agent_rank: ClassVar[int] = 5

    @field_validator("delay")
    @classmethod
    def _bounded(cls, value: AnyDist) -> AnyDist:
        if value.expected() > MAX_SECONDS:
            raise ValueError(f"a delay's mean is at most {MAX_SECONDS:g} seconds")
        return value

    def _scale_value(self, value: Any, k: float) -> Any:
        return value.scaled(k)

    @classmethod
    def _fields_for(
        cls, target: str, x: float, topology: Topology | None, entry_rate: float | None
    ) -> dict[str, Any]:
        return {"delay": {"dist": "constant", "mean": x}}

    def intensity_of(self, topology: Topology) -> float:
        return float(self.delay.expected())

    def open(self, engine: RequestEngine, window: int, n: int) -> Any:
        return self.delay.sampler(engine.stream(f"fault-delay:{window}:{n}"))

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.delay(self.target, handle)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        engine.add_delay(self.target, self.delay.expected())
