"""Online Boutique (Nezha): calibrate from a traced minute, predict the fault-free hours.

    python experiments/nezha_heldout.py --data DATA --traces SPANS [--out DIR]

The twin is calibrated by ``twin calibrate`` from the traced spans (for the published day,
one minute, ~23k spans). The held-out data are the fault-free hours after the day's last
fault (from the fault list, plus a margin of ``--margin`` minutes): for each
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

BLOCK = "30min"


def fault_free_comparison(
    topology: Any,
    minutes: pd.DataFrame,
    *,
    block: str = BLOCK,
    seconds: float = 600.0,
    seed: int = 1,
    min_minutes: int = 10,
    minute: float = 60.0,
    on_row: Any = None,
) -> dict[str, Any]:
    """A topology against measured per-minute entry SLIs, block by block.

    ``minutes`` has one row per minute: ``t`` (timestamp), ``rate`` (entry requests per
    second), ``p50`` and ``p99`` (seconds) and ``success`` (fraction). For each block of
    ``block`` (a pandas frequency) with at least ``min_minutes`` minutes, the twin runs at the
    block's mean rate (a multiplier of the topology's entry rate) for ``seconds`` and its
    P50, P99 and success are compared with the medians of the measured minutes. The twin's
    figures are the same statistic: the medians over its own ``minute``-long windows of each
    window's P50 and P99 (a median of per-minute P99s is not the block's P99: a stall in a
    minority of minutes moves the second, not the first). Returns the
    rows and the averages (accuracy = 1 - |twin - measured| / measured; a block where the twin
    answers nothing counts as accuracy 0, never as nan)."""
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation

    cal_rate = sum(w.rate for w in topology.workload)
    rows: list[dict[str, Any]] = []
    for when, g in minutes.groupby(minutes["t"].dt.floor(block)):
        if len(g) < min_minutes:
            continue
        rate = float(g["rate"].mean())
        sc = parse_model(
            Scenario,
            {
                "duration": seconds + 60,
                "warmup": 60,
                "seed": seed,
                "load": {"multiplier": rate / cal_rate},
                "window": minute,
            },
        )
        res = Simulation(topology, sc).run()
        s = res.summary
        frame = res.timeseries.frame()
        ent = frame[(frame["scope"] == "entry") & (frame["time"] >= 60)]
        per_minute = ent.pivot_table(index="time", columns="metric", values="value", observed=True)
        meas = {
            "p50": float(g["p50"].median()),
            "p99": float(g["p99"].median()),
            "success": float(g["success"].median()),
        }
        twin: dict[str, float | None] = {
            k: float(per_minute[k].median())
            if k in per_minute and per_minute[k].notna().any()
            else None
            for k in ("p50", "p99")
        }
        twin["success"] = s.succeeded / s.requests if s.requests else 0.0
        twin["p50_pooled"] = s.latency.p50
        twin["p99_pooled"] = s.latency.p99
        rows.append(
            {
                "block": str(when),
                "minutes": len(g),
                "front_rate": rate,
                "measured": meas,
                "twin": twin,
                "accuracy": {k: _accuracy(twin[k], meas[k]) for k in ("p50", "p99")},
                "success_diff_pp": 100 * ((twin["success"] or 0.0) - meas["success"]),
            }
        )
        if on_row is not None:
            on_row(rows[-1])
    if not rows:
        return {"rows": [], "summary": {"blocks": 0}}
    summary = {
        "blocks": len(rows),
        "p50_accuracy_avg": float(np.mean([r["accuracy"]["p50"] for r in rows])),
        "p99_accuracy_avg": float(np.mean([r["accuracy"]["p99"] for r in rows])),
        "success_mean_abs_diff_pp": float(np.mean([abs(r["success_diff_pp"]) for r in rows])),
        "success_max_abs_diff_pp": float(np.max([abs(r["success_diff_pp"]) for r in rows])),
    }
    return {"rows": rows, "summary": summary}


def _accuracy(twin: float | None, measured: float) -> float:
    """PerfSim's accuracy; a twin with no answer is a miss (0), never nan."""
    return 0.0 if twin is None or not np.isfinite(twin) else float(acc(twin, measured))


def quiet_from(ob: Path, margin_minutes: float) -> pd.Timestamp:
    """The start of the fault-free hours: the last injected fault plus a margin (Nezha's
    faults last a few minutes)."""
    from twin.calibrate.nezha import find, read_fault_list

    lists = find(ob, "*fault_list*.json")
    if not lists:
        raise SystemExit(f"{ob}: no *fault_list*.json")
    last = max(f.timestamp for path in lists for f in read_fault_list(path))
    return pd.to_datetime(last, unit="s") + pd.Timedelta(minutes=margin_minutes)


def nezha_minutes(ob: Path, quiet_from: pd.Timestamp) -> pd.DataFrame:
    """Nezha's front-end minutes from ``quiet_from`` on, with the front-end pod's load."""
    from twin.calibrate.nezha import find, is_sli_table

    front = pd.read_csv(next(p for p in find(ob, "*.csv") if is_sli_table(p)))
    front["t"] = pd.to_datetime(front["TimeStamp"], unit="s")
    pod = find(ob, "frontend-*_metric.csv")[0]
    load = pd.read_csv(pod)
    load["t"] = pd.to_datetime(load["TimeStamp"], unit="s")
    df = pd.merge_asof(
        front.sort_values("t"),
        load[["t", "PodWorkload(Ops)"]].sort_values("t"),
        on="t",
        direction="nearest",
        tolerance=pd.Timedelta("30s"),
    )
    df = df[df["t"] >= quiet_from].dropna(subset=["PodWorkload(Ops)"])
    return pd.DataFrame(
        {
            "t": df["t"],
            "rate": df["PodWorkload(Ops)"],
            "p50": df["LatencyP50(s)"],
            "p99": df["LatencyP99(s)"],
            "success": df["SuccessRate(%)"] / 100,
        }
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data", type=Path, required=True, help="the public datasets folder (holding nezha-ob/)"
    )
    ap.add_argument("--traces", type=Path, required=True, help="the traced spans to calibrate from")
    ap.add_argument(
        "--margin", type=float, default=4.0, help="minutes after the last fault's injection"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "nezha-heldout")
    ap.add_argument("--seconds", type=float, default=600.0, help="simulated seconds per block")
    ap.add_argument(
        "--network", choices=["floor", "full"], default=None, help="default: twin calibrate's"
    )
    ap.add_argument(
        "--no-classes", action="store_true", help="one front-end operation (no request classes)"
    )
    ap.add_argument(
        "--keep-transients",
        action="store_true",
        help="fit on every traced request, stalls included (twin calibrate --keep-transients)",
    )
    a = ap.parse_args()
    from twin.calibrate import CalibrationConfig, run_calibration
    from twin.topology import Topology

    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    spans = a.traces
    options: dict[str, Any] = {"classes": not a.no_classes, "keep_transients": a.keep_transients}
    if a.network:
        options["network"] = a.network
    run_calibration(
        CalibrationConfig(
            traces=(spans,),
            out=out / "calibration",
            name="online-boutique",
            predict_seconds=0,
            **options,
        )
    )
    topo = Topology.load(out / "calibration" / "topology.yaml")
    result = fault_free_comparison(
        topo,
        nezha_minutes(a.data / "nezha-ob", quiet_from(a.data / "nezha-ob", a.margin)),
        seconds=a.seconds,
        on_row=lambda r: print(json.dumps(r), flush=True),
    )
    rows, summary = result["rows"], result["summary"]
    lines = [
        "| block (UTC) | front rps | P50 ms real / twin | acc | P99 ms real / twin | acc "
        "| success real / twin |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, t = r["measured"], r["twin"]
        lines.append(
            f"| {r['block'][11:16]} | {r['front_rate']:.1f} | {m['p50'] * 1e3:.0f} / "
            f"{(t['p50'] or 0) * 1e3:.0f} | {r['accuracy']['p50']:.0%} | {m['p99'] * 1e3:.0f} / "
            f"{(t['p99'] or 0) * 1e3:.0f} | {r['accuracy']['p99']:.0%} | {m['success']:.1%} / "
            f"{t['success']:.1%} |"
        )
    lines.append(
        f"\nP50 accuracy: average {summary['p50_accuracy_avg']:.1%}; P99 average "
        f"{summary['p99_accuracy_avg']:.1%}; success rate within "
        f"{summary['success_max_abs_diff_pp']:.1f} percentage points."
    )
    result = {"options": options, **result}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
