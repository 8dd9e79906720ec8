"""The decisions the watch reads straight from the standardised changes
(:mod:`twin.predict.evidence`) and how the watch's recognisers use them: rank fusion keeps
what both rankings agree on, the entry service gets a place in the first three only when
errors are seen at the entry alone, and the kind is read from what moved only when it moved
plainly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

import pytest
from small_system import small_topology

from twin.predict import evidence as ev
from twin.predict.localise import Changes
from twin.predict.recognise import Candidate as EngineCandidate
from twin.predict.recognise import Recognition as EngineRecognition
from twin.predict.sources import EntrySli, Window
from twin.predict.watch import LargestChange, Recognition, Watch, WatchConfig, decide

NAN = math.nan
CALLS = (("front", "a"), ("front", "b"), ("a", "c"), ("b", "c"))


def _changes(entry: dict[str, float] | None = None, **services: dict[str, float]) -> Changes:
    base: dict[str, dict[str, float]] = {
        s: {"cpu": 0.0, "latency_p95": 0.0} for s in ("front", "a", "b", "c")
    }
    for s, m in services.items():
        base[s] = {**base[s], **m}
    return Changes(base, {}, entry or {"success": 0.0, "latency_p99": 0.0}, CALLS)


# -- rank fusion ---------------------------------------------------------------------------


def test_fusion_of_one_ranking_is_that_ranking() -> None:
    assert [s for s, _ in ev.fuse([["c", "a", "b"]])] == ["c", "a", "b"]


@pytest.mark.parametrize("other", list(permutations(["a", "b", "c", "d"])))
def test_a_service_first_in_both_rankings_is_first_fused(other: tuple[str, ...]) -> None:
    first = ["x", "a", "b", "c", "d"]
    fused = [s for s, _ in ev.fuse([first, ["x", *other]])]
    assert fused[0] == "x"
    assert sorted(fused) == sorted(first)


def test_a_service_ahead_in_both_rankings_stays_ahead_fused() -> None:
    one, two = ["a", "b", "c", "d", "e"], ["c", "a", "e", "b", "d"]
    fused = [s for s, _ in ev.fuse([one, two])]
    for x in one:
        for y in one:
            if one.index(x) < one.index(y) and two.index(x) < two.index(y):
                assert fused.index(x) < fused.index(y)


def test_fusion_names_every_service_of_either_ranking_once() -> None:
    fused = [s for s, _ in ev.fuse([["a", "b"], ["c", "a"]])]
    assert sorted(fused) == ["a", "b", "c"]


def test_fusion_reads_ranks_not_scores_so_a_second_place_in_both_beats_first_and_last() -> None:
    # b is second in both; a is first in one and last (of many) in the other
    one = ["a", "b", *[f"s{i}" for i in range(20)]]
    two = ["c", "b", *[f"s{i}" for i in range(20)], "a"]
    fused = [s for s, _ in ev.fuse([one, two])]
    assert fused[0] == "b"


# -- the entry service when errors are seen at the entry only ------------------------------


def test_entry_services_are_those_that_call_and_are_not_called() -> None:
    assert ev.entry_services(_changes()) == ["front"]


def test_errors_at_the_entry_alone_put_the_entry_third_and_keep_the_rest_in_order() -> None:
    ch = _changes({"success": -40.0, "latency_p99": 0.0})
    ranked = ["a", "b", "c", "front"]
    assert ev.place_entry(ranked, ch) == ["a", "b", "front", "c"]


def test_the_entry_already_in_the_first_three_keeps_its_place() -> None:
    ch = _changes({"success": -40.0, "latency_p99": 0.0})
    assert ev.place_entry(["a", "front", "b", "c"], ch) == ["a", "front", "b", "c"]


def test_without_errors_at_the_entry_the_ranking_is_unchanged() -> None:
    ch = _changes({"success": -1.0, "latency_p99": 30.0})
    assert ev.place_entry(["a", "b", "c", "front"], ch) == ["a", "b", "c", "front"]


def test_a_service_whose_own_success_fell_keeps_the_entry_where_it_was() -> None:
    ch = _changes({"success": -40.0, "latency_p99": 0.0}, b={"success": -30.0})
    assert ev.place_entry(["a", "b", "c", "front"], ch) == ["a", "b", "c", "front"]


# -- the kind from what moved --------------------------------------------------------------


def test_errors_at_the_entry_without_its_latency_are_an_error_fault() -> None:
    ch = _changes({"success": -40.0, "latency_p99": 1.0}, a={"cpu": 50.0})
    assert ev.evidence_kind(ch, "a") == "error_rate"


def test_errors_with_the_entry_latency_rising_are_not_decided_by_the_entry() -> None:
    ch = _changes({"success": -40.0, "latency_p99": 30.0}, a={"cpu": 3.0})
    assert ev.evidence_kind(ch, "a") is None


def test_a_clear_rise_of_the_first_candidates_cpu_is_a_cpu_fault() -> None:
    ch = _changes(a={"cpu": 12.0, "latency_p95": 40.0})
    assert ev.evidence_kind(ch, "a") == "cpu_exhaustion"


def test_latency_with_a_flat_cpu_is_a_latency_fault() -> None:
    ch = _changes(a={"cpu": 0.5, "latency_p95": 40.0})
    assert ev.evidence_kind(ch, "a") == "latency"


def test_latency_with_cpu_neither_flat_nor_clear_is_left_to_the_recogniser() -> None:
    ch = _changes(a={"cpu": 4.0, "latency_p95": 40.0})
    assert ev.evidence_kind(ch, "a") is None


def test_a_service_without_a_cpu_reading_decides_no_kind() -> None:
    ch = _changes(a={"cpu": NAN, "latency_p95": 40.0})
    assert ev.evidence_kind(ch, "a") is None


# -- the watch's answer --------------------------------------------------------------------


def _engine(kind: str, order: list[str]) -> EngineRecognition:
    p = [0.4, 0.3, 0.2, 0.1][: len(order)]
    return EngineRecognition(
        kind=kind,
        kind_probability=0.6,
        kinds={kind: 0.6, "none": 0.4},
        root_cause=[
            EngineCandidate(service=s, probability=x) for s, x in zip(order, p, strict=True)
        ],
    )


def test_the_watchs_answer_fuses_the_rankings_and_its_probabilities_sum_to_one() -> None:
    # the statistical ranking puts c first (largest change); the engine puts it second
    ch = _changes(c={"latency_p95": 90.0, "cpu": 4.0}, a={"latency_p95": 9.0, "cpu": 3.0})
    rec = decide(_engine("cpu_exhaustion", ["a", "c", "b", "front"]), ch)
    assert rec.baseline[0] == "c"
    assert set(rec.root_cause[:2]) == {"a", "c"}
    assert sum(rec.probabilities) == pytest.approx(1.0)
    assert list(rec.probabilities) == sorted(rec.probabilities, reverse=True)
    assert rec.kind == "cpu_exhaustion"  # cpu neither flat nor clear: the engine's kind


def test_the_watchs_kind_is_the_evidences_when_it_is_plain() -> None:
    ch = _changes(c={"latency_p95": 90.0, "cpu": 0.0})
    rec = decide(_engine("cpu_exhaustion", ["c", "a", "b", "front"]), ch)
    assert rec.kind == "latency"
    assert rec.fingerprint is not None and "evidence" in rec.fingerprint


def test_unfused_the_watchs_ranking_is_the_engines() -> None:
    ch = _changes(c={"latency_p95": 90.0, "cpu": 4.0})
    rec = decide(_engine("latency", ["a", "b", "c", "front"]), ch, fused=False)
    assert rec.root_cause == ("a", "b", "c", "front")


# -- the statistical recogniser reads the same evidence ------------------------------------


def _window(t: float, success: float, b_latency: float, b_cpu: float, k: int) -> Window:
    wobble = 1.0 + 0.01 * (k % 3)  # a little spread, so a change has a scale
    services = {
        "front": {"cpu": 0.3 * wobble, "latency_p95": 0.2 * wobble},
        "a": {"cpu": 0.2 * wobble, "latency_p95": 0.05 * wobble},
        "b": {"cpu": b_cpu * wobble, "latency_p95": b_latency * wobble},
        "c": {"cpu": 0.1 * wobble, "latency_p95": 0.02 * wobble},
    }
    entry = EntrySli(requests=600.0, success=success - 0.0005 * (k % 3), p50=0.1, p99=0.5)
    return Window(time=t, seconds=60.0, services=services, entry=entry)


def test_statistical_recogniser_calls_entry_errors_an_error_fault_with_the_entry_third() -> None:
    normal = [_window(60.0 * k, 1.0, 0.03, 0.1, k) for k in range(5)]
    recent = [_window(60.0 * (5 + k), 0.9, 0.09, 0.1, k) for k in range(3)]
    rec = LargestChange(CALLS).recognise(recent, normal)
    assert rec.kind == "error_rate"
    assert "front" in rec.root_cause[:3]
    assert rec.baseline[0] == rec.root_cause[0] == "b"


def test_the_statistical_recogniser_calls_a_cpu_rise_at_the_first_candidate_a_cpu_fault() -> None:
    normal = [_window(60.0 * k, 1.0, 0.03, 0.1, k) for k in range(5)]
    # latency is the largest change (the moving metric says latency), CPU rose clearly too
    recent = [_window(60.0 * (5 + k), 1.0, 0.3, 0.2, k) for k in range(3)]
    rec = LargestChange(CALLS).recognise(recent, normal)
    assert rec.root_cause[0] == "b"
    assert rec.fingerprint is not None and "latency_p95" in rec.fingerprint
    assert rec.kind == "cpu_exhaustion"


# -- an answer read from the fault is not overwritten by one read from its tail -------------


@dataclass
class _Scripted:
    """A recogniser answering from a script: (first root cause, strength) per call."""

    script: list[tuple[str, float]]

    def recognise(self, recent: Sequence[Window], normal: Sequence[Window]) -> Recognition:
        service, strength = self.script.pop(0)
        return Recognition("latency", (service,), (1.0,), strength=strength)


def _held_answers(script: list[tuple[str, float]]) -> list[str]:
    watch = Watch(small_topology(), WatchConfig(suspect_windows=3), recogniser=_Scripted(script))
    return [
        watch._recognise(_window(60.0 * k, 1.0, 0.03, 0.1, k)).root_cause[0]
        for k in range(len(script))
    ]


def test_a_weaker_answer_does_not_replace_a_stronger_one_within_the_windows_read() -> None:
    script = [("a", 10.0), ("b", 5.0), ("c", 4.0)]
    assert _held_answers(script) == ["a", "a", "a"]


def test_a_held_answer_expires_after_the_windows_it_read() -> None:
    script = [("a", 10.0), ("b", 5.0), ("c", 4.0), ("d", 1.0)]
    assert _held_answers(script)[3] == "d"


def test_an_answer_at_least_as_strong_replaces_the_held_one() -> None:
    script = [("a", 10.0), ("b", 10.0), ("c", 30.0), ("d", 2.0)]
    assert _held_answers(script) == ["a", "b", "c", "c"]


def test_strength_grows_with_what_moved() -> None:
    quiet = _changes()
    one = _changes(a={"latency_p95": 40.0})
    two = _changes(a={"latency_p95": 40.0}, b={"cpu": 20.0})
    assert ev.strength(quiet) < ev.strength(one) < ev.strength(two)


def test_a_window_where_nothing_moved_forgets_the_held_answer() -> None:
    watch = Watch(small_topology(), WatchConfig(suspect_windows=3), recogniser=_Scripted([]))
    watch._held = (0.0, Recognition("latency", ("a",), (1.0,), strength=1e9))
    # the detectors' first window has no band yet, so nothing in it moves
    watch.step(_window(60.0, 1.0, 0.03, 0.1, 0))
    assert watch._held is None
