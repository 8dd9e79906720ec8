"""The classifier trained on the twin's failures inside ``twin watch``: a watch replaying a
simulated fault names its kind and target from the classifier; a recogniser kept in a folder
is the same recogniser when loaded; without one, or with one trained on windows of another
length, the statistical ranking answers, and says so.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from small_system import SPEC, WINDOW, small_topology

from twin.predict import recognise as rc
from twin.predict.alerts import Alert
from twin.predict.fingerprints import fault_documents, simulate_window
from twin.predict.outputs import WatchRun, make_recogniser
from twin.predict.sources import Recorded, SourceReport, Window
from twin.predict.watch import Classifier, LargestChange, Recogniser, Watch, WatchConfig
from twin.predict.windows import Telemetry, to_windows
from twin.topology import Topology

BEFORE = 30  # windows of normal operation the watch learns from before the fault


@pytest.fixture(scope="module")
def topo() -> Topology:
    return small_topology()


@pytest.fixture(scope="module")
def live(topo: Topology) -> Telemetry:
    """Production's stand-in: a long fault-free stretch of the same system."""
    return simulate_window(topo, SPEC, [], 1.0, 99, SPEC.warmup_s + 20 * WINDOW)


@pytest.fixture(scope="module")
def trained(
    topo: Topology, live: Telemetry, tmp_path_factory: pytest.TempPathFactory
) -> rc.Trained:
    quiet = np.ones(len(live.times), dtype=bool)
    return rc.train(topo, live, quiet, SPEC, 7, tmp_path_factory.mktemp("rec"))


def _replayed_fault(topo: Topology, kind: str, target: str, x: float) -> tuple[list[Window], float]:
    """The twin's telemetry of ``kind`` at ``target`` after BEFORE quiet windows, as the
    watch's windows, and the fault's start."""
    start = SPEC.warmup_s + BEFORE * WINDOW + 7.0
    docs = fault_documents(topo, kind, target, x, start, 4 * WINDOW)
    tel = simulate_window(topo, SPEC, docs, 1.0, 4242, start + 8 * WINDOW)
    return to_windows(tel), start


def _first_alert(
    topo: Topology, recogniser: Recogniser, windows: list[Window], start: float
) -> Alert:
    config = WatchConfig(
        horizon_s=120.0,
        replications=1,
        step_s=WINDOW,
        slo_latency_p99=10.0,
        slo_availability=0.99,
    )
    watch = Watch(topo, config, recogniser=recogniser)
    alerts = watch.run(windows)
    firing = [a for a in alerts if a.status == "firing" and a.time > start]
    assert firing, "the watch raised no alert on the fault"
    return firing[0]


@pytest.mark.parametrize(
    ("kind", "target", "x"), [("cpu_exhaustion", "a", 5.0), ("latency", "c", 0.3)]
)
def test_a_watch_with_the_classifier_names_the_simulated_faults_kind_and_target(
    topo: Topology, trained: rc.Trained, kind: str, target: str, x: float
) -> None:
    windows, start = _replayed_fault(topo, kind, target, x)
    calls = tuple(topo.service_graph().edges)
    alert = _first_alert(topo, Classifier(trained, calls), windows, start)
    assert alert.kind == kind
    assert alert.root_cause[0] == target
    assert alert.root_cause_probability[0] == max(alert.root_cause_probability)
    assert alert.evidence.fingerprint is not None
    assert alert.evidence.fingerprint.name.startswith("classifier:")


def test_a_watch_with_the_classifier_names_an_error_faults_kind(
    topo: Topology, trained: rc.Trained
) -> None:
    """An error fault's kind, not its place: with one window of it, the classifier's scores
    of the failing service and of its caller are within a few hundredths of each other."""
    windows, start = _replayed_fault(topo, "error_rate", "b", 0.5)
    calls = tuple(topo.service_graph().edges)
    alert = _first_alert(topo, Classifier(trained, calls), windows, start)
    assert alert.kind == "error_rate"
    assert "b" in alert.root_cause[:3]


def test_a_kept_recogniser_loads_as_the_same_recogniser(
    topo: Topology, trained: rc.Trained
) -> None:
    again = rc.load(trained.folder)
    assert again is not None and again.drop == trained.drop and again.cases == trained.cases
    windows, start = _replayed_fault(topo, "latency", "c", 0.3)
    calls = tuple(topo.service_graph().edges)
    a = _first_alert(topo, Classifier(trained, calls), windows, start)
    b = _first_alert(topo, Classifier(again, calls), windows, start)
    assert (a.kind, a.root_cause, a.root_cause_probability) == (
        b.kind,
        b.root_cause,
        b.root_cause_probability,
    )


def test_without_a_kept_recogniser_the_statistical_ranking_answers_and_says_so(
    topo: Topology, tmp_path: Path
) -> None:
    source = Recorded([], SourceReport())
    for choice in (None, str(tmp_path)):
        run = WatchRun(topology=topo, out=tmp_path / "out", recogniser=choice)
        recogniser, note = make_recogniser(run, source)
        assert isinstance(recogniser, LargestChange)
        assert "statistical ranking" in note


def test_a_recogniser_kept_for_other_window_lengths_is_not_used_and_the_note_says_why(
    topo: Topology, trained: rc.Trained, tmp_path: Path
) -> None:
    windows, _ = _replayed_fault(topo, "latency", "c", 0.3)
    run = WatchRun(topology=topo, out=tmp_path / "out", recogniser=str(trained.folder))
    same, _ = make_recogniser(run, Recorded(windows, SourceReport()))
    assert isinstance(same, Classifier)
    shorter = [replace(w, seconds=WINDOW / 3) for w in windows]
    other, note = make_recogniser(run, Recorded(shorter, SourceReport()))
    assert isinstance(other, LargestChange)
    assert f"trained on {WINDOW:g} s windows, these are {WINDOW / 3:g} s" in note
