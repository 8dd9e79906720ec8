"""The diff that shows only real drift: normalised objects compared field by field.

Each difference becomes a :class:`~twin.drift.documents.Drift` with a JSON pointer, the
expected and observed values, and the field manager that owns it (from the observed object's
``metadata.managedFields``: the entry whose ``fieldsV1`` tree reaches deepest along the
drifted path, the latest write on a tie). A missing and an extra resource are drifts with path
``""``. Objects the cluster makes for itself (events, endpoints, controller revisions,
anything with an ``ownerReference``, the per-namespace ``kube-root-ca.crt`` and ``default``
service account, Helm's release secrets) are never extra. A workload's ``spec.replicas`` is
owned by the HorizontalPodAutoscaler that targets it: it is drift only outside the HPA's
bounds. Ignore rules in Argo CD's ``ignoreDifferences`` shape are applied last.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twin.drift.documents import Drift, IgnoreRule
from twin.drift.manifests import CLUSTER_SCOPED, K8sObject
from twin.drift.normalise import (
    SERVER_METADATA,
    Keyed,
    normalise,
    plain,
    prune_server_filled,
)

GENERATED_KINDS = frozenset(
    {
        "Event",
        "Endpoints",
        "EndpointSlice",
        "ControllerRevision",
        "Lease",
        "PodMetrics",
        "ReplicaSet",
        "Pod",
    }
)
"""Kinds the cluster makes for itself; an unowned one in the observed state is not drift
unless the expected state names it (bare Pods and ReplicaSets in a manifest are compared)."""

SYSTEM_OBJECTS = frozenset(
    {
        ("ConfigMap", "kube-root-ca.crt"),
        ("ConfigMap", "istio-ca-root-cert"),
        ("ServiceAccount", "default"),
        ("Service", "kubernetes"),
    }
)
"""Objects every namespace (or the default one) gets from the control plane or the mesh."""

GENERATED_SECRET_TYPES = frozenset({"kubernetes.io/service-account-token", "helm.sh/release.v1"})

Segment = tuple[str, Any]  # ("f", key) or ("k", merge-key fields): a managedFields step


def escape(key: str) -> str:
    """One JSON pointer reference token (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return key.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class _Found:
    pointer: str
    fields: tuple[Segment, ...]
    expected: Any
    observed: Any


def _walk(exp: Any, obs: Any, ptr: str, fields: tuple[Segment, ...], out: list[_Found]) -> None:
    if isinstance(exp, dict) and isinstance(obs, dict):
        for k in exp:
            step = (*fields, ("f", k))
            if k in obs:
                _walk(exp[k], obs[k], f"{ptr}/{escape(k)}", step, out)
            else:
                out.append(_Found(f"{ptr}/{escape(k)}", step, plain(exp[k]), None))
        for k in obs:
            if k not in exp:
                out.append(_Found(f"{ptr}/{escape(k)}", (*fields, ("f", k)), None, plain(obs[k])))
        return
    if isinstance(exp, Keyed) and isinstance(obs, Keyed) and exp.fields == obs.fields:
        for ident, item in exp.items.items():
            here = f"{ptr}/{exp.index[ident]}"
            if ident in obs.items:
                _walk(item, obs.items[ident], here, (*fields, ("k", obs.ids[ident])), out)
            else:
                out.append(_Found(here, (*fields, ("k", exp.ids[ident])), plain(item), None))
        for ident, item in obs.items.items():
            if ident not in exp.items:
                here = f"{ptr}/{obs.index[ident]}"
                out.append(_Found(here, (*fields, ("k", obs.ids[ident])), None, plain(item)))
        return
    if exp != obs:
        out.append(_Found(ptr, fields, plain(exp), plain(obs)))


def _same_key(text: str, ids: dict[str, Any]) -> bool:
    try:
        got = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(got, dict) and {k: got[k] for k in got} == ids


def _depth(tree: Any, fields: tuple[Segment, ...]) -> int:
    """How many steps of ``fields`` a ``fieldsV1`` tree owns (an atomic list or map owned as a
    whole counts to the end)."""
    node = tree
    for i, (how, key) in enumerate(fields):
        if not isinstance(node, dict):
            return i
        if how == "f":
            nxt = node.get(f"f:{key}")
        else:
            nxt = next(
                (v for k, v in node.items() if k.startswith("k:") and _same_key(k[2:], key)), None
            )
        if nxt is None:
            return i
        if nxt in ({}, {".": {}}):  # owned as a leaf (atomic value): all below is its
            return len(fields)
        node = nxt
    return len(fields)


def owner(managed: Any, fields: tuple[Segment, ...]) -> tuple[str | None, str | None]:
    """The manager owning ``fields`` (deepest match, latest write on a tie) and its time."""
    best: tuple[int, str, str | None, str | None] = (0, "", None, None)
    if not isinstance(managed, list):
        return None, None
    for entry in managed:
        if not isinstance(entry, dict):
            continue
        depth = _depth(entry.get("fieldsV1"), fields)
        when = str(entry.get("time") or "")
        if depth > 0 and (depth, when) > best[:2]:
            best = (depth, when, entry.get("manager"), entry.get("time"))
    return best[2], best[3]


def _creator(managed: Any) -> tuple[str | None, str | None]:
    if not isinstance(managed, list) or not managed:
        return None, None
    entries = [e for e in managed if isinstance(e, dict)]
    if not entries:
        return None, None
    first = min(entries, key=lambda e: str(e.get("time") or ""))
    return first.get("manager"), first.get("time")


def clean(raw: dict[str, Any]) -> dict[str, Any]:
    """An object without its server-owned fields (status, managedFields, uid ...)."""
    o = copy.deepcopy(raw)
    o.pop("status", None)
    meta = o.get("metadata")
    if isinstance(meta, dict):
        for k in SERVER_METADATA:
            meta.pop(k, None)
    return o


def diff_objects(expected: K8sObject, observed: K8sObject) -> list[Drift]:
    """The drifts of one resource present on both sides."""
    exp = normalise(expected.raw)
    obs = normalise(observed.raw)
    prune_server_filled(expected.kind, exp, obs)
    found: list[_Found] = []
    _walk(exp, obs, "", (), found)
    managed = (observed.raw.get("metadata") or {}).get("managedFields")
    out = []
    for f in found:
        manager, since = owner(managed, f.fields)
        out.append(
            Drift(
                resource=expected.id,
                path=f.pointer,
                expected=f.expected,
                observed=f.observed,
                manager=manager,
                since=since,
            )
        )
    return out


def generated(obj: K8sObject) -> bool:
    """Whether the cluster made this object for itself (never an extra resource)."""
    meta = obj.raw.get("metadata") or {}
    if obj.kind in GENERATED_KINDS or meta.get("ownerReferences"):
        return True
    if (obj.kind, obj.name) in SYSTEM_OBJECTS:
        return True
    return obj.kind == "Secret" and obj.raw.get("type") in GENERATED_SECRET_TYPES


def _hpa_bounds(*sides: dict[str, K8sObject]) -> dict[str, tuple[int, int]]:
    bounds: dict[str, tuple[int, int]] = {}
    for side in sides:
        for obj in side.values():
            if obj.kind != "HorizontalPodAutoscaler":
                continue
            spec = obj.raw.get("spec") or {}
            ref = spec.get("scaleTargetRef") or {}
            lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
            if isinstance(lo, int) and isinstance(hi, int) and ref.get("kind") and ref.get("name"):
                bounds.setdefault(f"{ref['kind']}/{obj.namespace}/{ref['name']}", (lo, hi))
    return bounds


def diff_states(
    expected: dict[str, K8sObject],
    observed: dict[str, K8sObject],
    rules: Sequence[IgnoreRule] = (),
) -> list[Drift]:
    """Every real drift between the expected and the observed state, ignore rules applied."""
    drifts: list[tuple[str, Drift]] = []
    for rid, e in expected.items():
        o = observed.get(rid)
        if o is None:
            drifts.append((e.group, Drift(resource=rid, path="", expected=clean(e.raw))))
            continue
        drifts.extend((e.group, d) for d in diff_objects(e, o))
    namespaces = {e.namespace for e in expected.values() if e.kind not in CLUSTER_SCOPED}
    for rid, o in observed.items():
        if (
            rid in expected
            or generated(o)
            or o.kind in CLUSTER_SCOPED
            or o.namespace not in namespaces
        ):
            continue
        manager, since = _creator((o.raw.get("metadata") or {}).get("managedFields"))
        drifts.append(
            (
                o.group,
                Drift(resource=rid, path="", observed=clean(o.raw), manager=manager, since=since),
            )
        )
    bounds = _hpa_bounds(observed, expected)
    out = []
    for group, d in drifts:
        if d.path == "/spec/replicas" and d.resource in bounds:
            lo, hi = bounds[d.resource]
            if isinstance(d.observed, int) and lo <= d.observed <= hi:
                continue
        if any(r.matches(group, d) for r in rules):
            continue
        out.append(d)
    return out


__all__ = [
    "GENERATED_KINDS",
    "SYSTEM_OBJECTS",
    "clean",
    "diff_objects",
    "diff_states",
    "escape",
    "generated",
    "owner",
]
