"""``cpu_exhaustion``: processing slows (a CPU hog)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from twin.bounds import MAX_FACTOR, Factor
from twin.faults.base import FluidEngine, Intensity, Picker, RequestEngine, SlowdownFault, Targets


class CpuExhaustionFault(SlowdownFault):
    """Processing takes ``factor`` times longer (a CPU hog on a service or ``host:NAME``)."""

    kind: Literal["cpu_exhaustion"]
    factor: Factor = Field(description="processing slow-down")

    label: ClassVar[str] = "CPU exhaustion"
    listing: ClassVar[int] = 60
    targets: ClassVar[Targets] = Targets(service=True, placement=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="slow-down factor of processing (at least 1)",
        field="factor",
        low=1.0,
        high=MAX_FACTOR,
        typical=3.0,
        sample=(1.5, 6.0),
        picker=Picker(
            "slow-down factor", 1.0, 10.0, 3.0, 0.5, "processing takes this many times longer"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = ("cpu", "throttl", "noisy neighbo")
    symptom_rank: ClassVar[int] = 80
    incident_example: ClassVar[str] = "CPU throttling"
    chaos_words: ClassVar[tuple[str, ...]] = ("cpu",)
    chaos_rank: ClassVar[int] = 40
    fmea_detection: ClassVar[int] = 4
    in_default_sample: ClassVar[bool] = True
    agent_levels: ClassVar[tuple[float, ...]] = (2.0, 3.0, 4.0)  # processing-time factor
    agent_rank: ClassVar[int] = 2

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.slow(self.target, self.factor)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        engine.slow(self.target, self.factor)
