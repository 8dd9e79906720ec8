"""Nezha's layout (one day of ``rca_data/DAY/``) as an :class:`~.document.Observed`, and its
fault types as twin faults.

Files are found by pattern and header through :func:`twin.calibrate.nezha.read_day` (the one
Nezha reader): the SLI table(s), ``*_metric.csv`` and ``*fault_list*.json``. A window is one
SLI minute: the front end's P50, P99 and success, at the summed request rate of the entry
services' pods (``PodWorkload(Ops)``), with the mean latency estimated from the P50, P90, P95
and P99 (:func:`twin.calibrate.workload_model.mean_from_quantiles`) for the workload fit.

Fault types (the fault list gives a type and a pod, no magnitude and no end):

- ``cpu_contention``, ``cpu_consumed`` -> ``cpu_exhaustion`` with a ``quota_share``: a hog
  of busy threads (the magnitude, fitted) inside the pod takes its fair share of the pod's
  CFS quota (:func:`.mapping.cpu_hog`), at the CPU limit that gives the twin the pod's own
  capacity: its request rate over its CPU use (share of the limit) in the day's fault-free
  minutes, the utilisation law. A pod without both figures falls back to ``latency`` at the
  service, an exponential extra time (mean: the magnitude, fitted) that holds a worker;
- ``network_delay`` -> ``latency`` on every call edge into the service (seconds, fitted);
- ``exception``, ``return`` at a service no entry arrives at -> ``error_rate`` 1.0 there:
  the faulted code path always fails, and the twin says which share of entry requests
  reach it (no magnitude to fit);
- ``exception``, ``return`` at an entry service: **unmapped**; the list does not say which
  of the entry's operations fails, and failing all of them is a different fault;
- any other type: **unmapped**.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from twin.calibrate.nezha import read_day
from twin.calibrate.workload_model import mean_from_quantiles
from twin.faults import ErrorRateFault, LatencyFault
from twin.replay.document import Fault, Figures, Observed, Window
from twin.replay.mapping import (
    Plan,
    cpu_hog,
    edges_into,
    entry_services,
    fit_on_for,
    kind_grid,
)
from twin.topology import Topology

FAULT_SECONDS = 180.0
"""How long a fault of the list lasts when nothing says otherwise (Nezha's injector holds
each for 3 minutes; the list gives only the start)."""

QUIET_MARGIN = 600.0
"""A pod's CPU per request is read from the minutes farther than this from every fault (the
replay's fault-free minutes, :attr:`twin.replay.run.ReplayConfig.margin`)."""

QUANTILES = (0.5, 0.9, 0.95, 0.99)
"""The SLI table's latency quantiles (its mean is estimated from them)."""
CPU_TYPES = ("cpu_contention", "cpu_consumed")
NETWORK_TYPES = ("network_delay",)
ERROR_TYPES = ("exception", "return")


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def quiet_minutes(
    times: np.ndarray, starts: list[float], seconds: float, margin: float
) -> np.ndarray:
    """The minutes (each ends at its time, one step long) farther than ``margin`` from every
    fault of ``seconds`` starting at ``starts``: those the replay calls fault-free."""
    quiet = np.ones(len(times), dtype=bool)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 60.0
    for s in starts:
        quiet &= ~((times > s - margin) & (times - step < s + seconds + margin))
    return quiet


def _baseline(series: dict[str, np.ndarray], quiet: np.ndarray) -> Figures | None:
    """A pod's mean request rate and CPU use (share of its limit) over the quiet minutes
    where it has both: their ratio is its CPU per request by the utilisation law, pooled
    over every such minute; None without both."""
    rate, cpu = series.get("rate"), series.get("cpu")
    if rate is None or cpu is None:
        return None
    ok = quiet & np.isfinite(rate) & np.isfinite(cpu) & (rate >= 0) & (cpu >= 0)
    if not ok.any():
        return None
    return Figures(rate=float(rate[ok].mean()), cpu=float(cpu[ok].mean()))


def read(
    folder: Path,
    topology: Topology,
    *,
    fault_seconds: float = FAULT_SECONDS,
    margin: float = QUIET_MARGIN,
) -> Observed:
    """The day in ``folder`` on the SLI table's minutes, with its fault list."""
    day = read_day(folder)
    entries = sorted(entry_services(topology))
    rates = [day.services[s]["rate"] for s in entries if "rate" in day.services.get(s, {})]
    rate = np.sum(rates, axis=0) if rates else np.full(len(day.times), math.nan)
    notes = list(day.notes)
    if not rates:
        notes.append(f"no pod table for the entry service(s) {', '.join(entries)}: rates unknown")
    # the SLI table publishes quantiles only: the workload fit reads their integral
    mean = mean_from_quantiles({q: day.entry[f"p{round(100 * q)}"] for q in QUANTILES})
    windows = []
    for i, t in enumerate(day.times):
        figs = {k: _num(float(day.entry[k][i])) for k in ("p50", "p99", "success")}
        if all(v is None for v in figs.values()):
            continue
        windows.append(
            Window(
                time=float(t),
                seconds=day.step,
                rate=_num(float(rate[i])),
                mean_estimate=_num(float(mean[i])),
                **figs,
            )
        )
    starts = [f.timestamp for f in day.faults]
    quiet = quiet_minutes(day.times, starts, fault_seconds, margin)
    baselines = {
        name: b for name, series in day.services.items() if (b := _baseline(series, quiet))
    }
    faults = [
        Fault(
            start=f.timestamp,
            end=f.timestamp + fault_seconds,
            target=f.service,
            type=f.type,
            label=f"{f.time[11:16] or f.timestamp} {f.service} {f.type}",
            baseline=baselines.get(f.service),
        )
        for f in day.faults
    ]
    return Observed(format="nezha", windows=windows, faults=faults, files=day.files, notes=notes)


def plan(fault: Fault, topology: Topology) -> Plan | str:
    """The twin's play of one Nezha fault, or why it has none."""
    svc = fault.target
    if svc not in topology.services:
        return f"no service {svc!r} in the topology"
    latency = LatencyFault.name
    if fault.type in CPU_TYPES:
        b = fault.baseline
        if b is not None and b.rate is not None and b.cpu is not None:
            hog = cpu_hog(svc, topology, b.rate, b.cpu)
            if hog is not None:
                return hog

        def cpu(x: float) -> list[dict[str, object]]:
            return [{"kind": latency, "target": svc, "delay": {"dist": "exponential", "mean": x}}]

        return Plan(
            kind=latency,
            what=f"{latency} {svc} (exponential)",
            build=cpu,
            value=None,
            grid=kind_grid(latency),
            fit_on="response_time",
        )
    if fault.type in NETWORK_TYPES:
        edges = edges_into(svc, topology)
        if not edges:
            return f"no call edge into {svc} in the topology"

        def net(x: float) -> list[dict[str, object]]:
            return [{"kind": latency, "target": e, "delay": x} for e in edges]

        return Plan(
            kind=latency,
            what=f"{latency} edges into {svc}",
            build=net,
            value=None,
            grid=kind_grid(latency),
            fit_on="response_time",
        )
    if fault.type in ERROR_TYPES:
        if svc in entry_services(topology):
            return (
                f"{fault.type} at the entry service {svc}: the fault list does not say which "
                "operation fails"
            )
        err = ErrorRateFault.name

        def fail(x: float) -> list[dict[str, object]]:
            return [{"kind": err, "target": svc, "probability": x}]

        return Plan(
            kind=err,
            what=f"{err} {svc}",
            build=fail,
            value=1.0,
            grid=(),
            fit_on=fit_on_for(err),
            fixed=True,
        )
    return f"no twin fault for the type {fault.type!r}"
