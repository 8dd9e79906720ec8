"""``rollback.json``: the rollback signature of a change set.

What to revert, in which order, how, and how to know it worked:

- **reverts**, in reverse dependency order (a change is reverted after every change that
  depends on it), each with its dependencies, the commands or config that revert it, and
  the twin's own inverse merge patch (:func:`twin.change.document.inverse_patch`), which
  is exact for every change, including those no runtime object expresses;
- **commands**: ``kubectl patch`` for replicas and autoscalers, ``kubectl rollout undo``
  for a new version; client policy (timeouts, retries, breakers) as mesh config where the
  caller renders it (the ``twin check-change`` command writes Istio YAML);
- **verification**: PromQL expressions with a comparison, a threshold and a window, one per
  SLO of each entry and per reverted service, that confirm the system is back.

The JSON Schema of the file ships as package data (``rollback.schema.json``) and is
generated from :class:`RollbackSignature` (:func:`json_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.calibrate.metrics import MetricMap
from twin.change.document import (
    ChangeSet,
    DependencyChange,
    Reduced,
    Step,
    Target,
    VersionChange,
)
from twin.policy import Policy
from twin.topology import Topology

SCHEMA_FILE = "rollback.schema.json"
P99_TOLERANCE = 1.5
"""A reverted service is back when its p99 is within this factor of the twin's p99 for it
before the change (the twin's figure is a fault-free run; production has more noise)."""
WINDOW = "5m"
"""Range of every verification query: long enough for a rate, short enough to act on."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TwinPatch(_Doc):
    """A merge patch (RFC 7386) on one of the twin's documents."""

    target: Target
    patch: dict[str, Any]


class ConfigFile(_Doc):
    """A configuration file that reverts part of a change when applied."""

    format: Literal["istio"] = Field(description="what reads it")
    name: str = Field(description="suggested file name")
    text: str = Field(description="the file's content (YAML)")


class Revert(_Doc):
    """How to revert one change."""

    order: int = Field(ge=1, description="1 is reverted first")
    change: str = Field(description="the change's id")
    kind: str = Field(description="the change's kind (patch, version, dependency)")
    description: str | None = None
    depends_on: list[str] = Field(
        description="changes it depends on: still in place when it is reverted"
    )
    required_by: list[str] = Field(
        description="changes that depend on it: reverted before it (lower order)"
    )
    commands: list[str] = Field(description="shell commands, run in order")
    config: list[ConfigFile] = Field(description="config files to apply, where they exist")
    twin_patch: list[TwinPatch] = Field(
        description="the twin's inverse merge patches, applied in order, exact"
    )
    notes: list[str] = Field(description="what the commands cannot express")


class Verification(_Doc):
    """A PromQL check that must hold after the rollback."""

    name: str
    promql: str = Field(description="an instant query whose value is compared")
    comparison: Literal["<=", ">="]
    threshold: float
    window: str = Field(description="range of the query's rates (Prometheus duration)")
    description: str


class RollbackSignature(_Doc):
    """The rollback signature of a change set (``rollback.json``)."""

    version: Literal[1] = 1
    name: str = Field(description="the change set's name")
    reverts: list[Revert] = Field(description="in the order to revert")
    verification: list[Verification] = Field(description="checks that confirm the rollback")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``rollback.json``, from the model."""
    schema = RollbackSignature.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://shadow-twin.dev/schemas/rollback.schema.json"
    return schema


def shipped_schema() -> dict[str, Any]:
    """The JSON Schema shipped with the package (what a pipeline validates against)."""
    text = resources.files("twin.change").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# -- commands ---------------------------------------------------------------------------------


def _kubectl_patch(kind: str, name: str, body: Mapping[str, Any]) -> str:
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return f"kubectl patch {kind} {name} --type merge -p '{text}'"


def _touched(step: Step, target: Target) -> tuple[dict[str, set[str]], set[str], set[str]]:
    """What the step's forward patches on ``target`` touch: fields per service, client keys,
    other top-level keys."""
    services: dict[str, set[str]] = {}
    clients: set[str] = set()
    other: set[str] = set()
    for t, forward in step.patches:
        if t != target:
            continue
        for key, value in forward.items():
            if key == "services":
                for svc, sp in (value or {}).items():
                    services.setdefault(svc, set()).update(sp or {"(all)"})
            elif key == "clients":
                clients.update(value or {})
            else:
                other.add(key)
    return services, clients, other


def _topology_commands(step: Step) -> tuple[list[str], list[str]]:
    cmds: list[str] = []
    notes: list[str] = []
    before = step.topology_before
    services, _, other = _touched(step, "topology")
    for svc, keys in services.items():
        old = before.services.get(svc)
        if old is None:
            cmds.append(f"kubectl delete deployment {svc}")
            continue
        for key in sorted(keys):
            if key == "replicas":
                body = {"spec": {"replicas": old.replicas}}
                cmds.append(_kubectl_patch("deployment", svc, body))
            elif key == "operations" and isinstance(step.change, (VersionChange, DependencyChange)):
                continue  # the rollout undo below covers it
            else:
                notes.append(
                    f"{svc}.{key}: no Kubernetes object holds it; revert it where the service "
                    "is configured (the twin's patch says to what)"
                )
    if isinstance(step.change, VersionChange):
        cmds.append(f"kubectl rollout undo deployment/{step.change.service}")
    if isinstance(step.change, DependencyChange):  # the new call shipped in the caller's code
        caller = step.change.caller.partition(":")[0]
        cmds.append(f"kubectl rollout undo deployment/{caller}")
    for key in sorted(other):
        notes.append(f"{key}: not a Kubernetes object; the twin's patch reverts it")
    return cmds, notes


def _hpa_body(auto: Any) -> dict[str, Any]:
    target = round(auto.target_utilization * 100)
    metric = {"type": "Utilization", "averageUtilization": target}
    return {
        "spec": {
            "minReplicas": auto.min,
            "maxReplicas": auto.max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": metric}}],
        }
    }


def _policy_commands(step: Step) -> tuple[list[str], list[str], list[str]]:
    """Commands, notes, and the callees whose client policy changes back."""
    cmds: list[str] = []
    notes: list[str] = []
    before = step.policy_before
    services, clients, _ = _touched(step, "policy")
    for svc, keys in services.items():
        old = before.services.get(svc)
        if "(all)" in keys:
            keys = {"autoscale"} if old is not None and old.autoscale is not None else set()
            keys |= {"(service policy)"}
        for key in sorted(keys):
            if key == "autoscale":
                auto = old.autoscale if old is not None else None
                if auto is None:
                    cmds.append(f"kubectl delete hpa {svc}")
                else:
                    cmds.append(_kubectl_patch("hpa", svc, _hpa_body(auto)))
            else:
                notes.append(
                    f"{svc}.{key}: server-side protection; revert it in the service's own "
                    "configuration (the twin's patch says to what)"
                )
    edges = step.topology_before.service_graph().edges
    callees: set[str] = set()
    for key in clients:
        if key == "*":
            callees.update(b for _, b in edges)
        else:
            callees.add(key.partition("->")[2])
    return cmds, notes, sorted(callees)


ClientRenderer = Callable[[Policy, Topology, Sequence[str]], list[ConfigFile]]
"""Renders the client policy of the given callees as mesh config (the CLI layer has one)."""


def build_rollback(
    changes: ChangeSet,
    reduced: Reduced,
    *,
    service_p99: Mapping[str, float | None] | None = None,
    metrics: MetricMap | None = None,
    render_clients: ClientRenderer | None = None,
) -> RollbackSignature:
    """The rollback signature of a reduced change set; ``service_p99``: the twin's p99 per
    service before the change (fault-free run), for the per-service checks."""
    m = metrics or MetricMap()
    reverts: list[Revert] = []
    for order, step in enumerate(reversed(reduced.steps), start=1):
        cmds: list[str] = []
        notes: list[str] = []
        config: list[ConfigFile] = []
        callees: list[str] = []
        targets = {t for t, _ in step.patches}
        if "topology" in targets:
            more, n = _topology_commands(step)
            cmds += more
            notes += n
        if "policy" in targets:
            more, n, callees = _policy_commands(step)
            cmds += more
            notes += n
        if isinstance(step.change, VersionChange) and "topology" not in targets:
            cmds.append(f"kubectl rollout undo deployment/{step.change.service}")
        if callees:
            if render_clients is not None:
                config = render_clients(step.policy_before, step.topology_before, callees)
            else:
                notes.append(
                    "client policy of " + ", ".join(callees) + ": apply the twin's patch (no "
                    "mesh renderer was given)"
                )
        if step.faults:
            notes.append("the new version's error rate reverts with the version (rollout undo)")
        c = step.change
        reverts.append(
            Revert(
                order=order,
                change=c.id,
                kind=c.kind,
                description=c.description,
                depends_on=list(c.depends_on),
                required_by=changes.dependents(c.id),
                commands=list(dict.fromkeys(cmds)),
                config=config,
                twin_patch=[TwinPatch(target=t, patch=p) for t, p in step.inverses],
                notes=notes,
            )
        )
    return RollbackSignature(
        name=changes.name,
        reverts=reverts,
        verification=verification(reduced, m, service_p99 or {}),
    )


def _sel(m: MetricMap, service: str, extra: str = "") -> str:
    parts = [f'{m.service_label}="{service}"']
    if m.extra_selector:
        parts.append(m.extra_selector)
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def verification(
    reduced: Reduced, m: MetricMap, service_p99: Mapping[str, float | None]
) -> list[Verification]:
    """SLO checks per entry service, and per service a reverted change touched."""
    topo = reduced.before_topology
    out: list[Verification] = []
    entries = list(dict.fromkeys(w.service for w in topo.workload))
    fail = f'{m.status_label}=~"{m.error_status}.."'
    for svc in entries:
        if topo.slo.availability is not None:
            out.append(
                Verification(
                    name=f"{svc}-availability",
                    promql=(
                        f"1 - sum(rate({m.requests}{_sel(m, svc, fail)}[{WINDOW}])) / "
                        f"sum(rate({m.requests}{_sel(m, svc)}[{WINDOW}]))"
                    ),
                    comparison=">=",
                    threshold=topo.slo.availability,
                    window=WINDOW,
                    description=f"{svc} answers within its availability objective again",
                )
            )
        if topo.slo.latency_p99 is not None:
            out.append(
                Verification(
                    name=f"{svc}-latency-p99",
                    promql=(
                        f"histogram_quantile(0.99, sum by (le) (rate({m.duration_bucket}"
                        f"{_sel(m, svc)}[{WINDOW}])))"
                    ),
                    comparison="<=",
                    threshold=topo.slo.latency_p99,
                    window=WINDOW,
                    description=f"{svc}'s p99 latency is within its objective again (seconds)",
                )
            )
    touched: list[str] = []
    for step in reduced.steps:
        for target, patch in step.patches:
            if target == "topology":
                touched += list(patch.get("services") or {})
        if isinstance(step.change, VersionChange):
            touched.append(step.change.service)
    for svc in dict.fromkeys(touched):
        if svc in entries or svc not in topo.services:
            continue
        p99 = service_p99.get(svc)
        if p99 is not None and p99 > 0:
            out.append(
                Verification(
                    name=f"{svc}-p99-back",
                    promql=(
                        f"histogram_quantile(0.99, sum by (le) (rate({m.duration_bucket}"
                        f"{_sel(m, svc)}[{WINDOW}])))"
                    ),
                    comparison="<=",
                    threshold=round(p99 * P99_TOLERANCE, 6),
                    window=WINDOW,
                    description=(
                        f"{svc}'s p99 is back within {P99_TOLERANCE:g}x the twin's "
                        f"{p99:.3g} s before the change"
                    ),
                )
            )
        out.append(
            Verification(
                name=f"{svc}-errors-back",
                promql=(
                    f"sum(rate({m.requests}{_sel(m, svc, fail)}[{WINDOW}])) / "
                    f"sum(rate({m.requests}{_sel(m, svc)}[{WINDOW}]))"
                ),
                comparison="<=",
                threshold=1.0 - (topo.slo.availability or 0.99),
                window=WINDOW,
                description=f"{svc}'s error ratio is back within the error budget",
            )
        )
    return out


__all__ = [
    "P99_TOLERANCE",
    "SCHEMA_FILE",
    "WINDOW",
    "ClientRenderer",
    "ConfigFile",
    "Revert",
    "RollbackSignature",
    "TwinPatch",
    "Verification",
    "build_rollback",
    "json_schema",
    "shipped_schema",
    "verification",
]
