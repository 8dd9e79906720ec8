"""Span table -> call graph: who calls whom per operation, how often, in parallel or not, and
how long each operation works on its own.

Vocabulary. An *operation instance* is a span that enters a service: a root, or a span whose
parent is in another service (or missing). Spans below it in the same service (client spans,
database and cache calls to untraced backends, internal work) belong to that instance. A
*call* is an operation instance whose parent is in another service; its caller is the
instance that parent belongs to. When the parent is a client span that wraps only this call,
the call lasts as long as the client span, and client minus server duration is network time.

A call that reaches a replica whose workers are all busy with their own processing waits for
one, and where a server opens its span when a worker takes the request that wait is part of
the client-minus-server gap. When the operator gives a service's worker count, the time
between a call's send and its span's start during which every worker there was busy is taken
out of that call's gap: the twin queues for workers by itself.

*Self time* of an instance is its duration minus the union of its calls' intervals: the time
the service spent on the request itself (processing, untraced backends, and any queueing
inside the service). Timings come from complete traces; traces with a missing parent or
clock skew still witness call edges but add no timings (unless an operation appears only
there, which the result says).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.calibrate.asynchrony import CallForm, find_call_forms
from twin.calibrate.timeline import Window, observed_window

OpKey = tuple[str, str]


@dataclass
class CallStats:
    """One caller operation -> callee operation relation."""

    callee: OpKey
    probability: float  # share of caller instances that make the call at least once
    mean_count: float  # calls per caller instance that makes it
    parallel_share: float  # share of those instances where it overlaps another call
    order: float  # mean start rank among the instance's calls (sorts calls)
    calls: int  # total calls observed (all traces)
    errors: int

    @property
    def parallel(self) -> bool:
        return self.parallel_share > 0.5

    def to_dict(self) -> dict[str, Any]:
        return {
            "to": f"{self.callee[0]}:{self.callee[1]}",
            "probability": self.probability,
            "mean_count": self.mean_count,
            "parallel_share": self.parallel_share,
            "calls": self.calls,
            "errors": self.errors,
        }


@dataclass
class OperationStats:
    """Everything measured about one service operation."""

    service: str
    operation: str
    instances: int  # all traces
    used: int  # instances the timings below come from
    from_partial: bool  # timings had to come from partial traces
    durations: np.ndarray  # seconds, of the used instances
    self_times: np.ndarray  # seconds, of the used instances
    errors: int
    intrinsic_errors: int  # errors with no failed call underneath
    roots: int  # instances that are trace roots (entries)
    calls: list[CallStats] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.instances if self.instances else 0.0

    @property
    def intrinsic_error_rate(self) -> float:
        return self.intrinsic_errors / self.instances if self.instances else 0.0


@dataclass
class ServiceStats:
    name: str
    instances: list[str]  # replica names (pods, hosts)
    peak_concurrency: int  # most requests in progress at once on one replica
    peak_self_concurrency: int  # most requests in their own processing at once on one replica


@dataclass
class EntryCall:
    """One call an entry instance made: what it reached, when, and its network time."""

    callee: OpKey
    start: float  # seconds, of the client span when there is one, else the server span
    end: float
    error: bool
    gap: float | None  # client minus server seconds (None: no client span, or partial trace)


@dataclass
class EntryInstance:
    """One request as it entered the system (a root span's operation instance) with its
    direct calls: what :mod:`twin.calibrate.classes` splits entries into request classes by."""

    start: float
    end: float
    error: bool
    partial: bool  # its trace misses a parent or has clock skew
    calls: list[EntryCall]


@dataclass
class CallGraph:
    """The measured call graph; :mod:`twin.calibrate.build` turns it into a Topology."""

    services: dict[str, ServiceStats]
    operations: dict[OpKey, OperationStats]
    edges: set[tuple[str, str]]  # caller service -> callee service
    network: dict[tuple[str, str], np.ndarray]  # per service edge, seconds
    window: float  # seconds observed: first start to last end, long silences left out
    traces: int
    stretches: int = 1  # stretches of activity the window is made of (see .timeline)
    entry_instances: dict[OpKey, list[EntryInstance]] = field(default_factory=dict)
    forms: dict[tuple[OpKey, OpKey], CallForm] = field(default_factory=dict)  # .asynchrony

    def entry_rates(self, sampling: float = 1.0) -> dict[OpKey, float]:
        """Requests per second arriving at each root operation (traced / sampling)."""
        w = max(self.window, 1e-9)
        return {k: o.roots / w / sampling for k, o in self.operations.items() if o.roots}

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_seconds": self.window,
            "window_stretches": self.stretches,
            "traces": self.traces,
            "services": {
                n: {
                    "replicas": s.instances,
                    "peak_concurrency": s.peak_concurrency,
                    "peak_self_concurrency": s.peak_self_concurrency,
                }
                for n, s in sorted(self.services.items())
            },
            "edges": sorted(f"{a}->{b}" for a, b in self.edges),
            "operations": {
                f"{k[0]}:{k[1]}": {
                    "instances": o.instances,
                    "timed_instances": o.used,
                    "timings_from_partial_traces": o.from_partial,
                    "roots": o.roots,
                    "error_rate": o.error_rate,
                    "intrinsic_error_rate": o.intrinsic_error_rate,
                    "calls": [c.to_dict() for c in o.calls],
                }
                for k, o in sorted(self.operations.items())
            },
        }


def _union_length(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of the union of intervals clipped to [lo, hi]."""
    total = 0.0
    cur_s = cur_e = None
    for s, e in sorted(intervals):
        s, e = max(s, lo), min(e, hi)
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None and cur_s is not None:
        total += cur_e - cur_s
    return total


def _peak_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def _subtract(lo: float, hi: float, holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """[lo, hi] minus the holes: the stretches where an instance did its own work."""
    out = []
    cur = lo
    for s, e in sorted(holes):
        if s > cur:
            out.append((cur, min(s, hi)))
        cur = max(cur, e)
        if cur >= hi:
            break
    if cur < hi:
        out.append((cur, hi))
    return [(s, e) for s, e in out if e > s]


def call_stages(ordered: list[tuple[float, float]]) -> list[int]:
    """The stage of each call (intervals sorted by start): runs of calls that overlap in time
    share a stage; a call alone in its stage was made on its own."""
    stage_of = []
    stage = 0
    stage_end = -np.inf
    for s, e in ordered:
        if s >= stage_end:
            stage += 1
            stage_end = e
        else:
            stage_end = max(stage_end, e)
        stage_of.append(stage)
    return stage_of


def _full_periods(intervals: list[tuple[float, float]], workers: int) -> np.ndarray:
    """The stretches (rows of start, end; sorted, disjoint) when at least ``workers`` of the
    intervals were open at once: a replica with every worker busy."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    out: list[tuple[float, float]] = []
    cur = 0
    since = 0.0
    for t, d in events:
        before, cur = cur, cur + d
        if before < workers <= cur:
            since = t
        elif cur < workers <= before and t > since:
            out.append((since, t))
    return np.array(out, dtype=float).reshape(-1, 2)


def _worker_wait(full: np.ndarray, sent: float, began: float) -> float:
    """Seconds of [sent, began] (a call's send and the start of its span) during which every
    worker of the callee's replica was busy (``full``: :func:`_full_periods`): the part of the
    call's client-minus-server gap spent waiting for a worker."""
    lo = int(np.searchsorted(full[:, 1], sent, "right"))
    hi = int(np.searchsorted(full[:, 0], began, "left"))
    if hi <= lo:
        return 0.0
    seg = full[lo:hi]
    return float(
        np.sum(np.clip(np.minimum(seg[:, 1], began) - np.maximum(seg[:, 0], sent), 0, None))
    )


def capture_window(spans: pd.DataFrame) -> Window:
    """The observed time of a span table (``twin.calibrate.timeline.observed_window`` over its
    spans, the traces' starts setting the typical gap)."""
    return observed_window(
        spans["start"].to_numpy(dtype=float),
        spans["end"].to_numpy(dtype=float),
        spans.groupby("trace_id")["start"].min().to_numpy(),
    )


def build_callgraph(spans: pd.DataFrame, workers: Mapping[str, int] | None = None) -> CallGraph:
    """Derive the call graph from a tidy span table (:func:`twin.calibrate.traces.read_traces`).

    ``workers``: per service (``"*"`` for all) the worker count the operator knows; calls into
    such a service have their wait for a worker taken out of their network gap."""
    df = spans.reset_index(drop=True)
    n = len(df)
    if n == 0:
        return CallGraph({}, {}, set(), {}, 0.0, 0)
    svc = df["service"].to_numpy(dtype=object)
    op = df["operation"].to_numpy(dtype=object)
    start = df["start"].to_numpy(dtype=float)
    end = df["end"].to_numpy(dtype=float)
    err = df["error"].to_numpy(dtype=bool)
    kind = df["kind"].to_numpy(dtype=object)
    inst = df["instance"].to_numpy(dtype=object)
    partial = df["partial"].to_numpy(dtype=bool) if "partial" in df else np.zeros(n, dtype=bool)
    key = (df["trace_id"] + "/" + df["span_id"]).to_numpy(dtype=object)
    pkey = (df["trace_id"] + "/" + df["parent_id"]).to_numpy(dtype=object)
    index = {k: i for i, k in enumerate(key)}
    has_parent = (df["parent_id"] != "").to_numpy()
    parent = np.array(
        [index.get(pk, -1) if hp else -1 for pk, hp in zip(pkey, has_parent, strict=True)],
        dtype=np.int64,
    )
    is_root = ~has_parent
    same = np.zeros(n, dtype=bool)
    ok = parent >= 0
    same[ok] = svc[parent[ok]] == svc[ok]
    is_entry = ~same
    # the entry (operation instance) each span belongs to: follow same-service parents by
    # pointer jumping; a chain that never reaches an entry is a parent cycle (corrupt ids),
    # and each span in it becomes its own entry
    idx = np.arange(n)
    entry = np.where(is_entry, idx, parent)
    for _ in range(64):
        nxt = np.where(is_entry[entry], entry, entry[entry])
        if np.array_equal(nxt, entry):
            break
        entry = nxt
    stuck = ~is_entry[entry]
    is_entry[stuck] = True
    entry[stuck] = idx[stuck]
    children = Counter(parent[ok].tolist())
    forms = find_call_forms(df, parent, entry, is_entry & ok)
    # calls: entries whose parent exists (in another service)
    calls_of: dict[int, list[tuple[OpKey, float, float, bool]]] = defaultdict(list)
    edges: set[tuple[str, str]] = set()
    network: dict[tuple[str, str], list[float]] = defaultdict(list)
    gaps_of: dict[int, list[float | None]] = defaultdict(list)  # aligned with calls_of
    waits: list[tuple[tuple[str, str], int, int, int, int, int]] = []  # see below
    for i in np.where(is_entry & ok)[0]:
        p = int(parent[i])
        caller = int(entry[p])
        edges.add((str(svc[p]), str(svc[i])))
        client = p != caller and (kind[p] == "client" or children[p] == 1)
        if client:
            s, e = start[p], end[p]
            if not partial[i]:
                edge = (str(svc[p]), str(svc[i]))
                network[edge].append(max(0.0, (end[p] - start[p]) - (end[i] - start[i])))
                # where to take a wait for a worker out, once the callee's busy times are known
                waits.append((edge, len(network[edge]) - 1, caller, len(gaps_of[caller]), p, i))
        else:
            s, e = start[i], end[i]
        calls_of[caller].append(((str(svc[i]), str(op[i])), float(s), float(e), bool(err[i])))
        gap = (end[p] - start[p]) - (end[i] - start[i]) if client and not partial[i] else None
        gaps_of[caller].append(None if gap is None else max(0.0, float(gap)))

    # per instance: self time, stages; gathered per operation
    by_op: dict[OpKey, list[int]] = defaultdict(list)
    for i in np.where(is_entry)[0]:
        by_op[(str(svc[i]), str(op[i]))].append(int(i))
    operations: dict[OpKey, OperationStats] = {}
    self_intervals: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    req_intervals: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for k, members in by_op.items():
        complete = [i for i in members if not partial[i]]
        used = complete or members
        durations = np.array([end[i] - start[i] for i in used])
        selfs = np.empty(len(used))
        per_callee: dict[OpKey, dict[str, Any]] = defaultdict(
            lambda: {"made": 0, "count": 0, "par": 0, "rank": 0.0, "total": 0, "errors": 0}
        )
        intrinsic = 0
        for j, i in enumerate(used):
            cl = calls_of.get(i, [])
            selfs[j] = max(
                0.0,
                (end[i] - start[i])
                - _union_length([(s, e) for _, s, e, _ in cl], start[i], end[i]),
            )
            req_intervals[(str(svc[i]), str(inst[i]))].append((start[i], end[i]))
            self_intervals[(str(svc[i]), str(inst[i]))].extend(
                _subtract(start[i], end[i], [(s, e) for _, s, e, _ in cl])
            )
            if err[i] and not any(c[3] for c in cl):
                intrinsic += 1
            if not cl:
                continue
            ordered = sorted(cl, key=lambda c: c[1])
            stage_of = call_stages([(s, e) for _, s, e, _ in ordered])
            stage_size = Counter(stage_of)
            seen: dict[OpKey, dict[str, Any]] = {}
            for rank, ((callee, _, _, _), st) in enumerate(zip(ordered, stage_of, strict=True)):
                d = seen.setdefault(callee, {"count": 0, "par": False, "rank": rank})
                d["count"] += 1
                d["par"] = d["par"] or stage_size[st] > 1
            for callee, d in seen.items():
                agg = per_callee[callee]
                agg["made"] += 1
                agg["count"] += d["count"]
                agg["par"] += int(d["par"])
                agg["rank"] += d["rank"]
        # totals over all instances (edges exist whether or not the trace was complete)
        for i in members:
            for callee, _, _, e in calls_of.get(i, []):
                per_callee[callee]["total"] += 1
                per_callee[callee]["errors"] += int(e)
        call_stats = []
        for callee, agg in per_callee.items():
            made = agg["made"]
            call_stats.append(
                CallStats(
                    callee=callee,
                    probability=made / len(used) if made else 0.0,
                    mean_count=agg["count"] / made if made else 1.0,
                    parallel_share=agg["par"] / made if made else 0.0,
                    order=agg["rank"] / made if made else float("inf"),
                    calls=agg["total"],
                    errors=agg["errors"],
                )
            )
        call_stats.sort(key=lambda c: (c.order, c.callee))
        operations[k] = OperationStats(
            service=k[0],
            operation=k[1],
            instances=len(members),
            used=len(used),
            from_partial=not complete,
            durations=durations,
            self_times=selfs,
            errors=int(sum(err[i] for i in members)),
            intrinsic_errors=intrinsic,
            roots=int(sum(is_root[i] for i in members)),
            calls=call_stats,
        )
    known = dict(workers or {})
    full_at: dict[tuple[str, str], np.ndarray] = {}
    for edge, at, caller, g, p, i in waits:
        n_workers = known.get(edge[1], known.get("*"))
        if n_workers is None:
            continue
        where = (edge[1], str(inst[i]))
        if where not in full_at:
            full_at[where] = _full_periods(self_intervals[where], n_workers)
        wait = _worker_wait(full_at[where], float(start[p]), float(start[i]))
        if wait > 0.0:
            network[edge][at] = max(0.0, network[edge][at] - wait)
            gap = gaps_of[caller][g]
            gaps_of[caller][g] = None if gap is None else max(0.0, gap - wait)
    services: dict[str, ServiceStats] = {}
    for name in sorted(set(svc.tolist())):
        names = sorted({str(x) for x, s in zip(inst, svc, strict=True) if s == name})
        services[name] = ServiceStats(
            name=name,
            instances=names,
            peak_concurrency=max(
                (_peak_overlap(req_intervals[(name, r)]) for r in names), default=1
            ),
            peak_self_concurrency=max(
                (_peak_overlap(self_intervals[(name, r)]) for r in names), default=1
            ),
        )
    window = capture_window(df)
    roots: dict[OpKey, list[EntryInstance]] = defaultdict(list)
    for i in np.where(is_entry & is_root)[0]:
        calls = [
            EntryCall(callee, s, e, er, gap)
            for (callee, s, e, er), gap in zip(
                calls_of.get(int(i), []), gaps_of.get(int(i), []), strict=True
            )
        ]
        roots[(str(svc[i]), str(op[i]))].append(
            EntryInstance(float(start[i]), float(end[i]), bool(err[i]), bool(partial[i]), calls)
        )
    return CallGraph(
        services=services,
        operations=operations,
        edges=edges,
        network={k: np.array(v) for k, v in network.items()},
        window=window.seconds,
        traces=int(df["trace_id"].nunique()),
        stretches=window.stretches,
        entry_instances=dict(roots),
        forms=forms,
    )
