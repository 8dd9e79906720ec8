"""A seeded fault catalogue for RL episodes, with a fixed held-out set kept for evaluation.

Why a catalogue and not free sampling: a training draw must be checkable against the
held-out set, so every draw is a point on a finite grid (kind, target, start, duration,
intensity level) and training draws that land on a held-out point are redrawn.

Why these kinds: the catalogue draws the faults some mitigation in the action space can act
on: demand faults at the entry (a user surge, an attack) and
resource faults in a service (a CPU hog, a memory leak), which extra replicas absorb while
they last; transient errors, which retries absorb; slow and dead dependencies, which
timeouts and breakers bound. Intensities are the sizes operators report: user surges of
+1x to +2x the nominal entry rate (flash crowds, a campaign), attacks of +1x to +3x (a
scraper or a small L7 flood), CPU hogs that make work 2-4x slower (a noisy neighbour, a
runaway thread), leaks that reach a 512 MB limit in 12-48 s from 128 MB.

Which faults, how often: uniform over kinds and targets by default; with ``weights`` (from
the Bayesian risk report, :func:`weights_from_risk`) training draws follow the posterior
rates of the failure modes it names, so an agent trains on the faults this system has.
The held-out set does not change with the weights: evaluations stay comparable.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import InputError
from twin.faults import KINDS as FAULT_CLASSES
from twin.safeload import loads_json, read_text
from twin.scenario import Scenario
from twin.topology import Topology


def catalogue_kinds(topology: Topology | None = None) -> tuple[str, ...]:
    """Kinds the catalogue draws, in catalogue order (its draws depend on it): every kind with
    ``agent_levels``; a kind that needs a disk only for a topology that has disk bandwidth."""
    disk = topology is not None and topology.has_disk()
    chosen = [c for c in FAULT_CLASSES.values() if c.agent_levels and (disk or not c.needs_disk)]
    return tuple(c.name for c in sorted(chosen, key=lambda c: c.agent_rank))


KINDS: tuple[str, ...] = catalogue_kinds()
"""Fault kinds the catalogue draws on a topology without disks (faults some mitigation in the
action space acts on)."""

ENTRY_KINDS = frozenset(k for k, c in FAULT_CLASSES.items() if c.targets.entry)
"""Kinds that target the topology's entry service rather than a drawn service."""

STARTS: tuple[float, ...] = (10.0, 20.0, 30.0)
DURATIONS: tuple[float, ...] = (20.0, 40.0, 60.0)
LEVELS: dict[str, tuple[float, ...]] = {
    k: c.agent_levels for k, c in FAULT_CLASSES.items() if c.agent_levels
}
"""Intensity levels per kind, in the kind's unit (its class's ``agent_levels``)."""
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

    def as_fault(self, entry_rate: float = 1.0) -> dict[str, Any]:
        """The twin's fault document for this spec; ``entry_rate`` (requests/s) is what a
        surge or attack intensity multiplies (the scenario's load already applied)."""
        base: dict[str, Any] = {
            "kind": self.kind,
            "target": self.target,
            "start": self.start,
            "duration": self.duration,
        }
        doc = FAULT_CLASSES[self.kind].document(self.target, self.intensity, entry_rate=entry_rate)
        base.update(doc)
        return base


def weights_from_risk(path: Path, topology: Topology) -> dict[tuple[str, str], float]:
    """(kind, service) -> posterior mean rate per day, from ``twin risk``'s ``risk.json``.

    Failure modes of kinds the catalogue does not draw, or of services the topology does not
    have, are left out. Only the posterior mean is used: risk.json keeps summaries, not
    draws.
    """
    where = str(path)
    try:
        doc = loads_json(read_text(path, "telemetry"), where, "telemetry")
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not a JSON document: {exc}") from None
    modes = doc.get("failure_modes") if isinstance(doc, dict) else None
    if not isinstance(modes, list):
        raise InputError(f"{where}: failure_modes: expected the list of a risk.json")
    kinds = catalogue_kinds(topology)
    out: dict[tuple[str, str], float] = {}
    for i, m in enumerate(modes):
        at = f"{where}: failure_modes[{i}]"
        if not isinstance(m, dict):
            raise InputError(f"{at}: expected a failure mode (a mapping)")
        svc, kind = m.get("service"), m.get("fault_kind")
        if not isinstance(svc, str) or not isinstance(kind, str):
            raise InputError(f"{at}: expected a string service and fault_kind")
        rate = m.get("rate_per_day")
        mean = rate.get("mean") if isinstance(rate, dict) else None
        if (
            isinstance(mean, bool)
            or not isinstance(mean, (int, float))
            or not math.isfinite(mean)
            or mean < 0
        ):
            raise InputError(f"{at}.rate_per_day.mean: expected a number >= 0, got {mean!r}")
        if kind in kinds and kind not in ENTRY_KINDS and svc in topology.services:
            out[(kind, svc)] = out.get((kind, svc), 0.0) + float(mean)
    if not any(out.values()):
        raise InputError(
            f"{where}: no failure mode with a rate above 0 names a service of topology "
            f"{topology.name!r} and a kind the catalogue draws ({', '.join(kinds)})"
        )
    return out


class FaultCatalogue:
    """Fault specs over one topology's services; ``held_out`` is fixed by HELD_OUT_SEED.

    ``weights``: (kind, target) -> relative rate of the training draws. Kinds the weights do
    not mention keep the uniform catalogue's share (an equal share per kind drawn, targets
    alike); the kinds they mention (a rate of 0 included) share the rest in proportion to
    their rates.
    """

    def __init__(
        self,
        topology: Topology,
        held_out_size: int = HELD_OUT_SIZE,
        weights: Mapping[tuple[str, str], float] | None = None,
    ) -> None:
        self.targets = tuple(sorted(topology.services))
        if not self.targets:
            raise InputError("topology: services: the fault catalogue needs at least one service")
        if not topology.workload:
            raise InputError("topology: workload: the fault catalogue needs an entry")
        self.entry = topology.workload[0].entry
        self.kinds = catalogue_kinds(topology)
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
        self.training: dict[tuple[str, str], float] | None = (
            None if weights is None else self._training_distribution(weights)
        )
        if self.training is not None:
            # a (kind, target) whose every grid point is held out cannot be drawn: left out,
            # so a redraw loop always ends
            n_held = Counter((h.kind, h.target) for h in self.held_out)
            full = {
                key
                for key, n in n_held.items()
                if n == len(STARTS) * len(DURATIONS) * len(LEVELS[key[0]])
            }
            self._points = [k for k, w in self.training.items() if w > 0 and k not in full]
            if not self._points:
                raise InputError("fault weights: every fault they weight is in the held-out set")
            p = np.array([self.training[k] for k in self._points])
            self._p = p / p.sum()

    def _training_distribution(
        self, weights: Mapping[tuple[str, str], float]
    ) -> dict[tuple[str, str], float]:
        """P(kind, target) of a training draw (see the class docstring)."""
        kinds = self.kinds
        covered = {k for k, _ in weights if k in kinds}  # named, even with a rate of 0
        known: dict[tuple[str, str], float] = {}
        for (k, t), w in weights.items():
            target = self.entry if k in ENTRY_KINDS else t
            if k in covered and w > 0 and target in (*self.targets, self.entry):
                known[(k, target)] = known.get((k, target), 0.0) + w
        total = sum(known.values())
        if not total:
            raise InputError("fault weights: no kind of the catalogue has a rate above 0")
        out: dict[tuple[str, str], float] = {}
        for kind in kinds:
            if kind in covered:
                continue
            targets = (self.entry,) if kind in ENTRY_KINDS else self.targets
            for t in targets:
                out[(kind, t)] = 1.0 / len(kinds) / len(targets)
        share = len(covered) / len(kinds)
        for key, w in sorted(known.items()):
            out[key] = share * w / total
        return out

    def _draw(self, rng: np.random.Generator) -> FaultSpec:
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        target = self.targets[int(rng.integers(len(self.targets)))]
        return _on_grid(kind, self.entry if kind in ENTRY_KINDS else target, rng)

    def is_held_out(self, spec: FaultSpec) -> bool:
        return spec in self._held

    def _draw_weighted(self, rng: np.random.Generator) -> FaultSpec:
        kind, target = self._points[int(rng.choice(len(self._points), p=self._p))]
        return _on_grid(kind, target, rng)

    def sample_training(self, rng: np.random.Generator) -> FaultSpec:
        """A training draw; never a held-out spec (redrawn until it is not)."""
        draw = self._draw if self.training is None else self._draw_weighted
        while True:
            spec = draw(rng)
            if spec not in self._held:
                return spec


def _on_grid(kind: str, target: str, rng: np.random.Generator) -> FaultSpec:
    """Start, duration and intensity drawn from the catalogue's grid, in that order."""
    levels = LEVELS[kind]
    return FaultSpec(
        kind=kind,
        target=target,
        start=STARTS[int(rng.integers(len(STARTS)))],
        duration=DURATIONS[int(rng.integers(len(DURATIONS)))],
        intensity=levels[int(rng.integers(len(levels)))],
    )


def scenario_for(
    spec: FaultSpec | None,
    duration: float,
    window: float,
    load: float,
    entry_rate: float = 1.0,
) -> Scenario:
    """The twin scenario of one episode (seed is set by the caller); ``entry_rate`` is the
    topology's nominal entry rate (requests/s), scaled here by ``load`` like the workload."""
    faults = [spec.as_fault(entry_rate * load)] if spec is not None else []
    return Scenario.model_validate(
        {
            "duration": duration,
            "window": window,
            "load": {"multiplier": load},
            "faults": faults,
        }
    )
