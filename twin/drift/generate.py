"""Detection test cases: real manifests, injected drifts of every class, API-server noise.

:func:`make_case` takes manifests (the expected state), applies them as an API server would
(writing out its defaults, assigning cluster IPs, adding status, managedFields, uid,
resourceVersion, the last-applied annotation, and the objects controllers create), then edits
the result as people and tools do (one drift class per resource, so every injected drift is
one known difference), and finally adds the noise that does not change the configuration:
lists with merge keys reordered, quantities respelt (``0.5`` -> ``500m``, ``1Gi`` ->
``1024Mi``), port numbers written as strings on the expected side. It returns the expected
manifests, the observed dump and the drifts a correct detector must report (resource, JSON
pointer, class and, for fields that exist in the observed state, the manager that wrote them).

The server's side is written out literally here, as ``kubectl get -o yaml`` shows it,
independently of the normaliser's tables, so a default the normaliser does not know shows up
as a false diff in the tests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from twin.drift.normalise import resource_id
from twin.quantity import format_quantity, parse_quantity

CREATED = "2024-05-01T10:00:00Z"
EDITED = "2024-05-20T14:30:00Z"
APPLIER = "kubectl-client-side-apply"

DRIFT_CLASSES = (
    "replicas",
    "limits",
    "requests",
    "image",
    "env-changed",
    "env-added",
    "env-removed",
    "resource-removed",
    "networkpolicy-removed",
    "resource-extra",
    "service-port",
    "container-port-added",
    "probe-changed",
    "probe-removed",
    "privileged",
    "run-as-root",
    "capability-added",
    "host-network",
    "label",
)
"""Every drift class the generator injects (docs/drift.md describes each)."""

Seg = str | int | dict[str, Any]


@dataclass(frozen=True)
class Injected:
    """One drift the detector must report."""

    resource: str
    path: str
    drift_class: str
    manager: str | None


@dataclass
class Case:
    expected: list[dict[str, Any]]
    observed: list[dict[str, Any]]
    truth: list[Injected]
    classes: dict[str, int] = field(default_factory=dict)


# -- the API server's side --------------------------------------------------------------------


def _probe(p: dict[str, Any]) -> None:
    for k, v in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        p.setdefault(k, v)
    if "httpGet" in p:
        p["httpGet"].setdefault("scheme", "HTTP")
    if "grpc" in p:
        p["grpc"].setdefault("service", "")


def _container(c: dict[str, Any]) -> None:
    image = str(c.get("image", ""))
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    c.setdefault(
        "imagePullPolicy",
        "Always" if tag in ("", "latest") and "@" not in image else "IfNotPresent",
    )
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports", []):
        p.setdefault("protocol", "TCP")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        if name in c:
            _probe(c[name])


def _pod_spec(s: dict[str, Any]) -> None:
    s.setdefault("restartPolicy", "Always")
    s.setdefault("terminationGracePeriodSeconds", 30)
    s.setdefault("dnsPolicy", "ClusterFirst")
    s.setdefault("securityContext", {})
    s.setdefault("schedulerName", "default-scheduler")
    if "serviceAccountName" in s:
        s.setdefault("serviceAccount", s["serviceAccountName"])
    for c in s.get("containers", []) + s.get("initContainers", []):
        _container(c)
    for v in s.get("volumes", []):
        for src in ("configMap", "secret"):
            if src in v:
                v[src].setdefault("defaultMode", 420)


def _cluster_ip(rng: np.random.Generator) -> str:
    return f"10.96.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"


def server_form(obj: dict[str, Any], rng: np.random.Generator, namespace: str) -> dict[str, Any]:
    """``obj`` as the API server stores it after ``kubectl apply`` (defaults, identity)."""
    o = copy.deepcopy(obj)
    meta = o.setdefault("metadata", {})
    if o["kind"] != "Namespace":
        meta.setdefault("namespace", namespace)
    applied = json.dumps(obj, separators=(",", ":"), sort_keys=True)
    meta.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = (
        applied + "\n"
    )
    a, b = int(rng.integers(0, 2**31)), int(rng.integers(0, 2**40))
    meta["uid"] = f"{a:08x}-0000-4000-8000-{b:012x}"
    meta["resourceVersion"] = str(int(rng.integers(1000, 999999)))
    meta["creationTimestamp"] = CREATED
    kind = o["kind"]
    spec = o.get("spec", {})
    if kind == "Deployment":
        meta["generation"] = 1
        meta["annotations"]["deployment.kubernetes.io/revision"] = "1"
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        )
        spec["template"].setdefault("metadata", {})["creationTimestamp"] = None
        _pod_spec(spec["template"]["spec"])
        n = spec["replicas"]
        o["status"] = {
            "observedGeneration": 1,
            "replicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
            "updatedReplicas": n,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "lastUpdateTime": CREATED,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "lastUpdateTime": CREATED,
                },
            ],
        }
    elif kind == "Service":
        spec.setdefault("type", "ClusterIP")
        ip = _cluster_ip(rng)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec["ipFamilies"] = ["IPv4"]
        spec["ipFamilyPolicy"] = "SingleStack"
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports", []):
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p["port"])
            if spec["type"] in ("NodePort", "LoadBalancer"):
                p.setdefault("nodePort", int(rng.integers(30000, 32768)))
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        o["status"] = {"loadBalancer": {}}
    elif kind == "Namespace":
        meta.pop("namespace", None)
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        o["spec"] = {"finalizers": ["kubernetes"]}
        o["status"] = {"phase": "Active"}
    elif kind == "NetworkPolicy":
        spec.setdefault("policyTypes", ["Ingress"] + (["Egress"] if spec.get("egress") else []))
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            for p in rule.get("ports", []):
                p.setdefault("protocol", "TCP")
    elif kind == "ServiceAccount" and rng.random() < 0.5:
        o["secrets"] = [{"name": f"{meta['name']}-token-{int(rng.integers(10000, 99999))}"}]
    return o


# -- managedFields ----------------------------------------------------------------------------

_MERGE = {
    "containers": ("name",),
    "initContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
}


def _list_keys(name: str, items: list[Any]) -> tuple[str, ...] | None:
    if name == "ports" and items and all(isinstance(i, dict) for i in items):
        return (
            ("containerPort", "protocol") if "containerPort" in items[0] else ("port", "protocol")
        )
    return _MERGE.get(name)


def fields_v1(value: Any, name: str = "") -> dict[str, Any]:
    """The ``fieldsV1`` tree that owns every field of ``value`` (merge-key lists by ``k:``,
    other lists atomically), as server-side apply writes it."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if v is None:
                continue
            if isinstance(v, dict) and v:
                out[f"f:{k}"] = {".": {}, **fields_v1(v, k)}
            elif isinstance(v, list) and v and _list_keys(k, v):
                keys = _list_keys(k, v) or ()
                sub: dict[str, Any] = {".": {}}
                for item in v:
                    ident = {f: _int(item.get(f)) for f in keys if item.get(f) is not None}
                    sub[f"k:{json.dumps(ident, separators=(',', ':'), sort_keys=True)}"] = {
                        ".": {},
                        **fields_v1(item, k),
                    }
                out[f"f:{k}"] = sub
            else:
                out[f"f:{k}"] = {}
    return out


def _int(v: Any) -> Any:
    return int(v) if isinstance(v, str) and v.isdigit() else v


def _match(item: Any, sel: dict[str, Any]) -> bool:
    """Whether a list entry has the merge-key values ``sel`` (protocol TCP when left out)."""
    if not isinstance(item, dict):
        return False
    own = {"protocol": "TCP", **item} if "protocol" in sel else item
    return all(_int(own.get(k)) == _int(v) for k, v in sel.items())


def _remove(tree: dict[str, Any], keys: list[str]) -> None:
    node = tree
    for k in keys[:-1]:
        if k not in node:
            return
        node = node[k]
    node.pop(keys[-1], None)


def _fv1_path(obj: dict[str, Any], segs: list[Seg]) -> list[str]:
    out: list[str] = []
    node: Any = obj
    name = ""
    for s in segs:
        if isinstance(s, str):
            out.append(f"f:{s}")
            node = node.get(s) if isinstance(node, dict) else None
            name = s
        elif isinstance(s, dict):
            keys = _list_keys(name, node or []) or tuple(s)
            item: dict[str, Any] = next((i for i in node or [] if _match(i, s)), {})
            ident = {k: _int(item.get(k)) for k in keys if item.get(k) is not None}
            out.append(f"k:{json.dumps(ident, separators=(',', ':'), sort_keys=True)}")
            node = item
    return out


def _nest(keys: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for k in reversed(keys):
        tree = {k: tree} if tree else {k: {}}
    return tree


def _merge(a: dict[str, Any], b: dict[str, Any]) -> None:
    for k, v in b.items():
        if k in a and isinstance(a[k], dict) and a[k] and v:
            _merge(a[k], v)
        else:
            a.setdefault(k, v)


# -- the edits --------------------------------------------------------------------------------


def _get(obj: Any, segs: list[Seg]) -> Any:
    node = obj
    for s in segs:
        if isinstance(s, dict):
            node = next((i for i in node if _match(i, s)), None)
        elif isinstance(node, dict):
            node = node.get(s)
        else:
            return None
        if node is None:
            return None
    return node


def _find(lst: Any, sel: dict[str, Any]) -> int | None:
    for i, item in enumerate(lst or []):
        if _match(item, sel):
            return i
    return None


def pointer(expected: dict[str, Any], observed: dict[str, Any], segs: list[Seg]) -> str:
    """The JSON pointer of ``segs`` (dict segments select a list entry by merge key): list
    positions from the expected object when it has the entry, else from the observed one."""
    out = ""
    e: Any = expected
    o: Any = observed
    for s in segs:
        if isinstance(s, dict):
            ie, io = _find(e, s), _find(o, s)
            idx = ie if ie is not None else io
            out += f"/{idx}"
            e = e[ie] if ie is not None else None
            o = o[io] if io is not None else None
        else:
            out += "/" + str(s).replace("~", "~0").replace("/", "~1")
            e = e.get(s) if isinstance(e, dict) else None
            o = o.get(s) if isinstance(o, dict) else None
    return out


def _first_missing(obj: dict[str, Any], segs: list[Seg]) -> list[Seg]:
    """The shortest prefix of ``segs`` absent from ``obj`` (where an added value appears)."""
    for i in range(1, len(segs) + 1):
        if _get(obj, segs[:i]) is None:
            return segs[:i]
    return segs


def _respell(value: Any, rng: np.random.Generator) -> Any:
    """The same quantity spelt differently (``0.5`` <-> ``500m``, ``1Gi`` <-> ``1024Mi``)."""
    amount = parse_quantity(value)
    if amount is None:
        return value
    text = str(value)
    if text.endswith(("Ki", "Mi", "Gi", "Ti")) or amount >= 1024 * 1024:
        options = [format_quantity(amount)]
        for suf, p in (("Ki", 1), ("Mi", 2), ("Gi", 3)):
            unit = Decimal(1024) ** p
            if amount % unit == 0:
                options.append(f"{format_quantity(amount / unit)}{suf}")
    else:
        options = [format_quantity(amount)]
        millis = amount * 1000
        if millis == millis.to_integral_value():
            options.append(f"{int(millis)}m")
    options = [o for o in options if o != text] or options
    return options[int(rng.integers(len(options)))]


def _scaled(value: Any, factor: int) -> str:
    amount = parse_quantity(value)
    assert amount is not None  # callers pick fields that hold quantities
    text = str(value)
    if text.endswith("Mi"):
        return f"{format_quantity(amount * factor / 1024 / 1024)}Mi"
    return f"{int(amount * factor * 1000)}m"


@dataclass
class _Edit:
    rid: str
    segs: list[Seg]
    cls: str
    manager: str | None
    owned: list[Seg] | None  # the path the manager now owns (None: nothing is left to own)


def _workloads(observed: dict[str, dict[str, Any]]) -> list[str]:
    return [rid for rid, o in observed.items() if o["kind"] == "Deployment"]


def _container0(o: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = o["spec"]["template"]["spec"]["containers"][0]
    return c


def _cpath(o: dict[str, Any], *rest: Seg) -> list[Seg]:
    return ["spec", "template", "spec", "containers", {"name": _container0(o)["name"]}, *rest]


def make_case(
    manifests: list[dict[str, Any]], rng: np.random.Generator, *, namespace: str = "default"
) -> Case:
    """One detection case from ``manifests`` (see the module docstring)."""
    expected = [copy.deepcopy(m) for m in manifests]
    namespaces = sorted(
        {
            (m.get("metadata") or {}).get("namespace") or namespace
            for m in expected
            if m["kind"] != "Namespace"
        }
    )
    for ns in namespaces:  # a NetworkPolicy per namespace, so one can be removed
        expected.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "same-namespace-only", "namespace": ns},
                "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]},
            }
        )
    by_id = {resource_id(m, namespace): m for m in expected}
    observed = {rid: server_form(m, rng, namespace) for rid, m in by_id.items()}
    edits: list[_Edit] = []
    pool = _workloads(observed)
    order = [pool[i] for i in rng.permutation(len(pool))]
    services = [rid for rid in observed if rid.startswith("Service/")]
    services = [services[i] for i in rng.permutation(len(services))]

    def take() -> str | None:
        return order.pop() if order else None

    def edit_replicas(rid: str) -> None:
        o = observed[rid]
        o["spec"]["replicas"] = int(o["spec"]["replicas"]) + int(rng.integers(1, 4))
        edits.append(_Edit(rid, ["spec", "replicas"], "replicas", "kubectl", ["spec", "replicas"]))

    def edit_resources(rid: str, which: str) -> bool:
        c = _container0(observed[rid])
        res = c.get("resources", {}).get(which, {})
        keys = [k for k in ("cpu", "memory") if k in res]
        if not keys:
            return False
        k = keys[int(rng.integers(len(keys)))]
        res[k] = _scaled(res[k], 2)
        segs = _cpath(observed[rid], "resources", which, k)
        edits.append(_Edit(rid, segs, which, "kubectl-edit", segs))
        return True

    def edit_image(rid: str) -> None:
        c = _container0(observed[rid])
        repo = (
            str(c["image"]).rsplit(":", 1)[0]
            if ":" in str(c["image"]).rsplit("/", 1)[-1]
            else c["image"]
        )
        c["image"] = (
            f"{repo}:latest"
            if rng.random() < 0.5
            else f"{repo}:hotfix-{int(rng.integers(100, 999))}"
        )
        segs = _cpath(observed[rid], "image")
        edits.append(_Edit(rid, segs, "image", "kubectl-set", segs))

    def edit_env(rid: str, how: str) -> bool:
        c = _container0(observed[rid])
        env = c.get("env", [])
        if how == "env-added":
            c.setdefault("env", []).append({"name": "DEBUG_DRIFT", "value": "true"})
            segs = _cpath(observed[rid], "env", {"name": "DEBUG_DRIFT"})
            edits.append(_Edit(rid, segs, how, "kubectl-edit", segs))
            return True
        plain_env = [e for e in env if "value" in e]
        if not plain_env:
            return False
        e = plain_env[int(rng.integers(len(plain_env)))]
        if how == "env-changed":
            e["value"] = str(e["value"]) + "-changed"
            segs = _cpath(observed[rid], "env", {"name": e["name"]}, "value")
            edits.append(_Edit(rid, segs, how, "kubectl-edit", segs))
        else:
            env.remove(e)
            segs = _cpath(observed[rid], "env", {"name": e["name"]})
            if not env:  # the API omits an empty list: the whole list is what is gone
                del c["env"]
                segs = segs[:-1]
            edits.append(_Edit(rid, segs, how, None, None))
        return True

    def edit_probe(rid: str, how: str) -> bool:
        c = _container0(observed[rid])
        name = next((n for n in ("readinessProbe", "livenessProbe") if n in c), None)
        if name is None:
            return False
        if how == "probe-removed":
            del c[name]
            edits.append(_Edit(rid, _cpath(observed[rid], name), how, None, None))
        else:
            c[name]["periodSeconds"] = int(c[name].get("periodSeconds", 10)) + 5
            segs = _cpath(observed[rid], name, "periodSeconds")
            edits.append(_Edit(rid, segs, how, "kubectl-edit", segs))
        return True

    def edit_security(rid: str, how: str) -> None:
        o = observed[rid]
        c = _container0(o)
        if how == "host-network":
            o["spec"]["template"]["spec"]["hostNetwork"] = True
            segs: list[Seg] = ["spec", "template", "spec", "hostNetwork"]
            edits.append(_Edit(rid, segs, how, "kubectl-edit", segs))
            return
        sc_before = copy.deepcopy(c.get("securityContext"))
        sc = c.setdefault("securityContext", {})
        if how == "privileged":
            sc["privileged"] = True
            leaf: list[Seg] = ["securityContext", "privileged"]
        elif how == "run-as-root":
            sc["runAsNonRoot"] = False
            sc["runAsUser"] = 0
            leaf = (
                ["securityContext", "runAsUser"]
                if sc_before and sc_before.get("runAsNonRoot") is False
                else ["securityContext"]
            )
        else:
            caps = sc.setdefault("capabilities", {})
            caps["add"] = [*caps.get("add", []), "SYS_ADMIN"]
            leaf = ["securityContext", "capabilities", "add"]
        before = {**observed[rid]}
        segs = _cpath(o, *leaf)
        if how == "run-as-root" and sc_before:
            # two fields may change; record each that differs
            for f in ("runAsNonRoot", "runAsUser"):
                if sc_before.get(f) != sc[f]:
                    s2 = _cpath(o, "securityContext", f)
                    edits.append(_Edit(rid, s2, how, "kubectl-edit", s2))
            return
        del before
        edits.append(_Edit(rid, segs, how, "kubectl-edit", segs))

    steps: list[tuple[str, Callable[[str], bool | None]]] = [
        ("replicas", edit_replicas),
        ("limits", lambda r: edit_resources(r, "limits")),
        ("requests", lambda r: edit_resources(r, "requests")),
        ("image", edit_image),
        ("env-changed", lambda r: edit_env(r, "env-changed")),
        ("env-added", lambda r: edit_env(r, "env-added")),
        ("env-removed", lambda r: edit_env(r, "env-removed")),
        ("probe-changed", lambda r: edit_probe(r, "probe-changed")),
        ("probe-removed", lambda r: edit_probe(r, "probe-removed")),
        ("privileged", lambda r: edit_security(r, "privileged")),
        ("run-as-root", lambda r: edit_security(r, "run-as-root")),
        ("capability-added", lambda r: edit_security(r, "capability-added")),
        ("host-network", lambda r: edit_security(r, "host-network")),
    ]
    for _cls, step in steps:
        tried = 0
        while order and tried < 4:
            rid = take()
            assert rid is not None
            if step(rid) is not False:
                break
            tried += 1
    # a container port added, a Service port retargeted, a label, removed and extra resources
    rid = take()
    if rid is not None:
        c = _container0(observed[rid])
        c.setdefault("ports", []).append(
            {"containerPort": 9464, "protocol": "TCP", "name": "metrics"}
        )
        segs = _cpath(observed[rid], "ports", {"containerPort": 9464, "protocol": "TCP"})
        edits.append(_Edit(rid, segs, "container-port-added", "kubectl-edit", segs))
    rid = take()
    if rid is not None:
        observed[rid]["metadata"].setdefault("labels", {})["team/owner"] = "oncall"
        segs = ["metadata", "labels", "team/owner"]
        edits.append(_Edit(rid, segs, "label", "kubectl-label", segs))
    if services:
        sid = services.pop()
        port = observed[sid]["spec"]["ports"][0]
        port["targetPort"] = (
            int(str(port["targetPort"])) + 1 if str(port["targetPort"]).isdigit() else 8081
        )
        segs = ["spec", "ports", {"port": port["port"], "protocol": port["protocol"]}, "targetPort"]
        edits.append(_Edit(sid, segs, "service-port", "kubectl-edit", segs))
    removed: list[tuple[str, str]] = []
    if services:
        removed.append((services.pop(), "resource-removed"))
    removed += [
        (rid, "networkpolicy-removed") for rid in observed if rid.startswith("NetworkPolicy/")
    ][:1]
    for rid, _cls in removed:
        del observed[rid]
    extra_ns = namespaces[int(rng.integers(len(namespaces)))]
    extra = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "debug-overrides", "namespace": extra_ns},
        "data": {"LOG_LEVEL": "debug"},
    }
    extra_obs = server_form(extra, rng, extra_ns)
    extra_obs["metadata"]["managedFields"] = [
        {
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": EDITED,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1({"data": extra["data"]}),
        }
    ]
    extra_obs["metadata"]["annotations"].pop("kubectl.kubernetes.io/last-applied-configuration")
    extra_id = resource_id(extra_obs)
    # managedFields: the applier owns what it applied and is still there; editors own edits
    for rid, o in observed.items():
        applied = by_id[rid]
        tree = fields_v1({k: v for k, v in applied.items() if k in ("metadata", "spec", "data")})
        _merge(
            tree,
            fields_v1(
                {
                    "metadata": {
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x"}
                    }
                }
            ),
        )
        mine = [e for e in edits if e.rid == rid]
        entries: dict[str, dict[str, Any]] = {}
        for e in mine:
            keys = _fv1_path(o, e.segs)
            _remove(tree, keys)
            if e.owned is not None and e.manager is not None:
                _merge(entries.setdefault(e.manager, {}), _nest(_fv1_path(o, e.owned)))
        managed = [
            {
                "manager": APPLIER,
                "operation": "Update",
                "apiVersion": o.get("apiVersion"),
                "time": CREATED,
                "fieldsType": "FieldsV1",
                "fieldsV1": tree,
            }
        ]
        if o["kind"] == "Deployment":
            managed.append(
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": CREATED,
                    "fieldsType": "FieldsV1",
                    "subresource": "status",
                    "fieldsV1": {
                        "f:metadata": {
                            "f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}
                        },
                        "f:status": {"f:replicas": {}},
                    },
                }
            )
        for m, t in entries.items():
            managed.append(
                {
                    "manager": m,
                    "operation": "Update",
                    "apiVersion": o.get("apiVersion"),
                    "time": EDITED,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": t,
                }
            )
        o["metadata"]["managedFields"] = managed
    observed[extra_id] = extra_obs
    _noise(observed, expected, rng)
    truth = [_truth(e, by_id[e.rid], observed[e.rid]) for e in edits]
    truth += [Injected(rid, "", cls, None) for rid, cls in removed]
    truth.append(Injected(extra_id, "", "resource-extra", "kubectl-create"))
    observed.update(_controller_objects(observed, namespaces, rng))
    items = list(observed.values())
    items = [items[i] for i in rng.permutation(len(items))]
    classes: dict[str, int] = {}
    for inj in truth:
        classes[inj.drift_class] = classes.get(inj.drift_class, 0) + 1
    return Case(expected, items, truth, classes)


def _truth(e: _Edit, expected: dict[str, Any], observed: dict[str, Any]) -> Injected:
    """The drift an edit makes: an added or changed value at its first ancestor absent from
    the expected object, a removed one at its first ancestor absent from the observed one."""
    if e.owned is not None:
        return Injected(
            e.rid, pointer(expected, observed, _first_missing(expected, e.segs)), e.cls, e.manager
        )
    return Injected(
        e.rid, pointer(expected, observed, _first_missing(observed, e.segs)), e.cls, None
    )


def _noise(
    observed: dict[str, dict[str, Any]], expected: list[dict[str, Any]], rng: np.random.Generator
) -> None:
    """Configuration-preserving noise: reordered merge-key and set lists, respelt quantities,
    port numbers as strings in the manifests."""

    def shuffle(lst: list[Any]) -> None:
        perm = rng.permutation(len(lst))
        lst[:] = [lst[i] for i in perm]

    for o in observed.values():
        tpl = (o.get("spec") or {}).get("template", {}).get("spec")
        if tpl is None:
            if o["kind"] == "Service":
                shuffle(o["spec"].get("ports", []))
            continue
        shuffle(tpl["containers"])
        shuffle(tpl.get("volumes", []))
        for c in tpl["containers"]:
            for key in ("env", "ports", "volumeMounts"):
                shuffle(c.get(key, []))
            caps = (c.get("securityContext") or {}).get("capabilities") or {}
            for key in ("add", "drop"):
                shuffle(caps.get(key, []))
            for which in ("limits", "requests"):
                res = (c.get("resources") or {}).get(which) or {}
                for k in list(res):
                    if rng.random() < 0.7:
                        res[k] = _respell(res[k], rng)
    for m in expected:
        spec = m.get("spec") or {}
        for p in spec.get("ports", []) if m["kind"] == "Service" else []:
            if isinstance(p.get("targetPort"), int) and rng.random() < 0.5:
                p["targetPort"] = str(p["targetPort"])
        for c in (spec.get("template") or {}).get("spec", {}).get("containers", []):
            for p in c.get("ports", []):
                if rng.random() < 0.5:
                    p["containerPort"] = str(p["containerPort"])


def _controller_objects(
    observed: dict[str, dict[str, Any]], namespaces: list[str], rng: np.random.Generator
) -> dict[str, dict[str, Any]]:
    """What controllers and the control plane add: ReplicaSets and Pods of each Deployment,
    Endpoints of each Service, the namespace's root CA ConfigMap and default ServiceAccount."""
    out: dict[str, dict[str, Any]] = {}
    for o in list(observed.values()):
        meta = o["metadata"]
        ns = meta.get("namespace", "default")
        owner = [
            {
                "apiVersion": "apps/v1",
                "kind": o["kind"],
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
            }
        ]
        if o["kind"] == "Deployment":
            h = f"{int(rng.integers(16**9, 16**10)):x}"
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{meta['name']}-{h}",
                    "namespace": ns,
                    "ownerReferences": owner,
                },
                "spec": copy.deepcopy(o["spec"]),
            }
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{meta['name']}-{h}-abcde",
                    "namespace": ns,
                    "ownerReferences": owner,
                },
                "spec": copy.deepcopy(o["spec"]["template"]["spec"]),
            }
            out[resource_id(rs)] = rs
            out[resource_id(pod)] = pod
        if o["kind"] == "Service":
            ep = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": meta["name"], "namespace": ns},
                "subsets": [],
            }
            out[resource_id(ep)] = ep
    for ns in namespaces:
        ca = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": ns},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----"},
        }
        sa = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": ns},
        }
        out[resource_id(ca)] = ca
        out[resource_id(sa)] = sa
    return out


__all__ = ["DRIFT_CLASSES", "Case", "Injected", "fields_v1", "make_case", "pointer", "server_form"]
