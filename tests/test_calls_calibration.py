"""Calibration finds asynchronous and conditional calls in traces (twin.calibrate.asynchrony)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twin.calibrate import BuildOptions, build_callgraph, build_topology, read_traces


def _jaeger_span(
    trace: str, span: str, parent: str, proc: str, op: str, start: float, dur: float, **kw: Any
) -> dict[str, Any]:
    refs = []
    if parent:
        refs = [{"refType": kw.get("ref", "CHILD_OF"), "traceID": trace, "spanID": parent}]
    tags = [{"key": "error", "type": "bool", "value": True}] if kw.get("error") else []
    return {
        "traceID": trace,
        "spanID": span,
        "operationName": op,
        "references": refs,
        "startTime": int(start * 1e6),
        "duration": int(dur * 1e6),
        "processID": proc,
        "tags": tags,
    }


def _jaeger(tmp_path: Path, traces: list[list[dict[str, Any]]]) -> Path:
    procs = {p: {"serviceName": p} for p in ("api", "mail", "cache", "db", "backup")}
    data = [{"traceID": t[0]["traceID"], "spans": t, "processes": procs} for t in traces]
    path = tmp_path / "traces.json"
    path.write_text(json.dumps({"data": data}))
    return path


def _calls(path: Path) -> dict[str, dict[str, Any]]:
    df, _ = read_traces([path])
    topo = build_topology(build_callgraph(df)).topology
    ops = topo.services["api"].operations
    return {c.to.split(":")[0]: c.model_dump() for op in ops.values() for c in op.calls}


def test_a_follows_from_reference_makes_an_asynchronous_call(tmp_path: Path) -> None:
    traces = []
    for i in range(20):
        t, base = f"{i:016x}", 1000.0 + i
        traces.append(
            [
                _jaeger_span(t, f"{i}a", "", "api", "post", base, 0.010),
                _jaeger_span(t, f"{i}d", f"{i}a", "db", "insert", base + 0.001, 0.004),
                # the mail is sent after the answer, and says so
                _jaeger_span(
                    t, f"{i}m", f"{i}a", "mail", "send", base + 0.008, 0.001, ref="FOLLOWS_FROM"
                ),
            ]
        )
    calls = _calls(_jaeger(tmp_path, traces))
    assert calls["mail"]["asynchronous"] is True
    assert calls["db"]["asynchronous"] is False


def test_a_callee_ending_after_its_caller_answered_is_asynchronous(tmp_path: Path) -> None:
    traces = []
    for i in range(20):
        t, base = f"{i:016x}", 1000.0 + i
        traces.append(
            [
                _jaeger_span(t, f"{i}a", "", "api", "post", base, 0.010),
                _jaeger_span(t, f"{i}m", f"{i}a", "mail", "send", base + 0.009, 0.050),
            ]
        )
    assert _calls(_jaeger(tmp_path, traces))["mail"]["asynchronous"] is True


def test_otlp_producer_and_consumer_kinds_make_an_asynchronous_call(tmp_path: Path) -> None:
    def span(t: str, s: str, parent: str, name: str, kind: int, start: float) -> dict[str, Any]:
        return {
            "traceId": t,
            "spanId": s,
            "parentSpanId": parent,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(int(start * 1e9)),
            "endTimeUnixNano": str(int((start + 0.002) * 1e9)),
        }

    api, mail = [], []
    for i in range(12):
        t = f"{i + 1:032x}"
        base = 1000.0 + i
        api += [
            span(t, f"{i + 1:08x}aaaaaaaa", "", "post", 2, base),
            span(t, f"{i + 1:08x}bbbbbbbb", f"{i + 1:08x}aaaaaaaa", "publish", 4, base + 0.001),
        ]
        mail.append(span(t, f"{i + 1:08x}cccccccc", f"{i + 1:08x}bbbbbbbb", "send", 5, base))

    def resource(svc: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
        attrs = [{"key": "service.name", "value": {"stringValue": svc}}]
        return {"resource": {"attributes": attrs}, "scopeSpans": [{"spans": spans}]}

    path = tmp_path / "otlp.json"
    path.write_text(json.dumps({"resourceSpans": [resource("api", api), resource("mail", mail)]}))
    assert _calls(path)["mail"]["asynchronous"] is True


def test_a_call_seen_only_after_a_failed_call_becomes_its_fallback(tmp_path: Path) -> None:
    traces = []
    for i in range(60):
        t, base = f"{i:016x}", 1000.0 + i
        cache_fails = i % 3 == 0  # 20 failures, each followed by the database
        spans = [
            _jaeger_span(t, f"{i}a", "", "api", "get", base, 0.020),
            _jaeger_span(
                t, f"{i}c", f"{i}a", "cache", "get", base + 0.001, 0.002, error=cache_fails
            ),
        ]
        if cache_fails:
            spans.append(_jaeger_span(t, f"{i}d", f"{i}a", "db", "find", base + 0.004, 0.010))
        traces.append(spans)
    calls = _calls(_jaeger(tmp_path, traces))
    assert calls["db"]["when"] == "previous_failed"
    assert calls["db"]["probability"] == 1.0
    assert calls["cache"]["optional"] is True


def test_a_call_made_beside_another_without_failures_stays_unconditional(
    tmp_path: Path,
) -> None:
    """Co-presence alone is what request classes look like, not a condition."""
    traces = []
    for i in range(60):
        t, base = f"{i:016x}", 1000.0 + i
        spans = [_jaeger_span(t, f"{i}a", "", "api", "get", base, 0.020)]
        if i % 2:
            spans.append(_jaeger_span(t, f"{i}c", f"{i}a", "cache", "get", base + 0.001, 0.002))
            if i % 4 == 1:
                spans.append(_jaeger_span(t, f"{i}d", f"{i}a", "db", "q", base + 0.004, 0.01))
        traces.append(spans)
    path = _jaeger(tmp_path, traces)
    calls = _calls(path)
    assert calls["db"]["when"] == "always"
    # request classes (the default) give the requests that call db a class of their own
    graph = build_callgraph(read_traces([path])[0])
    (entry,) = build_topology(graph).topology.workload
    assert sorted(entry.mix.values()) == [0.25, 0.25, 0.5]
    one = build_topology(graph, BuildOptions(classes=False)).topology
    (db,) = [c for c in one.services["api"].operations["get"].calls if c.to.startswith("db")]
    assert db.when == "always" and db.probability == 0.25
