"""`twin serve`: refusals store nothing (checked in the database itself), the same document
or Idempotency-Key stores one row, limits hold without a 500, and what is stored reads back
in the shapes its consumers (``twin risk --history``, OTLP readers) expect."""

from __future__ import annotations

import gzip
import json
import logging
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_twin
from fastapi.testclient import TestClient

from twin.serve import ServeConfig, auth, create_app
from twin.store import Store, documents

CHAOS = {
    "test_id": "latency-b",
    "timestamp": "2024-10-27T10:00:00Z",
    "parameters": {"rate": 5},
    "injected_faults": [{"type": "latency", "target": "b"}],
    "expected_outcome": "ok",
    "actual_outcome": "ok",
}
SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "eee19b7ec3c1b174",
    "name": "GET /",
    "kind": 2,
    "startTimeUnixNano": "1544712660000000000",
    "endTimeUnixNano": "1544712661000000000",
}
TRACES = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
            "scopeSpans": [{"spans": [SPAN]}],
        }
    ]
}
METRICS = {
    "resourceMetrics": [
        {
            "scopeMetrics": [
                {
                    "metrics": [
                        {
                            "name": "http.server.duration",
                            "unit": "s",
                            "histogram": {
                                "dataPoints": [
                                    {"timeUnixNano": "1", "count": "3", "bucketCounts": ["1", "2"]}
                                ]
                            },
                        }
                    ]
                }
            ]
        }
    ]
}
BODIES: dict[str, Any] = {
    "/v1/chaos-results": CHAOS,
    "/v1/simulations": {"name": "mm1", "tool": "simpy", "events": [{"time": 0.5, "kind": "x"}]},
    "/v1/incidents": {
        "incidents": [{"time": "2024-01-02T03:00:00Z", "service": "b", "fault_kind": "latency"}]
    },
    "/v1/otlp/traces": TRACES,
    "/v1/otlp/metrics": METRICS,
}


class Api:
    """A served app on a fresh SQLite file, with one token of each kind."""

    def __init__(self, tmp: Path, **config: Any) -> None:
        self.db = f"sqlite:///{tmp / 'twin.db'}"
        self.tokens = tmp / "tokens.json"
        self.write, _ = auth.create(self.tokens, "write")
        self.read, _ = auth.create(self.tokens, "read")
        self.revoked, entry = auth.create(self.tokens, "write")
        auth.revoke(self.tokens, entry.id)
        self.expired, _ = auth.create(self.tokens, "write", expires_days=1e-6)  # 86 ms
        time.sleep(0.2)
        self.app = create_app(ServeConfig(db=self.db, tokens=self.tokens, **config))
        self.client = TestClient(self.app)

    def post(self, path: str, body: Any, token: str | None = "write", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {getattr(self, token, token)}"
        return self.client.post(path, json=body, headers=headers, **kw)

    def get(self, path: str, token: str = "read", **kw: Any) -> Any:
        return self.client.get(
            path, headers={"Authorization": f"Bearer {getattr(self, token)}"}, **kw
        )

    def rows(self) -> dict[str, int]:
        with Store(self.db) as st:
            return documents.counts(st)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    a = Api(tmp_path, rate=0)
    with a.client:
        yield a


def _nothing_stored(api: Api) -> None:
    assert set(api.rows().values()) == {0}, api.rows()


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["detail"] and body["type"].startswith("/problems/")
    return body


# -- security -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(BODIES))
def test_every_refused_caller_is_told_401_or_403_and_nothing_is_stored(
    api: Api, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = BODIES[path]
    assert _problem(api.post(path, body, token=None), 401)
    assert "Bearer" in api.post(path, body, token=None).headers["www-authenticate"]
    _problem(api.post(path, body, token="twin_not-a-token"), 401)
    _problem(api.post(path, body, token="revoked"), 401)
    _problem(api.post(path, body, token="expired"), 401)
    _problem(api.post(path, body, token="read"), 403)
    _problem(api.client.post(path, json=body, headers={"Authorization": "Basic abc"}), 401)
    _nothing_stored(api)
    logged = caplog.text
    for token in (api.write, api.read, api.revoked, api.expired):
        assert token not in logged
    # and the same body with the write token is stored: the refusals were about the caller
    assert api.post(path, body).status_code in (200, 201)
    assert sum(api.rows().values()) > 0


def test_reading_needs_a_token_and_a_read_token_is_enough(api: Api) -> None:
    _problem(api.client.get("/v1/chaos-results"), 401)
    assert api.get("/v1/chaos-results").status_code == 200
    assert api.get("/v1/chaos-results", token="write").status_code == 200  # write implies read
    _problem(api.get("/v1/chaos-results", token="revoked"), 401)


def test_a_token_revoked_while_serving_is_refused_within_the_recheck(tmp_path: Path) -> None:
    a = Api(tmp_path, rate=0)
    with a.client:
        assert a.get("/v1/alerts").status_code == 200
        entry = next(t for t in auth.load(a.tokens).tokens if t.sha256 == auth.digest(a.read))
        auth.revoke(a.tokens, entry.id)
        time.sleep(1.1)
        _problem(a.get("/v1/alerts"), 401)


def test_the_rate_limit_answers_429_with_retry_after_and_stores_nothing(tmp_path: Path) -> None:
    a = Api(tmp_path, rate=0.5, burst=2)
    with a.client:
        codes = [
            a.post("/v1/chaos-results", {**CHAOS, "test_id": f"t{i}"}).status_code for i in range(4)
        ]
        assert codes[:2] == [201, 201] and codes[2:] == [429, 429]
        r = a.post("/v1/chaos-results", {**CHAOS, "test_id": "late"})
        _problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        assert a.rows()["chaos_results"] == 2


def test_tokens_cli_prints_only_the_token_and_keeps_only_its_hash(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    made = run_twin("tokens", "create", "--tokens", str(f), "--scope", "write", "--expires", "3")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("twin_") and "\n" not in token and len(token) > 40
    text = f.read_text()
    assert token not in text and auth.digest(token) in text
    assert (f.stat().st_mode & 0o777) == 0o600
    listed = run_twin("tokens", "list", "--tokens", str(f), "--json")
    row = json.loads(listed.stdout.splitlines()[0])
    assert row["scope"] == "write" and row["state"] == "active" and row["expires"]
    assert auth.digest(token) not in listed.stdout
    gone = run_twin("tokens", "revoke", row["id"], "--tokens", str(f))
    assert gone.returncode == 0
    again = json.loads(run_twin("tokens", "list", "--tokens", str(f), "--json").stdout)
    assert again["state"] == "revoked"
    bad = run_twin("tokens", "revoke", "nope", "--tokens", str(f))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


# -- limits ---------------------------------------------------------------------------------------


def test_an_oversize_body_is_413_whether_declared_streamed_or_gzipped(tmp_path: Path) -> None:
    a = Api(tmp_path, rate=0, max_body=4096)
    big = json.dumps({**CHAOS, "failure_details": "x" * 10_000}).encode()
    auth_h = {"Authorization": f"Bearer {a.write}", "Content-Type": "application/json"}
    with a.client:
        _problem(a.client.post("/v1/chaos-results", content=big, headers=auth_h), 413)

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 1000):
                yield big[i : i + 1000]

        _problem(a.client.post("/v1/chaos-results", content=chunks(), headers=auth_h), 413)
        bomb = gzip.compress(b'{"a": "' + b"0" * 3_000_000 + b'"}')
        assert len(bomb) < 4096
        r = a.client.post(
            "/v1/otlp/traces", content=bomb, headers={**auth_h, "Content-Encoding": "gzip"}
        )
        _problem(r, 413)
        _nothing_stored(a)
        ok = gzip.compress(json.dumps(TRACES).encode())
        r = a.client.post(
            "/v1/otlp/traces", content=ok, headers={**auth_h, "Content-Encoding": "gzip"}
        )
        assert r.status_code == 200 and r.headers["twin-stored"] == "created"


def _deep(n: int) -> bytes:
    return b'{"test_id": "x", "parameters": ' + b"[" * n + b"]" * n + b"}"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"test_id": "x",', 400),  # malformed
        (b"", 400),
        (b"\xff\xfe", 400),
        (b'{"test_id": "x", "timestamp": NaN}', 400),
        (b'{"test_id": "x\\u0000", "timestamp": "2024-01-01T00:00:00Z"}', 400),
        (b"[1, 2]", 422),  # wrong type: a list of numbers
        (b'"a string"', 422),
        (b'{"test_id": 7, "timestamp": "2024-01-01T00:00:00Z"}', 422),
        (b'{"test_id": "x", "timestamp": "yesterday"}', 422),
        (b'{"something": "else"}', 422),
        (_deep(100_000), 400),  # too deep
        (b"1" * 5000, 400),  # more digits than Python converts
    ],
)
def test_a_bad_body_is_400_or_422_with_nothing_stored(api: Api, body: bytes, status: int) -> None:
    r = api.client.post(
        "/v1/chaos-results",
        content=body,
        headers={"Authorization": f"Bearer {api.write}", "Content-Type": "application/json"},
    )
    _problem(r, status)
    _nothing_stored(api)


def test_100k_keys_is_refused_without_a_memory_blow_up(api: Api) -> None:
    body = json.dumps({**CHAOS, "parameters": {f"k{i}": i for i in range(100_000)}}).encode()
    assert len(body) < 5 * 1024 * 1024
    tracemalloc.start()
    try:
        r = api.client.post(
            "/v1/chaos-results",
            content=body,
            headers={"Authorization": f"Bearer {api.write}", "Content-Type": "application/json"},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "100000 keys" in _problem(r, 400)["detail"]
    assert peak < 64 * 1024 * 1024, peak  # the body's size bounds it: ~1.8 MB of JSON
    _nothing_stored(api)


def test_a_schema_error_names_the_field_path(api: Api) -> None:
    bad = {
        "incidents": [{"time": "2024-01-01T00:00:00Z", "service": "a", "fault_kind": "gremlins"}]
    }
    p = _problem(api.post("/v1/incidents", bad), 422)
    assert p["errors"][0]["path"] == "incidents[0].fault_kind"
    assert p["detail"].startswith("incidents[0].fault_kind")
    p = _problem(api.get("/v1/alerts", params={"limit": 0}), 422)
    assert p["errors"][0]["path"] == "query.limit"
    _problem(
        api.post("/v1/otlp/traces", "x", headers={"Content-Type": "application/x-protobuf"}), 415
    )
    _nothing_stored(api)


def test_otlp_ids_must_be_hex_not_base64(api: Api) -> None:
    b64 = {**SPAN, "traceId": "W47/95gDgQPSabYzgT/GDA=="}  # the same id, as protobuf's JSON
    bad = {"resourceSpans": [{"scopeSpans": [{"spans": [b64]}]}]}
    p = _problem(api.post("/v1/otlp/traces", bad), 422)
    assert p["errors"][0]["path"].endswith("traceId")
    _nothing_stored(api)
    r = api.post("/v1/otlp/traces", TRACES)
    assert r.status_code == 200 and r.json() == {}
    with Store(api.db) as st, st.transaction() as s:
        row = s.query(documents.TelemetryBatchRow).one()
        assert row.items == 1 and row.signal == "traces"
        assert (
            row.document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
            == (SPAN["traceId"])
        )
    r = api.post("/v1/otlp/metrics", METRICS)
    assert r.status_code == 200 and r.headers["twin-stored"] == "created"
    assert api.post("/v1/otlp/metrics", METRICS).headers["twin-stored"] == "already_existed"


# -- data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(BODIES))
def test_the_same_document_twice_is_one_row_and_the_answer_says_so(api: Api, path: str) -> None:
    first = api.post(path, BODIES[path])
    assert first.status_code in (200, 201)
    before = api.rows()
    second = api.post(path, BODIES[path])
    assert second.status_code == 200
    assert api.rows() == before
    if not path.startswith("/v1/otlp/"):
        assert first.json()["created"] == 1
        assert second.json()["created"] == 0 and second.json()["already_existed"] == 1
        assert [r["status"] for r in second.json()["records"]] == ["already_existed"]


def test_an_idempotency_key_replays_its_answer_and_refuses_another_body(api: Api) -> None:
    key = {"Idempotency-Key": "retry-42"}
    first = api.post("/v1/chaos-results", CHAOS, headers=key)
    assert first.status_code == 201
    again = api.post("/v1/chaos-results", CHAOS, headers=key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["replayed"] is True and again.json()["already_existed"] == 1
    other = api.post("/v1/chaos-results", {**CHAOS, "test_id": "other"}, headers=key)
    _problem(other, 409)
    assert api.rows()["chaos_results"] == 1
    # keys belong to their token: another writer may use the same key for its own request
    second_writer, _ = auth.create(api.tokens, "write")
    time.sleep(1.1)
    r = api.post(
        "/v1/chaos-results", {**CHAOS, "test_id": "theirs"}, token=second_writer, headers=key
    )
    assert r.status_code == 201
    assert api.rows()["chaos_results"] == 2


def test_a_changed_chaos_result_with_the_same_identity_is_updated_not_duplicated(api: Api) -> None:
    assert api.post("/v1/chaos-results", CHAOS).json()["created"] == 1
    r = api.post("/v1/chaos-results", {**CHAOS, "actual_outcome": "errors"})
    assert r.status_code == 201 and r.json()["updated"] == 1
    items = api.get("/v1/chaos-results").json()["items"]
    assert len(items) == 1 and items[0]["passed"] is False
    assert api.rows()["raw_documents"] == 2  # both bodies are kept as received


def test_pages_cover_every_row_once_and_filters_apply(api: Api) -> None:
    batch = [
        {**CHAOS, "test_id": f"t{i}", "actual_outcome": "ok" if i % 2 else "bad"} for i in range(7)
    ]
    assert api.post("/v1/chaos-results", batch).json()["created"] == 7
    seen, cursor = [], 0
    while True:
        page = api.get("/v1/chaos-results", params={"limit": 3, "cursor": cursor}).json()
        seen += [i["test_id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(f"t{i}" for i in range(7)) and len(seen) == len(set(seen))
    passed = api.get("/v1/chaos-results", params={"passed": True}).json()["items"]
    assert sorted(i["test_id"] for i in passed) == ["t1", "t3", "t5"]


def test_stored_incidents_read_back_as_a_history_twin_risk_accepts(
    api: Api, tmp_path: Path
) -> None:
    from twin.bayes.evidence import read_history

    incidents = [
        {
            "time": "2024-01-01T00:00:00Z",
            "service": "b",
            "fault_kind": "latency",
            "duration": "15m",
        },
        {"time": "2024-02-01T01:00:00+01:00", "service": "b", "symptom": "OOMKilled, restarted"},
        {"time": "2024-03-01T00:00:00Z", "service": "c", "fault_kind": "outage"},
    ]
    assert api.post("/v1/incidents", {"incidents": incidents}).json()["created"] == 3
    page = api.get("/v1/incidents").json()
    f = tmp_path / "history.json"
    f.write_text(json.dumps(page))
    history = read_history(f)
    assert len(history.incidents) == 3
    assert sorted(history.incidents["fault_kind"]) == ["latency", "memory_leak", "outage"]
    assert page["incidents"][0]["duration"] == 900.0
    assert page["incidents"][1]["time"] == "2024-02-01T00:00:00Z"


def test_alerts_changes_and_failure_modes_written_by_the_library_are_listed(api: Api) -> None:
    with Store(api.db) as st:
        alert = {
            "raised_at": "2024-01-01T00:00:00Z",
            "service": "b",
            "failure_mode": "retry storm",
            "severity": "page",
            "probability": 0.8,
            "lead_seconds": 120.0,
            "message": "b breaches p99 in 2 minutes",
        }
        assert documents.add_alerts(st, [alert, alert]) == ["created", "already_existed"]
        documents.add_changes(
            st, [{"submitted_at": "2024-01-01", "name": "v2", "verdict": "no-go"}]
        )
    alerts = api.get("/v1/alerts", params={"severity": "page"}).json()["items"]
    assert len(alerts) == 1 and alerts[0]["probability"] == 0.8
    assert api.get("/v1/alerts", params={"severity": "info"}).json()["items"] == []
    assert api.get("/v1/changes").json()["items"][0]["verdict"] == "no-go"
    assert api.get("/v1/failure-modes").json() == {"items": [], "next_cursor": None}


def test_health_metrics_and_the_openapi_document_describe_the_server(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "database": "sqlite"}
    api.post("/v1/chaos-results", CHAOS)
    api.post("/v1/chaos-results", CHAOS, token=None)
    text = api.client.get("/metrics").text
    assert 'route="/v1/chaos-results",status="201"' in text
    assert 'route="/v1/chaos-results",status="401"' in text
    assert "twin_http_request_duration_seconds_bucket" in text
    doc = api.client.get("/openapi.json").json()
    post = doc["paths"]["/v1/chaos-results"]["post"]
    assert {"401", "403", "413", "422", "429"} <= set(post["responses"])
    assert post["security"] == [{"bearer": []}]
