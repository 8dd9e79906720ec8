"""Call graph (+ optional metric figures) -> Topology, with a record of every choice made.

Rules, each chosen so the twin reproduces what was measured at the measured load:

- services and call edges are exactly the traces': nothing is added for untraced backends
  (their time is part of the caller's self time) and nothing observed is dropped (except a
  call that would close an operation-level cycle, which the twin cannot run; the result
  says so);
- one topology operation per operation that enters a service; calls in the order they
  were observed, ``probability`` = share of instances that make the call, ``count`` = calls
  per instance when made (rounded; probability adjusted so the mean is kept), ``parallel``
  when the call overlapped another in most instances;
- service times: the self-time fit per operation (:mod:`.service_time`); when metrics give a
  service demand (CPU seconds per request, the utilisation law), means are scaled to it;
- replicas: distinct instances seen (or the metrics' figure); workers: the most requests
  seen in their own processing at once on one replica (a lower bound on real concurrency;
  override when you know the runtime, e.g. 1 for a single-threaded event loop);
- network: per edge, the floor (10th percentile) of client minus server span time where
  both exist; the rest of the gap is waiting at the callee, which the twin models itself;
- workload: root spans per second over the observed window (first start to last end, long
  silences left out: :mod:`.timeline`), divided by the sampling rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from twin.bounds import safe_name
from twin.calibrate.asynchrony import apply_call_forms
from twin.calibrate.callgraph import CallGraph
from twin.calibrate.service_time import Fit, fit_service_time
from twin.distributions import Constant
from twin.errors import InputError
from twin.topology import Topology

NETWORK_QUANTILE = 0.1
"""Share of client-minus-server gaps below the network time taken for an edge."""


@dataclass
class BuildOptions:
    name: str = "calibrated"
    sampling: float = 1.0  # fraction of requests traced
    workers: dict[str, int] = field(default_factory=dict)  # per service; "*" for all
    replicas: dict[str, int] = field(default_factory=dict)  # e.g. from metrics
    demand: dict[str, float] = field(default_factory=dict)  # mean seconds per request
    rates: dict[str, float] = field(default_factory=dict)  # entry rps, e.g. from metrics
    alpha: float = 0.05
    # "floor": a link's latency is the 10th percentile of client-minus-server time (the rest
    # is taken as queueing at the callee, which the twin makes by itself); "full": the whole
    # fitted gap (for callers that wait outside the callee: client pools, throttling)
    network: str = "floor"
    description: str = ""
    source: str = ""


@dataclass
class Calibration:
    topology: Topology
    fits: dict[str, Fit]
    network_fits: dict[str, Fit]
    notes: list[str]
    record: dict[str, Any]


def _safe(name: str) -> str:
    """A valid document name for a service or operation name read from telemetry (names
    may not hold ':', '*' or '->': :data:`twin.bounds.NAME_RULE`)."""
    return safe_name(name)


def build_topology(graph: CallGraph, options: BuildOptions | None = None) -> Calibration:
    """The Topology the call graph describes; raises InputError only when nothing is usable."""
    opt = options or BuildOptions()
    if not graph.operations:
        raise InputError("no usable spans: nothing to calibrate from")
    if not 0.0 < opt.sampling <= 1.0:
        raise InputError(f"sampling must be in (0, 1], got {opt.sampling}")
    notes: list[str] = []
    fits: dict[str, Fit] = {}
    ops_by_service: dict[str, dict[str, Any]] = {}
    for (svc, op), st in sorted(graph.operations.items()):
        fit = fit_service_time(st.self_times, alpha=opt.alpha)
        fits[f"{svc}:{op}"] = fit
        if st.from_partial:
            notes.append(f"{svc}:{op}: timings from partial traces only ({st.used} instances)")
        ops_by_service.setdefault(svc, {})[op] = {"service_time": fit.dist, "calls": []}
    # demand from metrics: scale every operation of the service to the measured mean demand;
    # self time beyond the demand was spent in the service without holding a worker (an event
    # loop parsing and writing), so it does not queue: it becomes delay on the calls into it
    outside: dict[str, float] = {}
    for svc, demand in opt.demand.items():
        if svc not in ops_by_service or demand <= 0:
            continue
        rates = {op: graph.operations[(svc, op)].instances for op in ops_by_service[svc]}
        total = sum(rates.values()) or 1
        traced = (
            sum(rates[op] * fits[f"{svc}:{op}"].dist.expected() for op in ops_by_service[svc])
            / total
        )
        if traced > 0:
            scale = demand / traced
            for d in ops_by_service[svc].values():
                d["service_time"] = d["service_time"].scaled(scale)
            if traced > demand:
                outside[svc] = traced - demand
            notes.append(
                f"{svc}: service times scaled x{scale:.3g} to the utilisation-law demand "
                f"{demand * 1000:.3g} ms/request"
            )
    # calls, dropping any that would close a cycle of operations
    g: nx.DiGraph = nx.DiGraph()
    g.add_nodes_from(graph.operations)
    for (svc, op), st in sorted(graph.operations.items()):
        for c in st.calls:
            if c.probability <= 0.0:
                continue  # seen only in partial traces: an edge, but no rate to model
            if c.callee == (svc, op) or nx.has_path(g, c.callee, (svc, op)):
                notes.append(
                    f"{svc}:{op} -> {c.callee[0]}:{c.callee[1]}: dropped, it closes a cycle "
                    "of calls the twin cannot run"
                )
                continue
            g.add_edge((svc, op), c.callee)
            count = max(1, round(c.mean_count))
            prob = min(1.0, c.probability * c.mean_count / count)
            ops_by_service[svc][op]["calls"].append(
                {
                    "to": f"{_safe(c.callee[0])}:{_safe(c.callee[1])}",
                    "probability": round(prob, 6),
                    "count": count,
                    "parallel": c.parallel,
                }
            )
    # edges seen only in partial traces have no rate; keep them as rare calls so the
    # topology holds every observed edge
    modelled = {(a[0], b[0]) for a, b in g.edges}
    for a, b in sorted(graph.edges - modelled):
        cands = [
            (k, c)
            for k, st in graph.operations.items()
            if k[0] == a
            for c in st.calls
            if c.callee[0] == b
        ]
        if not cands:
            continue
        k, c = cands[0]
        if nx.has_path(g, c.callee, k):
            continue
        g.add_edge(k, c.callee)
        n_inst = max(graph.operations[k].instances, 1)
        ops_by_service[k[0]][k[1]]["calls"].append(
            {
                "to": f"{_safe(c.callee[0])}:{_safe(c.callee[1])}",
                "probability": min(1.0, c.calls / n_inst),
            }
        )
        notes.append(f"{a}->{b}: seen only in partial traces; modelled at its raw frequency")
    notes += apply_call_forms(ops_by_service, graph.forms, _safe)
    services: dict[str, Any] = {}
    for svc, ops in ops_by_service.items():
        stats = graph.services[svc]
        workers = opt.workers.get(svc, opt.workers.get("*", max(1, stats.peak_self_concurrency)))
        services[_safe(svc)] = {
            "replicas": opt.replicas.get(svc, max(1, len(stats.instances))),
            "workers": workers,
            "operations": {_safe(o): d for o, d in ops.items()},
        }
    links: dict[str, Any] = {}
    network_fits: dict[str, Fit] = {}
    for (a, b), samples in sorted(graph.network.items()):
        if (a, b) not in {(x[0], y[0]) for x, y in g.edges} or len(samples) == 0:
            continue
        fit = fit_service_time(samples, alpha=opt.alpha)
        network_fits[f"{a}->{b}"] = fit
        # client minus server time is the wire *plus* waiting at the callee before its span
        # starts (accept queue, event loop); the twin queues by itself, so only the floor of
        # the gap (its 10th percentile) is taken as network time
        floor = float(np.quantile(samples, NETWORK_QUANTILE)) + outside.get(b, 0.0)
        if opt.network == "full" and float(np.mean(samples)) > 0:
            links[f"{_safe(a)}->{_safe(b)}"] = {"latency": fit.dist}
        elif floor > 0:
            links[f"{_safe(a)}->{_safe(b)}"] = {"latency": Constant(mean=floor)}
    for a, b in sorted({(x[0], y[0]) for x, y in g.edges}):
        key = f"{_safe(a)}->{_safe(b)}"
        if b in outside and key not in links:
            links[key] = {"latency": Constant(mean=outside[b])}
    entry_rates = graph.entry_rates(opt.sampling)
    workload = []
    for (svc, op), rate in sorted(entry_rates.items()):
        r = opt.rates.get(f"{svc}:{op}", opt.rates.get(svc, rate))
        workload.append({"entry": f"{_safe(svc)}:{_safe(op)}", "rate": r})
    if not workload:
        called = {b for _, b in g.edges}
        w = max(graph.window, 1e-9)
        for k, st in sorted(graph.operations.items()):
            if k not in called:
                workload.append(
                    {
                        "entry": f"{_safe(k[0])}:{_safe(k[1])}",
                        "rate": st.instances / w / opt.sampling,
                    }
                )
        notes.append("no root spans: entries are the operations nobody calls")
    data = {
        "name": opt.name,
        "description": opt.description
        or "Calibrated from traces by `twin calibrate`: structure, call mix and self times as "
        "observed; see calibration.json for every fit and assumption.",
        "source": opt.source,
        "services": services,
        "network": {"links": links},
        "workload": workload,
    }
    topo = Topology.from_dict(_plain(data), source="calibration")
    record = {
        "callgraph": graph.to_dict(),
        "service_times": {k: f.to_dict() for k, f in fits.items()},
        "network": {k: f.to_dict() for k, f in network_fits.items()},
        "notes": notes,
    }
    return Calibration(topo, fits, network_fits, notes, record)


def _plain(x: Any) -> Any:
    """Distributions as plain dicts, so the topology is validated like a loaded file."""
    if hasattr(x, "model_dump"):
        return x.model_dump(mode="json", exclude_none=True)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x
