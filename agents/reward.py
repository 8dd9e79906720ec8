"""Reward: the evaluation's own figures, as a Lagrangian, plus small shaping; weights set.

``twin evaluate`` scores a policy by SLO-violation minutes (stretches in which an entry
missed its p99 or availability target) at a replica-seconds cost. The reward of a step is
therefore ``-violation * violated minutes - cost * extra replica-minutes``, with a small
attainment term (how far from the SLO, so a nearly-met stretch is better than a lost one
and the gradient is not flat) and a churn term (changed action components), so that the
return of an episode is (minus) the evaluation metric up to the shaping terms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from twin.results import EntryStretch


@dataclass(frozen=True)
class RewardWeights:
    """Weights of one step's reward terms (a weight of 0 drops the term).

    ``violation``: per SLO-violation minute; ``cost``: per replica-minute above the
    topology's replicas (the price of capacity in violation minutes: 0.3 means one violation
    minute is worth 3.3 extra replica-minutes); ``slo``: per minute of SLO attainment
    shortfall (shaping); ``churn``: per changed action component, normalised by components.
    """

    violation: float = 1.0
    cost: float = 0.3
    slo: float = 0.5
    churn: float = 0.01


def attainment(
    entries: Mapping[str, EntryStretch], p99_target: float, avail_target: float
) -> float:
    """Share of the stretch the entries met their SLO: availability, then latency, in [0, 1].

    Availability below target scales linearly down; p99 above target scales by target/p99.
    No traffic counts as met (nothing was promised and broken).
    """
    if not entries:
        return 1.0
    total = 0.0
    for e in entries.values():
        ok, failed = e.succeeded, e.failed
        if ok + failed == 0:
            total += 1.0
            continue
        avail = ok / (ok + failed)
        a = min(1.0, avail / avail_target)
        p99 = e.latency.p99
        lat = 1.0 if p99 is None or math.isnan(p99) or p99 <= p99_target else p99_target / p99
        total += a * lat
    return total / len(entries)


def violated(entries: Mapping[str, EntryStretch], p99_target: float, avail_target: float) -> bool:
    """Whether any entry missed its p99 or availability target in the stretch."""
    for e in entries.values():
        ok, failed = e.succeeded, e.failed
        if ok + failed and ok / (ok + failed) < avail_target:
            return True
        p99 = e.latency.p99
        if p99 is not None and not math.isnan(p99) and p99 > p99_target:
            return True
    return False


def reward(
    w: RewardWeights,
    attain: float,
    was_violated: bool,
    extra_replica_seconds: float,
    seconds: float,
    changed: int,
    n: int,
) -> float:
    """One step's reward over a stretch of ``seconds``: minus violation minutes, minus the
    priced extra replica-minutes, minus attainment shortfall minutes and churn."""
    minutes = seconds / 60.0
    return (
        -w.violation * (minutes if was_violated else 0.0)
        - w.cost * extra_replica_seconds / 60.0
        - w.slo * (1.0 - attain) * minutes
        - w.churn * changed / max(1, n)
    )
