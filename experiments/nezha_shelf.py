"""How predictable is the side of the shelf a quiet minute's P99 lands on?

    python experiments/nezha_shelf.py --data DATA [--out DIR]

Online Boutique's front-end P99 per minute is bistable (docs/replay.md): at most about 1 s,
or 1.4 s and more. A twin that predicts a minute it has not seen can score that minute well
only if something it takes as input (the load, the pods' CPU) says which side it lands on.
This reads the day through the one Nezha reader (:func:`twin.calibrate.nezha.read_day`),
keeps the minutes farther than the replay's margin after the last fault's end, labels each
minute on the shelf when its P99 exceeds ``--cut`` seconds, and measures:

- the minute before as the predictor (does the state persist from one minute to the next?);
- cross-validated classifiers (logistic regression, gradient boosting; 5 folds in time
  order, no shuffling) on the same minute's per-pod request rates, then adding CPU use
  (share of the limit), then memory: ROC AUC and the share of minutes right, beside always
  saying the more common side.

Writes ``OUT/nezha_shelf.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding nezha-ob/")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "nezha-shelf")
    ap.add_argument(
        "--cut", type=float, default=1.2, help="P99 (s) above which a minute is on the shelf"
    )
    a = ap.parse_args()
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from twin.calibrate.nezha import read_day
    from twin.replay.nezha import FAULT_SECONDS
    from twin.replay.run import ReplayConfig

    day = read_day(a.data / "nezha-ob")
    quiet_from = max(f.timestamp for f in day.faults) + FAULT_SECONDS + ReplayConfig().margin
    p99 = day.entry["p99"]
    keep = (day.times > quiet_from) & np.isfinite(p99)
    y = (p99[keep] > a.cut).astype(int)
    prev, now = y[:-1], y[1:]
    prev_row = {"auc": float(roc_auc_score(now, prev)), "agree": float(np.mean(prev == now))}
    out: dict[str, object] = {
        "minutes": int(keep.sum()),
        "on_shelf": float(y.mean()),
        "cut_s": a.cut,
        "previous_minute": prev_row,
    }
    metric_sets = {
        "request rates": ("rate",),
        "request rates, CPU use": ("rate", "cpu"),
        "request rates, CPU use, memory": ("rate", "cpu", "memory"),
    }
    models = {
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "gradient boosting": lambda: HistGradientBoostingClassifier(random_state=0),
    }
    rows = []
    for name, metrics in metric_sets.items():
        cols = [
            v[keep]
            for svc in sorted(day.services)
            for m, v in sorted(day.services[svc].items())
            if m in metrics and np.isfinite(v[keep]).mean() > 0.9
        ]
        x = np.column_stack(cols)
        ok = np.isfinite(x).all(axis=1)
        majority = max(y[ok].mean(), 1 - y[ok].mean())
        for mname, make in models.items():
            cv = KFold(5, shuffle=False)
            auc = cross_val_score(make(), x[ok], y[ok], cv=cv, scoring="roc_auc")
            acc = cross_val_score(make(), x[ok], y[ok], cv=cv, scoring="accuracy")
            rows.append(
                {
                    "inputs": name,
                    "model": mname,
                    "features": len(cols),
                    "minutes": int(ok.sum()),
                    "auc": float(auc.mean()),
                    "auc_folds": [float(v) for v in auc],
                    "right": float(acc.mean()),
                    "majority": float(majority),
                }
            )
    out["classifiers"] = rows
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "nezha_shelf.json").write_text(json.dumps(out, indent=1))
    print(
        f"{out['minutes']} quiet minutes, {y.mean():.1%} on the shelf (P99 > {a.cut} s); "
        f"the minute before: AUC {prev_row['auc']:.3f}, same side {prev_row['agree']:.1%}"
    )
    print(
        "| inputs (same minute) | model | features | AUC (5 folds in time order) | right "
        "| always the commoner side |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['inputs']} | {r['model']} | {r['features']} | {r['auc']:.3f} | "
            f"{r['right']:.1%} | {r['majority']:.1%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
