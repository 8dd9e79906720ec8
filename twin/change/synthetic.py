"""A synthetic baseline: what the twin predicts the new version does, step by step.

Progressive delivery compares a canary with a baseline deployment of the old version; when
there is none (a first deployment, or a cluster with no room for one), the twin's
prediction of the *new* version stands in for it. The change set is applied to the
topology (:func:`twin.change.document.reduce_changes`, its new version's error rate as a
whole-run fault), the twin runs it at the topology's load stepped ``step_seconds`` at a time
(the guard's query step), and each step's figure for the canary's service becomes one
baseline value: ``latency_mean``, ``latency_p50``/``p95``/``p99`` (seconds), or
``error_ratio`` (failed / answered). The judge then asks whether the canary behaves as the
twin said the new version would: a canary worse than its own prediction is worse than what
was approved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from twin.change.document import ChangeSet, reduce_changes
from twin.errors import InputError
from twin.policy import Policy
from twin.topology import Topology

Stat = Literal["latency_mean", "latency_p50", "latency_p95", "latency_p99", "error_ratio"]
STATS: tuple[str, ...] = (
    "latency_mean",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "error_ratio",
)


def predicted_samples(
    topology: Topology,
    changes: ChangeSet,
    service: str,
    stats: Mapping[str, str],
    *,
    policy: Policy | None = None,
    step_seconds: float = 2.0,
    steps: int = 60,
    warmup: float = 30.0,
    load: float = 1.0,
    seed: int = 1,
) -> dict[str, list[float]]:
    """``{metric: [value per step]}`` for the new version of ``service``; ``stats`` maps
    each metric name to the figure it is (one of :data:`STATS`). Steps where the service
    answered nothing give NaN (the judge's NaN strategy decides)."""
    from twin.scenario import Scenario
    from twin.sim import Simulation

    for name, stat in stats.items():
        if stat not in STATS:
            raise InputError(f"metric {name!r}: the twin predicts {', '.join(STATS)}, not {stat!r}")
    reduced = reduce_changes(changes, topology, policy)
    if service not in reduced.topology.services:
        raise InputError(f"no service {service!r} in the topology")
    duration = warmup + steps * step_seconds
    faults = [{**f, "start": 0.0, "duration": duration} for f in reduced.faults]
    scenario = Scenario.model_validate(
        {
            "duration": duration,
            "warmup": warmup,
            "seed": seed,
            "load": {"multiplier": load},
            "faults": faults,
        }
    )
    sim = Simulation(reduced.topology, scenario, reduced.policy)
    sim.step(warmup)
    out: dict[str, list[float]] = {name: [] for name in stats}
    for _ in range(steps):
        s = sim.step(step_seconds).services[service]
        answered = float(s.succeeded) + float(s.failed)
        for name, stat in stats.items():
            if stat == "error_ratio":
                v = float(s.failed) / answered if answered > 0 else math.nan
            else:
                raw = getattr(s.latency, stat.removeprefix("latency_"))
                v = float(raw) if raw is not None else math.nan
            out[name].append(v)
    return out


__all__ = ["STATS", "Stat", "predicted_samples"]
