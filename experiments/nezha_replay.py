"""Online Boutique (Nezha, 2022-08-22): replay the day's injected faults in the twin.

    python experiments/nezha_replay.py --data DATA [--out DIR]

1. Calibrate the twin with ``twin calibrate`` from the one traced minute (03:53, ~23k spans;
   the first fault starts at 03:53:54, so the last six seconds are not fault-free), with
   ``--network full`` (see docs/calibration.md: Online Boutique's gRPC clients wait beyond
   the callee's server span).
2. For each fault of ``nezha-ob/2022-08-22-fault_list.json`` (type, pod, time; 3 minutes
   each): run the twin at the front end's load of the 5 minutes before the fault
   (``PodWorkload(Ops)`` of the front-end pod, as a multiplier of the calibrated entry
   rate), with the fault active for 180 s after a 60 s warm-up, 3 seeds pooled; compare the
   front end's P50, P99 and success rate with every measured minute of
   ``front_service.csv`` that overlaps the fault by >= 40 s.
3. Fault types -> the twin's fault kinds:

   - ``cpu_contention``, ``cpu_consumed`` -> ``latency`` at the pod's service: an extra
     processing delay (exponential, mean ``delay``) that holds a worker. Not
     ``cpu_exhaustion`` (processing ``factor`` times longer): a pod at its CPU limit is
     throttled by the kernel's CFS quota, and a request waits for the next quota period
     (tens of ms) however little CPU it needs itself; the traced self times of Online
     Boutique's services are a few ms, so any factor on them predicts almost nothing (the
     first run did: the front end's P50 stayed at 0.26 s with a factor of 32, measured
     1.4 s);
   - ``network_delay`` -> ``latency`` on every edge into the service (``delay`` seconds);
   - ``exception``, ``return`` at a backend -> ``error_rate`` 1.0 at the service: every call
     into the faulted code fails, and the twin says which share of front-end requests that
     is;
   - ``exception`` at the front end (root_cause_hipster.json: in "Placing order") ->
     ``error_rate`` 1.0 at checkoutservice, the call only that page makes;
   - ``return`` at the front end (in "GetProduct", the product page): **not mapped**; the
     twin's front end has one entry operation for every page, and the product page's calls
     are shared with other pages, so no fault of the twin fails that page alone.

   The fault list gives no magnitude. Error faults need none (probability 1: the code path
   always fails). For the three others one magnitude per type (a CPU factor, a delay) is
   *fitted* on the first fault of that type in time and applied to the others; the fitted
   faults are listed apart and left out of the accuracy summary.

Accuracy = 1 - |twin - measured| / measured (PerfSim's form); success in percentage points.
Writes ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from twin.calibrate import accuracy as acc
from twin.faults import CpuExhaustionFault, ErrorRateFault, LatencyFault

ROOT = Path(__file__).resolve().parents[1]

FAULT_SECONDS = 180.0
QUIET_FROM = 1661155020.0 + 180.0  # 07:57 UTC, after the last fault's 3 minutes: fault-free
WARMUP = 60.0
SEEDS = (1, 2, 3)
CPU_GRID = (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
DELAY_GRID = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


CPU_KIND = {"kind": CpuExhaustionFault.name}


def twin_faults(topo: Any, service: str, ftype: str, magnitude: float | None) -> list[dict] | None:
    """The twin's faults for one Nezha fault, or None when the type cannot be mapped."""
    win = {"start": WARMUP, "duration": FAULT_SECONDS}
    if ftype in ("cpu_contention", "cpu_consumed") and CPU_KIND["kind"] == CpuExhaustionFault.name:
        return [{"kind": CpuExhaustionFault.name, "target": service, "factor": magnitude, **win}]
    if ftype in ("cpu_contention", "cpu_consumed"):
        return [
            {
                "kind": LatencyFault.name,
                "target": service,
                "delay": {"dist": "exponential", "mean": magnitude},
                **win,
            }
        ]
    if ftype == "network_delay":
        edges = [f"{a}->{b}" for a, b in topo.service_graph().in_edges(service)]
        return [{"kind": LatencyFault.name, "target": e, "delay": magnitude, **win} for e in edges]
    if ftype in ("exception", "return"):
        entry_svc = {w.entry.split(":")[0] for w in topo.workload}
        if service not in entry_svc:
            return [{"kind": ErrorRateFault.name, "target": service, "probability": 1.0, **win}]
        if ftype == "exception" and "checkoutservice" in topo.services:
            return [
                {
                    "kind": ErrorRateFault.name,
                    "target": "checkoutservice",
                    "probability": 1.0,
                    **win,
                }
            ]
    return None


def with_cpu_demand(topo: Any, pods: dict[str, Any], quiet_from: float) -> tuple[Any, dict]:
    """Each service's processing from the fault-free metrics (utilisation law): a pod's CPU
    usage as a share of its CPU request (``CpuUsageRate(%)``) over its requests per second
    (``PodWorkload(Ops)``) is the seconds of its CPU allowance one request takes. Where that
    exceeds the traced self time, the service's operations are stretched to it, on one
    worker (a CPU allowance serves one request at a time). A CPU fault then acts on the
    work that needs the CPU, at the utilisation the pod really ran at."""
    services = dict(topo.services)
    info: dict[str, Any] = {}
    for name, svc in topo.services.items():
        df = pods.get(name)
        if df is None:
            continue
        q = df[df["t"] >= quiet_from]
        ops = q["PodWorkload(Ops)"]
        ok = ops > 0
        if not ok.any():
            continue
        demand = float(np.median(q["CpuUsageRate(%)"][ok] / 100.0 / ops[ok]))
        traced = float(np.mean([o.service_time.expected() for o in svc.operations.values()]))
        g = max(1.0, demand / traced) if traced > 0 else 1.0
        info[name] = {"demand_s": demand, "traced_self_s": traced, "stretch": g}
        if g > 1.0:
            new_ops = {
                k: o.model_copy(update={"service_time": o.service_time.scaled(g)})
                for k, o in svc.operations.items()
            }
            services[name] = svc.model_copy(update={"operations": new_ops, "workers": 1})
    return topo.model_copy(update={"services": services}), info


def simulate(topo: Any, mult: float, faults: list[dict]) -> dict[str, float]:
    """Front-end figures over the fault window (after the warm-up), seeds pooled."""
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation
    from twin.stats import LogHistogram

    hist = LogHistogram()
    reqs = fails = 0.0
    for seed in SEEDS:
        sc = parse_model(
            Scenario,
            {
                "duration": WARMUP + FAULT_SECONDS,
                "warmup": WARMUP,
                "seed": seed,
                "load": {"multiplier": mult},
                "faults": faults,
            },
        )
        sim = Simulation(topo, sc)
        s = sim.run().summary
        for e in s.entries.values():
            reqs += e.requests
            fails += e.failed
        for ent in sim.entries.values():
            hist.merge(ent.stats.hist)
    p50, p99 = hist.quantiles((0.5, 0.99)) if hist.n else (math.nan, math.nan)
    return {
        "p50": float(p50),
        "p99": float(p99),
        "success": 1.0 - fails / reqs if reqs else math.nan,
        "requests": reqs,
    }


def score(twin: dict[str, float], minutes: list[dict[str, float]]) -> float:
    """Fit criterion: mean absolute log-ratio of the twin's P50 and P99 to each minute's."""
    errs = [
        abs(math.log(max(twin[k], 1e-6) / max(m[k], 1e-6)))
        for m in minutes
        for k in ("p50", "p99")
        if np.isfinite(twin[k])
    ]
    return float(np.mean(errs)) if errs else math.inf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data", type=Path, required=True, help="the public datasets folder (holding nezha-ob/)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "nezha-replay")
    ap.add_argument("--network", choices=["floor", "full"], default="full")
    ap.add_argument(
        "--cpu-demand",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="stretch service times to the CPU demand of the fault-free metrics and map CPU "
        "faults to cpu_exhaustion (tried: worse, see docs/calibration.md)",
    )
    a = ap.parse_args()
    from twin.calibrate import CalibrationConfig, run_calibration
    from twin.calibrate.nezha import (
        fault_minutes,
        read_fault_list,
        read_front_sli,
        read_pod_metrics,
    )
    from twin.topology import Topology

    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ob = a.data / "nezha-ob"
    run_calibration(
        CalibrationConfig(
            traces=(a.data / "traces" / "nezha-ob-2022-08-22-0353-spans.csv",),
            out=out / "calibration",
            name="online-boutique",
            predict_seconds=0,
            network=a.network,
        )
    )
    topo = Topology.load(out / "calibration" / "topology.yaml")
    cal_rate = sum(w.rate for w in topo.workload)
    entry_svc = next(iter(topo.workload)).entry.split(":")[0]
    faults = read_fault_list(ob / "2022-08-22-fault_list.json")
    sli = read_front_sli(ob / "front_service.csv")
    pods, problems = read_pod_metrics(ob, (float(sli["t"].min()), float(sli["t"].max())))
    for p in problems:
        print("note:", p, flush=True)
    front_pod = pods[entry_svc]
    demand_info: dict[str, Any] = {}
    CPU_KIND["kind"] = CpuExhaustionFault.name if a.cpu_demand else LatencyFault.name
    if a.cpu_demand:
        topo, demand_info = with_cpu_demand(topo, pods, QUIET_FROM)
        for k, v in demand_info.items():
            print(f"cpu demand {k}: {json.dumps(v)}", flush=True)

    def before(f: Any) -> tuple[float, dict[str, float]]:
        w = front_pod[(front_pod["t"] > f.timestamp - 300) & (front_pod["t"] <= f.timestamp)]
        rate = float(w["PodWorkload(Ops)"].mean()) if len(w) else cal_rate
        m = sli[(sli["t"] > f.timestamp - 300) & (sli["t"] <= f.timestamp)]
        return rate, {k: float(m[k].median()) for k in ("p50", "p99", "success")}

    magnitudes: dict[str, float] = {}
    fitted_on: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for f in faults:
        label = f"{f.time[11:16]} {f.service} {f.type}"
        rate, pre = before(f)
        mult = rate / cal_rate
        minutes = [
            {"t": float(r.t), "p50": float(r.p50), "p99": float(r.p99), "success": float(r.success)}
            for r in fault_minutes(sli, f.timestamp, FAULT_SECONDS).itertuples()
        ]
        row: dict[str, Any] = {
            "fault": label,
            "timestamp": f.timestamp,
            "service": f.service,
            "type": f.type,
            "front_rate": rate,
            "measured_before": pre,
            "measured": minutes,
        }
        grid = DELAY_GRID if f.type.startswith("cpu_") or f.type == "network_delay" else None
        if f.type.startswith("cpu_") and CPU_KIND["kind"] == CpuExhaustionFault.name:
            grid = CPU_GRID
        if grid is not None and f.type not in magnitudes:
            trials = {
                g: score(
                    simulate(topo, mult, twin_faults(topo, f.service, f.type, g) or []), minutes
                )
                for g in grid
            }
            magnitudes[f.type] = min(trials, key=lambda g: trials[g])
            fitted_on[f.type] = label
            row["fit"] = {"grid": {str(k): v for k, v in trials.items()}}
            row["role"] = "fit"
        else:
            row["role"] = "held out"
        tf = twin_faults(topo, f.service, f.type, magnitudes.get(f.type))
        row["twin_faults"] = tf
        row["twin_before"] = simulate(topo, mult, [])
        if tf is None:
            row["role"] = "not mapped"
            rows.append(row)
            print(json.dumps({"fault": label, "role": "not mapped"}), flush=True)
            continue
        twin = simulate(topo, mult, tf)
        row["twin"] = twin
        tb = row["twin_before"]
        row["accuracy"] = [
            {
                "p50": acc(twin["p50"], m["p50"]),
                "p99": acc(twin["p99"], m["p99"]),
                "success_diff_pp": 100 * (twin["success"] - m["success"]),
                # the fault's effect alone: the change from the pre-fault level, twin vs real,
                # so the twin's fault-free bias does not count twice
                "p50_change": acc(twin["p50"] / tb["p50"], m["p50"] / pre["p50"]),
                "p99_change": acc(twin["p99"] / tb["p99"], m["p99"] / pre["p99"]),
            }
            for m in minutes
        ]
        rows.append(row)
        print(
            json.dumps({"fault": label, "role": row["role"], "twin": twin, "acc": row["accuracy"]}),
            flush=True,
        )
    held = [r for r in rows if r["role"] == "held out"]
    per_min = [x for r in held for x in r["accuracy"]]
    summary = {
        "faults": len(rows),
        "held_out_faults": len(held),
        "held_out_minutes": len(per_min),
        "fitted": fitted_on,
        "magnitudes": magnitudes,
        "not_mapped": [r["fault"] for r in rows if r["role"] == "not mapped"],
        "p50_accuracy_avg": float(np.mean([x["p50"] for x in per_min])),
        "p50_accuracy_median": float(np.median([x["p50"] for x in per_min])),
        "p99_accuracy_avg": float(np.mean([x["p99"] for x in per_min])),
        "p99_accuracy_median": float(np.median([x["p99"] for x in per_min])),
        "p50_change_accuracy_median": float(np.median([x["p50_change"] for x in per_min])),
        "p99_change_accuracy_median": float(np.median([x["p99_change"] for x in per_min])),
        "before_p50_accuracy_median": float(
            np.median([acc(r["twin_before"]["p50"], r["measured_before"]["p50"]) for r in rows])
        ),
        "before_p99_accuracy_median": float(
            np.median([acc(r["twin_before"]["p99"], r["measured_before"]["p99"]) for r in rows])
        ),
        "success_mean_abs_diff_pp": float(np.mean([abs(x["success_diff_pp"]) for x in per_min])),
        "success_max_abs_diff_pp": float(np.max([abs(x["success_diff_pp"]) for x in per_min])),
        "pod_metric_problems": problems,
    }
    result = {
        "network": a.network,
        "cpu_demand": demand_info,
        "rows": rows,
        "summary": summary,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    md = table(rows, summary)
    (out / "results.md").write_text(md)
    print(md)
    return 0


def table(rows: list[dict[str, Any]], s: dict[str, Any]) -> str:
    lines = [
        "| fault (UTC, service, type) | role | twin fault | front rps | P50 ms real (per minute) "
        "/ twin | P50 acc | P99 ms real / twin | P99 acc | success real / twin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = r["measured"]
        tf = r.get("twin_faults")
        if tf:
            f0 = tf[0]
            mag = {
                k: (v["mean"] if isinstance(v, dict) else v)
                for k, v in f0.items()
                if k in ("factor", "delay", "probability")
            }
            what = f"{f0['kind']} {f0['target'] if len(tf) == 1 else 'edges in'} " + ", ".join(
                f"{k} {v:g}" for k, v in mag.items()
            )
        else:
            what = "-"
        if "twin" not in r:
            lines.append(
                f"| {r['fault']} | {r['role']} | {what} | {r['front_rate']:.1f} | "
                + ", ".join(f"{m['p50'] * 1e3:.0f}" for m in ms)
                + " / - | - | - | - | - |"
            )
            continue
        t, ac = r["twin"], r["accuracy"]
        p50s = ", ".join(f"{m['p50'] * 1e3:.0f}" for m in ms)
        p99s = ", ".join(f"{m['p99'] * 1e3:.0f}" for m in ms)
        succ = ", ".join(f"{m['success']:.1%}" for m in ms)
        lines.append(
            f"| {r['fault']} | {r['role']} | {what} | {r['front_rate']:.1f} "
            f"| {p50s} / {t['p50'] * 1e3:.0f} | {np.mean([x['p50'] for x in ac]):.0%} "
            f"| {p99s} / {t['p99'] * 1e3:.0f} | {np.mean([x['p99'] for x in ac]):.0%} "
            f"| {succ} / {t['success']:.1%} |"
        )
    lines.append(
        f"\nHeld out: {s['held_out_faults']} faults, {s['held_out_minutes']} fault minutes. "
        f"P50 accuracy average {s['p50_accuracy_avg']:.1%} (median "
        f"{s['p50_accuracy_median']:.1%}); P99 average {s['p99_accuracy_avg']:.1%} (median "
        f"{s['p99_accuracy_median']:.1%}); success rate within "
        f"{s['success_mean_abs_diff_pp']:.1f} pp on average, {s['success_max_abs_diff_pp']:.1f} "
        f"pp at worst. The fault's effect alone (change from the pre-fault level, twin vs "
        f"real): P50 median {s['p50_change_accuracy_median']:.1%}, P99 median "
        f"{s['p99_change_accuracy_median']:.1%}. Fault-free, the 5 minutes before each fault: "
        f"P50 median {s['before_p50_accuracy_median']:.1%}, P99 median "
        f"{s['before_p99_accuracy_median']:.1%}. Fitted magnitudes: "
        + ", ".join(f"{k} {v:g} (on {s['fitted'][k]})" for k, v in s["magnitudes"].items())
        + ". Not mapped: "
        + (", ".join(s["not_mapped"]) or "none")
        + "."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
