"""A seeded fault catalogue for RL episodes, with a fixed held-out set kept for evaluation.

Why a catalogue and not free sampling: a training draw must be checkable against the
held-out set, so every draw is a point on a finite grid (kind, target, start, duration,
intensity level) and training draws that land on a held-out point are redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.errors import InputError
from twin.scenario import Scenario
from twin.topology import Topology

KINDS: tuple[str, ...] = ("latency", "error_rate", "outage")
"""Fault kinds the catalogue draws (service-level faults a mitigation can act on)."""

STARTS: tuple[float, ...] = (10.0, 20.0, 30.0)
DURATIONS: tuple[float, ...] = (20.0, 40.0, 60.0)
LEVELS: dict[str, tuple[float, ...]] = {
    "latency": (0.1, 0.3, 1.0),  # added seconds per request
    "error_rate": (0.1, 0.3, 0.6),  # failure probability
    "outage": (1.0,),  # every replica down
}
HELD_OUT_SEED = 70_007
HELD_OUT_SIZE = 24


@dataclass(frozen=True)
class FaultSpec:
    """One fault: what, where, when (seconds from episode start), how hard."""

    kind: str
    target: str
    start: float
    duration: float
    intensity: float

    def as_fault(self) -> dict[str, Any]:
        """The twin's fault document for this spec."""
        base: dict[str, Any] = {
            "kind": self.kind,
            "target": self.target,
            "start": self.start,
            "duration": self.duration,
        }
        if self.kind == "latency":
            base["delay"] = {"dist": "constant", "mean": self.intensity}
        elif self.kind == "error_rate":
            base["probability"] = self.intensity
        return base


class FaultCatalogue:
    """Fault specs over one topology's services; ``held_out`` is fixed by HELD_OUT_SEED."""

    def __init__(self, topology: Topology, held_out_size: int = HELD_OUT_SIZE) -> None:
        self.targets = tuple(sorted(topology.services))
        if not self.targets:
            raise InputError("topology: services: the fault catalogue needs at least one service")
        rng = np.random.default_rng(HELD_OUT_SEED)
        held: list[FaultSpec] = []
        seen: set[FaultSpec] = set()
        while len(held) < held_out_size:
            spec = self._draw(rng)
            if spec not in seen:
                seen.add(spec)
                held.append(spec)
        self.held_out: tuple[FaultSpec, ...] = tuple(held)
        self._held = frozenset(held)

    def _draw(self, rng: np.random.Generator) -> FaultSpec:
        kind = KINDS[int(rng.integers(len(KINDS)))]
        levels = LEVELS[kind]
        return FaultSpec(
            kind=kind,
            target=self.targets[int(rng.integers(len(self.targets)))],
            start=STARTS[int(rng.integers(len(STARTS)))],
            duration=DURATIONS[int(rng.integers(len(DURATIONS)))],
            intensity=levels[int(rng.integers(len(levels)))],
        )

    def is_held_out(self, spec: FaultSpec) -> bool:
        return spec in self._held

    def sample_training(self, rng: np.random.Generator) -> FaultSpec:
        """A training draw; never a held-out spec (redrawn until it is not)."""
        while True:
            spec = self._draw(rng)
            if spec not in self._held:
                return spec


def scenario_for(spec: FaultSpec | None, duration: float, window: float, load: float) -> Scenario:
    """The twin scenario of one episode (seed is set by the caller)."""
    faults = [spec.as_fault()] if spec is not None else []
    return Scenario.model_validate(
        {
            "duration": duration,
            "window": window,
            "load": {"multiplier": load},
            "faults": faults,
        }
    )
