"""``disk_io``: a disk slows down (a noisy neighbour or a saturated volume)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from twin.bounds import MAX_FACTOR, Factor
from twin.faults.base import FluidEngine, Intensity, Picker, RequestEngine, SlowdownFault, Targets


class DiskIoFault(SlowdownFault):
    """The disk does its I/O ``factor`` times slower (its bandwidth divided by ``factor``).

    Only operations that declare an ``io`` demand are affected, and only where the disk has a
    bandwidth (``disk_bandwidth`` on the service, or on its host). ``target`` is a service,
    or ``host:NAME`` / ``zone:NAME`` for every service placed there.
    """

    kind: Literal["disk_io"]
    factor: Factor = Field(description="disk slow-down (bandwidth divided by it)")

    label: ClassVar[str] = "disk I/O slow-down"
    listing: ClassVar[int] = 120
    targets: ClassVar[Targets] = Targets(service=True, placement=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="slow-down factor of disk I/O (at least 1; the disk's bandwidth divided by it)",
        field="factor",
        low=1.0,
        high=MAX_FACTOR,
        typical=4.0,
        sample=(1.5, 10.0),
        sample_log=True,
        picker=Picker(
            "disk slow-down factor",
            1.0,
            20.0,
            4.0,
            0.5,
            "disk reads and writes take this many times longer",
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = ("disk", "iops", "i/o wait", "io wait")
    symptom_rank: ClassVar[int] = 120  # after every older kind: their texts keep their kind
    incident_example: ClassVar[str] = "disk I/O saturated"
    chaos_words: ClassVar[tuple[str, ...]] = ("disk", "iochaos")
    chaos_rank: ClassVar[int] = 100
    fmea_detection: ClassVar[int] = 5
    needs_disk: ClassVar[bool] = True
    agent_levels: ClassVar[tuple[float, ...]] = (2.0, 4.0, 8.0)  # disk slow-down factor
    agent_rank: ClassVar[int] = 7

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.slow_disk(self.target, self.factor)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        engine.slow_disk(self.target, self.factor)
