"""From an observed fault to the twin's fault documents: a :class:`Plan` per fault, or the
reason it cannot be mapped.

A plan is the twin's faults as a function of one number (a delay, a share of requests, a
probability): formats whose fault lists give no magnitude fit that number on the first fault
of each type (``--fit first``); those that give one use it as it is. Kinds are named through
the fault classes (:data:`twin.faults.KINDS`), never as strings of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from twin.calibrate.cpu import cpu_demand, twin_cpu_limit
from twin.faults import KINDS, ErrorRateFault
from twin.faults.cpu_exhaustion import MAX_QUOTA_SHARE, CpuExhaustionFault
from twin.sim.budget import CallGraph
from twin.topology import Topology

FitOn = Literal["response_time", "success"]
"""What a fitted magnitude is chosen to match: response times (log ratio of p50, p99 and the
mean) or the success ratio."""


@dataclass(frozen=True)
class Plan:
    """How the twin plays one observed fault: ``build(x)`` gives its fault documents (kind,
    target, intensity; the window is added by the run) for magnitude ``x``; ``value`` is the
    magnitude to use unless fitted (None: it must be fitted), ``grid`` the candidates a fit
    tries; ``fixed`` magnitudes are the data's own and never fitted; ``adjust`` changes the
    topology the fault plays on (the state the data say the target was in)."""

    kind: str
    what: str
    build: Callable[[float], list[dict[str, Any]]]
    value: float | None
    grid: tuple[float, ...]
    fit_on: FitOn
    fixed: bool = False
    adjust: Callable[[Topology], Topology] | None = None
    """The topology the fault plays on, from the one at the observed load (None: as it is):
    e.g. the faulted service's CPU limit in the twin's units of work."""


def kind_grid(kind: str, points: int = 12) -> tuple[float, ...]:
    """Candidate intensities of a kind: its sampling range (the range a seeded campaign draws
    from), on a log scale where the kind says so, widened by 2 at the top."""
    iv = KINDS[kind].intensity
    lo, hi = iv.sample
    hi = min(2.0 * hi, iv.high) if iv.high is not None else 2.0 * hi
    if iv.sample_log and lo > 0:
        xs = np.geomspace(lo, hi, points)
    else:
        xs = np.linspace(lo, hi, points)
    return tuple(float(f"{x:.3g}") for x in xs)


def fit_on_for(kind: str) -> FitOn:
    """Probability kinds that fail requests are fitted on success; the rest on latency."""
    return "success" if kind == ErrorRateFault.name else "response_time"


def by_kind(
    kind: str, target: str, topology: Topology, value: float | None, grid: tuple[float, ...] = ()
) -> Plan | str:
    """A plan that is one fault of ``kind`` at ``target`` (the kind's own intensity field), or
    why not: an unknown kind or a target the topology does not have."""
    cls = KINDS.get(kind)
    if cls is None:
        return f"unknown fault kind {kind!r} (known: {', '.join(sorted(KINDS))})"
    problem = target_problem(target, topology)
    if problem:
        return problem
    if cls.intensity.field is None and value is None:
        value = 1.0

    def build(x: float) -> list[dict[str, Any]]:
        return [cls.document(target, x, topology)]

    return Plan(
        kind=kind,
        what=f"{kind} {target}",
        build=build,
        value=value,
        grid=grid or kind_grid(kind),
        fit_on=fit_on_for(kind),
        fixed=value is not None,
    )


def target_problem(target: str, topology: Topology) -> str | None:
    """Why ``target`` is not a service or call edge of ``topology`` (None: it is)."""
    if "->" in target:
        a, _, b = target.partition("->")
        if (a, b) not in set(topology.service_graph().edges):
            return f"no call edge {target} in the topology"
        return None
    if target not in topology.services:
        return f"no service {target!r} in the topology"
    return None


def edges_into(service: str, topology: Topology) -> list[str]:
    """Every call edge into ``service``, as ``a->b`` targets."""
    return [f"{a}->{b}" for a, b in topology.service_graph().in_edges(service)]


def entry_services(topology: Topology) -> set[str]:
    """The services the workload's entries arrive at."""
    return {w.entry.split(":")[0] for w in topology.workload}


HOG_THREADS: tuple[float, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 20, 24, 32)
"""Candidate numbers of a CPU hog's busy threads (a CPU fault's magnitude when fitted)."""

MAX_CPU_USE = 0.95
"""The highest CPU use (share of the limit) a pod is taken to have had before a fault: a
limit read at a use of 1 would leave the twin no headroom at all before the fault."""


def work_per_request(topology: Topology) -> dict[str, float]:
    """Each service's mean processing time per request it receives (seconds of the twin's
    work), its operations weighted by the rates the workload sends them; services the
    workload never reaches are left out."""
    graph = CallGraph(topology)
    rates = graph.spread(graph.at_entries({w.entry: w.rate for w in topology.workload}))
    work: dict[str, float] = {}
    reach: dict[str, float] = {}
    for node, rate in rates.items():
        svc = graph.service_of[node]
        work[svc] = work.get(svc, 0.0) + rate * graph.mean_time[node]
        reach[svc] = reach.get(svc, 0.0) + rate
    return {s: work[s] / reach[s] for s in work if reach[s] > 0 and work[s] > 0}


def quota_limit(service: str, topology: Topology, rate: float, cpu: float) -> float | None:
    """The CPU limit (cores per replica, in the twin's units of work) that gives ``service``
    the capacity its pods had: ``rate`` requests/s at ``cpu`` of their limit is a capacity of
    ``rate / cpu`` per pod (the utilisation law), the twin's requests there need its own
    processing time. The topology's own ``cpu_limit`` where it has one; None where the data
    cannot say (no traffic, no CPU use, a service the workload never reaches)."""
    svc = topology.services[service]
    if svc.cpu_limit is not None:
        return svc.cpu_limit
    work = work_per_request(topology).get(service)
    if work is None or not (rate > 0 and cpu > 0):
        return None
    per_pod = rate / svc.replicas
    demand = cpu_demand(min(cpu, MAX_CPU_USE), per_pod, 1.0)
    return None if demand is None else twin_cpu_limit(1.0, demand, work)


def hog_share(threads: float, workers: int) -> float:
    """The share of a pod's CPU quota a hog of ``threads`` always-busy threads takes from a
    service whose ``workers`` are all busy: the kernel shares a container's CPU fairly among
    its runnable threads, so the hog gets ``threads / (threads + workers)`` of it. A service
    with few workers loses more of its quota to the same hog than one with many."""
    return min(MAX_QUOTA_SHARE, threads / (threads + workers))


def cpu_hog(service: str, topology: Topology, rate: float, cpu: float) -> Plan | None:
    """A CPU fault as a hog of busy threads (the magnitude) inside the service's pods: it
    takes :func:`hog_share` of every period's CPU quota, at the limit :func:`quota_limit`
    gives. A hog's threads are a property of the fault, not of the pod, so a number fitted at
    one service carries to another through that service's own CPU use (a pod near its limit
    loses its capacity, a nearly idle one almost nothing) and its workers. None where no
    limit can be had."""
    limit = quota_limit(service, topology, rate, cpu)
    if limit is None:
        return None
    kind = CpuExhaustionFault.name
    workers = topology.services[service].workers

    def build(x: float) -> list[dict[str, Any]]:
        return [{"kind": kind, "target": service, "quota_share": hog_share(x, workers)}]

    def adjust(t: Topology) -> Topology:
        if t.services[service].cpu_limit == limit:
            return t
        svc = t.services[service].model_copy(update={"cpu_limit": limit})
        return t.model_copy(update={"services": {**t.services, service: svc}})

    return Plan(
        kind=kind,
        what=f"{kind} {service} (hog threads against {workers} worker(s); limit "
        f"{limit:.3g} cores of twin work)",
        build=build,
        value=None,
        grid=HOG_THREADS,
        fit_on="response_time",
        adjust=adjust,
    )
