"""Istio rendering: a DestinationRule and a VirtualService per called service.

Mapping (docs/export.md): timeout -> VirtualService ``timeout`` (the whole call, all
attempts and backoff) and ``retries.perTryTimeout``; retries -> ``retries.attempts``
(written as 0 when there are none: Istio retries twice when the field is absent) with
``retryOn``; the circuit breaker -> DestinationRule ``outlierDetection`` (host ejection
after consecutive 5xx, Istio's nearest notion; the failure-rate window is lost); queue
limit -> ``connectionPool.http.http1MaxPendingRequests`` (per replica x replicas). A retry
budget has no Istio field and is dropped (reported).
"""

from __future__ import annotations

from typing import Any

from agents.export.units import (
    callees,
    consecutive_errors,
    edge_policies,
    go_duration,
    total_timeout,
)
from twin.policy import ClientPolicy, Policy
from twin.topology import Topology

RETRY_ON = "5xx,reset,connect-failure,refused-stream,unavailable,cancelled,deadline-exceeded"


def _route(host: str, cp: ClientPolicy, caller: str | None) -> dict[str, Any]:
    route: dict[str, Any] = {"route": [{"destination": {"host": host}}]}
    if caller is not None:
        route["match"] = [{"sourceLabels": {"app": caller}}]
    total = total_timeout(cp)
    if total is not None:
        route["timeout"] = go_duration(total)
    attempts = cp.retries.max if cp.retries is not None else 0
    retries: dict[str, Any] = {"attempts": attempts}
    if attempts:
        retries["retryOn"] = RETRY_ON
        if cp.timeout is not None:
            retries["perTryTimeout"] = go_duration(cp.timeout)
    route["retries"] = retries
    return route


def render(
    policy: Policy, topology: Topology, namespace: str = "default"
) -> dict[str, list[dict[str, Any]]]:
    """File name -> the resources in it (one file per called service)."""
    files: dict[str, list[dict[str, Any]]] = {}
    for svc in callees(topology):
        per_caller = edge_policies(policy, topology, svc)
        default = policy.client("*", svc) if "*" in policy.clients else ClientPolicy()
        routes = [
            _route(svc, cp, caller)
            for caller, cp in per_caller.items()
            if f"{caller}->{svc}" in policy.clients
        ]
        routes.append(_route(svc, default, None))
        vs = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": svc, "namespace": namespace},
            "spec": {"hosts": [svc], "http": routes},
        }
        traffic: dict[str, Any] = {}
        sp = policy.services.get(svc)
        replicas = topology.services[svc].replicas
        if sp is not None and sp.queue_limit is not None:
            traffic["connectionPool"] = {
                "http": {"http1MaxPendingRequests": max(1, sp.queue_limit * replicas)}
            }
        cb = default.circuit_breaker
        if cb is not None:
            traffic["outlierDetection"] = {
                "consecutive5xxErrors": consecutive_errors(cb.failure_rate, cb.min_requests),
                "interval": go_duration(cb.open_for),
                "baseEjectionTime": go_duration(cb.open_for),
                "maxEjectionPercent": 100,
            }
        dr = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": svc, "namespace": namespace},
            "spec": {"host": svc, **({"trafficPolicy": traffic} if traffic else {})},
        }
        files[f"{svc}.yaml"] = [dr, vs]
    return files


def lost(policy: Policy) -> list[str]:
    """What this policy says that Istio cannot express."""
    out = []
    for key, cp in policy.clients.items():
        if cp.retries is not None and cp.retries.budget is not None:
            out.append(f"clients.{key}.retries.budget: Istio has no retry budget (dropped)")
        if cp.retries is not None and cp.retries.max and cp.retries.backoff != "exponential":
            out.append(f"clients.{key}.retries.backoff: Envoy's backoff is exponential only")
        if cp.circuit_breaker is not None:
            out.append(
                f"clients.{key}.circuit_breaker: becomes outlier detection (ejection after "
                "consecutive 5xx); the failure-rate window is lost"
            )
    for name, sp in policy.services.items():
        if sp.rate_limit is not None:
            out.append(
                f"services.{name}.rate_limit: needs an EnvoyFilter local rate limit (not written)"
            )
    return out
