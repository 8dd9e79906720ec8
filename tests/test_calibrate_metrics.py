"""Metric ingestion: counters, cumulative buckets, range splitting, dumps, utilisation law."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import SHARED_DATA

from twin.calibrate.metrics import (
    MAX_POINTS,
    PrometheusClient,
    histogram_quantile,
    increase,
    load_dump,
    parse_time,
    split_range,
    summarize,
    up_fraction,
)
from twin.errors import InputError

UP = SHARED_DATA / "metrics" / "prometheus-up-201907281200.json"


def test_counter_drop_is_a_restart_not_negative_traffic() -> None:
    assert increase([(0, 10), (1, 15), (2, 3), (3, 8)]) == 5 + 3 + 5


def test_histogram_quantile_interpolates_cumulative_le_buckets() -> None:
    b = [(0.1, 10.0), (0.5, 50.0), (float("inf"), 60.0)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.3)
    assert histogram_quantile(0.99, b) == 0.5  # in +Inf: the highest finite bound


def test_long_ranges_are_split_under_the_point_limit() -> None:
    parts = split_range(0, 100_000, 1.0)
    assert all((b - a) / 1.0 + 1 <= MAX_POINTS for a, b in parts)
    assert parts[0][0] == 0 and parts[-1][1] == 100_000
    assert all(b2 > b1 for (_, b1), (b2, _) in itertools.pairwise(parts))


def test_times_accept_unix_and_iso() -> None:
    assert parse_time("1700000000") == 1.7e9
    assert parse_time("2023-11-14T22:13:20Z") == 1.7e9
    with pytest.raises(InputError):
        parse_time("yesterday")


def _series(name, labels, values):
    return {"metric": {"__name__": name, **labels}, "values": [[t, str(v)] for t, v in values]}


def _dump():
    job = {"job": "api", "instance": "127.0.0.1:1"}
    ts = [0, 10, 20, 30, 40, 50, 60]
    return {
        "http_server_request_duration_seconds_count": [
            _series(
                "http_server_request_duration_seconds_count",
                {**job, "http_response_status_code": "200"},
                [(t, t * 9) for t in ts],
            ),
            _series(
                "http_server_request_duration_seconds_count",
                {**job, "http_response_status_code": "500"},
                [(t, t) for t in ts],
            ),
        ],
        "http_server_request_duration_seconds_sum": [
            _series(
                "http_server_request_duration_seconds_sum", job, [(t, t * 10 * 0.02) for t in ts]
            )
        ],
        "http_server_request_duration_seconds_bucket": [
            _series(
                "http_server_request_duration_seconds_bucket",
                {**job, "le": le},
                [(t, t * 10 * f) for t in ts],
            )
            for le, f in (("0.01", 0.2), ("0.05", 0.9), ("+Inf", 1.0))
        ],
        "process_cpu_seconds_total": [
            _series("process_cpu_seconds_total", job, [(t, t * 0.15) for t in ts])
        ],
        "up": [_series("up", job, [(t, 1) for t in ts])],
    }


def test_summary_gives_rate_latency_errors_and_utilisation_law_demand() -> None:
    m = summarize(_dump())["api"]
    assert m.rate == pytest.approx(10.0) and m.error_rate == pytest.approx(0.1)
    assert m.mean == pytest.approx(0.02)
    assert 0.01 < m.p50 < 0.05 and m.p99 == 0.05
    assert m.utilization == pytest.approx(0.15) and m.demand == pytest.approx(0.015)
    assert m.replicas == 1


def test_an_error_counter_born_mid_window_counts_its_first_failures() -> None:
    # the 500 series is created by the first failures: three of them by its first sample
    # at 30 s, one more every 10 s after; the 200 series has 9 per second all along
    dump = _dump()
    job = {"job": "api", "instance": "127.0.0.1:1", "http_response_status_code": "500"}
    late = [(t, t // 10) for t in (30, 40, 50, 60)]
    dump["http_server_request_duration_seconds_count"][1] = _series(
        "http_server_request_duration_seconds_count", job, late
    )
    m = summarize(dump)["api"]
    assert m.requests == pytest.approx(540 + 6)
    assert m.error_rate == pytest.approx(6 / 546)


def test_a_new_replica_is_not_taken_for_born_counters() -> None:
    # a second instance first scraped at 30 s: what it counted before is unknown, so its
    # first sample is a starting point, not an increase
    dump = _dump()
    job = {"job": "api", "instance": "127.0.0.1:2", "http_response_status_code": "200"}
    dump["http_server_request_duration_seconds_count"].append(
        _series("http_server_request_duration_seconds_count", job, [(30, 1000), (60, 1300)])
    )
    m = summarize(dump)["api"]
    assert m.requests == pytest.approx(600 + 300)


def test_dump_on_disk_gives_the_same_figures(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text(
        json.dumps(
            {
                k: {"status": "success", "data": {"resultType": "matrix", "result": v}}
                for k, v in _dump().items()
            }
        )
    )
    assert summarize(load_dump(p))["api"] == summarize(_dump())["api"]


@pytest.mark.skipif(not UP.exists(), reason=f"the public dataset {UP} is absent")
def test_real_prometheus_up_dump_gives_availability_per_job() -> None:
    frac = up_fraction(load_dump(UP))
    assert len(frac) >= 5 and all(0 <= v <= 1 for v in frac.values())
    assert min(frac.values()) < 1.0  # the dump has real down samples


def test_live_query_range_is_split_and_stitched() -> None:
    calls = []

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            q = parse_qs(urlparse(self.path).query)
            a, b, step = float(q["start"][0]), float(q["end"][0]), float(q["step"][0])
            calls.append((a, b))
            n = int((b - a) / step) + 1
            body = {
                "status": "success",
                "data": {
                    "resultType": "matrix",
                    "result": [
                        {
                            "metric": {"__name__": "up", "job": "x"},
                            "values": [[a + i * step, "1"] for i in range(n)],
                        }
                    ],
                },
            }
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        c = PrometheusClient(f"http://127.0.0.1:{srv.server_port}", timeout=5)
        series = c.query_range("up", 0, 25_000, 1.0)
    finally:
        srv.shutdown()
        srv.server_close()
    assert len(calls) == 3
    assert len(series) == 1 and len(series[0]["values"]) == 25_001


def test_unreachable_prometheus_is_an_input_error() -> None:
    with pytest.raises(InputError, match="cannot query Prometheus"):
        PrometheusClient("http://127.0.0.1:9", timeout=2).query_range("up", 0, 10, 1)


def test_calibrate_from_a_metrics_dump_alone_uses_the_utilisation_law(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twin.cli import app
    from twin.topology import Topology

    p = tmp_path / "m.json"
    p.write_text(json.dumps(_dump()))
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app, ["calibrate", "--metrics", str(p), "--out", str(out), "--predict", "20"]
    )
    assert r.exit_code == 0, r.output
    topo = Topology.load(out / "topology.yaml")
    assert topo.services["api"].operations["default"].service_time.expected() == pytest.approx(
        0.015
    )
    assert topo.workload[0].rate == pytest.approx(10.0)


@pytest.mark.skipif(not UP.exists(), reason=f"the public dataset {UP} is absent")
def test_metrics_without_request_series_say_so_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    r = CliRunner().invoke(app, ["calibrate", "--metrics", str(UP), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "no request or CPU series" in r.output
