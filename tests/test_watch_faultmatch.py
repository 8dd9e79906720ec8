"""Scoring a watch's alerts against labelled faults (:mod:`twin.predict.faultmatch`): the
matching span, the final answer against the first, misses counted in every denominator,
and false alarms counted per group that starts firing after the last fault."""

from __future__ import annotations

from twin.predict.alerts import Alert, Evidence, Mitigation
from twin.predict.faultmatch import Answer, WatchScore, score, table
from twin.predict.windows import LabelledFault

W = 60.0
KINDS = {"cpu": "cpu_exhaustion", "delay": "latency"}


def _alert(t: float, root: list[str], kind: str = "latency", starts: float | None = None) -> Alert:
    return Alert(
        time=t,
        status="firing",
        kind=kind,
        root_cause=root,
        probability=0.5,
        time_to_breach_s=None,
        horizon_s=1800.0,
        mitigation=Mitigation(source="none", description="-"),
        evidence=Evidence(reason="anomaly", baseline_root_cause=list(reversed(root))),
        group_key="{}:{}",
        fingerprint="0" * 16,
        starts_at=t if starts is None else starts,
        summary="-",
    )


FAULTS = [
    LabelledFault(1000.0, "cart", "cpu"),
    LabelledFault(2000.0, "email", "delay"),
    LabelledFault(3000.0, "pay", "delay"),
]


def _score(
    alerts: list[Alert], answer: Answer = "final", end: float = 3000.0 + 7200.0
) -> WatchScore:
    return score(
        alerts,
        FAULTS,
        kind_of=KINDS.get,
        fault_s=180.0,
        window_s=W,
        last_window=end,
        answer=answer,
    )


def test_the_final_answer_is_the_last_message_in_the_span_and_the_first_is_kept_apart() -> None:
    alerts = [
        _alert(1060.0, ["checkout", "cart", "x"], kind="latency"),
        _alert(1180.0, ["cart", "checkout", "x"], kind="cpu_exhaustion", starts=1060.0),
    ]
    final = _score(alerts).faults[0]
    first = _score(alerts, "first").faults[0]
    assert final.as1 and final.kind_right and final.messages == 2
    assert not first.as1 and first.as3 and not first.kind_right
    assert final.first_alert_s == 60.0


def test_a_fault_without_an_alert_is_a_miss_in_every_denominator() -> None:
    s = _score([_alert(1060.0, ["cart"], kind="cpu_exhaustion")])
    sm = s.summary()
    assert (sm["faults"], sm["alerted"], sm["AS@1"], sm["AS@3"], sm["kind_right"]) == (
        3,
        1,
        1,
        1,
        1,
    )
    assert sm["AS@1_share"] == 1 / 3 and sm["kind_share"] == 1 / 3
    assert "**no**" in table(s)


def test_the_span_is_one_window_before_the_start_to_two_after_the_end() -> None:
    inside = [_alert(2000.0 - W, ["email"]), _alert(3000.0 + 180.0 + 2 * W, ["pay"])]
    outside = [_alert(2000.0 - 2 * W, ["email"]), _alert(3000.0 + 180.0 + 3 * W, ["pay"])]
    assert [f.alerted for f in _score(inside).faults] == [False, True, True]
    assert [f.alerted for f in _score(outside).faults] == [False, False, False]


def test_the_baseline_is_read_from_the_same_message() -> None:
    r = _score([_alert(2060.0, ["email", "checkout"])]).faults[1]
    assert r.baseline == ("checkout", "email") and not r.base_as1 and r.base_as3


def test_false_alarms_are_groups_starting_after_the_last_fault_per_quiet_hour() -> None:
    quiet_start = 3000.0 + 180.0 + 300.0
    alerts = [
        _alert(quiet_start + 600.0, ["x"]),
        _alert(quiet_start + 660.0, ["x", "y"], starts=quiet_start + 600.0),  # an update
        _alert(quiet_start + 3000.0, ["y"]),
        _alert(quiet_start - 60.0, ["z"]),  # recovery allowance: not counted
    ]
    s = _score(alerts, end=quiet_start + 7200.0)
    assert s.false_alarms == 2
    assert s.quiet_hours == 2.0 and s.false_alarms_per_hour == 1.0
