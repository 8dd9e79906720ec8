"""Per fault kind, SLO-violation minutes and replica-seconds of baseline controllers.

Runs on TRAINING draws of the fault catalogue (a seed of its own, never the held-out set),
so it can guide the fault model and reward without looking at evaluation scenarios.

Usage: python experiments/rl_fault_table.py [--per-kind N] [--procs 2]
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import Pool
from typing import Any

import numpy as np

from agents.baselines import adaptive, best_practice, no_mitigation, reactive, static, threshold
from agents.env import MitigationEnv
from agents.evaluate import run_episode
from agents.scenarios import KINDS, FaultSpec

CONTROLLERS: dict[str, Any] = {
    "no_mitigation": no_mitigation,
    "best_practice": best_practice,
    "threshold": threshold,
    "adaptive": adaptive,
    "reactive": reactive,
    "s_t025_r1_q50": lambda: static(2, 1, 0, 0, 1),
    "s_t05_r1": lambda: static(1, 1, 0, 0, 0),
    "s_r2": lambda: static(0, 2, 0, 0, 0),
    "s_rl12": lambda: static(0, 0, 0, 1, 0),
    "s_q10": lambda: static(0, 0, 0, 0, 2),
}

_ENV: MitigationEnv | None = None


def _job(args: tuple[str, FaultSpec, int]) -> tuple[str, str, dict[str, float]]:
    global _ENV
    name, spec, seed = args
    if _ENV is None:
        _ENV = MitigationEnv()
    return spec.kind, name, run_episode(_ENV, CONTROLLERS[name](), spec, seed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-kind", type=int, default=4)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=424242)
    a = ap.parse_args()
    env = MitigationEnv()
    rng = np.random.default_rng(a.seed)
    specs: dict[str, list[FaultSpec]] = {k: [] for k in KINDS}
    while min(len(v) for v in specs.values()) < a.per_kind:
        s = env.catalogue.sample_training(rng)
        if len(specs[s.kind]) < a.per_kind:
            specs[s.kind].append(s)
    jobs = [
        (name, s, 5000 + i) for k in KINDS for i, s in enumerate(specs[k]) for name in CONTROLLERS
    ]
    t = time.perf_counter()
    with Pool(a.procs) as pool:
        rows = pool.map(_job, jobs, chunksize=1)
    wall = time.perf_counter() - t
    table: dict[tuple[str, str], list[dict[str, float]]] = {}
    for kind, name, r in rows:
        table.setdefault((kind, name), []).append(r)
    names = list(CONTROLLERS)
    print("violation minutes (replica-seconds) per 90 s episode, mean over", a.per_kind)
    print("| kind | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for k in [*KINDS, "all"]:
        cells = []
        for n in names:
            rs = [r for kk in KINDS for r in table[(kk, n)]] if k == "all" else table[(k, n)]
            v = np.mean([r["slo_violation_minutes"] for r in rs])
            c = np.mean([r["replica_seconds"] for r in rs])
            cells.append(f"{v:.2f} ({c:.0f})")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print(f"{len(jobs)} episodes in {wall:.0f} s wall")


if __name__ == "__main__":
    main()
