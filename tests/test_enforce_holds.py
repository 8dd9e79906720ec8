"""The enforcer holds, never dies: every bad override, metrics snapshot, Prometheus answer or
model failure is a hold that says why, the last safe configuration goes on being emitted,
snapshots from the future are refused (so later ones are not stale forever), everything it
writes is strict JSON, and addresses are checked before anything runs."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the enforcer needs onnxruntime (the `rl` extra)")

from test_enforce import GROW_ALL, NETWORK, SERVICES, Fixed, constant, policy_doc, snapshot
from typer.testing import CliRunner

from agents.export.policy_file import PolicyFile
from agents.runtime import (
    FUTURE_TOLERANCE_SECONDS,
    Enforcer,
    FileMetrics,
    MetricsUnavailable,
    PrometheusMetrics,
    PrometheusQueries,
    Webhook,
    run,
    to_json,
)
from twin.cli import app
from twin.errors import InputError


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    onnx = tmp_path / "policy.onnx"
    onnx.write_bytes(NETWORK.read_bytes())
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy_doc(onnx)))
    return path


def strict(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _line(t: float, **fields: Any) -> str:
    svc = {
        s: {"p99_seconds": 0.1, "error_rate": 0.0, "utilization": 0.4, "replicas": 1}
        for s in SERVICES
    }
    svc["frontend"] |= fields
    return json.dumps({"time": t, "services": svc})


# -- overrides --------------------------------------------------------------------------------

BAD_OVERRIDES = {
    "negative queue limit": "queue_limits: {frontend: -1}",
    "zero replicas": "replicas: {frontend: 0}",
    "infinite timeout": "timeout_seconds: .inf",
    "NaN timeout": "timeout_seconds: .nan",
    "overflowing timeout": "timeout_seconds: 1e400",
    "retries as text": 'retries: "2"',
    "retries as a boolean": "retries: true",
    "breaker as a number": "circuit_breaker: 1",
    "unknown service (replicas)": "replicas: {nosuch: 2}",
    "unknown service (queue)": "queue_limits: {nosuch: 5}",
    "negative rate limit": "rate_limit_x: -1",
    "a rate limit that overflows": "rate_limit_x: 1e308",
    "unknown knob": "replica: {frontend: 2}",
    "a list": "[1, 2]",
    "plain text": "just hold on",
    "a number": "42",
    "broken YAML": "timeout_seconds: [1, 2",
}


@pytest.mark.parametrize("text", list(BAD_OVERRIDES.values()), ids=list(BAD_OVERRIDES))
def test_a_bad_override_holds_the_last_safe_configuration_and_says_why(
    policy_path: Path, tmp_path: Path, text: str
) -> None:
    pf = PolicyFile.load(policy_path)
    ov = tmp_path / "override.yaml"
    snaps = [snapshot(float(t)) for t in (0, 5, 10)]
    e = Enforcer(pf, Fixed(*snaps), constant(GROW_ALL), ov)
    good = e.step(0.0)
    assert not good["held"]
    ov.write_text(text + "\n")
    held = e.step(5.0)
    assert held["held"] and held["source"] == "hold"
    assert held["reason"].startswith("override:") and "override.yaml" in held["reason"]
    assert held["knobs"] == good["knobs"] and held["config"] == good["config"]
    strict(to_json(held))
    ov.unlink()
    back = e.step(10.0)
    assert not back["held"] and any(n.startswith("resumed after: override") for n in back["notes"])


def test_binary_garbage_as_override_holds(policy_path: Path, tmp_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    ov = tmp_path / "override.yaml"
    ov.write_bytes(bytes(range(256)) * 4)
    e = Enforcer(pf, Fixed(snapshot(0.0)), constant(GROW_ALL), ov)
    rec = e.step(0.0)
    assert rec["held"] and "override" in rec["reason"]
    assert rec["config"]["policy"] == pf.fallback.model_dump(mode="json", exclude_none=True)


def test_a_valid_override_is_still_taken_as_written(policy_path: Path, tmp_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    ov = tmp_path / "override.yaml"
    ov.write_text("timeout_seconds: 2\nqueue_limits: {frontend: 3, cartservice: null}\n")
    rec = Enforcer(pf, Fixed(snapshot(0.0)), constant(GROW_ALL), ov).step(0.0)
    assert not rec["held"] and rec["source"] == "override"
    assert rec["knobs"]["timeout_seconds"] == 2.0  # an integer is a number of seconds
    assert rec["knobs"]["queue_limit.frontend"] == 3
    assert rec["config"]["policy"]["services"]["frontend"]["queue_limit"] == 3


# -- snapshots --------------------------------------------------------------------------------


def test_a_snapshot_from_the_future_is_refused_and_later_ones_are_not_stale(
    tmp_path: Path,
) -> None:
    now = 1_800_000_000.0
    path = tmp_path / "m.jsonl"
    path.write_text(
        "\n".join(
            [
                _line(now - 10),
                _line(1e18),
                _line(now + FUTURE_TOLERANCE_SECONDS + 1),
                _line(now - 5),
                _line(now + FUTURE_TOLERANCE_SECONDS / 2),  # within the tolerance: read
            ]
        )
    )
    src = FileMetrics(path)
    assert src.read(now).time == now - 10
    for _ in range(2):
        with pytest.raises(MetricsUnavailable, match="ahead of the enforcer's clock"):
            src.read(now)
    assert src.read(now).time == now - 5  # not stale: the future ones were never taken
    assert src.read(now).time == now + FUTURE_TOLERANCE_SECONDS / 2


def test_any_source_dated_in_the_future_holds(policy_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    e = Enforcer(pf, Fixed(snapshot(0.0), snapshot(1e18), snapshot(10.0)), constant(GROW_ALL))
    assert not e.step(0.0)["held"]
    held = e.step(5.0)
    assert held["held"] and "ahead of the enforcer's clock" in held["reason"]
    assert not e.step(10.0)["held"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"time": ' + "9" * 5000 + ', "services": {}}', "not JSON"),
        (_line(1.0, utilization=10**400), "utilization"),
        (_line(1.0, replicas="two"), "replicas"),
        (_line(1.0, p99_seconds=None), "p99_seconds"),
        (_line(1.0, error_rate=-0.5), "error_rate"),
        ('{"time": 1.0, "services": []}', "expected an object"),
        ('{"time": 1.0, "services": {"frontend": 7}}', "expected an object"),
        ("[1, 2, 3]", "expected an object"),
        ('{"time": "now", "services": {}}', "time"),
    ],
)
def test_a_bad_metrics_line_is_a_hold_with_its_reason(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(MetricsUnavailable, match=reason):
        FileMetrics(path).read(time.time())


# -- the model, and strict JSON out -----------------------------------------------------------


def test_a_model_that_fails_is_a_hold_not_a_crash(policy_path: Path) -> None:
    pf = PolicyFile.load(policy_path)
    calls = iter([GROW_ALL, RuntimeError("the runtime lost its session"), [1, 2, 3]])

    def decide(obs: np.ndarray) -> np.ndarray:
        a = next(calls)
        if isinstance(a, Exception):
            raise a
        return np.asarray(a, dtype=np.int64)

    e = Enforcer(pf, Fixed(*(snapshot(float(t)) for t in range(3))), decide)
    first = e.step(0.0)
    for t in (1.0, 2.0):  # an exception, then an action of the wrong length
        rec = e.step(t)
        assert rec["held"] and rec["reason"].startswith("model: no decision")
        assert rec["config"] == first["config"]


def test_twin_enforce_lives_through_hostile_input_and_writes_only_strict_json(
    policy_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay with a future snapshot, a NaN and a huge integer, while the override turns
    from infinite to negative: every decision is emitted and logged as strict JSON."""
    t = time.time() - 100
    metrics = tmp_path / "m.jsonl"
    metrics.write_text(
        "\n".join(
            [
                _line(t),
                _line(1e18),
                _line(t + 5, utilization=float("nan")),
                '{"time": ' + "1" * 4400 + "}",
                _line(t + 10),
                _line(t + 15),
            ]
        )
        + "\n"
    )
    ov = tmp_path / "override.yaml"
    ov.write_text("timeout_seconds: .inf\n")
    log = tmp_path / "decisions.jsonl"
    res = CliRunner().invoke(
        app,
        [
            "enforce", str(policy_path), "--metrics", str(metrics), "--override", str(ov),
            "--emit", "json", "--interval", "0.01", "--log", str(log),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    recs = [strict(x) for x in res.output.splitlines()]
    assert [strict(x) for x in log.read_text().splitlines()] == recs
    assert len(recs) == 6 and all(r["held"] for r in recs)
    reasons = [r["reason"] for r in recs]
    assert "timeout_seconds" in reasons[0]  # metrics were fine: the override holds
    assert "ahead of the enforcer's clock" in reasons[1]
    assert "utilization" in reasons[2] and "not JSON" in reasons[3]
    assert "timeout_seconds" in reasons[4]  # not stale: the 1e18 snapshot was refused


def test_a_log_that_cannot_be_written_is_reported_and_the_loop_goes_on(
    policy_path: Path, tmp_path: Path
) -> None:
    pf = PolicyFile.load(policy_path)
    e = Enforcer(pf, Fixed(snapshot(0.0), snapshot(5.0)), constant(GROW_ALL))
    problems: list[str] = []
    n = run(
        e,
        lambda rec: None,
        interval=5.0,
        max_decisions=2,
        sleep=lambda _: None,
        log_path=tmp_path,  # a folder: not writable as a file
        on_problem=problems.append,
    )
    assert n == 2 and len(problems) == 2 and all(p.startswith("log ") for p in problems)


# -- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--metrics", "m", "--emit", "webhook", "--url", "not a url"],
        ["--metrics", "m", "--emit", "webhook", "--url", "ftp://controller/decisions"],
        ["--metrics", "m", "--emit", "webhook", "--url", "http://controller:99999/"],
        ["--metrics", "m", "--emit", "webhook", "--url", "http://"],
        ["--prometheus", "not a url"],
        ["--prometheus", "127.0.0.1:9090"],
        ["--metrics", "m", "--interval", "nan"],
        ["--metrics", "m", "--duration", "-5"],
    ],
)
def test_addresses_and_durations_are_checked_up_front_one_line_exit_2(
    policy_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").write_text(_line(1.0) + "\n")
    res = CliRunner().invoke(app, ["enforce", str(policy_path), *args])
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and "enforce: --" in res.output


def test_the_library_refuses_what_is_not_an_http_url() -> None:
    with pytest.raises(InputError, match="not an http"):
        Webhook("not a url")
    with pytest.raises(InputError, match="not an http"):
        PrometheusMetrics("file:///etc/passwd", SERVICES, PrometheusQueries())


# -- Prometheus answers -----------------------------------------------------------------------


ANSWERS: dict[str, Any] = {
    "a list": [1, 2],
    "failed": {"status": "error", "error": "bad query"},
    "no data": {"status": "success"},
    "result not a list": {"status": "success", "data": {"result": 5}},
    "short value": {"status": "success", "data": {"result": [{"metric": {"job": "frontend"},
                                                              "value": [1]}]}},
    "garbage value": {"status": "success", "data": {"result": [{"metric": {"job": "frontend"},
                                                                "value": [1, "lots"]}]}},
    "NaN value": {"status": "success", "data": {"result": [{"metric": {"job": s},
                                                            "value": ["{now}", "NaN"]}
                                                           for s in SERVICES]}},
    "from the future": {"status": "success", "data": {"result": [{"metric": {"job": s},
                                                                  "value": [1e18, "1"]}
                                                                 for s in SERVICES]}},
    "not JSON": "<html>proxy error</html>",
}  # fmt: skip


@pytest.fixture
def prometheus() -> Iterator[tuple[str, dict[str, Any]]]:
    """A loopback server answering every query with ``state['answer']``."""
    state: dict[str, Any] = {}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = state["answer"]
            text = answer if isinstance(answer, str) else json.dumps(answer)
            body = text.replace('"{now}"', str(time.time())).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", state
    srv.shutdown()


@pytest.mark.parametrize("answer", list(ANSWERS.values()), ids=list(ANSWERS))
def test_a_garbage_prometheus_answer_is_a_hold_with_its_reason(
    prometheus: tuple[str, dict[str, Any]], answer: Any
) -> None:
    url, state = prometheus
    state["answer"] = answer
    src = PrometheusMetrics(url, SERVICES, PrometheusQueries())
    with pytest.raises(MetricsUnavailable) as exc:
        src.read(time.time())
    assert str(exc.value) and "\n" not in str(exc.value)
