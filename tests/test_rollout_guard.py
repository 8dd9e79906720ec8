"""The rollout guard: the P(breach) forecast against known cases, the loop on recorded
metrics (a bad canary is rolled back before its recorded breach, a good one never), the CLI,
the decision endpoint's contract with Argo Rollouts and Flagger, and the rollback plan taken
from the change's rollback signature."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import child_env

from twin.change.forecast import breach_probability, increments
from twin.change.guard import (
    DecisionRecord,
    EmitOnly,
    Guard,
    GuardSpec,
    RecordedSource,
)

ROOT = Path(__file__).resolve().parents[1]
CANARY = 'canary_latency{job="c"}'
BASE = 'canary_latency{job="b"}'
TOTAL = "sum(requests_total)"
GOOD = "sum(good_total)"


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


# -- the forecast -------------------------------------------------------------------------


def _p(recent_bad: float, recent_total: float = 1000.0, known: float = 0.0) -> float:
    return breach_probability(
        known_bad=[0.0] * 4,
        known_total=[known] * 4,
        offsets=[15.0, 30.0, 45.0, 60.0],
        recent_bad=recent_bad,
        recent_total=recent_total,
        recent_seconds=100.0,
        objective=0.99,
        min_events=100,
        rng=_rng(),
    )


def test_no_bad_requests_forecast_no_breach_and_a_bad_share_far_over_budget_a_sure_one() -> None:
    assert _p(0.0) < 0.05
    assert _p(50.0) > 0.99  # 5% bad against a 1% budget


def test_the_forecast_grows_with_the_recent_bad_share() -> None:
    ps = [_p(b) for b in (0.0, 5.0, 10.0, 15.0, 30.0)]
    assert ps == sorted(ps)


def test_a_bad_share_at_the_budget_breaches_about_half_the_time() -> None:
    # p = 1% exactly (a huge, certain recent window), 600 new requests: the bad count is
    # Poisson(6) around its budget of 6, so the ratio crosses 1% at some instant in a bit
    # more than half of the draws
    p = breach_probability(
        known_bad=[0.0],
        known_total=[0.0],
        offsets=[60.0],
        recent_bad=1e6,
        recent_total=1e8,
        recent_seconds=1e7,
        objective=0.99,
        min_events=100,
        rng=_rng(),
        draws=20000,
    )
    assert 0.3 < p < 0.6


def test_observed_good_requests_in_the_window_dilute_the_forecast() -> None:
    assert _p(15.0, known=50_000.0) < _p(15.0, known=0.0)


def test_counter_increments_treat_a_drop_as_a_reset() -> None:
    assert increments([0, 5, 9, 2, 4]).tolist() == [5, 4, 2, 2]


# -- the loop on recorded metrics ---------------------------------------------------------


def _recording(
    bad_share_after: float, *, start: float = 1000.0, rate: float = 20.0
) -> dict[str, Any]:
    """A canary starting at ``start`` after 300 s of clean traffic; from ``start + 10`` the
    entry's bad share is ``bad_share_after``; the canary's latency is 3x the baseline's when
    the share is bad."""
    g = np.random.default_rng(1)
    ts = np.arange(start - 300.0, start + 200.0, 2.0)
    total = good = 0.0
    series: dict[str, list[list[float]]] = {TOTAL: [], GOOD: [], CANARY: [], BASE: []}
    for t in ts:
        n = float(g.poisson(rate * 2))
        share = bad_share_after if t >= start + 10 else 0.0
        b = float(g.binomial(int(n), share))
        total += n
        good += n - b
        series[TOTAL].append([t, total])
        series[GOOD].append([t, good])
        base = 0.05 * g.lognormal(0, 0.2)
        series[BASE].append([t, base])
        factor = 3.0 if bad_share_after > 0 and t >= start else 1.0
        series[CANARY].append([t, 0.05 * factor * g.lognormal(0, 0.2)])
    return {"started_at": start, "series": series}


def _spec(**kw: Any) -> GuardSpec:
    return GuardSpec.model_validate(
        {
            "service": "cart",
            "interval_seconds": 2.0,
            "step_seconds": 2.0,
            "lookback_seconds": 30.0,
            "warmup_seconds": 10.0,
            "recent_seconds": 60.0,
            "horizon_seconds": 60.0,
            "max_seconds": 180.0,
            "metrics": [{"name": "latency", "canary": CANARY, "baseline": BASE}],
            "slo": {"total": TOTAL, "good": GOOD, "objective": 0.99, "window_seconds": 300},
            "rollback": {
                "commands": [["kubectl", "argo", "rollouts", "abort", "cart"]],
                "checks": [
                    {"name": "good", "query": GOOD, "op": ">", "threshold": 0, "window_seconds": 10}
                ],
            },
            **kw,
        }
    )


def _first_breach(rec: dict[str, Any], window: float = 300.0) -> float:
    tot = np.array(rec["series"][TOTAL])
    good = np.array(rec["series"][GOOD])
    for i in range(len(tot)):
        j = np.searchsorted(tot[:, 0], tot[i, 0] - window)
        n = tot[i, 1] - tot[j, 1]
        b = n - (good[i, 1] - good[j, 1])
        if n >= 100 and b / n > 0.01:
            return float(tot[i, 0]) - float(rec["started_at"])
    return float("inf")


def test_a_bad_canary_is_rolled_back_before_its_recorded_breach() -> None:
    rec = _recording(0.05)
    breach = _first_breach(rec)
    assert breach < 120  # the recording does breach
    g = Guard(_spec(), RecordedSource(rec))
    s = g.run(EmitOnly())
    assert s["rolled_back"] and s["seconds_to_decision"] < breach
    assert s["execution"]["acted"] is False and s["execution"]["steps"][0]["emitted"]
    assert s["checks"][0]["name"] == "good" and s["checks"][0]["passed"]


def test_a_good_canary_is_never_rolled_back_and_judged_go() -> None:
    g = Guard(_spec(), RecordedSource(_recording(0.0)))
    s = g.run(EmitOnly())
    assert not s["rolled_back"] and s["max_p_breach"] < 0.1
    assert s["final_decision"] == "go" and s["final_classification"] == "pass"


def test_a_slower_canary_that_does_not_threaten_the_slo_is_no_go_not_rolled_back() -> None:
    rec = _recording(0.0)
    rec["series"][CANARY] = [[t, v * 3] for t, v in rec["series"][CANARY]]
    s = Guard(_spec(), RecordedSource(rec)).run(EmitOnly())
    assert not s["rolled_back"] and s["final_decision"] == "no-go"


def test_the_cli_replays_a_recording_writes_its_outputs_and_exits_3_on_rollback(
    tmp_path: Path,
) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(_recording(0.05)))
    (tmp_path / "guard.json").write_text(_spec().model_dump_json())
    (tmp_path / "change.yaml").write_text(
        "name: cart-v2\nchanges:\n  - {id: v2, kind: version, service: cart, latency_factor: 3}\n"
    )
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "twin.cli", "rollout", str(tmp_path / "change.yaml"),
         "--metrics", str(tmp_path / "metrics.json"), "--guard", str(tmp_path / "guard.json"),
         "--out", str(out)],
        check=False, capture_output=True, text=True, env=child_env(), timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 3, p.stderr
    lines = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]
    assert lines[-1]["decision"] == "rollback"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["name"] == "cart-v2" and summary["rolled_back"]
    assert "rolled back" in (out / "report.md").read_text()


def test_the_cli_refuses_both_or_neither_source_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "change.yaml").write_text(
        "name: x\nchanges:\n"
        "  - {id: a, target: topology, patch: {services: {cart: {replicas: 2}}}}\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "twin.cli", "rollout", str(tmp_path / "change.yaml"),
         "--out", str(tmp_path / "o")],
        check=False, capture_output=True, text=True, env=child_env(), timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 2 and "exactly one of" in p.stderr
    assert "Traceback" not in p.stderr


# -- the endpoint -------------------------------------------------------------------------


class _Fake:
    latest: DecisionRecord | None = None


def _rec(decision: str) -> DecisionRecord:
    return DecisionRecord(
        t=0.0, elapsed_seconds=4.0, decision=decision, reason="r", p_breach=0.9,
        window_bad_ratio=0.0, recent_bad_ratio=0.0, budget=0.01, score=50.0,
        classification="fail",
    )  # fmt: skip


def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=b"{}" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_endpoint_speaks_argo_web_metrics_and_both_flagger_webhooks() -> None:
    from twin.change.endpoint import serve_decisions

    fake = _Fake()
    server = serve_decisions(fake, 0)
    port = server.server_address[1]
    try:
        status, body = _get(port, "/decision")
        assert status == 200 and body["decision"] == "hold"  # before the first interval
        expect = {"go": (200, 409), "hold": (200, 409), "no-go": (503, 409), "rollback": (503, 200)}
        for decision, (gate, rollback) in expect.items():
            fake.latest = _rec(decision)
            status, body = _get(port, "/decision")
            assert status == 200 and body["decision"] == decision and body["p_breach"] == 0.9
            assert _get(port, "/flagger/gate", "POST")[0] == gate
            assert _get(port, "/flagger/rollback", "POST")[0] == rollback
        assert _get(port, "/nowhere")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_the_endpoint_refuses_to_listen_beyond_loopback() -> None:
    from twin.change.endpoint import serve_decisions

    with pytest.raises(ValueError):
        serve_decisions(_Fake(), 0, host="0.0.0.0")


# -- the rollback plan from the signature -------------------------------------------------


def test_the_plan_takes_the_signatures_commands_in_order_and_its_checks() -> None:
    from twin.bundled import bundled_topology_path
    from twin.change.document import ChangeSet, reduce_changes
    from twin.change.rollback import build_rollback
    from twin.change.rollout import duration_seconds, plan_from_signature
    from twin.io import load_model
    from twin.topology import Topology

    topo = load_model(Topology, bundled_topology_path("online-boutique"))
    cs = ChangeSet.model_validate(
        {
            "name": "cart",
            "changes": [
                {"id": "a", "target": "topology",
                 "patch": {"services": {"cartservice": {"replicas": 3}}}},
                {"id": "b", "kind": "version", "service": "cartservice", "latency_factor": 2,
                 "depends_on": ["a"]},
            ],
        }
    )  # fmt: skip
    sig = build_rollback(cs, reduce_changes(cs, topo))
    plan = plan_from_signature(sig)
    flat = [" ".join(c) for c in plan.commands]
    assert flat and all(isinstance(c, list) for c in plan.commands)
    assert any("replicas" in c for c in flat)
    assert len(plan.checks) == len(sig.verification)
    assert plan.checks[0].window_seconds == duration_seconds(sig.verification[0].window)
    assert duration_seconds("5m") == 300.0 and duration_seconds("250ms") == 0.25


def test_a_rollout_is_recorded_with_its_time_to_rollback(tmp_path: Path) -> None:
    from twin.change.history import history
    from twin.change.rollout import record
    from twin.store import Store

    s = Guard(_spec(), RecordedSource(_recording(0.05))).run(EmitOnly())
    url = f"sqlite:///{tmp_path / 'twin.db'}"
    record(url, {"name": "cart-v2", **s}, observed_breach=False)
    with Store(url) as store:
        entries = history(store)
    rollouts = [r for e in entries for r in e.rollouts]
    assert len(rollouts) == 1 and rollouts[0]["rolled_back"]
    assert rollouts[0]["time_to_rollback"] == pytest.approx(s["seconds_to_rollback"])


def test_a_recording_holds_the_point_prometheus_stamped_half_a_millisecond_late() -> None:
    src = RecordedSource({"started_at": 0.0, "series": {"q": [[9.9996, 1.0], [10.0004, 2.0]]}})
    assert [v for _, v in src.series("q", 9.0, 10.0, 1.0)] == [1.0, 2.0]


@pytest.mark.parametrize("run", ["bad-1", "good-1"])
def test_a_recorded_testbed_rollout_replays_decision_for_decision(run: str) -> None:
    here = ROOT / "experiments" / "rollout" / "recorded" / run
    spec = GuardSpec.model_validate_json((here / "guard.json").read_text())
    src = RecordedSource.load(here / "metrics.json")
    live = [json.loads(x) for x in (here / "decisions.jsonl").read_text().splitlines()]
    seen: list[DecisionRecord] = []
    g = Guard(spec, src, started_at=src.started_at)
    g.run(EmitOnly(), on_decision=seen.append, until=src.started_at + live[-1]["elapsed_seconds"])
    assert [(d.decision, d.p_breach) for d in seen] == [
        (x["decision"], x["p_breach"]) for x in live
    ]
