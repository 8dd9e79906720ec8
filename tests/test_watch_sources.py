"""Replay sources: files found by pattern and header (a renamed folder and renamed tables
replay the same), PetShop's layout walked up from an issue folder, metrics a format does
not map counted rather than crashing, Prometheus dumps windowed with calibration's own
arithmetic, and OTLP metric batches turned into the series the exporter would write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA, needs_shared_data

from twin.calibrate import nezha
from twin.calibrate.metrics import MetricMap
from twin.errors import InputError
from twin.predict import sources as src

POD_HEADER = (
    "Time,TimeStamp,PodName,CpuUsage(m),CpuUsageRate(%),MemoryUsage(Mi),MemoryUsageRate(%),"
    "PodServerLatencyP99(s),PodWorkload(Ops),PodSuccessRate(%),SomethingNew"
)


def _nezha_like(folder: Path, minutes: int = 10) -> None:
    folder.mkdir(parents=True)
    t0 = 1_700_000_000
    sli = [
        "Time,TimeStamp,ServiceName,SuccessRate(%),LatencyP50(s),LatencyP90(s),LatencyP95(s),LatencyP99(s)"
    ]
    for i in range(minutes):
        sli.append(f"x,{t0 + 60 * i},Frontend,100,0.1,0.2,0.3,{0.5 + i / 100}")
    (folder / "what-users-saw.csv").write_text("\n".join(sli) + "\n")
    for pod, rate in (("web-7d9f8b6c5-abcde", 9.0), ("db-5f6d7c8b9-fghij", 30.0)):
        rows = [POD_HEADER]
        for i in range(minutes):  # pod clocks a few seconds off the SLI table's
            rows.append(f"x,{t0 + 60 * i + 3},{pod},1,{20 + i},10,30,0.05,{rate},100,7")
        (folder / f"{pod}_metric.csv").write_text("\n".join(rows) + "\n")


def test_nezha_layout_is_found_by_pattern_in_a_renamed_folder(tmp_path: Path) -> None:
    _nezha_like(tmp_path / "another-day-renamed")
    rec = src.replay(tmp_path / "another-day-renamed", "nezha")
    assert len(rec.items) == 10
    w = rec.items[4]
    assert set(w.services) == {"web", "db"}  # pod names reduced to services
    assert w.services["web"][src.CPU] == pytest.approx(0.24)
    assert w.services["db"][src.RATE] == 30.0
    assert w.entry is not None and w.entry.p99 == pytest.approx(0.54)
    # columns the format does not map are counted, once per pod file
    assert rec.report.unmapped["SomethingNew"] == 2
    assert rec.report.unmapped["CpuUsage(m)"] == 2


def test_nezha_own_day_layout_with_tables_under_metric_replays_as_the_flat_folder(
    tmp_path: Path,
) -> None:
    day = tmp_path / "2031-01-01"
    _nezha_like(day / "metric")
    (day / "2031-01-01-fault_list.json").write_text(
        json.dumps(
            {
                "9": [
                    {
                        "inject_timestamp": "1700000100",
                        "inject_pod": "db-5f6d7c8b9-fghij",
                        "inject_type": "cpu_contention",
                    }
                ]
            }
        )
    )
    _nezha_like(tmp_path / "flat")
    flat, nested = src.replay(tmp_path / "flat", "nezha"), src.replay(day, "nezha")
    assert [w.time for w in nested.items] == [w.time for w in flat.items]
    assert [w.services for w in nested.items] == [w.services for w in flat.items]
    assert [w.entry for w in nested.items] == [w.entry for w in flat.items]
    assert nezha.read_day(day).faults[0].service == "db"


def test_a_replaced_pod_is_read_as_one_service_not_one_in_place_of_the_other(
    tmp_path: Path,
) -> None:
    _nezha_like(tmp_path / "d")
    old = tmp_path / "d" / "db-5f6d7c8b9-fghij_metric.csv"
    head, *rows = old.read_text().splitlines()
    old.write_text("\n".join([head, *rows[:6]]) + "\n")  # minutes 0-5
    new = [r.replace("db-5f6d7c8b9-fghij", "db-5f6d7c8b9-zzzzz") for r in rows[5:]]
    (tmp_path / "d" / "db-5f6d7c8b9-zzzzz_metric.csv").write_text(
        "\n".join([head, *new]) + "\n"  # minutes 5-9: minute 5 served by both
    )
    items = src.replay(tmp_path / "d", "nezha").items
    assert [w.services["db"][src.RATE] for w in items] == [30.0] * 5 + [60.0] + [30.0] * 4
    assert items[5].services["db"][src.CPU] == pytest.approx(0.25)  # a share: the mean
    assert items[9].services["db"][src.CPU] == pytest.approx(0.29)  # the new pod's own


def test_nezha_folder_holding_two_days_is_refused_in_one_line(tmp_path: Path) -> None:
    for d in ("a", "b"):
        _nezha_like(tmp_path / "days" / d)
        (tmp_path / "days" / d / f"{d}-fault_list.json").write_text("{}")
    with pytest.raises(InputError, match=r"more than one fault list .*one day's folder"):
        src.replay(tmp_path / "days", "nezha")


def test_nezha_without_an_sli_table_is_one_line(tmp_path: Path) -> None:
    _nezha_like(tmp_path / "d")
    (tmp_path / "d" / "what-users-saw.csv").unlink()
    with pytest.raises(InputError, match="no SLI table"):
        src.replay(tmp_path / "d", "nezha")


@needs_shared_data
def test_petshop_issue_folder_finds_graph_and_noissue_in_its_parents() -> None:
    issue = SHARED_DATA / "petshop" / "low_traffic" / "train" / "issue_1"
    rec = src.replay(issue, "petshop")
    names = [Path(f).parts[-2:] for f in rec.report.files]
    assert ("low_traffic", "graph.csv") in names and ("noissue", "metrics.csv") in names
    base = [w for w in rec.items if w.baseline]
    issue_w = [w for w in rec.items if not w.baseline]
    assert base and issue_w
    times = [w.time for w in rec.items]
    assert times == sorted(times)  # the normal period re-timed before the issue
    assert "PetSite" in issue_w[0].services
    assert src.P99 in issue_w[0].services["PetSite"]


def _dump() -> dict[str, object]:
    def series(name: str, job: str, per_s: float, **labels: str) -> dict[str, object]:
        return {
            "metric": {"__name__": name, "job": job, **labels},
            "values": [[1000.0 + 15 * i, str(per_s * 15 * i)] for i in range(41)],
        }

    return {
        "http_server_request_duration_seconds_count": [
            series(
                "http_server_request_duration_seconds_count",
                "api",
                4.0,
                http_response_status_code="200",
            ),
            series(
                "http_server_request_duration_seconds_count",
                "api",
                1.0,
                http_response_status_code="500",
            ),
        ],
        "process_cpu_seconds_total": [series("process_cpu_seconds_total", "api", 0.25)],
        "mystery_total": [series("mystery_total", "api", 1.0)],
    }


def test_prometheus_dump_windows_use_calibrations_arithmetic(tmp_path: Path) -> None:
    (tmp_path / "capture.json").write_text(json.dumps(_dump()))
    rec = src.replay(tmp_path, "prometheus-dump", window=60.0)
    assert len(rec.items) == 10  # 600 s of points in 60 s windows
    api = rec.items[3].services["api"]
    assert api[src.RATE] == pytest.approx(5.0)
    assert api[src.SUCCESS] == pytest.approx(0.8)
    assert api[src.CPU] == pytest.approx(0.25)
    assert rec.report.unmapped  # the mystery series is counted, not a crash


def test_generic_long_tables_bin_into_windows(tmp_path: Path) -> None:
    rows = ["timestamp,service,metric,value"]
    for i in range(6):
        rows += [
            f"{60 * i},api-6d8f9c7b5-x1y2z,latency_p99,0.2",
            f"{60 * i},api-6d8f9c7b5-x1y2z,rate,5",
        ]
    rows.append("oops,api,rate,1")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    rec = src.replay(tmp_path, "generic")
    assert len(rec.items) == 6
    assert rec.items[0].services["api"] == {"latency_p99": 0.2, "rate": 5.0}
    assert any("skipped" in p for p in rec.report.problems)


def test_otlp_histograms_become_cumulative_prometheus_buckets() -> None:
    doc = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "http.server.request.duration",
                                "unit": "s",
                                "histogram": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [
                                        {
                                            "timeUnixNano": str(int(t * 1e9)),
                                            "count": str(n),
                                            "sum": n * 0.05,
                                            "explicitBounds": [0.1, 1.0],
                                            "bucketCounts": [str(n - 2 * k), str(k), str(k)],
                                        }
                                        for k, (t, n) in enumerate([(0, 0), (60, 100), (120, 200)])
                                    ],
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }
    dump = src.otlp_to_dump([doc], MetricMap())
    buckets = dump["http_server_request_duration_seconds_bucket"]
    inf = next(s for s in buckets if s["metric"]["le"] == "+Inf")  # type: ignore[index]
    assert [v for _, v in inf["values"]] == [0.0, 100.0, 200.0]  # type: ignore[index]
    rep = src.SourceReport()
    windows = src.dump_windows(dump, MetricMap(), rep, window=60.0)
    assert windows[0].services["api"][src.RATE] == pytest.approx(100 / 60)


def test_unknown_format_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--format"):
        src.replay(tmp_path, "csv")
