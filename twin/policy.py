"""The policy document: the mitigations that protect the system (what the agent learns)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin.io import DocProblem, load_model, parse_model
from twin.outcomes import REASONS
from twin.topology import Topology

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

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

    max: int = Field(default=2, ge=0, description="retries after the first attempt")
    backoff: Literal["constant", "linear", "exponential"] = "exponential"
    base: float = Field(default=0.05, ge=0.0, description="seconds")
    cap: float = Field(default=1.0, ge=0.0, description="seconds")
    jitter: Literal["none", "full", "equal"] = "full"
    budget: float | None = Field(default=None, ge=0.0)
    budget_window: float = Field(default=10.0, gt=0.0, description="seconds")
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
    window: int = Field(default=20, ge=1, description="calls")
    min_requests: int = Field(default=10, ge=1, description="calls")
    open_for: float = Field(default=5.0, gt=0.0, description="seconds")
    half_open_probes: int = Field(default=1, ge=1)


class ClientPolicy(_Doc):
    """How a caller calls a callee. Fields left out inherit from the ``"*"`` entry."""

    timeout: float | None = Field(default=None, gt=0.0, description="seconds per attempt")
    retries: Retries | None = None
    circuit_breaker: CircuitBreaker | None = None


class RateLimit(_Doc):
    """Token bucket at the service: ``rps`` tokens per second, at most ``burst`` saved."""

    rps: float = Field(gt=0.0)
    burst: float = Field(default=1.0, ge=1.0)


class Autoscale(_Doc):
    """Reactive scaling on utilisation, as the Kubernetes HPA does.

    Every ``period`` seconds: desired = ceil(replicas * utilisation / target), within
    [min, max]. New replicas serve after ``boot_time``; scaling down waits ``cooldown``
    seconds after the last change.
    """

    min: int = Field(default=1, ge=1)
    max: int = Field(default=10, ge=1)
    target_utilization: float = Field(default=0.7, gt=0.0, le=1.0)
    boot_time: float = Field(default=30.0, ge=0.0, description="seconds")
    cooldown: float = Field(default=60.0, ge=0.0, description="seconds")
    period: float = Field(default=15.0, gt=0.0, description="seconds between decisions")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class Failover(_Doc):
    """Send calls to ``to`` while this service's error rate over ``window`` seconds is high;
    try the primary again after ``hold`` seconds."""

    to: str
    when_error_rate: Fraction = 0.5
    window: float = Field(default=10.0, gt=0.0, description="seconds")
    min_requests: int = Field(default=10, ge=1)
    hold: float = Field(default=30.0, gt=0.0, description="seconds")


class ServicePolicy(_Doc):
    """Server-side protections of one service."""

    queue_limit: int | None = Field(default=None, ge=0, description="load shedding, per replica")
    max_concurrency: int | None = Field(
        default=None, ge=1, description="bulkhead: requests in progress per replica"
    )
    rate_limit: RateLimit | None = None
    autoscale: Autoscale | None = None
    failover: Failover | None = None


class Policy(_Doc):
    """Mitigations per caller->callee edge (``"*"`` for all) and per service."""

    clients: dict[str, ClientPolicy] = Field(default_factory=dict)
    services: dict[str, ServicePolicy] = Field(default_factory=dict)

    def cross_check(self) -> None:
        for key in self.clients:
            if key != "*" and "->" not in key:
                raise DocProblem(("clients", key), 'expected "*" or a key "caller->callee"')

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
