"""Litmus ChaosResult and Chaos Mesh experiment objects, as ``kubectl get -o json`` prints them,
become one chaos result each: identity, fault kinds, verdict, and the raw document kept.

The fixtures follow the published shapes: Litmus's ``ChaosResult`` type (chaos-operator
``api/litmuschaos/v1alpha1/chaosresult_types.go``: ``experimentStatus`` with ``phase``,
``verdict``, ``failureOutput``, ``probeSuccessPercentage``; ``probeStatuses``; ``history``)
and its earlier shape (``experimentstatus.failStep``); Chaos Mesh's status (``conditions``,
``experiment.desiredPhase``, ``containerRecords``), checked against the published CRD schema
when the public data is present.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_DATA, needs_shared_data

from twin.errors import InputError
from twin.store import parse_chaos

LITMUS = {
    "apiVersion": "litmuschaos.io/v1alpha1",
    "kind": "ChaosResult",
    "metadata": {
        "creationTimestamp": "2024-03-12T09:41:07Z",
        "generation": 4,
        "labels": {
            "app.kubernetes.io/component": "experiment-job",
            "chaosUID": "b8c6d4d2-36a4-4e3f-9f7c-2f6a1c0e9e11",
            "name": "cart-chaos-pod-delete",
        },
        "name": "cart-chaos-pod-delete",
        "namespace": "litmus",
        "resourceVersion": "48213",
        "uid": "0b4fd0c5-8a3e-4e0f-a1f7-6a6d31a3f9b2",
    },
    "spec": {"engine": "cart-chaos", "experiment": "pod-delete"},
    "status": {
        "experimentStatus": {
            "phase": "Completed",
            "verdict": "Fail",
            "probeSuccessPercentage": "50",
            "failureOutput": {
                "failedStep": "Probe execution result didn't met the passing criteria",
                "errorCode": "GENERIC_ERROR",
            },
        },
        "history": {
            "passedRuns": 2,
            "failedRuns": 1,
            "stoppedRuns": 0,
            "targets": [{"name": "cart", "kind": "deployment", "chaosStatus": "targeted"}],
        },
        "probeStatuses": [
            {
                "name": "checkout-availability",
                "type": "httpProbe",
                "mode": "Continuous",
                "status": {"verdict": "Failed", "description": "status code 503, want 200"},
            },
            {
                "name": "cart-pods-ready",
                "type": "k8sProbe",
                "mode": "SOT",
                "status": {"verdict": "Passed", "description": "resource found"},
            },
        ],
    },
}

LITMUS_V1 = {  # the earlier shape: lower-case experimentstatus with failStep
    "apiVersion": "litmuschaos.io/v1alpha1",
    "kind": "ChaosResult",
    "metadata": {
        "name": "nginx-chaos-pod-network-latency",
        "namespace": "default",
        "creationTimestamp": "2020-04-29T10:12:33Z",
    },
    "spec": {"engine": "nginx-chaos", "experiment": "pod-network-latency"},
    "status": {"experimentstatus": {"failStep": "N/A", "phase": "Completed", "verdict": "Pass"}},
}


def _condition(kind: str, status: bool) -> dict[str, str]:
    return {"type": kind, "status": "True" if status else "False", "reason": ""}


POD_CHAOS = {
    "apiVersion": "chaos-mesh.org/v1alpha1",
    "kind": "PodChaos",
    "metadata": {
        "name": "cart-pod-kill",
        "namespace": "shop",
        "creationTimestamp": "2024-05-02T14:00:00Z",
        "uid": "5d1c3c7e-2b1f-4a51-9d0e-0f4c2b1e7a90",
    },
    "spec": {
        "action": "pod-kill",
        "mode": "one",
        "selector": {"namespaces": ["shop"], "labelSelectors": {"app": "cart"}},
    },
    "status": {
        "conditions": [
            _condition("Selected", True),
            _condition("AllInjected", True),
            _condition("AllRecovered", False),
            _condition("Paused", False),
        ],
        "experiment": {
            "desiredPhase": "Run",
            "containerRecords": [
                {
                    "id": "shop/cart-7c9f8d6b5-x2kqp",
                    "selectorKey": ".",
                    "phase": "Injected",
                    "injectedCount": 1,
                    "recoveredCount": 0,
                    "events": [
                        {
                            "operation": "Apply",
                            "type": "Succeeded",
                            "timestamp": "2024-05-02T14:00:01Z",
                        }
                    ],
                }
            ],
        },
    },
}

NETWORK_CHAOS = {
    "apiVersion": "chaos-mesh.org/v1alpha1",
    "kind": "NetworkChaos",
    "metadata": {
        "name": "web-show-delay",
        "namespace": "default",
        "creationTimestamp": "2024-05-02T15:30:00Z",
    },
    "spec": {
        "action": "delay",
        "mode": "all",
        "selector": {"namespaces": ["default"], "labelSelectors": {"app": "web-show"}},
        "delay": {"latency": "10ms", "correlation": "100", "jitter": "0ms"},
        "direction": "to",
        "duration": "30s",
    },
    "status": {
        "conditions": [
            _condition("Selected", True),
            _condition("AllInjected", False),
            _condition("AllRecovered", True),
            _condition("Paused", False),
        ],
        "experiment": {
            "desiredPhase": "Stop",
            "containerRecords": [
                {
                    "id": f"default/web-show-{i}",
                    "selectorKey": ".",
                    "phase": "Not Injected",
                    "injectedCount": 1,
                    "recoveredCount": 1,
                    "events": [],
                }
                for i in range(2)
            ],
        },
    },
}

STRESS_CHAOS = {
    "apiVersion": "chaos-mesh.org/v1alpha1",
    "kind": "StressChaos",
    "metadata": {
        "name": "memory-stress",
        "namespace": "shop",
        "creationTimestamp": "2024-05-03T08:00:00Z",
    },
    "spec": {
        "mode": "one",
        "selector": {"labelSelectors": {"app.kubernetes.io/name": "catalogue"}},
        "stressors": {"memory": {"workers": 4, "size": "256MB"}},
        "duration": "5m",
    },
    "status": {
        "conditions": [_condition("Selected", True), _condition("AllInjected", False)],
        "experiment": {
            "desiredPhase": "Run",
            "containerRecords": [
                {
                    "id": "shop/catalogue-0/catalogue",
                    "selectorKey": ".",
                    "phase": "Not Injected",
                    "injectedCount": 0,
                    "recoveredCount": 0,
                    "events": [
                        {
                            "operation": "Apply",
                            "type": "Failed",
                            "message": "rpc error: code = Unknown desc = container not found",
                            "timestamp": "2024-05-03T08:00:02Z",
                        }
                    ],
                }
            ],
        },
    },
}


def _mesh(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(POD_CHAOS)
    doc["kind"] = kind
    doc["spec"] = {"mode": "one", "selector": {"labelSelectors": {"app": "cart"}}, **spec}
    return doc


# -- Litmus -----------------------------------------------------------------------------------


def test_a_failed_litmus_chaos_result_is_one_failed_record_with_its_failed_probe() -> None:
    rec = parse_chaos(LITMUS, "result.json")[0]
    assert rec["format"] == "litmus"
    assert rec["test_id"] == "litmus/ChaosResult/cart-chaos-pod-delete"
    assert rec["started_at"] == "2024-03-12T09:41:07.000000Z"
    assert rec["passed"] is False and rec["actual_outcome"] == "Fail"
    assert rec["fault_kinds"] == ["outage"]  # pod-delete
    assert rec["faults"][0]["target"] == "cart"
    assert "GENERIC_ERROR" in rec["details"] and "checkout-availability" in rec["details"]
    assert "cart-pods-ready" not in rec["details"]  # a passed probe is not a problem
    assert rec["parameters"]["runs"] == {"passed": 2, "failed": 1, "stopped": 0}
    assert rec["document"] == LITMUS  # the object as the tool wrote it


def test_litmus_verdicts_map_to_passed_failed_or_no_verdict() -> None:
    rec = parse_chaos(LITMUS_V1)[0]
    assert rec["passed"] is True and rec["details"] is None
    assert rec["fault_kinds"] == ["latency"]  # pod-network-latency
    for verdict, passed in (("Pass", True), ("Fail", False), ("Awaited", None), ("Stopped", None)):
        doc = copy.deepcopy(LITMUS)
        doc["status"]["experimentStatus"]["verdict"] = verdict
        assert parse_chaos(doc)[0]["passed"] is passed, verdict


def test_a_kubernetes_list_of_results_gives_one_record_per_item() -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": [LITMUS, LITMUS_V1, POD_CHAOS]}
    recs = parse_chaos(listing)
    assert [r["format"] for r in recs] == ["litmus", "litmus", "chaos-mesh"]


# -- Chaos Mesh -------------------------------------------------------------------------------


def test_a_chaos_mesh_pod_kill_is_an_outage_with_no_verdict_and_its_injection_state() -> None:
    rec = parse_chaos(POD_CHAOS)[0]
    assert rec["format"] == "chaos-mesh"
    assert rec["test_id"] == "shop/PodChaos/cart-pod-kill"
    assert rec["started_at"] == "2024-05-02T14:00:00.000000Z"
    assert rec["passed"] is None and rec["expected_outcome"] is None
    assert rec["actual_outcome"] == "injected"
    assert rec["fault_kinds"] == ["outage"]
    fault = rec["faults"][0]
    assert (fault["target"], fault["targets"], fault["injected"]) == ("cart", 1, 1)
    assert rec["document"] == POD_CHAOS


def test_a_finished_network_delay_is_latency_recovered_on_every_target() -> None:
    rec = parse_chaos(NETWORK_CHAOS)[0]
    assert rec["fault_kinds"] == ["latency"] and rec["actual_outcome"] == "recovered"
    fault = rec["faults"][0]
    assert fault["settings"]["latency"] == "10ms" and fault["target"] == "web-show"
    assert (fault["targets"], fault["injected"], fault["recovered"]) == (2, 2, 2)


def test_a_failed_injection_is_reported_in_the_details() -> None:
    rec = parse_chaos(STRESS_CHAOS)[0]
    assert rec["fault_kinds"] == ["memory_leak"] and rec["actual_outcome"] == "injecting"
    assert "container not found" in rec["details"]
    assert rec["faults"][0]["target"] == "catalogue"


@pytest.mark.parametrize(
    ("kind", "spec", "kinds"),
    [
        ("PodChaos", {"action": "container-kill", "containerNames": ["cart"]}, ["outage"]),
        ("PodChaos", {"action": "pod-failure", "duration": "30s"}, ["outage"]),
        ("NetworkChaos", {"action": "loss", "loss": {"loss": "25"}}, ["packet_loss"]),
        ("NetworkChaos", {"action": "partition", "direction": "both"}, ["packet_loss"]),
        ("NetworkChaos", {"action": "corrupt", "corrupt": {"corrupt": "10"}}, ["data_corruption"]),
        ("NetworkChaos", {"action": "bandwidth", "bandwidth": {"rate": "1mbps"}}, ["bandwidth"]),
        (
            "NetworkChaos",
            {"action": "netem", "delay": {"latency": "50ms"}, "loss": {"loss": "5"}},
            ["latency", "packet_loss"],
        ),
        ("StressChaos", {"stressors": {"cpu": {"workers": 2, "load": 80}}}, ["cpu_exhaustion"]),
        ("IOChaos", {"action": "latency", "volumePath": "/data", "delay": "100ms"}, ["disk_io"]),
        ("HTTPChaos", {"target": "Request", "port": 80, "abort": True}, ["error_rate"]),
        ("HTTPChaos", {"target": "Request", "port": 80, "delay": "1s"}, ["latency"]),
        ("DNSChaos", {"action": "error", "patterns": ["cart.*"]}, ["error_rate"]),
        ("TimeChaos", {"timeOffset": "-10m"}, []),  # no twin kind: kept, unmapped
    ],
)
def test_chaos_mesh_faults_map_to_the_twin_kinds_their_action_names(
    kind: str, spec: dict[str, Any], kinds: list[str]
) -> None:
    rec = parse_chaos(_mesh(kind, spec))[0]
    assert rec["fault_kinds"] == kinds
    assert rec["test_id"] == f"shop/{kind}/cart-pod-kill"


@needs_shared_data
@pytest.mark.parametrize("doc", [POD_CHAOS, NETWORK_CHAOS, STRESS_CHAOS], ids=lambda d: d["kind"])
def test_the_chaos_mesh_fixtures_follow_the_published_crd_schema(doc: dict[str, Any]) -> None:
    import jsonschema
    import yaml

    text = (SHARED_DATA / "schemas" / "chaos-mesh-crds.yaml").read_text()
    for crd in yaml.safe_load_all(text):
        if crd and crd["spec"]["names"]["kind"] == doc["kind"]:
            schema = _closed(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
            break
    else:
        pytest.fail(f"{doc['kind']} is not in the published CRDs")
    jsonschema.validate({k: v for k, v in doc.items() if k != "metadata"}, schema)


def _closed(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the known ones."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    if schema.get("type") == "object" and "properties" in schema:
        out["properties"] = {k: _closed(v) for k, v in schema["properties"].items()}
    return out


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {**POD_CHAOS, "kind": "Schedule"},
            r"kind: a Chaos Mesh Schedule is not an experiment",
        ),
        ({**LITMUS, "kind": "ChaosEngine"}, r"kind: a Litmus ChaosEngine is not a result"),
        ({**LITMUS, "metadata": {"name": "x"}}, r"metadata.creationTimestamp: required"),
        (
            {**LITMUS, "status": {"experimentStatus": {"verdict": 3}}},
            r"status.experimentStatus.verdict: expected a string, got a number",
        ),
        (
            {**POD_CHAOS, "status": {"conditions": "Selected"}},
            r"status.conditions: expected a list, got a string",
        ),
        (
            {**POD_CHAOS, "status": {"experiment": {"containerRecords": [{"injectedCount": "1"}]}}},
            r"containerRecords\[0\].injectedCount: expected a whole number",
        ),
    ],
)
def test_a_malformed_kubernetes_object_is_one_located_line(
    tmp_path: Path, doc: dict[str, Any], message: str
) -> None:
    f = tmp_path / "k.json"
    f.write_text(json.dumps(doc, indent=1))
    from twin.store import parse_chaos_file

    with pytest.raises(InputError, match=message) as err:
        parse_chaos_file(f)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{f}:")
