"""``check-change`` over a labelled set of changes, with its confusion table.

``python experiments/check_changes.py --out DIR [--set experiments/changes] [--replications 8]``

Every change of the set (``labels.yaml`` beside the change files; see
:mod:`twin.change.labelled`) is checked on its topology with the policy in force, at its
labelled load; DIR gets one folder per change (verdict.json, rollback.json) and
``summary.json`` (rows and the table). A bad change counts as caught when the decision is
no-go and one of the reasons is of a labelled family; a good one when the decision is go.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from twin.change.check import CheckResult
from twin.change.labelled import run_set
from twin.change.rollback import build_rollback
from twin.io import output_dir
from twin.results import write_json

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", type=Path, default=HERE / "changes", help="folder with labels.yaml")
    ap.add_argument("--replications", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    out = output_dir(a.out)
    started = time.perf_counter()

    def on_row(row: dict[str, Any], result: CheckResult) -> None:
        d = output_dir(out / Path(row["file"]).stem)
        write_json(d / "verdict.json", result.verdict.to_json())
        from twin.change.document import ChangeFile

        changes = ChangeFile.load(a.set / row["file"]).changes
        sig = build_rollback(changes, result.reduced, service_p99=result.calm_p99)
        write_json(d / "rollback.json", sig.to_json())
        mark = "ok  " if row["correct"] else "MISS"
        fams = ",".join(row["families"]) or "-"
        print(
            f"{mark} {row['file']:45} expected {row['expected']:5} got {row['decision']:5} "
            f"risk {row['risk']['mean']:+.2f} [{row['risk']['lo']:+.2f},{row['risk']['hi']:+.2f}]"
            f" reasons {fams}  ({row['wall_seconds']:.0f} s)",
            flush=True,
        )

    summary = run_set(a.set, replications=a.replications, seed=a.seed, on_row=on_row)
    summary["wall_seconds"] = time.perf_counter() - started
    write_json(out / "summary.json", summary)
    t = summary["confusion"]
    print()
    print(f"{'':12} {'no-go':>6} {'go':>6}")
    print(f"{'bad':12} {t['bad_no_go']:>6} {t['bad'] - t['bad_no_go']:>6}")
    print(f"{'good':12} {t['good'] - t['good_go']:>6} {t['good_go']:>6}")
    print(
        f"bad caught with a labelled reason: {t['bad_caught']}/{t['bad']}; "
        f"good given go: {t['good_go']}/{t['good']} ({t['good_go_share']:.0%}); "
        f"{summary['wall_seconds']:.0f} s"
    )
    print(json.dumps(t))


if __name__ == "__main__":
    main()
