"""The shadow following a recorded Nezha day: error per window with and without following.

    python experiments/follow_nezha.py --data ../shared/data/nezha-ob \\
        --topology out/cal/topology.yaml [--k 5] [--out docs/results/follow-nezha.json]

The topology is the twin calibrated from the day's traced minute (``twin calibrate
--traces ...``). The day (read with :func:`twin.calibrate.nezha.read_day`, files found by
pattern) becomes one-minute :class:`twin.calibrate.window.Window` documents, and three twins
predict every window before reading it:

- ``static``: the calibrated twin at the window's observed arrival rate (nothing else moves);
- ``gma``: :class:`twin.calibrate.follow.Follower`, one global service-time scale moved by a
  geometric moving average of observed / predicted entry P99 (what ``twin watch`` runs);
- ``kalman``: :func:`twin.calibrate.follow` (:mod:`twin.calibrate.recalibrate`): per-service
  scales, arrivals and per-edge network time by a Kalman filter, from the entry's P50/P99 and
  each pod's server P99, CPU and workload.

Windows are grouped as inside a fault (the minute overlaps an injected fault's 3 minutes by
40 s or more), the quiet tail (after the last fault's end plus 5 minutes) and the rest.
Printed and written: per twin and group the mean and median error (1 - accuracy) of the entry
P99 and P50 and the windows flagged as not following; engine runs and wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from twin.calibrate import RecalibrateConfig, Recalibrator
from twin.calibrate.follow import FollowConfig, Follower
from twin.calibrate.nezha import read_day
from twin.calibrate.window import windows_from_nezha
from twin.topology import Topology

FAULT_SECONDS = 180.0
"""Each Nezha fault lasts 3 minutes (the dataset's documentation)."""


def _summary(xs: list[float | None]) -> dict[str, Any]:
    v = [x for x in xs if x is not None]
    if not v:
        return {"n": 0, "mean": None, "median": None}
    return {"n": len(v), "mean": statistics.fmean(v), "median": statistics.median(v)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--topology", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--k", type=int, default=RecalibrateConfig().k, help="windows off before not following"
    )
    a = ap.parse_args()
    day = read_day(a.data)
    topo = Topology.load(a.topology)
    windows = list(windows_from_nezha(day, topo.workload[0].service))
    starts = [f.timestamp for f in day.faults]
    last_end = max(starts) + FAULT_SECONDS if starts else -1e18

    def group(t: float) -> str:
        for s in starts:
            if min(t, s + FAULT_SECONDS) - max(t - 60.0, s) >= 40.0:
                return "fault"
        return "quiet" if t - 60.0 >= last_end + 300.0 else "between"

    groups = [group(w.time) for w in windows]
    rows: dict[str, dict[str, list[Any]]] = {}
    figures: dict[str, dict[str, float]] = {}

    t0 = time.process_time()
    k = Recalibrator(topo, RecalibrateConfig(k=a.k))
    out = [k.update(w)[1] for w in windows]
    figures["kalman"] = {"runs": k.runs, "cpu_s": time.process_time() - t0, "skipped": k.skipped}
    rows["kalman"] = {
        "p99": [e.value for e in out],
        "p50": [e.p50 for e in out],
        "off": [not e.following for e in out],
    }
    scales = {s: round(v, 3) for s, v in k.scales().items()}

    t0 = time.process_time()
    still = Recalibrator(topo, RecalibrateConfig(scale_q=0.0, initial_sd=1e-9, k=a.k))
    bare = [w.model_copy(update={"services": {}, "edges": {}}) for w in windows]
    out = [still.update(w)[1] for w in bare]
    figures["static"] = {"runs": still.runs, "cpu_s": time.process_time() - t0}
    rows["static"] = {
        "p99": [e.value for e in out],
        "p50": [e.p50 for e in out],
        "off": [not e.following for e in out],
    }

    t0 = time.process_time()
    g = Follower(topo, FollowConfig(bound=RecalibrateConfig().bound, k=a.k))
    steps = [g.update(w.time, w.rate, w.p99) for w in windows]
    figures["gma"] = {"runs": g.runs, "cpu_s": time.process_time() - t0}
    rows["gma"] = {
        "p99": [s.error for s in steps],
        "p50": [None for _ in steps],
        "off": [not s.following for s in steps],
    }

    result: dict[str, Any] = {
        "windows": len(windows),
        "groups": {gname: groups.count(gname) for gname in ("fault", "between", "quiet")},
        "faults": len(starts),
        "engine": figures,
        "final_scales": scales,
        "twins": {},
    }
    for name, r in rows.items():
        per: dict[str, Any] = {}
        for gname in ("fault", "between", "quiet", "all"):
            idx = [i for i, x in enumerate(groups) if gname in ("all", x)]
            per[gname] = {
                "p99_error": _summary([r["p99"][i] for i in idx]),
                "p50_error": _summary([r["p50"][i] for i in idx]),
                "flagged": sum(1 for i in idx if r["off"][i]),
            }
        flagged_faults = 0
        for s in starts:
            near = [
                i
                for i, w in enumerate(windows)
                if s <= w.time <= s + FAULT_SECONDS + 120.0 and r["off"][i]
            ]
            flagged_faults += bool(near)
        per["faults_flagged"] = flagged_faults
        result["twins"][name] = per
    print(json.dumps(result, indent=1))
    if a.out is not None:
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
