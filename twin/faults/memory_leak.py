"""``memory_leak``: memory grows until the replica is OOM-killed."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from twin.bounds import MAX_FACTOR, MAX_MEGABYTES, Finite, Megabytes, PeriodSeconds
from twin.faults.base import FaultBase, FluidEngine, Intensity, Picker, RequestEngine


def gc_slowdown_factor(used_mb: float, limit_mb: float, gc_slowdown: float) -> float:
    """How many times longer processing takes with ``used_mb`` of ``limit_mb`` in use: the
    GC's share grows with the square of the memory in use, ``1 + gc_slowdown * (used /
    limit)^2`` (both engines use this one curve)."""
    frac = min(1.0, max(0.0, used_mb) / limit_mb)
    return 1.0 + gc_slowdown * frac * frac


class MemoryLeakFault(FaultBase):
    """Memory grows per replica; GC slows processing near the limit; at the limit: OOM kill.

    Processing slows by ``1 + gc_slowdown * (used / limit)^2``. A killed replica fails its
    in-flight work (SERVICE_DOWN), is down for ``restart_time`` and comes back with
    ``baseline_mb``; the leak continues while the fault lasts.
    """

    kind: Literal["memory_leak"]
    growth_mb_per_s: Megabytes = Field(gt=0.0, description="MB per second, per replica")
    limit_mb: Megabytes = Field(default=512.0, gt=0.0, description="MB at which it is killed")
    baseline_mb: Megabytes = Field(default=128.0, description="MB after a (re)start")
    restart_time: PeriodSeconds = Field(
        default=10.0, description="seconds down after an OOM kill (a kill takes time)"
    )
    gc_slowdown: Finite = Field(
        default=1.0, ge=0.0, le=MAX_FACTOR, description="extra slow-down at the limit"
    )

    label: ClassVar[str] = "memory leak (OOM kills)"
    listing: ClassVar[int] = 70
    intensity: ClassVar[Intensity] = Intensity(
        unit="MB per second of memory growth per replica",
        field="growth_mb_per_s",
        low=0.0,
        low_open=True,
        high=MAX_MEGABYTES,
        typical=5.0,
        sample=(1.0, 20.0),
        sample_log=True,
        picker=Picker(
            "leak (MB/s)", 1.0, 100.0, 20.0, 1.0, "512 MB limit from 128 MB: OOM kill, 10 s restart"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = ("oom", "out of memory", "memory")
    symptom_rank: ClassVar[int] = 30
    incident_example: ClassVar[str] = "OOM kills, memory growth"
    chaos_words: ClassVar[tuple[str, ...]] = ("memory", "mem_", "oom")
    chaos_rank: ClassVar[int] = 50
    fmea_detection: ClassVar[int] = 5
    agent_levels: ClassVar[tuple[float, ...]] = (8.0, 16.0, 32.0)  # MB/s (limit 512, base 128)
    agent_rank: ClassVar[int] = 3

    @model_validator(mode="after")
    def _below_limit(self) -> MemoryLeakFault:
        if self.baseline_mb >= self.limit_mb:
            raise ValueError(
                f"baseline_mb ({self.baseline_mb:g}) must be below limit_mb ({self.limit_mb:g})"
            )
        return self

    def open(self, engine: RequestEngine, window: int, n: int) -> Any:
        return engine.start_leak(
            self.target,
            self.growth_mb_per_s,
            self.limit_mb,
            self.baseline_mb,
            self.restart_time,
            self.gc_slowdown,
        )

    def close(self, engine: RequestEngine, handle: Any) -> None:
        engine.stop_leak(handle)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        since = engine.leak_clock(self.target, window_start)
        if since is None:
            return
        used = self.baseline_mb + self.growth_mb_per_s * (now - since)
        if used >= self.limit_mb:
            engine.restart(self.target, now + self.restart_time)
        engine.slow(self.target, gc_slowdown_factor(used, self.limit_mb, self.gc_slowdown))
