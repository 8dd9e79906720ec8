"""Drift detection shows every real drift and nothing else.

The cases come from the real Online Boutique and Sock Shop manifests: the generator applies
them as an API server would (defaults, cluster IPs, status, managedFields, uid, the
last-applied annotation, controller-made objects), injects one drift per resource across
every class, and adds configuration-preserving noise (reordered merge-key lists, respelt
quantities, ports as strings). The detector must report exactly the injected drifts, with the
manager that wrote each changed field.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHARED_DATA, needs_shared_data

from twin.drift.diff import diff_states
from twin.drift.documents import IgnoreRule
from twin.drift.generate import DRIFT_CLASSES, make_case, server_form
from twin.drift.manifests import index, read_cluster, read_objects
from twin.drift.normalise import normalise
from twin.errors import InputError
from twin.quantity import Quantity, parse_quantity
from twin.safeload import load_yaml_all, read_text

TOPOLOGIES = SHARED_DATA / "topologies"
MANIFESTS = {
    "online-boutique": ("online-boutique-kubernetes-manifests.yaml",),
    "sock-shop": ("sock-shop-complete-demo.yaml",),
    "both": ("online-boutique-kubernetes-manifests.yaml", "sock-shop-complete-demo.yaml"),
}


def _manifests(names: tuple[str, ...]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for n in names:
        path = TOPOLOGIES / n
        docs += [d for d in load_yaml_all(read_text(path), str(path)) if d]
    return docs


def _detect(case: Any) -> list[Any]:
    exp = index([(d, "expected") for d in case.expected])
    obs = index([(d, "observed") for d in case.observed])
    return diff_states(exp, obs)


@needs_shared_data
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("system", sorted(MANIFESTS))
def test_every_injected_drift_is_found_and_nothing_else(system: str, seed: int) -> None:
    case = make_case(_manifests(MANIFESTS[system]), np.random.default_rng(seed))
    found = _detect(case)
    got = {(d.resource, d.path) for d in found}
    want = {(t.resource, t.path) for t in case.truth}
    assert want - got == set(), f"missed: {sorted(want - got)}"
    assert got - want == set(), (
        f"false diffs: {[d for d in found if (d.resource, d.path) not in want]}"
    )
    assert len(found) == len(got)  # one report per drifted field
    managers = {(d.resource, d.path): d.manager for d in found}
    for t in case.truth:
        if t.manager is not None:
            assert managers[(t.resource, t.path)] == t.manager, t


@needs_shared_data
def test_the_cases_cover_every_drift_class() -> None:
    seen: set[str] = set()
    for seed in range(3):
        case = make_case(_manifests(MANIFESTS["both"]), np.random.default_rng(seed))
        seen |= set(case.classes)
    assert seen == set(DRIFT_CLASSES)


@needs_shared_data
def test_applied_manifests_with_server_noise_and_no_edit_show_no_drift() -> None:
    rng = np.random.default_rng(11)
    docs = _manifests(MANIFESTS["both"])
    observed = [server_form(d, rng, "default") for d in docs]
    for o in observed:  # status, managedFields and a respelt quantity, still no drift
        o.setdefault("status", {"observedGeneration": 3})
        o["metadata"]["managedFields"] = [{"manager": "kubectl", "time": "2024-01-01T00:00:00Z"}]
    exp = index([(d, "e") for d in docs])
    obs = index([(d, "o") for d in observed])
    assert diff_states(exp, obs) == []


def test_quantity_spellings_of_one_amount_are_equal() -> None:
    assert parse_quantity("500m") == Decimal("0.5") == parse_quantity(0.5)
    assert parse_quantity("1Gi") == parse_quantity("1024Mi") == Decimal(2**30)
    assert parse_quantity("1e3") == parse_quantity("1k") == Decimal(1000)
    assert Quantity.of("128Mi") == Quantity.of(str(128 * 2**20))
    assert Quantity.of("100m") != Quantity.of("1")
    assert Quantity.of("lots") == Quantity.of("lots")  # unparseable: compared as text
    assert Quantity.of("lots") != Quantity.of("1")


def _deploy(**spec: Any) -> dict[str, Any]:
    base = {
        "selector": {"matchLabels": {"app": "a"}},
        "template": {
            "metadata": {"labels": {"app": "a"}},
            "spec": {
                "containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]}]
            },
        },
    }
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": base}


def test_a_changed_field_is_reported_with_its_pointer_and_values() -> None:
    e = _deploy(replicas=2)
    o = _deploy(replicas=2)
    o["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "2"
    drifts = diff_states(index([(e, "e")]), index([(o, "o")]))
    assert [(d.path, d.expected, d.observed) for d in drifts] == [
        ("/spec/template/spec/containers/0/env/0/value", "1", "2")
    ]


def test_ignore_rules_match_pointers_and_managers_in_argo_cd_shape() -> None:
    e = _deploy(replicas=2)
    o = _deploy(replicas=5)
    o["metadata"]["labels"] = {"team/x": "y"}
    o["metadata"]["managedFields"] = [
        {
            "manager": "kubectl-label",
            "time": "t",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:team/x": {}}}},
        }
    ]
    exp, obs = index([(e, "e")]), index([(o, "o")])
    paths = {d.path for d in diff_states(exp, obs)}
    assert paths == {"/spec/replicas", "/metadata/labels"}
    by_pointer = IgnoreRule(group="apps", kind="Deployment", jsonPointers=("/spec/replicas",))
    assert {d.path for d in diff_states(exp, obs, [by_pointer])} == {"/metadata/labels"}
    by_manager = IgnoreRule(kind="*", managedFieldsManagers=("kubectl-label",))
    assert {d.path for d in diff_states(exp, obs, [by_manager])} == {"/spec/replicas"}
    other_group = IgnoreRule(group="", kind="Deployment", jsonPointers=("/spec/replicas",))
    assert "/spec/replicas" in {d.path for d in diff_states(exp, obs, [other_group])}
    with pytest.raises(ValueError, match="jsonPointers or managedFieldsManagers"):
        IgnoreRule(kind="Deployment")


def test_replicas_an_hpa_owns_are_drift_only_outside_its_bounds() -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "a"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "a"},
            "minReplicas": 2,
            "maxReplicas": 6,
        },
    }
    for observed, drift in ((4, False), (9, True)):
        exp = index([(_deploy(replicas=2), "e"), (hpa, "e")])
        obs = index([(_deploy(replicas=observed), "o"), (hpa, "o")])
        assert ("/spec/replicas" in {d.path for d in diff_states(exp, obs)}) is drift


def test_missing_and_extra_resources_are_drifts_with_an_empty_path() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    extra = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}}
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "o", "ownerReferences": [{"uid": "1"}]},
    }
    drifts = diff_states(index([(cm, "e")]), index([(extra, "o"), (owned, "o")]))
    assert {(d.resource, d.path, d.change) for d in drifts} == {
        ("ConfigMap/default/c", "", "missing"),
        ("Secret/default/s", "", "extra"),
    }


def test_normalised_defaults_make_a_bare_and_a_full_deployment_equal() -> None:
    bare = _deploy()
    full = _deploy(replicas=1, revisionHistoryLimit=10, progressDeadlineSeconds=600)
    full["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    c = full["spec"]["template"]["spec"]["containers"][0]
    c.update(
        imagePullPolicy="IfNotPresent",
        terminationMessagePath="/dev/termination-log",
        terminationMessagePolicy="File",
    )
    assert normalise(bare) == normalise(full)
    full["spec"]["revisionHistoryLimit"] = 3
    assert normalise(bare) != normalise(full)


def test_not_a_kubernetes_object_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- just\n- a list\n")
    with pytest.raises(InputError) as err:
        read_objects([bad])
    assert str(err.value).startswith(f"{bad}#2") and "\n" not in str(err.value)
    twice = tmp_path / "t.yaml"
    twice.write_text(
        "kind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: a}\n"
    )
    with pytest.raises(InputError, match="given twice"):
        read_objects([twice])


def test_a_cluster_url_is_read_with_gets_only_and_lists_become_objects() -> None:
    methods: list[str] = []
    deploy = _deploy(replicas=3)
    deploy["metadata"]["namespace"] = "default"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            methods.append(self.command)
            if self.path == "/apis/apps/v1/namespaces/default/deployments":
                body = json.dumps(
                    {
                        "kind": "DeploymentList",
                        "items": [{k: v for k, v in deploy.items() if k != "kind"}],
                    }
                )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body.encode())
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        expected = index([(_deploy(replicas=2), "e")])
        observed = read_cluster(f"http://127.0.0.1:{server.server_address[1]}", expected)
    finally:
        server.shutdown()
        server.server_close()
    assert methods and set(methods) == {"GET"}
    assert [(d.path, d.observed) for d in diff_states(expected, observed)] == [
        ("/spec/replicas", 3)
    ]
