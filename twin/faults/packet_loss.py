"""``packet_loss``: calls on an edge, or into a service, are lost."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from twin.faults.base import Fraction, Intensity, Picker, ProbabilityFault, RequestEngine, Targets


class PacketLossFault(ProbabilityFault):
    """Calls on an edge (``a->b``) or into a service are lost with this probability."""

    kind: Literal["packet_loss"]
    probability: Fraction

    label: ClassVar[str] = "packet loss"
    listing: ClassVar[int] = 40
    targets: ClassVar[Targets] = Targets(service=True, edge=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="probability that a call is lost",
        field="probability",
        low=0.0,
        high=1.0,
        typical=0.1,
        sample=(0.01, 0.3),
        picker=Picker(
            "loss probability", 0.01, 1.0, 0.2, 0.01, "share of calls lost (NETWORK_LOSS)"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = (
        "packet",
        "network loss",
        "connection reset",
        "dropped connections",
        "dns",
    )
    symptom_rank: ClassVar[int] = 60
    incident_example: ClassVar[str] = "packet loss between pods"
    chaos_words: ClassVar[tuple[str, ...]] = ("loss", "packet", "partition", "blackhole")
    chaos_rank: ClassVar[int] = 20
    fmea_detection: ClassVar[int] = 5

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.lose(self.target, self.probability)
