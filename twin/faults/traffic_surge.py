"""``traffic_surge``: extra user requests at an entry."""

from __future__ import annotations

from typing import ClassVar, Literal

from twin.bounds import MAX_MULTIPLIER
from twin.faults.base import Intensity, Picker, TrafficFault


class TrafficSurgeFault(TrafficFault):
    """Extra user requests at an entry (a flash crowd); they count in every figure."""

    kind: Literal["traffic_surge"]

    label: ClassVar[str] = "traffic surge"
    listing: ClassVar[int] = 100
    intensity: ClassVar[Intensity] = Intensity(
        unit="extra requests per second, as a multiple of the entry's own rate",
        field="rate",
        low=0.0,
        low_open=True,
        high=MAX_MULTIPLIER,
        typical=1.0,
        sample=(0.5, 3.0),
        picker=Picker(
            "extra traffic (x entry rate)", 0.1, 10.0, 1.0, 0.1, "extra user requests at the entry"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = (
        "surge",
        "traffic spike",
        "load spike",
        "flash sale",
        "thundering herd",
    )
    symptom_rank: ClassVar[int] = 20
    incident_example: ClassVar[str] = "traffic spike"
    chaos_words: ClassVar[tuple[str, ...]] = ("load", "surge", "stress", "traffic")
    chaos_rank: ClassVar[int] = 90
    fmea_detection: ClassVar[int] = 3
    agent_levels: ClassVar[tuple[float, ...]] = (1.0, 1.5, 2.0)  # x the nominal entry rate
    agent_rank: ClassVar[int] = 0
