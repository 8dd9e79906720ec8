"""`twin risk` end to end: risk.json schema, report, posterior scenarios, refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from twin.bayes import synthetic
from twin.cli import app
from twin.results import write_json
from twin.scenario import Scenario

pytestmark = pytest.mark.filterwarnings("ignore")

SERVICES = ["frontend", "cartservice", "checkoutservice", "paymentservice"]
KINDS = ["latency", "outage"]


def _evidence(tmp: Path) -> tuple[Path, Path, Path]:
    log = synthetic.incident_log(SERVICES, KINDS, seed=5, days=365)
    hist = tmp / "incidents.csv"
    log.to_csv(hist, index=False)
    camp = tmp / "campaign"
    camp.mkdir()
    runs, real = synthetic.impact_runs(
        SERVICES, KINDS, ("none", "breaker"), seed=4, replications=3, real_bias=2.5
    )
    runs.to_parquet(camp / "runs.parquet", index=False)
    write_json(camp / "summary.json", {"slo": {"availability": 0.999, "latency_p99": 0.5}})
    chaos = tmp / "chaos.csv"
    real.to_csv(chaos, index=False)
    return hist, camp, chaos


def _risk(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["risk", *args])


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    tmp = tmp_path_factory.mktemp("risk")
    hist, camp, chaos = _evidence(tmp)
    out = tmp / "out"
    r = _risk(
        [
            "--history",
            str(hist),
            "--results",
            str(camp),
            "--db",
            str(chaos),
            "--out",
            str(out),
            "--horizon",
            "30d",
            "--draws",
            "1000",
            "--tune",
            "1000",
            "--scenarios",
            "3",
        ]
    )
    return out, r


def _interval(d: dict[str, float]) -> None:
    assert set(d) == {"mean", "lo", "hi"}
    assert d["lo"] <= d["mean"] <= d["hi"]


def test_risk_json_gives_p_breach_and_breach_minutes_with_90_percent_intervals_and_ranks(
    reported: tuple[Path, Any],
) -> None:
    out, r = reported
    assert r.exit_code == 0, r.output
    risk = json.loads((out / "risk.json").read_text())
    assert risk["horizon_days"] == 30.0 and risk["interval"] == 0.9
    modes = risk["failure_modes"]
    assert {(m["service"], m["fault_kind"]) for m in modes} == {
        (s, k) for s in SERVICES for k in KINDS
    }
    assert [m["rank"] for m in modes] == list(range(1, len(modes) + 1))
    minutes = [m["expected_breach_minutes"]["mean"] for m in modes]
    assert minutes == sorted(minutes, reverse=True)
    for m in modes:
        _interval(m["p_breach"])
        _interval(m["expected_breach_minutes"])
        assert m["p_breach"]["lo"] >= 0.0 and m["p_breach"]["hi"] <= 1.0
        assert set(m["error_budget_burn"]) == {"availability", "latency_p99"}
        assert m["rpn"]["rpn"] == (
            m["rpn"]["severity"] * m["rpn"]["occurrence"] * m["rpn"]["detection"]
        )
        assert m["mitigation"]["policy"] == "breaker"
        _interval(m["mitigation"]["breach_minutes_reduction"])
    services = risk["services"]
    assert sorted(s["service"] for s in services) == sorted(SERVICES)
    assert [s["rank"] for s in services] == [1, 2, 3, 4]
    for s in services:
        _interval(s["p_breach"])
        _interval(s["expected_breach_minutes"])
    assert risk["priorities"][0]["rank"] == 1
    assert all(d["ok"] for d in risk["diagnostics"])


def test_risk_json_is_the_risk_report_document_field_for_field(
    reported: tuple[Path, Any],
) -> None:
    from twin.bayes import RiskReport

    out, r = reported
    assert r.exit_code == 0, r.output
    text = (out / "risk.json").read_text()
    report = RiskReport.model_validate_json(text)
    assert list(json.loads(text)) == list(RiskReport.model_fields)
    assert report.evidence.simulated_runs > 0 and report.method == "nutpie"


def test_a_few_real_chaos_results_pull_the_prediction_toward_reality(
    reported: tuple[Path, Any],
) -> None:
    # the real system breaches more often than the twin (+2.5 log-odds): the discrepancy
    # term learns the sign from a handful of real results among hundreds of simulated runs
    out, _ = reported
    risk = json.loads((out / "risk.json").read_text())
    assert risk["evidence"]["real_results"] <= 15
    for kind in KINDS:
        assert risk["twin_vs_real"][kind]["mean"] > 0.5


def test_report_has_interval_plot_risk_matrix_and_diagnostics(
    reported: tuple[Path, Any],
) -> None:
    out, _ = reported
    html = (out / "report.html").read_text()
    assert "Posterior 90% intervals per service" in html
    assert "Risk matrix" in html
    assert "Sampling diagnostics" in html and "max r-hat" in html
    assert html.count("data:image/png;base64") >= 2
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["ok"] is True and len(diag["models"]) == 2


def test_posterior_scenarios_are_valid_scenario_documents(reported: tuple[Path, Any]) -> None:
    out, _ = reported
    files = sorted((out / "scenarios").glob("*.yaml"))
    assert len(files) == 3
    for f in files:
        sc = Scenario.load_file(f)
        assert sc.faults
        for fault in sc.faults:
            assert fault.target in SERVICES and fault.kind in KINDS
            assert fault.sample is not None and fault.sample.interval.expected() > 0


def test_refuses_to_report_when_diagnostics_fail(tmp_path: Path) -> None:
    hist, camp, _ = _evidence(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "risk.json").write_text("{}")  # an earlier report must not read as this one's
    r = _risk(
        [
            "--history",
            str(hist),
            "--results",
            str(camp),
            "--out",
            str(out),
            "--draws",
            "8",
            "--tune",
            "8",
        ]
    )
    assert r.exit_code == 3
    assert "refusing to report" in r.output and "ESS" in r.output
    assert not (out / "risk.json").exists()
    assert (out / "risk.previous.json").read_text() == "{}"  # moved aside, not lost
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["ok"] is False
    assert any(m["problems"] for m in diag["models"])
    assert "No risk reported" in (out / "report.html").read_text()
