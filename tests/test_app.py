"""The Streamlit explorer, page by page, with ``streamlit.testing.v1.AppTest``.

Every page renders without an exception; the What-if widgets change what is displayed;
uploads with mistakes show one line naming file, line and path (never a traceback); pages
whose capability is not built yet say what they need and show no results (the Campaigns and
Predictive analysis pages are tested on real output folders in test_app_outputs.py). A small
three-service topology (``$SHADOW_TWIN_TOPOLOGIES``) keeps each run well under a second.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("streamlit", reason="the explorer needs streamlit (the `app` extra)")
pytest.importorskip("plotly", reason="the explorer needs plotly (the `app` extra)")

from conftest import ROOT, child_env
from streamlit.testing.v1 import AppTest

from explorer import catalog, ui
from explorer.whatif import FaultChoice, fault_document, targets
from twin.topology import Topology

APP = str(ROOT / "app.py")
TIMEOUT = 60

TINY = """\
name: tiny
description: three services in a chain, for the explorer's tests
services:
  web:
    workers: 4
    operations:
      default:
        service_time: {dist: exponential, mean: 0.005}
        calls: [{to: api}]
  api:
    workers: 4
    blocking: true
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        calls: [{to: db}]
  db:
    workers: 2
    operations:
      default: {service_time: {dist: exponential, mean: 0.02}}
workload:
  - {entry: web, rate: 20}
slo: {latency_p99: 0.5, availability: 0.99}
"""
TINY_SCENARIO = """\
duration: 60
seed: 1
faults:
  - {kind: error_rate, target: db, start: 20, duration: 20, probability: 0.3}
"""
TINY_POLICY = """\
clients:
  "*": {timeout: 0.2, retries: {max: 2, budget: 0.5}}
"""

PAGES = {
    "topology": "Topology",
    "whatif": "What-if",
    "playback": "Playback",
    "campaigns": "Campaigns",
    "predictive": "Predictive analysis",
    "policies": "Policies",
}


@pytest.fixture
def tiny_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A topology folder holding only the tiny system (with scenario and policy)."""
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    (tmp_path / "tiny.scenario.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    (tmp_path / "tiny.policy.yaml").write_text(TINY_POLICY, encoding="utf-8")
    monkeypatch.setenv(catalog.TOPOLOGY_DIR_ENV, str(tmp_path))
    yield tmp_path


def page(name: str) -> AppTest:
    """The app opened on one page (after a first run, as a browser would)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if name != "topology":
        at.switch_page(f"explorer/pages/{name}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> list[dict[str, str]]:
    """The What-if metrics as two rows: [unmitigated, mitigated], label -> shown value."""
    values = [(m.label, m.value) for m in at.metric]
    assert len(values) == 8, values
    return [dict(values[:4]), dict(values[4:])]


def seconds(text: str) -> float:
    number = float(re.sub(r"[^0-9.]", "", text))
    return number / 1000 if text.endswith("ms") else number


def percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def texts(at: AppTest) -> str:
    """Everything written on the page as markdown, captions, alerts."""
    parts: list[Any] = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error]
    parts += [*at.title, *at.subheader]
    return "\n".join(str(p.value) for p in parts)


def run_whatif(at: AppTest) -> AppTest:
    at.button(key="wi_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


# -- every page --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_renders_without_exception(tiny_dir: Path, name: str) -> None:
    at = page(name)
    assert at.title[0].value == PAGES[name]
    assert not at.error, [e.value for e in at.error]


def test_sidebar_offers_the_topologies_in_the_folder_but_not_their_companions(
    tiny_dir: Path,
) -> None:
    (tiny_dir / "other.yaml").write_text(TINY.replace("name: tiny", "name: other"), "utf-8")
    at = page("topology")
    assert at.selectbox(key=ui.SYSTEM_KEY).options == ["other", "tiny"]


def test_bundled_topologies_are_discovered_and_each_renders() -> None:
    found = catalog.discover(ROOT / "topologies")
    if not found:
        pytest.skip("no bundled topologies yet")
    assert all(not p.name.endswith(catalog.COMPANIONS) for p in found)
    at = page("topology")
    options = at.selectbox(key=ui.SYSTEM_KEY).options
    assert options == [p.name.removesuffix(".yaml") for p in found]
    for path, label in zip(found, options, strict=True):
        at.selectbox(key=ui.SYSTEM_KEY).set_value(label).run()
        assert not at.exception, (label, [e.value for e in at.exception])
        assert not at.error, (label, [e.value for e in at.error])
        assert at.subheader[0].value == label
        shown = {m.label: m.value for m in at.metric}
        topo = Topology.load(path)
        assert shown["Services"] == str(len(topo.services)), label
        assert shown["Call edges"] == str(topo.service_graph().number_of_edges()), label


# -- Topology ----------------------------------------------------------------------------------


def test_topology_page_shows_graph_parameters_and_calibration_status(tiny_dir: Path) -> None:
    at = page("topology")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Services"] == "3"
    assert shown["Call edges"] == "2"
    assert shown["Offered load"] == "20 req/s"
    services = at.dataframe[0].value
    assert set(services["service"]) == {"web", "api", "db"}
    assert services.set_index("service").loc["db", "offered utilisation"] == pytest.approx(0.2)
    assert any("Calibration quality" in e.label for e in at.expander)
    assert at.get("plotly_chart"), "the call graph is drawn"


def test_bad_uploaded_topology_shows_its_file_line_and_path(tiny_dir: Path) -> None:
    at = page("topology")
    bad = TINY.replace("    workers: 2\n", "    workers: 2\n    wokers: 3\n")
    at.file_uploader(key="up_topology").upload("bad.yaml", bad.encode(), "application/x-yaml")
    at.run()
    assert not at.exception
    line = bad.splitlines().index("    wokers: 3") + 1
    assert [e.value for e in at.error] == [f"bad.yaml:{line}: services.db.wokers: unknown field"]


def test_uploaded_yaml_syntax_error_names_its_line(tiny_dir: Path) -> None:
    at = page("topology")
    at.file_uploader(key="up_topology").upload("broken.yaml", b"name: x\nservices: [a\n")
    at.run()
    assert not at.exception
    (message,) = [e.value for e in at.error]
    assert message.startswith("broken.yaml:3: invalid YAML"), message


def test_uploaded_scenario_naming_an_unknown_service_points_at_it(tiny_dir: Path) -> None:
    at = page("topology")
    at.file_uploader(key="up_topology").upload("tiny.yaml", TINY.encode())
    scenario = "duration: 30\nfaults:\n  - {kind: outage, target: cache, start: 1}\n"
    at.file_uploader(key="up_scenario").upload("s.yaml", scenario.encode())
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["s.yaml:3: faults[0].target: unknown service 'cache'"]


def test_good_upload_is_selected_and_shown(tiny_dir: Path) -> None:
    at = page("topology")
    mine = TINY.replace("name: tiny", "name: mine").replace("rate: 20", "rate: 5")
    at.file_uploader(key="up_topology").upload("mine.yaml", mine.encode())
    at.run()
    assert not at.exception
    assert at.selectbox(key=ui.SYSTEM_KEY).value == "mine (uploaded)"
    assert at.subheader[0].value == "mine"
    assert {m.label: m.value for m in at.metric}["Offered load"] == "5 req/s"


# -- What-if -----------------------------------------------------------------------------------


def test_whatif_starts_from_the_systems_own_fault_and_answers(tiny_dir: Path) -> None:
    at = page("whatif")
    assert at.selectbox(key="wi_kind").value == "error_rate"
    assert at.selectbox(key="wi_target").value == "db"
    assert at.slider(key="wi_intensity").value == pytest.approx(0.3)
    base, _ = metrics(at)
    assert percent(base["Error rate"]) > 0.05, "30% errors at the database for half the run"
    assert len(at.get("plotly_chart")) == 5


def test_raising_the_fault_intensity_raises_the_error_rate(tiny_dir: Path) -> None:
    at = page("whatif")
    at.slider(key="wi_intensity").set_value(0.1)
    low = percent(metrics(run_whatif(at))[0]["Error rate"])
    at.slider(key="wi_intensity").set_value(0.6)
    high = percent(metrics(run_whatif(at))[0]["Error rate"])
    assert 0 < low < high


def test_raising_the_load_raises_the_latency(tiny_dir: Path) -> None:
    at = page("whatif")
    at.selectbox(key="wi_kind").set_value("none").run()
    at.slider(key="wi_load").set_value(1.0)
    calm = seconds(metrics(run_whatif(at))[0]["p99"])
    at.slider(key="wi_load").set_value(4.0)
    busy = seconds(metrics(run_whatif(at))[0]["p99"])
    assert busy > 1.5 * calm


def test_enabling_a_timeout_changes_the_mitigated_result(tiny_dir: Path) -> None:
    at = page("whatif")
    at.selectbox(key="wi_kind").set_value("latency").run()
    at.selectbox(key="wi_target").set_value("db")
    at.slider(key="wi_intensity").set_value(0.3)
    at.toggle(key="wi_timeout_on").set_value(False)
    base, mitigated = metrics(run_whatif(at))
    assert mitigated == base, "no mitigation: the mitigated run is the unmitigated run"
    at.toggle(key="wi_timeout_on").set_value(True).run()
    at.slider(key="wi_timeout").set_value(0.1)
    base2, mitigated2 = metrics(run_whatif(at))
    assert base2 == base
    assert percent(mitigated2["Error rate"]) > percent(base["Error rate"]), "calls time out"
    assert seconds(mitigated2["p99"]) < seconds(base["p99"]), "nobody waits 0.3 s any more"


def test_the_systems_policy_file_can_be_the_mitigation(tiny_dir: Path) -> None:
    at = page("whatif")
    at.radio(key="wi_source").set_value("policy file")
    base, mitigated = metrics(run_whatif(at))
    assert percent(mitigated["Error rate"]) < percent(base["Error rate"]), "retries absorb errors"


def test_changed_inputs_are_flagged_until_run(tiny_dir: Path) -> None:
    at = page("whatif")
    at.slider(key="wi_load").set_value(2.0).run()
    assert "The inputs changed since this run" in texts(at)
    run_whatif(at)
    assert "The inputs changed since this run" not in texts(at)


def test_whatif_results_are_cached_by_input(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = ui.compute_whatif

    def counting(*args: Any) -> Any:
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(ui, "compute_whatif", counting)
    ui.cached_whatif.clear()
    at = page("whatif")
    assert len(calls) == 1
    run_whatif(at)
    assert len(calls) == 1, "same documents: answered from the cache"
    at.number_input(key="wi_seed").set_value(2)
    run_whatif(at)
    assert len(calls) == 2, "another seed is another question"


def test_an_unexpected_failure_is_one_line_with_the_traceback_folded_away(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(ui, "compute_whatif", broken)
    ui.cached_whatif.clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("explorer/pages/whatif.py").run()
    (message,) = [e.value for e in at.error]
    assert "failed unexpectedly (RuntimeError: kaboom)" in message
    assert at.expander[-1].label == "Details for the bug report"
    assert not at.metric, "no made-up results"


# -- Playback ----------------------------------------------------------------------------------


def test_playback_colours_services_by_health_over_time(tiny_dir: Path) -> None:
    at = page("whatif")
    at.switch_page("explorer/pages/playback.py").run()
    assert not at.exception
    at.selectbox(key="pb_source").set_value("last what-if, unmitigated").run()
    table = at.dataframe[0].value.set_index("service")
    assert table.loc["db", "status"] == "healthy", "window 0: before the fault"
    at.select_slider(key="pb_t").set_value(20.0).run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("service")
    assert table.loc["db", "status"] == "failing", "30% of its requests fail at 20 s"
    assert len(at.get("plotly_chart")) == 3, "graph, user requests, utilisation"
    assert "twin calibrate --metrics" in texts(at), "says what an observed overlay needs"


def test_play_button_starts_and_pauses(tiny_dir: Path) -> None:
    at = page("whatif")
    at.switch_page("explorer/pages/playback.py").run()
    at.button(key="pb_play").click().run()
    assert not at.exception
    assert at.session_state["pb_playing"] is True
    assert at.button(key="pb_play").label == "Pause"
    at.button(key="pb_play").click().run()
    assert at.session_state["pb_playing"] is False


def test_playback_runs_the_scenario_file(tiny_dir: Path) -> None:
    at = page("playback")
    assert "Nothing to play yet" not in texts(at)
    at.selectbox(key="pb_source").set_value("scenario file, with its policy").run()
    assert not at.dataframe, "not run until asked"
    at.button(key="pb_run_file").click().run()
    assert not at.exception
    assert set(at.dataframe[0].value["service"]) == {"web", "api", "db"}


# -- the Policies page -------------------------------------------------------------------------


def test_policies_page_shows_the_bundled_evaluation_and_its_figure_selector_changes_the_chart(
    tiny_dir: Path,
) -> None:
    at = page("policies")
    names = set(at.dataframe[0].value["policy"])
    assert {"no_mitigation", "best_static", "threshold"} <= names
    title = at.get("plotly_chart")[0].proto.spec
    at.selectbox(key="po_metric").set_value("replica_seconds").run()
    assert not at.exception
    assert at.get("plotly_chart")[0].proto.spec != title
    assert "replica-seconds" in at.get("plotly_chart")[0].proto.spec


EXPORT_RULES = {
    "kind": "decision_tree",
    "max_depth": 1,
    "agreement": 0.97,
    "agreement_samples": 500,
    "nodes": [
        {"feature": 2, "feature_name": "web.utilization", "threshold": 0.7, "left": 1, "right": 2},
        {"action": [1, 0]},
        {"action": [2, 0]},
    ],
}


def test_policies_page_shows_an_exports_rules_and_offers_each_runtime_file(
    tiny_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pol"
    (folder / "export" / "istio").mkdir(parents=True)
    figure = {"mean": 1.0, "lo": 0.5, "hi": 1.5}
    metrics4 = dict.fromkeys(("slo_violation_minutes", "replica_seconds", "goodput", "p99"), figure)
    evaluation = {"topology": "tiny", "policies": {"learned": metrics4, "no_mitigation": metrics4}}
    (folder / "evaluation.json").write_text(json.dumps(evaluation), encoding="utf-8")
    policy = {
        "interval_seconds": 5.0,
        "bounds": {"max_changes_per_decision": 3},
        "model": {"agreement_with_torch": 1.0},
        "rules": EXPORT_RULES,
        "fallback": {"clients": {"*": {"timeout": 0.5}}},
    }
    (folder / "export" / "policy.json").write_text(json.dumps(policy), encoding="utf-8")
    (folder / "export" / "istio" / "web.yaml").write_text("kind: DestinationRule\n")
    at = page("policies")
    at.selectbox(key="po_pick").set_value("another folder...").run()
    at.text_input(key="po_dir").set_value(str(folder)).run()
    assert not at.exception, [e.value for e in at.exception]
    codes = [c.value for c in at.code]
    assert any("if web.utilization <= 0.7:" in c and "-> action [2, 0]" in c for c in codes)
    assert any("kind: DestinationRule" in c for c in codes)
    assert "97.0%" in texts(at)
    assert {m.label for m in at.metric} >= {"Held-out scenarios", "ONNX = torch"}


def test_policies_page_names_the_file_when_a_folder_is_not_an_evaluation(
    tiny_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "evaluation.json").write_text('{"policies": {"x": {"goodput": 1}}}')
    at = page("policies")
    at.selectbox(key="po_pick").set_value("another folder...").run()
    at.text_input(key="po_dir").set_value(str(tmp_path / "bad")).run()
    assert not at.exception
    err = at.error[0].value
    assert "evaluation.json" in err and "policies.x.slo_violation_minutes" in err


def test_policies_page_offers_the_static_policy_file_as_such(tiny_dir: Path) -> None:
    at = page("policies")
    assert "not learned" in texts(at)
    assert any("timeout: 0.2" in c.value for c in at.code)


# -- the helpers the pages use -----------------------------------------------------------------


def test_fault_targets_suit_the_fault_kind() -> None:
    topo = Topology.from_dict(yaml.safe_load(TINY))
    assert targets(topo, "error_rate") == ["db", "api", "web"]  # busiest first
    assert targets(topo, "bandwidth") == ["api->db", "web->api"] or targets(topo, "bandwidth") == [
        "web->api",
        "api->db",
    ]
    assert targets(topo, "traffic_surge") == ["web"]


def test_the_graph_layout_is_the_same_in_every_process(tiny_dir: Path) -> None:
    """Layers left to right from the entry; no set order leaks in (hash seeds differ)."""
    code = (
        "import json, sys, yaml;"
        "from explorer import graph; from twin.topology import Topology;"
        "g = Topology.from_dict(yaml.safe_load(open(sys.argv[1]))).service_graph();"
        "print(json.dumps(graph.layout(g), sort_keys=True))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, str(tiny_dir / "tiny.yaml")],
            env=child_env(PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1, outputs
    pos = json.loads(outputs.pop())
    assert pos["web"][0] < pos["api"][0] < pos["db"][0]


def test_fault_intensity_becomes_the_documents_field() -> None:
    topo = Topology.from_dict(yaml.safe_load(TINY))
    doc = fault_document(topo, FaultChoice("traffic_surge", "web", 5, 10, 2.0))
    assert doc["rate"] == pytest.approx(40.0)
    doc = fault_document(topo, FaultChoice("bandwidth", "web->api", 5, 10, 102_400))
    assert doc["bytes_per_second"] == pytest.approx(102_400)
    doc = fault_document(topo, FaultChoice("latency", "db", 5, 10, 0.25))
    assert doc["delay"] == {"dist": "constant", "mean": 0.25}
