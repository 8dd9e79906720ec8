"""The replay's workload model: an open loop, or users who wait for their answers, as the
replay's own windows say, never the held-out faults' windows.

The test and the fit are :func:`twin.calibrate.workload_model.fit_workload` (the interactive
law ``X = N / (R + Z)`` against a constant rate) and
:func:`~twin.calibrate.workload_model.apply_workload`; this module chooses the windows they
read and carries the model through the replay:

- **Windows.** The fault-free windows (farther than the margin from every fault) and the
  windows of the faults the replay fits a magnitude on (``--fit first``); never a window of a
  held-out fault, nor of an unmapped one. Latency is the window's mean, or its estimate from
  quantiles (:attr:`.document.Window.mean_estimate`), or the integral of its P50 and P99.
- **Choice** (``auto``, the default): a closed loop already in the topology (``twin
  calibrate`` with metrics) is kept; otherwise the test decides. ``open`` makes every entry
  an open loop at its ``rate``; ``closed`` fits the law whatever the test says (a degenerate
  fit is an error). The fitted users are shared among the open entries by their rates.
- **Load at a window** (:func:`closed_at`): an open entry runs at the observed rate; a
  closed entry runs with the users the law gives for it, ``N = X (R + Z)`` at the observed
  rate ``X`` and mean latency ``R`` (the topology's own ``R`` where the windows have none),
  and the rate then follows from the system, as the real users' did.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

from twin.calibrate.workload_model import (
    ALPHA,
    apply_workload,
    fit_workload,
    mean_from_quantiles,
)
from twin.errors import InputError
from twin.replay.document import Figures, Window
from twin.topology import Topology, WorkloadEntry

Choice = Literal["auto", "open", "closed"]


def window_latency(w: Figures) -> float | None:
    """A window's mean latency: measured, estimated from quantiles, or the integral of its
    P50 and P99 (None without any)."""
    if w.mean is not None:
        return w.mean
    if isinstance(w, Window) and w.mean_estimate is not None:
        return w.mean_estimate
    if w.p50 is not None and w.p99 is not None:
        est = mean_from_quantiles({0.5: np.array([w.p50]), 0.99: np.array([w.p99])})
        return float(est[0])
    return None


def open_loop(topology: Topology) -> Topology:
    """Every entry an open loop at its ``rate`` (users, think time and open rate dropped)."""
    if not any(w.closed for w in topology.workload):
        return topology
    work = [
        w.model_dump(mode="json", exclude_none=True, exclude={"users", "think_time", "open_rate"})
        for w in topology.workload
    ]
    return Topology.from_dict(topology.to_dict() | {"workload": work}, source="open workload")


def choose(
    topology: Topology,
    choice: Choice,
    windows: Sequence[Window],
    sources: dict[str, int],
) -> tuple[Topology, dict[str, Any]]:
    """The topology with the workload model the windows support, and what was decided:
    ``model``, ``source`` (``topology``, ``fit`` or ``option``), the fit's figures, the
    windows used (``sources``: how many came from where), the entries as they run."""
    used = sorted(windows, key=lambda w: (w.segment, w.time))
    rate = np.array([w.rate if w.rate is not None else np.nan for w in used], dtype=float)
    lat = np.array([_or_nan(window_latency(w)) for w in used], dtype=float)
    fit = fit_workload(rate, lat, alpha=1.0 if choice == "closed" else ALPHA)
    info: dict[str, Any] = {
        "requested": choice,
        # a fit over no window has no median rate or latency: null, never a nan
        "fit": {k: None if _nan(v) else v for k, v in fit.to_dict().items()},
        "windows": {"n": len(used), **sources},
        "windows_used": [[w.segment, w.time] for w in used],
    }
    has_closed = any(w.closed for w in topology.workload)
    if choice == "open":
        topology, model, source = open_loop(topology), "open", "option"
    elif has_closed:
        model, source = "closed", "topology"
    elif fit.model == "closed":
        topology, model, source = _apply(topology, fit), "closed", "fit"
    elif choice == "closed":
        raise InputError(f"--workload closed: no closed loop fits the windows ({fit.reason})")
    else:
        model, source = "open", "fit"
    if choice == "closed" and source == "fit":
        info["fit"]["reason"] = (
            f"closed as --workload asks: N = {fit.users:.1f} users, Z = {fit.think_time:.2f} s "
            f"(F test against a constant rate: p = {fit.p_value:.2g})"
        )
    info |= {
        "model": model,
        "source": source,
        "entries": {
            w.entry: {"rate": w.rate}
            | (
                {"users": w.users, "think_time": w.think_time.expected()}
                if w.users is not None and w.think_time is not None
                else {}
            )
            for w in topology.workload
        },
    }
    return topology, info


def _nan(v: Any) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _or_nan(v: float | None) -> float:
    return float("nan") if v is None else v


def _apply(topology: Topology, fit: Any) -> Topology:
    """The fitted users shared among the open entries by their rates (the windows' rate is
    their total); the think time is the same for all."""
    entries = [w for w in topology.workload if not w.closed]
    total = sum(w.rate for w in entries)
    for w in entries:
        share = dataclasses.replace(fit, users=fit.users * w.rate / total)
        topology = apply_workload(topology, w.entry, share)
    return topology


def closed_at(w: WorkloadEntry, rate: float, latency: float | None) -> WorkloadEntry:
    """A closed (or mixed) entry at an observed load: ``rate`` requests per second at a mean
    latency ``latency`` (None: the entry's own, ``N / X - Z`` at its bundled state). The open
    rate scales with the load; the users are ``N = X (R + Z)`` for the users' share ``X``,
    rounded, at least 1; ``rate`` is kept within what they can send."""
    if w.users is None or w.think_time is None:
        return w.model_copy(update={"rate": rate})
    think = w.think_time.expected()
    scale = rate / w.rate
    open_rate = (w.open_rate or 0.0) * scale
    users_rate = max(rate - open_rate, 0.0)
    if latency is None:
        latency = max(w.users / max(w.rate - (w.open_rate or 0.0), 1e-12) - think, 0.0)
    users = max(1, round(users_rate * (latency + think)))
    update: dict[str, Any] = {"rate": min(rate, open_rate + users / think), "users": users}
    if w.open_rate is not None:
        update["open_rate"] = min(open_rate, update["rate"])
    return w.model_copy(update=update)


def latency_of(windows: Iterable[Window]) -> float | None:
    """Mean of the windows' mean latencies (None without any)."""
    v = [x for x in (window_latency(w) for w in windows) if x is not None]
    return float(np.mean(v)) if v else None


__all__ = ["Choice", "choose", "closed_at", "latency_of", "open_loop", "window_latency"]
