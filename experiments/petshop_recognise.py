"""Root-cause ranking of ``twin watch`` on PetShop's labelled issues, beside the baseline.

    python experiments/petshop_recognise.py --data ../shared/data/petshop --out DIR
        [--levels low_traffic high_traffic] [--split train] [--recogniser auto|none]

For each traffic level:

1. The twin of the level, built from its normal operation (``noissue/metrics.csv`` and
   ``graph.csv``) as ``experiments/petshop_heldout.py`` builds it (CloudWatch aggregates:
   nodes, calls per request, self times, intrinsic failures).
2. For each issue folder of the split, the watch replays it as ``twin watch TOPOLOGY
   --replay ISSUE --format petshop [--recogniser auto]`` does (:func:`run_watch`: the normal
   period first as the baseline, then the issue's rows). The watch's ranking is the
   ``root_cause`` of the first firing alert raised on the issue's rows; an issue without an
   alert is a miss at every rank.
3. The statistical baseline (:func:`twin.predict.localise.rank_services`, BARO / N-sigma
   style: each node's largest standardised change) on the same windows: the issue's rows
   against the normal period before them.
4. Top-1 and top-3 of the labelled root-cause node (``target.json``: ``root_cause.node``),
   per level and overall. Writes ``results.json`` and ``results.md``.

With ``--recogniser auto`` the classifier is trained once per level on the level's twin's
simulated failures (cached under ``DIR/cache``), with the noise of the first issue's normal
period, and reused for the level's other issues.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def topology_for(level: Path) -> Any:
    """The level's twin from its normal operation, as ``experiments/petshop_heldout.py``
    builds it (:func:`twin.calibrate.petshop.calibrate_level`)."""
    from twin.calibrate.petshop import calibrate_level
    from twin.io import parse_model
    from twin.topology import Topology

    doc, _, _ = calibrate_level(level)
    return parse_model(Topology, doc)


def truth(issue: Path) -> tuple[str, float]:
    """The labelled root-cause node and the time the issue was seen (unix seconds)."""
    doc = json.loads((issue / "target.json").read_text(encoding="utf-8"))
    return str(doc["root_cause"]["node"]), float(doc["target"]["timestamp"])


def rank_of(name: str, ranking: list[str]) -> int | None:
    """1-based position of ``name`` in ``ranking`` (None when absent)."""
    return ranking.index(name) + 1 if name in ranking else None


def baseline_ranking(issue: Path, seen: float | None) -> tuple[list[str], list[str]]:
    """The statistical localiser on the issue's windows against the normal period before
    them: node names, most changed first, and the metric that moved most for each. With
    ``seen`` (the labelled time) the fault's windows start at the row holding it, else they
    are all of the issue's rows (what the watch has, unlabelled)."""
    from twin.predict.localise import changes, rank_services
    from twin.predict.sources import replay
    from twin.predict.windows import from_windows

    rec = replay(issue, "petshop")
    tel = from_windows(rec.items, rec.calls)
    normal = [w for w in rec.items if w.baseline]
    rows = [w for w in rec.items if not w.baseline]
    if seen is not None:
        rows = [w for w in rows if w.time > seen] or rows
    start = rows[0].time - rows[0].seconds
    during = rows[-1].time - start
    before = normal[-1].time - (normal[0].time - normal[0].seconds) if normal else during
    ranked = rank_services(changes(tel, start, during, before))
    return [r.service for r in ranked], [r.metric for r in ranked]


def watch_ranking(issue: Path, topo: Any, out: Path, recogniser: str | None) -> dict[str, Any]:
    """``twin watch --replay ISSUE --format petshop`` through the library; the first firing
    alert raised on the issue's rows."""
    from twin.predict.outputs import WatchRun, run_watch

    run = WatchRun(
        topology=topo, out=out, replay=issue, format="petshop", recogniser=recogniser, seed=1
    )
    t0 = time.perf_counter()
    res = run_watch(run)
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines() if x.strip()]
    timeline = json.loads((out / "timeline.json").read_text())
    issue_times = [w["time"] for w in timeline["windows"] if not w["baseline"]]
    firing = [a for a in alerts if a["status"] == "firing" and a["time"] in issue_times]
    first = min(firing, key=lambda a: a["time"]) if firing else None
    return {
        "recogniser": res.recogniser,
        "seconds": time.perf_counter() - t0,
        "alerts_on_issue": len(firing),
        "alert_window": issue_times.index(first["time"]) + 1 if first else None,
        "kind": first["kind"] if first else None,
        "ranking": list(first["root_cause"]) if first else [],
        "probabilities": list(first.get("root_cause_probability", [])) if first else [],
    }


def share(rows: list[dict[str, Any]], key: str, k: int) -> tuple[int, int]:
    n = sum(1 for r in rows if r[key] is not None and r[key] <= k)
    return n, len(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the petshop folder")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "petshop-recognise")
    ap.add_argument("--levels", nargs="*", default=["low_traffic", "high_traffic"])
    ap.add_argument("--split", default="train")
    ap.add_argument("--recogniser", default="auto", help="auto, a folder, or none")
    ap.add_argument(
        "--summarise",
        action="store_true",
        help="only rebuild results.md/json from the levels' results-LEVEL.json in --out "
        "(levels may run as separate processes)",
    )
    a = ap.parse_args()
    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CACHE_HOME", str(out / "cache"))
    recogniser = None if a.recogniser == "none" else a.recogniser
    for level in [] if a.summarise else a.levels:
        rows: list[dict[str, Any]] = []
        root = a.data / level
        topo = topology_for(root)
        issues = sorted(
            (p for p in (root / a.split).iterdir() if (p / "target.json").is_file()),
            key=lambda p: (len(p.name), p.name),
        )
        for issue in issues:
            cause, seen = truth(issue)
            w = watch_ranking(issue, topo, out / level / issue.name, recogniser)
            base, metrics = baseline_ranking(issue, seen)
            unlabelled, _ = baseline_ranking(issue, None)
            row = {
                "level": level,
                "issue": issue.name,
                "root_cause": cause,
                "watch": w,
                "watch_rank": rank_of(cause, w["ranking"]),
                "baseline": base[:5],
                "baseline_metric": metrics[:5],
                "baseline_rank": rank_of(cause, base),
                "unlabelled_rank": rank_of(cause, unlabelled),
            }
            rows.append(row)
            print(
                f"{level} {issue.name}: watch rank {row['watch_rank']} "
                f"({', '.join(w['ranking'][:3])}), baseline rank {row['baseline_rank']} "
                f"({', '.join(base[:3])})",
                flush=True,
            )
        (out / f"results-{level}.json").write_text(
            json.dumps({"rows": rows}, indent=1), encoding="utf-8"
        )
    return summarise(out)


def summarise(out: Path) -> int:
    """results.md and results.json from every level's ``results-LEVEL.json`` in ``out``."""
    rows = [
        r
        for p in sorted(out.glob("results-*.json"))
        for r in json.loads(p.read_text(encoding="utf-8"))["rows"]
    ]
    levels = list(dict.fromkeys(r["level"] for r in rows))
    lines = [
        "| level | issue | root cause | watch: first alert's kind | watch top 3 | rank |"
        " baseline top 3 (metric) | rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w = r["watch"]
        top = ", ".join(
            f"{s} {p:.2f}" for s, p in zip(w["ranking"][:3], w["probabilities"][:3], strict=False)
        )
        btop = ", ".join(
            f"{s} ({m})" for s, m in zip(r["baseline"][:3], r["baseline_metric"][:3], strict=True)
        )
        lines.append(
            f"| {r['level']} | {r['issue']} | {r['root_cause']} | {w['kind'] or '-'} | "
            f"{top or 'no alert'} | {r['watch_rank'] or '-'} | {btop} | "
            f"{r['baseline_rank'] or '-'} |"
        )
    summary: dict[str, Any] = {}
    lines += [
        "",
        "| | issues | watch top-1 | watch top-3 | baseline top-1 | baseline top-3 |"
        " baseline, all issue rows: top-1 | top-3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in [*levels, "all"]:
        rs = [r for r in rows if level in ("all", r["level"])]
        if not rs:
            continue
        fig = {
            f"{who}_top{k}": share(rs, f"{who}_rank", k)
            for who in ("watch", "baseline", "unlabelled")
            for k in (1, 3)
        }
        summary[level] = {k: {"hits": n, "of": d} for k, (n, d) in fig.items()}
        cells = [f"{n}/{d} ({100.0 * n / d:.0f}%)" for n, d in fig.values()]
        lines.append(f"| {level} | {len(rs)} | {' | '.join(cells)} |")
    recs = sorted({r["watch"]["recogniser"] for r in rows})
    lines += ["", *(f"watch: {x}" for x in recs)]
    (out / "results.json").write_text(
        json.dumps({"rows": rows, "summary": summary}, indent=1), encoding="utf-8"
    )
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
