"""The campaign driver: plan, run (resuming), consolidate, analyse, store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq

from twin.io import output_dir
from twin.results import write_json
from twin.sim.budget import Budget

if TYPE_CHECKING:
    from twin.store import Store

from twin.campaign.execute import (
    Emit,
    _table,
    _write_table,
    check_budget,
    finished_rows,
    run_dask,
    run_local,
)
from twin.campaign.generate import Plan, load_campaign
from twin.campaign.tables import (
    aggregate,
    failure_modes,
    mitigations,
)

# -- the campaign -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a campaign produced; the files in ``out`` hold the same."""

    out: Path
    runs: pd.DataFrame
    aggregated: pd.DataFrame
    summary: dict[str, Any]
    modes: list[dict[str, Any]]
    mitigations: list[dict[str, Any]]
    executed: int
    reused: int


def run_campaign(
    plan: Plan | str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    cluster: str | None = None,
    store: Store | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_row: Emit | None = None,
    budget: Budget | None = None,
) -> Outcome:
    """Run every unfinished run of ``plan``, then consolidate and analyse.

    ``plan`` is a loaded plan or the path of a campaign file (loaded with
    :func:`load_campaign`), so callers without the CLI (the explorer) need one call.
    ``on_progress(done, total)`` is called after every finished run.
    Finished runs found in ``out`` (from an earlier, possibly killed, invocation) are reused.
    With a ``store``, each run is also recorded in its own transaction as it finishes, and the
    failure modes and mitigations at the end in one more. Every run is checked against
    ``budget`` (default: the limits of :mod:`twin.sim.budget`) before anything is written.
    """
    if not isinstance(plan, Plan):
        plan = load_campaign(plan)
    budget = budget or Budget.from_limits()
    tasks = plan.tasks()
    check_budget(tasks, plan.topology, budget)
    out = Path(out)
    parts = out / "parts"
    output_dir(parts, report_as=out)
    started = time.perf_counter()
    wanted = {t.run_id for t in tasks}
    rows = {k: v for k, v in finished_rows(out).items() if k in wanted}
    todo = [t for t in tasks if t.run_id not in rows]
    key = plan.key
    cid = None
    if store is not None:
        cid = store.begin_campaign(
            key=key,
            name=plan.campaign.name,
            topology=plan.topology.name,
            spec=plan.campaign.model_dump(mode="json"),
            runs_total=len(tasks),
        )
        store.add_runs(cid, list(rows.values()))
    done = len(rows)
    if on_progress:
        on_progress(done, len(tasks))

    def emit(row: dict[str, Any]) -> None:
        nonlocal done
        _write_table(_table([row]), parts / f"{row['run_id']}.parquet")
        if store is not None and cid is not None:
            store.add_runs(cid, [row])
        rows[row["run_id"]] = row
        done += 1
        if on_row:
            on_row(row)
        if on_progress:
            on_progress(done, len(tasks))

    if todo:
        if cluster:
            run_dask(todo, plan.topology, cluster, emit, budget)
        else:
            run_local(todo, plan.topology, workers, emit, budget=budget)
    ordered = [rows[t.run_id] for t in tasks]
    _write_table(_table(ordered), out / "runs.parquet")
    for p in parts.iterdir():
        p.unlink()
    parts.rmdir()
    runs = pq.read_table(out / "runs.parquet").to_pandas()
    agg = aggregate(runs, plan)
    agg.to_parquet(out / "aggregated.parquet", index=False)
    modes = failure_modes(runs, agg, plan, key)
    mits = mitigations(modes, agg, plan)
    if store is not None and cid is not None:
        store.finish_campaign(cid, modes, mits)
    summary = _summary(plan, runs, agg, modes, mits, key)
    summary["engine"] = f"dask {cluster}" if cluster else f"local, {workers} process(es)"
    summary["executed"] = len(todo)
    summary["reused"] = len(tasks) - len(todo)
    summary["wall_seconds"] = time.perf_counter() - started
    write_json(out / "summary.json", summary)
    return Outcome(out, runs, agg, summary, modes, mits, len(todo), len(tasks) - len(todo))


def _summary(
    plan: Plan,
    runs: pd.DataFrame,
    agg: pd.DataFrame,
    modes: list[dict[str, Any]],
    mits: list[dict[str, Any]],
    key: str,
) -> dict[str, Any]:
    c = plan.campaign
    graph = agg[agg["graph_availability"].notna()]
    return {
        "campaign": c.name,
        "key": key,
        "topology": plan.topology.name,
        "source": plan.source,
        "runs": len(runs),
        "scenarios": len(plan.scenarios),
        "policies": list(plan.policies),
        "replications": c.replications,
        "seeds": plan.seeds,
        "slo": c.judged_slo(plan.topology).model_dump(exclude_none=True),
        "runs_breaching_slo": int(runs["slo_breached"].sum()),
        "simulated_requests": int(runs["requests"].sum()),
        "failure_modes": modes,
        "mitigations": mits,
        "scenario_table": json.loads(agg.to_json(orient="records")),
        "graph_baseline": [
            {
                "scenario": r["scenario"],
                "policy": r["policy"],
                "simulated": r["availability"],
                "graph": r["graph_availability"],
            }
            for _, r in graph.iterrows()
        ],
        "history": plan.history,
        "notes": plan.notes,
    }
