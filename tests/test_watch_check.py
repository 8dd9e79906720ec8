"""The testbed watch check's scoring: breach from the client's records, alert matching, the
burn-rate page's start, false alarms and the bars' figures."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.watch_check import (
    MIN_REQUESTS,
    Injected,
    Scored,
    breach_time,
    burn_start,
    false_alarms,
    first_alert,
    score_injection,
    summarise,
)

ORIGIN = 1000.0


def steady(
    t0: float, t1: float, rate: float, latency: float, status: int = 200
) -> list[list[float]]:
    """Requests sent every 1/rate s over [t0, t1) (relative to ORIGIN), all alike."""
    n = round((t1 - t0) * rate)
    return [[t0 + i / rate, latency, status] for i in range(n)]


def test_breach_is_the_first_second_the_trailing_p99_breaks_the_objective() -> None:
    recs = steady(0, 100, 5, 0.1) + steady(100, 200, 5, 0.8)
    t = breach_time(recs, ORIGIN, ORIGIN, ORIGIN + 200, window_s=15, slo_p99=0.5, availability=0.99)
    # slow requests complete from 100.8 s on; one in a hundred in the trailing window makes
    # its p99 slow as soon as the window holds more than one of them
    assert t is not None and ORIGIN + 100 < t <= ORIGIN + 103


def test_no_breach_while_latency_and_failures_stay_within_the_objective() -> None:
    recs = steady(0, 200, 5, 0.3)
    assert (
        breach_time(recs, ORIGIN, ORIGIN, ORIGIN + 200, window_s=15, slo_p99=0.5, availability=0.99)
        is None
    )


def test_failed_share_above_the_budget_is_a_breach_and_unfinished_requests_count_as_failed() -> (
    None
):
    ok = steady(0, 60, 5, 0.05)
    lost = [[60.0 + i, 10.0, -1] for i in range(0, 30, 3)]  # never answered
    t = breach_time(
        ok + lost + steady(60, 90, 5, 0.05),
        ORIGIN,
        ORIGIN,
        ORIGIN + 90,
        window_s=15,
        slo_p99=20.0,
        availability=0.99,
    )
    # a request in 15 lost (6.7%): the third loss within the last 200 requests breaks 99%
    assert t is not None and ORIGIN + 66 <= t <= ORIGIN + 68


def test_one_stray_failure_does_not_break_an_objective_the_window_cannot_resolve() -> None:
    recs = steady(0, 120, 5, 0.05)
    recs[300][2] = 500  # one failure in 600 requests, 75 in the trailing 15 s
    assert (
        breach_time(recs, ORIGIN, ORIGIN, ORIGIN + 120, window_s=15, slo_p99=5.0, availability=0.99)
        is None
    )
    for i in (310, 320):  # three within 200 requests break 99%
        recs[i][2] = 500
    t = breach_time(recs, ORIGIN, ORIGIN, ORIGIN + 120, window_s=15, slo_p99=5.0, availability=0.99)
    assert t is not None and ORIGIN + 64 <= t <= ORIGIN + 66


def test_too_few_requests_in_the_window_say_nothing() -> None:
    recs = [[float(i), 2.0, 500] for i in range(MIN_REQUESTS - 1)]
    assert (
        breach_time(recs, ORIGIN, ORIGIN, ORIGIN + 60, window_s=60, slo_p99=0.5, availability=0.99)
        is None
    )


def alert(
    t: float, status: str = "firing", kind: str = "latency", rc: list[str] | None = None
) -> dict[str, Any]:
    return {"time": t, "status": status, "kind": kind, "root_cause": rc or ["pricing", "catalog"]}


def test_first_alert_is_the_earliest_firing_one_inside_the_span() -> None:
    alerts = [alert(90), alert(130, "resolved"), alert(150, kind="error_rate"), alert(120)]
    got = first_alert(alerts, 100, 200)
    assert got is not None and got["time"] == 120
    assert first_alert(alerts, 300, 400) is None


def test_burn_rate_counts_only_where_the_page_starts_firing() -> None:
    tl = [
        {"time": float(t), "burn_rate": ["page"] if 50 <= t <= 120 else []}
        for t in range(0, 300, 15)
    ]
    assert burn_start(tl, 0, 300) == 60.0
    # already firing when the span starts: not news
    assert burn_start(tl, 75, 300) is None


def test_score_injection_reads_kind_rank_and_leads() -> None:
    inj = Injected("latency", "catalog", 0.5, start=100, end=220)
    tl = [{"time": float(t), "burn_rate": ["page"] if t >= 180 else []} for t in range(0, 400, 15)]
    s = score_injection(inj, [alert(135, rc=["pricing", "catalog"])], tl, 150.0, 60)
    assert s.detected and s.kind_right and s.rank == 2
    assert s.lead_s == pytest.approx(15.0) and s.burn_lead_s == pytest.approx(-30.0)
    missed = score_injection(inj, [alert(500)], tl, None, 60)
    assert not missed.detected and missed.rank is None and missed.lead_s is None


def test_false_alarms_are_firing_alerts_outside_every_injection_and_its_grace() -> None:
    inj = [Injected("latency", "cart", 0.5, 100, 200)]
    alerts = [alert(50), alert(150), alert(250), alert(270), alert(300, "resolved")]
    assert [a["time"] for a in false_alarms(alerts, inj, 60)] == [50, 270]


def test_summary_counts_undetected_injections_as_misses_and_leads_over_breaching_only() -> None:
    def s(**kw: Any) -> Scored:
        base: dict[str, Any] = {"kind": "latency", "target": "x", "intensity": 1.0}
        return Scored(**{**base, "start": 0.0, "detected": True, **kw})

    rows = [
        s(kind_right=True, rank=1, breach=100.0, lead_s=30.0, burn_lead_s=-60.0),
        s(kind_right=True, rank=3, breach=100.0, lead_s=-15.0),
        s(kind_right=False, rank=4),
        s(detected=False),
    ]
    got = summarise(rows)
    assert got["injections"] == 4 and got["detected"] == 3
    assert (got["kind_right"], got["top1"], got["top3"]) == (2, 1, 2)
    assert got["breaching"] == 2 and got["alert_before_breach"] == 1
    assert got["median_lead_s"] == pytest.approx(7.5)
    assert got["burn_fired"] == 1 and got["burn_before_breach"] == 0
    assert got["median_lead_advantage_s"] == pytest.approx(90.0)
