"""Running the plan: one run as a pure function, on local processes or on Dask; part files."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from twin.errors import InputError, TwinError
from twin.outcomes import REASONS
from twin.sim.budget import Budget, CallGraph, estimate
from twin.topology import Topology

if TYPE_CHECKING:
    pass

from twin.campaign.generate import (
    RunTask,
    _digest,
)
from twin.campaign.spec import (
    AFFECTED_SHARE,
)

# -- one run --------------------------------------------------------------------------------


_STR, _INT, _FLOAT, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_COLUMNS: list[tuple[str, pa.DataType]] = [
    *[(c, _STR) for c in ("run_id", "campaign", "scenario")],
    ("scenario_index", _INT), ("policy", _STR), ("policy_index", _INT),
    *[(c, _INT) for c in ("replication", "seed")],
    *[(c, _STR) for c in ("origin", "fault_kind", "target")],
    *[(c, _FLOAT) for c in ("intensity", "load", "fault_start", "fault_duration")],
    *[(c, _INT) for c in ("faults", "incidents", "requests", "succeeded", "failed")],
    *[(c, _INT) for c in ("in_flight", "corrupted")],
    *[(c, _FLOAT) for c in ("availability", "error_rate", "availability_fault")],
    *[(f"latency_{q}", _FLOAT) for q in ("mean", "p50", "p95", "p99")],
    ("throughput", _FLOAT),
    *[(f"failures_{r}", _INT) for r in REASONS],
    *[(c, _BOOL) for c in ("slo_latency_met", "slo_availability_met", "slo_breached")],
    ("blast_radius", _INT),
    *[(c, _STR) for c in ("affected_services", "service_failures", "saturated", "curve")],
    ("replica_seconds", _FLOAT), ("events", _INT), ("wall_seconds", _FLOAT),
    ("verdict", _STR),
]  # fmt: skip
SCHEMA = pa.schema(_COLUMNS)
"""The fixed layout of ``runs.parquet`` (JSON columns hold per-service detail and curves)."""

VOLATILE = ("wall_seconds",)
"""Columns that measure the machine, not the system: they differ between identical runs."""


CURVE_FIELDS = ("time", "arrivals", "succeeded", "failed", "p99")
"""What each point of the ``curve`` column holds (entries summed; p99 is the worst entry's)."""


def _curve(rows: Iterable[tuple[Any, ...]], points: int = 120) -> list[list[float]]:
    """Entries' arrivals, outcomes and worst p99 per window, merged to at most ``points``."""
    slot = {"arrivals": 1, "succeeded": 2, "failed": 3}
    by_t: dict[float, list[float]] = {}
    for t, _w, scope, _name, _family, metric, value in rows:
        if scope != "entry":
            continue
        cell = by_t.setdefault(float(t), [float(t), 0.0, 0.0, 0.0, 0.0])
        if metric in slot:
            cell[slot[metric]] += value
        elif metric == "p99" and not math.isnan(value):
            cell[4] = max(cell[4], float(value))
    cells = [by_t[t] for t in sorted(by_t)]
    step = max(1, math.ceil(len(cells) / points))
    out = []
    for i in range(0, len(cells), step):
        chunk = cells[i : i + step]
        sums = [sum(c[k] for c in chunk) for k in (1, 2, 3)]
        out.append([chunk[0][0], *sums, round(max(c[4] for c in chunk), 6)])
    return out


def execute_run(task: RunTask, topology: Topology, budget: Budget | None = None) -> dict[str, Any]:
    """Simulate one run and flatten it to a row; a pure function of its arguments (but for
    ``wall_seconds``), which is what makes local and cluster results identical.

    A run stopped with a verdict (:class:`twin.results.Verdict`) keeps its figures until the
    stop, breaches the SLO (the system could not serve the load) and carries the verdict's
    JSON in ``verdict``."""
    from twin.sim import Simulation

    started = time.perf_counter()
    res = Simulation(topology, task.doc, task.policy_doc, series="entries", budget=budget).run()
    s = res.summary
    ok, bad = int(s.succeeded), int(s.failed)
    avail = ok / (ok + bad) if ok + bad else None
    p99 = s.latency.p99
    slo = task.slo
    lat_met = None if slo.latency_p99 is None else (p99 is not None and p99 <= slo.latency_p99)
    av_met = None if slo.availability is None else (avail is not None and avail >= slo.availability)
    affected, failures_by_service, saturated = [], {}, []
    for name, sv in s.services.items():
        own_p99 = sv.latency.p99
        slow = slo.latency_p99 is not None and own_p99 is not None and own_p99 > slo.latency_p99
        if sv.failed:
            failures_by_service[name] = [sv.failed, sv.arrivals]
        if slow or sv.failed >= AFFECTED_SHARE * max(1, sv.arrivals):
            affected.append(name)
        if (sv.utilization or 0.0) >= 0.95:
            saturated.append(name)
    curve = _curve(res.timeseries.rows)
    fs, fd = task.params["fault_start"], task.params["fault_duration"]
    in_fault = [c for c in curve if fs is not None and fs <= c[0] < fs + (fd or task.doc.duration)]
    answered = sum(c[2] + c[3] for c in in_fault)
    row: dict[str, Any] = {
        "run_id": task.run_id,
        "campaign": task.campaign,
        "scenario": task.scenario,
        "scenario_index": task.scenario_index,
        "policy": task.policy,
        "policy_index": task.policy_index,
        "replication": task.replication,
        "seed": task.seed,
        **task.params,
        "requests": int(s.requests),
        "succeeded": ok,
        "failed": bad,
        "in_flight": int(s.in_flight),
        "corrupted": int(s.corrupted),
        "availability": avail,
        "error_rate": None if avail is None else 1.0 - avail,
        "availability_fault": (1.0 - sum(c[3] for c in in_fault) / answered if answered else None),
        "latency_mean": s.latency.mean,
        "latency_p50": s.latency.p50,
        "latency_p95": s.latency.p95,
        "latency_p99": p99,
        "throughput": s.throughput,
        **{f"failures_{r}": int(s.failures.get(r, 0)) for r in REASONS},
        "slo_latency_met": lat_met,
        "slo_availability_met": av_met,
        "slo_breached": lat_met is False or av_met is False or s.verdict is not None,
        "blast_radius": len(affected),
        "affected_services": json.dumps(affected),
        "service_failures": json.dumps(failures_by_service, sort_keys=True),
        "saturated": json.dumps(saturated),
        "curve": json.dumps(curve),
        "replica_seconds": float(s.replica_seconds),
        "events": int(s.events),
        "wall_seconds": time.perf_counter() - started,
        "verdict": None if s.verdict is None else json.dumps(s.verdict.to_json()),
    }
    return row


# -- execution ------------------------------------------------------------------------------


def check_budget(tasks: Sequence[RunTask], topology: Topology, budget: Budget) -> None:
    """Refuse the campaign, before anything is written, when one of its runs is above the
    budget (one line naming the run's scenario and policy)."""
    graphs: dict[int, CallGraph] = {}
    for t in tasks:
        graph = graphs.get(t.policy_index)
        if graph is None:
            graph = graphs[t.policy_index] = CallGraph(topology, t.policy_doc)
        est = estimate(topology, t.doc, t.policy_doc, series="entries", graph=graph)
        try:
            budget.check(est)
        except InputError as exc:
            where = f"scenario {t.scenario!r}, policy {t.policy!r}"
            raise InputError(exc.detail, where=where) from None


_WORKER_TOPOLOGY: Topology | None = None
_WORKER_BUDGET: Budget | None = None


def _init_worker(topology: Topology, parent: int, budget: Budget | None = None) -> None:
    """Runs in each pool process: keeps the topology, and ties the process's life to the
    campaign's, so a killed campaign leaves no idle workers behind (Linux parent-death
    signal; elsewhere they end when they next find the pool gone)."""
    global _WORKER_TOPOLOGY, _WORKER_BUDGET
    _WORKER_TOPOLOGY = topology
    _WORKER_BUDGET = budget
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the campaign died before the signal was armed
        os._exit(1)


def _execute_in_worker(task: RunTask) -> dict[str, Any]:
    if _WORKER_TOPOLOGY is None:  # pragma: no cover - the initializer always runs first
        raise TwinError("worker started without a topology")
    return execute_run(task, _WORKER_TOPOLOGY, _WORKER_BUDGET)


Emit = Callable[[dict[str, Any]], None]


def run_local(
    tasks: Sequence[RunTask],
    topology: Topology,
    workers: int,
    emit: Emit,
    *,
    max_restarts: int = 5,
    budget: Budget | None = None,
) -> None:
    """Run tasks on ``workers`` local processes, emitting rows as they finish (any order).

    A worker process that dies (OOM killer, ``kill -9``) breaks Python's pool; the pool is
    rebuilt and the unfinished runs go again, up to ``max_restarts`` times.
    """
    if workers <= 1:
        for t in tasks:
            emit(execute_run(t, topology, budget))
        return
    pending = {t.run_id: t for t in tasks}
    restarts = 0
    while pending:
        futures: dict[Future[dict[str, Any]], str] = {}
        try:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(pending)),
                initializer=_init_worker,
                initargs=(topology, os.getpid(), budget),
            ) as pool:
                for t in pending.values():
                    futures[pool.submit(_execute_in_worker, t)] = t.run_id
                waiting = set(futures)
                while waiting:
                    done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                    for fut in done:
                        row = fut.result()
                        pending.pop(row["run_id"], None)
                        emit(row)
        except BrokenProcessPool:
            for fut, rid in futures.items():  # keep what finished before the break
                if rid in pending and fut.done() and not fut.cancelled() and not fut.exception():
                    pending.pop(rid)
                    emit(fut.result())
            restarts += 1
            if restarts > max_restarts:
                raise TwinError(
                    f"worker processes died {restarts} times; {len(pending)} runs unfinished "
                    "(finished runs are saved: run the campaign again to resume)"
                ) from None


def _rebuild_topology(data: dict[str, Any]) -> Topology:
    return Topology.from_dict(data, source="campaign topology")


def run_dask(
    tasks: Sequence[RunTask],
    topology: Topology,
    address: str,
    emit: Emit,
    budget: Budget | None = None,
) -> None:
    """Run tasks on a Dask distributed cluster at ``address`` (``tcp://host:8786``).

    The topology travels once, as a small task that rebuilds it from plain data (not as
    scattered data, which the cluster cannot recover when the worker holding it dies). A worker
    that dies is the scheduler's business: it reruns its tasks elsewhere (up to its
    ``allowed-failures``), recomputing the topology if need be.
    """
    import distributed

    dist: Any = distributed  # untyped: keep its calls out of mypy's strict checks
    try:
        client = dist.Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler: {exc}", source=address) from None
    with client, client.as_current():
        data = topology.to_dict()
        topo = client.submit(_rebuild_topology, data, key=f"twin-topology-{_digest(data)[:24]}")
        futures = [
            client.submit(execute_run, t, topo, budget, key=f"twin-run-{t.run_id}", retries=2)
            for t in tasks
        ]
        for fut in dist.as_completed(futures):
            emit(fut.result())
            fut.release()


# -- files ----------------------------------------------------------------------------------


def _write_table(table: pa.Table, path: Path) -> None:
    """Write then rename, so a kill never leaves a half-written file under the real name."""
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


def finished_rows(out: Path) -> dict[str, dict[str, Any]]:
    """Rows already on disk (consolidated file and part files), by run id."""
    found: dict[str, dict[str, Any]] = {}
    runs = out / "runs.parquet"
    parts = out / "parts"
    if runs.exists():
        try:
            for r in pq.read_table(runs).to_pylist():
                found[r["run_id"]] = r
        except (OSError, pa.ArrowException):
            runs.unlink()  # unreadable: its runs are redone
    if parts.is_dir():
        for p in sorted(parts.iterdir()):
            if p.name.startswith("."):
                p.unlink()  # a write interrupted before its rename
                continue
            try:
                for r in pq.read_table(p, schema=SCHEMA).to_pylist():
                    found[r["run_id"]] = r
            except (OSError, pa.ArrowException):
                p.unlink()
    return found
