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

from twin.faults import KINDS, LatencyFault
from twin.faults import kind as kind_class
from twin.io import parse_model
from twin.outcomes import REASONS
from twin.policy import Policy
from twin.results import Summary
from twin.scenario import Scenario
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
    k: Intensity(
        c.intensity.picker.label,
        c.intensity.picker.low,
        c.intensity.picker.high,
        c.intensity.picker.default,
        c.intensity.picker.step,
        c.intensity.picker.help,
    )
    for k, c in KINDS.items()
}
"""The slider per fault kind, in the kind's display unit (``to_display`` of its class)."""

FAULT_LABELS: dict[str, str] = {k: c.label for k, c in KINDS.items()}


@dataclass(frozen=True)
class FaultChoice:
    """One fault as picked on the page; ``intensity`` is in the kind's unit (its class's
    ``intensity.unit``; the slider shows it through the class's ``to_display``)."""

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
    cls = KINDS[kind]
    accepts = cls.targets
    if cls.needs_disk and not topology.has_disk():
        return []
    if accepts.entry:
        return entries(topology)
    g = topology.service_graph()
    by_load = sorted(g.nodes, key=lambda n: -float(g.nodes[n].get("utilization", 0.0)))
    edges = sorted((f"{a}->{b}" for a, b in g.edges), key=lambda e: -_edge_rate(g, e))
    out = list(by_load) if accepts.service else []
    if accepts.edge:
        out += edges
    if accepts.placement:
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
    slow = LatencyFault.name
    busiest = targets(topology, slow)[0]
    return FaultChoice(slow, busiest, start, length, from_slider(slow, INTENSITY[slow].default))


def _intensity_of(topology: Topology, fault: Any) -> float:
    """The fault's intensity, snapped to its slider's steps and range (display units)."""
    cls = KINDS[fault.kind]
    spec = INTENSITY[fault.kind]
    value = cls.to_display(cls.intensity_of(fault, topology))
    return from_slider(
        fault.kind, min(spec.high, max(spec.low, round(value / spec.step) * spec.step))
    )


def to_slider(kind: str, intensity: float) -> float:
    """An intensity (the kind's unit) as its slider shows it (display units)."""
    return KINDS[kind].to_display(intensity)


def from_slider(kind: str, value: float) -> float:
    """A slider value (display units) in the kind's intensity unit."""
    return KINDS[kind].from_display(value)


# -- documents from the pickers ------------------------------------------------------------


def fault_document(topology: Topology, fault: FaultChoice) -> dict[str, Any]:
    """A scenario ``faults`` entry for the picked fault."""
    doc = kind_class(fault.kind).document(fault.target, fault.intensity, topology)
    doc["start"] = fault.start
    doc["duration"] = fault.duration
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
