"""``pool_exhaustion``: leaked connections/threads hold workers."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from twin.faults.base import Fraction, Intensity, Picker, ProbabilityFault, RequestEngine


class PoolExhaustionFault(ProbabilityFault):
    """A fraction of each replica's workers is held by leaked connections/threads."""

    kind: Literal["pool_exhaustion"]
    fraction: Fraction = Field(description="share of workers unavailable")

    label: ClassVar[str] = "connection-pool exhaustion"
    listing: ClassVar[int] = 80
    intensity: ClassVar[Intensity] = Intensity(
        unit="share of each replica's workers held",
        field="fraction",
        low=0.0,
        high=1.0,
        typical=0.5,
        sample=(0.2, 0.9),
        picker=Picker(
            "share of workers leaked", 0.05, 1.0, 0.75, 0.05, "workers held by leaked connections"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = (
        "pool",
        "too many connections",
        "thread starvation",
        "descriptors",
    )
    symptom_rank: ClassVar[int] = 50
    incident_example: ClassVar[str] = "connection pool exhausted"
    fmea_detection: ClassVar[int] = 6

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.hold_workers(self.target, self.fraction)
