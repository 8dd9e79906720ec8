"""Large synthetic call graphs shaped like published production microservice traces.

Shape (what the generator reproduces, and where it comes from):

- Roles: about 13% of microservices are entries, 39% leaves and 48% in the middle of call
  graphs (Winchester et al., "Complexity at Scale: A Quantitative Analysis of an Alibaba
  Microservice Deployment", 2025, Table 1, on Alibaba's 2022 trace).
- Call graphs grow like trees, shallow and wide, and their size is heavy-tailed; a few
  services (stateful backends, hot shared services) are called by very many others
  (Luo et al., "Characterizing Microservice Dependency and Performance: Alibaba Trace
  Analysis", SoCC 2021). Here: middle services sit on levels 1-4 (geometric, most on level 1),
  fan-out is Zipf-distributed (mostly 1-3 callees, rarely up to 10), callees are picked with
  Pareto popularity weights so in-degree is long-tailed, and a share of leaves are
  databases and caches.
- Load: entry rates follow Zipf shares (a few entries carry most traffic, "share of
  workload" is long-tailed in the same analysis). Replicas are sized so that no service's
  offered utilisation exceeds ``max_utilization``.

Deterministic from ``seed``: one ``numpy.random.Generator`` is passed down, no global state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twin.bounds import MAX_RATE
from twin.errors import InputError
from twin.topology import Topology

ENTRY_SHARE, LEAF_SHARE = 0.13, 0.39
MAX_LEVEL = 4
MAX_FANOUT = 10
MAX_SERVICES = 100_000
"""Most services a synthetic topology has: ten times the largest the benchmarks use."""


def generate(
    services: int, *, seed: int, total_rate: float = 200.0, max_utilization: float = 0.6
) -> Topology:
    """A valid, acyclic topology of ``services`` services (2 to :data:`MAX_SERVICES`), with
    ``total_rate`` requests/s over its entries (at most :data:`twin.bounds.MAX_RATE` each) and
    no service's offered utilisation above ``max_utilization`` (in (0, 1])."""
    if not 2 <= services <= MAX_SERVICES:
        raise InputError(f"a synthetic topology has 2 to {MAX_SERVICES} services, not {services}")
    if not (math.isfinite(total_rate) and 0.0 < total_rate <= MAX_RATE):
        raise InputError(f"total_rate: expected requests/s in (0, {MAX_RATE:g}], got {total_rate}")
    if not 0.0 < max_utilization <= 1.0:
        raise InputError(f"max_utilization: expected a share in (0, 1], got {max_utilization}")
    rng = np.random.default_rng(seed)
    n_entry = max(1, round(ENTRY_SHARE * services))
    n_leaf = max(1, round(LEAF_SHARE * services))
    n_mid = max(0, services - n_entry - n_leaf)
    names: list[str] = []
    level: dict[str, int] = {}
    kind: dict[str, str] = {}
    for i in range(n_entry):
        name = f"entry-{i:05d}"
        names.append(name)
        level[name], kind[name] = 0, "entry"
    for i in range(n_mid):
        name = f"svc-{i:05d}"
        names.append(name)
        level[name] = min(MAX_LEVEL, int(rng.geometric(0.55)))
        kind[name] = "middle"
    for i in range(n_leaf):
        role = "db" if rng.random() < 0.3 else "leaf"
        name = f"{role}-{i:05d}"
        names.append(name)
        level[name], kind[name] = MAX_LEVEL + 1, role
    popularity = {n: float(rng.pareto(1.2) + 1.0) for n in names}
    calls: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    called: set[str] = set()
    by_level: dict[int, list[str]] = {}
    for n in names:
        by_level.setdefault(level[n], []).append(n)
    deeper_of: dict[int, tuple[list[str], np.ndarray]] = {}
    for lv in range(MAX_LEVEL + 1):
        deeper = [n for d in range(lv + 1, MAX_LEVEL + 2) for n in by_level.get(d, [])]
        w = np.array([popularity[n] for n in deeper])
        deeper_of[lv] = (deeper, w / w.sum() if len(w) else w)
    for caller in names:
        if kind[caller] in ("leaf", "db"):
            continue
        deeper, weights = deeper_of[level[caller]]
        if not deeper:
            continue
        fanout = min(int(rng.zipf(2.2)), MAX_FANOUT, len(deeper))
        picks = rng.choice(len(deeper), size=fanout, replace=False, p=weights)
        for j in sorted(picks.tolist()):
            callee = deeper[j]
            p = 1.0 if kind[caller] == "entry" else round(float(rng.uniform(0.3, 1.0)), 3)
            calls[caller].append(
                {"to": callee, "probability": p, "parallel": bool(rng.random() < 0.3)}
            )
            called.add(callee)
    # every non-entry service is reachable: attach orphans under a random shallower caller
    callers = [c for c in names if kind[c] in ("entry", "middle")]
    for n in names:
        if kind[n] == "entry" or n in called:
            continue
        shallower = [c for c in callers if level[c] < level[n]]
        caller = shallower[int(rng.integers(len(shallower)))]
        calls[caller].append({"to": n, "probability": round(float(rng.uniform(0.3, 1.0)), 3)})
        called.add(n)
    shares = 1.0 / np.arange(1, n_entry + 1) ** 1.1
    rng.shuffle(shares)
    shares = shares / shares.sum()
    workload = [
        {"entry": names[i], "rate": round(float(total_rate * shares[i]), 6) or 1e-6}
        for i in range(n_entry)
    ]
    svc_docs: dict[str, Any] = {}
    for n in names:
        if kind[n] == "db":
            mean = float(rng.uniform(0.0005, 0.003))
        elif kind[n] == "leaf":
            mean = float(rng.uniform(0.0002, 0.002))
        else:
            mean = float(rng.uniform(0.001, 0.008))
        svc_docs[n] = {
            "workers": 4,
            "blocking": kind[n] != "db" and bool(rng.random() < 0.3),
            "operations": {
                "default": {
                    "service_time": {"dist": "lognormal", "mean": round(mean, 6), "cv": 1.0},
                    "calls": calls[n],
                }
            },
        }
    doc: dict[str, Any] = {
        "name": f"synthetic-{services}-seed{seed}",
        "description": "Synthetic call graph shaped like Alibaba's production traces "
        "(see twin/synthetic.py for the figures and sources).",
        "source": "generated by twin.synthetic.generate @ this repository",
        "services": svc_docs,
        "network": {"latency": {"dist": "lognormal", "mean": 0.0003, "cv": 0.5}},
        "workload": workload,
        "slo": {"latency_p99": 0.5, "availability": 0.999},
    }
    topo = Topology.from_dict(doc, source="synthetic")
    # size replicas so no service's offered utilisation exceeds the bound
    for name, data in topo.service_graph().nodes(data=True):
        util_one = data["utilization"] * svc_docs[name].get("replicas", 1)
        svc_docs[name]["replicas"] = max(1, math.ceil(util_one / max_utilization))
    return Topology.from_dict(doc, source="synthetic")


def depth_profile(topology: Topology) -> dict[str, float]:
    """Depth and fan-out figures of a topology, to compare with the published shape."""
    import networkx as nx

    g = topology.service_graph()
    entries = {w.service for w in topology.workload}
    depths = []
    for e in entries:
        lengths = nx.single_source_shortest_path_length(g, e)
        depths.append(max(lengths.values()))
    outdeg = [d for _, d in g.out_degree() if d > 0]
    indeg = sorted((d for _, d in g.in_degree()), reverse=True)
    return {
        "max_depth": float(max(depths)),
        "median_depth": float(np.median(depths)),
        "mean_fanout": float(np.mean(outdeg)) if outdeg else 0.0,
        "max_fanout": float(max(outdeg)) if outdeg else 0.0,
        "top1pct_in_degree_share": float(
            sum(indeg[: max(1, len(indeg) // 100)]) / max(1, sum(indeg))
        ),
    }
