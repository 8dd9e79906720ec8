"""``cpu_exhaustion``: less CPU for a service, in one of three forms.

- ``factor``: processing takes ``factor`` times longer (the one number a CPU fault can be
  given without knowing how the pod's CPU is limited; the fallback when no metrics say more).
- ``quota_share``: a hog inside each pod takes this share of every CFS period's quota, so
  the service keeps ``1 - quota_share`` of its CPU limit (``services.X.cpu_limit``). Its
  capacity falls by that share, and a request waits for the next period sooner.
- ``cores``: contention on the node takes this many of the host's cores from the services
  placed on it (a service on a host, or ``host:NAME``).

The intensity is the same unit for all three: the factor by which the fault divides the
capacity it hits, ``factor``, ``1 / (1 - quota_share)``, or ``cores / (cores - taken)`` (of
the host's cores). How a quota share is read from a pod's CPU metrics:
:func:`twin.calibrate.cpu.hog_share`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from twin.bounds import MAX_CORES, MAX_FACTOR, Factor, Finite, Int
from twin.faults.base import FluidEngine, Intensity, Picker, RequestEngine, SlowdownFault, Targets
from twin.topology import Topology

MAX_QUOTA_SHARE = 1.0 - 1.0 / MAX_FACTOR
"""The largest quota share a hog can take: what leaves the service ``1 / MAX_FACTOR`` of its
limit (a slow-down of ``MAX_FACTOR``, the largest any fault has)."""


class CpuExhaustionFault(SlowdownFault):
    """Less CPU: processing ``factor`` times longer, a hog taking ``quota_share`` of each
    period's CPU quota of the service's pods, or ``cores`` taken from a host (give one)."""

    kind: Literal["cpu_exhaustion"]
    factor: Factor = Field(default=1.0, description="processing slow-down (at least 1)")
    quota_share: Finite | None = Field(
        default=None,
        ge=0.0,
        le=MAX_QUOTA_SHARE,
        description="share (0-1) of every CFS period's quota a hog in each pod takes; the "
        "target service needs a cpu_limit",
    )
    cores: Int | None = Field(
        default=None,
        ge=1,
        le=MAX_CORES,
        description="cores of the host that contention takes (a service on a host, or host:NAME)",
    )

    label: ClassVar[str] = "CPU exhaustion"
    listing: ClassVar[int] = 60
    targets: ClassVar[Targets] = Targets(service=True, placement=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="slow-down factor of processing (at least 1)",
        field="factor",
        low=1.0,
        high=MAX_FACTOR,
        typical=3.0,
        sample=(1.5, 6.0),
        picker=Picker(
            "slow-down factor", 1.0, 10.0, 3.0, 0.5, "processing takes this many times longer"
        ),
    )
    symptoms: ClassVar[tuple[str, ...]] = ("cpu", "throttl", "noisy neighbo")
    symptom_rank: ClassVar[int] = 80
    incident_example: ClassVar[str] = "CPU throttling"
    chaos_words: ClassVar[tuple[str, ...]] = ("cpu",)
    chaos_rank: ClassVar[int] = 40
    fmea_detection: ClassVar[int] = 4
    in_default_sample: ClassVar[bool] = True
    agent_levels: ClassVar[tuple[float, ...]] = (2.0, 3.0, 4.0)  # processing-time factor
    agent_rank: ClassVar[int] = 2

    @model_validator(mode="after")
    def _one_form(self) -> CpuExhaustionFault:
        forms = [
            "factor" in self.model_fields_set,
            self.quota_share is not None,
            self.cores is not None,
        ]
        if sum(forms) != 1:
            raise ValueError("give one of factor, quota_share or cores")
        if self.quota_share is not None and self.target.startswith(("host:", "zone:")):
            raise ValueError("quota_share targets a service (a hog inside its pods)")
        if self.cores is not None and self.target.startswith("zone:"):
            raise ValueError("cores targets a host (host:NAME) or a service on one")
        return self

    # -- intensity: the capacity factor of every form ------------------------------------------

    def intensity_field(self) -> str | None:
        if self.quota_share is not None:
            return "quota_share"
        if self.cores is not None:
            return "cores"
        return "factor"

    def scaled(self, k: float) -> CpuExhaustionFault:
        """The fault ``k`` times as hard: the capacity factor times ``k`` (at least 1), as
        a share of the quota; a count of cores is multiplied (at least 1)."""
        if k == 1.0:
            return self
        if self.quota_share is not None:
            slow = min(MAX_FACTOR, max(1.0, k / (1.0 - self.quota_share)))
            return self.model_copy(update={"quota_share": 1.0 - 1.0 / slow})
        if self.cores is not None:
            return self.model_copy(update={"cores": max(1, min(MAX_CORES, round(self.cores * k)))})
        return super().scaled(k)  # type: ignore[return-value]

    def intensity_of(self, topology: Topology) -> float:
        if self.quota_share is not None:
            return 1.0 / (1.0 - self.quota_share)
        if self.cores is not None:
            total = _host_cores(topology, self.target)
            if total is None or self.cores >= total:
                return MAX_FACTOR
            return min(MAX_FACTOR, total / (total - self.cores))
        return float(self.factor)

    def problem_in(self, topology: Topology) -> tuple[str, str] | None:
        if self.quota_share is not None:
            svc = topology.services.get(self.target)
            if svc is not None and svc.cpu_limit is None:
                return "quota_share", f"service {self.target!r} has no cpu_limit to take from"
        if self.cores is not None and _host_cores(topology, self.target) is None:
            return "cores", f"{self.target!r} is not a host nor a service placed on one"
        return None

    # -- effects -------------------------------------------------------------------------------

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        if self.quota_share is not None:
            engine.steal_quota(self.target, self.quota_share)
        elif self.cores is not None:
            engine.steal_cores(self.target, self.cores)
        else:
            engine.slow(self.target, self.factor)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        if self.quota_share is not None:
            engine.steal_quota(self.target, self.quota_share)
        elif self.cores is not None:
            engine.steal_cores(self.target, self.cores)
        else:
            engine.slow(self.target, self.factor)


def _host_cores(topology: Topology, target: str) -> int | None:
    """Cores of the host a target names (``host:NAME``) or its service is placed on."""
    if target.startswith("host:"):
        host = topology.hosts.get(target[5:])
        return host.cores if host is not None else None
    svc = topology.services.get(target)
    if svc is None or svc.host is None:
        return None
    return topology.hosts[svc.host].cores
