"""Normalise a Kubernetes object so that two spellings of one configuration are equal.

Both the expected manifest and the observed object pass through :func:`normalise`; the diff
then compares the results. Four things make two spellings of one configuration differ, and
each has a rule here:

- **Server-owned fields** (``status``, ``metadata.managedFields``, ``uid``,
  ``resourceVersion``, ``generation``, ``creationTimestamp``, ``selfLink``, the
  last-applied-configuration and revision annotations, ``apiVersion``): dropped.
- **Defaults the API server fills in** for the common kinds (Deployment, ReplicaSet,
  StatefulSet, DaemonSet, Job, CronJob, Pod and every pod template, Service, Secret,
  HorizontalPodAutoscaler, NetworkPolicy, PersistentVolumeClaim): filled in on both sides when
  absent, with the values of ``pkg/apis/*/v1/defaults.go``; a field only the server assigns
  (a Service's ``clusterIP`` and ``nodePort``, a Pod's ``nodeName``) is compared only when the
  expected object sets it (:func:`prune_server_filled`).
- **Lists with merge keys** (containers, init containers and volumes by name, container ports
  by containerPort and protocol, Service ports by port and protocol, env by name, volume
  mounts by mountPath ...) become :class:`Keyed` maps, so order does not matter and one
  changed entry is one difference. Lists of objects without a merge key are compared as
  multisets (:class:`Bag`); lists of scalars keep their order, except the few the API treats
  as sets (capabilities, policyTypes, finalizers, accessModes).
- **Types and quantities**: resource amounts become :class:`Quantity` (``500m`` = ``0.5``,
  ``1Gi`` = ``1024Mi``), digit strings in port fields become integers (``"8080"`` = 8080),
  env values and annotations become strings, ``stringData`` of a Secret becomes base64
  ``data``, and nulls are dropped (``key: null`` in a manifest means unset).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twin.quantity import Quantity

# -- containers of the normalised tree ----------------------------------------------------------


@dataclass(eq=False)
class Keyed:  # noqa: PLW1641 (mutable, compared, never hashed)
    """A list with merge keys as a map: entry key (canonical JSON of the key fields) to the
    normalised entry, with each entry's position in the original list (for JSON pointers) and
    its key fields (for managedFields ``k:`` selectors)."""

    fields: tuple[str, ...]
    items: dict[str, Any] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    ids: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyed) and self.items == other.items


@dataclass(eq=False)
class Bag:  # noqa: PLW1641 (mutable, compared, never hashed)
    """A list compared as a multiset (order does not matter), e.g. tolerations, NetworkPolicy
    rules, HPA metrics."""

    items: list[Any]

    def _canon(self) -> list[str]:
        return sorted(json.dumps(plain(i), sort_keys=True, default=str) for i in self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bag) and self._canon() == other._canon()


def plain(value: Any) -> Any:
    """A normalised value back as plain JSON data (keyed lists in their original order,
    quantities as written)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Keyed):
        order = sorted(value.items, key=lambda k: value.index[k])
        return [plain(value.items[k]) for k in order]
    if isinstance(value, Bag):
        return [plain(v) for v in value.items]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Quantity):
        return value.text
    return value


# -- identity -----------------------------------------------------------------------------------


def group_of(api_version: object) -> str:
    """The API group of ``apiVersion`` (``apps/v1`` -> ``apps``; ``v1`` -> ``""``, the core
    group)."""
    text = str(api_version or "")
    return text.split("/", 1)[0] if "/" in text else ""


def resource_id(obj: dict[str, Any], namespace: str = "default") -> str:
    """``kind/namespace/name``; ``namespace`` (``default`` unless told) when the object has
    none."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or namespace
    return f"{obj.get('kind', '')}/{ns}/{meta.get('name', '')}"


# -- what the server owns -----------------------------------------------------------------------

SERVER_METADATA = (
    "managedFields",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
"""Metadata fields the API server owns: never configuration."""

SERVER_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubectl.kubernetes.io/restartedAt",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "endpoints.kubernetes.io/last-change-trigger-time",
    "control-plane.alpha.kubernetes.io/leader",
    "autoscaling.alpha.kubernetes.io/conditions",
    "autoscaling.alpha.kubernetes.io/current-metrics",
)
"""Annotations written by the server or by kubectl for its own bookkeeping (``restartedAt``
is how ``kubectl rollout restart`` triggers a restart: an action, not configuration)."""

SERVER_ANNOTATION_PREFIXES = (
    "pv.kubernetes.io/",
    "volume.beta.kubernetes.io/",
    "volume.kubernetes.io/",
)

SERVER_LABELS = (
    "kubernetes.io/metadata.name",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "pod-template-hash",
)
"""Labels the server or a controller adds (the namespace's name label, a Job's labels)."""

# -- merge keys and list kinds ------------------------------------------------------------------

MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "readinessGates": ("conditionType",),
    "resourceClaims": ("name",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "volumeClaimTemplates": ("metadata",),
}
"""Lists the API server merges by key (``patchMergeKey`` in the Kubernetes API types);
``ports`` is keyed by ``containerPort`` or ``port`` (with ``protocol``), see :func:`_keys_of`."""

SET_LISTS = frozenset({"add", "drop", "policyTypes", "finalizers", "accessModes", "ipFamilies"})
"""Lists of scalars the API treats as sets."""

QUANTITY_MAPS = frozenset(
    {
        "limits",
        "requests",
        "hard",
        "capacity",
        "allocatable",
        "default",
        "defaultRequest",
        "max",
        "min",
    }
)
"""Maps whose values are resource quantities (container resources, quotas, limit ranges)."""

QUANTITY_KEYS = frozenset({"sizeLimit", "divisor"})
"""Single fields holding a quantity."""

PORT_KEYS = frozenset({"containerPort", "hostPort", "port", "targetPort", "nodePort"})
"""Fields that hold a port number or a port name (``"8080"`` is the number 8080)."""


def _keys_of(name: str, items: list[Any]) -> tuple[str, ...] | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if name == "ports":
        if all("containerPort" in i for i in items):
            return ("containerPort", "protocol")
        if all("port" in i for i in items):
            return ("port", "protocol")
        return None
    keys = MERGE_KEYS.get(name)
    if keys is None:
        return None
    if keys == ("metadata",):  # volumeClaimTemplates: by metadata.name
        return keys if all(isinstance(i.get("metadata"), dict) for i in items) else None
    return keys if all(k in i or k == "whenUnsatisfiable" for i in items for k in keys) else None


def _key_value(item: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    if keys == ("metadata",):
        return {"name": (item.get("metadata") or {}).get("name")}
    return {k: plain(item.get(k)) for k in keys if item.get(k) is not None}


# -- defaults -----------------------------------------------------------------------------------


def _default(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set ``obj[a][b]...`` to ``value`` when absent (creating mappings on the way)."""
    parts = path.split(".")
    node = obj
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            return
        node = nxt
    if node.get(parts[-1]) is None:
        node[parts[-1]] = copy.deepcopy(value)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def image_pull_policy(image: object) -> str:
    """The server's default pull policy: ``Always`` for a ``latest`` or missing tag (and no
    digest), else ``IfNotPresent``."""
    text = str(image or "")
    if "@" in text:
        return "IfNotPresent"
    last = text.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _probe_defaults(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for k, v in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        _default(probe, k, v)
    if isinstance(probe.get("httpGet"), dict):
        _default(probe["httpGet"], "scheme", "HTTP")
    if isinstance(probe.get("grpc"), dict):
        _default(probe["grpc"], "service", "")


def _container_defaults(c: dict[str, Any]) -> None:
    _default(c, "terminationMessagePath", "/dev/termination-log")
    _default(c, "terminationMessagePolicy", "File")
    _default(c, "imagePullPolicy", image_pull_policy(c.get("image")))
    _default(c, "resources", {})
    for p in _dicts(c.get("ports")):
        _default(p, "protocol", "TCP")
    for e in _dicts(c.get("env")):
        src = e.get("valueFrom")
        if isinstance(src, dict) and isinstance(src.get("fieldRef"), dict):
            _default(src["fieldRef"], "apiVersion", "v1")
        if isinstance(src, dict) and isinstance(src.get("resourceFieldRef"), dict):
            _default(src["resourceFieldRef"], "divisor", "0")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe_defaults(c.get(name))
    life = c.get("lifecycle")
    if isinstance(life, dict):
        for hook in ("postStart", "preStop"):
            h = life.get(hook)
            if isinstance(h, dict) and isinstance(h.get("httpGet"), dict):
                _default(h["httpGet"], "scheme", "HTTP")


def pod_spec_defaults(spec: dict[str, Any], *, restart: bool = True) -> None:
    """Defaults of a pod spec (``SetDefaults_PodSpec`` and the container, probe and volume
    defaults below it)."""
    if restart:
        _default(spec, "restartPolicy", "Always")
    _default(spec, "terminationGracePeriodSeconds", 30)
    _default(spec, "dnsPolicy", "ClusterFirst")
    _default(spec, "securityContext", {})
    _default(spec, "schedulerName", "default-scheduler")
    # serviceAccount is the deprecated mirror of serviceAccountName
    sa, san = spec.get("serviceAccount"), spec.get("serviceAccountName")
    if sa is not None and san is None:
        spec["serviceAccountName"] = sa
    if sa is not None and sa == spec.get("serviceAccountName"):
        del spec["serviceAccount"]
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _dicts(spec.get(key)):
            _container_defaults(c)
    for v in _dicts(spec.get("volumes")):
        for src in ("configMap", "secret", "projected", "downwardAPI"):
            if isinstance(v.get(src), dict):
                _default(v[src], "defaultMode", 420)
        if isinstance(v.get("hostPath"), dict):
            _default(v["hostPath"], "type", "")


def _template(obj: dict[str, Any], *path: str) -> dict[str, Any] | None:
    node: Any = obj
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _pod_template(spec: dict[str, Any] | None, *, restart: bool = True) -> None:
    tpl = _template(spec or {}, "template")
    if tpl is None:
        return
    meta = tpl.get("metadata")
    if isinstance(meta, dict):
        meta.pop("creationTimestamp", None)
    if isinstance(tpl.get("spec"), dict):
        pod_spec_defaults(tpl["spec"], restart=restart)


def _deployment(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    _default(spec, "replicas", 1)
    _default(spec, "revisionHistoryLimit", 10)
    _default(spec, "progressDeadlineSeconds", 600)
    _default(spec, "strategy.type", "RollingUpdate")
    if spec["strategy"].get("type") == "RollingUpdate":
        _default(spec, "strategy.rollingUpdate.maxUnavailable", "25%")
        _default(spec, "strategy.rollingUpdate.maxSurge", "25%")
    _pod_template(spec)


def _replicaset(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    _default(spec, "replicas", 1)
    _pod_template(spec)


def _statefulset(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    _default(spec, "replicas", 1)
    _default(spec, "podManagementPolicy", "OrderedReady")
    _default(spec, "revisionHistoryLimit", 10)
    _default(spec, "updateStrategy.type", "RollingUpdate")
    if spec["updateStrategy"].get("type") == "RollingUpdate":
        _default(spec, "updateStrategy.rollingUpdate.partition", 0)
    _default(spec, "persistentVolumeClaimRetentionPolicy.whenDeleted", "Retain")
    _default(spec, "persistentVolumeClaimRetentionPolicy.whenScaled", "Retain")
    for t in _dicts(spec.get("volumeClaimTemplates")):
        t.setdefault("apiVersion", "v1")
        t.setdefault("kind", "PersistentVolumeClaim")
        t.pop("status", None)
        if isinstance(t.get("metadata"), dict):
            t["metadata"].pop("creationTimestamp", None)
        _default(t, "spec.volumeMode", "Filesystem")
    _pod_template(spec)


def _daemonset(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    _default(spec, "revisionHistoryLimit", 10)
    _default(spec, "updateStrategy.type", "RollingUpdate")
    if spec["updateStrategy"].get("type") == "RollingUpdate":
        _default(spec, "updateStrategy.rollingUpdate.maxUnavailable", 1)
        _default(spec, "updateStrategy.rollingUpdate.maxSurge", 0)
    _pod_template(spec)


def _job_spec(spec: dict[str, Any]) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _default(spec, "parallelism", 1)
    _default(spec, "backoffLimit", 6)
    _default(spec, "completionMode", "NonIndexed")
    _default(spec, "suspend", False)
    _pod_template(spec, restart=False)


def _job(o: dict[str, Any]) -> None:
    _job_spec(o.setdefault("spec", {}))


def _cronjob(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    _default(spec, "concurrencyPolicy", "Allow")
    _default(spec, "suspend", False)
    _default(spec, "successfulJobsHistoryLimit", 3)
    _default(spec, "failedJobsHistoryLimit", 1)
    jt = _template(spec, "jobTemplate", "spec")
    if jt is not None:
        _pod_template(jt, restart=False)


def _pod(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    pod_spec_defaults(spec)
    _default(spec, "enableServiceLinks", True)
    for c in _dicts(spec.get("containers")):  # a Pod's requests default to its limits
        res = c.get("resources")
        if isinstance(res, dict) and isinstance(res.get("limits"), dict):
            req = res.setdefault("requests", {})
            if isinstance(req, dict):
                for k, v in res["limits"].items():
                    req.setdefault(k, v)


def _service(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    _default(spec, "type", "ClusterIP")
    kind = spec.get("type")
    if kind == "ExternalName":
        return
    _default(spec, "sessionAffinity", "None")
    _default(spec, "internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        _default(spec, "externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        _default(spec, "allocateLoadBalancerNodePorts", True)
    for p in _dicts(spec.get("ports")):
        _default(p, "protocol", "TCP")
        if p.get("targetPort") is None and p.get("port") is not None:
            p["targetPort"] = p["port"]


def _secret(o: dict[str, Any]) -> None:
    o.setdefault("type", "Opaque")
    string_data = o.pop("stringData", None)
    if isinstance(string_data, dict):
        data = o.get("data")
        if not isinstance(data, dict):
            data = o["data"] = {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _hpa(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    _default(spec, "minReplicas", 1)
    if str(o.get("apiVersion", "")).endswith("/v1"):
        return
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    beh = spec.get("behavior")
    if isinstance(beh, dict):
        _default(beh, "scaleUp.stabilizationWindowSeconds", 0)
        _default(beh, "scaleUp.selectPolicy", "Max")
        _default(
            beh,
            "scaleUp.policies",
            [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        )
        _default(beh, "scaleDown.stabilizationWindowSeconds", 300)
        _default(beh, "scaleDown.selectPolicy", "Max")
        _default(
            beh, "scaleDown.policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}]
        )


def _networkpolicy(o: dict[str, Any]) -> None:
    spec = o.setdefault("spec", {})
    if spec.get("policyTypes") is None:
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for p in _dicts(rule.get("ports")):
                _default(p, "protocol", "TCP")


def _pvc(o: dict[str, Any]) -> None:
    _default(o.setdefault("spec", {}), "volumeMode", "Filesystem")


DEFAULTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "Job": _job,
    "CronJob": _cronjob,
    "Pod": _pod,
    "Service": _service,
    "Secret": _secret,
    "HorizontalPodAutoscaler": _hpa,
    "NetworkPolicy": _networkpolicy,
    "PersistentVolumeClaim": _pvc,
}
"""The API server's defaults per kind; other kinds are compared as written."""

SERVER_FILLED: dict[str, tuple[tuple[str, ...], ...]] = {
    "Service": (
        ("spec", "clusterIP"),
        ("spec", "clusterIPs"),
        ("spec", "ipFamilies"),
        ("spec", "ipFamilyPolicy"),
        ("spec", "healthCheckNodePort"),
        ("spec", "ports", "*", "nodePort"),
    ),
    "PersistentVolumeClaim": (("spec", "volumeName"), ("spec", "storageClassName")),
    "Pod": (
        ("spec", "nodeName"),
        ("spec", "priority"),
        ("spec", "priorityClassName"),
        ("spec", "preemptionPolicy"),
        ("spec", "tolerations"),
    ),
    "Job": (("spec", "selector"), ("spec", "podReplacementPolicy"), ("spec", "manualSelector")),
    "Namespace": (("spec",),),
    "ServiceAccount": (("secrets",),),
    "*": (("metadata", "finalizers"), ("metadata", "ownerReferences")),
}
"""Fields the server assigns when the manifest leaves them out: compared only when the expected
object sets them (``*`` in a path is any entry of a keyed list)."""

# -- normalisation ------------------------------------------------------------------------------


def _clean_metadata(meta: dict[str, Any]) -> None:
    for k in SERVER_METADATA:
        meta.pop(k, None)
    ann = meta.get("annotations")
    if isinstance(ann, dict):
        for k in list(ann):
            if k in SERVER_ANNOTATIONS or k.startswith(SERVER_ANNOTATION_PREFIXES):
                del ann[k]
        meta["annotations"] = {k: str(v) for k, v in ann.items()}
    labels = meta.get("labels")
    if isinstance(labels, dict):
        meta["labels"] = {k: str(v) for k, v in labels.items() if k not in SERVER_LABELS}
    for k in ("annotations", "labels"):
        if not meta.get(k):
            meta.pop(k, None)


def _canon(value: Any, key: str | None, parent: str | None) -> Any:
    """Canonical form of one value found at ``key`` inside a mapping found at ``parent``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if v is None or (isinstance(v, list) and not v):
                continue  # null and [] mean unset (the API omits empty lists)
            k = str(k)
            amounts = key in QUANTITY_MAPS and parent in ("resources", "spec", "limits")
            if (amounts or k in QUANTITY_KEYS) and not isinstance(v, (dict, list)):
                out[k] = Quantity.of(v)
                continue
            if k == "metadata" and isinstance(v, dict):
                v = dict(v)
                _clean_metadata(v)
            out[k] = _canon(v, k, key if key is not None else parent)
        return out
    if isinstance(value, list):
        raw = [v for v in value if v is not None]
        canon = [_canon(v, None, key) for v in raw]
        keys = _keys_of(key or "", [plain(v) for v in canon])
        if keys is not None:
            keyed = Keyed(keys)
            for i, item in enumerate(canon):
                kv = _key_value(plain(item), keys)
                ident = json.dumps(kv, sort_keys=True, default=str)
                if ident in keyed.items:  # duplicate keys: not a valid keyed list
                    return Bag(canon)
                keyed.items[ident] = item
                keyed.index[ident] = i
                keyed.ids[ident] = kv
            return keyed
        if canon and all(isinstance(v, dict) for v in canon):
            return Bag(canon)
        if key in SET_LISTS and all(not isinstance(v, (dict, list)) for v in canon):
            return sorted(canon, key=lambda v: json.dumps(v, default=str))
        return canon
    if key in PORT_KEYS and isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if key == "value" and parent == "env" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, bool) else str(value)
    return value


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """The normalised form of one object: server-owned fields dropped, the server's defaults
    filled in, merge-key lists keyed, quantities and ports canonical. ``kind`` and
    ``apiVersion`` are identity, not content: both are dropped (an object read back in another
    version of its group is the same object)."""
    o = copy.deepcopy(obj)
    o.pop("status", None)
    kind = str(o.get("kind", ""))
    fill = DEFAULTS.get(kind)
    if fill is not None:
        fill(o)
    o.pop("apiVersion", None)
    o.pop("kind", None)
    if isinstance(o.get("metadata"), dict):
        o["metadata"].pop("namespace", None)
    out = _canon(o, None, None)
    assert isinstance(out, dict)  # a mapping stays a mapping
    return out


def _prune(exp: Any, obs: Any, path: tuple[str, ...]) -> None:
    if not path or not isinstance(obs, (dict, Keyed)):
        return
    head, rest = path[0], path[1:]
    if isinstance(obs, Keyed):
        if head != "*":
            return
        for ident, item in obs.items.items():
            other = exp.items.get(ident) if isinstance(exp, Keyed) else None
            _prune(other, item, rest)
        return
    if head not in obs:
        return
    has = isinstance(exp, dict) and head in exp
    if not rest:
        if not has:
            del obs[head]
        return
    _prune(exp.get(head) if isinstance(exp, dict) else None, obs[head], rest)


def prune_server_filled(kind: str, expected: dict[str, Any], observed: dict[str, Any]) -> None:
    """Drop from ``observed`` (in place) the server-assigned fields ``expected`` leaves out."""
    for path in (*SERVER_FILLED.get(kind, ()), *SERVER_FILLED["*"]):
        _prune(expected, observed, path)


__all__ = [
    "DEFAULTS",
    "MERGE_KEYS",
    "SERVER_ANNOTATIONS",
    "SERVER_FILLED",
    "SERVER_METADATA",
    "Bag",
    "Keyed",
    "group_of",
    "image_pull_policy",
    "normalise",
    "plain",
    "pod_spec_defaults",
    "prune_server_filled",
    "resource_id",
]
