"""Pool repeated runs of ``validate_testbed.py``: one 60 s window is a noisy measurement.

    python experiments/testbed_runs.py docs/results/validate-testbed-run*.json

Per run: the four figures the bar is set on. Pooled over the runs, per held-out scenario: the
latency accuracies are the *average of each run's accuracy* (errors in opposite directions
do not cancel), and the error rates are pooled over all requests of the runs, on both the
measured and the twin side (a binomial share from ~240 requests has a standard error of
about 3 percentage points at 27%, so one window cannot resolve a 5-point bar).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

BAR = {"mean_accuracy_avg": 0.90, "mean_accuracy_min": 0.75, "p99_accuracy_avg": 0.80}
"""The bar each run is held to (and the error rate within ``BAR_ERROR_PP`` points)."""
BAR_ERROR_PP = 5.0


def misses(s: dict[str, float]) -> list[str]:
    """The figures of a summary below the bar, by name."""
    out = [k for k, v in BAR.items() if s[k] < v]
    return out + (["error_rate"] if s["error_rate_max_abs_diff_pp"] > BAR_ERROR_PP else [])


def main(paths: list[Path]) -> dict[str, float]:
    runs = [json.loads(p.read_text()) for p in paths]
    print("| run | mean acc. avg / min | p95 avg | p99 avg | error rate within | bar |")
    print("|---|---|---|---|---|---|")
    for p, r in zip(paths, runs, strict=True):
        s = r["summary"]
        missed = misses(s)
        print(
            f"| {p.stem} | {s['mean_accuracy_avg']:.1%} / {s['mean_accuracy_min']:.1%} | "
            f"{s['p95_accuracy_avg']:.1%} | {s['p99_accuracy_avg']:.1%} | "
            f"{s['error_rate_max_abs_diff_pp']:.1f} pp | "
            f"{'met' if not missed else 'missed: ' + ', '.join(missed)} |"
        )
    names = [row["scenario"] for row in runs[0]["scenarios"]]
    pooled = []
    print("\n| scenario | mean acc. (avg of runs) | p99 acc. | errors real / twin (pooled) |")
    print("|---|---|---|---|")
    for i, name in enumerate(names):
        rows = [r["scenarios"][i] for r in runs]
        if any(row["scenario"] != name for row in rows):
            raise SystemExit(f"scenario {i}: the runs do not hold the same scenarios")
        mean_acc = float(np.mean([row["accuracy"]["mean"] for row in rows]))
        p99_acc = float(np.mean([row["accuracy"]["p99"] for row in rows]))
        real = sum(row["measured"]["error_rate"] * row["measured"]["requests"] for row in rows)
        real /= sum(row["measured"]["requests"] for row in rows)
        twin = sum(row["twin"]["error_rate"] * row["twin"]["requests"] for row in rows)
        twin /= sum(row["twin"]["requests"] for row in rows)
        pooled.append(
            {"scenario": name, "mean": mean_acc, "p99": p99_acc, "err_pp": 100 * abs(real - twin)}
        )
        print(f"| {name} | {mean_acc:.1%} | {p99_acc:.1%} | {real:.1%} / {twin:.1%} |")
    summary = {
        "runs": len(runs),
        "mean_accuracy_avg": float(np.mean([x["mean"] for x in pooled])),
        "mean_accuracy_min": float(np.min([x["mean"] for x in pooled])),
        "p99_accuracy_avg": float(np.mean([x["p99"] for x in pooled])),
        "error_rate_max_abs_diff_pp": float(np.max([x["err_pp"] for x in pooled])),
    }
    print(
        f"\nPooled over {len(runs)} runs: mean-latency accuracy average "
        f"{summary['mean_accuracy_avg']:.1%}, minimum {summary['mean_accuracy_min']:.1%}; "
        f"p99 average {summary['p99_accuracy_avg']:.1%}; error rate within "
        f"{summary['error_rate_max_abs_diff_pp']:.1f} percentage points."
    )
    missed = misses(summary)
    print(f"Pooled against the bar: {'met' if not missed else 'missed: ' + ', '.join(missed)}.")
    return summary


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: testbed_runs.py RESULTS.json ...")
    main([Path(a) for a in sys.argv[1:]])
