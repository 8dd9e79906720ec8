"""The documents of drift: what ``drift.json``, ``plans.json`` and the alerts hold, and the
ignore rules and overrides a user writes. Frozen pydantic models that refuse unknown fields,
so a misspelt key in a rule file is an error naming it, not a rule that silently never
matches."""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.bounds import MAX_REPLICAS, Seconds

MAX_HORIZON_HOURS = 24.0 * 365 * 100
"""Longest cost horizon a drift policy may name: a century."""

MAX_REPLICA_HOURS = MAX_REPLICAS * MAX_HORIZON_HOURS
"""Largest replica-hour budget: every replica there can be, over the longest horizon."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Drift(_Doc):
    """One difference between the expected and the observed state that is real drift.

    ``path`` is a JSON pointer (RFC 6901) into the object (list entries by their position in
    the expected object, or in the observed one for an entry only it has); ``""`` means the
    whole resource is missing (``observed`` null) or extra (``expected`` null). ``manager``
    and ``since`` name the field manager that owns the drifted field and the time of its last
    write, from ``metadata.managedFields`` when the observed object has them."""

    resource: str = Field(description="kind/namespace/name")
    path: str = Field(description="JSON pointer into the object; empty: the whole resource")
    expected: Any = Field(default=None, description="the expected value (null: absent)")
    observed: Any = Field(default=None, description="the observed value (null: absent)")
    manager: str | None = Field(default=None, description="managedFields manager of the field")
    since: str | None = Field(default=None, description="time of that manager's last write")

    @property
    def kind(self) -> str:
        return self.resource.split("/", 1)[0]

    @property
    def change(self) -> Literal["missing", "extra", "removed", "added", "changed"]:
        """What happened: a resource missing or extra, a field removed, added or changed."""
        if self.path == "":
            return "missing" if self.observed is None else "extra"
        if self.observed is None:
            return "removed"
        if self.expected is None:
            return "added"
        return "changed"


class IgnoreRule(_Doc):
    """One entry of Argo CD's ``ignoreDifferences``: differences of the matching resources at
    or below any of ``jsonPointers``, or owned by any of ``managedFieldsManagers``, are not
    drift. ``group`` and ``kind`` accept ``*``; ``name`` and ``namespace`` left out match all.
    """

    group: str = Field(default="*", description='API group ("" for core, "apps", "*")')
    kind: str = Field(default="*", description='kind, or "*"')
    name: str | None = Field(default=None, description="resource name (all when left out)")
    namespace: str | None = Field(default=None, description="namespace (all when left out)")
    jsonPointers: tuple[str, ...] = Field(default=(), description="ignored paths and below")  # noqa: N815 (Argo CD field name)
    managedFieldsManagers: tuple[str, ...] = Field(  # noqa: N815 (Argo CD field name)
        default=(), description="differences in fields these managers own are ignored"
    )

    @model_validator(mode="after")
    def _something(self) -> IgnoreRule:
        if not self.jsonPointers and not self.managedFieldsManagers:
            raise ValueError("give jsonPointers or managedFieldsManagers (or both)")
        for p in self.jsonPointers:
            if p and not p.startswith("/"):
                raise ValueError(f"JSON pointer {p!r} must start with '/'")
        return self

    def matches(self, group: str, drift: Drift) -> bool:
        """Whether ``drift`` (of a resource in API group ``group``) is ignored by this rule."""
        kind, ns, name = drift.resource.split("/", 2)
        if not fnmatch.fnmatchcase(group, self.group) or not fnmatch.fnmatchcase(kind, self.kind):
            return False
        if self.name is not None and self.name != name:
            return False
        if self.namespace is not None and self.namespace != ns:
            return False
        for p in self.jsonPointers:
            if drift.path == p or drift.path.startswith(p.rstrip("/") + "/") or p in ("", "/"):
                return True
        return drift.manager is not None and drift.manager in self.managedFieldsManagers


class IgnoreRules(_Doc):
    """An ignore-rules file: ``ignoreDifferences:`` (the list), as in an Argo CD Application's
    ``spec`` (an Application manifest itself is read too)."""

    ignoreDifferences: tuple[IgnoreRule, ...] = ()  # noqa: N815 (Argo CD field name)


class SecurityNote(_Doc):
    """A finding of the security rule set (``docs/drift.md`` lists the rules)."""

    rule: str = Field(description="rule id, e.g. privileged, run-as-root, image-latest")
    resource: str
    path: str
    message: str
    severity: Literal["high", "medium", "low"]


class Impact(_Doc):
    """What the drift set does to the SLOs, by simulation at the given load."""

    modelled: tuple[str, ...] = Field(default=(), description="drifts mapped to the twin")
    unmapped: tuple[str, ...] = Field(default=(), description="drifts the twin cannot model")
    load_multiplier: float = 1.0
    expected_availability: float | None = None
    observed_availability: float | None = None
    expected_p99_seconds: float | None = None
    observed_p99_seconds: float | None = None
    slo_availability: float | None = None
    slo_latency_p99_seconds: float | None = None
    observed_meets_slo: bool | None = None


class Rollout(_Doc):
    """A simulated rolling update of one workload."""

    resource: str
    replicas: int
    max_surge: int
    max_unavailable: int
    duration_seconds: float = Field(description="from the first new pod to the last old gone")
    downtime_seconds: float = Field(description="error-seconds: failed requests / request rate")
    surge_replica_hours: float = Field(description="extra replica-hours while it runs")


class PlanAction(_Doc):
    """One change a plan makes: a patch to the cluster or to the desired state."""

    resource: str
    target: Literal["cluster", "desired-state"]
    patch: dict[str, Any] | None = Field(description="JSON merge patch; null: create or delete")
    operation: Literal["patch", "create", "delete"]
    restarts_pods: bool


class Plan(_Doc):
    """One way to remediate the drift set, with its downtime, cost and security notes."""

    id: int = Field(description="1-based; what --plan takes")
    name: Literal["reapply-now", "reapply-in-window", "adopt-observed"]
    description: str
    when: str = Field(description='"now", or the low-traffic window (hour of day, UTC)')
    actions: tuple[PlanAction, ...]
    rollouts: tuple[Rollout, ...] = ()
    downtime_seconds: float = Field(description="sum of the rollouts' error-seconds")
    failed_requests: float = Field(description="downtime x the request rate when it runs")
    cost_replica_hours: float = Field(
        description="replica-hours over the horizon: steady replicas plus rollout surge"
    )
    security: tuple[SecurityNote, ...] = ()
    passes_policy: bool = Field(description="within the drift policy's limits")
    reasons: tuple[str, ...] = Field(default=(), description="why it does not pass")


class DriftPolicy(_Doc):
    """Limits a plan must stay within for ``--auto`` to apply it."""

    max_downtime_seconds: Seconds = 5.0
    max_cost_replica_hours: float | None = Field(
        default=None, ge=0.0, le=MAX_REPLICA_HOURS, allow_inf_nan=False
    )
    allow_security: Literal["none", "low", "medium", "high"] = Field(
        default="low", description="the worst security note severity a plan may carry"
    )
    horizon_hours: float = Field(
        default=24.0 * 30,
        gt=0.0,
        le=MAX_HORIZON_HOURS,
        allow_inf_nan=False,
        description="cost horizon",
    )


class Override(_Doc):
    """The operator's word, which always wins over the automatic choice: a plan to apply, or
    none (``plan: null`` freezes automatic remediation)."""

    plan: Literal["reapply-now", "reapply-in-window", "adopt-observed"] | None = None
    reason: str = ""


class DriftAlert(_Doc):
    """A proactive drift alert: a resource likely to drift within the horizon."""

    kind: Literal["drift-predicted"] = "drift-predicted"
    resource: str
    probability: float = Field(ge=0.0, le=1.0, description="posterior mean P(drift)")
    low: float = Field(ge=0.0, le=1.0, description="lower end of the interval")
    high: float = Field(ge=0.0, le=1.0, description="upper end of the interval")
    interval: float = Field(description="credible mass of [low, high], e.g. 0.9")
    horizon_days: float
    threshold: float
    top_field_class: str | None = None
    top_manager: str | None = None


class Prediction(_Doc):
    """P(drift within the horizon) of one resource."""

    resource: str
    probability: float
    low: float
    high: float
    changes_seen: int


class PlansDocument(_Doc):
    """What ``plans.json`` holds."""

    drifts: int
    impact: Impact | None = None
    plans: tuple[Plan, ...]
    chosen: int | None = Field(default=None, description="the plan --auto picked, if any")
    chosen_by: Literal["policy", "override"] | None = None


__all__ = [
    "Drift",
    "DriftAlert",
    "DriftPolicy",
    "IgnoreRule",
    "IgnoreRules",
    "Impact",
    "Override",
    "Plan",
    "PlanAction",
    "PlansDocument",
    "Prediction",
    "Rollout",
    "SecurityNote",
]
