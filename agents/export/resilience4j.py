"""Resilience4j rendering: the Spring Boot ``application.yaml`` of resilience4j-spring-boot,
one instance per called service, checked against pydantic models of the properties
Resilience4j documents (Resilience4j publishes no JSON Schema; these models are the
reference named in docs/export.md).

Mapping: the breaker is Resilience4j's own, 1:1 (count-based window, failure-rate
threshold in percent, minimum calls, open wait, half-open probes); retries -> ``retry``
(``maxAttempts`` counts the first call: retries + 1) with exponential backoff and
randomised wait; timeout -> ``timelimiter.timeoutDuration``; queue limit ->
``bulkhead.maxConcurrentCalls`` + ``maxWaitDuration`` 0; entry rate limit ->
``ratelimiter`` (limit per 1 s period). A retry budget has no Resilience4j field (dropped).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.export.units import callees, spring_duration
from twin.policy import ClientPolicy, Policy
from twin.topology import Topology

Duration = Annotated[str, Field(pattern=r"^(\d+(ms|s|m|h|d)|P(T(\d+(\.\d+)?[HMS])+|\d+D))$")]


class _Props(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CircuitBreakerProps(_Props):
    slidingWindowType: Literal["COUNT_BASED", "TIME_BASED"]  # noqa: N815 (Spring property names)
    slidingWindowSize: int = Field(ge=1)  # noqa: N815
    minimumNumberOfCalls: int = Field(ge=1)  # noqa: N815
    failureRateThreshold: float = Field(gt=0.0, le=100.0)  # noqa: N815
    waitDurationInOpenState: Duration  # noqa: N815
    permittedNumberOfCallsInHalfOpenState: int = Field(ge=1)  # noqa: N815
    automaticTransitionFromOpenToHalfOpenEnabled: bool = True  # noqa: N815


class RetryProps(_Props):
    maxAttempts: int = Field(ge=1)  # noqa: N815
    waitDuration: Duration  # noqa: N815
    enableExponentialBackoff: bool = False  # noqa: N815
    exponentialBackoffMultiplier: float = Field(default=2.0, ge=1.0)  # noqa: N815
    exponentialMaxWaitDuration: Duration | None = None  # noqa: N815
    enableRandomizedWait: bool = False  # noqa: N815
    randomizedWaitFactor: float = Field(default=0.5, ge=0.0, lt=1.0)  # noqa: N815


class TimeLimiterProps(_Props):
    timeoutDuration: Duration  # noqa: N815
    cancelRunningFuture: bool = True  # noqa: N815


class BulkheadProps(_Props):
    maxConcurrentCalls: int = Field(ge=1)  # noqa: N815
    maxWaitDuration: Duration  # noqa: N815


class RateLimiterProps(_Props):
    limitForPeriod: int = Field(ge=1)  # noqa: N815
    limitRefreshPeriod: Duration  # noqa: N815
    timeoutDuration: Duration  # noqa: N815


class Resilience4jConfig(_Props):
    """The ``resilience4j`` block of a Spring Boot application.yaml."""

    circuitbreaker: dict[Literal["instances"], dict[str, CircuitBreakerProps]] | None = None
    retry: dict[Literal["instances"], dict[str, RetryProps]] | None = None
    timelimiter: dict[Literal["instances"], dict[str, TimeLimiterProps]] | None = None
    bulkhead: dict[Literal["instances"], dict[str, BulkheadProps]] | None = None
    ratelimiter: dict[Literal["instances"], dict[str, RateLimiterProps]] | None = None


def _client(cp: ClientPolicy) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    cb = cp.circuit_breaker
    if cb is not None:
        out["circuitbreaker"] = {
            "slidingWindowType": "COUNT_BASED",
            "slidingWindowSize": cb.window,
            "minimumNumberOfCalls": cb.min_requests,
            "failureRateThreshold": round(100.0 * cb.failure_rate, 3),
            "waitDurationInOpenState": spring_duration(cb.open_for),
            "permittedNumberOfCallsInHalfOpenState": cb.half_open_probes,
        }
    r = cp.retries
    if r is not None and r.max:
        retry: dict[str, Any] = {
            "maxAttempts": r.max + 1,
            "waitDuration": spring_duration(max(r.base, 0.001)),
        }
        if r.backoff == "exponential":
            retry |= {
                "enableExponentialBackoff": True,
                "exponentialBackoffMultiplier": 2.0,
                "exponentialMaxWaitDuration": spring_duration(max(r.cap, 0.001)),
            }
        if r.jitter != "none":
            retry |= {"enableRandomizedWait": True, "randomizedWaitFactor": 0.5}
        out["retry"] = retry
    if cp.timeout is not None:
        out["timelimiter"] = {"timeoutDuration": spring_duration(cp.timeout)}
    return out


def render(policy: Policy, topology: Topology) -> dict[str, list[dict[str, Any]]]:
    """``application.yaml`` with one instance per called service (named after it)."""
    blocks: dict[str, dict[str, Any]] = {}
    for svc in callees(topology):
        cp = policy.client("*", svc) if "*" in policy.clients else ClientPolicy()
        for kind, props in _client(cp).items():
            blocks.setdefault(kind, {"instances": {}})["instances"][svc] = props
        sp = policy.services.get(svc)
        if sp is not None and sp.queue_limit is not None:
            workers = topology.services[svc].workers * topology.services[svc].replicas
            blocks.setdefault("bulkhead", {"instances": {}})["instances"][svc] = {
                "maxConcurrentCalls": max(
                    1, workers + sp.queue_limit * topology.services[svc].replicas
                ),
                "maxWaitDuration": "0ms",
            }
    for name, sp in policy.services.items():
        if sp.rate_limit is not None:
            blocks.setdefault("ratelimiter", {"instances": {}})["instances"][name] = {
                "limitForPeriod": max(1, round(sp.rate_limit.rps)),
                "limitRefreshPeriod": "1s",
                "timeoutDuration": "0ms",
            }
    return {"application.yaml": [{"resilience4j": blocks}]}


def validate(doc: dict[str, Any]) -> list[str]:
    """Problems of an application.yaml document against the models ([] when valid)."""
    if set(doc) != {"resilience4j"}:
        return [f"<root>: expected only the 'resilience4j' key, got {sorted(doc)}"]
    try:
        Resilience4jConfig.model_validate(doc["resilience4j"])
    except ValidationError as exc:
        return [
            f"resilience4j.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
    return []
