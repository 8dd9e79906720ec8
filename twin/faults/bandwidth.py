"""``bandwidth``: an edge's link is capped."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from twin.bounds import MAX_BYTES, BytesPerSecond
from twin.faults.base import FaultBase, Intensity, Picker, RequestEngine, Targets


class BandwidthFault(FaultBase):
    """An edge's link carries at most ``bytes_per_second``; responses queue for it (FIFO)."""

    kind: Literal["bandwidth"]
    bytes_per_second: BytesPerSecond = Field(description="what the link carries")

    label: ClassVar[str] = "bandwidth limit (link)"
    listing: ClassVar[int] = 50
    targets: ClassVar[Targets] = Targets(service=False, edge=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="bytes per second the link carries (lower is worse)",
        field="bytes_per_second",
        low=0.0,
        low_open=True,
        high=MAX_BYTES,
        typical=50_000.0,
        sample=(10_000.0, 1_000_000.0),
        sample_log=True,
        lower_is_worse=True,
        display_scale=1024.0,  # pickers show KiB/s
        picker=Picker(
            "link bandwidth (KiB/s)", 10.0, 10_000.0, 200.0, 10.0, "responses queue for the link"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = ("bandwidth", "saturated link", "link saturation")
    symptom_rank: ClassVar[int] = 70
    chaos_words: ClassVar[tuple[str, ...]] = ("bandwidth",)
    chaos_rank: ClassVar[int] = 30
    fmea_detection: ClassVar[int] = 5

    def _scale_value(self, value: Any, k: float) -> Any:
        # a stronger bandwidth fault leaves less bandwidth; a draw of 0 leaves the most the
        # field allows (the scaled value is brought into the field's range)
        return value / k if k > 0 else math.inf

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.cap_bandwidth(self.target, self.bytes_per_second)
