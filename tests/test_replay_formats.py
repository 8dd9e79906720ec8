"""The replay's format adapters find their files by pattern and map what they can: a Nezha
fault list with a type nobody knows and a PetShop issue reproduced by something other than a
parameter are listed as unmapped, and the rest replays (folders built here, not real data)."""

from __future__ import annotations

import json
from pathlib import Path

from small_system import front_back

from twin.calibrate.petshop import build_topology, node_table, read_adjacency, read_node_metrics
from twin.io import parse_model
from twin.replay import ReplayConfig, replay
from twin.topology import Topology

T0 = 1_700_000_000
FAST = {"block_seconds": 600.0, "min_block_seconds": 300.0, "twin_seconds": 120.0, "seeds": 1}


def pair() -> Topology:
    return front_back(rate=5.0, back={"dist": "exponential", "mean": 0.02})


def nezha_day(
    folder: Path, faults: list[tuple[int, str, str]], cpu: tuple[float, float] = (10.0, 10.0)
) -> Path:
    """A day of Nezha's layout: the front end's SLI table, one pod table (CPU use ``cpu[0]``
    % of its limit, ``cpu[1]`` % in a fault's minutes) and the fault list."""
    folder.mkdir(parents=True)
    sli = [
        "Time,TimeStamp,ServiceName,SuccessRate(%),LatencyP50(s),LatencyP90(s),"
        "LatencyP95(s),LatencyP99(s)"
    ]
    pod = ["Time,TimeStamp,PodName,PodWorkload(Ops),CpuUsageRate(%)"]
    for i in range(60):
        t = T0 + 60 * (i + 1)
        slow = any(s <= t - 60 < s + 180 for s, _, _ in faults)
        p50 = 0.2 if slow else 0.03
        sli.append(f"x,{t},Frontend,100,{p50},{p50 * 2},{p50 * 2.5},{p50 * 3}")
        pod.append(f"x,{t},front-5f6585d649-fnmft,5.0,{cpu[1] if slow else cpu[0]:g}")
    (folder / "front_service.csv").write_text("\n".join(sli) + "\n")
    (folder / "front-5f6585d649-fnmft_metric.csv").write_text("\n".join(pod) + "\n")
    doc = {
        "10": [
            {
                "inject_time": "2000-01-01 10:00:00",
                "inject_timestamp": str(s),
                "inject_pod": pod_name,
                "inject_type": kind,
            }
            for s, pod_name, kind in faults
        ]
    }
    (folder / "day-fault_list.json").write_text(json.dumps(doc))
    return folder


def test_nezha_types_nobody_knows_are_unmapped_and_the_rest_replays(tmp_path: Path) -> None:
    faults = [
        (T0 + 1200, "back-7b598fc7d-lmggd", "network_delay"),
        (T0 + 1800, "back-7b598fc7d-lmggd", "disk_melt"),
        (T0 + 2400, "back-7b598fc7d-lmggd", "network_delay"),
        (T0 + 3000, "front-5f6585d649-fnmft", "return"),
    ]
    data = nezha_day(tmp_path / "day", faults)
    res = replay(pair(), data, "nezha", tmp_path / "out", ReplayConfig(fit="first", **FAST))
    roles = {r["type"] + "@" + str(int(r["start"] - T0)): r["role"] for r in res["faults"]}
    assert roles == {
        "network_delay@1200": "fit",
        "disk_melt@1800": "unmapped",
        "network_delay@2400": "held out",
        "return@3000": "unmapped",
    }
    reasons = " ".join(u["reason"] for u in res["unmapped"])
    assert "disk_melt" in reasons and "entry service front" in reasons
    assert res["n_held_out"] == 1 and res["held_out"]["p50"]["mean"] is not None
    assert res["fault_free"]["n_blocks"] >= 1


def petshop_capture(path: Path, start: int, rows: int, front_ms: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [
        (n, m, s)
        for n in ("Front", "Back::Db")
        for m, s in (
            ("latency", "Average"),
            ("latency", "p50"),
            ("latency", "p99"),
            ("requests", "Sum"),
            ("availability", "Average"),
        )
    ]
    lines = [
        ",".join(["microservice", *(c[0] for c in cols)]),
        ",".join(["metric", *(c[1] for c in cols)]),
        ",".join(["statistic", *(c[2] for c in cols)]),
        "unix_timestamp" + "," * len(cols),
    ]
    for i in range(rows):
        vals = []
        for n, m, s in cols:
            base = front_ms / 1000 if n == "Front" else 0.01
            vals.append(
                {
                    ("latency", "Average"): base,
                    ("latency", "p50"): base * 0.8,
                    ("latency", "p99"): base * 3,
                    ("requests", "Sum"): 600.0,
                    ("availability", "Average"): 100.0,
                }[(m, s)]
            )
        lines.append(",".join([str(start + 300 * i), *(f"{v:g}" for v in vals)]))
    path.write_text("\n".join(lines) + "\n")


def test_a_petshop_issue_not_reproduced_by_a_parameter_is_unmapped(tmp_path: Path) -> None:
    root = tmp_path / "petshop"
    level = root / "low"
    level.mkdir(parents=True)
    (level / "graph.csv").write_text(",Front,Back::Db\nFront,0,1\nBack::Db,0,0\n")
    petshop_capture(level / "noissue" / "metrics.csv", T0, 24, 30.0)
    issues = {
        "issue_0": ("kubectl delete pod back-0", T0 + 100_000),
        "issue_1": (
            "aws ssm put-parameter --name '/x/searchdelay' --value '500' --overwrite",
            T0 + 200_000,
        ),
    }
    for name, (cmd, ts) in issues.items():
        d = level / "train" / name
        petshop_capture(d / "metrics.csv", ts - 600, 8, 60.0)
        (d / "target.json").write_text(
            json.dumps(
                {
                    "target": {"node": "Front", "metric": "latency", "timestamp": ts},
                    "root_cause": {"node": "Back::Db"},
                    "metadata": {"reproducibility": {"command": cmd}},
                }
            )
        )
    nodes = node_table(read_node_metrics(level / "noissue" / "metrics.csv"))
    doc, _ = build_topology(nodes, read_adjacency(level / "graph.csv")[1])
    topo = parse_model(Topology, doc)
    res = replay(topo, root, "petshop", tmp_path / "out", ReplayConfig(seeds=1, twin_seconds=600.0))
    assert res["observed"] == "Front"
    assert [u["fault"] for u in res["unmapped"]] == [
        "low/train/issue_0 command: kubectl delete pod"
    ]
    assert "kubectl" in res["unmapped"][0]["reason"]
    held = [r for r in res["faults"] if r["role"] == "held out"]
    assert [r["type"] for r in held] == ["searchdelay"]
    seg = res["fault_free"]["segments"]["low/noissue"]["services"]
    assert seg["mean"]["n"] == 2 and seg["mean"]["mean"] > 0.8  # in-sample rebuild
