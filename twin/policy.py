"""The policy document: the mitigations that protect the system (what the agent learns)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin.bounds import (
    MAX_CALLS,
    MAX_QUEUE,
    MAX_RATE,
    MAX_REPLICAS,
    MAX_RETRIES,
    MAX_WORKERS,
    Finite,
    Int,
    Name,
    PeriodSeconds,
    PositiveSeconds,
    Probability,
    Rate,
    Seconds,
    name_problem,
)
from twin.io import DocProblem, load_model, parse_model
from twin.outcomes import REASONS
from twin.topology import Topology

Fraction = Probability

RETRYABLE_DEFAULT = ("TIMEOUT", "REJECTED", "SERVICE_DOWN", "ERROR", "NETWORK_LOSS", "CORRUPTED")


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Retries(_Doc):
    """Retry failed calls with backoff and jitter, within a budget.

    Attempt ``k`` (k = 1 for the first retry) waits ``min(cap, base * g(k))`` seconds, with
    ``g`` = 1 (constant), k (linear) or 2^(k-1) (exponential); jitter ``full`` draws the wait
    uniformly in [0, w], ``equal`` in [w/2, w]. ``budget``: at most this fraction of extra
    attempts over the requests of the last ``budget_window`` seconds on the edge (Linkerd and
    gRPC's meaning); None means unbounded.
    """

    max: Int = Field(default=2, ge=0, le=MAX_RETRIES, description="retries after the first attempt")
    backoff: Literal["constant", "linear", "exponential"] = "exponential"
    base: Seconds = Field(default=0.05, description="seconds")
    cap: Seconds = Field(default=1.0, description="seconds")
    jitter: Literal["none", "full", "equal"] = "full"
    budget: Finite | None = Field(
        default=None, ge=0.0, le=MAX_RETRIES, description="extra attempts per request"
    )
    budget_window: PositiveSeconds = Field(default=10.0, description="seconds")
    retry_on: tuple[str, ...] = Field(default=RETRYABLE_DEFAULT, description="failure reasons")

    @field_validator("retry_on")
    @classmethod
    def _known_reasons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in value if r not in REASONS]
        if bad:
            raise ValueError(f"unknown failure reason(s) {bad}; expected some of {list(REASONS)}")
        return value


class CircuitBreaker(_Doc):
    """Resilience4j's count-based breaker: opens when the failure rate over the last ``window``
    calls reaches ``failure_rate`` (after ``min_requests``); stays open ``open_for`` seconds;
    then lets ``half_open_probes`` calls through and closes if they succeed."""

    failure_rate: Fraction = 0.5
    window: Int = Field(default=20, ge=1, le=MAX_CALLS, description="calls")
    min_requests: Int = Field(default=10, ge=1, le=MAX_CALLS, description="calls")
    open_for: PositiveSeconds = Field(default=5.0, description="seconds")
    half_open_probes: Int = Field(default=1, ge=1, le=MAX_CALLS, description="calls")


class ClientPolicy(_Doc):
    """How a caller calls a callee. Fields left out inherit from the ``"*"`` entry."""

    timeout: PositiveSeconds | None = Field(default=None, description="seconds per attempt")
    retries: Retries | None = None
    circuit_breaker: CircuitBreaker | None = None


class RateLimit(_Doc):
    """Token bucket at the service: ``rps`` tokens per second, at most ``burst`` saved."""

    rps: Rate = Field(description="tokens (requests) per second")
    burst: Finite = Field(default=1.0, ge=1.0, le=MAX_RATE, description="tokens saved")


class Autoscale(_Doc):
    """Reactive scaling on utilisation, as the Kubernetes HPA does.

    Every ``period`` seconds: desired = ceil(replicas * utilisation / target), within
    [min, max]. New replicas serve after ``boot_time``; scaling down waits ``cooldown``
    seconds after the last change.
    """

    min: Int = Field(default=1, ge=1, le=MAX_REPLICAS, description="replicas")
    max: Int = Field(default=10, ge=1, le=MAX_REPLICAS, description="replicas")
    target_utilization: Probability = Field(default=0.7, gt=0.0, description="a share")
    boot_time: Seconds = Field(default=30.0, description="seconds")
    cooldown: Seconds = Field(default=60.0, description="seconds")
    period: PeriodSeconds = Field(default=15.0, description="seconds between decisions")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class Failover(_Doc):
    """Send calls to ``to`` while this service's error rate over ``window`` seconds is high;
    try the primary again after ``hold`` seconds."""

    to: Name = Field(description="the service that takes the calls")
    when_error_rate: Fraction = 0.5
    window: PeriodSeconds = Field(default=10.0, description="seconds")
    min_requests: Int = Field(default=10, ge=1, le=MAX_CALLS, description="requests")
    hold: PositiveSeconds = Field(default=30.0, description="seconds")


class ServicePolicy(_Doc):
    """Server-side protections of one service."""

    queue_limit: Int | None = Field(
        default=None, ge=0, le=MAX_QUEUE, description="load shedding, per replica"
    )
    max_concurrency: Int | None = Field(
        default=None, ge=1, le=MAX_WORKERS, description="bulkhead: requests in progress per replica"
    )
    rate_limit: RateLimit | None = None
    autoscale: Autoscale | None = None
    failover: Failover | None = None


class Policy(_Doc):
    """Mitigations per caller->callee edge (``"*"`` for all) and per service."""

    clients: dict[str, ClientPolicy] = Field(
        default_factory=dict, description='by "caller->callee", or "*" for every edge'
    )
    services: dict[Name, ServicePolicy] = Field(default_factory=dict, description="by name")

    def cross_check(self) -> None:
        """Every client key is ``"*"`` or ``"caller->callee"`` of two valid names."""
        for key in self.clients:
            if key == "*":
                continue
            caller, arrow, callee = key.partition("->")
            if not arrow:
                raise DocProblem(("clients", key), 'expected "*" or a key "caller->callee"')
            problem = name_problem(caller) or name_problem(callee)
            if problem is not None:
                raise DocProblem(("clients", key), problem)

    def client(self, caller: str, callee: str) -> ClientPolicy:
        """The effective policy of an edge: its own fields over the ``"*"`` defaults."""
        base = self.clients.get("*")
        own = self.clients.get(f"{caller}->{callee}")
        if own is None:
            return base or ClientPolicy()
        if base is None:
            return own
        merged = base.model_dump(exclude_unset=False)
        merged.update({k: getattr(own, k) for k in own.model_fields_set})
        return ClientPolicy.model_validate(
            {k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in merged.items()}
        )

    def check_against(self, topology: Topology) -> None:
        """Every edge and service named must exist in the topology."""
        edges = topology.service_graph().edges
        for key in self.clients:
            if key == "*":
                continue
            a, _, b = key.partition("->")
            if (a, b) not in edges:
                raise DocProblem(("clients", key), f"no call {key!r} in the topology")
        for name, sp in self.services.items():
            if name not in topology.services:
                raise DocProblem(("services", name), f"unknown service {name!r}")
            if sp.failover is not None:
                loc = ("services", name, "failover", "to")
                to = sp.failover.to
                if to not in topology.services:
                    raise DocProblem(loc, f"unknown service {to!r}")
                if to == name or nx.has_path(topology.service_graph(), to, name):
                    raise DocProblem(loc, f"{to!r} calls {name!r}: failing over would loop")

    @classmethod
    def load_file(cls, path: str | Path) -> Policy:
        """Read and check a policy YAML file; problems raise a one-line InputError."""
        return load_model(cls, path)

    @classmethod
    def from_dict(cls, data: object, *, source: str = "<policy>") -> Policy:
        return parse_model(cls, data, source=source)
