"""The Argo Rollouts and Flagger examples that use the guard's endpoint validate against the
published CRD schemas (vendored, strict, CEL rules included), and a broken one does not; the
example guard document is a valid guard."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from twin.change.guard import GuardSpec
from twin.crd import schemas_dir, validate_resource

EXAMPLES = Path(__file__).resolve().parents[1] / "experiments" / "rollout"
CRD = {
    "AnalysisTemplate": "argo-rollouts-analysis-template-crd.yaml",
    "Rollout": "argo-rollouts-rollout-crd.yaml",
    "Canary": "flagger-crd.yaml",
}


def _check(doc: dict[str, Any]) -> list[str]:
    return validate_resource(doc, schemas_dir() / CRD[doc["kind"]])


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return data


@pytest.mark.parametrize(
    "name", ["argo-analysis-template.yaml", "argo-rollout.yaml", "flagger-canary.yaml"]
)
def test_the_example_validates_against_its_published_crd(name: str) -> None:
    assert _check(_load(name)) == []


def test_the_analysis_template_reads_the_guards_decision() -> None:
    m = _load("argo-analysis-template.yaml")["spec"]["metrics"][0]
    assert "result.decision == 'go'" in m["successCondition"]
    assert "rollback" in m["failureCondition"]
    assert m["provider"]["web"]["url"] == "{{ args.guard-url }}"


def test_the_flagger_canary_uses_the_gate_and_the_rollback_hook() -> None:
    hooks = {
        h["type"]: h["url"] for h in _load("flagger-canary.yaml")["spec"]["analysis"]["webhooks"]
    }
    assert hooks["rollout"].endswith("/flagger/gate")
    assert hooks["rollback"].endswith("/flagger/rollback")


def test_broken_examples_fail_validation() -> None:
    at = _load("argo-analysis-template.yaml")
    bad = copy.deepcopy(at)
    bad["spec"]["metrics"][0]["provider"]["web"]["timeoutSecs"] = 5  # misspelt field
    assert any("timeoutSecs" in e for e in _check(bad))
    canary = _load("flagger-canary.yaml")
    bad = copy.deepcopy(canary)
    bad["spec"]["analysis"]["webhooks"][0]["type"] = "sometimes"
    assert _check(bad)
    bad = copy.deepcopy(canary)
    del bad["spec"]["targetRef"]
    assert any("targetRef" in e for e in _check(bad))
    ro = _load("argo-rollout.yaml")
    bad = copy.deepcopy(ro)
    bad["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "ten"
    assert _check(bad)


def test_the_example_guard_document_is_a_valid_guard() -> None:
    spec = GuardSpec.load_file(EXAMPLES / "guard-cartservice.yaml")
    assert spec.service == "cartservice" and spec.rollback.checks
