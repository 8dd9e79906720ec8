"""``twin drift`` end to end on a generated case from the real manifests: drift.json holds
exactly the injected drifts, plans.json three plans, and a chosen plan's patches and
dry-run kubectl commands are written; an override always wins; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, needs_shared_data
from typer.testing import CliRunner

from twin.cli import app
from twin.drift.generate import make_case
from twin.io import dump_yaml
from twin.safeload import load_yaml_all, read_text

BOUTIQUE = SHARED_DATA / "topologies" / "online-boutique-kubernetes-manifests.yaml"


def _case(tmp: Path, seed: int = 4) -> tuple[Path, Path, set[tuple[str, str]]]:
    docs = [d for d in load_yaml_all(read_text(BOUTIQUE), str(BOUTIQUE)) if d]
    case = make_case(docs, np.random.default_rng(seed))
    exp = tmp / "expected.yaml"
    exp.write_text("---\n".join(dump_yaml(d) for d in case.expected))
    obs = tmp / "observed.json"
    obs.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": case.observed}))
    return exp, obs, {(t.resource, t.path) for t in case.truth}


@needs_shared_data
def test_drift_command_writes_the_drifts_plans_report_and_a_dry_run_plan(tmp_path: Path) -> None:
    exp, obs, truth = _case(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "drift",
            str(exp),
            "--observed",
            str(obs),
            "--out",
            str(out),
            "--plan",
            "1",
            "--apply",
            "--exit-code",
        ],
    )
    assert res.exit_code == 1, res.output  # drift found
    drifts = json.loads((out / "drift.json").read_text())
    assert {(d["resource"], d["path"]) for d in drifts} == truth
    assert all(
        set(d) == {"resource", "path", "expected", "observed", "manager", "since"} for d in drifts
    )
    plans = json.loads((out / "plans.json").read_text())
    assert [p["name"] for p in plans["plans"]] == [
        "reapply-now",
        "reapply-in-window",
        "adopt-observed",
    ]
    assert plans["plans"][2]["downtime_seconds"] == 0.0 < plans["plans"][0]["downtime_seconds"]
    script = next(out.glob("plan-1-*/apply.sh")).read_text()
    commands = [line for line in script.splitlines() if line.startswith("kubectl")]
    assert commands and all(c.endswith("--dry-run=server") for c in commands)
    assert any(c.startswith("kubectl delete ConfigMap debug-overrides") for c in commands)
    assert (out / "report.md").exists() and (out / "drift.png").stat().st_size > 0


@needs_shared_data
def test_an_override_wins_over_the_policy_in_auto_mode(tmp_path: Path) -> None:
    exp, obs, _ = _case(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_downtime_seconds: 1000\nallow_security: high\n")
    auto = CliRunner().invoke(
        app,
        [
            "drift",
            str(exp),
            "--observed",
            str(obs),
            "--out",
            str(tmp_path / "a"),
            "--policy",
            str(policy),
            "--auto",
        ],
    )
    assert auto.exit_code == 0, auto.output
    assert json.loads((tmp_path / "a" / "plans.json").read_text())["chosen"] == 1
    override = tmp_path / "override.yaml"
    override.write_text("plan: adopt-observed\nreason: the scale-up was agreed\n")
    res = CliRunner().invoke(
        app,
        [
            "drift",
            str(exp),
            "--observed",
            str(obs),
            "--out",
            str(tmp_path / "o"),
            "--policy",
            str(policy),
            "--override",
            str(override),
            "--auto",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o" / "plans.json").read_text())
    assert (doc["chosen"], doc["chosen_by"]) == (3, "override")
    assert list((tmp_path / "o").glob("plan-3-adopt-observed/apply.sh"))


def test_a_state_with_no_drift_exits_0_and_writes_an_empty_list(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n")
    res = CliRunner().invoke(
        app, ["drift", str(m), "--observed", str(m), "--out", str(tmp_path / "o"), "--exit-code"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "drift.json").read_text()) == []


@pytest.mark.parametrize(
    "body,expect",
    [
        (
            "ignoreDifferences:\n  - kind: Deployment\n    jsonPointer: [/spec/replicas]\n",
            "unknown field",
        ),
        ("ignoreDifferences:\n  - kind: Deployment\n", "jsonPointers or managedFieldsManagers"),
    ],
)
def test_a_bad_ignore_file_is_one_line_exit_2(tmp_path: Path, body: str, expect: str) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    rules = tmp_path / "ignore.yaml"
    rules.write_text(body)
    res = CliRunner().invoke(
        app,
        [
            "drift",
            str(m),
            "--observed",
            str(m),
            "--out",
            str(tmp_path / "o"),
            "--ignore",
            str(rules),
        ],
    )
    assert res.exit_code == 2
    assert len(res.stderr.splitlines()) == 1 and expect in res.stderr
