"""What the baselines could reach with hindsight: per held-out scenario, the best baseline.

    python experiments/rl_envelope.py agents/policies/online-boutique/evaluation.json

Reads an ``evaluation.json`` (no simulation) and, for each scenario, takes the baseline with
the fewest SLO-violation minutes (ties: fewer replica-seconds). No causal policy in the same
action space is promised to reach this envelope (it knows which fault is coming); it shows
how much of the best static policy's violation any of these controllers removes at all,
and at what cost, against the project's bar (>= 30% fewer minutes at <= 1.10x).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: Path) -> None:
    result = json.loads(path.read_text())
    pol = result["policies"]
    names = [n for n in pol if n != "learned"]
    base = pol["best_static"]["per_scenario"]
    v_base = sum(r["slo_violation_minutes"] for r in base)
    c_base = sum(r["replica_seconds"] for r in base)
    v = c = 0.0
    picks: dict[str, int] = {}
    for i in range(len(base)):
        rows = {n: pol[n]["per_scenario"][i] for n in names}
        best = min(
            names, key=lambda n: (rows[n]["slo_violation_minutes"], rows[n]["replica_seconds"])
        )
        picks[best] = picks.get(best, 0) + 1
        v += rows[best]["slo_violation_minutes"]
        c += rows[best]["replica_seconds"]
    print(f"best static: {v_base:.2f} violation minutes, {c_base:.0f} replica-seconds")
    print(f"envelope:    {v:.2f} violation minutes, {c:.0f} replica-seconds")
    print(f"cut {1 - v / v_base:.1%} at {c / c_base:.3f}x the replica-seconds; picks {picks}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: rl_envelope.py EVALUATION.json")
    main(Path(sys.argv[1]))
