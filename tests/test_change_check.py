"""check-change: paired runs, the risk score, static checks, the rollback signature, history."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT

from twin.change.check import (
    CheckOptions,
    at_risk_services,
    check_change,
    paired_bootstrap,
    plan_runs,
)
from twin.change.document import Change, ChangeSet, VersionChange, reduce_changes
from twin.change.history import (
    accuracy,
    accuracy_by_month,
    history,
    record_check,
    record_rollout,
)
from twin.change.rollback import build_rollback, json_schema, shipped_schema
from twin.change.statics import (
    MAX_AMPLIFICATION,
    amplification,
    breakers_removed,
    capacity,
    hpa_max,
    retry_budgets,
    static_findings,
    timeouts,
)
from twin.errors import InputError
from twin.policy import Policy
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.store import Store
from twin.topology import Topology

TINY = {
    "name": "tiny",
    "services": {
        "api": {
            "workers": 2,
            "operations": {
                "default": {
                    "service_time": {"dist": "exponential", "mean": 0.01},
                    "calls": [{"to": "mid"}],
                }
            },
        },
        "mid": {
            "workers": 2,
            "operations": {
                "default": {
                    "service_time": {"dist": "exponential", "mean": 0.005},
                    "calls": [{"to": "db"}],
                }
            },
        },
        "db": {
            "workers": 2,
            "operations": {"default": {"service_time": {"dist": "exponential", "mean": 0.005}}},
        },
    },
    "workload": [{"entry": "api", "rate": 20.0}],
    "slo": {"latency_p99": 0.2, "availability": 0.99},
}
SMALL = CheckOptions(replications=2, seed=3, requests_per_run=1000.0)


def tiny() -> Topology:
    return Topology.from_dict(TINY)


def one(change: dict) -> ChangeSet:
    return ChangeSet.model_validate({"name": "t", "changes": [change]})


# -- the paired simulation -----------------------------------------------------------------


def test_a_change_without_effect_has_exactly_zero_risk():
    same = one({"id": "same", "target": "topology", "patch": {"services": {"db": {"replicas": 1}}}})
    result = check_change(tiny(), same, None, SMALL)
    v = result.verdict
    assert v.decision == "go"
    assert (v.risk.mean, v.risk.lo, v.risk.hi) == (0.0, 0.0, 0.0)
    assert (v.breach_minutes.mean, v.breach_minutes.lo, v.breach_minutes.hi) == (0.0, 0.0, 0.0)
    assert [b.breach_share for b in result.before] == [a.breach_share for a in result.after]


def test_a_service_made_slower_than_its_load_is_no_go_with_capacity_and_risk():
    slow = one({"id": "v", "kind": "version", "service": "api", "latency_factor": 12.0})
    v = check_change(tiny(), slow, None, SMALL).verdict
    assert v.decision == "no-go"
    families = {r.partition(":")[0] for r in v.reasons}
    assert "capacity" in families
    assert v.p_breach_after > v.p_breach_before
    assert v.breach_minutes.lo > 0.0


def test_paired_bootstrap_interval_holds_the_mean_and_is_exact_for_identical_pairs():
    assert paired_bootstrap([1.0, 0.0, 0.5], [1.0, 0.0, 0.5], seed=1).model_dump() == {
        "mean": 0.0,
        "lo": 0.0,
        "hi": 0.0,
    }
    f = paired_bootstrap([0.0] * 10, [1.0] * 5 + [0.0] * 5, seed=1)
    assert f.mean == 0.5
    assert 0.0 <= f.lo < 0.5 < f.hi <= 1.0


def test_faults_come_from_the_risk_file_in_proportion_to_their_rate():
    risk = {
        "failure_modes": [
            {"service": "db", "fault_kind": "error_rate", "rate_per_day": {"mean": 1.0},
             "p_fault": {"mean": 0.9}},
            {"service": "mid", "fault_kind": "latency", "rate_per_day": {"mean": 0.0},
             "p_fault": {"mean": 0.0}},
        ]
    }  # fmt: skip
    runs, origin = plan_runs(
        tiny(), ["api", "mid", "db"], replications=6, seed=1, start=10, duration=5, risk=risk
    )
    assert origin == "risk"
    assert runs[0].fault is None  # the fault-free run
    assert {(r.fault["kind"], r.fault["target"]) for r in runs[1:]} == {("error_rate", "db")}
    assert at_risk_services(risk, tiny()) == {"db"}


# -- static checks -------------------------------------------------------------------------


def test_the_timeout_check_fires_below_the_callee_p99_only():
    pol = Policy.from_dict({"clients": {"api->mid": {"timeout": 0.01}}})
    (f,) = timeouts(tiny(), pol, {"mid": 0.02, "db": 0.01})
    assert (f.check, f.subject) == ("timeout", "api->mid")
    assert timeouts(tiny(), pol, {"mid": 0.005}) == []


def test_the_retry_budget_check_fires_on_retries_without_a_budget_only():
    bare = Policy.from_dict({"clients": {"api->mid": {"retries": {"max": 2}}}})
    budgeted = Policy.from_dict({"clients": {"api->mid": {"retries": {"max": 2, "budget": 0.1}}}})
    assert [f.subject for f in retry_budgets(tiny(), bare)] == ["api->mid"]
    assert retry_budgets(tiny(), budgeted) == []


def test_the_amplification_check_multiplies_attempts_along_a_path():
    three = {"retries": {"max": 3, "budget": 0.1}}
    both = Policy.from_dict({"clients": {"api->mid": three, "mid->db": three}})
    (f,) = amplification(tiny(), both)  # 4 x 4 = 16 attempts at db
    assert (f.check, f.subject) == ("retry-amplification", "db")
    assert "16" in f.reason
    single = Policy.from_dict({"clients": {"api->mid": three}})  # 4 at most
    assert MAX_AMPLIFICATION >= 4
    assert amplification(tiny(), single) == []


def test_the_capacity_and_hpa_checks_fire_when_the_load_outgrows_them():
    pol = Policy.from_dict(
        {"services": {"api": {"autoscale": {"max": 2, "target_utilization": 0.5}}}}
    )
    # api: 20 rps x 0.01 s = 0.2 of one replica of 2 workers... x load 20 = 2 replicas busy
    assert capacity(tiny(), Policy(), 1.0) == []
    assert [f.subject for f in capacity(tiny(), Policy(), 12.0)] == ["api"]
    assert hpa_max(tiny(), pol, 1.0) == []
    assert [f.subject for f in hpa_max(tiny(), pol, 12.0)] == ["api"]  # needs ceil(1.2/.5)=3


def test_the_breaker_check_fires_on_a_removed_breaker_to_a_service_at_risk():
    cb = {"circuit_breaker": {"failure_rate": 0.5}}
    before = Policy.from_dict({"clients": {"api->mid": cb}})
    assert [f.subject for f in breakers_removed(tiny(), before, Policy(), None)] == ["api->mid"]
    assert breakers_removed(tiny(), before, Policy(), {"db"}) == []  # mid is not at risk
    assert breakers_removed(tiny(), before, before, None) == []


@pytest.mark.parametrize(
    "name", ["online-boutique", "sock-shop", "teastore", "deathstarbench-social"]
)
def test_static_checks_on_the_bundled_defaults_fire_only_where_the_twin_sees_timeouts(name):
    topo = Topology.load(ROOT / "topologies" / f"{name}.yaml")
    pol = Policy.load_file(ROOT / "topologies" / f"{name}.policy.yaml")
    res = Simulation(topo, Scenario(duration=20, warmup=2), pol, series="entries").run()
    p99 = {n: s.latency.p99 for n, s in res.summary.services.items()}
    for f in static_findings(topo, pol, load=1.0, callee_p99=p99):
        assert f.check == "timeout", f.reason
        assert res.summary.edges[f.subject].timeouts > 0, f.reason


# -- the rollback signature ----------------------------------------------------------------


def test_the_shipped_schema_is_the_models_schema():
    assert shipped_schema() == json_schema()


def test_a_rollback_reverts_in_reverse_order_with_commands_and_validates():
    changes = ChangeSet.model_validate(
        {
            "name": "r",
            "changes": [
                {"id": "scale", "target": "topology",
                 "patch": {"services": {"db": {"replicas": 3}}}},
                {"id": "v", "kind": "version", "service": "mid", "latency_factor": 1.5,
                 "depends_on": ["scale"]},
                {"id": "hpa", "target": "policy",
                 "patch": {"services": {"api": {"autoscale": {"max": 4}}}}},
            ],
        }
    )  # fmt: skip
    reduced = reduce_changes(changes, tiny())
    sig = build_rollback(changes, reduced, service_p99={"mid": 0.02})
    doc = sig.to_json()
    jsonschema.validate(doc, shipped_schema())
    assert [r["change"] for r in doc["reverts"]] == ["hpa", "v", "scale"]
    by_id = {r["change"]: r for r in doc["reverts"]}
    assert by_id["scale"]["required_by"] == ["v"]
    assert by_id["scale"]["commands"] == [
        """kubectl patch deployment db --type merge -p '{"spec":{"replicas":1}}'"""
    ]
    assert by_id["v"]["commands"] == ["kubectl rollout undo deployment/mid"]
    assert by_id["hpa"]["commands"] == ["kubectl delete hpa api"]
    names = {c["name"] for c in doc["verification"]}
    assert {"api-availability", "api-latency-p99", "mid-p99-back"} <= names
    # the twin's own patches take the documents back, exactly
    topo, pol = reduced.topology, reduced.policy
    for r in doc["reverts"]:
        for p in r["twin_patch"]:
            from twin.change.document import document_data, merge_patch

            if p["target"] == "topology":
                topo = Topology.from_dict(merge_patch(document_data(topo), p["patch"]))
            else:
                pol = Policy.from_dict(merge_patch(document_data(pol), p["patch"]))
    assert topo == tiny()
    assert pol == Policy()


# -- history -------------------------------------------------------------------------------


def test_rollouts_join_their_checks_and_accuracy_counts_outcomes(tmp_path: Path):
    with Store(str(tmp_path / "t.db")) as store:
        bad = record_check(store, {"name": "a", "decision": "no-go", "reasons": ["x: y"]})
        good = record_check(store, {"name": "b", "decision": "go"})
        record_rollout(store, name="a", check_id=bad, rolled_back=True, observed_breach=False,
                       time_to_rollback=42.0)  # fmt: skip
        record_rollout(store, name="b", check_id=good, rolled_back=False, observed_breach=True)
        record_rollout(store, name="c", rolled_back=False, observed_breach=False)
        with pytest.raises(InputError):
            record_rollout(store, name="d", rolled_back=False, observed_breach=False,
                           time_to_rollback=3.0)  # fmt: skip
        entries = history(store)
    assert [(e.name, e.decision, e.observed_bad) for e in entries] == [
        ("a", "no-go", True),
        ("b", "go", True),
        ("c", None, False),
    ]
    acc = accuracy(entries)
    assert (acc["tp"], acc["fn"], acc["judged"], acc["accuracy"]) == (1, 1, 2, 0.5)
    assert (acc["rollbacks"], acc["median_time_to_rollback"]) == (1, 42.0)
    (month,) = accuracy_by_month(entries)
    assert (month["judged"], month["accuracy"]) == (2, 0.5)


def test_document_kinds_are_exported_with_the_change_set():
    assert isinstance(one({"id": "a", "target": "policy", "patch": {}}).changes[0], Change)
    v = one({"id": "v", "kind": "version", "service": "api"}).changes[0]
    assert isinstance(v, VersionChange)
    assert json.loads(v.model_dump_json())["kind"] == "version"


def test_the_rollback_schema_is_declared_package_data():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = data["tool"]["setuptools"]["package-data"]["twin"]
    assert "change/rollback.schema.json" in declared
    assert (ROOT / "twin" / "change" / "rollback.schema.json").is_file()


def test_with_a_risk_file_a_breaker_may_go_from_an_edge_the_risk_model_calls_safe():
    cb = {"circuit_breaker": {"failure_rate": 0.5}}
    before = Policy.from_dict({"clients": {"api->mid": cb}})
    drop = one({"id": "d", "target": "policy", "patch": {"clients": {"api->mid": None}}})
    risk = {
        "failure_modes": [
            {"service": "db", "fault_kind": "latency", "rate_per_day": {"mean": 2.0},
             "p_fault": {"mean": 0.99}},
        ]
    }  # fmt: skip
    options = CheckOptions(replications=1, seed=3, requests_per_run=1000.0, risk=risk)
    v = check_change(tiny(), drop, before, options).verdict
    assert v.method.faults_from == "risk"
    assert not any(r.startswith("breaker-removed") for r in v.reasons)
    without = CheckOptions(replications=1, seed=3, requests_per_run=1000.0)
    v = check_change(tiny(), drop, before, without).verdict
    assert any(r.startswith("breaker-removed: api->mid") for r in v.reasons)
