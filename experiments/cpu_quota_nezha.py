"""Nezha's CPU faults through the CFS quota model, beside the fitted-delay fallback.

    python experiments/cpu_quota_nezha.py --data DATA --out out/cpu-quota-nezha

Calibrates Online Boutique from the traced minute (as ``experiments/nezha_replay.py``:
``--network full``), gives every service the CPU limit of the published Kubernetes
manifests (``DATA/topologies/online-boutique-kubernetes-manifests.yaml``) in the twin's
units of work (:func:`twin.calibrate.cpu.twin_cpu_limit`: the twin's service times are
traced self times, not the CPU per request the pods' metrics give by the utilisation law),
and replays each CPU fault of the day (``cpu_contention``, ``cpu_consumed``) at the front
end's load of the five minutes before it, two ways:

- ``delay``: the fallback, on the twin without limits (as the replay runs it): a
  ``latency`` fault at the service, exponential with a mean of 0.3 s (the magnitude the
  replay fits on the first CPU fault of each type);
- ``quota``: ``cpu_exhaustion`` with the hog's ``quota_share`` read from the pod's CPU
  metrics by the utilisation law (:func:`twin.calibrate.cpu.nezha_cpu_fault`).

Each runs 60 s of warm-up and the fault's 180 s, seeds pooled, and is compared with the
front end's measured minutes overlapping the fault (P50, P99; accuracy 1 - |twin - real| /
real). Writes ``OUT/cpu_quota_nezha.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.calibrate import CalibrationConfig, accuracy_or_none, run_calibration
from twin.calibrate.cpu import (
    cpu_limits_from_manifests,
    nezha_cpu_demands,
    nezha_cpu_fault,
    twin_cpu_limit,
    with_cpu_limits,
)
from twin.calibrate.nezha import fault_minutes, read_day
from twin.faults import CpuExhaustionFault, LatencyFault
from twin.io import parse_model
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.stats import LogHistogram
from twin.topology import Topology

FAULT_SECONDS = 180.0
WARMUP = 60.0
FALLBACK_DELAY = 0.3


def simulate(
    topo: Topology, mult: float, faults: list[dict[str, Any]], seeds: int
) -> dict[str, Any]:
    """Front-end P50/P99 (s) over the fault window after the warm-up, seeds pooled."""
    hist = LogHistogram()
    verdicts = []
    for seed in range(1, seeds + 1):
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
        if s.verdict is not None:
            verdicts.append(s.verdict.verdict)
        for ent in sim.entries.values():
            hist.merge(ent.stats.hist)
    p50, p99 = hist.quantiles((0.5, 0.99)) if hist.n else (math.nan, math.nan)
    return {"p50": float(p50), "p99": float(p99), "verdicts": verdicts}


def twin_demand(topo: Topology, service: str) -> float:
    """Mean CPU-seconds per request of a service in the twin (its operations' service
    times weighted by their offered rates)."""
    rates = topo.operation_rates()
    svc = topo.services[service]
    total = sum(rates[f"{service}:{o}"] for o in svc.operations)
    if total <= 0:
        return next(iter(svc.operations.values())).service_time.expected()
    return (
        sum(
            rates[f"{service}:{o}"] * op.service_time.expected() for o, op in svc.operations.items()
        )
        / total
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the public datasets folder")
    ap.add_argument("--out", type=Path, default=Path("out") / "cpu-quota-nezha")
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ob = a.data / "nezha-ob"
    run_calibration(
        CalibrationConfig(
            traces=(a.data / "traces" / "nezha-ob-2022-08-22-0353-spans.csv",),
            out=out / "calibration",
            name="online-boutique",
            predict_seconds=0,
            network="full",
        )
    )
    base = Topology.load(out / "calibration" / "topology.yaml")
    limits = cpu_limits_from_manifests(
        [a.data / "topologies" / "online-boutique-kubernetes-manifests.yaml"]
    )
    day = read_day(ob)
    # the limits in the twin's units of work: its service times are traced self times, not
    # the CPU the pods' metrics measure
    demands = nezha_cpu_demands(day, limits)
    scaled = {
        n: twin_cpu_limit(lim, demands[n], twin_demand(base, n))
        for n, lim in limits.items()
        if n in demands and n in base.services
    }
    topo, notes = with_cpu_limits(base, scaled)
    for n in notes:
        print("note:", n, flush=True)
    for n in sorted(scaled):
        print(
            f"{n}: limit {limits[n]:g} cores, CPU per request {1000 * demands[n]:.2f} ms "
            f"(metrics), twin {1000 * twin_demand(base, n):.2f} ms -> limit {scaled[n]:.3f}",
            flush=True,
        )
    sli = pd.DataFrame({"t": day.times, "p50": day.entry["p50"], "p99": day.entry["p99"]})
    entry = next(iter(topo.workload))
    cal_rate = sum(w.rate for w in topo.workload)
    front = day.services[entry.entry.split(":")[0]]["rate"]
    rows = []
    for f in day.faults:
        if not f.type.startswith("cpu_") or f.service not in topo.services:
            continue
        pre = (day.times > f.timestamp - 300) & (day.times <= f.timestamp)
        rate = float(np.nanmean(front[pre])) if pre.any() else cal_rate
        mult = rate / cal_rate
        minutes = fault_minutes(sli, f.timestamp, FAULT_SECONDS)
        real = {k: [float(v) for v in minutes[k]] for k in ("p50", "p99")}
        est = nezha_cpu_fault(day, f.service, f.timestamp, FAULT_SECONDS)
        share = est.share if est is not None else None
        variants: dict[str, list[dict[str, Any]]] = {
            "delay": [
                {
                    "kind": LatencyFault.name,
                    "target": f.service,
                    "delay": {"dist": "exponential", "mean": FALLBACK_DELAY},
                    "start": WARMUP,
                    "duration": FAULT_SECONDS,
                }
            ]
        }
        if share is not None:
            variants["quota"] = [
                {"kind": CpuExhaustionFault.name, "target": f.service, "quota_share": share}
                | {"start": WARMUP, "duration": FAULT_SECONDS}
            ]
        row: dict[str, Any] = {
            "fault": f"{f.time[11:16]} {f.service} {f.type}",
            "front_rps": rate,
            "real": real,
            "estimate": None if est is None else est.__dict__,
            "measured_demand_s": demands.get(f.service),
            "twin_demand_s": twin_demand(base, f.service),
            "twin_limit": scaled.get(f.service),
            "share": share,
        }
        for name, faults in variants.items():
            t0 = time.perf_counter()
            # the fallback runs the twin as the replay does, without limits
            twin = simulate(base if name == "delay" else topo, mult, faults, a.seeds)
            p50_acc = [accuracy_or_none(twin["p50"], r) for r in real["p50"]]
            p99_acc = [accuracy_or_none(twin["p99"], r) for r in real["p99"]]
            twin["p50_acc"] = _mean([x for x in p50_acc if x is not None])
            twin["p99_acc"] = _mean([x for x in p99_acc if x is not None])
            twin["wall_s"] = time.perf_counter() - t0
            row[name] = twin
            print(
                f"{row['fault']:45s} {name:9s} P50 {twin['p50']:.3f} P99 {twin['p99']:.3f} "
                f"acc {twin['p50_acc']:.2f}/{twin['p99_acc']:.2f} {twin['verdicts']}",
                flush=True,
            )
        rows.append(row)
    (out / "cpu_quota_nezha.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(table(rows))
    return 0


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| fault | hog share | twin limit (cores) | P50 ms real | delay | quota "
        "| P99 ms real | delay | quota |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        real50 = ", ".join(f"{1000 * v:.0f}" for v in r["real"]["p50"])
        real99 = ", ".join(f"{1000 * v:.0f}" for v in r["real"]["p99"])

        def cell(name: str, key: str, r: dict[str, Any] = r) -> str:
            v = r.get(name)
            if v is None:
                return "-"
            return f"{1000 * v[key]:.0f} ({100 * v[key + '_acc']:.0f}%)"

        share = "-" if r["share"] is None else f"{r['share']:.2f}"
        lim = "-" if r["twin_limit"] is None else f"{r['twin_limit']:.2f}"
        lines.append(
            f"| {r['fault']} | {share} | {lim} | {real50} | {cell('delay', 'p50')} | "
            f"{cell('quota', 'p50')} | {real99} | {cell('delay', 'p99')} | "
            f"{cell('quota', 'p99')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
