"""The scenario document: what happens to the system (duration, load, faults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.bounds import (
    MAX_FAULTS,
    MAX_SEED,
    Multiplier,
    PeriodSeconds,
    PositiveSeconds,
    Seconds,
    Seed,
)
from twin.faults import (  # re-exported: documents name faults through the scenario
    FAULT_KINDS,
    KINDS,
    AttackFault,
    BandwidthFault,
    CpuExhaustionFault,
    DataCorruptionFault,
    ErrorRateFault,
    Fault,
    FaultKind,
    LatencyFault,
    MemoryLeakFault,
    OutageFault,
    PacketLossFault,
    PoolExhaustionFault,
    Sampling,
    TrafficFault,
    TrafficSurgeFault,
)
from twin.io import DocProblem, load_model
from twin.topology import Topology

__all__ = [
    "FAULT_KINDS",
    "KINDS",
    "AttackFault",
    "BandwidthFault",
    "CpuExhaustionFault",
    "DataCorruptionFault",
    "ErrorRateFault",
    "Fault",
    "FaultKind",
    "LatencyFault",
    "Load",
    "LoadStep",
    "MemoryLeakFault",
    "OutageFault",
    "PacketLossFault",
    "PoolExhaustionFault",
    "Sampling",
    "Scenario",
    "TrafficFault",
    "TrafficSurgeFault",
]


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoadStep(_Doc):
    """From ``at`` seconds on, every workload rate is multiplied by ``multiplier``."""

    at: Seconds = Field(description="seconds")
    multiplier: Multiplier = Field(description="times every workload rate")


class Load(_Doc):
    """A constant multiplier, or a piecewise-constant profile (steps sorted by ``at``).

    Give one or the other: with a profile the load is x1 until its first step, and a
    ``multiplier`` other than 1 beside it is refused (it would silently be ignored by one
    reading or the other).
    """

    multiplier: Multiplier = Field(default=1.0, description="times every workload rate")
    profile: list[LoadStep] | None = Field(default=None, max_length=MAX_FAULTS)

    @model_validator(mode="after")
    def _sorted(self) -> Load:
        if self.profile is not None:
            if self.multiplier != 1.0:
                raise ValueError(
                    "give `multiplier` or `profile`, not both (add a step at 0 for the load "
                    "before the profile's first step)"
                )
            ats = [s.at for s in self.profile]
            if ats != sorted(ats):
                raise ValueError("profile steps must be sorted by `at`")
        return self

    def steps(self) -> list[tuple[float, float]]:
        """(time, multiplier) pairs from time 0, for the workload generator."""
        if not self.profile:
            return [(0.0, self.multiplier)]
        out = [(s.at, s.multiplier) for s in self.profile]
        if out[0][0] > 0.0:
            out.insert(0, (0.0, self.multiplier))
        return out


class Scenario(_Doc):
    """How long to run, how much load, which faults; one seed makes it reproducible."""

    duration: PositiveSeconds = Field(default=600.0, description="simulated seconds")
    warmup: Seconds = Field(default=0.0, description="seconds excluded from statistics")
    seed: Seed = Field(default=1, description=f"0 to {MAX_SEED}")
    window: PeriodSeconds = Field(default=1.0, description="seconds per time-series window")
    load: Load = Field(default_factory=Load)
    faults: list[Fault] = Field(default_factory=list, max_length=MAX_FAULTS)

    def cross_check(self) -> None:
        """Checks across fields; :meth:`check_against` needs the topology.

        Warm-up ends before the run does, and every fault starts inside the run (one that
        starts at or after the end would silently never happen)."""
        if self.warmup >= self.duration:
            raise DocProblem(
                ("warmup",),
                f"warmup ({self.warmup}) must be shorter than duration ({self.duration})",
            )
        for i, f in enumerate(self.faults):
            if f.start >= self.duration:
                raise DocProblem(
                    ("faults", i, "start"),
                    f"the fault starts at {f.start:g} s, at or after the end of the run "
                    f"(duration {self.duration:g} s)",
                )

    def check_against(self, topology: Topology) -> None:
        """Every fault target must exist in the topology and suit the fault kind, and each
        kind's own checks against the topology hold (an outage takes down no more replicas
        than its target has)."""
        edges = topology.service_graph().edges
        zones = {h.zone for h in topology.hosts.values()} | {
            s.zone for s in topology.services.values()
        }
        for i, f in enumerate(self.faults):
            loc = ("faults", i, "target")
            t = f.target
            cls = KINDS[f.kind]
            accepts = cls.targets
            if cls.needs_disk and not topology.has_disk():
                raise DocProblem(
                    loc, f"a {f.kind} fault needs a disk: no disk_bandwidth in the topology"
                )
            if accepts.entry:
                try:
                    topology.resolve(t)
                except ValueError as exc:
                    raise DocProblem(loc, str(exc)) from None
                continue
            if "->" in t:
                if not accepts.edge:
                    raise DocProblem(loc, f"a {f.kind} fault targets a service, not an edge")
                a, _, b = t.partition("->")
                if (a, b) not in edges:
                    raise DocProblem(loc, f"no call {t!r} in the topology")
                continue
            if t.startswith(("host:", "zone:")):
                if not accepts.placement:
                    raise DocProblem(loc, f"a {f.kind} fault targets a service or an edge")
                scope, _, name = t.partition(":")
                known = topology.hosts if scope == "host" else zones
                if name not in known:
                    raise DocProblem(loc, f"unknown {scope} {name!r}")
                _check_fault(f, i, topology)
                continue
            if not accepts.service:
                raise DocProblem(loc, f'a {f.kind} fault targets an edge "a->b"')
            if t not in topology.services:
                raise DocProblem(loc, f"unknown service {t!r}")
            _check_fault(f, i, topology)

    @classmethod
    def load_file(cls, path: str | Path) -> Scenario:
        """Read and check a scenario YAML file; problems raise a one-line InputError."""
        return load_model(cls, path)


def _check_fault(fault: Fault, index: int, topology: Topology) -> None:
    problem = fault.problem_in(topology)
    if problem is not None:
        field, why = problem
        raise DocProblem(("faults", index, field), why)
