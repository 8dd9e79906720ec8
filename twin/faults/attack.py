"""``attack``: attack traffic at an entry, reported apart from users."""

from __future__ import annotations

from typing import ClassVar, Literal

from twin.bounds import MAX_MULTIPLIER
from twin.faults.base import Intensity, Picker, TrafficFault


class AttackFault(TrafficFault):
    """Attack requests at an entry (a flood, a scraper): they load the system, each costing
    ``cost`` times the normal processing, but are reported apart from user figures."""

    kind: Literal["attack"]

    label: ClassVar[str] = "attack traffic"
    listing: ClassVar[int] = 110
    attack: ClassVar[bool] = True
    intensity: ClassVar[Intensity] = Intensity(
        unit="extra requests per second, as a multiple of the entry's own rate",
        field="rate",
        low=0.0,
        low_open=True,
        high=MAX_MULTIPLIER,
        typical=1.0,
        sample=(0.5, 3.0),
        picker=Picker(
            "attack traffic (x entry rate)", 0.1, 10.0, 2.0, 0.1, "reported apart from user figures"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = ("ddos", "attack", "bot traffic", "credential stuffing")
    symptom_rank: ClassVar[int] = 10
    fmea_detection: ClassVar[int] = 4
    agent_levels: ClassVar[tuple[float, ...]] = (1.0, 2.0, 3.0)  # x the nominal entry rate
    agent_rank: ClassVar[int] = 1
