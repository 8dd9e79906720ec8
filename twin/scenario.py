"""The scenario document: what happens to the system (duration, load, faults)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.distributions import Dist
from twin.io import DocProblem, load_model, register_union_tags
from twin.topology import Topology

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


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


class Sampling(_Doc):
    """Repeat a fault at random: gaps, durations and intensity scale drawn with a seed.

    Occurrences fall inside the fault's own window (``start`` .. ``start + duration``). The
    intensity draw multiplies the fault's intensity (probabilities are capped at 1).
    """

    interval: Dist = Field(description="seconds between the end of one occurrence and the next")
    duration: Dist = Field(description="seconds each occurrence lasts")
    intensity: Dist | None = Field(default=None, description="multiplier of the fault's intensity")
    seed: int | None = Field(default=None, description="default: the scenario seed")

    @model_validator(mode="after")
    def _advances(self) -> Sampling:
        if self.interval.expected() <= 0.0:
            raise ValueError("`interval` must have a positive mean, or occurrences never end")
        return self


class _Fault(_Doc):
    target: str = Field(description='a service, or "a->b" for edge faults')
    start: float = Field(default=0.0, ge=0.0, description="seconds")
    duration: float | None = Field(default=None, gt=0.0, description="seconds; default: to the end")
    sample: Sampling | None = None

    def intensity_field(self) -> str | None:
        """Name of the field that ``sample.intensity`` scales (None: no intensity)."""
        return None


class LatencyFault(_Fault):
    """Extra delay: at a service it holds the worker (not a core); on an edge, network time."""

    kind: Literal["latency"]
    delay: Dist

    def intensity_field(self) -> str:
        return "delay"


class ErrorRateFault(_Fault):
    """A service fails a fraction of requests after processing them (code-level exception)."""

    kind: Literal["error_rate"]
    probability: Fraction

    def intensity_field(self) -> str:
        return "probability"


class OutageFault(_Fault):
    """Replicas go down: in-flight and queued work fails with SERVICE_DOWN, new work finds none.

    ``target`` is a service, or ``host:NAME`` / ``zone:NAME`` for every service placed there.
    """

    kind: Literal["outage"]
    replicas: int | None = Field(default=None, ge=1, description="how many (default: all)")


class PacketLossFault(_Fault):
    """Calls on an edge (``a->b``) or into a service are lost with this probability."""

    kind: Literal["packet_loss"]
    probability: Fraction

    def intensity_field(self) -> str:
        return "probability"


class BandwidthFault(_Fault):
    """An edge's link carries at most ``bytes_per_second``; responses queue for it (FIFO)."""

    kind: Literal["bandwidth"]
    bytes_per_second: float = Field(gt=0.0)

    def intensity_field(self) -> str:
        return "bytes_per_second"


class CpuExhaustionFault(_Fault):
    """Processing takes ``factor`` times longer (a CPU hog on a service or ``host:NAME``)."""

    kind: Literal["cpu_exhaustion"]
    factor: float = Field(ge=1.0)

    def intensity_field(self) -> str:
        return "factor"


class MemoryLeakFault(_Fault):
    """Memory grows per replica; GC slows processing near the limit; at the limit: OOM kill.

    Processing slows by ``1 + gc_slowdown * (used / limit)^2``. A killed replica fails its
    in-flight work (SERVICE_DOWN), is down for ``restart_time`` and comes back with
    ``baseline_mb``; the leak continues while the fault lasts.
    """

    kind: Literal["memory_leak"]
    growth_mb_per_s: float = Field(gt=0.0)
    limit_mb: float = Field(default=512.0, gt=0.0)
    baseline_mb: float = Field(default=128.0, ge=0.0)
    restart_time: float = Field(default=10.0, ge=0.0, description="seconds")
    gc_slowdown: float = Field(default=1.0, ge=0.0)

    @model_validator(mode="after")
    def _below_limit(self) -> MemoryLeakFault:
        if self.baseline_mb >= self.limit_mb:
            raise ValueError(
                f"baseline_mb ({self.baseline_mb:g}) must be below limit_mb ({self.limit_mb:g})"
            )
        return self

    def intensity_field(self) -> str:
        return "growth_mb_per_s"


class PoolExhaustionFault(_Fault):
    """A fraction of each replica's workers is held by leaked connections/threads."""

    kind: Literal["pool_exhaustion"]
    fraction: Fraction = Field(description="share of workers unavailable")

    def intensity_field(self) -> str:
        return "fraction"


class DataCorruptionFault(_Fault):
    """Responses come back silently wrong; each consumer detects one with ``detection``.

    A detected corrupt response fails the call with CORRUPTED; an undetected one makes the
    consumer's own response corrupt, up to the entry, where it counts as a corrupted success.
    """

    kind: Literal["data_corruption"]
    probability: Fraction
    detection: Fraction = 0.5

    def intensity_field(self) -> str:
        return "probability"


class TrafficFault(_Fault):
    """An extra request class at an entry: a surge of users, or an attack.

    Surge requests are user requests and count in every figure; attack requests load the
    system (each costs ``cost`` times the normal processing) but are reported apart.
    """

    kind: Literal["traffic_surge", "attack"]
    rate: float = Field(gt=0.0, description="extra requests per second")
    cost: float = Field(default=1.0, gt=0.0, description="processing-time multiplier")

    def intensity_field(self) -> str:
        return "rate"


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
    | TrafficFault,
    Field(discriminator="kind"),
]

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
]
"""A fault kind, as documents that name one (campaigns) type it."""

FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
"""Every fault kind, in the order DESIGN.md lists them."""

register_union_tags(*FAULT_KINDS)

EDGE_KINDS = {"latency", "packet_loss", "bandwidth"}
SERVICE_KINDS = {
    "latency",
    "error_rate",
    "outage",
    "packet_loss",
    "cpu_exhaustion",
    "memory_leak",
    "pool_exhaustion",
    "data_corruption",
}
PLACEMENT_KINDS = {"outage", "cpu_exhaustion"}
ENTRY_KINDS = {"traffic_surge", "attack"}


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
            if f.kind in ENTRY_KINDS:
                try:
                    topology.resolve(t)
                except ValueError as exc:
                    raise DocProblem(loc, str(exc)) from None
                continue
            if "->" in t:
                if f.kind not in EDGE_KINDS:
                    raise DocProblem(loc, f"a {f.kind} fault targets a service, not an edge")
                a, _, b = t.partition("->")
                if (a, b) not in edges:
                    raise DocProblem(loc, f"no call {t!r} in the topology")
                continue
            if t.startswith(("host:", "zone:")):
                if f.kind not in PLACEMENT_KINDS:
                    raise DocProblem(loc, f"a {f.kind} fault targets a service or an edge")
                scope, _, name = t.partition(":")
                known = topology.hosts if scope == "host" else zones
                if name not in known:
                    raise DocProblem(loc, f"unknown {scope} {name!r}")
                continue
            if f.kind == "bandwidth":
                raise DocProblem(loc, 'a bandwidth fault targets an edge "a->b"')
            if t not in topology.services:
                raise DocProblem(loc, f"unknown service {t!r}")

    @classmethod
    def load_file(cls, path: str | Path) -> Scenario:
        """Read and check a scenario YAML file; problems raise a one-line InputError."""
        return load_model(cls, path)
