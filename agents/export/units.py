"""Durations and the call edges each runtime file is written for."""

from __future__ import annotations

import math

from twin.policy import ClientPolicy, Policy
from twin.topology import Topology


def go_duration(seconds: float) -> str:
    """Seconds as a protobuf/Go duration string ("0.25s"); at least 1 ms (Istio's floor)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms / 1000:g}s"


def spring_duration(seconds: float) -> str:
    """Seconds as a Spring Boot duration ("250ms")."""
    return f"{max(1, round(seconds * 1000))}ms"


def callees(topology: Topology) -> list[str]:
    """Services that something calls (the ones a client policy applies to), sorted."""
    return sorted({b for _, b in topology.service_graph().edges})


def callers_of(topology: Topology, service: str) -> list[str]:
    return sorted(a for a, b in topology.service_graph().edges if b == service)


def edge_policies(policy: Policy, topology: Topology, callee: str) -> dict[str, ClientPolicy]:
    """The effective client policy per caller of ``callee``."""
    return {a: policy.client(a, callee) for a in callers_of(topology, callee)}


def total_timeout(cp: ClientPolicy) -> float | None:
    """A whole call's deadline: every attempt's timeout plus the backoff waits between
    them (the route timeout Istio/Envoy need, as their timeout covers all attempts)."""
    if cp.timeout is None:
        return None
    r = cp.retries
    if r is None or r.max == 0:
        return cp.timeout
    waits = 0.0
    for k in range(1, r.max + 1):
        g = (
            1.0
            if r.backoff == "constant"
            else float(k)
            if r.backoff == "linear"
            else 2.0 ** (k - 1)
        )
        waits += min(r.cap, r.base * g)
    return cp.timeout * (r.max + 1) + waits


def consecutive_errors(failure_rate: float, min_requests: int) -> int:
    """Outlier detection ejects after N consecutive 5xx; the count-based breaker's threshold
    read as a run of errors: failure_rate x min_requests, at least 1."""
    return max(1, math.ceil(failure_rate * min_requests))
