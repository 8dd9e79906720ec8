"""Graph-only availability: Monte Carlo over component failures, with no queues and no time.

Why it exists: a campaign takes minutes, this takes milliseconds. It answers the classic
reliability-block question, "if replicas, hosts and zones fail independently with these
probabilities, what fraction of requests can succeed?", from the topology alone. Set beside
the full simulation it shows what contention, timeouts and retries add to (or hide from) a
structural view: the simulation can only be worse than the graph when it is overloaded, and
only better when retries or failover mask a dead component.

Semantics: a service is up when at least one of its replicas is up and its host and zone are
up. A request to ``svc:op`` succeeds when the service is up and every required call succeeds;
a call made with probability ``p`` and ``count`` copies contributes ``1 - p + p * R^count``
where ``R`` is the callee's success probability times ``1 - loss`` of the link; optional calls
never fail the caller. Given one draw of component states this is the exact fraction of
requests that succeed, so the Monte Carlo error is only over component states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from twin.replicate import mean_ci
from twin.rng import generator, replication_seeds
from twin.topology import Topology

Availability = float | Mapping[str, float]
"""One probability for every component of a kind, or one per name (missing names: 1.0)."""


@dataclass(frozen=True)
class AvailabilityEstimate:
    """Mean availability over replications with its 95% interval, overall and per entry."""

    availability: float
    lo: float | None
    hi: float | None
    entries: dict[str, dict[str, float | None]] = field(default_factory=dict)
    trials: int = 0
    replications: int = 0
    seeds: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for summary.json."""
        return {
            "availability": self.availability,
            "lo": self.lo,
            "hi": self.hi,
            "entries": self.entries,
            "trials": self.trials,
            "replications": self.replications,
            "seeds": self.seeds,
        }


def _prob(spec: Availability, name: str, default: float = 1.0) -> float:
    if isinstance(spec, Mapping):
        return float(spec.get(name, default))
    return float(spec)


def _zone_of(topology: Topology, service: str) -> str | None:
    svc = topology.services[service]
    if svc.host is not None:
        return topology.hosts[svc.host].zone
    return svc.zone


def success_by_operation(
    topology: Topology, up: Mapping[str, np.ndarray | float]
) -> dict[str, np.ndarray]:
    """Success probability of a request to every ``svc:op``, given whether each service is up.

    ``up`` maps a service to a boolean/float array over trials (or a scalar); the result has the
    same shape. Operations are visited callees first, so each call reads a finished value.
    """
    graph = topology.operation_graph()
    out: dict[str, np.ndarray] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        svc, op_name = node.split(":", 1)
        value = np.asarray(up.get(svc, 1.0), dtype=float)
        for call in topology.services[svc].operations[op_name].calls:
            if call.optional:
                continue
            callee = ":".join(topology.resolve(call.to))
            loss = topology.link(svc, callee.split(":", 1)[0]).loss
            reach = out[callee] * (1.0 - loss)
            value = value * ((1.0 - call.probability) + call.probability * reach**call.count)
        out[node] = value
    return out


def _entry_success(topology: Topology, up: Mapping[str, np.ndarray | float]) -> dict[str, Any]:
    by_op = success_by_operation(topology, up)
    entries: dict[str, Any] = {}
    for w in topology.workload:
        entries[w.entry] = sum(by_op[node] * share for node, share in topology.entry_classes(w))
    return entries


def _overall(topology: Topology, entries: Mapping[str, Any]) -> Any:
    """Requests-weighted mean over entries (by their workload rates)."""
    total = sum(w.rate for w in topology.workload)
    return sum(entries[w.entry] * (w.rate / total) for w in topology.workload)


def structural(topology: Topology, down: set[str] | frozenset[str] = frozenset()) -> float:
    """Exact availability when the named services (or ``host:NAME`` / ``zone:NAME``) are down
    and every other component is up: what an outage scenario predicts with no queueing."""
    up: dict[str, float] = {}
    for name in topology.services:
        svc = topology.services[name]
        zone = _zone_of(topology, name)
        dead = (
            name in down
            or (svc.host is not None and f"host:{svc.host}" in down)
            or (zone is not None and f"zone:{zone}" in down)
        )
        up[name] = 0.0 if dead else 1.0
    return float(_overall(topology, _entry_success(topology, up)))


def estimate(
    topology: Topology,
    *,
    replica_availability: Availability = 0.999,
    host_availability: Availability = 1.0,
    zone_availability: Availability = 1.0,
    trials: int = 10_000,
    replications: int = 10,
    seed: int = 1,
) -> AvailabilityEstimate:
    """Monte Carlo availability with replications (seeds spawned from ``seed``, as the engine's
    replications are), so the interval says how much the estimate itself can be trusted."""
    if trials < 1 or replications < 1:
        raise ValueError("trials and replications must be at least 1")
    seeds = [seed] if replications == 1 else replication_seeds(seed, replications)
    overall: list[float] = []
    per_entry: dict[str, list[float]] = {w.entry: [] for w in topology.workload}
    hosts = sorted(topology.hosts)
    zones = sorted({z for z in (_zone_of(topology, s) for s in topology.services) if z is not None})
    for s in seeds:
        rng = generator(s, "availability")
        host_up = {h: rng.random(trials) < _prob(host_availability, h) for h in hosts}
        zone_up = {z: rng.random(trials) < _prob(zone_availability, z) for z in zones}
        up: dict[str, np.ndarray] = {}
        for name, svc in topology.services.items():
            a = _prob(replica_availability, name)
            alive: np.ndarray = np.asarray((rng.random((trials, svc.replicas)) < a).any(axis=1))
            if svc.host is not None:
                alive &= host_up[svc.host]
            zone = _zone_of(topology, name)
            if zone is not None:
                alive &= zone_up[zone]
            up[name] = alive
        entries = _entry_success(topology, up)
        for name, values in entries.items():
            per_entry[name].append(float(np.mean(values)))
        overall.append(float(np.mean(_overall(topology, entries))))
    ci = mean_ci(overall)
    mean = ci["mean"]
    assert mean is not None  # at least one replication ran
    return AvailabilityEstimate(
        availability=mean,
        lo=ci["lo"],
        hi=ci["hi"],
        entries={k: mean_ci(v) for k, v in per_entry.items()},
        trials=trials,
        replications=replications,
        seeds=seeds,
    )
