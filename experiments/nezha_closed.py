"""Online Boutique (Nezha): which workload model fits, and the CPU faults an open loop blows up.

    python experiments/nezha_closed.py --data DATA [--out DIR]

1. Calibrates the twin from the traced minute as ``experiments/nezha_replay.py`` does
   (``twin calibrate``, ``--network full``).
2. Tests the front end's workload model on the day's per-minute front-end rate
   (``PodWorkload(Ops)`` of the front-end pod) and mean latency (from ``front_service.csv``'s
   P50-P99, :func:`twin.calibrate.workload_model.mean_from_quantiles`), leaving out the
   minutes of the faults measured in step 4 (held out), and fits N and Z.
3. Fits the CPU faults' delay (``latency`` at the service, exponential mean, a worker held)
   on the first fault of each type (both at the front end), as the replay does, with the
   closed loop.
4. Runs the held-out CPU faults (every CPU fault after the first of its type) with the open
   loop (at the 5 minutes' pre-fault rate, the replay's method) and with the fitted closed
   loop (its users as fitted: the rate follows from the system), 180 s after a 60 s warm-up,
   3 seeds pooled, and compares the front end's P50 and P99 with every measured minute that
   overlaps the fault by >= 40 s.

Writes ``results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from twin.calibrate import accuracy as acc
from twin.faults import LatencyFault

ROOT = Path(__file__).resolve().parents[1]
FAULT_SECONDS = 180.0
WARMUP = 60.0
SEEDS = (1, 2, 3)
DELAY_GRID = (0.1, 0.2, 0.3, 0.5, 0.75)


def cpu_fault(service: str, delay: float) -> list[dict[str, Any]]:
    return [
        {
            "kind": LatencyFault.name,
            "target": service,
            "delay": {"dist": "exponential", "mean": delay},
            "start": WARMUP,
            "duration": FAULT_SECONDS,
        }
    ]


def simulate(topo: Any, mult: float, faults: list[dict[str, Any]]) -> dict[str, float]:
    """Front-end P50, P99 (s), success and rate over the fault window, seeds pooled."""
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation
    from twin.stats import LogHistogram

    hist = LogHistogram()
    reqs = fails = 0.0
    for seed in SEEDS:
        doc = {
            "duration": WARMUP + FAULT_SECONDS,
            "warmup": WARMUP,
            "seed": seed,
            "load": {"multiplier": mult},
            "faults": faults,
        }
        sim = Simulation(topo, parse_model(Scenario, doc))
        s = sim.run().summary
        reqs += sum(e.requests for e in s.entries.values())
        fails += sum(e.failed for e in s.entries.values())
        for ent in sim.entries.values():
            hist.merge(ent.stats.hist)
    p50, p99 = hist.quantiles((0.5, 0.99)) if hist.n else (math.nan, math.nan)
    return {
        "p50": float(p50),
        "p99": float(p99),
        "success": 1.0 - fails / reqs if reqs else math.nan,
        "rate": reqs / len(SEEDS) / FAULT_SECONDS,
    }


def log_error(twin: dict[str, float], minutes: list[dict[str, float]]) -> float:
    errs = [
        abs(math.log(max(twin[k], 1e-6) / max(m[k], 1e-6)))
        for m in minutes
        for k in ("p50", "p99")
        if np.isfinite(twin[k])
    ]
    return float(np.mean(errs)) if errs else math.inf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding nezha-ob/, traces/")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "nezha-closed")
    ap.add_argument(
        "--faults", default="", help="only these held-out faults, by start HH:MM (comma list)"
    )
    ap.add_argument(
        "--delay",
        action="append",
        default=[],
        metavar="TYPE=S",
        help="a CPU fault type's delay given, not fitted (e.g. cpu_contention=0.3)",
    )
    a = ap.parse_args()
    import pandas as pd

    from twin.calibrate import CalibrationConfig, run_calibration
    from twin.calibrate.nezha import fault_minutes, read_day
    from twin.calibrate.workload_model import apply_workload, fit_workload, mean_from_quantiles
    from twin.topology import Topology

    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ob = a.data / "nezha-ob"
    traces = sorted((a.data / "traces").glob("nezha-ob-*-spans.csv"))
    run_calibration(
        CalibrationConfig(
            traces=tuple(traces[:1]),
            out=out / "calibration",
            name="online-boutique",
            predict_seconds=0,
            network="full",
        )
    )
    open_topo = Topology.load(out / "calibration" / "topology.yaml")
    entry = open_topo.workload[0].entry
    entry_svc = open_topo.workload[0].service
    cal_rate = sum(w.rate for w in open_topo.workload)
    day = read_day(ob)
    sli = pd.DataFrame({"t": day.times, "p50": day.entry["p50"], "p99": day.entry["p99"]})
    rate = day.services[entry_svc]["rate"]
    mean = mean_from_quantiles({q: day.entry[f"p{round(q * 100)}"] for q in (0.5, 0.9, 0.95, 0.99)})
    cpu = [f for f in day.faults if f.type.startswith("cpu_")]
    first: dict[str, Any] = {}
    for f in cpu:
        first.setdefault(f.type, f)
    held = [f for f in cpu if first[f.type] is not f]
    only = {x.strip() for x in a.faults.split(",") if x.strip()}
    if only:
        held = [f for f in held if f.time[11:16] in only]
    keep = np.ones(len(day.times), dtype=bool)
    for f in held:  # the held-out faults' minutes do not inform the fit
        keep &= ~((day.times > f.timestamp) & (day.times - 60.0 < f.timestamp + FAULT_SECONDS))
    fit = fit_workload(rate[keep], mean[keep])
    print("workload:", fit.reason, flush=True)
    topo = apply_workload(open_topo, entry, fit)

    def minutes(f: Any) -> list[dict[str, float]]:
        rows = fault_minutes(sli, f.timestamp, FAULT_SECONDS)
        return [{"p50": float(r.p50), "p99": float(r.p99)} for r in rows.itertuples()]

    def pre_rate(f: Any) -> float:
        w = (day.times > f.timestamp - 300) & (day.times <= f.timestamp)
        return float(np.nanmean(rate[w])) if w.any() else cal_rate

    delays = {k: float(v) for k, v in (d.split("=", 1) for d in a.delay)}
    for ftype, f in first.items():
        if ftype in delays:
            continue
        trials = {
            d: log_error(simulate(topo, 1.0, cpu_fault(f.service, d)), minutes(f))
            for d in DELAY_GRID
        }
        delays[ftype] = min(trials, key=lambda d: trials[d])
        print(f"delay {ftype}: {delays[ftype]} s (fitted on {f.time[11:16]} {f.service})")
    rows = []
    for f in held:
        measured = minutes(f)
        faults = cpu_fault(f.service, delays[f.type])
        row = {
            "fault": f"{f.time[11:16]} {f.service} {f.type}",
            "delay": delays[f.type],
            "measured": measured,
            "open": simulate(open_topo, pre_rate(f) / cal_rate, faults),
            "closed": simulate(topo, 1.0, faults),
        }
        for model in ("open", "closed"):
            row[f"{model}_acc"] = {
                k: float(np.mean([acc(row[model][k], m[k]) for m in measured]))
                for k in ("p50", "p99")
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"workload": fit.to_dict(), "delays": delays, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(
        "| fault | P50 s real (per minute) | open twin | acc | closed twin | acc "
        "| P99 s real | open twin | acc | closed twin | acc |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p50s = ", ".join(f"{m['p50']:.2f}" for m in r["measured"])
        p99s = ", ".join(f"{m['p99']:.2f}" for m in r["measured"])
        o, c, oa, ca = r["open"], r["closed"], r["open_acc"], r["closed_acc"]
        print(
            f"| {r['fault']} | {p50s} | {o['p50']:.2f} | {oa['p50']:.0%} | {c['p50']:.2f} | "
            f"{ca['p50']:.0%} | {p99s} | {o['p99']:.2f} | {oa['p99']:.0%} | {c['p99']:.2f} | "
            f"{ca['p99']:.0%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
