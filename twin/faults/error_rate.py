"""``error_rate``: a service fails a share of its requests."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from twin.faults.base import (
    FluidEngine,
    Fraction,
    Intensity,
    Picker,
    ProbabilityFault,
    RequestEngine,
)


class ErrorRateFault(ProbabilityFault):
    """A service fails a fraction of requests after processing them (code-level exception)."""

    kind: Literal["error_rate"]
    probability: Fraction

    label: ClassVar[str] = "error rate (exceptions)"
    listing: ClassVar[int] = 20
    intensity: ClassVar[Intensity] = Intensity(
        unit="probability that a request fails",
        field="probability",
        low=0.0,
        high=1.0,
        typical=0.3,
        sample=(0.02, 0.6),
        picker=Picker(
            "error probability", 0.01, 1.0, 0.3, 0.01, "share of requests that fail with ERROR"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = ("error", "5xx", "500", "503", "exception", "failing")
    symptom_rank: ClassVar[int] = 100
    incident_example: ClassVar[str] = "5xx error spike"
    chaos_words: ClassVar[tuple[str, ...]] = ("error", "abort", "exception", "http_5")
    chaos_rank: ClassVar[int] = 70
    fmea_detection: ClassVar[int] = 3
    in_default_sample: ClassVar[bool] = True
    agent_levels: ClassVar[tuple[float, ...]] = (0.1, 0.3, 0.6)  # failure probability
    agent_rank: ClassVar[int] = 4

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.add_errors(self.target, self.probability)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        engine.add_errors(self.target, self.probability)
