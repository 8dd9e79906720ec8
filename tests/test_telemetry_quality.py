"""Telemetry of unknown quality: times that are not finite or far from the rest of the data
are skipped and counted, never used; the observed window is robust to them, so rates stay
what the good data say; Prometheus NaN, infinities, garbage and short pairs are skipped per
point; and what cannot be used at all is one line, exit 2, with nothing left behind."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from twin.calibrate import traces as traces_module
from twin.calibrate.callgraph import build_callgraph
from twin.calibrate.metrics import (
    MAX_QUERIES,
    MetricsReport,
    load_dump,
    parse_time,
    split_range,
    summarize,
)
from twin.calibrate.table_format import _read_table
from twin.calibrate.timeline import (
    FENCE_FLOOR_SECONDS,
    SILENCE_FLOOR_SECONDS,
    far_in_time,
    observed_window,
    time_fences,
)
from twin.calibrate.traces import read_traces
from twin.cli import app
from twin.errors import InputError

T0 = 1_700_000_000.0  # seconds
RATE = 5.0  # requests per second in every generated capture
SECONDS = 120.0


# -- captures ---------------------------------------------------------------------------------


def _arrivals(n: int = int(RATE * SECONDS), t0: float = T0) -> list[float]:
    return [t0 + i / RATE for i in range(n)]


def _zipkin(starts: list[float]) -> list[dict[str, Any]]:
    """A front end calling a back end for each request (times in µs, as Zipkin writes)."""
    out = []
    for i, t in enumerate(starts):
        tid = f"{i + 1:016x}"
        out.append(
            {
                "traceId": tid,
                "id": tid,
                "name": "get /",
                "kind": "SERVER",
                "timestamp": int(t * 1e6),
                "duration": 20_000,
                "localEndpoint": {"serviceName": "front"},
            }
        )
        out.append(
            {
                "traceId": tid,
                "id": f"{i + 1:08x}bbbbbbbb",
                "parentId": tid,
                "name": "query",
                "kind": "SERVER",
                "timestamp": int(t * 1e6) + 2_000,
                "duration": 10_000,
                "localEndpoint": {"serviceName": "back"},
            }
        )
    return out


def _otlp_line(starts: list[float], first_id: int = 1) -> dict[str, Any]:
    spans = []
    for i, t in enumerate(starts, first_id):
        ns = int(t * 1e9)
        spans.append(
            {
                "traceId": f"{i:032x}",
                "spanId": f"{i:016x}",
                "name": "GET /",
                "kind": 2,
                "startTimeUnixNano": str(ns),
                "endTimeUnixNano": str(ns + 20_000_000),
            }
        )
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "front"}}]
                },
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }


def _jaeger(starts: list[float]) -> dict[str, Any]:
    spans = [
        {
            "traceID": f"{i + 1:016x}",
            "spanID": f"{i + 1:016x}",
            "operationName": "GET /",
            "references": [],
            "startTime": int(t * 1e6),
            "duration": 20_000,
            "processID": "p1",
            "tags": [],
        }
        for i, t in enumerate(starts)
    ]
    return {
        "data": [{"traceID": "1", "spans": spans, "processes": {"p1": {"serviceName": "front"}}}]
    }


def _rate(path: Path) -> tuple[float, Any]:
    df, report = read_traces([path])
    graph = build_callgraph(df)
    rates = graph.entry_rates()
    assert len(rates) == 1
    return next(iter(rates.values())), report


def _close(rate: float, expected: float = RATE) -> bool:
    return abs(rate - expected) / expected < 0.01


# -- the rule ---------------------------------------------------------------------------------


def test_a_continuous_capture_is_one_stretch_and_its_window_is_last_end_minus_first_start() -> None:
    rng = np.random.default_rng(4)
    starts = T0 + np.cumsum(rng.exponential(0.2, size=5_000))  # Poisson arrivals, 5/s
    ends = starts + rng.lognormal(-4, 1, size=len(starts))
    w = observed_window(starts, ends)
    assert w.stretches == 1
    assert w.seconds == float(ends.max() - starts.min())
    assert not far_in_time(starts, time_fences(starts)).any()


def test_two_captures_days_apart_and_unequal_are_both_kept_and_the_gap_is_not_observed() -> None:
    day1 = np.array(_arrivals(900, T0))  # 180 s of data
    day2 = np.array(_arrivals(100, T0 + 3 * 86_400))  # a tenth as much, three days later
    starts = np.concatenate([day1, day2])
    fences = time_fences(starts)
    assert not far_in_time(starts, fences).any()  # nothing cut, however unequal the halves
    w = observed_window(starts, starts + 0.02)
    assert w.stretches == 2
    expected = (day1[-1] + 0.02 - day1[0]) + (day2[-1] + 0.02 - day2[0])
    assert w.seconds == pytest.approx(expected, rel=1e-12)


def test_times_years_away_or_wrong_by_a_unit_are_far_and_a_week_is_not() -> None:
    starts = np.array(_arrivals())
    lo, hi = time_fences(starts)
    assert hi - starts.max() >= FENCE_FLOOR_SECONDS - SECONDS  # the floor holds
    probes = np.array(
        [
            T0 + 6 * 86_400,  # six days later: within the floor, kept
            4_102_444_800.0,  # 2100-01-01
            0.0,  # an unset clock
            T0 * 1e3,  # milliseconds read as seconds
            1e40,
        ]
    )
    assert far_in_time(probes, (lo, hi)).tolist() == [False, True, True, True, True]


def test_times_a_double_cannot_resolve_to_a_microsecond_are_far_even_as_the_bulk() -> None:
    times = np.array([1e300, 2e300, 3e300, 1.7e18, T0])  # nanoseconds read as seconds too
    assert far_in_time(times, time_fences(times)).tolist() == [True, True, True, True, False]
    assert far_in_time(times[:3], time_fences(times[:3])).all()


def test_a_quarter_of_the_times_anywhere_does_not_move_the_fences_enough_to_keep_them() -> None:
    good = np.array(_arrivals(300))
    bad = np.full(99, 1e30)  # 99 of 399: just under a quarter
    times = np.concatenate([good, bad])
    far = far_in_time(times, time_fences(times))
    assert far.sum() == len(bad) and not far[: len(good)].any()


# -- traces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "poison"),
    [
        ("timestamp 1e40", lambda s: s[0].update(timestamp=1e40)),
        ("the year 2100", lambda s: s[0].update(timestamp=int(4_102_444_800 * 1e6))),
        ("an unset clock", lambda s: s[0].update(timestamp=0)),
        ("a duration of 1e40", lambda s: s[0].update(duration=1e40)),
        ("a 400-digit time", lambda s: s[0].update(timestamp=int("9" * 400))),
    ],
)
def test_a_zipkin_span_far_in_time_is_skipped_counted_and_the_rate_stays_5(
    tmp_path: Path, name: str, poison: Any
) -> None:
    spans = _zipkin(_arrivals())
    poison(spans)
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(spans))
    rate, report = _rate(path)
    assert report.skipped_nonfinite + report.skipped_outlier_time == 1, name
    assert _close(rate), f"{name}: {rate} req/s"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_jaeger_times_are_skipped_and_counted_apart(tmp_path: Path, value: str) -> None:
    doc = _jaeger(_arrivals())
    text = json.dumps(doc).replace('"startTime": 1700000000000000', f'"startTime": {value}', 1)
    assert value in text
    path = tmp_path / "jaeger.json"
    path.write_text(text)
    rate, report = _rate(path)
    assert report.skipped_nonfinite == 1 and report.skipped_outlier_time == 0
    assert _close(rate)


def test_otlp_spans_times_1e12_or_in_2100_are_skipped_and_the_rest_keep_their_rate(
    tmp_path: Path,
) -> None:
    good = _arrivals()
    lines = [_otlp_line(good[i : i + 50], i + 1) for i in range(0, len(good), 50)]
    bad = _otlp_line([T0, T0, 4_102_444_800.0], 10_000)
    spans = bad["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["startTimeUnixNano"] = str(int(spans[0]["startTimeUnixNano"]) * 10**12)
    spans[0]["endTimeUnixNano"] = str(int(spans[0]["endTimeUnixNano"]) * 10**12)
    spans[1]["endTimeUnixNano"] = "1" + "0" * 400  # does not fit a float
    path = tmp_path / "otlp.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [*lines, bad]) + "\n")
    rate, report = _rate(path)
    assert report.skipped_outlier_time == 2  # x1e12 and 2100
    assert report.skipped_nonfinite == 1  # the 400-digit end
    assert _close(rate)


def test_a_span_table_with_infinite_times_and_garbage_counts_each_apart(tmp_path: Path) -> None:
    rows = [
        {"TraceID": f"t{i}", "SpanID": f"s{i}", "ParentID": "root", "ServiceName": "front",
         "OperationName": "GET /", "StartTime": int(t * 1e6), "Duration": 20_000}
        for i, t in enumerate(_arrivals())
    ]  # fmt: skip
    rows[0]["StartTime"] = "inf"
    rows[1]["StartTime"] = "nan"
    rows[2]["StartTime"] = "soon"
    rows[3]["StartTime"] = int(4_102_444_800 * 1e6)
    path = tmp_path / "spans.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    rate, report = _rate(path)
    assert report.skipped_nonfinite == 2
    assert report.problems["malformed spans (skipped)"] == 1
    assert report.skipped_outlier_time == 1
    assert _close(rate)


def test_json_lines_are_streamed_and_never_read_as_one_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _arrivals()
    path = tmp_path / "otlp.jsonl"
    path.write_text(
        "\n".join(json.dumps(_otlp_line(good[i : i + 10], i + 1)) for i in range(0, 600, 10))
    )

    def whole_text(*_: Any) -> str:
        raise AssertionError("a JSON-lines file was read whole")

    monkeypatch.setattr(traces_module, "read_text", whole_text)
    monkeypatch.setattr(traces_module, "CHUNK_ROWS", 7)  # many small tables, one result
    df, report = read_traces([path])
    assert len(df) == 600 and report.spans == 600
    assert df["start"].is_monotonic_increasing


def test_a_span_table_read_in_chunks_equals_the_table_read_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.calibrate import table_format
    from twin.calibrate.mask import Masker
    from twin.calibrate.spans import ReadReport

    rows = [
        {"TraceID": f"t{i}", "SpanID": f"s{i}", "ParentID": "root" if i % 3 == 0 else f"s{i - 1}",
         "PodName": "front-579b9bff58-t2dbm", "OperationName": f"op{i % 4}",
         "StartTimeUnixNano": int(t * 1e9), "EndTimeUnixNano": int(t * 1e9) + 5_000_000}
        for i, t in enumerate(_arrivals(250))
    ]  # fmt: skip
    rows[100]["StartTimeUnixNano"] = "garbage"
    path = tmp_path / "spans.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    once, rep1 = list(_read_table(path, Masker(), r1 := ReadReport())), r1
    monkeypatch.setattr(table_format, "CHUNK_ROWS", 7)
    chunked = list(_read_table(path, Masker(), r2 := ReadReport()))
    assert chunked == once and len(once) == 249
    assert r2.problems == rep1.problems and r2.notes == rep1.notes


def test_a_number_too_long_to_read_is_an_unreadable_line_not_a_traceback(tmp_path: Path) -> None:
    good = _arrivals()
    lines = [json.dumps(_otlp_line(good[i : i + 50], i + 1)) for i in range(0, 600, 50)]
    lines.insert(3, '{"resourceSpans": ' + "7" * 5000 + "}")
    path = tmp_path / "otlp.jsonl"
    path.write_text("\n".join(lines))
    rate, report = _rate(path)
    assert report.problems["unreadable JSON lines"] == 1
    assert _close(rate)


# -- the command ------------------------------------------------------------------------------


def _calibrate(*args: str) -> Any:
    return CliRunner().invoke(app, ["calibrate", *args])


def test_twin_calibrate_gives_5_per_second_from_zipkin_with_a_1e40_timestamp_and_says_so(
    tmp_path: Path,
) -> None:
    spans = _zipkin(_arrivals())
    spans[0]["timestamp"] = 1e40
    spans[5]["timestamp"] = float("nan")
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(spans))
    out = tmp_path / "out"
    res = _calibrate("--traces", str(path), "--out", str(out), "--predict", "20")
    assert res.exit_code == 0, res.output
    summary = [ln for ln in res.output.splitlines() if ln.startswith("telemetry:")]
    assert len(summary) == 1
    assert "skipped 1 with a time that is not finite, 1 far in time" in summary[0]
    record = json.loads((out / "calibration.json").read_text())
    assert record["read"]["skipped_nonfinite"] == 1
    assert record["read"]["skipped_outlier_time"] == 1
    rate = next(r for r in record["comparison"] if r["scope"] == "entry front:get /")
    assert _close(rate["rate_observed"])
    assert "far in time" in (out / "report.md").read_text()


def test_traces_with_no_usable_time_exit_2_with_one_line_and_leave_no_output(
    tmp_path: Path,
) -> None:
    spans = _zipkin(_arrivals(20))
    for s in spans:
        s["timestamp"] = "NaN" if int(s["traceId"], 16) % 2 else "Infinity"
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(spans))
    out = tmp_path / "deep" / "out"
    res = _calibrate("--traces", str(path), "--out", str(out), "--predict", "0")
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert len(line.splitlines()) == 1 and line.startswith("twin: error: no usable spans")
    assert "40 with a time that is not finite" in line  # 20 requests, two spans each
    assert not (tmp_path / "deep").exists()  # the folders it made are gone again


def test_a_failed_calibration_leaves_an_existing_folder_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "topology.yaml").write_text("a good earlier result\n")
    spans = _zipkin(_arrivals(3))
    for s in spans:
        s["timestamp"] = 1_700_000_000_000_000  # every span at one instant, no duration
        s["duration"] = 0
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(spans))
    res = _calibrate("--traces", str(path), "--out", str(out), "--predict", "0")
    assert res.exit_code == 2, res.output
    assert "cover no time" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["topology.yaml"]
    assert (out / "topology.yaml").read_text() == "a good earlier result\n"


def test_a_prometheus_address_that_is_not_a_url_exits_2_with_one_line(tmp_path: Path) -> None:
    res = _calibrate("--prometheus", "not a url", "--out", str(tmp_path / "out"))
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "--prometheus" in res.output
    assert not (tmp_path / "out").exists()


# -- Prometheus metrics -----------------------------------------------------------------------


def _series(name: str, job: str, values: list[Any], **labels: str) -> dict[str, Any]:
    return {"metric": {"__name__": name, "job": job, **labels}, "values": values}


def _counter(rate: float, n: int = 41, step: float = 15.0) -> list[list[Any]]:
    return [[T0 + i * step, str(rate * i * step)] for i in range(n)]


def _dump(requests: list[list[Any]]) -> dict[str, Any]:
    return {
        "http_server_request_duration_seconds_count": [
            _series("http_server_request_duration_seconds_count", "api", requests)
        ],
        "process_cpu_seconds_total": [
            _series("process_cpu_seconds_total", "api", _counter(0.5)),
            _series("process_cpu_seconds_total", "", _counter(0.1)),  # no service label
        ],
    }


def test_prometheus_nan_inf_garbage_short_pairs_and_far_times_are_skipped_per_point() -> None:
    clean = summarize(_dump(_counter(RATE)))["api"]
    assert _close(clean.rate)
    hostile: list[Any] = _counter(RATE)
    hostile[3][1] = "NaN"  # what Prometheus returns for 0/0
    hostile[7][1] = "+Inf"
    hostile[9][1] = "-Inf"
    hostile[12][1] = "many"
    hostile[15] = [hostile[15][0]]  # a short pair
    hostile[20] = "oops"
    hostile.append([1e300, "1e9"])  # a time no scrape can have
    report = MetricsReport(source="dump.json")
    got = summarize(_dump(hostile), report=report)["api"]
    assert report.skipped_nonfinite == 3
    assert report.skipped_unreadable == 3
    assert report.skipped_outlier_time == 1
    assert report.series_unmapped == 1
    assert report.points == 42 + 2 * 41 and report.used == 42 + 2 * 41 - 7
    assert got.window == clean.window  # first and last good points, not 1e300
    assert _close(got.rate) and got.requests == pytest.approx(clean.requests)


def test_a_metrics_dump_with_nothing_usable_exits_2_naming_the_file_and_series(
    tmp_path: Path,
) -> None:
    values = [[T0 + 15 * i, v] for i, v in enumerate(["NaN", "+Inf", "x"])] + [[1e300, "1"]]
    path = tmp_path / "dump.json"
    path.write_text(
        json.dumps({"req": [_series("http_server_request_duration_seconds_count", "api", values)]})
    )
    out = tmp_path / "out"
    res = _calibrate("--metrics", str(path), "--out", str(out), "--predict", "0")
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert len(line.splitlines()) == 1
    assert str(path) in line and 'http_server_request_duration_seconds_count{job="api"}' in line
    assert not out.exists()


def test_a_garbage_metrics_document_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    for doc in ({"status": "success", "data": []}, [{"metric": ["job"]}], {"x": 5}):
        path.write_text(json.dumps(doc))
        with pytest.raises(InputError, match=r"expected query_range results"):
            load_dump(path)


def test_a_time_range_needing_too_many_queries_is_refused_before_any_query() -> None:
    with pytest.raises(InputError, match="queries"):
        split_range(0.0, 1e300, 15.0)
    n = len(split_range(T0, T0 + (MAX_QUERIES - 1) * 11_000 * 15.0, 15.0))
    assert n == MAX_QUERIES  # the largest range allowed is still split, not refused
    for bad in ("inf", "nan", "-inf"):
        with pytest.raises(InputError, match="not a time"):
            parse_time(bad)
    assert math.isfinite(parse_time("2026-01-01T00:00:00Z") or math.nan)


def test_silences_longer_than_an_hour_are_not_observation_time_of_a_busy_capture() -> None:
    a = np.array(_arrivals(600))
    b = a + SILENCE_FLOOR_SECONDS + SECONDS + 60  # after a silence just over the floor
    w = observed_window(np.concatenate([a, b]), np.concatenate([a, b]) + 0.02)
    assert w.stretches == 2 and w.seconds == pytest.approx(2 * (a[-1] + 0.02 - a[0]))


def test_a_calibration_stopped_by_sigterm_leaves_no_folder_behind(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from conftest import child_env

    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(_zipkin(_arrivals())))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "calibrate", "--traces", str(path),
         "--out", str(out), "--predict", "50000"],
        env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".calibrating-*/topology.yaml")):  # simulating by now
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the calibration never reached its check run"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not out.exists()


def test_spans_without_a_service_name_are_kept_as_unknown_and_counted(tmp_path: Path) -> None:
    spans = _zipkin(_arrivals(10))
    for s in spans[:3]:
        del s["localEndpoint"]
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(spans))
    df, report = read_traces([path])
    assert report.problems["spans without a service name (kept as unknown-service)"] == 3
    assert (df["service"] == "unknown-service").sum() == 3 and len(df) == len(spans)


_WRONG_SHAPES = {
    "otlp-resource-spans-a-number": {"resourceSpans": 3.5},
    "otlp-resource-a-list-scopes-a-number": {"resourceSpans": [{"resource": [1], "scopeSpans": 5}]},
    "otlp-spans-a-number": {"resourceSpans": [{"scopeSpans": [{"spans": 7}]}]},
    "otlp-scope-a-number": {"resourceSpans": [{"scopeSpans": [3]}]},
    "jaeger-data-a-number": {"data": 2.0},
    "jaeger-spans-a-number": {"data": [{"traceID": "1", "spans": -37854.76}]},
    "jaeger-processes-a-list": {
        "data": [{"traceID": "1", "spans": [{"spanID": "2"}], "processes": [1]}]
    },
}


@pytest.mark.parametrize("doc", _WRONG_SHAPES.values(), ids=list(_WRONG_SHAPES))
def test_a_trace_file_of_the_wrong_shape_is_refused_or_counted_never_a_crash(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(doc))
    try:
        spans, report = read_traces([path])
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert spans.empty
    assert sum(report.problems.values()) >= 1
