"""Calibrate the twin from the real testbed at one load, then predict held-out scenarios.

    python experiments/validate_testbed.py [--out out/validate-testbed] [--seconds 30]

1. Start the testbed (5 HTTP services + Redis + Prometheus on 127.0.0.1), warm it up, run
   the open-loop load at the calibration rate and calibrate the twin from that window's
   OTLP spans and Prometheus metrics (``twin calibrate`` with ``--workers SERVICE=N``: the
   size of each service's worker pool, which its operator knows and traces cannot tell;
   ``--mapping`` pointing the demand counter at ``worker_busy_seconds_total``, and
   ``--demand cpu``: each service time is scaled to the worker-busy seconds per request
   (utilisation law), because a span's self time also holds event-loop work done outside
   the worker, which does not queue).
2. For each held-out scenario (other loads up to near saturation, and every fault kind the
   testbed injects for real), measure the real system and ask the twin, with the fault
   expressed in the twin's own terms.
3. Accuracy = 1 - |twin - measured| / measured for mean, p95 and p99 latency (end to end,
   at the load generator); error rates compared in percentage points. Writes
   ``results.json`` and ``results.md``.

``--repredict RUN/results.json --topology TOPO`` asks another twin (e.g. a calibration of the
same run's calibration window by other code) for the same scenarios, against the run's
measurements, without the testbed.

Bounded: every load run lasts ``--seconds`` (``--busy-seconds`` for loads of 3x and more,
``--error-seconds`` for injected errors); the testbed is stopped whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from testbed.run import Testbed
from twin.calibrate import accuracy as acc
from twin.faults import CpuExhaustionFault, ErrorRateFault, LatencyFault, OutageFault

ROOT = Path(__file__).resolve().parents[1]

CAL_RATE = 4.0


def measured(records: list[list[float]]) -> dict[str, float]:
    r = np.array(records, dtype=float)
    ok = r[r[:, 2] == 200]
    lat = ok[:, 1] if len(ok) else np.array([np.nan])
    return {
        "requests": float(len(r)),
        "mean": float(np.mean(lat)),
        "p95": float(np.quantile(lat, 0.95)),
        "p99": float(np.quantile(lat, 0.99)),
        "error_rate": float(np.mean(r[:, 2] != 200)),
    }


def twin_predict(
    topo: Any, rate_mult: float, faults: list[dict[str, Any]], seconds: float, transient: bool
) -> dict[str, float]:
    """Entry figures from the twin. Steady scenarios: one long run. Transient faults (a pause,
    a restart) happen once in a window as long as the real one: pooled over 10 seeds."""
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation
    from twin.stats import LogHistogram

    runs = 10 if transient else 1
    duration = seconds if transient else 600.0
    warmup = 0.0 if transient else 30.0
    reqs = fails = 0.0
    lat_hist = LogHistogram()
    means = []
    for seed in range(1, runs + 1):
        shifted = [{**f, "start": f.get("start", 0.0) + warmup} for f in faults]
        sc = parse_model(
            Scenario,
            {
                "duration": duration + warmup,
                "warmup": warmup,
                "seed": seed,
                "load": {"multiplier": rate_mult},
                "faults": shifted,
            },
        )
        sim = Simulation(topo, sc)
        s = sim.run().summary
        e = next(iter(s.entries.values()))
        reqs += e.requests
        fails += e.failed
        for svc in sim.entries.values():
            lat_hist.merge(svc.stats.hist)
        means.append(e.latency.mean)
    p95, p99 = lat_hist.quantiles((0.95, 0.99))
    return {
        "requests": reqs,
        "mean": float(lat_hist.mean),
        "p95": float(p95),
        "p99": float(p99),
        "error_rate": fails / reqs if reqs else 0.0,
    }


def twin_window_band(
    topo: Any, rate_mult: float, faults: list[dict[str, Any]], seconds: float, runs: int = 20
) -> dict[str, float]:
    """How much the mean of ONE measurement window of ``seconds`` moves by chance, by the twin's
    own account: the 5th-95th percentile of the mean latency over ``runs`` seeds of one window
    each (after a 30 s warm-up). Near saturation a minute of Poisson arrivals is a noisy
    sample: a measured mean outside this band is a model error, one inside it may be luck."""
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation

    means = []
    for seed in range(101, 101 + runs):
        sc = parse_model(
            Scenario,
            {
                "duration": seconds + 30.0,
                "warmup": 30.0,
                "seed": seed,
                "load": {"multiplier": rate_mult},
                "faults": faults,
            },
        )
        sim = Simulation(topo, sc)
        sim.run()
        hist = None
        for svc in sim.entries.values():
            hist = svc.stats.hist if hist is None else hist
        if hist is not None:
            means.append(float(hist.mean))
    lo, hi = np.quantile(means, (0.05, 0.95))
    return {"mean_p5": float(lo), "mean_p95": float(hi), "runs": float(len(means))}


def service_demand(tb: Any, start: float, end: float) -> dict[str, dict[str, float]]:
    """Per service, from Prometheus over [start, end]: request rate and worker-busy seconds
    per request (the service time the twin was calibrated with), so a drift of the real
    service time with load or with the machine's other jobs is on record."""
    from twin.calibrate import MetricMap, PrometheusClient, summarize

    mm = MetricMap(cpu_seconds="worker_busy_seconds_total")
    got = summarize(
        PrometheusClient(tb.prometheus_url).fetch(mm, start, end, 1.0), mm, start=start, end=end
    )
    return {
        s: {"rate": float(m.rate), "busy_per_request": float(m.demand or 0.0)}
        for s, m in got.items()
    }


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The four figures the bar is set on, over the held-out scenarios."""
    return {
        "mean_accuracy_avg": float(np.mean([r["accuracy"]["mean"] for r in rows])),
        "mean_accuracy_min": float(np.min([r["accuracy"]["mean"] for r in rows])),
        "p95_accuracy_avg": float(np.mean([r["accuracy"]["p95"] for r in rows])),
        "p99_accuracy_avg": float(np.mean([r["accuracy"]["p99"] for r in rows])),
        "error_rate_max_abs_diff_pp": float(np.max([abs(r["error_rate_diff_pp"]) for r in rows])),
    }


def repredict(results: Path, topology: Path, out: Path) -> int:
    """The twin's side again, from another calibration of the same calibration window, against
    the measurements already in ``results`` (each scenario's rate, window and twin faults as
    recorded; the hog's factor as computed at the time from the calibration's CPU figures).
    No held-out measurement is read before the predictions are made."""
    from twin.topology import Topology

    old = json.loads(results.read_text())
    topo = Topology.load(topology)
    rows = []
    for r in old["scenarios"]:
        mult = r["rate"] / old["calibration_rate"]
        faults = r["twin_faults"] or []
        transient = r["twin_window_band"] is None
        pred = twin_predict(topo, mult, faults, old["seconds"], transient)
        band = None if transient else twin_window_band(topo, mult, faults, r["seconds"])
        meas = r["measured"]
        rows.append(
            {
                **r,
                "twin": pred,
                "twin_window_band": band,
                "accuracy": {k: acc(pred[k], meas[k]) for k in ("mean", "p95", "p99")},
                "error_rate_diff_pp": 100 * (pred["error_rate"] - meas["error_rate"]),
            }
        )
        print(r["scenario"], json.dumps(rows[-1]["accuracy"]), flush=True)
    summary = summarize_rows(rows)
    out.mkdir(parents=True, exist_ok=True)
    result = {**old, "repredicted_from": str(topology), "scenarios": rows, "summary": summary}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(table(rows, summary))
    print(table(rows, summary))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "validate-testbed")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--base-port", type=int, default=0, help="0: free ports chosen at start")
    ap.add_argument("--demand", choices=["cpu", "traces"], default="cpu")
    ap.add_argument(
        "--cal-seconds",
        type=float,
        default=240.0,
        help="calibration window: the bottleneck's service time must be known to ~1%%, "
        "since near saturation the predicted wait moves 5x faster than it",
    )
    ap.add_argument(
        "--busy-seconds",
        type=float,
        default=180.0,
        help="window of the load scenarios at >= 3x, where one minute is too noisy a sample",
    )
    ap.add_argument(
        "--error-seconds",
        type=float,
        default=240.0,
        help="window of the injected-error scenarios: about 1,000 requests at 4 rps, so the "
        "5 pp bar is four binomial standard errors of a 20%% share, not two",
    )
    ap.add_argument(
        "--repredict",
        type=Path,
        help="results.json of an earlier run: no testbed, only the twin's side again, "
        "from --topology (another calibration of that run's calibration window)",
    )
    ap.add_argument("--topology", type=Path, help="with --repredict: the twin to ask")
    a = ap.parse_args()
    out: Path = a.out.resolve()
    if a.repredict:
        if not a.topology:
            raise SystemExit("--repredict needs --topology")
        return repredict(a.repredict, a.topology, out)
    out.mkdir(parents=True, exist_ok=True)
    from testbed.config import TestbedConfig

    secs = a.seconds
    rows: list[dict[str, Any]] = []
    from testbed.run import free_base_port

    base = a.base_port or free_base_port()
    with Testbed(out / "run", TestbedConfig(base_port=base)) as tb:
        topo, cal, t0, t1 = tb.calibrate(
            out, CAL_RATE, a.cal_seconds, demand=a.demand, predict_seconds=120.0
        )
        calib = {
            **measured(cal["records"]),
            "loadavg_1m": os.getloadavg()[0],
            "seconds": a.cal_seconds,
            "services": service_demand(tb, t0, t1),
        }
        print(f"calibrated at {CAL_RATE} rps: measured {calib}", flush=True)

        def edges_into(svc: str) -> list[str]:
            return [f"{a}->{b}" for a, b in topo.service_graph().in_edges(svc)]

        # CPU hog: stress-ng on catalog's core. Linux's fair scheduler gives a task that
        # sleeps most of the time (catalog) the CPU whenever it wakes, as long as it uses less
        # than its fair share (half the core against one hog); beyond that its CPU seconds
        # stretch by u / share. The twin learns catalog's CPU seconds per request from
        # Prometheus (process_cpu_seconds_total) and its service time from the calibration;
        # the hog's effect is then a cpu_exhaustion factor on the CPU part only.
        from twin.calibrate import MetricMap, PrometheusClient, summarize

        cpu = summarize(
            PrometheusClient(tb.prometheus_url).fetch(MetricMap(), t0, t1, 1.0),
            start=t0,
            end=t1,
        )
        cpu_demand = float(cpu["catalog"].demand or 0.0)
        cat_rate = float(cpu["catalog"].rate)
        cat_ops = topo.services["catalog"].operations
        cat_time = float(np.mean([o.service_time.expected() for o in cat_ops.values()]))
        hog_mult = 2.0

        def hog_factor(mult: float) -> float:
            u_cpu = cat_rate * mult * cpu_demand  # catalog's share of its core
            stretch = max(1.0, u_cpu / 0.5)
            return 1.0 + min(cpu_demand, cat_time) / cat_time * (stretch - 1.0)

        print(
            f"catalog: {cpu_demand * 1e3:.2f} ms CPU of {cat_time * 1e3:.2f} ms at "
            f"{cat_rate:.1f}/s; hog factor at {hog_mult:g}x load {hog_factor(hog_mult):.3f}",
            flush=True,
        )

        scenarios: list[tuple[str, float, Any, list[dict[str, Any]] | None, bool]] = [
            ("load 1.5x (6 rps)", 1.5, None, [], False),
            ("load 2x (8 rps)", 2.0, None, [], False),
            ("load 2.5x (10 rps)", 2.5, None, [], False),
            ("load 3x (12 rps, catalog ~70% busy)", 3.0, None, [], False),
            ("load 3.5x (14 rps, catalog ~82% busy)", 3.5, None, [], False),
        ]
        inject: list[tuple[str, float, Any, list[dict[str, Any]] | None, bool]] = [
            (
                "latency +50 ms at cart",
                1.0,
                ("inject", "cart", {"latency": 0.05}),
                [
                    {"kind": LatencyFault.name, "target": e, "delay": 0.05}
                    for e in edges_into("cart")
                ],
                False,
            ),
            (
                "latency +25 ms at catalog, 2x load",
                2.0,
                ("inject", "catalog", {"latency": 0.025}),
                [
                    {"kind": LatencyFault.name, "target": e, "delay": 0.025}
                    for e in edges_into("catalog")
                ],
                False,
            ),
            (
                "errors 10% at pricing",
                1.0,
                ("inject", "pricing", {"error": 0.1}),
                [{"kind": ErrorRateFault.name, "target": "pricing", "probability": 0.1}],
                False,
            ),
            (
                "errors 20% at cart",
                1.0,
                ("inject", "cart", {"error": 0.2}),
                [{"kind": ErrorRateFault.name, "target": "cart", "probability": 0.2}],
                False,
            ),
            (
                "CPU hog (stress-ng) on catalog's core, 2x load",
                hog_mult,
                ("hog", "catalog", {}),
                [
                    {
                        "kind": CpuExhaustionFault.name,
                        "target": "catalog",
                        "factor": hog_factor(hog_mult),
                    }
                ],
                False,
            ),
            (
                "pause (SIGSTOP) pricing 3 s",
                1.0,
                ("pause", "pricing", {"seconds": 3.0}),
                None,  # built below: callers wait for the rest of the pause
                True,
            ),
            (
                "kill + restart pricing",
                1.0,
                ("kill", "pricing", {"downtime": 1.0}),
                None,  # built below from the measured downtime
                True,
            ),
        ]
        for name, mult, action, faults, transient in scenarios + inject:
            print(f"scenario: {name}", flush=True)
            rate = CAL_RATE * mult
            hog = None
            extra: dict[str, Any] = {}
            window = a.busy_seconds if (not action and mult >= 3.0) else secs
            if action and action[0] == "inject" and "error" in action[2]:
                window = a.error_seconds
            fault_at = secs / 3
            if action and action[0] == "inject":
                tb.inject(action[1], **action[2])
            if action and action[0] == "hog":
                hog = tb.cpu_hog(secs + 5, core=1)
                time.sleep(0.5)
            if action and action[0] in ("pause", "kill"):
                import threading

                def later(act: Any = action, at: float = fault_at, ex: Any = extra) -> None:
                    time.sleep(at)
                    if act[0] == "pause":
                        tb.pause(act[1], act[2]["seconds"])
                    else:
                        ex["downtime"] = tb.kill_restart(act[1], act[2]["downtime"])

                th = threading.Thread(target=later, daemon=True)
                th.start()
            w0 = time.time()
            res = tb.load(rate, window, seed=zlib.crc32(name.encode()) % 1000)
            w1 = time.time()
            if action and action[0] == "inject":
                tb.inject(action[1])
            if hog is not None:
                hog.terminate()
                hog.wait(timeout=10)
            if action and action[0] in ("pause", "kill"):
                th.join(timeout=30)
            if action and action[0] == "pause":
                # a paused process answers nothing until SIGCONT: a call made at t into the
                # pause waits (end - t), the same for calls made together. In the twin's
                # vocabulary: a staircase of short windows of constant delay on every edge
                # into the paused service
                p = action[2]["seconds"]
                steps = 30
                faults = [
                    {
                        "kind": LatencyFault.name,
                        "target": e,
                        "start": fault_at + k * p / steps,
                        "duration": p / steps,
                        "delay": {"dist": "constant", "mean": p - (k + 0.5) * p / steps},
                    }
                    for e in edges_into("pricing")
                    for k in range(steps)
                ]
            if action and action[0] == "kill":
                faults = [
                    {
                        "kind": OutageFault.name,
                        "target": "pricing",
                        "start": fault_at,
                        "duration": extra.get("downtime", 1.0),
                    }
                ]
            meas = measured(res["records"])
            pred = twin_predict(topo, mult, faults or [], secs, transient)
            band = None if transient else twin_window_band(topo, mult, faults or [], window)
            row = {
                "scenario": name,
                "rate": rate,
                "measured": meas,
                "twin": pred,
                "twin_faults": faults,
                "accuracy": {k: acc(pred[k], meas[k]) for k in ("mean", "p95", "p99")},
                "error_rate_diff_pp": 100 * (pred["error_rate"] - meas["error_rate"]),
                "loadavg_1m": os.getloadavg()[0],  # the machine is shared: how busy it was
                "seconds": window,
                "twin_window_band": band,
                "services": service_demand(tb, w0, w1),
                **({"downtime": extra["downtime"]} if "downtime" in extra else {}),
            }
            rows.append(row)
            print(
                json.dumps(row["accuracy"]), f"err pp {row['error_rate_diff_pp']:.2f}", flush=True
            )
            time.sleep(1.0)
    summary = summarize_rows(rows)
    from twin.calibrate import CalibrationConfig

    fields = CalibrationConfig.model_fields
    result = {
        "calibration_rate": CAL_RATE,
        "demand": a.demand,
        # the rest of the calibration is ``twin calibrate``'s defaults: on record
        "network": fields["network"].default,
        "classes": fields["classes"].default,
        "seconds": secs,
        "busy_seconds": a.busy_seconds,
        "error_seconds": a.error_seconds,
        "calibration_measured": calib,
        "scenarios": rows,
        "summary": summary,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(table(rows, summary))
    print(table(rows, summary))
    return 0


def table(rows: list[dict[str, Any]], summary: dict[str, float]) -> str:
    lines = [
        "| scenario | s | mean ms real / twin | acc | twin 5-95% of one window | "
        "p95 ms real / twin | acc | p99 ms real / twin | acc | errors real / twin "
        "| catalog busy ms/req | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, t, ac = r["measured"], r["twin"], r["accuracy"]
        b = r.get("twin_window_band")
        band = f"{b['mean_p5'] * 1e3:.0f}-{b['mean_p95'] * 1e3:.0f}" if b else "-"
        cat = r.get("services", {}).get("catalog", {}).get("busy_per_request")
        lines.append(
            f"| {r['scenario']} | {r.get('seconds', 0):.0f} "
            f"| {m['mean'] * 1e3:.1f} / {t['mean'] * 1e3:.1f} | {ac['mean']:.0%} | {band} "
            f"| {m['p95'] * 1e3:.1f} / {t['p95'] * 1e3:.1f} | {ac['p95']:.0%} "
            f"| {m['p99'] * 1e3:.1f} / {t['p99'] * 1e3:.1f} | {ac['p99']:.0%} "
            f"| {m['error_rate']:.1%} / {t['error_rate']:.1%} "
            f"| {cat * 1e3 if cat else float('nan'):.1f} | {r['loadavg_1m']:.2f} |"
        )
    lines.append(
        f"\nMean-latency accuracy: average {summary['mean_accuracy_avg']:.1%}, minimum "
        f"{summary['mean_accuracy_min']:.1%}; p95 average {summary['p95_accuracy_avg']:.1%}; "
        f"p99 average {summary['p99_accuracy_avg']:.1%}; error rate within "
        f"{summary['error_rate_max_abs_diff_pp']:.1f} percentage points."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
