"""Recognise Nezha's injected faults with a classifier trained on the twin's failures only.

    python experiments/nezha_recognise.py --data ../shared/data/nezha-ob --out DIR
                                          [--traces FILE] [--kinds K ...] [--seed N]

1. Read one day of Nezha's layout (:func:`twin.predict.windows.read_nezha`: files by pattern).
2. Calibrate Online Boutique with the project's own calibration from the day's traces
   (``--traces``; default: span tables found under the data folder, else in a ``traces``
   folder beside it whose file names contain the data folder's name), ``--network full``
   as docs/calibration.md does.
3. Simulate the training set (:mod:`twin.predict.fingerprints`): each kind at every service,
   three intensities, the calibrated load (``--loads``), 20 fault-free runs, with the
   day's fault-free noise; cached under ``DIR``.
4. Fit the classifier (:mod:`twin.predict.recognise`) and, for each labelled fault, build
   the windows (5 minutes before, the fault's minutes) and rank services with it and with the
   statistical baseline (:mod:`twin.predict.localise`).
5. Report AS@1, AS@3 and kind accuracy for both (the baseline names no kind), the kinds'
   confusion, and false alarms over the fault-free windows after the last fault.

Nezha's fault types -> the twin's fault kinds (the one table, ``NEZHA_FAULT_KINDS`` in
twin/predict/windows.py; anything else is reported as unmapped and left out of the kind
accuracy, never a crash):

====================  ==============  =====================================================
Nezha type            twin kind       why
====================  ==============  =====================================================
``cpu_contention``    cpu_exhaustion  a CPU hog beside the pod: processing slows
``cpu_consumed``      cpu_exhaustion  the pod's own CPU burnt: processing slows
``network_delay``     latency         tc delay on the pod's interface: every call into it
``exception``         error_rate      the code path throws: a share of requests fail
``return``            error_rate      the code path returns early with an error
====================  ==============  =====================================================
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

FAULT_SECONDS = 180.0
BEFORE_SECONDS = 300.0


def find_traces(data: Path) -> list[Path]:
    """Span tables under ``data``, else in ``data/../traces`` named after ``data``'s folder."""
    own = sorted(p for p in data.rglob("*.csv") if "trace" in p.name or "spans" in p.name)
    if own:
        return own
    beside = data.parent / "traces"
    return sorted(p for p in beside.glob("*.csv") if data.name in p.name) if beside.is_dir() else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="one day of Nezha's layout")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--traces", type=Path, nargs="*", default=None)
    ap.add_argument("--kinds", nargs="*", default=None, help="default: the training set's")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--loads", type=float, nargs="*", default=[1.0])
    ap.add_argument("--none-runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from twin.calibrate import CalibrationConfig, run_calibration
    from twin.predict.fingerprints import FingerprintSpec, fingerprints
    from twin.predict.localise import changes, rank_services
    from twin.predict.recognise import fit
    from twin.predict.windows import nezha_kind, read_nezha, uninformative
    from twin.topology import Topology

    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tel, faults = read_nezha(a.data)
    for n in tel.notes:
        print("note:", n, flush=True)
    drop = uninformative(tel)
    print(
        f"read {len(tel.times)} windows, {len(tel.services)} services, {len(tel.edges)} edges, "
        f"{len(faults)} labelled faults; unmapped: {len(tel.unmapped)}; "
        f"uninformative: {sorted(drop)}",
        flush=True,
    )

    traces = a.traces if a.traces else find_traces(a.data)
    if not traces:
        print("no traces found: give --traces", flush=True)
        return 2
    run_calibration(
        CalibrationConfig(
            traces=tuple(traces),
            out=out / "calibration",
            name="online-boutique",
            predict_seconds=0,
            network="full",
        )
    )
    topo = Topology.load(out / "calibration" / "topology.yaml")

    busy = np.zeros(len(tel.times), dtype=bool)
    for f in faults:
        busy |= tel.mask(f.time, f.time + FAULT_SECONDS + tel.window, min_overlap=1.0)
    quiet = ~busy
    spec = FingerprintSpec(
        kinds=tuple(a.kinds) if a.kinds else FingerprintSpec().kinds,
        levels=a.levels,
        loads=tuple(a.loads),
        none_runs=a.none_runs,
        window_s=tel.window,
        before_s=BEFORE_SECONDS,
        during_s=FAULT_SECONDS,
    )
    t1 = time.time()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("simulating fingerprints", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        cases = fingerprints(topo, tel, quiet, spec, a.seed, out / "cache", tick)
    t2 = time.time()
    model = fit(cases, a.seed)
    t3 = time.time()

    rows: list[dict[str, Any]] = []
    for f in faults:
        ch = changes(tel, f.time, FAULT_SECONDS, BEFORE_SECONDS, drop)
        rec = model.recognise(ch)
        base = rank_services(ch)
        truth_kind = nezha_kind(f.type)
        ranked = [c.service for c in rec.root_cause]
        branked = [r.service for r in base]
        rows.append(
            {
                "fault": f.label,
                "service": f.service,
                "type": f.type,
                "kind_truth": truth_kind,
                "kind": rec.kind,
                "kind_probability": rec.kind_probability,
                "kinds": rec.kinds,
                "root_cause": [c.model_dump() for c in rec.root_cause[:5]],
                "rank": ranked.index(f.service) + 1 if f.service in ranked else None,
                "baseline": [
                    {"service": r.service, "score": r.score, "metric": r.metric} for r in base[:5]
                ],
                "baseline_rank": branked.index(f.service) + 1 if f.service in branked else None,
            }
        )

    def at(k: int, key: str) -> float:
        return sum(1 for r in rows if r[key] is not None and r[key] <= k) / len(rows)

    mapped = [r for r in rows if r["kind_truth"] is not None]
    kind_acc = (
        sum(r["kind"] == r["kind_truth"] for r in mapped) / len(mapped) if mapped else math.nan
    )
    confusion = Counter((r["kind_truth"], r["kind"]) for r in mapped)

    # false alarms: every window after the last fault's end (fault-free), as a suspected start
    last_end = max(f.time for f in faults) + FAULT_SECONDS + tel.window if faults else -math.inf
    starts = [
        t for t in tel.times if t - BEFORE_SECONDS > last_end and t + FAULT_SECONDS <= tel.times[-1]
    ]
    recs = model.recognise_many(
        [changes(tel, float(t), FAULT_SECONDS, BEFORE_SECONDS, drop) for t in starts]
    )
    firing = [r.kind != "none" and r.kind_probability >= 0.5 for r in recs]
    alarms = sum(1 for i, x in enumerate(firing) if x and (i == 0 or not firing[i - 1]))
    hours = len(starts) * tel.window / 3600.0
    t4 = time.time()
    summary = {
        "faults": len(rows),
        "classifier": {"AS@1": at(1, "rank"), "AS@3": at(3, "rank"), "kind_accuracy": kind_acc},
        "baseline": {"AS@1": at(1, "baseline_rank"), "AS@3": at(3, "baseline_rank")},
        "kinds_mapped": len(mapped),
        "unmapped_types": sorted({r["type"] for r in rows if r["kind_truth"] is None}),
        "kind_confusion": {f"{t} -> {p}": n for (t, p), n in sorted(confusion.items())},
        "false_alarms": {
            "windows": len(starts),
            "hours": hours,
            "windows_firing": int(sum(firing)),
            "alarms": alarms,
            "alarms_per_hour": alarms / hours if hours else math.nan,
        },
        "training_cases": len(cases),
        "spec": spec.model_dump(mode="json"),
        "seconds": {"read": t1 - t0, "fingerprints": t2 - t1, "fit": t3 - t2, "evaluate": t4 - t3},
        "unmapped_metrics": list(tel.unmapped),
        "uninformative_metrics": sorted(f"{s}:{m}" for s, m in drop),
        "notes": list(tel.notes),
    }
    (out / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    md = table(rows, summary)
    (out / "results.md").write_text(md)
    print(md)
    return 0


def table(rows: list[dict[str, Any]], s: dict[str, Any]) -> str:
    lines = [
        "| fault (UTC, service, type) | kind (truth) | classifier kind (p) | classifier top 3 "
        "(p) | rank | baseline top 3 (metric) | rank |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        top = ", ".join(f"{c['service']} {c['probability']:.2f}" for c in r["root_cause"][:3])
        btop = ", ".join(f"{b['service']} ({b['metric']})" for b in r["baseline"][:3])
        lines.append(
            f"| {r['fault']} | {r['kind_truth'] or 'unmapped'} | {r['kind']} "
            f"({r['kind_probability']:.2f}) | {top} | {r['rank'] or '-'} | {btop} "
            f"| {r['baseline_rank'] or '-'} |"
        )
    c, b, fa = s["classifier"], s["baseline"], s["false_alarms"]
    lines.append(
        f"\n{s['faults']} faults. Classifier (trained on {s['training_cases']} simulated cases "
        f"only): AS@1 {c['AS@1']:.1%}, AS@3 {c['AS@3']:.1%}, kind right "
        f"{c['kind_accuracy']:.1%} of {s['kinds_mapped']} mapped. Baseline (largest "
        f"standardised change): AS@1 {b['AS@1']:.1%}, AS@3 {b['AS@3']:.1%}. Kind confusion "
        f"(truth -> said): "
        + ", ".join(f"{k}: {v}" for k, v in s["kind_confusion"].items())
        + f". Fault-free after the last fault: {fa['windows']} windows ({fa['hours']:.1f} h), "
        f"{fa['windows_firing']} recognised as a fault, {fa['alarms']} alarms "
        f"({fa['alarms_per_hour']:.2f} per hour)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
