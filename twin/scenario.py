"""The scenario document: what happens to the system (duration, load, faults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    at: float = Field(ge=0.0, description="seconds")
    multiplier: float = Field(ge=0.0)


class Load(_Doc):
    """A constant multiplier, or a piecewise-constant profile (steps sorted by ``at``)."""

    multiplier: float = Field(default=1.0, ge=0.0)
    profile: list[LoadStep] | None = None

    @model_validator(mode="after")
    def _sorted(self) -> Load:
        if self.profile is not None:
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

    duration: float = Field(default=600.0, gt=0.0, description="simulated seconds")
    warmup: float = Field(default=0.0, ge=0.0, description="seconds excluded from statistics")
    seed: int = Field(default=1, ge=0)
    window: float = Field(default=1.0, gt=0.0, description="seconds per time-series window")
    load: Load = Field(default_factory=Load)
    faults: list[Fault] = Field(default_factory=list)

    def cross_check(self) -> None:
        """Checks across fields; :meth:`check_against` needs the topology."""
        if self.warmup >= self.duration:
            raise DocProblem(
                ("warmup",),
                f"warmup ({self.warmup}) must be shorter than duration ({self.duration})",
            )

    def check_against(self, topology: Topology) -> None:
        """Every fault target must exist in the topology and suit the fault kind."""
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
                continue
            if not accepts.service:
                raise DocProblem(loc, f'a {f.kind} fault targets an edge "a->b"')
            if t not in topology.services:
                raise DocProblem(loc, f"unknown service {t!r}")

    @classmethod
    def load_file(cls, path: str | Path) -> Scenario:
        """Read and check a scenario YAML file; problems raise a one-line InputError."""
        return load_model(cls, path)
