"""Readers of the Nezha and PetShop layouts, checked on the real published files (skipped
when ../shared/data is absent) against the files' own raw contents, and on broken copies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from twin.calibrate.nezha import (
    fault_minutes,
    read_fault_list,
    read_front_sli,
    read_pod_metrics,
)
from twin.calibrate.petshop import node_table, read_adjacency, read_node_metrics
from twin.errors import InputError

DATA = SHARED_DATA
NEZHA = DATA / "nezha-ob"
PETSHOP = DATA / "petshop" / "low_traffic"
needs_nezha = pytest.mark.skipif(not NEZHA.exists(), reason=f"the public dataset {NEZHA} is absent")
needs_petshop = pytest.mark.skipif(
    not PETSHOP.exists(), reason=f"the public dataset {PETSHOP} is absent"
)


@needs_nezha
def test_fault_list_holds_every_listed_fault_in_time_order_with_service_names() -> None:
    raw = json.loads((NEZHA / "2022-08-22-fault_list.json").read_text())
    listed = [f for hour in raw.values() for f in hour]
    faults = read_fault_list(NEZHA / "2022-08-22-fault_list.json")
    assert len(faults) == len(listed)
    assert [f.timestamp for f in faults] == sorted(float(f["inject_timestamp"]) for f in listed)
    for f in faults:
        assert f.pod.startswith(f.service + "-")  # both replica-set suffixes stripped
        assert f.service.count("-") == 0


@needs_nezha
def test_front_sli_is_per_minute_and_pods_off_the_front_end_clock_are_left_out_and_said() -> None:
    sli = read_front_sli(NEZHA / "front_service.csv")
    with open(NEZHA / "front_service.csv", newline="") as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    assert len(sli) == n_rows
    assert sli["t"].diff().dropna().between(59, 61).all()
    assert sli["success"].between(0, 1).all()
    pods, problems = read_pod_metrics(NEZHA, (float(sli["t"].min()), float(sli["t"].max())))
    files = sorted(NEZHA.glob("*_metric.csv"))
    assert len(pods) + len(problems) == len(files)
    for df in pods.values():  # every kept pod overlaps the front end's clock
        assert df["t"].max() >= sli["t"].min() and df["t"].min() <= sli["t"].max()
    for p in problems:
        assert "does not overlap" in p


def test_fault_minutes_keep_the_minutes_that_overlap_the_fault_enough() -> None:
    import pandas as pd

    sli = pd.DataFrame({"t": [100.0, 160.0, 220.0, 280.0, 340.0]})
    # fault [110, 290): minutes ending at 160 (overlap 50), 220 (60), 280 (60), 340 (10)
    got = fault_minutes(sli, 110.0, 180.0, min_overlap=40.0)
    assert got["t"].tolist() == [160.0, 220.0, 280.0]


def test_a_broken_fault_list_names_the_file_and_the_entry(tmp_path: Path) -> None:
    p = tmp_path / "faults.json"
    p.write_text(json.dumps({"03": [{"inject_pod": "a-1-2", "inject_type": "x"}]}))
    with pytest.raises(InputError, match=r"faults\.json: 03\[0\]: needs inject_timestamp"):
        read_fault_list(p)


@needs_petshop
def test_petshop_metrics_have_one_row_per_period_node_metric_and_statistic() -> None:
    path = PETSHOP / "noissue" / "metrics.csv"
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    nodes, metrics, stats = rows[0], rows[1], rows[2]
    body = rows[4:]  # row 4 is the unix_timestamp label row
    non_empty = sum(1 for r in body for v in r[1:] if v.strip() != "")
    tidy = read_node_metrics(path)
    assert len(tidy) == non_empty
    assert set(tidy["node"]) <= set(nodes[1:])
    assert set(tidy["metric"]) <= set(metrics[1:])
    assert set(tidy["statistic"]) <= set(stats[1:])
    assert tidy["t"].nunique() == len(body)
    table = node_table(tidy)
    assert {"latency_Average", "latency_p99", "requests_Sum"} <= set(table.columns)


@needs_petshop
def test_petshop_graph_edges_are_exactly_the_ones_in_the_matrix() -> None:
    with open(PETSHOP / "graph.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    labels = rows[0][1:]
    expected = {
        (r[0], labels[j])
        for r in rows[1:]
        for j, v in enumerate(r[1:])
        if float(v) > 0 and r[0] != labels[j]
    }
    nodes, edges = read_adjacency(PETSHOP / "graph.csv")
    assert nodes == labels
    assert set(edges) == expected


def test_a_non_square_adjacency_matrix_is_refused_in_one_line(tmp_path: Path) -> None:
    p = tmp_path / "graph.csv"
    p.write_text(",a,b\na,0,1\nc,0,0\n")
    with pytest.raises(InputError, match=r"graph\.csv: row and column labels differ"):
        read_adjacency(p)


def test_a_metrics_file_without_the_timestamp_row_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text("microservice,a\nmetric,latency\nstatistic,Average\n123,0.5\n423,0.4\n")
    with pytest.raises(InputError, match="expected 'unix_timestamp'"):
        read_node_metrics(p)
