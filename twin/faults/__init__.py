"""Fault kinds: one class per kind (one module each), and when faults happen.

:data:`KINDS` maps every ``kind:`` tag to its class; :data:`Fault` is the discriminated union
scenario documents use. What a kind's class owns is described in :mod:`twin.faults.base`;
``docs/faults.md`` lists every kind and says how to add one.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from twin.faults.attack import AttackFault
from twin.faults.bandwidth import BandwidthFault
from twin.faults.base import (
    EDGE,
    ENTRY,
    PLACEMENT,
    SERVICE,
    FaultBase,
    FluidEngine,
    Intensity,
    Picker,
    RequestEngine,
    Sampling,
    Targets,
    TrafficFault,
)
from twin.faults.cpu_exhaustion import CpuExhaustionFault
from twin.faults.data_corruption import DataCorruptionFault
from twin.faults.disk_io import DiskIoFault
from twin.faults.error_rate import ErrorRateFault
from twin.faults.latency import LatencyFault
from twin.faults.memory_leak import MemoryLeakFault
from twin.faults.outage import OutageFault
from twin.faults.packet_loss import PacketLossFault
from twin.faults.pool_exhaustion import PoolExhaustionFault
from twin.faults.traffic_surge import TrafficSurgeFault
from twin.faults.windows import FaultWindow, fault_windows, scale_fault
from twin.io import register_union_tags

Fault = Annotated[
    LatencyFault
    | ErrorRateFault
    | OutageFault
    | PacketLossFault
    | BandwidthFault
    | CpuExhaustionFault
    | MemoryLeakFault
    | PoolExhaustionFault
    | DataCorruptionFault
    | TrafficSurgeFault
    | AttackFault
    | DiskIoFault,
    Field(discriminator="kind"),
]
"""Any fault document, told apart by its ``kind``."""

KINDS: dict[str, type[FaultBase]] = {
    cls.name: cls
    for cls in (
        LatencyFault,
        ErrorRateFault,
        OutageFault,
        PacketLossFault,
        BandwidthFault,
        CpuExhaustionFault,
        MemoryLeakFault,
        PoolExhaustionFault,
        DataCorruptionFault,
        TrafficSurgeFault,
        AttackFault,
        DiskIoFault,
    )
}
"""Every fault kind: ``kind:`` tag -> class, in the order the documentation lists them."""

FAULT_KINDS: tuple[str, ...] = tuple(KINDS)
"""Every fault kind's tag."""

FaultKind = Literal[
    "latency",
    "error_rate",
    "outage",
    "packet_loss",
    "bandwidth",
    "cpu_exhaustion",
    "memory_leak",
    "pool_exhaustion",
    "data_corruption",
    "traffic_surge",
    "attack",
    "disk_io",
]
"""A fault kind, as documents that name one (campaigns) type it."""

assert get_args(FaultKind) == FAULT_KINDS, "FaultKind must list KINDS"

register_union_tags(*FAULT_KINDS)


def kind(name: str) -> type[FaultBase]:
    """The class of a fault kind; ValueError naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown fault kind {name!r}; expected one of {list(KINDS)}") from None


def by_symptom_rank() -> list[type[FaultBase]]:
    """Kinds in the order incident text is matched against them (specific kinds first)."""
    return sorted(KINDS.values(), key=lambda c: c.symptom_rank)


def by_chaos_rank() -> list[type[FaultBase]]:
    """Kinds with chaos-tool words, in the order names are matched against them."""
    return sorted((c for c in KINDS.values() if c.chaos_words), key=lambda c: c.chaos_rank)


__all__ = [
    "EDGE",
    "ENTRY",
    "FAULT_KINDS",
    "KINDS",
    "PLACEMENT",
    "SERVICE",
    "AttackFault",
    "BandwidthFault",
    "CpuExhaustionFault",
    "DataCorruptionFault",
    "DiskIoFault",
    "ErrorRateFault",
    "Fault",
    "FaultBase",
    "FaultKind",
    "FaultWindow",
    "FluidEngine",
    "Intensity",
    "LatencyFault",
    "MemoryLeakFault",
    "OutageFault",
    "PacketLossFault",
    "Picker",
    "PoolExhaustionFault",
    "RequestEngine",
    "Sampling",
    "Targets",
    "TrafficFault",
    "TrafficSurgeFault",
    "by_chaos_rank",
    "by_symptom_rank",
    "fault_windows",
    "kind",
    "scale_fault",
]
