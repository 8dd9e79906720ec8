"""False alarms of a watch started in fault-free hours, with and without a history to learn from.

    python experiments/watch_cold_start.py --data DATA/nezha-ob --topology cal/topology.yaml
        [--hours 3] [--every 2] [--history 0 3600 7200 14400] [--out DIR]

The day's own replay is judged from the first minute of the recording, which on Nezha's day
is four minutes before the first of two hours of faults; its fault-free afternoon is read by
bands that those hours had already shaped. A watch is more often started on a quiet system.
This starts one at several points of the fault-free hours after the last fault (its end
plus the replay margin, plus the longest history asked for, so every history is fault-free
too), each time reading the ``--history`` seconds before as baseline only
(:func:`twin.predict.sources.learn_first`: what a live watch fetches from Prometheus before
its first poll), and counts alarms over the next ``--hours``: alert groups that start firing
(:mod:`twin.predict.faultmatch`'s definition), by the metric that raised them.

Writes ``OUT/watch_cold_start.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a Nezha day's folder")
    ap.add_argument("--topology", type=Path, required=True)
    ap.add_argument("--hours", type=float, default=3.0, help="hours judged after each start")
    ap.add_argument("--every", type=float, default=2.0, help="hours between starts")
    ap.add_argument("--history", type=float, nargs="+", default=[0.0, 3600.0, 7200.0, 14400.0])
    ap.add_argument("--slo-p99", type=float, default=3.0)
    ap.add_argument("--slo-availability", type=float, default=0.99)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "watch-cold-start")
    a = ap.parse_args()

    from twin.calibrate.nezha import read_day
    from twin.io import load_model
    from twin.predict import sources as src
    from twin.predict.outputs import WatchRun, make_recogniser
    from twin.predict.watch import Watch, WatchConfig
    from twin.replay.nezha import FAULT_SECONDS
    from twin.replay.run import ReplayConfig
    from twin.topology import Topology

    topo = load_model(Topology, a.topology)
    day = read_day(a.data)
    rec = src.replay(a.data, "nezha")
    quiet = max(f.timestamp for f in day.faults) + FAULT_SECONDS + ReplayConfig().margin
    end = rec.items[-1].time
    span = a.hours * 3600.0
    starts = []
    t0 = quiet + max(a.history)
    while t0 + span <= end:
        starts.append(t0)
        t0 += a.every * 3600.0
    run = WatchRun(topology=topo, out=a.out, replay=a.data, format="nezha")
    recogniser, _ = make_recogniser(run, rec)
    config = WatchConfig(slo_latency_p99=a.slo_p99, slo_availability=a.slo_availability)
    rows: list[dict[str, Any]] = []
    for h in a.history:
        per_start = []
        raised: Counter[str] = Counter()
        for t0 in starts:
            items = [w for w in rec.items if t0 - h < w.time <= t0 + span]
            part = src.learn_first(src.Recorded(items, src.SourceReport(), rec.calls), h)
            watch = Watch(topo, config, recogniser=recogniser)
            n = 0
            for w in part.windows():
                _, msgs = watch.step(w)
                for m in msgs:
                    if m.status == "firing" and abs(m.time - m.starts_at) < 1e-9 and m.time > t0:
                        n += 1
                        ev = m.evidence.metrics
                        raised[f"{ev[0].service}/{ev[0].metric}" if ev else m.evidence.reason] += 1
            per_start.append(n)
        hours = span / 3600.0 * len(starts)
        rows.append(
            {
                "history_s": h,
                "alarms": sum(per_start),
                "hours": hours,
                "per_hour": sum(per_start) / hours if hours else None,
                "per_start": per_start,
                "raised_by": dict(raised.most_common()),
            }
        )
        print(f"history {h:>7.0f} s: {sum(per_start)} alarms in {hours:.0f} h {per_start}")
    out = {
        "data": str(a.data),
        "topology": str(a.topology),
        "quiet_from": quiet,
        "starts": starts,
        "hours_each": a.hours,
        "rows": rows,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "watch_cold_start.json").write_text(json.dumps(out, indent=1))
    print("| history | alarms started | per hour | per start | raised most by |")
    print("|---|---|---|---|---|")
    for r in rows:
        top = ", ".join(f"{k} {v}" for k, v in list(r["raised_by"].items())[:3])
        print(
            f"| {r['history_s'] / 3600:g} h | {r['alarms']} | {r['per_hour']:.2f} | "
            f"{r['per_start']} | {top} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
