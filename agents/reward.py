"""Reward: SLO attainment minus cost minus churn; the weights are configurable."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RewardWeights:
    slo: float = 1.0
    cost: float = 0.1  # per extra replica-second, normalised by services x seconds
    churn: float = 0.05  # per changed action component, normalised by components


def attainment(entries: dict[str, Any], p99_target: float, avail_target: float) -> float:
    """Share of the stretch the entries met their SLO: availability, then latency, in [0, 1].

    Availability below target scales linearly down; p99 above target scales by target/p99.
    No traffic counts as met (nothing was promised and broken).
    """
    if not entries:
        return 1.0
    total = 0.0
    for e in entries.values():
        ok, failed = e.get("succeeded", 0), e.get("failed", 0)
        if ok + failed == 0:
            total += 1.0
            continue
        avail = ok / (ok + failed)
        a = min(1.0, avail / avail_target)
        p99 = e.get("latency", {}).get("p99")
        lat = 1.0 if p99 is None or math.isnan(p99) or p99 <= p99_target else p99_target / p99
        total += a * lat
    return total / len(entries)


def violated(entries: dict[str, Any], p99_target: float, avail_target: float) -> bool:
    """Whether any entry missed its p99 or availability target in the stretch."""
    for e in entries.values():
        ok, failed = e.get("succeeded", 0), e.get("failed", 0)
        if ok + failed and ok / (ok + failed) < avail_target:
            return True
        p99 = e.get("latency", {}).get("p99")
        if p99 is not None and not math.isnan(p99) and p99 > p99_target:
            return True
    return False


def reward(
    w: RewardWeights, attain: float, extra_replicas: float, n_services: int, changed: int, n: int
) -> float:
    """One step's reward; ``extra_replicas`` is replicas above the topology's, time-averaged."""
    return (
        w.slo * attain
        - w.cost * extra_replicas / max(1, n_services)
        - w.churn * changed / max(1, n)
    )
