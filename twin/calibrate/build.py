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
from twin.calibrate.callgraph import CallGraph, OpKey
from twin.calibrate.classes import RequestClass, split_classes
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
    network: str = "full"
    # split each entry operation into request classes by call signature (:mod:`.classes`)
    classes: bool = True
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
    counts = {k: st.instances for k, st in graph.operations.items()}
    classes = _entry_classes(graph, opt) if opt.classes else {}
    for (svc, op), found in classes.items():
        if graph.operations[(svc, op)].roots == graph.operations[(svc, op)].instances:
            del ops_by_service[svc][op]  # called by nobody: the classes replace it
        for rc in found:
            fit = fit_service_time(rc.self_times, alpha=opt.alpha)
            fits[f"{svc}:{rc.name}"] = fit
            ops_by_service[svc][rc.name] = {"service_time": fit.dist, "calls": []}
            counts[(svc, rc.name)] = round(rc.share * graph.operations[(svc, op)].roots)
        notes.append(
            f"{svc}:{op}: split into {len(found)} request classes by call signature: "
            + ", ".join(f"{rc.name} {rc.share:.1%}" for rc in found)
        )
    # demand from metrics: scale every operation of the service to the measured mean demand;
    # self time beyond the demand was spent in the service without holding a worker (an event
    # loop parsing and writing), so it does not queue: it becomes delay on the calls into it
    outside: dict[str, float] = {}
    for svc, demand in opt.demand.items():
        if svc not in ops_by_service or demand <= 0:
            continue
        rates = {op: counts[(svc, op)] for op in ops_by_service[svc]}
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
        if op not in ops_by_service[svc]:
            continue
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
    for (svc, _op), found in sorted(classes.items()):
        for rc in found:
            ops_by_service[svc][rc.name]["calls"] = _class_calls(
                g, (svc, rc.name), rc, opt, outside, notes
            )
    # edges seen only in partial traces have no rate; keep them as rare calls so the
    # topology holds every observed edge
    modelled = {(a[0], b[0]) for a, b in g.edges}
    for a, b in sorted(graph.edges - modelled):
        cands = [
            (k, c)
            for k, st in graph.operations.items()
            if k[0] == a and k[1] in ops_by_service[a]
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
    forms = dict(graph.forms)
    for (caller, callee), form in graph.forms.items():  # a split entry's classes call alike
        for rc in classes.get(caller, []):
            forms[((caller[0], rc.name), callee)] = form
    notes += apply_call_forms(ops_by_service, forms, _safe)
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
    mixed: dict[str, dict[str, float]] = {}  # service -> rate per class or operation
    split = {svc for svc, _ in classes}
    for (svc, op), rate in sorted(entry_rates.items()):
        r = opt.rates.get(f"{svc}:{op}", opt.rates.get(svc, rate))
        if svc not in split:
            workload.append({"entry": f"{_safe(svc)}:{_safe(op)}", "rate": r})
            continue
        parts = [(k.name, k.share) for k in classes.get((svc, op), [])] or [(_safe(op), 1.0)]
        for name, share in parts:
            mixed.setdefault(svc, {})[name] = mixed.get(svc, {}).get(name, 0.0) + r * share
    for svc, by_class in sorted(mixed.items()):
        arriving = float(sum(by_class.values()))
        workload.append(
            {
                "entry": _safe(svc),
                "rate": arriving,
                "mix": {k: round(v / arriving, 6) for k, v in by_class.items()},
            }
        )
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
        "classes": {
            f"{svc}:{op}": [c.to_dict() for c in found] for (svc, op), found in classes.items()
        },
        "notes": notes,
    }
    return Calibration(topo, fits, network_fits, notes, record)


def _entry_classes(graph: CallGraph, opt: BuildOptions) -> dict[OpKey, list[RequestClass]]:
    """The request classes of each root operation that has more than one."""
    out = {}
    for key, instances in sorted(graph.entry_instances.items()):
        found = split_classes(key, instances)
        if len(found) > 1:
            out[key] = found
    return out


def _class_calls(
    g: nx.DiGraph,
    node: tuple[str, str],
    rc: RequestClass,
    opt: BuildOptions,
    outside: dict[str, float],
    notes: list[str],
) -> list[dict[str, Any]]:
    """A class's calls: each called operation's mean count kept exactly (``count`` calls,
    and one more with the fractional rest as its probability), with the class's own network
    time on them. ``floor``: each call's is the 10th percentile of the class's gaps on that
    call. ``full``: a request's whole client-minus-server time on an edge is fitted and
    drawn once, on its first call there (sequential calls of one request to one service wait
    alike); calls made in parallel keep a per-call fit, as their waits overlap."""
    calls: list[dict[str, Any]] = []
    g.add_node(node)
    carried: set[str] = set()  # callee services whose per-request network time is placed
    overlapping = {c.callee[0] for c in rc.calls if c.parallel}  # their waits do not add up
    for c in rc.calls:
        if c.callee == node or (c.callee in g and nx.has_path(g, c.callee, node)):
            notes.append(
                f"{node[0]}:{node[1]} -> {c.callee[0]}:{c.callee[1]}: dropped, it closes a "
                "cycle of calls the twin cannot run"
            )
            continue
        g.add_edge(node, c.callee)
        latency: Any = None
        carries = False  # this call carries the request's whole time on its edge
        edge = rc.edge_gaps.get(c.callee[0], np.empty(0))
        if len(c.gaps) and opt.network == "full" and c.callee[0] in overlapping:
            latency = fit_service_time(c.gaps, alpha=opt.alpha).dist  # waits overlap
        elif len(c.gaps) and opt.network == "full":
            # the calls of one request to one service wait alike (one busy callee delays
            # them all): the request's whole time on the edge is drawn once, on its first
            # call there, and its other calls there add none
            if c.callee[0] in carried or float(np.mean(edge)) <= 0:
                latency = Constant(mean=0.0)
            else:
                latency = fit_service_time(edge, alpha=opt.alpha).dist
                carried.add(c.callee[0])
                carries = True
        elif len(c.gaps):
            floor = float(np.quantile(c.gaps, NETWORK_QUANTILE)) + outside.get(c.callee[0], 0.0)
            latency = Constant(mean=floor) if floor > 0 else None
        base = int(np.floor(c.mean_count + 1e-9))
        rest = c.mean_count - base
        to = f"{_safe(c.callee[0])}:{_safe(c.callee[1])}"
        parts = [(base, c.probability)] + ([(1, c.probability * rest)] if rest > 1e-6 else [])
        if carries and parts[0][0] > 1:  # the edge's time on the first call only
            parts = [(1, c.probability), (parts[0][0] - 1, c.probability), *parts[1:]]
        for j, (count, prob) in enumerate(parts):
            lat = latency if j == 0 or not carries else Constant(mean=0.0)
            call: dict[str, Any] = {
                "to": to,
                "probability": round(min(1.0, prob), 6),
                "count": count,
                "parallel": c.parallel,
            }
            if lat is not None:
                call["latency"] = lat
            calls.append(call)
    return calls


def _plain(x: Any) -> Any:
    """Distributions as plain dicts, so the topology is validated like a loaded file."""
    if hasattr(x, "model_dump"):
        return x.model_dump(mode="json", exclude_none=True)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x
