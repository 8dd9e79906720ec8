"""``data_corruption``: responses come back silently wrong."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from twin.faults.base import Fraction, Intensity, Picker, ProbabilityFault, RequestEngine


class DataCorruptionFault(ProbabilityFault):
    """Responses come back silently wrong; each consumer detects one with ``detection``.

    A detected corrupt response fails the call with CORRUPTED; an undetected one makes the
    consumer's own response corrupt, up to the entry, where it counts as a corrupted success.
    """

    kind: Literal["data_corruption"]
    probability: Fraction
    detection: Fraction = 0.5

    label: ClassVar[str] = "data corruption"
    listing: ClassVar[int] = 90
    intensity: ClassVar[Intensity] = Intensity(
        unit="probability that a response is corrupt",
        field="probability",
        low=0.0,
        high=1.0,
        typical=0.2,
        sample=(0.05, 0.5),
        picker=Picker(
            "corruption probability", 0.01, 1.0, 0.2, 0.01, "each consumer detects one with p 0.5"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = (
        "corrupt",
        "bad data",
        "wrong data",
        "malformed",
        "inconsistent",
    )
    symptom_rank: ClassVar[int] = 40
    incident_example: ClassVar[str] = "corrupt responses"
    chaos_words: ClassVar[tuple[str, ...]] = ("corrupt",)
    chaos_rank: ClassVar[int] = 80
    fmea_detection: ClassVar[int] = 8

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.corrupt(self.target, self.probability, self.detection)
