"""Independent replications, in parallel processes, with 95% confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from scipy import stats as sps

from twin.policy import Policy
from twin.results import Results, Summary
from twin.results.summary import REPLICATION_KEPT
from twin.rng import replication_seeds
from twin.scenario import Scenario
from twin.sim.budget import Budget
from twin.topology import Topology


def _one(args: tuple[Topology, Scenario, Policy | None, int, float, Budget | None]) -> Results:
    from twin.sim import Simulation

    topology, scenario, policy, seed, trace, budget = args
    sim = Simulation(topology, scenario, policy, seed=seed, trace_sample=trace, budget=budget)
    return sim.run()


def run_replications(
    topology: Topology,
    scenario: Scenario,
    policy: Policy | None,
    *,
    replications: int,
    workers: int = 1,
    trace_sample: float = 0.0,
    on_done: Callable[[int], None] | None = None,
    budget: Budget | None = None,
) -> list[Results]:
    """Replication ``i`` uses the i-th seed spawned from the scenario seed, so results do not
    depend on how many worker processes ran them. ``budget`` bounds each run (default: the
    limits of :mod:`twin.sim.budget`)."""
    seeds = [scenario.seed] if replications == 1 else replication_seeds(scenario.seed, replications)
    jobs = [(topology, scenario, policy, s, trace_sample, budget) for s in seeds]
    if workers <= 1 or replications == 1:
        out = []
        for i, j in enumerate(jobs):
            out.append(_one(j))
            if on_done:
                on_done(i + 1)
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool:
        out = []
        for i, r in enumerate(pool.map(_one, jobs)):
            out.append(r)
            if on_done:
                on_done(i + 1)
        return out


def mean_ci(values: list[float], level: float = 0.95) -> dict[str, float | None]:
    """Mean with a Student-t confidence interval over replications."""
    xs = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(xs)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None}
    m = sum(xs) / n
    if n == 1:
        return {"mean": m, "lo": None, "hi": None}
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(var / n)
    return {"mean": m, "lo": m - half, "hi": m + half}


def _numeric_paths(d: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _numeric_paths(v, (*prefix, str(k)))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out.append(prefix)
    return out


def _get(d: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _set(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for p in path[:-1]:
        d = d.setdefault(p, {})
    d[path[-1]] = value


_SKIP = {*REPLICATION_KEPT, "verdict"}


def combine(results: list[Results]) -> Summary:
    """One summary: each figure is the mean over replications, and ``ci`` holds
    ``{mean, lo, hi}`` for every figure (95%, Student t). A replication stopped with a
    verdict gives the combined summary its verdict (the first one's, in replication order)."""
    base = results[0].summary
    if len(results) == 1:
        return base
    runs = [r.summary.to_json() for r in results]
    verdicts = [r["verdict"] for r in runs if "verdict" in r]
    paths: set[tuple[str, ...]] = set()
    for r in runs:
        paths.update(p for p in _numeric_paths(r) if p[0] not in _SKIP)
    merged: dict[str, Any] = {k: v for k, v in runs[0].items() if k in _SKIP}
    ci: dict[str, Any] = {}
    for path in sorted(paths):
        vals = [_get(r, path) for r in runs]
        if "failures" in path:  # a reason absent from a replication happened 0 times there
            vals = [0 if v is None else v for v in vals]
        est = mean_ci([float(v) for v in vals if v is not None])
        _set(merged, path, est["mean"])
        _set(ci, path, est)
    merged["ci"] = ci
    merged["replications"] = len(results)
    merged["seeds"] = [r.summary.seed for r in results]
    merged["wall_seconds"] = sum(r.summary.wall_seconds for r in results)
    if verdicts:
        merged["verdict"] = verdicts[0]
    return Summary.model_validate(merged)
