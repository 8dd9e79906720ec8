"""``twin watch`` over a recorded Nezha day: replay speed, alerts, false alarms, lead times.

    python benchmarks/watch_replay.py [--data ../shared/data/nezha-ob]
        [--topology topologies/online-boutique.yaml] [--slo-p99 3.0]
        [--slo-availability 0.99] [--recogniser DIR|auto] [--out DIR]

Runs the whole day through :func:`twin.predict.outputs.run_watch` (as ``twin watch
--replay DATA --format nezha`` does) and prints:

- the replay's wall and CPU time, and the ratio of wall time to the 2-minute target (a
  ratio below 1 meets it); the machine is shared, so CPU time is printed too;
- alerts fired; per injected fault (the day's fault list, found by pattern) the figures of
  :func:`twin.predict.faultmatch.score` (its docstring is the rule: an alert matches a
  fault within [start - 1 window, end + 2 windows]; the alert's final answer is scored,
  its first beside it; a fault without an alert is a miss in every denominator): AS@1,
  AS@3, kind, and the statistical baseline's AS@1 and AS@3 on the same alerts; with
  ``--recogniser`` the classifier trained on the twin's failures names them, without it the
  statistical ranking;
- false alarms per hour: groups that start firing over the fault-free hours after the last
  fault's end (plus 5 minutes);
- per fault whose window breaks the SLO (the entry's p99 or success, minute by minute):
  the first breaching minute, and the twin's, the burn-rate page's and ``predict_linear``'s
  first alert in the fault window, with their lead (positive: before the breach); for the
  baselines the first window where they *start* firing (a rule still firing from the fault
  before has not alerted on this one).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twin.calibrate import nezha
from twin.io import load_model
from twin.predict import faultmatch
from twin.predict.alerts import Alert
from twin.predict.outputs import WatchRun, run_watch
from twin.predict.watch import WatchConfig
from twin.predict.windows import LabelledFault, nezha_kind
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
FAULT_S = 180.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "nezha-ob")
    ap.add_argument("--topology", type=Path, default=ROOT / "topologies" / "online-boutique.yaml")
    ap.add_argument("--slo-p99", type=float, default=3.0)
    ap.add_argument("--slo-availability", type=float, default=0.99)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    ap.add_argument("--recogniser", default=None, help="a recogniser's folder, or auto")
    ap.add_argument(
        "--history", type=float, default=0.0, help="seconds read first to learn only (0)"
    )
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="watch-replay-"))
    topo = load_model(Topology, args.topology)
    run = WatchRun(
        topology=topo,
        out=out,
        replay=args.data,
        format="nezha",
        config=WatchConfig(slo_latency_p99=args.slo_p99, slo_availability=args.slo_availability),
        title="Nezha replay",
        recogniser=args.recogniser,
        history_s=args.history,
    )
    w0, c0 = time.perf_counter(), time.process_time()
    result = run_watch(run)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    lists = nezha.find(args.data, "*fault_list*.json")
    faults = [f for p in lists for f in nezha.read_fault_list(p)]
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    timeline = json.loads((out / "timeline.json").read_text())
    figures = evaluate(faults, alerts, timeline["windows"])
    labelled = [
        LabelledFault(f.timestamp, f.service, f.type, f"{f.time[11:16]} {f.service} {f.type}")
        for f in faults
    ]
    models = [Alert.model_validate(a) for a in alerts]
    last = timeline["windows"][-1]["time"]
    scores = {
        how: faultmatch.score(
            models,
            labelled,
            kind_of=nezha_kind,
            fault_s=FAULT_S,
            window_s=60.0,
            last_window=last,
            answer=how,
        )
        for how in ("final", "first")
    }
    hours = (timeline["windows"][-1]["time"] - timeline["windows"][0]["time"]) / 3600
    print(f"replay: {result.windows} one-minute windows ({hours:.1f} h of telemetry)")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s; ratio to the 2-minute target: {wall / 120:.2f}")
    print(f"recogniser: {result.recogniser}")
    print(f"alerts fired: {result.alerts_firing}, resolved: {result.alerts_resolved}")
    for k, v in figures.items():
        if k != "faults":
            print(f"{k}: {v}")
    for how, sc in scores.items():
        print(f"scored ({how} answer): {sc.summary()}")
    print(faultmatch.table(scores["final"]))
    print("per fault: service, type, breach lead (s) of the twin, burn rate, predict_linear:")
    for f in figures["faults"]:
        print(
            f"  {f['service']:<22} {f['type']:<15} twin {f['lead_twin']} "
            f"burn {f['lead_burn']} linear {f['lead_linear']}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "windows": result.windows,
                    "recogniser": result.recogniser,
                    **figures,
                    "scored": {how: sc.summary() for how, sc in scores.items()},
                    "table": faultmatch.table(scores["final"]),
                },
                indent=1,
            )
        )
    print(f"outputs in {out}")
    return 0


def _onset(windows: list[dict[str, Any]], start: float, key: str) -> float | None:
    """The first window in the fault where the rule starts firing (a rising edge): a rule
    still firing from an earlier fault has not alerted on this one."""
    prev = False
    for w in windows:
        now = bool(w[key])
        if start < w["time"] <= start + FAULT_S + 60.0 and now and not prev:
            return float(w["time"])
        prev = now
    return None


def evaluate(
    faults: list[Any], alerts: list[dict[str, Any]], windows: list[dict[str, Any]]
) -> dict[str, Any]:
    step = 60.0
    firing = [a for a in alerts if a["status"] == "firing"]
    rows = []
    for f in faults:
        lo, hi = f.timestamp - step, f.timestamp + FAULT_S + 2 * step
        hits = [a for a in firing if lo <= a["time"] <= hi]
        # the alert group open at the fault also counts: it was raised before and is updated
        first = hits[0] if hits else None
        in_fault = [w for w in windows if f.timestamp < w["time"] <= f.timestamp + FAULT_S + step]
        breach = next((w["time"] for w in in_fault if w["breaching"]), None)
        burn = _onset(windows, f.timestamp, "burn_rate")
        linear = _onset(windows, f.timestamp, "linear")
        twin = first["time"] if first else None

        def lead(t: float | None, b: float | None = breach) -> float | None:
            return None if t is None or b is None else b - t

        rows.append(
            {
                "service": f.service,
                "type": f.type,
                "breach": breach,
                "lead_twin": lead(twin),
                "lead_burn": lead(burn),
                "lead_linear": lead(linear),
            }
        )
    breaching = [r for r in rows if r["breach"] is not None]
    ahead = [r for r in breaching if r["lead_twin"] is not None and r["lead_twin"] >= 0]
    return {
        "faults": rows,
        "faults_breaching": len(breaching),
        "twin_alert_at_or_before_breach": f"{len(ahead)}/{len(breaching)}",
        "burn_rate_alerts_in_breaching_faults": sum(r["lead_burn"] is not None for r in breaching),
        "linear_alerts_in_breaching_faults": sum(r["lead_linear"] is not None for r in breaching),
    }


if __name__ == "__main__":
    sys.exit(main())
