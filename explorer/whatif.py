"""The what-if computation: the page's pickers become a scenario and a policy, and the twin
runs twice over the same window and seed, unmitigated (no policy) and mitigated.

Nothing here imports Streamlit: the page wraps :func:`compute_whatif` in ``st.cache_data``,
and ``benchmarks/whatif.py`` times the very same function.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import BaseModel

from twin.io import parse_model
from twin.outcomes import REASONS
from twin.policy import Policy
from twin.results import Summary
from twin.scenario import EDGE_KINDS, ENTRY_KINDS, FAULT_KINDS, PLACEMENT_KINDS, Scenario
from twin.sim import Simulation
from twin.topology import Topology

Progress = Callable[[float, str], None]
"""Called with the fraction done (0..1) and what is running."""

DEFAULT_DURATION = 60.0


@dataclass(frozen=True)
class Intensity:
    """How one fault kind's strength is picked on the page (one slider)."""

    label: str
    low: float
    high: float
    default: float
    step: float
    help: str


INTENSITY: dict[str, Intensity] = {
    "latency": Intensity(
        "added delay (s)",
        0.01,
        5.0,
        0.5,
        0.01,
        "every request (or call on an edge) waits this long",
    ),
    "error_rate": Intensity(
        "error probability", 0.01, 1.0, 0.3, 0.01, "share of requests that fail with ERROR"
    ),
    "outage": Intensity(
        "share of replicas down", 0.1, 1.0, 1.0, 0.1, "1.0 takes every replica of the target down"
    ),
    "packet_loss": Intensity(
        "loss probability", 0.01, 1.0, 0.2, 0.01, "share of calls lost (NETWORK_LOSS)"
    ),
    "bandwidth": Intensity(
        "link bandwidth (KiB/s)", 10.0, 10_000.0, 200.0, 10.0, "responses queue for the link"
    ),
    "cpu_exhaustion": Intensity(
        "slow-down factor", 1.0, 10.0, 3.0, 0.5, "processing takes this many times longer"
    ),
    "memory_leak": Intensity(
        "leak (MB/s)", 1.0, 100.0, 20.0, 1.0, "512 MB limit from 128 MB: OOM kill, 10 s restart"
    ),
    "pool_exhaustion": Intensity(
        "share of workers leaked", 0.05, 1.0, 0.75, 0.05, "workers held by leaked connections"
    ),
    "data_corruption": Intensity(
        "corruption probability", 0.01, 1.0, 0.2, 0.01, "each consumer detects one with p 0.5"
    ),
    "traffic_surge": Intensity(
        "extra traffic (x entry rate)", 0.1, 10.0, 1.0, 0.1, "extra user requests at the entry"
    ),
    "attack": Intensity(
        "attack traffic (x entry rate)", 0.1, 10.0, 2.0, 0.1, "reported apart from user figures"
    ),
}

FAULT_LABELS: dict[str, str] = {
    "latency": "latency (slow service or link)",
    "error_rate": "error rate (exceptions)",
    "outage": "outage (replicas down)",
    "packet_loss": "packet loss",
    "bandwidth": "bandwidth limit (link)",
    "cpu_exhaustion": "CPU exhaustion",
    "memory_leak": "memory leak (OOM kills)",
    "pool_exhaustion": "connection-pool exhaustion",
    "data_corruption": "data corruption",
    "traffic_surge": "traffic surge",
    "attack": "attack traffic",
}


@dataclass(frozen=True)
class FaultChoice:
    """One fault as picked on the page; ``intensity`` is in the unit of :data:`INTENSITY`."""

    kind: str
    target: str
    start: float
    duration: float
    intensity: float


@dataclass(frozen=True)
class Mitigations:
    """The page's mitigation controls; ``None`` means that control is off."""

    timeout: float | None = 0.5
    retries: int | None = None
    retry_budget: float | None = 0.2
    breaker_failure_rate: float | None = None
    breaker_open_for: float = 5.0
    queue_limit: int | None = None
    autoscale_max: int | None = None
    autoscale_target: float = 0.6
    autoscale_boot: float = 10.0
    scope: str = "*"  # where queue limits and autoscaling apply: "*" or a service


@dataclass(frozen=True)
class WhatIfInputs:
    load: float = 1.0
    duration: float = DEFAULT_DURATION
    seed: int = 1
    fault: FaultChoice | None = None


# -- choices the page offers ---------------------------------------------------------------


def entries(topology: Topology) -> list[str]:
    seen: list[str] = []
    for w in topology.workload:
        if w.entry not in seen:
            seen.append(w.entry)
    return seen


def targets(topology: Topology, kind: str) -> list[str]:
    """What a fault of this kind may target in this topology, most interesting first."""
    if kind in ENTRY_KINDS:
        return entries(topology)
    g = topology.service_graph()
    by_load = sorted(g.nodes, key=lambda n: -float(g.nodes[n].get("utilization", 0.0)))
    edges = sorted((f"{a}->{b}" for a, b in g.edges), key=lambda e: -_edge_rate(g, e))
    if kind == "bandwidth":
        return edges
    out = list(by_load)
    if kind in EDGE_KINDS:
        out += edges
    if kind in PLACEMENT_KINDS:
        out += [f"host:{h}" for h in topology.hosts]
        zones = sorted(
            {h.zone for h in topology.hosts.values() if h.zone}
            | {s.zone for s in topology.services.values() if s.zone}
        )
        out += [f"zone:{z}" for z in zones]
    return out


def _edge_rate(g: Any, key: str) -> float:
    a, _, b = key.partition("->")
    return float(g.edges[a, b].get("rate", 0.0))


def default_fault(topology: Topology, scenario: Scenario | None, duration: float) -> FaultChoice:
    """The first fault of the system's own scenario (moved into the window), else a slow
    version of the busiest service."""
    start = round(duration / 6)
    length = round(duration / 2)
    if scenario is not None:
        for f in scenario.faults:
            if f.kind not in INTENSITY or f.target not in targets(topology, f.kind):
                continue
            return FaultChoice(f.kind, f.target, start, length, _intensity_of(topology, f))
    busiest = targets(topology, "latency")[0]
    return FaultChoice("latency", busiest, start, length, INTENSITY["latency"].default)


def _intensity_of(topology: Topology, fault: Any) -> float:
    spec = INTENSITY[fault.kind]
    value: float
    if fault.kind == "latency":
        value = fault.delay.expected()
    elif fault.kind in ("error_rate", "packet_loss", "data_corruption"):
        value = fault.probability
    elif fault.kind == "outage":
        value = 1.0 if fault.replicas is None else _outage_share(topology, fault)
    elif fault.kind == "bandwidth":
        value = fault.bytes_per_second / 1024
    elif fault.kind == "cpu_exhaustion":
        value = fault.factor
    elif fault.kind == "memory_leak":
        value = fault.growth_mb_per_s
    elif fault.kind == "pool_exhaustion":
        value = fault.fraction
    elif fault.kind in ENTRY_KINDS:
        value = fault.rate / max(_entry_rate(topology, fault.target), 1e-9)
    else:  # pragma: no cover - every kind is listed above
        value = spec.default
    return min(spec.high, max(spec.low, round(value / spec.step) * spec.step))


def _outage_share(topology: Topology, fault: Any) -> float:
    svc = topology.services.get(fault.target)
    if svc is None:
        return 1.0
    return min(1.0, float(fault.replicas) / svc.replicas)


def _entry_rate(topology: Topology, entry: str) -> float:
    return sum(w.rate for w in topology.workload if w.entry == entry)


# -- documents from the pickers ------------------------------------------------------------


def fault_document(topology: Topology, fault: FaultChoice) -> dict[str, Any]:
    """A scenario ``faults`` entry for the picked fault."""
    doc: dict[str, Any] = {
        "kind": fault.kind,
        "target": fault.target,
        "start": fault.start,
        "duration": fault.duration,
    }
    x = fault.intensity
    k = fault.kind
    if k == "latency":
        doc["delay"] = {"dist": "constant", "mean": x}
    elif k in ("error_rate", "packet_loss", "data_corruption"):
        doc["probability"] = min(1.0, x)
    elif k == "outage":
        svc = topology.services.get(fault.target)
        if svc is not None and x < 1.0:
            doc["replicas"] = max(1, math.ceil(x * svc.replicas))
    elif k == "bandwidth":
        doc["bytes_per_second"] = x * 1024
    elif k == "cpu_exhaustion":
        doc["factor"] = max(1.0, x)
    elif k == "memory_leak":
        doc["growth_mb_per_s"] = x
    elif k == "pool_exhaustion":
        doc["fraction"] = min(1.0, x)
    elif k in ENTRY_KINDS:
        doc["rate"] = x * _entry_rate(topology, fault.target)
    else:
        raise ValueError(f"unknown fault kind {k!r}; expected one of {list(FAULT_KINDS)}")
    return doc


def series_window(duration: float) -> float:
    """About 60 to 120 points over the run, in whole seconds."""
    return float(max(1, math.ceil(duration / 120)))


def scenario_document(topology: Topology, inputs: WhatIfInputs) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "duration": inputs.duration,
        "warmup": 0.0,
        "seed": inputs.seed,
        "window": series_window(inputs.duration),
        "load": {"multiplier": inputs.load},
        "faults": [],
    }
    if inputs.fault is not None:
        doc["faults"].append(fault_document(topology, inputs.fault))
    return doc


def build_scenario(topology: Topology, inputs: WhatIfInputs) -> Scenario:
    """The scenario the pickers describe; bad picks raise a one-line InputError."""
    scenario = parse_model(Scenario, scenario_document(topology, inputs), source="what-if")
    scenario.check_against(topology)
    return scenario


def policy_document(topology: Topology, m: Mitigations) -> dict[str, Any]:
    client: dict[str, Any] = {}
    if m.timeout is not None:
        client["timeout"] = m.timeout
    if m.retries is not None and m.retries > 0:
        client["retries"] = {
            "max": m.retries,
            "backoff": "exponential",
            "base": 0.02,
            "cap": 0.5,
            "jitter": "full",
            "budget": m.retry_budget,
        }
    if m.breaker_failure_rate is not None:
        client["circuit_breaker"] = {
            "failure_rate": m.breaker_failure_rate,
            "window": 20,
            "min_requests": 10,
            "open_for": m.breaker_open_for,
            "half_open_probes": 1,
        }
    services: dict[str, Any] = {}
    scope = list(topology.services) if m.scope == "*" else [m.scope]
    for name in scope:
        sp: dict[str, Any] = {}
        if m.queue_limit is not None:
            sp["queue_limit"] = m.queue_limit
        if m.autoscale_max is not None:
            low = topology.services[name].replicas
            sp["autoscale"] = {
                "min": low,
                "max": max(low, m.autoscale_max),
                "target_utilization": m.autoscale_target,
                "boot_time": m.autoscale_boot,
                "cooldown": 30.0,
                "period": 5.0,
            }
        if sp:
            services[name] = sp
    doc: dict[str, Any] = {}
    if client:
        doc["clients"] = {"*": client}
    if services:
        doc["services"] = services
    return doc


def build_policy(topology: Topology, m: Mitigations) -> Policy:
    policy = parse_model(Policy, policy_document(topology, m), source="mitigations")
    policy.check_against(topology)
    return policy


# -- running -------------------------------------------------------------------------------


@dataclass
class RunOutput:
    """Plain data from one run: the summary (as summary.json) and the tidy time series."""

    summary: Summary
    series: pd.DataFrame
    wall_seconds: float


@dataclass
class WhatIfResult:
    baseline: RunOutput
    mitigated: RunOutput
    scenario: dict[str, Any]
    policy: dict[str, Any]
    wall_seconds: float
    faults: list[dict[str, Any]] = field(default_factory=list)


def simulate(
    topology: Topology,
    scenario: Scenario,
    policy: Policy | None,
    progress: Callable[[float], None] | None = None,
) -> RunOutput:
    """Run the twin to the scenario's end; ``progress`` gets the fraction done."""
    t0 = time.perf_counter()
    sim = Simulation(topology, scenario, policy)
    end = scenario.duration
    if progress is None:
        results = sim.run()
    else:
        results = sim.run(progress=lambda now: progress(min(1.0, now / end)))
    return RunOutput(results.summary, results.timeseries.frame(), time.perf_counter() - t0)


def compute_whatif(
    topology_json: str,
    scenario_json: str,
    policy_json: str,
    progress: Progress | None = None,
) -> WhatIfResult:
    """The what-if answer: the scenario run without mitigations, then with the policy.

    Takes the documents as JSON text, so a cache can key on exactly what is simulated.
    """
    t0 = time.perf_counter()
    topology = Topology.from_dict(json.loads(topology_json))
    scenario = parse_model(Scenario, json.loads(scenario_json), source="what-if")
    policy = Policy.from_dict(json.loads(policy_json))

    def part(offset: float, label: str) -> Callable[[float], None] | None:
        if progress is None:
            return None
        return lambda f: progress(offset + 0.5 * f, label)

    baseline = simulate(topology, scenario, None, part(0.0, "unmitigated run"))
    mitigated = simulate(topology, scenario, policy, part(0.5, "mitigated run"))
    if progress is not None:
        progress(1.0, "done")
    return WhatIfResult(
        baseline=baseline,
        mitigated=mitigated,
        scenario=json.loads(scenario_json),
        policy=json.loads(policy_json),
        wall_seconds=time.perf_counter() - t0,
        faults=[f.to_json() for f in baseline.summary.faults],
    )


def doc_json(doc: BaseModel) -> str:
    """A document as canonical JSON (the fields it was given, keys sorted): a cache key."""
    return json.dumps(doc.model_dump(mode="json", exclude_unset=True), sort_keys=True)


def documents_json(topology: Topology, scenario: Scenario, policy: Policy) -> tuple[str, str, str]:
    """The cache key of a what-if: the three documents as canonical JSON."""
    return doc_json(topology), doc_json(scenario), doc_json(policy)


# -- figures for display --------------------------------------------------------------------


def headline(summary: Summary) -> dict[str, float | None]:
    """Latency quantiles (s), error rate and availability of user requests."""
    lat = summary.latency
    ok = int(summary.succeeded)
    failed = int(summary.failed)
    answered = ok + failed
    return {
        "requests": float(summary.requests),
        "mean": lat.mean,
        "p50": lat.p50,
        "p95": lat.p95,
        "p99": lat.p99,
        "error_rate": failed / answered if answered else None,
        "availability": ok / answered if answered else None,
    }


def reasons(summary: Summary) -> dict[str, float]:
    """Share of answered user requests that failed, by reason (only reasons that occurred)."""
    answered = int(summary.succeeded) + int(summary.failed)
    fails = summary.failures
    if not answered:
        return {}
    return {r: fails[r] / answered for r in REASONS if fails.get(r)}


def entry_over_time(series: pd.DataFrame) -> pd.DataFrame:
    """Per window, over all entries: arrivals, error share, mean latency and the worst
    entry's p99 (quantiles of different entries cannot be merged exactly)."""
    cols = ["time", "arrivals", "succeeded", "failed", "error_rate", "mean", "p99"]
    ent = series[series["scope"] == "entry"]
    if ent.empty:
        return pd.DataFrame(columns=cols)
    wide = ent.pivot_table(
        index=["time", "name"], columns="metric", values="value", aggfunc="sum", observed=True
    )
    for c in ("arrivals", "succeeded", "failed", "mean", "p99"):
        if c not in wide:
            wide[c] = math.nan
    wide = wide.reset_index()
    wide["weighted"] = wide["mean"].fillna(0.0) * wide["succeeded"].fillna(0.0)
    per = wide.groupby("time").agg(
        arrivals=("arrivals", "sum"),
        succeeded=("succeeded", "sum"),
        failed=("failed", "sum"),
        weighted=("weighted", "sum"),
        p99=("p99", "max"),
    )
    answered = per["succeeded"] + per["failed"]
    per["error_rate"] = (per["failed"] / answered).where(answered > 0)
    per["mean"] = (per["weighted"] / per["succeeded"]).where(per["succeeded"] > 0)
    return per.reset_index()[cols]


def service_metric(series: pd.DataFrame, metric: str) -> pd.DataFrame:
    """time x service table of one per-service metric (e.g. utilization)."""
    svc = series[(series["scope"] == "service") & (series["metric"] == metric)]
    if svc.empty:
        return pd.DataFrame()
    table = svc.pivot_table(
        index="time", columns="name", values="value", aggfunc="mean", observed=True
    )
    table.columns = [str(c) for c in table.columns]
    return table


def busiest(series: pd.DataFrame, n: int = 8) -> list[str]:
    """The services with the highest mean utilisation over the run."""
    util = service_metric(series, "utilization")
    if util.empty:
        return []
    return [str(c) for c in util.mean().sort_values(ascending=False).index[:n]]
