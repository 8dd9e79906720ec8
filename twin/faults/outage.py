"""``outage``: replicas go down."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from twin.bounds import MAX_REPLICAS, Int
from twin.faults.base import (
    FaultBase,
    FluidEngine,
    Intensity,
    Picker,
    RequestEngine,
    Targets,
    replicas_share,
    share_to_replicas,
)
from twin.topology import Topology


class OutageFault(FaultBase):
    """Replicas go down: in-flight and queued work fails with SERVICE_DOWN, new work finds none.

    ``target`` is a service, or ``host:NAME`` / ``zone:NAME`` for every service placed there.
    """

    kind: Literal["outage"]
    replicas: Int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLICAS,
        description="how many (default: all); at most the target's replicas",
    )

    label: ClassVar[str] = "outage (replicas down)"
    listing: ClassVar[int] = 30
    targets: ClassVar[Targets] = Targets(service=True, placement=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="share of the target's replicas down (rounded up to whole replicas)",
        field=None,  # sampled occurrences do not scale an outage
        low=0.0,
        low_open=True,
        high=1.0,
        typical=1.0,
        sample=(0.3, 1.0),
        picker=Picker(
            "share of replicas down",
            0.1,
            1.0,
            1.0,
            0.1,
            "1.0 takes every replica of the target down",
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = (
        "outage",
        "down",
        "crash",
        "unavailable",
        "unreachable",
        "evicted",
        "node fail",
    )
    symptom_rank: ClassVar[int] = 90
    incident_example: ClassVar[str] = "service down (crash loop)"
    chaos_words: ClassVar[tuple[str, ...]] = (
        "kill",
        "terminate",
        "stop",
        "shutdown",
        "restart",
        "delete",
        "crash",
        "down",
        "pod-failure",  # Chaos Mesh: the pod's containers replaced by a pause image
    )
    chaos_rank: ClassVar[int] = 60
    fmea_detection: ClassVar[int] = 2
    in_default_sample: ClassVar[bool] = True
    agent_levels: ClassVar[tuple[float, ...]] = (1.0,)  # every replica down
    agent_rank: ClassVar[int] = 6

    @classmethod
    def _fields_for(
        cls, target: str, x: float, topology: Topology | None, entry_rate: float | None
    ) -> dict[str, Any]:
        n = share_to_replicas(topology, target, x)
        return {} if n is None else {"replicas": n}

    def intensity_of(self, topology: Topology) -> float:
        return replicas_share(topology, self.target, self.replicas)

    def problem_in(self, topology: Topology) -> tuple[str, str] | None:
        """More replicas down than the target has would silently be cut to all of them: the
        count is at most the target service's replicas (for ``host:``/``zone:``, the most any
        service placed there has)."""
        if self.replicas is None:
            return None
        have = _replicas_at(topology, self.target)
        if have and self.replicas > max(have):
            return "replicas", f"{self.replicas} replicas down, but {self.target} has {max(have)}"
        return None

    def open(self, engine: RequestEngine, window: int, n: int) -> Any:
        return engine.take_down(self.target, self.replicas)

    def close(self, engine: RequestEngine, handle: Any) -> None:
        engine.bring_up(handle)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        engine.take_down(self.target, self.replicas)


def _replicas_at(topology: Topology, target: str) -> list[int]:
    """Replicas of the target service, or of every service placed on ``host:NAME`` or in
    ``zone:NAME`` (a service's zone is its host's when it has a host), as the engines take
    them down."""
    scope, sep, name = target.partition(":")
    if not sep:
        svc = topology.services.get(target)
        return [] if svc is None else [svc.replicas]
    out = []
    for svc in topology.services.values():
        host = topology.hosts.get(svc.host) if svc.host is not None else None
        zone = host.zone if host is not None else svc.zone
        if (scope == "host" and svc.host == name) or (scope == "zone" and zone == name):
            out.append(svc.replicas)
    return out
