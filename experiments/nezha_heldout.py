"""Online Boutique (Nezha, 2022-08-22): calibrate from one traced minute, predict other hours.

    python experiments/nezha_heldout.py --data DATA [--out DIR]

The twin is calibrated by ``twin calibrate`` from the only traced minute in the data
(03:53, ~23k spans). The held-out data are the fault-free hours after 07:57: for each
30-minute block the twin runs at that block's front-end load (the front-end pod's
``PodWorkload(Ops)``, as a multiplier of the calibrated entry rate) and its front-end P50,
P99 and success rate are compared with the medians of the measured per-minute SLIs
(``front_service.csv``). Accuracy = 1 - |twin - measured| / measured.

The fault replay (the 24 faults of the day) is ``experiments/nezha_replay.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.calibrate import accuracy as acc

ROOT = Path(__file__).resolve().parents[1]

QUIET_FROM = pd.Timestamp("2022-08-22 07:57")
BLOCK = "30min"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data", type=Path, required=True, help="the public datasets folder (holding nezha-ob/)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "nezha-heldout")
    ap.add_argument("--seconds", type=float, default=600.0, help="simulated seconds per block")
    ap.add_argument("--network", choices=["floor", "full"], default="floor")
    a = ap.parse_args()
    from twin.calibrate import CalibrationConfig, run_calibration
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation
    from twin.topology import Topology

    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    spans = a.data / "traces" / "nezha-ob-2022-08-22-0353-spans.csv"
    ob = a.data / "nezha-ob"
    run_calibration(
        CalibrationConfig(
            traces=(spans,),
            out=out / "calibration",
            name="online-boutique",
            predict_seconds=0,
            network=a.network,
        )
    )
    topo = Topology.load(out / "calibration" / "topology.yaml")
    cal_rate = sum(w.rate for w in topo.workload)

    front = pd.read_csv(ob / "front_service.csv")
    front["t"] = pd.to_datetime(front["TimeStamp"], unit="s")
    pod = next(ob.glob("frontend-*_metric.csv"))
    load = pd.read_csv(pod)
    load["t"] = pd.to_datetime(load["TimeStamp"], unit="s")
    df = pd.merge_asof(
        front.sort_values("t"),
        load[["t", "PodWorkload(Ops)"]].sort_values("t"),
        on="t",
        direction="nearest",
        tolerance=pd.Timedelta("30s"),
    )
    df = df[df["t"] >= QUIET_FROM].dropna(subset=["PodWorkload(Ops)"])
    rows: list[dict[str, Any]] = []
    for block, g in df.groupby(df["t"].dt.floor(BLOCK)):
        if len(g) < 10:
            continue
        rate = float(g["PodWorkload(Ops)"].mean())
        sc = parse_model(
            Scenario,
            {
                "duration": a.seconds + 60,
                "warmup": 60,
                "seed": 1,
                "load": {"multiplier": rate / cal_rate},
            },
        )
        s = Simulation(topo, sc).run().summary
        meas = {
            "p50": float(g["LatencyP50(s)"].median()),
            "p99": float(g["LatencyP99(s)"].median()),
            "success": float(g["SuccessRate(%)"].median()) / 100,
        }
        twin = {
            "p50": float("nan") if s.latency.p50 is None else float(s.latency.p50),
            "p99": float("nan") if s.latency.p99 is None else float(s.latency.p99),
            "success": s.succeeded / s.requests if s.requests else float("nan"),
        }
        rows.append(
            {
                "block": str(block),
                "minutes": len(g),
                "front_rate": rate,
                "measured": meas,
                "twin": twin,
                "accuracy": {k: acc(twin[k], meas[k]) for k in ("p50", "p99")},
                "success_diff_pp": 100 * (twin["success"] - meas["success"]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    summary = {
        "blocks": len(rows),
        "p50_accuracy_avg": float(np.mean([r["accuracy"]["p50"] for r in rows])),
        "p99_accuracy_avg": float(np.mean([r["accuracy"]["p99"] for r in rows])),
        "success_max_abs_diff_pp": float(np.max([abs(r["success_diff_pp"]) for r in rows])),
    }
    lines = [
        "| block (UTC) | front rps | P50 ms real / twin | acc | P99 ms real / twin | acc "
        "| success real / twin |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, t = r["measured"], r["twin"]
        lines.append(
            f"| {r['block'][11:16]} | {r['front_rate']:.1f} | {m['p50'] * 1e3:.0f} / "
            f"{t['p50'] * 1e3:.0f} | {r['accuracy']['p50']:.0%} | {m['p99'] * 1e3:.0f} / "
            f"{t['p99'] * 1e3:.0f} | {r['accuracy']['p99']:.0%} | {m['success']:.1%} / "
            f"{t['success']:.1%} |"
        )
    lines.append(
        f"\nP50 accuracy: average {summary['p50_accuracy_avg']:.1%}; P99 average "
        f"{summary['p99_accuracy_avg']:.1%}; success rate within "
        f"{summary['success_max_abs_diff_pp']:.1f} percentage points."
    )
    result = {"network": a.network, "rows": rows, "summary": summary}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
