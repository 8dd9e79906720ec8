"""Reading Kubernetes objects: manifests (the expected state) and dumps (the observed state).

Accepted: multi-document YAML (plain, Helm-rendered, Kustomize output), JSON, ``List``
objects (``kubectl get -o json|yaml``, nested Lists too), directories of such files (read in
name order, recursively: a folder of config snapshots), and, for the observed state, a
cluster API URL read with GETs only (``kubectl proxy`` gives one without credentials).
Every file is read through :mod:`twin.safeload`, so size, nesting and alias limits hold; a
document that is not a Kubernetes object is a one-line error naming the file and document.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.drift.normalise import group_of, resource_id
from twin.errors import InputError
from twin.safeload import limit, load_yaml_all, loads_json, read_text

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class K8sObject:
    """One object and where it was read from (``file#document``)."""

    id: str
    group: str
    raw: dict[str, Any]
    source: str

    @property
    def kind(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def namespace(self) -> str:
        return self.id.split("/", 2)[1]

    @property
    def name(self) -> str:
        return self.id.split("/", 2)[2]


def _items(doc: Any, source: str) -> Iterable[tuple[dict[str, Any], str]]:
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise InputError(
            f"expected a Kubernetes object (a mapping), got {type(doc).__name__}", source=source
        )
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for i, item in enumerate(doc["items"]):
            yield from _items(item, f"{source}.items[{i}]")
        return
    meta = doc.get("metadata")
    if not isinstance(kind, str) or not kind or not isinstance(meta, dict) or not meta.get("name"):
        raise InputError("expected a Kubernetes object with kind and metadata.name", source=source)
    yield doc, source


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return [path]


def read_file(path: Path) -> list[tuple[dict[str, Any], str]]:
    """Every object of one file with its source (``file#N`` for the N-th document)."""
    text = read_text(path, "telemetry")
    if path.suffix.lower() == ".json":
        try:
            docs = [loads_json(text, str(path), "telemetry")]
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from None
    else:
        docs = load_yaml_all(text, str(path))
    out: list[tuple[dict[str, Any], str]] = []
    for i, doc in enumerate(docs):
        out.extend(_items(doc, f"{path}#{i + 1}" if len(docs) > 1 else str(path)))
    return out


def index(
    found: Iterable[tuple[dict[str, Any], str]], *, namespace: str = "default"
) -> dict[str, K8sObject]:
    """Objects by ``kind/namespace/name``; the same resource twice is an error naming both."""
    out: dict[str, K8sObject] = {}
    for raw, source in found:
        rid = resource_id(raw, namespace)
        if rid in out:
            raise InputError(f"{rid} is given twice (also in {out[rid].source})", source=source)
        out[rid] = K8sObject(rid, group_of(raw.get("apiVersion")), raw, source)
    return out


def read_objects(
    paths: Sequence[str | Path], *, namespace: str = "default"
) -> dict[str, K8sObject]:
    """Every object in the files and folders given, by ``kind/namespace/name`` (``namespace``
    for objects that name none, as ``kubectl apply -n`` would)."""
    found: list[tuple[dict[str, Any], str]] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError("file not found", source=str(path))
        for f in _files(path):
            found.extend(read_file(f))
    return index(found, namespace=namespace)


# -- a live cluster, read-only ------------------------------------------------------------------

CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)


def plural(kind: str) -> str:
    """The resource name of a kind in API paths (``NetworkPolicy`` -> ``networkpolicies``)."""
    k = kind.lower()
    if k.endswith("y") and not k.endswith(("ay", "ey", "oy")):
        return k[:-1] + "ies"
    if k.endswith(("s", "x", "ch")):
        return k + "es"
    return k + "s"


def read_cluster(
    url: str, expected: dict[str, K8sObject], timeout: float = 10.0
) -> dict[str, K8sObject]:
    """The objects of the kinds and namespaces ``expected`` names, listed from a cluster API
    at ``url`` with GETs only (one list per kind and namespace)."""
    base = url.rstrip("/")
    wanted: dict[tuple[str, str, str], None] = {}
    for obj in expected.values():
        wanted[(str(obj.raw.get("apiVersion", "v1")), obj.kind, obj.namespace)] = None
    found: list[tuple[dict[str, Any], str]] = []
    cap = limit("TWIN_MAX_TELEMETRY_BYTES")
    for api_version, kind, ns in wanted:
        root = (
            f"{base}/api/{api_version}" if "/" not in api_version else f"{base}/apis/{api_version}"
        )
        where = "" if kind in CLUSTER_SCOPED else f"/namespaces/{ns}"
        address = f"{root}{where}/{plural(kind)}"
        try:
            with urllib.request.urlopen(address, timeout=timeout) as r:
                body = r.read(cap + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue  # the kind is not served: every object of it is missing
            raise InputError(f"cluster answered {exc.code} {exc.reason}", source=address) from None
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(
                f"cannot read the cluster: {getattr(exc, 'reason', exc)}", source=address
            ) from None
        if len(body) > cap:
            raise InputError("answer larger than TWIN_MAX_TELEMETRY_BYTES", source=address)
        try:
            doc = loads_json(body, address, "telemetry")
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", source=address) from None
        if isinstance(doc, dict) and isinstance(doc.get("items"), list):
            for item in doc["items"]:  # list items may leave out kind and apiVersion
                if isinstance(item, dict):
                    item.setdefault("kind", kind)
                    item.setdefault("apiVersion", api_version)
        found.extend(_items(doc, address))
    return index(found)


def read_observed(sources: Sequence[str], expected: dict[str, K8sObject]) -> dict[str, K8sObject]:
    """The observed state: dump files and folders, or one cluster API URL."""
    urls = [s for s in sources if s.startswith(("http://", "https://"))]
    if urls and len(sources) > 1:
        raise InputError("give either one cluster URL or dump files, not both", source="--observed")
    if urls:
        return read_cluster(urls[0], expected)
    return read_objects(sources)


__all__ = [
    "K8sObject",
    "index",
    "plural",
    "read_cluster",
    "read_file",
    "read_objects",
    "read_observed",
]
