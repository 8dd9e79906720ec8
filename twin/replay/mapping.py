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

from twin.faults import KINDS, ErrorRateFault
from twin.topology import Topology

FitOn = Literal["response_time", "success"]
"""What a fitted magnitude is chosen to match: response times (log ratio of p50, p99 and the
mean) or the success ratio."""


@dataclass(frozen=True)
class Plan:
    """How the twin plays one observed fault: ``build(x)`` gives its fault documents (kind,
    target, intensity; the window is added by the run) for magnitude ``x``; ``value`` is the
    magnitude to use unless fitted (None: it must be fitted), ``grid`` the candidates a fit
    tries; ``fixed`` magnitudes are the data's own and never fitted."""

    kind: str
    what: str
    build: Callable[[float], list[dict[str, Any]]]
    value: float | None
    grid: tuple[float, ...]
    fit_on: FitOn
    fixed: bool = False


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
