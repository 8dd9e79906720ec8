"""How often the aggregated twin agrees with the request-level engine on what the RL agent
is scored on: whether each 5 s decision interval violated the SLO.

For each held-out fault scenario of the environment's catalogue and each baseline
controller, run the episode in both fidelities (same controller, same fault) and compare
the per-interval `violated` flags and the episode's violation minutes.

Usage: python experiments/fluid_vs_des.py [--out docs/results/fluid_vs_des.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from agents.baselines import best_practice, no_mitigation, threshold
from agents.env import MitigationEnv


def flags(env: MitigationEnv, ctrl, fault, seed: int) -> list[bool]:  # type: ignore[no-untyped-def]
    obs, _ = env.reset(seed=seed, options={"fault": fault})
    out = []
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(ctrl(obs, env))
        out.append(bool(info["violated"]))
        done = term or trunc
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs/results/fluid_vs_des.json"))
    a = ap.parse_args()
    des, fluid = MitigationEnv(fidelity="des"), MitigationEnv(fidelity="fluid")
    ctrls = {
        "no_mitigation": no_mitigation(),
        "best_practice": best_practice(),
        "threshold": threshold(),
    }
    rows = []
    t0 = time.perf_counter()
    for i, fault in enumerate(des.catalogue.held_out):
        for name, ctrl in ctrls.items():
            d, f = flags(des, ctrl, fault, i), flags(fluid, ctrl, fault, i)
            rows.append(
                {
                    "scenario": i,
                    "fault": fault.__dict__,
                    "controller": name,
                    "interval_agreement": float(np.mean(np.array(d) == np.array(f))),
                    "des_minutes": sum(d) * des.cfg.interval / 60,
                    "fluid_minutes": sum(f) * fluid.cfg.interval / 60,
                }
            )
    agree = float(np.mean([r["interval_agreement"] for r in rows]))
    dm = np.array([r["des_minutes"] for r in rows])
    fm = np.array([r["fluid_minutes"] for r in rows])
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        by_kind.setdefault(r["fault"]["kind"], []).append(r["interval_agreement"])
    summary = {
        "episodes": len(rows),
        "interval_agreement": agree,
        "by_kind": {k: float(np.mean(v)) for k, v in sorted(by_kind.items())},
        "violation_minutes_mean": {"des": float(dm.mean()), "fluid": float(fm.mean())},
        "violation_minutes_correlation": float(np.corrcoef(dm, fm)[0, 1])
        if dm.std() and fm.std()
        else None,
        "wall_seconds": time.perf_counter() - t0,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"summary": summary, "episodes": rows}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
