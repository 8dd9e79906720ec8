"""The runtime enforcer: the observation equals the environment's, the ONNX decision equals
the trained model's, and every safety rule holds (bounds, change rate limit, override,
hold on missing or bad metrics), through the library and through `twin enforce`."""

from __future__ import annotations

import http.server
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the enforcer needs onnxruntime (the `rl` extra)")
pytest.importorskip("stable_baselines3", reason="the reference model needs the `rl` extra")

from typer.testing import CliRunner

from agents import spaces as sp
from agents.env import MitigationEnv
from agents.export.policy_file import PolicyFile, sha256_file
from agents.runtime import (
    Enforcer,
    FileMetrics,
    MetricsUnavailable,
    Snapshot,
    Webhook,
    describe,
    observation,
    onnx_decider,
    parse_snapshot,
    rules_decider,
    run,
)
from agents.spaces import ServiceReading
from twin.cli import app
from twin.mitigations import CircuitState
from twin.results import Stretch

ROOT = Path(__file__).resolve().parents[1]
OB = ROOT / "agents" / "policies" / "online-boutique"
NETWORK = OB / "export" / "policy.onnx"
SERVICES = tuple(
    sorted(
        [
            "adservice",
            "cartservice",
            "checkoutservice",
            "currencyservice",
            "emailservice",
            "frontend",
            "paymentservice",
            "productcatalogservice",
            "recommendationservice",
            "redis-cart",
            "shippingservice",
        ]
    )
)


def policy_doc(onnx: Path, **bounds: Any) -> dict[str, Any]:
    """A policy file for the bundled Online Boutique network (built from the contract, so
    these tests do not depend on the exporter)."""
    b = {
        "replicas": {s: {"min": 1, "max": 3} for s in SERVICES},
        "timeout_seconds_min": 0.25,
        "timeout_seconds_max": 1.0,
        "max_retries": 1,
        "rate_limit_x_min": 1.2,
        "max_changes_per_decision": 3,
        "min_seconds_between_changes": 0.0,
    } | bounds
    return {
        "name": "online-boutique",
        "interval_seconds": 5.0,
        "observation": {
            "services": list(SERVICES),
            "slo_p99_seconds": 0.5,
            "slo_availability": 0.99,
            "max_replicas": sp.MAX_REPLICAS,
        },
        "action": {
            "replica_deltas": list(sp.REPLICA_DELTAS),
            "queue_limits": list(sp.QUEUE_LIMITS),
            "timeouts_seconds": list(sp.TIMEOUTS),
            "retries": list(sp.RETRIES),
            "retry_budget": 0.2,
            "circuit_breaker": list(sp.BREAKER),
            "rate_limits_x": list(sp.RATE_LIMITS),
            "entry_rates_rps": {"frontend": 60.0},
        },
        "bounds": b,
        "model": {
            "onnx": onnx.name,
            "sha256": sha256_file(onnx),
            "agreement_with_torch": 1.0,
            "agreement_samples": 1000,
        },
        "rules": {
            "max_depth": 1,
            "agreement": 0.9,
            "agreement_samples": 100,
            "nodes": [
                {"feature": 2, "threshold": 0.7, "left": 1, "right": 2},
                {"action": [1, 0] * len(SERVICES) + [0, 0, 0, 0]},
                {"action": [2, 1] * len(SERVICES) + [1, 1, 1, 0]},
            ],
        },
        "fallback": {"clients": {"*": {"timeout": 0.5}}},
        "provenance": {
            "created": "2026-11-23T00:00:00Z",
            "shadow_twin_version": "test",
            "topology_name": "online-boutique",
            "topology_sha256": "0" * 64,
            "training": {},
            "evaluation": {},
        },
    }


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    onnx = tmp_path / "policy.onnx"
    onnx.write_bytes(NETWORK.read_bytes())
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy_doc(onnx)))
    return path


def reading(u: float = 0.3, p99: float = 0.1, err: float = 0.0, reps: int = 1) -> ServiceReading:
    return ServiceReading(p99_seconds=p99, error_rate=err, utilization=u, replicas=reps)


def snapshot(t: float, **per: ServiceReading) -> Snapshot:
    return Snapshot(t, {s: per.get(s.replace("-", "_"), reading()) for s in SERVICES})


class Fixed:
    """A metric source replaying given snapshots (or raising for None)."""

    def __init__(self, *snaps: Snapshot | None) -> None:
        self.snaps = list(snaps)

    def read(self, now: float) -> Snapshot:
        s = self.snaps.pop(0)
        if s is None:
            raise MetricsUnavailable("scrape failed")
        return s


def constant(action: list[int]) -> Any:
    return lambda obs: np.asarray(action, dtype=np.int64)


GROW_ALL = [2, 0] * len(SERVICES) + [2, 2, 1, 2]  # +1 replica everywhere, tightest knobs


# -- the observation and the decision --------------------------------------------------------


def test_observation_equals_the_environments_for_the_same_figures(policy_path: Path) -> None:
    """Same figures and the same breaker states (the twin's integer codes on one side, the
    metrics file's state names on the other) give the same vector."""
    pf = PolicyFile.load(policy_path)
    env = MitigationEnv()
    env.reset(seed=0)
    rng = np.random.default_rng(3)
    # breakers into cartservice: one open, one half-open (worst: open); into currencyservice:
    # one half-open, one closed (worst: half-open); into adservice: closed
    states = {
        "frontend->cartservice": CircuitState.HALF_OPEN,
        "checkoutservice->cartservice": CircuitState.OPEN,
        "frontend->currencyservice": CircuitState.CLOSED,
        "checkoutservice->currencyservice": CircuitState.HALF_OPEN,
        "frontend->adservice": CircuitState.CLOSED,
    }
    assert set(states) <= {e for callers in env._callers.values() for e in callers}
    worst = {"cartservice": "open", "currencyservice": "half_open", "adservice": "closed"}
    stretch: dict[str, Any] = {"services": {}, "breakers": {k: int(v) for k, v in states.items()}}
    record: dict[str, Any] = {"time": 0.0, "services": {}}
    for s in SERVICES:
        p99, err, u, q = rng.uniform(0, 2), rng.uniform(0, 1), rng.uniform(0, 1.5), rng.integers(30)
        ok = 1000
        failed = round(err * ok / (1 - err)) if err < 1 else ok
        stretch["services"][s] = {
            "arrivals": ok + failed,
            "latency": {"p99": p99},
            "succeeded": ok,
            "failed": failed,
            "utilization": u,
            "queue": int(q),
            "replicas": 1,
        }
        record["services"][s] = {
            "p99_seconds": p99,
            "error_rate": failed / (ok + failed),
            "utilization": u,
            "replicas": env.replicas[s],
            "queue": float(q),
        } | ({"breaker": worst[s]} if s in worst else {})
    ours = observation(parse_snapshot(record, "test"), pf)
    theirs = env._observe(
        Stretch.model_validate({"time": 0.0, "seconds": 1.0, "entries": {}} | stretch)
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    column = {
        s: float(theirs[i * sp.FEATURES + sp.Feature.BREAKER]) for i, s in enumerate(SERVICES)
    }
    assert column["cartservice"] == 1.0 and column["currencyservice"] == 0.5
    assert column["adservice"] == 0.0 and column["frontend"] == 0.0


def test_onnx_decision_equals_the_trained_models_deterministic_action(policy_path: Path) -> None:
    from stable_baselines3 import PPO

    pf = PolicyFile.load(policy_path)
    decide = onnx_decider(pf, policy_path)
    model = PPO.load(str(OB / "model.zip"), device="cpu")
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs = rng.uniform(0, 1, size=len(SERVICES) * 6).astype(np.float32)
        ref, _ = model.predict(obs, deterministic=True)
        assert np.array_equal(decide(obs), ref)


def test_a_swapped_network_is_refused_by_its_digest(policy_path: Path) -> None:
    (policy_path.parent / "policy.onnx").write_bytes(b"not the exported network")
    pf = PolicyFile.load(policy_path)
    with pytest.raises(Exception, match="digest"):
        onnx_decider(pf, policy_path)


def test_distilled_rules_walk_the_tree(policy_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    decide = rules_decider(pf)
    obs = np.zeros(len(SERVICES) * 6, dtype=np.float32)
    assert decide(obs)[-4:].tolist() == [0, 0, 0, 0]
    obs[2] = 0.9
    assert decide(obs)[-4:].tolist() == [1, 1, 1, 0]


# -- the safety net ---------------------------------------------------------------------------


def test_decisions_are_clamped_to_the_policys_bounds(policy_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    busy = reading(u=0.95, reps=3)
    e = Enforcer(pf, Fixed(snapshot(0.0, frontend=busy)), constant(GROW_ALL))
    e.pf = PolicyFile.model_validate(
        policy_doc(policy_path.parent / "policy.onnx", max_changes_per_decision=100)
    )
    rec = e.step(0.0)
    k = rec["knobs"]
    assert k["replicas.frontend"] == 3  # asked 4, max 3
    assert k["timeout_seconds"] == 0.25  # tightest level is within [0.25, 1]
    assert k["retries"] == 1  # asked 2, max 1
    assert k["rate_limit_x"] == 1.2  # asked 1.0x, floor 1.2x
    assert any("replicas.frontend 4 -> 3" in n for n in rec["notes"])


def test_at_most_the_allowed_number_of_knobs_change_per_decision(policy_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    e = Enforcer(pf, Fixed(snapshot(0.0), snapshot(5.0)), constant(GROW_ALL))
    rec = e.step(0.0)
    assert len(rec["changes"]) == 3
    assert all(c.startswith("replicas.") for c in rec["changes"])  # capacity first
    assert len(rec["deferred"]) > 0
    second = e.step(5.0)
    assert len(second["changes"]) == 3 and not set(second["changes"]) & set(rec["changes"])


def test_no_change_within_the_minimum_time_between_changes(policy_path: Path) -> None:
    pf = PolicyFile.model_validate(
        policy_doc(policy_path.parent / "policy.onnx", min_seconds_between_changes=60.0)
    )
    neutral = [1, 0] * len(SERVICES) + [0, 0, 0, 0]
    actions = iter([GROW_ALL, neutral])
    e = Enforcer(pf, Fixed(snapshot(0.0), snapshot(5.0)), lambda obs: np.array(next(actions)))
    first = e.step(0.0)
    assert first["changes"]
    second = e.step(5.0)  # the model wants to undo everything, 5 s later
    assert second["changes"] == {} and second["deferred"]
    assert second["knobs"] == first["knobs"]


def test_the_override_file_wins_and_a_malformed_one_holds(
    policy_path: Path, tmp_path: Path
) -> None:
    pf = PolicyFile.load(policy_path)
    ov = tmp_path / "override.yaml"
    ov.write_text("timeout_seconds: 2.0\nreplicas: {cartservice: 5}\n")
    e = Enforcer(pf, Fixed(snapshot(0.0), snapshot(5.0), snapshot(10.0)), constant(GROW_ALL), ov)
    rec = e.step(0.0)
    assert rec["source"] == "override"
    assert rec["knobs"]["timeout_seconds"] == 2.0  # outside bounds: the operator wins
    assert rec["knobs"]["replicas.cartservice"] == 5
    assert rec["config"]["policy"]["clients"]["*"]["timeout"] == 2.0
    ov.write_text("timeout_seconds: fast\n")
    held = e.step(5.0)
    assert held["held"] and "override.yaml" in held["reason"]
    assert held["knobs"] == rec["knobs"]
    ov.unlink()
    back = e.step(10.0)
    assert not back["held"] and any("resumed" in n for n in back["notes"])


def test_missing_or_bad_metrics_hold_the_last_safe_configuration(policy_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    gone = Snapshot(5.0, {s: reading() for s in SERVICES if s != "cartservice"})
    e = Enforcer(pf, Fixed(None, snapshot(0.0), gone, snapshot(10.0)), constant(GROW_ALL))
    first = e.step(0.0)  # no metrics yet: the policy's fallback
    assert first["held"] and first["config"]["policy"]["clients"] == {"*": {"timeout": 0.5}}
    ok = e.step(1.0)
    held = e.step(5.0)
    assert held["held"] and "cartservice" in held["reason"]
    assert held["config"] == ok["config"]
    assert not e.step(10.0)["held"]


def test_metrics_file_lines_that_are_truncated_nan_or_stale_are_held(tmp_path: Path) -> None:
    good = {
        "time": 1.0,
        "services": {"a": {"p99_seconds": 0.1, "error_rate": 0, "utilization": 0.5, "replicas": 2}},
    }
    nan = json.loads(json.dumps(good)) | {"time": 2.0}
    nan["services"]["a"]["utilization"] = float("nan")
    path = tmp_path / "m.jsonl"
    path.write_text(
        "\n".join([json.dumps(good), json.dumps(good), json.dumps(nan), '{"time": 3.0, "serv'])
    )
    src = FileMetrics(path)
    assert src.read(0).services["a"].replicas == 2
    with pytest.raises(MetricsUnavailable, match="stale"):
        src.read(0)
    with pytest.raises(MetricsUnavailable, match="utilization"):
        src.read(0)
    with pytest.raises(MetricsUnavailable, match=r"m.jsonl:4: not JSON"):
        src.read(0)


# -- emitting ---------------------------------------------------------------------------------


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/decisions", got
    srv.shutdown()


def test_the_webhook_receives_each_decision_and_a_dead_one_keeps_them_pending(
    policy_path: Path, hook_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = hook_server
    pf = PolicyFile.load(policy_path)
    e = Enforcer(pf, Fixed(snapshot(0.0), snapshot(5.0)), constant(GROW_ALL))
    n = run(e, Webhook(url), interval=5.0, max_decisions=2, sleep=lambda _: None)
    assert n == 2 and [r["decision"] for r in got] == [1, 2]
    dead = Webhook("http://127.0.0.1:9/nothing", timeout=0.5, attempts=1)
    problem = dead({"decision": 3})
    assert problem is not None and "1 decision(s) pending" in problem


def test_twin_enforce_replays_a_metrics_file_as_json_lines(
    policy_path: Path, tmp_path: Path
) -> None:
    lines = []
    for t in range(3):
        svc = {
            s: {"p99_seconds": 0.1, "error_rate": 0.0, "utilization": 0.4, "replicas": 1}
            for s in SERVICES
        }
        lines.append(json.dumps({"time": 100.0 + 5 * t, "services": svc}))
    lines[1] = lines[1][:40]  # a truncated line in the middle
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(lines) + "\n")
    log = tmp_path / "decisions.jsonl"
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    res = CliRunner().invoke(
        app,
        [
            "enforce",
            str(policy_path),
            "--metrics",
            str(metrics),
            "--emit",
            "json",
            "--interval",
            "0.01",
            "--log",
            str(log),
        ],
    )
    assert res.exit_code == 0, res.output
    # the loop's stop handlers are gone once it returns: forked workers must not inherit them
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    recs = [json.loads(x) for x in res.output.splitlines()]
    assert [r["held"] for r in recs] == [False, True, False]
    assert "not JSON" in recs[1]["reason"]
    assert len(log.read_text().splitlines()) == 3
    assert "enforce #1 [model]" in describe(recs[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--emit", "carrier-pigeon", "--metrics", "m"], "--emit 'carrier-pigeon'"),
        ([], "exactly one of --prometheus URL or --metrics FILE"),
        (["--metrics", "nope.jsonl"], "nope.jsonl: no such metrics file"),
        (["--metrics", "m", "--emit", "webhook"], "--emit webhook needs --url"),
    ],
)
def test_bad_enforce_arguments_exit_2_with_one_line(
    policy_path: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").write_text("")
    res = CliRunner().invoke(app, ["enforce", str(policy_path), *args])
    assert res.exit_code == 2
    assert message in res.output and len(res.output.strip().splitlines()) == 1


def test_a_malformed_policy_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    doc = policy_doc(NETWORK)
    doc["bounds"]["max_retries"] = -1
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    (tmp_path / "m").write_text("")
    res = CliRunner().invoke(app, ["enforce", str(path), "--metrics", str(tmp_path / "m")])
    assert res.exit_code == 2
    assert "policy.json" in res.output and "bounds.max_retries" in res.output


# -- a real Prometheus ------------------------------------------------------------------------


class Exporter(http.server.BaseHTTPRequestHandler):
    """OpenTelemetry-named HTTP server metrics and a CPU counter, per service path, growing
    with wall time: 10 rps, 2% errors, all under 0.1 s, half a core busy."""

    start = 0.0

    def do_GET(self) -> None:
        import time as _time

        t = _time.time() - self.start
        n = 10 * t
        name = "http_server_request_duration_seconds"
        body = [
            f'{name}_bucket{{le="0.1"}} {n}',
            f'{name}_bucket{{le="+Inf"}} {n}',
            f'{name}_count{{http_response_status_code="200"}} {0.98 * n}',
            f'{name}_count{{http_response_status_code="500"}} {0.02 * n}',
            f"process_cpu_seconds_total {0.5 * t}",
        ]
        data = ("\n".join(body) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_twin_enforce_decides_from_a_real_prometheus(policy_path: Path, tmp_path: Path) -> None:
    import shutil
    import socket
    import subprocess
    import time

    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed")
    Exporter.start = time.time()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jobs = "\n".join(
        f"  - job_name: {svc}\n    metrics_path: /{svc}\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{srv.server_address[1]}']"
        for svc in SERVICES
    )
    (tmp_path / "prom.yml").write_text(
        f"global: {{scrape_interval: 1s}}\nscrape_configs:\n{jobs}\n"
    )
    (tmp_path / "queries.yaml").write_text("window: 5s\n")
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prom.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        args = [
            "enforce",
            str(policy_path),
            "--prometheus",
            f"http://127.0.0.1:{port}",
            "--queries",
            str(tmp_path / "queries.yaml"),
            "--once",
            "--emit",
            "json",
        ]
        deadline = time.time() + 40
        rec: dict[str, Any] = {"held": True}
        while time.time() < deadline:
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, res.output
            rec = json.loads(res.output.splitlines()[0])
            if not rec["held"]:
                break
            time.sleep(1)
        assert not rec["held"], rec.get("reason")
        assert rec["source"] == "model" and len(rec["action"]) == 2 * len(SERVICES) + 4
        assert set(rec["config"]["replicas"]) == set(SERVICES)
    finally:
        prom.terminate()
        prom.wait(timeout=10)
        srv.shutdown()
