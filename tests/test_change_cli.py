"""``twin check-change`` and ``twin changes`` through the command line: exit codes 0 (go),
3 (no-go) and 2 (bad input), the files written, and the database."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from typer.testing import CliRunner

from twin.change.rollback import shipped_schema
from twin.cli import app

TOPOLOGY = {
    "name": "pair",
    "services": {
        "web": {
            "workers": 4,
            "operations": {
                "default": {
                    "service_time": {"dist": "exponential", "mean": 0.005},
                    "calls": [{"to": "db"}],
                }
            },
        },
        "db": {
            "workers": 2,
            "operations": {"default": {"service_time": {"dist": "exponential", "mean": 0.01}}},
        },
    },
    "workload": [{"entry": "web", "rate": 20.0}],
    "slo": {"latency_p99": 0.3, "availability": 0.99},
}
POLICY = {"clients": {"web->db": {"timeout": 0.5}}}


def _files(tmp_path: Path, change: dict) -> list[str]:
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(TOPOLOGY))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(POLICY))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "c", "changes": [change]}))
    return [
        "check-change",
        str(tmp_path / "t.yaml"),
        str(tmp_path / "c.yaml"),
        "--policy",
        str(tmp_path / "p.yaml"),
        "--replications",
        "1",
        "--requests-per-run",
        "1500",
        "--out",
        str(tmp_path / "out"),
        "--db",
        str(tmp_path / "twin.db"),
    ]


def test_a_harmless_change_exits_0_with_a_go_verdict_and_a_valid_rollback(tmp_path: Path):
    raise_timeout = {
        "id": "raise",
        "target": "policy",
        "patch": {"clients": {"web->db": {"timeout": 0.8}}},
    }
    res = CliRunner().invoke(app, _files(tmp_path, raise_timeout))
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["decision"] == "go"
    assert set(verdict["risk"]) == {"mean", "lo", "hi"}
    assert set(verdict["slo"]) == {"latency_p99", "availability"}
    rollback = json.loads((out / "rollback.json").read_text())
    jsonschema.validate(rollback, shipped_schema())
    (revert,) = rollback["reverts"]
    assert revert["twin_patch"] == [
        {"target": "policy", "patch": {"clients": {"web->db": {"timeout": 0.5}}}}
    ]
    assert revert["config"][0]["format"] == "istio"  # the client policy as the mesh has it
    assert "VirtualService" in revert["config"][0]["text"]
    assert (out / "report.html").read_text().count("<img") >= 1
    listing = CliRunner().invoke(app, ["changes", "--db", str(tmp_path / "twin.db")])
    assert listing.exit_code == 0
    assert "c " in listing.output and "go" in listing.output


def test_a_timeout_below_the_callee_p99_exits_3_naming_the_reason(tmp_path: Path):
    tight = {
        "id": "tight",
        "target": "policy",
        "patch": {"clients": {"web->db": {"timeout": 0.005}}},
    }
    res = CliRunner().invoke(app, _files(tmp_path, tight))
    assert res.exit_code == 3, res.output
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["decision"] == "no-go"
    assert any(r.startswith("timeout: web->db") for r in verdict["reasons"])
    listing = CliRunner().invoke(app, ["changes", "--db", str(tmp_path / "twin.db"), "--json"])
    assert json.loads(listing.output)["entries"][0]["decision"] == "no-go"


def test_a_bad_change_exits_2_with_one_line_and_writes_nothing(tmp_path: Path):
    bad = {"id": "a", "target": "policy", "patch": {}, "depends_on": ["missing"]}
    res = CliRunner().invoke(app, _files(tmp_path, bad))
    assert res.exit_code == 2
    (line,) = res.output.strip().splitlines()
    assert line.startswith("twin: error: ") and "changes[0].depends_on[0]" in line
    assert not (tmp_path / "out").exists()
