"""The Campaigns and Predictive analysis pages, on folders their commands really wrote.

The campaign folder comes from a real (tiny) campaign run through ``twin.campaign``; the risk
folder follows the shape ``twin risk`` writes (documented in docs/risk.md). Widgets must
change what the page shows; broken folders are one line naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the explorer needs streamlit (the `app` extra)")

from conftest import ROOT, SHARED_DATA
from streamlit.testing.v1 import AppTest
from test_app import TINY

from explorer import outputs
from twin.errors import InputError

APP = str(ROOT / "app.py")

TOPOLOGY = TINY  # three services in a chain, the explorer tests' system

CAMPAIGN = """\
name: trio-small
topology: tiny.yaml
duration: 30
warmup: 5
seed: 3
replications: 2
policies:
  none: null
  guarded: {clients: {"*": {timeout: 0.2, retries: {max: 2, budget: 0.5}}}}
grid:
  loads: [1.0]
  faults:
    - {kind: error_rate, targets: [db, api], intensities: [0.05, 0.5]}
    - {kind: latency, targets: [db], intensities: [0.3]}
"""


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from twin.campaign import load_campaign, run_campaign

    tmp = tmp_path_factory.mktemp("campaign")
    (tmp / "tiny.yaml").write_text(TOPOLOGY)
    (tmp / "trio.campaign.yaml").write_text(CAMPAIGN)
    out = tmp / "out"
    run_campaign(load_campaign(tmp / "trio.campaign.yaml"), out, workers=1)
    return out


def _interval(mean: float, lo: float, hi: float) -> dict[str, float]:
    return {"mean": mean, "lo": lo, "hi": hi}


@pytest.fixture(scope="module")
def risk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """risk.json in the shape twin.bayes.risk writes: ranked by expected breach minutes."""
    out = tmp_path_factory.mktemp("risk")
    modes = [
        ("cartservice", "outage", 0.30, 120.0, 40.0, "bundled"),
        ("frontend", "latency", 0.80, 90.0, 90.0, None),
        ("adservice", "error_rate", 0.10, 20.0, 300.0, "bundled"),
    ]
    failure_modes = []
    for rank, (svc, kind, p, minutes, rpn, fix) in enumerate(modes, start=1):
        failure_modes.append(
            {
                "service": svc,
                "fault_kind": kind,
                "p_breach": _interval(p, p / 2, min(1.0, p * 1.5)),
                "expected_breach_minutes": _interval(minutes, minutes / 2, minutes * 2),
                "rpn": {"rpn": rpn, "severity": 5, "occurrence": 4, "detection": 2},
                "mitigation": None
                if fix is None
                else {
                    "policy": fix,
                    "breach_minutes_reduction": _interval(minutes / 2, 1.0, minutes),
                },
                "rank": rank,
            }
        )
    risk = {"horizon_days": 30.0, "interval": 0.9, "failure_modes": failure_modes}
    (out / "risk.json").write_text(json.dumps(risk))
    return out


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(f"explorer/pages/{name}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_campaign_folder_loads_with_every_policy_and_scenario(campaign_dir: Path) -> None:
    out = outputs.load_campaign(campaign_dir)
    assert out.policies == ["guarded", "none"]
    # 5 faults + 1 baseline, under 2 policies
    assert len(out.aggregated) == 12
    worst = outputs.campaign_view(out, "none", "error_rate")
    assert list(worst["error_rate"]) == sorted(worst["error_rate"], reverse=True)


def test_campaigns_page_chart_follows_the_policy_and_figure_picked(campaign_dir: Path) -> None:
    at = page("campaigns")
    at.text_input(key="cp_dir").input(str(campaign_dir)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.metric[0].value == "24"  # 12 (scenario, policy) pairs x 2 replications
    first = at.dataframe[0].value
    at.selectbox(key="cp_metric").set_value("latency_p99").run()
    by_latency = at.dataframe[0].value
    assert "latency_p99" in by_latency.columns and "latency_p99" not in first.columns
    at.selectbox(key="cp_policy").set_value("none").run()
    unprotected = at.dataframe[0].value
    at.selectbox(key="cp_policy").set_value("guarded").run()
    guarded = at.dataframe[0].value
    assert not unprotected.equals(guarded)
    at.slider(key="cp_top").set_value(3).run()
    assert len(at.dataframe[0].value) == 3


def test_campaigns_page_names_the_missing_file_of_a_wrong_folder(tmp_path: Path) -> None:
    at = page("campaigns")
    at.text_input(key="cp_dir").input(str(tmp_path)).run()
    assert not at.exception
    assert "aggregated.parquet" in at.error[0].value and str(tmp_path) in at.error[0].value


def test_campaign_launched_from_the_page_runs_and_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "topo").mkdir()
    (tmp_path / "topo" / "tiny.yaml").write_text(TOPOLOGY)
    spec = CAMPAIGN.replace("replications: 2", "replications: 1")
    spec = spec.replace("topology: tiny.yaml", "topology: topo/tiny.yaml")
    (tmp_path / "trio.campaign.yaml").write_text(spec)
    monkeypatch.setenv("SHADOW_TWIN_EXPERIMENTS", str(tmp_path))
    at = page("campaigns")
    assert at.selectbox(key="cp_spec").options == ["trio.campaign.yaml"]
    out = tmp_path / "launched"
    at.text_input(key="cp_out").input(str(out))
    at.number_input(key="cp_workers").set_value(1)
    at.button(key="cp_launch").click().run(timeout=120)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (out / "runs.parquet").is_file() and (out / "report.html").is_file()
    assert at.metric[0].value == "12"  # 6 scenarios x 2 policies x 1 replication


def test_predictive_page_ranks_modes_and_the_order_widget_reorders(risk_dir: Path) -> None:
    at = page("predictive")
    at.text_input(key="pr_dir").input(str(risk_dir)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    by_minutes = list(at.dataframe[0].value["service"])
    assert by_minutes == ["cartservice", "frontend", "adservice"]
    at.selectbox(key="pr_order").set_value("p_breach").run()
    assert at.dataframe[0].value["service"].iloc[0] == "frontend"
    at.selectbox(key="pr_order").set_value("rpn").run()
    assert at.dataframe[0].value["service"].iloc[0] == "adservice"
    at.slider(key="pr_top").set_value(1).run()
    assert len(at.dataframe[0].value) == 1
    assert "policy **bundled**" in "\n".join(m.value for m in at.markdown)


def test_risk_folder_with_a_broken_interval_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = {"failure_modes": [{"service": "a", "fault_kind": "outage", "rank": 1, "p_breach": 0.3}]}
    (tmp_path / "risk.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"risk\.json.*failure_modes\[0\]\.p_breach"):
        outputs.load_risk(tmp_path)
    at = page("predictive")
    at.text_input(key="pr_dir").input(str(tmp_path)).run()
    assert not at.exception
    assert "failure_modes[0].p_breach" in at.error[0].value


SHARED = SHARED_DATA / "traces" / "deathstarbench-social-jaeger.json"


@pytest.fixture(scope="module")
def calibration_json(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real `twin calibrate` record, from DeathStarBench's Jaeger traces."""
    if not SHARED.is_file():
        pytest.skip(f"the public dataset {SHARED} is absent")
    from typer.testing import CliRunner

    from twin.cli import app

    out = tmp_path_factory.mktemp("calibrated")
    r = CliRunner().invoke(app, ["calibrate", "--traces", str(SHARED), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return (out / "calibration.json").read_bytes()


def test_topology_page_shows_the_calibration_quality_of_an_uploaded_record(
    calibration_json: bytes,
) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.dataframe or all("mean twin" not in d.value.columns for d in at.dataframe)
    at.file_uploader(key="topo_calibration").upload("calibration.json", calibration_json)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (table,) = [d.value for d in at.dataframe if "mean twin" in d.value.columns]
    record = json.loads(calibration_json)
    assert list(table["scope"]) == [r["scope"] for r in record["comparison"]]
    shown = {m.label: m.value for m in at.metric}["Mean-latency accuracy, average over scopes"]
    accs = [r["mean_accuracy"] for r in record["comparison"] if r["mean_accuracy"] is not None]
    assert shown == f"{sum(accs) / len(accs):.1%}"


def test_a_broken_calibration_record_is_one_line_naming_the_file() -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.file_uploader(key="topo_calibration").upload("cal.json", b'{"callgraph": {}}')
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "cal.json: comparison: missing or empty (was `twin calibrate` run with --predict 0?)"
    ]
