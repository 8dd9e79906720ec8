"""Fault kinds: one class per kind (one module each), and when faults happen.

:data:`KINDS` maps every ``kind:`` tag to its class; :data:`Fault` is the discriminated union
scenario documents use. What a kind's class owns is described in :mod:`twin.faults.base`;
``docs/faults.md`` lists every kind and says how to add one.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Annotated, Literal, Union

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
from twin.faults.error_rate import ErrorRateFault
from twin.faults.latency import LatencyFault
from twin.faults.memory_leak import MemoryLeakFault
from twin.faults.outage import OutageFault
from twin.faults.packet_loss import PacketLossFault
from twin.faults.pool_exhaustion import PoolExhaustionFault
from twin.faults.traffic_surge import TrafficSurgeFault
from twin.faults.windows import FaultWindow, fault_windows, scale_fault
from twin.io import register_union_tags

_SUPPORT = frozenset({"base", "windows"})
"""Modules of this package that hold no kind."""


def _discover() -> dict[str, type[FaultBase]]:
    """Every kind class defined in a module of this package, in listing order: a new kind
    is a new module, and nothing else needs an edit to know it."""
    found: list[type[FaultBase]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SUPPORT:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, FaultBase)
            and obj.__module__ == module.__name__
            and obj.name
        ]
    names = [cls.name for cls in found]
    clash = {n for n in names if names.count(n) > 1}
    if clash:
        raise TypeError(f"fault kinds defined twice: {sorted(clash)}")
    return {cls.name: cls for cls in sorted(found, key=lambda c: (c.listing, c.name))}


KINDS: dict[str, type[FaultBase]] = _discover()
"""Every fault kind: ``kind:`` tag -> class, in the order the documentation lists them."""

FAULT_KINDS: tuple[str, ...] = tuple(KINDS)
"""Every fault kind's tag."""

# ``Fault``: any fault document, told apart by its ``kind`` (at run time, the discriminated
# union of every class in KINDS; to the type checker, their base). ``FaultKind``: a kind's tag,
# as documents that name one (campaigns) type it.
if TYPE_CHECKING:
    Fault = FaultBase
    FaultKind = str
else:
    Fault = Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]  # noqa: UP007
    FaultKind = Literal[FAULT_KINDS]

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
