"""Request classes: an entry operation split by what each request calls.

One entry operation often serves several kinds of request (a web front end's single handler
serves every page). Drawing each downstream call independently from the operation's average
mix makes requests no real user sends: half a product page and half a checkout. Real
requests are bundles, so calibration splits the entry by *call signature* and the twin draws
a whole bundle per request (:attr:`twin.topology.WorkloadEntry.mix`).

The method, for the requests that enter at one root operation (complete traces only):

1. **Signature.** A request's signature is the multiset of operations its entry instance
   calls directly: which downstream operations, and how many times each. It goes one level
   deep on purpose: what the callees do in turn is theirs to vary (a callee operation is
   shared by every class that calls it, with its own calls and times), and deeper levels
   would split one kind of request by, say, a cache hit below it.
2. **Classes.** Requests whose signatures call the same *set* of operations form one class:
   the set says what kind of request it is; the multiplicities vary with the request's data
   (the items in a cart) and are kept as the class's mean calls per request.
3. **Rare signatures merge.** A set held by fewer than :data:`MIN_CLASS_SHARE` of the
   requests (or fewer than :data:`MIN_CLASS_REQUESTS` requests) is not a class of its own:
   its requests join the class nearest by signature distance (the L1 distance between mean
   calls per request to each operation, 0 for an operation not called), ties to the larger.
4. **Per class:** its share of the entry's requests, its self times (duration minus the
   union of its calls' intervals), and per called operation the share of its requests that
   make the call, the mean count when made, whether the calls overlap (parallel), their
   order, and their client-minus-server times (the class's own network time on that call).
5. **Names** come from the signature: the entry operation followed by the fewest called
   operations that tell the class apart, rarest across classes first, e.g.
   ``Recv.[GetAds+GetProduct]``; ``[no calls]`` for requests that call nothing.

An entry with one class stays one operation (no mix).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.bounds import MAX_NAME_LENGTH, safe_name
from twin.calibrate.callgraph import EntryInstance, OpKey, _union_length, call_stages

MIN_CLASS_SHARE = 0.01
"""Share of an entry's requests below which a call set merges into the nearest class."""
MIN_CLASS_REQUESTS = 5
"""Requests below which a call set merges into the nearest class, whatever its share."""

Signature = tuple[tuple[OpKey, int], ...]


@dataclass
class ClassCall:
    """Calls from one request class to one downstream operation."""

    callee: OpKey
    probability: float  # share of the class's requests that make the call
    mean_count: float  # calls per request that makes it
    parallel: bool  # overlapped another call in most requests that made it
    order: float  # mean start rank among the request's calls
    gaps: np.ndarray  # client-minus-server seconds of these calls (network + waiting)

    def to_dict(self) -> dict[str, Any]:
        return {
            "to": f"{self.callee[0]}:{self.callee[1]}",
            "probability": self.probability,
            "mean_count": self.mean_count,
            "parallel": self.parallel,
            "network_samples": len(self.gaps),
            "network_mean_seconds": float(self.gaps.mean()) if len(self.gaps) else None,
        }


@dataclass
class RequestClass:
    """One kind of request at an entry operation."""

    name: str
    call_set: tuple[OpKey, ...]  # the operations that define it, sorted
    requests: int  # complete requests in the class, merged ones included
    share: float  # of the entry's complete requests
    durations: np.ndarray  # seconds
    self_times: np.ndarray  # seconds
    calls: list[ClassCall]
    signatures: dict[str, int] = field(default_factory=dict)  # signature text -> requests
    # callee service -> per request, the sum of its calls' client-minus-server seconds there
    edge_gaps: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "call_set": [f"{s}:{o}" for s, o in self.call_set],
            "requests": self.requests,
            "share": self.share,
            "duration_mean_seconds": float(self.durations.mean()),
            "duration_p50_seconds": float(np.quantile(self.durations, 0.5)),
            "self_time_mean_seconds": float(self.self_times.mean()),
            "calls": [c.to_dict() for c in self.calls],
            "signatures": self.signatures,
        }


def signature(inst: EntryInstance) -> Signature:
    """The multiset of operations a request's entry instance calls directly."""
    return tuple(sorted(Counter(c.callee for c in inst.calls).items()))


def short(op: OpKey) -> str:
    """The readable tail of an operation name: ``hipstershop.CartService/GetCart`` ->
    ``GetCart``, ``GET /api/items`` -> ``GET /api/items``."""
    name = op[1]
    tail = name.rsplit("/", 1)[-1] if "/" in name and " " not in name else name
    return tail or name or op[0]


def _text(sig: Signature) -> str:
    return ", ".join(f"{k[0]}/{short(k)} x{n}" for k, n in sig) or "no calls"


def _labels(ops: set[OpKey]) -> dict[OpKey, str]:
    """Each operation's short name, qualified by its service where two would read alike."""
    tails = Counter(short(op) for op in ops)
    return {op: short(op) if tails[short(op)] == 1 else f"{op[0]}.{short(op)}" for op in ops}


def _mean_counts(members: list[EntryInstance]) -> dict[OpKey, float]:
    total: Counter[OpKey] = Counter()
    for inst in members:
        total.update(c.callee for c in inst.calls)
    return {k: v / len(members) for k, v in total.items()}


def _distance(a: dict[OpKey, float], b: dict[OpKey, float]) -> float:
    return sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def split_classes(
    entry: OpKey,
    instances: list[EntryInstance],
    *,
    min_share: float = MIN_CLASS_SHARE,
    min_requests: int = MIN_CLASS_REQUESTS,
) -> list[RequestClass]:
    """The request classes of one entry operation, largest first (see the module docstring).

    Timings and shares come from complete traces (all instances when none is complete).
    """
    used = [i for i in instances if not i.partial] or list(instances)
    if not used:
        return []
    groups: dict[tuple[OpKey, ...], list[EntryInstance]] = defaultdict(list)
    sigs: dict[tuple[OpKey, ...], Counter[str]] = defaultdict(Counter)
    for inst in used:
        sig = signature(inst)
        key = tuple(k for k, _ in sig)
        groups[key].append(inst)
        sigs[key][_text(sig)] += 1
    ranked = sorted(groups, key=lambda k: (-len(groups[k]), k))
    floor = max(min_requests, min_share * len(used))
    keep = [k for k in ranked if len(groups[k]) >= floor] or ranked[:1]
    means = {k: _mean_counts(groups[k]) for k in keep}
    for k in ranked:
        if k in means:
            continue
        own = _mean_counts(groups[k])
        target = min(keep, key=lambda c: (_distance(own, means[c]), -len(groups[c]), c))
        groups[target].extend(groups.pop(k))
        sigs[target].update(sigs.pop(k))
    names = _names(entry, keep, means)
    out = []
    for k in keep:
        members = groups[k]
        out.append(
            RequestClass(
                name=names[k],
                call_set=k,
                requests=len(members),
                share=len(members) / len(used),
                durations=np.array([i.end - i.start for i in members]),
                self_times=np.array([_self_time(i) for i in members]),
                calls=_class_calls(members),
                signatures=dict(sigs[k].most_common()),
                edge_gaps=_edge_gaps(members),
            )
        )
    out.sort(key=lambda c: (-c.requests, c.name))
    return out


def _self_time(inst: EntryInstance) -> float:
    busy = _union_length([(c.start, c.end) for c in inst.calls], inst.start, inst.end)
    return max(0.0, (inst.end - inst.start) - busy)


def _edge_gaps(members: list[EntryInstance]) -> dict[str, np.ndarray]:
    """Per callee service, each request's total client-minus-server time on that edge (the
    requests with at least one timed call there)."""
    out: defaultdict[str, list[float]] = defaultdict(list)
    for inst in members:
        total: defaultdict[str, float] = defaultdict(float)
        for c in inst.calls:
            if c.gap is not None:
                total[c.callee[0]] += c.gap
        for svc, v in total.items():
            out[svc].append(v)
    return {k: np.array(v, dtype=float) for k, v in sorted(out.items())}


def _class_calls(members: list[EntryInstance]) -> list[ClassCall]:
    made: Counter[OpKey] = Counter()
    count: Counter[OpKey] = Counter()
    par: Counter[OpKey] = Counter()
    rank: defaultdict[OpKey, float] = defaultdict(float)
    gaps: defaultdict[OpKey, list[float]] = defaultdict(list)
    for inst in members:
        ordered = sorted(inst.calls, key=lambda c: c.start)
        stage_of = call_stages([(c.start, c.end) for c in ordered])
        size = Counter(stage_of)
        seen: dict[OpKey, tuple[int, bool]] = {}
        for r, (c, st) in enumerate(zip(ordered, stage_of, strict=True)):
            first, p = seen.get(c.callee, (r, False))
            seen[c.callee] = (first, p or size[st] > 1)
            count[c.callee] += 1
            if c.gap is not None:
                gaps[c.callee].append(c.gap)
        for callee, (first, p) in seen.items():
            made[callee] += 1
            par[callee] += int(p)
            rank[callee] += first
    calls = [
        ClassCall(
            callee=k,
            probability=made[k] / len(members),
            mean_count=count[k] / made[k],
            parallel=par[k] / made[k] > 0.5,
            order=rank[k] / made[k],
            gaps=np.array(gaps[k], dtype=float),
        )
        for k in made
    ]
    calls.sort(key=lambda c: (c.order, c.callee))
    return calls


def _names(
    entry: OpKey, keys: list[tuple[OpKey, ...]], counts: dict[tuple[OpKey, ...], dict[OpKey, float]]
) -> dict[tuple[OpKey, ...], str]:
    """Readable, unique names: the entry operation and the fewest called operations that
    tell the class apart, chosen greedily (the one that leaves the fewest other classes
    calling everything chosen; ties to the most calls per request, then the rarest)."""
    seen_in: Counter[OpKey] = Counter(op for k in keys for op in k)
    label_of = _labels(set(seen_in))
    out: dict[tuple[OpKey, ...], str] = {}
    used: set[str] = set()
    for k in keys:
        chosen: set[OpKey] = set()
        others = [set(o) for o in keys if o != k]
        left = [o for o in others if chosen <= o]
        while left and len(chosen) < len(k):
            op = min(
                (op for op in k if op not in chosen),
                key=lambda op: (
                    sum(op in o for o in left),
                    -counts[k].get(op, 0.0),
                    seen_in[op],
                    label_of[op],
                ),
            )
            chosen.add(op)
            left = [o for o in left if op in o]
        label = "+".join(sorted(label_of[op] for op in chosen)) if k else "no calls"
        base = safe_name(f"{entry[1]}[{label}]")
        name, n = base, 2
        while name in used:
            suffix = f" {n}"
            name = safe_name(base[: MAX_NAME_LENGTH - len(suffix)] + suffix)
            n += 1
        used.add(name)
        out[k] = name
    return out


__all__ = [
    "MIN_CLASS_REQUESTS",
    "MIN_CLASS_SHARE",
    "ClassCall",
    "RequestClass",
    "signature",
    "split_classes",
]
