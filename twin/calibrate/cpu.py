"""CPU limits and CPU faults from what Kubernetes and its metrics say.

- Limits: each workload's ``resources.limits.cpu`` in its manifests (``200m`` -> 0.2 cores)
  becomes ``services.NAME.cpu_limit`` (:func:`cpu_limits_from_manifests`,
  :func:`with_cpu_limits`). A service the manifests do not limit keeps none.
- Faults: a CPU hog inside a pod takes a share of its quota. The utilisation law (CPU used
  = request rate x CPU per request) says how much: with the pod's CPU use ``U`` as a share
  of its limit, the service needs ``U_before / X_before`` of the limit per request; during
  the fault it served ``X_during`` requests, which needed ``X_during x U_before / X_before``
  of it, so the hog used the rest of what the pod used, ``U_during - X_during x U_before /
  X_before`` (:func:`hog_share`). When the hog pins the pod at its limit the service's
  throughput is its capacity, and the share is exactly what leaves it that capacity.
- The twin's service time need not be the CPU the metrics measure (traced self times hold
  waits, metrics count every thread's CPU); :func:`twin_quota_share` turns the measured
  share into the one that gives the twin the same capacity during the fault.
- Where no metrics exist, a CPU fault falls back to one fitted magnitude per fault type
  (``cpu_exhaustion`` ``factor``, or a ``latency`` delay, fitted on a first occurrence).

CPU quantities (``0.5``, ``200m``) are read with the one Kubernetes quantity parser,
:func:`twin.quantity.parse_quantity`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.calibrate.nezha import NezhaDay
from twin.errors import InputError
from twin.faults.cpu_exhaustion import MAX_QUOTA_SHARE
from twin.quantity import BINARY_SUFFIXES, parse_quantity
from twin.safeload import load_yaml_all, read_text
from twin.topology import Topology

WORKLOADS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
)
"""Kinds whose pod template (or own spec) holds containers with resources."""


def cpu_cores(value: Any) -> float | None:
    """A Kubernetes CPU quantity in cores (``"200m"`` -> 0.2, ``"1.5"`` or 1.5 -> 1.5), or
    None when it is not one (or not a positive, finite amount; binary suffixes such as
    ``Gi`` are memory's)."""
    if isinstance(value, str) and value.strip()[-2:] in BINARY_SUFFIXES:
        return None
    amount = parse_quantity(value)
    if amount is None or not amount.is_finite():
        return None
    cores = float(amount)
    return cores if math.isfinite(cores) and cores > 0 else None


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return None
    if doc.get("kind") == "Pod":
        return spec
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    return pod if isinstance(pod, dict) else None


def _container_limit(containers: Any, workload: str) -> float | None:
    """The CPU limit of the application container: the one named like its workload, else
    the first (sidecars are added after it)."""
    if not isinstance(containers, list) or not containers:
        return None
    named = [c for c in containers if isinstance(c, dict) and c.get("name") == workload]
    main = named[0] if named else containers[0]
    if not isinstance(main, dict):
        return None
    limits = (main.get("resources") or {}).get("limits") or {}
    return cpu_cores(limits.get("cpu")) if isinstance(limits, dict) else None


def cpu_limits_from_manifests(paths: Iterable[str | Path]) -> dict[str, float]:
    """Workload name -> CPU limit (cores per pod's application container) from manifest
    files or folders (multi-document YAML; ``*.yaml``/``*.yml`` in a folder, in name order).
    Workloads without a CPU limit are left out. A document that is not YAML is an
    :class:`InputError` naming the file."""
    out: dict[str, float] = {}
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".yaml", ".yml"))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("no such manifest file or folder", source=str(p))
    for f in files:
        for doc in load_yaml_all(read_text(f, "telemetry"), str(f)):
            if not isinstance(doc, dict) or doc.get("kind") not in WORKLOADS:
                continue
            name = (doc.get("metadata") or {}).get("name")
            pod = _pod_spec(doc)
            if not isinstance(name, str) or pod is None:
                continue
            limit = _container_limit(pod.get("containers"), name)
            if limit is not None:
                out[name] = limit
    return out


def with_cpu_limits(topology: Topology, limits: dict[str, float]) -> tuple[Topology, list[str]]:
    """The topology with each named service's ``cpu_limit`` set, and notes on what was not
    applied (a limit for no service of the topology, a service placed on a host)."""
    data = topology.to_dict()
    notes: list[str] = []
    for name, cores in sorted(limits.items()):
        svc = data["services"].get(name)
        if svc is None:
            notes.append(f"cpu limit of {name!r}: no such service in the topology")
        elif svc.get("host") is not None:
            notes.append(f"cpu limit of {name!r}: placed on a host, which shares its cores")
        else:
            svc["cpu_limit"] = cores
    return Topology.from_dict(data, source=f"<{topology.name} with cpu limits>"), notes


def cpu_demand(usage: float, rate: float, limit: float) -> float | None:
    """CPU-seconds per request by the utilisation law: ``usage`` (share of the limit) x
    ``limit`` (cores) / ``rate`` (requests/s); None without traffic or usage."""
    if not (rate > 0 and usage > 0 and limit > 0):
        return None
    return usage * limit / rate


def hog_share(
    usage_before: float, usage_during: float, rate_before: float, rate_during: float
) -> float | None:
    """The share of its CPU limit a hog in the pod took: what the pod used during the fault
    (``usage_during``, a share of the limit) less what its requests needed by the
    utilisation law (``rate_during x usage_before / rate_before``). Clipped to [0, the
    largest share a fault may take]; None when the usage before says nothing (no traffic or
    no CPU use measured)."""
    vals = (usage_before, usage_during, rate_before, rate_during)
    if not all(math.isfinite(v) for v in vals) or rate_before <= 0 or usage_before <= 0:
        return None
    share = usage_during - max(rate_during, 0.0) * usage_before / rate_before
    return float(min(MAX_QUOTA_SHARE, max(0.0, share)))


def twin_quota_share(share: float, measured_demand: float, twin_demand: float) -> float:
    """The quota share that gives the twin the capacity the measured share left: the real
    service keeps ``(1 - share) x limit / measured_demand`` requests/s; the twin, whose
    requests need ``twin_demand`` CPU-seconds, keeps as many with ``1 - (1 - share) x
    twin_demand / measured_demand`` (clipped to [0, the largest share])."""
    if not (measured_demand > 0 and twin_demand > 0):
        return share
    keep = (1.0 - share) * twin_demand / measured_demand
    return float(min(MAX_QUOTA_SHARE, max(0.0, 1.0 - keep)))


def twin_cpu_limit(limit: float, measured_demand: float, twin_demand: float) -> float:
    """The limit in the twin's units of work: the twin's requests need ``twin_demand``
    seconds of processing where the pod's metrics measure ``measured_demand`` CPU-seconds,
    so the limit that leaves the twin the pod's capacity (``limit / measured_demand``
    requests/s per replica) and its utilisation of the quota is ``limit x twin_demand /
    measured_demand``."""
    if not (measured_demand > 0 and twin_demand > 0):
        return limit
    return limit * twin_demand / measured_demand


def nezha_cpu_demands(
    day: NezhaDay, limits: dict[str, float], after_fault: float = 600.0
) -> dict[str, float]:
    """Per service with a limit, its CPU-seconds per request by the utilisation law (CPU
    use as a share of the limit x the limit / request rate), the median over the day's
    minutes outside the ``after_fault`` seconds that follow each fault's start."""
    quiet = np.ones(len(day.times), dtype=bool)
    for f in day.faults:
        quiet &= ~((day.times > f.timestamp) & (day.times <= f.timestamp + after_fault))
    out: dict[str, float] = {}
    for name, limit in limits.items():
        series = day.services.get(name)
        if series is None or "cpu" not in series or "rate" not in series:
            continue
        u, x = series["cpu"][quiet], series["rate"][quiet]
        ok = np.isfinite(u) & np.isfinite(x) & (x > 0) & (u > 0)
        if ok.any():
            out[name] = float(np.median(u[ok] * limit / x[ok]))
    return out


@dataclass(frozen=True)
class CpuFaultEstimate:
    """What a pod's CPU metrics say about a CPU fault on its service (shares of its limit,
    requests/s), and the hog's share of the quota (None: the metrics say nothing)."""

    service: str
    usage_before: float
    usage_during: float
    rate_before: float
    rate_during: float
    share: float | None

    @property
    def saturated(self) -> bool:
        """The pod used its whole limit during the fault (its throughput was its capacity)."""
        return self.usage_during >= 0.95


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


def nezha_cpu_fault(
    day: NezhaDay,
    service: str,
    start: float,
    seconds: float,
    before: float = 300.0,
    min_overlap: float = 40.0,
) -> CpuFaultEstimate | None:
    """The hog share of a CPU fault on ``service`` from ``start`` (Unix s) for ``seconds``,
    from a day of Nezha's layout (:func:`twin.calibrate.nezha.read_day`): the pod's CPU use
    (``cpu``, a share of its limit) and request rate (``rate``) averaged over the minutes
    ending in the ``before`` seconds before the fault, and over the minutes overlapping the
    fault by at least ``min_overlap`` seconds (a row summarises the minute ending at its
    time). None when the day has no metrics for the service."""
    series = day.services.get(service)
    if series is None or "cpu" not in series or "rate" not in series:
        return None
    t = day.times
    pre = (t > start - before) & (t <= start)
    lo = np.maximum(t - day.step, start)
    hi = np.minimum(t, start + seconds)
    during = (hi - lo) >= min_overlap
    ub, ud = _mean(series["cpu"][pre]), _mean(series["cpu"][during])
    xb, xd = _mean(series["rate"][pre]), _mean(series["rate"][during])
    return CpuFaultEstimate(service, ub, ud, xb, xd, hog_share(ub, ud, xb, xd))


__all__ = [
    "CpuFaultEstimate",
    "cpu_cores",
    "cpu_demand",
    "cpu_limits_from_manifests",
    "hog_share",
    "nezha_cpu_demands",
    "nezha_cpu_fault",
    "twin_cpu_limit",
    "twin_quota_share",
    "with_cpu_limits",
]
