"""Impact of a drift set on the SLOs, remediation plans, and the security rule set.

**Impact.** Each drift is mapped to the twin where the twin has the concept: a workload's
``spec.replicas`` -> the service's replicas; a CPU limit lowered -> the service's processing
time scaled by expected / observed limit (a CPU-bound service throttled to the lower limit);
a missing Deployment or Service -> the service down for the whole run. Everything else is listed as
unmapped, never guessed. Both topologies are simulated with the same seed at the given load,
and the availability and p99 latency compared with the SLO.

**Plans.** Three per drift set, in this order:

1. ``reapply-now``: server-side apply the expected manifests now, delete extra resources;
2. ``reapply-in-window``: the same in the low-traffic hour of the traffic forecast;
3. ``adopt-observed``: write the observed objects into the desired state; the cluster is
   not touched.

Each plan's downtime is the sum of simulated rolling updates (:mod:`twin.drift.rollout`)
of the workloads whose pod template it changes, with their own ``maxSurge`` and
``maxUnavailable``, readiness delay (the readiness probe's ``initialDelaySeconds`` plus half
its period) and ``preStop`` sleep; its cost is the replica-hours over the policy's horizon
(steady replicas plus the rollouts' surge); its security notes are the rule set's findings
the plan leaves in place (see :func:`security_findings`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twin.drift.diff import clean
from twin.drift.documents import (
    Drift,
    DriftPolicy,
    Impact,
    Override,
    Plan,
    PlanAction,
    Rollout,
    SecurityNote,
)
from twin.drift.manifests import K8sObject
from twin.drift.rollout import RolloutParams, simulate
from twin.quantity import parse_quantity

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
SEVERITY = {"none": 0, "low": 1, "medium": 2, "high": 3}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.I)

# -- security rules ---------------------------------------------------------------------------


def _pod_spec(raw: dict[str, Any]) -> dict[str, Any] | None:
    spec = raw.get("spec") or {}
    if raw.get("kind") == "Pod":
        return spec
    if raw.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    tpl = (spec.get("template") or {}).get("spec")
    return tpl if isinstance(tpl, dict) else None


def _tag_of(image: str) -> tuple[str, bool]:
    last = image.rsplit("/", 1)[-1]
    return (last.split(":", 1)[1] if ":" in last.split("@", 1)[0] else ""), "@" in image


def security_findings(rid: str, raw: dict[str, Any]) -> list[SecurityNote]:
    """The rule set on one object: privileged containers, running as root, host namespaces
    and hostPath volumes, added capabilities, an image on ``latest`` or no tag, secrets in
    plain env values."""
    out: list[SecurityNote] = []
    spec = _pod_spec(raw)
    if spec is None:
        return out
    base = "/spec/template/spec" if raw.get("kind") != "Pod" else "/spec"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            out.append(
                SecurityNote(
                    rule="host-namespace",
                    resource=rid,
                    path=f"{base}/{key}",
                    message=f"{key} shares the node's namespace",
                    severity="high",
                )
            )
    for i, v in enumerate(spec.get("volumes") or []):
        if isinstance(v, dict) and "hostPath" in v:
            out.append(
                SecurityNote(
                    rule="host-path",
                    resource=rid,
                    path=f"{base}/volumes/{i}",
                    message=f"volume {v.get('name')!r} mounts a node path",
                    severity="high",
                )
            )
    pod_sc = spec.get("securityContext") or {}
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            if not isinstance(c, dict):
                continue
            where = f"{base}/{group}/{i}"
            name = c.get("name")
            sc = c.get("securityContext") or {}
            if sc.get("privileged") is True:
                out.append(
                    SecurityNote(
                        rule="privileged",
                        resource=rid,
                        path=f"{where}/securityContext/privileged",
                        message=f"container {name!r} is privileged",
                        severity="high",
                    )
                )
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            if user == 0 or non_root is False:
                out.append(
                    SecurityNote(
                        rule="run-as-root",
                        resource=rid,
                        path=f"{where}/securityContext",
                        message=f"container {name!r} may run as root",
                        severity="high",
                    )
                )
            added = ((sc.get("capabilities") or {}).get("add")) or []
            extra = [cap for cap in added if str(cap).upper() not in ("NET_BIND_SERVICE",)]
            if extra:
                out.append(
                    SecurityNote(
                        rule="capabilities-added",
                        resource=rid,
                        path=f"{where}/securityContext/capabilities/add",
                        message=f"container {name!r} adds {sorted(map(str, extra))}",
                        severity="medium",
                    )
                )
            tag, digest = _tag_of(str(c.get("image", "")))
            if not digest and tag in ("", "latest"):
                out.append(
                    SecurityNote(
                        rule="image-latest",
                        resource=rid,
                        path=f"{where}/image",
                        message=f"container {name!r} runs a mutable image tag ({c.get('image')})",
                        severity="medium",
                    )
                )
            for j, e in enumerate(c.get("env") or []):
                if (
                    isinstance(e, dict)
                    and "value" in e
                    and SECRET_NAME.search(str(e.get("name", "")))
                ):
                    out.append(
                        SecurityNote(
                            rule="secret-in-env",
                            resource=rid,
                            path=f"{where}/env/{j}",
                            message=f"env {e.get('name')!r} holds a secret in plain text",
                            severity="medium",
                        )
                    )
    return out


def new_findings(
    expected: dict[str, K8sObject], observed: dict[str, K8sObject], drifts: Sequence[Drift]
) -> list[SecurityNote]:
    """Findings the observed state has and the expected one does not, over the drifted
    resources: what drift added to the attack surface. A NetworkPolicy missing, and an image
    moved off a digest, are findings too."""
    out: list[SecurityNote] = []
    for rid in dict.fromkeys(d.resource for d in drifts):
        o, e = observed.get(rid), expected.get(rid)
        if o is None:
            if e is not None and e.kind == "NetworkPolicy":
                out.append(
                    SecurityNote(
                        rule="networkpolicy-removed",
                        resource=rid,
                        path="",
                        message="a NetworkPolicy of the expected state is gone: "
                        "traffic it blocked is allowed",
                        severity="high",
                    )
                )
            continue
        before = {
            (f.rule, f.path) for f in (security_findings(rid, e.raw) if e is not None else [])
        }
        out.extend(f for f in security_findings(rid, o.raw) if (f.rule, f.path) not in before)
        if e is not None:
            es, os_ = _pod_spec(e.raw) or {}, _pod_spec(o.raw) or {}
            for c in os_.get("containers") or []:
                match = next(
                    (x for x in es.get("containers") or [] if x.get("name") == c.get("name")), None
                )
                if (
                    match
                    and "@" in str(match.get("image", ""))
                    and "@" not in str(c.get("image", ""))
                ):
                    out.append(
                        SecurityNote(
                            rule="image-off-digest",
                            resource=rid,
                            path="",
                            message=f"container {c.get('name')!r} moved off its pinned digest",
                            severity="medium",
                        )
                    )
    return out


# -- rollouts ---------------------------------------------------------------------------------


def _replicas(raw: dict[str, Any]) -> int:
    v = (raw.get("spec") or {}).get("replicas", 1)
    return int(v) if isinstance(v, int) else 1


def rollout_params(
    raw: dict[str, Any], *, propagation_seconds: float = 1.0, response_seconds: float = 0.05
) -> RolloutParams:
    """The rolling-update settings of a workload manifest (defaults where it says nothing)."""
    spec = raw.get("spec") or {}
    strategy = spec.get("strategy") or spec.get("updateStrategy") or {}
    ru = strategy.get("rollingUpdate") or {}
    pod = _pod_spec(raw) or {}
    ready = 5.0
    drain = 0.0
    for c in pod.get("containers") or []:
        probe = c.get("readinessProbe") if isinstance(c, dict) else None
        if isinstance(probe, dict):
            ready = max(
                ready if ready != 5.0 else 0.0,
                float(probe.get("initialDelaySeconds", 0))
                + float(probe.get("periodSeconds", 10)) / 2,
            )
        cmd = (
            (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
            if isinstance(c, dict)
            else None
        )
        if isinstance(cmd, list):
            m = re.search(r"sleep\s+(\d+(?:\.\d+)?)", " ".join(map(str, cmd)))
            if m:
                drain = max(drain, float(m.group(1)))
    default_unavailable: int | str = 1 if raw.get("kind") == "DaemonSet" else "25%"
    default_surge: int | str = 0 if raw.get("kind") == "DaemonSet" else "25%"
    if raw.get("kind") == "StatefulSet":
        default_surge, default_unavailable = 0, 1
    return RolloutParams(
        replicas=_replicas(raw),
        max_surge=ru.get("maxSurge", default_surge),
        max_unavailable=ru.get("maxUnavailable", default_unavailable),
        ready_seconds=ready,
        propagation_seconds=propagation_seconds,
        drain_seconds=drain,
        response_seconds=response_seconds,
    )


def _rollout(rid: str, raw: dict[str, Any], response_seconds: float) -> Rollout:
    p = rollout_params(raw, response_seconds=response_seconds)
    r = simulate(p)
    return Rollout(
        resource=rid,
        replicas=p.replicas,
        max_surge=r.surge,
        max_unavailable=r.unavailable,
        duration_seconds=r.duration_seconds,
        downtime_seconds=r.downtime_seconds,
        surge_replica_hours=r.surge_replica_seconds / 3600.0,
    )


# -- impact -----------------------------------------------------------------------------------


def _cpu(raw: dict[str, Any]) -> float | None:
    pod = _pod_spec(raw) or {}
    total = 0.0
    for c in pod.get("containers") or []:
        v = parse_quantity(((c.get("resources") or {}).get("limits") or {}).get("cpu"))
        if v is None:
            return None
        total += float(v)
    return total or None


def impact(
    drifts: Sequence[Drift],
    expected: dict[str, K8sObject],
    observed: dict[str, K8sObject],
    topology: Any,
    *,
    load_multiplier: float = 1.0,
    duration: float = 120.0,
    seed: int = 1,
) -> Impact:
    """Simulate the expected and the drifted system (see the module docstring)."""
    from twin.scenario import Load, OutageFault, Scenario
    from twin.sim import Simulation

    services = dict(topology.services)
    modelled: list[str] = []
    unmapped: list[str] = []
    down: list[str] = []
    for d in drifts:
        kind, _, name = d.resource.split("/", 2)
        label = f"{d.resource}{d.path}"
        gone = d.change == "missing" and kind == "Service"  # nothing reaches the pods
        if (kind not in WORKLOADS and not gone) or name not in services:
            unmapped.append(label)
            continue
        svc = services[name]
        if d.path == "":
            if d.change == "missing":
                down.append(name)
                modelled.append(label)
            else:
                unmapped.append(label)
        elif d.path == "/spec/replicas" and isinstance(d.observed, int) and d.observed >= 1:
            services[name] = svc.model_copy(update={"replicas": d.observed})
            modelled.append(label)
        elif (
            re.search(r"/resources/limits/cpu$", d.path)
            and d.resource in observed
            and d.resource in expected
        ):
            e, o = _cpu(expected[d.resource].raw), _cpu(observed[d.resource].raw)
            if e and o and o < e:
                factor = e / o
                ops = {
                    k: op.model_copy(update={"service_time": op.service_time.scaled(factor)})
                    if hasattr(op.service_time, "scaled")
                    else op
                    for k, op in svc.operations.items()
                }
                services[name] = svc.model_copy(update={"operations": ops})
            modelled.append(label)
        else:
            unmapped.append(label)
    if not modelled:
        return Impact(unmapped=tuple(unmapped), load_multiplier=load_multiplier)
    drifted = topology.model_copy(update={"services": services})
    faults = [
        OutageFault.model_validate(
            {"kind": OutageFault.name, "target": n, "start": 0.0, "duration": duration}
        )
        for n in down
    ]
    base = Scenario(
        duration=duration,
        warmup=min(10.0, duration / 10),
        seed=seed,
        load=Load(multiplier=load_multiplier),
    )
    a = Simulation(topology, base).run().summary
    b = Simulation(drifted, base.model_copy(update={"faults": faults})).run().summary
    slo = topology.slo
    meets = None
    if slo.availability is not None or slo.latency_p99 is not None:
        meets = (slo.availability is None or (b.availability or 0.0) >= slo.availability) and (
            slo.latency_p99 is None
            or (b.latency.p99 is not None and b.latency.p99 <= slo.latency_p99)
        )
    return Impact(
        modelled=tuple(modelled),
        unmapped=tuple(unmapped),
        load_multiplier=load_multiplier,
        expected_availability=a.availability,
        observed_availability=b.availability,
        expected_p99_seconds=a.latency.p99,
        observed_p99_seconds=b.latency.p99,
        slo_availability=slo.availability,
        slo_latency_p99_seconds=slo.latency_p99,
        observed_meets_slo=meets,
    )


# -- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """What the plans need of the load: the request rate now and in the low-traffic window."""

    rate_now: float = 0.0
    window_hour: int | None = None
    rate_window: float | None = None
    hours_until_window: float = 0.0


def _restarts(drifts: Sequence[Drift]) -> bool:
    return any(d.path.startswith("/spec/template/") for d in drifts)


def _actions(
    drifts: Sequence[Drift],
    expected: dict[str, K8sObject],
    observed: dict[str, K8sObject],
    target: str,
) -> list[PlanAction]:
    out: list[PlanAction] = []
    by_res: dict[str, list[Drift]] = {}
    for d in drifts:
        by_res.setdefault(d.resource, []).append(d)
    for rid, ds in by_res.items():
        e, o = expected.get(rid), observed.get(rid)
        if target == "cluster":
            if e is None and o is not None:
                out.append(
                    PlanAction(
                        resource=rid,
                        target="cluster",
                        patch=None,
                        operation="delete",
                        restarts_pods=False,
                    )
                )
            elif e is not None:
                op = "create" if o is None else "patch"
                out.append(
                    PlanAction(
                        resource=rid,
                        target="cluster",
                        patch=copy.deepcopy(e.raw),
                        operation=op,
                        restarts_pods=_restarts(ds) and e.kind in WORKLOADS,
                    )
                )
        elif o is None:
            out.append(
                PlanAction(
                    resource=rid,
                    target="desired-state",
                    patch=None,
                    operation="delete",
                    restarts_pods=False,
                )
            )
        else:
            op = "create" if e is None else "patch"
            out.append(
                PlanAction(
                    resource=rid,
                    target="desired-state",
                    patch=clean(o.raw),
                    operation=op,
                    restarts_pods=False,
                )
            )
    return out


def _replica_hours(objs: dict[str, K8sObject], rids: set[str], hours: float) -> float:
    return sum(
        _replicas(objs[r].raw) * hours
        for r in rids
        if r in objs and objs[r].kind in ("Deployment", "StatefulSet", "ReplicaSet")
    )


def _judge(plan: dict[str, Any], policy: DriftPolicy) -> tuple[bool, list[str]]:
    reasons = []
    if plan["downtime_seconds"] > policy.max_downtime_seconds:
        reasons.append(
            f"downtime {plan['downtime_seconds']:.2f} s > {policy.max_downtime_seconds:g} s"
        )
    if (
        policy.max_cost_replica_hours is not None
        and plan["cost_replica_hours"] > policy.max_cost_replica_hours
    ):
        reasons.append(
            f"cost {plan['cost_replica_hours']:.1f} replica-hours "
            f"> {policy.max_cost_replica_hours:g}"
        )
    worst = max((SEVERITY[n.severity] for n in plan["security"]), default=0)
    if worst > SEVERITY[policy.allow_security]:
        reasons.append(
            f"leaves a {next(k for k, v in SEVERITY.items() if v == worst)}-severity "
            "security finding in place"
        )
    return not reasons, reasons


def make_plans(
    drifts: Sequence[Drift],
    expected: dict[str, K8sObject],
    observed: dict[str, K8sObject],
    *,
    policy: DriftPolicy | None = None,
    traffic: Traffic | None = None,
    response_seconds: float = 0.05,
) -> list[Plan]:
    """The three plans for a drift set (see the module docstring)."""
    pol = policy or DriftPolicy()
    tr = traffic or Traffic()
    rids = {d.resource for d in drifts}
    by_res: dict[str, list[Drift]] = {}
    for d in drifts:
        by_res.setdefault(d.resource, []).append(d)
    rollouts = [
        _rollout(rid, expected[rid].raw, response_seconds)
        for rid, ds in by_res.items()
        if rid in expected and rid in observed and expected[rid].kind in WORKLOADS and _restarts(ds)
    ]
    downtime = sum(r.downtime_seconds for r in rollouts)
    surge = sum(r.surge_replica_hours for r in rollouts)
    findings = new_findings(expected, observed, drifts)
    h = pol.horizon_hours
    wait = min(tr.hours_until_window, h)
    window = (
        f"{tr.window_hour:02d}:00 UTC"
        if tr.window_hour is not None
        else "the low-traffic window (no traffic forecast given: now)"
    )
    drafts: list[dict[str, Any]] = [
        {
            "name": "reapply-now",
            "description": "server-side apply the expected manifests now; delete extra resources",
            "when": "now",
            "actions": _actions(drifts, expected, observed, "cluster"),
            "rollouts": rollouts,
            "downtime_seconds": downtime,
            "failed_requests": downtime * tr.rate_now,
            "cost_replica_hours": _replica_hours(expected, rids, h) + surge,
            "security": [],
        },
        {
            "name": "reapply-in-window",
            "description": "the same re-apply, in the lowest-traffic hour of the forecast",
            "when": window,
            "actions": _actions(drifts, expected, observed, "cluster"),
            "rollouts": rollouts,
            "downtime_seconds": downtime,
            "failed_requests": downtime
            * (tr.rate_window if tr.rate_window is not None else tr.rate_now),
            "cost_replica_hours": _replica_hours(observed, rids, wait)
            + _replica_hours(expected, rids, h - wait)
            + surge,
            "security": [
                n.model_copy(
                    update={"message": f"{n.message} (until {window})", "severity": n.severity}
                )
                for n in findings
            ]
            if wait > 0
            else [],
        },
        {
            "name": "adopt-observed",
            "description": "write the observed objects into the desired state; "
            "the cluster is not touched",
            "when": "now",
            "actions": _actions(drifts, expected, observed, "desired-state"),
            "rollouts": [],
            "downtime_seconds": 0.0,
            "failed_requests": 0.0,
            "cost_replica_hours": _replica_hours(observed, rids, h),
            "security": findings,
        },
    ]
    plans = []
    for i, draft in enumerate(drafts, start=1):
        ok, reasons = _judge(draft, pol)
        plans.append(
            Plan(
                id=i,
                passes_policy=ok,
                reasons=tuple(reasons),
                **{
                    **draft,
                    "actions": tuple(draft["actions"]),
                    "rollouts": tuple(draft["rollouts"]),
                    "security": tuple(draft["security"]),
                },
            )
        )
    return plans


def choose(plans: Sequence[Plan], override: Override | None) -> tuple[int | None, str | None]:
    """The plan ``--auto`` applies: the override's, whatever the policy says; else the first
    that passes the policy; else none."""
    if override is not None:
        if override.plan is None:
            return None, "override"
        return next(p.id for p in plans if p.name == override.plan), "override"
    for p in plans:
        if p.passes_policy:
            return p.id, "policy"
    return None, None


__all__ = [
    "Traffic",
    "choose",
    "impact",
    "make_plans",
    "new_findings",
    "rollout_params",
    "security_findings",
]
