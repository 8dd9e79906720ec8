"""Trace ingestion: every format to one tidy table; bad or partial data counted, not fatal."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest

from twin.calibrate.mask import Masker
from twin.calibrate.traces import (
    normalize_id,
    read_traces,
    repair_truncated_json,
    service_from_pod,
)
from twin.errors import InputError

T0 = 1_700_000_000_000_000_000  # ns


def _otlp_span(tid, sid, parent, name, start_ms, end_ms, kind=2, attrs=None, status=None):
    sp = {
        "traceId": tid,
        "spanId": sid,
        "parentSpanId": parent,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(T0 + int(start_ms * 1e6)),
        "endTimeUnixNano": str(T0 + int(end_ms * 1e6)),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in (attrs or {}).items()],
    }
    if status is not None:
        sp["status"] = {"code": status}
    return sp


def _otlp(service, spans):
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }


TID = "5b8aa5a2d2c872e8321cf37308d69df2"


def test_otlp_json_ids_are_read_as_hex_not_base64(tmp_path: Path) -> None:
    p = tmp_path / "otlp.json"
    p.write_text(json.dumps(_otlp("gw", [_otlp_span(TID, "051581bf3cb55c13", "", "GET /", 0, 5)])))
    df, rep = read_traces([p])
    assert df.loc[0, "trace_id"] == TID and df.loc[0, "span_id"] == "051581bf3cb55c13"
    assert df.loc[0, "service"] == "gw" and df.loc[0, "kind"] == "server"
    assert df.loc[0, "end"] - df.loc[0, "start"] == pytest.approx(0.005, abs=1e-6)
    assert rep.spans == 1 and not rep.problems


def test_base64_ids_from_protobuf_json_mapping_become_the_same_hex() -> None:
    raw = bytes.fromhex("051581bf3cb55c13")
    assert normalize_id(base64.b64encode(raw).decode()) == "051581bf3cb55c13"


def test_collector_file_exporter_one_document_per_line(tmp_path: Path) -> None:
    a = _otlp("gw", [_otlp_span(TID, "aa" * 8, "", "GET /", 0, 10)])
    b = _otlp("api", [_otlp_span(TID, "bb" * 8, "aa" * 8, "list", 1, 9)])
    p = tmp_path / "spans.jsonl"
    p.write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    df, _ = read_traces([p])
    assert set(df["service"]) == {"gw", "api"}
    assert df.set_index("span_id").loc["bb" * 8, "parent_id"] == "aa" * 8


def test_otlp_error_status_marks_span_failed(tmp_path: Path) -> None:
    p = tmp_path / "e.json"
    p.write_text(json.dumps(_otlp("gw", [_otlp_span(TID, "aa" * 8, "", "x", 0, 1, status=2)])))
    df, _ = read_traces([p])
    assert bool(df.loc[0, "error"])


def test_zipkin_shared_server_span_gets_its_own_id_under_the_client(tmp_path: Path) -> None:
    spans = [
        {
            "traceId": "ab" * 8,
            "id": "01" * 8,
            "name": "get",
            "kind": "SERVER",
            "timestamp": 1_700_000_000_000_000,
            "duration": 9000,
            "localEndpoint": {"serviceName": "front"},
        },
        {
            "traceId": "ab" * 8,
            "id": "02" * 8,
            "parentId": "01" * 8,
            "name": "call",
            "kind": "CLIENT",
            "timestamp": 1_700_000_000_001_000,
            "duration": 5000,
            "localEndpoint": {"serviceName": "front"},
        },
        {
            "traceId": "ab" * 8,
            "id": "02" * 8,
            "parentId": "01" * 8,
            "name": "call",
            "kind": "SERVER",
            "shared": True,
            "timestamp": 1_700_000_000_001_500,
            "duration": 4000,
            "localEndpoint": {"serviceName": "back"},
            "tags": {"http.status_code": "503"},
        },
    ]
    p = tmp_path / "z.json"
    p.write_text(json.dumps(spans))
    df, rep = read_traces([p])
    assert rep.spans == 3 and not rep.problems.get("duplicate span ids (later copies skipped)")
    server = df[df["service"] == "back"].iloc[0]
    assert server["parent_id"] == "02" * 8 and bool(server["error"])


def test_pod_names_lose_both_replica_set_suffixes() -> None:
    assert service_from_pod("frontend-579b9bff58-t2dbm") == "frontend"
    assert service_from_pod("cartservice-579f59597d-wc2lz") == "cartservice"
    assert service_from_pod("redis-cart-0") == "redis-cart"
    assert service_from_pod("plain") == "plain"


def test_span_table_with_root_parents_and_pod_names(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(
        "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano\n"
        f"t1,s1,root,frontend-579b9bff58-t2dbm,Recv,{T0},{T0 + 9_000_000}\n"
        f"t1,s2,s1,cart-579f59597d-wc2lz,Get,{T0 + 1_000_000},{T0 + 5_000_000}\n"
        f"t1,s3,s1,cart-579f59597d-wc2lz,Get,notanumber,{T0}\n"
    )
    df, rep = read_traces([p])
    assert list(df["service"]) == ["frontend", "cart"]
    assert df.loc[0, "parent_id"] == "" and df.loc[1, "instance"] == "cart-579f59597d-wc2lz"
    assert rep.problems["malformed spans (skipped)"] == 1


def test_parquet_span_table_is_read_like_csv(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pd.DataFrame(
        {
            "trace_id": ["t"],
            "span_id": ["s"],
            "parent_id": [""],
            "service_name": ["a"],
            "name": ["op"],
            "start_time": [1.7e9],
            "duration_ms": [3.0],
        }
    ).to_parquet(p)
    df, _ = read_traces([p])
    assert df.loc[0, "end"] - df.loc[0, "start"] == pytest.approx(0.003, abs=1e-6)


def test_missing_parents_and_clock_skew_are_counted_and_marked_partial(tmp_path: Path) -> None:
    spans = [
        _otlp_span(TID, "aa" * 8, "", "root", 0, 10),
        _otlp_span(TID, "bb" * 8, "cc" * 8, "orphan", 1, 2),  # parent cc.. never written
        _otlp_span("11" * 16, "dd" * 8, "", "root", 0, 10),
    ]
    skewed = [_otlp_span("11" * 16, "ee" * 8, "dd" * 8, "early", -50, 5)]
    p = tmp_path / "x.json"
    doc = _otlp("a", spans)
    doc["resourceSpans"] += _otlp("b", skewed)["resourceSpans"]
    p.write_text(json.dumps(doc))
    df, rep = read_traces([p])
    assert rep.problems["spans whose parent is missing"] == 1
    assert rep.problems["spans starting before their parent (clock skew)"] == 1
    assert rep.partial_traces == 2 and df["partial"].all()


def test_malformed_spans_are_skipped_not_fatal(tmp_path: Path) -> None:
    good = _otlp_span(TID, "aa" * 8, "", "ok", 0, 1)
    bad = {"spanId": "bb" * 8}  # no trace id, no times
    p = tmp_path / "m.json"
    p.write_text(json.dumps(_otlp("a", [good, bad])))
    df, rep = read_traces([p])
    assert len(df) == 1 and rep.problems["malformed spans (skipped)"] == 1


def test_truncated_json_keeps_every_complete_value() -> None:
    text = '{"data": [{"spans": [{"a": 1}, {"b": 2}], "x": [1, 2]}, {"spans": [{"c": 3, "d'
    assert repair_truncated_json(text) == {
        "data": [{"spans": [{"a": 1}, {"b": 2}], "x": [1, 2]}, {"spans": [{}]}]
    }
    assert repair_truncated_json("nothing") is None


def test_sensitive_attributes_are_masked_before_they_are_stored(tmp_path: Path) -> None:
    attrs = {
        "http.url": "https://shop/api?email=jane.doe@example.com&id=123456789",
        "http.request.header.authorization": "Bearer abc.def",
        "note": "token: s3cr3t-value",
        "order": "550e8400-e29b-41d4-a716-446655440000",
    }
    p = tmp_path / "s.json"
    p.write_text(json.dumps(_otlp("a", [_otlp_span(TID, "aa" * 8, "", "op", 0, 1, attrs=attrs)])))
    df, rep = read_traces([p])
    stored = df.loc[0, "attributes"]
    for secret in ("jane.doe@example.com", "abc.def", "s3cr3t-value", "550e8400", "123456789"):
        assert secret not in stored
    assert "{email}" in stored and rep.masked >= 4


def test_masking_patterns_are_configurable(tmp_path: Path) -> None:
    m = Masker.from_config({"patterns": {"ticket": r"TCK-\d+"}})
    assert m.text("see TCK-42 for jane@x.org") == "see {ticket} for {email}"
    m2 = Masker.from_config({"patterns": {}, "keys": [], "replace_defaults": True})
    assert m2.text("jane@x.org") == "jane@x.org"
    with pytest.raises(InputError):
        Masker.from_config({"patterns": {"bad": "("}})


def test_unreadable_file_raises_input_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text("this is not json at all")
    with pytest.raises(InputError, match=r"bad\.json"):
        read_traces([p])
