"""Which workload model fits an entry: an open loop, or users who wait for their answers.

An open loop (Poisson arrivals at a rate set outside the system) sends as fast when the
system is slow as when it is quick. A closed loop of ``N`` users who think ``Z`` seconds
between an answer and their next request sends at ``X = N / (R + Z)`` (the interactive
response-time law, ``R`` the mean response time): when latency rises, the rate falls. So
the evidence is in windows of the entry's observed rate and mean latency (per minute, say),
across quiet stretches and faults:

1. **Fit.** ``N`` and ``Z`` by robust non-linear least squares on the law itself,
   ``X_i = N / (R_i + Z)`` (soft-L1 loss with a scale of a tenth of the median rate, so a few
   odd windows do not pull the fit), from ``N = X (R + Z)`` at the median window as the start.
   The law is fitted on the rate, not linearised (``X R = N - Z X`` spreads the quiet windows'
   noise over the slope); the quiet windows fix ``N / Z`` and the slow ones fix ``Z``.
2. **Test.** The open loop is the law's limit ``Z -> inf`` with ``N / Z`` fixed (a constant
   rate): nested, one parameter fewer. The F test of nested least-squares models,
   ``F = (SSE_open - SSE_law) / (SSE_law / (n - 2))`` against ``F(1, n - 2)``, at level
   ``alpha`` (default 0.01), says whether the law explains the rates better than a constant.
   A rank test (Spearman's correlation of rate on latency) is reported too, but it is weak
   here: in quiet windows ``R`` moves by a few percent of ``R + Z``, below the rate's own
   noise, so the law predicts almost no correlation there, and quiet windows are most of a
   day; the F test weighs each window by how far the law says its rate should move. Windows
   next to each other are not independent (a fault lasts minutes), so the p-value is
   optimistic; the level is strict for that reason.
3. **Decision.** Closed when the test rejects the constant rate, the fit gives ``N > 0`` and
   ``Z > 0``, and the rate and latency move in opposite directions (Spearman below 0); open
   otherwise, with the reason said.

A mixed model (open arrivals beside the users) is not chosen here: with the rates of a quiet
system and a few faults, an open share and the users' ``N`` and ``Z`` trade off against each
other. Write ``open_rate`` by hand where it is known (a health check, a batch job).

Windows may give the mean latency directly (Prometheus: the duration sum over the count) or
only quantiles; :func:`mean_from_quantiles` integrates the quantile function then.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

from twin.calibrate.metrics import MetricMap, _by_name, _points, clean_dump
from twin.distributions import Exponential
from twin.topology import Topology

ALPHA = 0.01
"""Level of the F test of the interactive law against a constant rate."""
MIN_WINDOWS = 8
"""Fewer windows than this cannot tell a closed loop from an open one: the entry stays open."""


@dataclass(frozen=True)
class WorkloadFit:
    """What the windows say about an entry's workload (see the module's docstring)."""

    model: Literal["open", "closed"]
    windows: int
    """Windows with a finite, positive rate and a finite latency."""
    rate: float
    """Median rate over the windows, requests per second."""
    latency: float
    """Median mean latency over the windows, seconds."""
    spearman: float | None
    """Rank correlation of the rate with the latency."""
    p_value: float | None
    """p-value of the F test of the law against a constant rate."""
    alpha: float
    users: float | None
    """Fitted ``N`` (a closed loop), not rounded."""
    think_time: float | None
    """Fitted ``Z``, mean seconds between an answer and the next request."""
    sse_closed: float | None
    sse_open: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_from_quantiles(quantiles: Mapping[float, np.ndarray]) -> np.ndarray:
    """Mean per window from latency quantiles (probability -> values per window): the
    integral of the quantile function, linear between the given points, from 0 at
    probability 0 to the highest given quantile held to probability 1. Straight lines over a
    quantile function that curves upwards err high between the points; the tail beyond the
    last point, left out, errs low. With p50, p90, p95 and p99 a lognormal of cv 1 comes out
    5% high."""
    ps = sorted(quantiles)
    if not ps:
        raise ValueError("no quantiles")
    vals = [np.asarray(quantiles[p], dtype=float) for p in ps]
    grid = np.array([0.0, *ps, 1.0])
    q = np.vstack([np.zeros_like(vals[0]), *vals, vals[-1]])
    return np.asarray(np.trapezoid(q, grid, axis=0), dtype=float)


def fit_workload(
    rate: Sequence[float] | np.ndarray,
    latency: Sequence[float] | np.ndarray,
    *,
    alpha: float = ALPHA,
) -> WorkloadFit:
    """Open or closed, from per-window entry rates (rps) and mean latencies (s)."""
    x = np.asarray(rate, dtype=float)
    r = np.asarray(latency, dtype=float)
    if x.shape != r.shape:
        raise ValueError("rate and latency need one value per window each")
    ok = np.isfinite(x) & np.isfinite(r) & (x > 0) & (r >= 0)
    x, r = x[ok], r[ok]
    n = len(x)
    med_x = float(np.median(x)) if n else math.nan
    med_r = float(np.median(r)) if n else math.nan

    def result(model: Literal["open", "closed"], reason: str, **kw: Any) -> WorkloadFit:
        base: dict[str, Any] = {
            "spearman": None,
            "p_value": None,
            "users": None,
            "think_time": None,
            "sse_closed": None,
            "sse_open": None,
        }
        base.update(kw)
        return WorkloadFit(model, n, med_x, med_r, alpha=alpha, reason=reason, **base)

    if n < MIN_WINDOWS:
        return result("open", f"{n} usable window(s), fewer than {MIN_WINDOWS}: kept open")
    if np.ptp(r) <= 0 or np.ptp(x) <= 0:
        return result("open", "the rate or the latency never changes: no evidence of a loop")
    rho = float(stats.spearmanr(r, x).statistic)
    users, think, sse = _fit_law(x, r)
    sse_open = float(np.sum((x - float(np.mean(x))) ** 2))
    # the open loop is the law's limit Z -> inf with N / Z fixed: nested, one parameter fewer
    f_stat = (sse_open - sse) / (sse / (n - 2)) if sse > 0 else math.inf
    p = float(stats.f.sf(f_stat, 1, n - 2)) if f_stat > 0 else 1.0
    kw = {"spearman": rho, "p_value": p, "sse_closed": sse, "sse_open": sse_open}
    if not p < alpha:
        return result(
            "open",
            f"the rate does not fall with latency as X = N / (R + Z) says (F test against a "
            f"constant rate: p = {p:.2g} >= {alpha:g}; Spearman {rho:.3f})",
            **kw,
        )
    if not (users > 0 and think > 0 and rho < 0):
        return result(
            "open",
            f"the fit of X = N / (R + Z) is degenerate (N = {users:.3g}, Z = {think:.3g} s, "
            f"Spearman {rho:.3f})",
            **kw,
        )
    return result(
        "closed",
        f"the rate falls when latency rises as X = N / (R + Z) says (F test against a "
        f"constant rate: p = {p:.2g} < {alpha:g}; Spearman {rho:.3f}), with N = {users:.1f} "
        f"users, Z = {think:.2f} s",
        users=users,
        think_time=think,
        **kw,
    )


def _fit_law(x: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
    """``N``, ``Z`` and the sum of squared rate residuals of ``X = N / (R + Z)``."""
    med_x, med_r = float(np.median(x)), float(np.median(r))
    z0 = max(med_r, 1e-3) * 10.0
    start = np.array([med_x * (med_r + z0), z0])

    def residuals(theta: np.ndarray) -> np.ndarray:
        return np.asarray(x - theta[0] / (r + theta[1]), dtype=float)

    sol = optimize.least_squares(
        residuals,
        start,
        bounds=([1e-9, 1e-9], [np.inf, np.inf]),
        loss="soft_l1",
        f_scale=max(0.1 * med_x, 1e-9),
    )
    users, think = float(sol.x[0]), float(sol.x[1])
    return users, think, float(np.sum(residuals(sol.x) ** 2))


def apply_workload(topology: Topology, entry: str, fit: WorkloadFit) -> Topology:
    """The topology with ``entry``'s workload a closed loop of the fitted users (rounded,
    at least 1) and an exponential think time of the fitted mean (Locust's ``between(a, b)``
    and JMeter's timers are not exponential, but the interactive law needs only the mean).
    ``rate`` stays the entry's rate in the topology (its throughput at the bundled state),
    within what the users can send. An open fit returns the topology unchanged."""
    if fit.model != "closed" or fit.users is None or fit.think_time is None:
        return topology
    users = max(1, round(fit.users))
    think = fit.think_time
    workload = []
    for w in topology.workload:
        if w.entry != entry:
            workload.append(w.model_dump(mode="json", exclude_none=True))
            continue
        rate = min(w.rate, users / think)
        workload.append(
            w.model_dump(mode="json", exclude_none=True)
            | {
                "rate": rate,
                "users": users,
                "think_time": Exponential(mean=think).model_dump(mode="json"),
            }
        )
    data = topology.to_dict() | {"workload": workload}
    return Topology.from_dict(data, source="calibrated workload")


def entry_windows(
    count: Sequence[Sequence[tuple[float, float]]],
    seconds: Sequence[Sequence[tuple[float, float]]],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window rate (rps) and mean latency (s) from counters' points (time, value): the
    requests served (``count``) and their seconds (``seconds``), one point list per series
    (replica, status), as Prometheus scrapes a histogram's ``_count`` and ``_sum``. A window
    is the span between consecutive scrape times; each series adds its increase over it (a
    drop is a restart, the counter began again at 0). Windows with no request have no mean."""
    served: dict[tuple[float, float], float] = {}
    spent: dict[tuple[float, float], float] = {}
    for into, series in ((served, count), (spent, seconds)):
        for pts in series:
            for (t0, a), (t1, b) in itertools.pairwise(sorted(pts)):
                if t1 > t0:
                    into[(t0, t1)] = into.get((t0, t1), 0.0) + (b - a if b >= a else b)
    rates, means = [], []
    for (t0, t1), n in sorted(served.items()):
        rates.append(n / (t1 - t0))
        s = spent.get((t0, t1))
        means.append(s / n if n > 0 and s is not None else math.nan)
    return np.array(rates, dtype=float), np.array(means, dtype=float)


def fit_entries(
    topology: Topology,
    dump: Mapping[str, Any],
    mapping: MetricMap | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
) -> tuple[Topology, dict[str, dict[str, Any]]]:
    """Each entry's workload model from a Prometheus dump (the entry service's request count
    and duration sum per scrape window): the topology with the closed loops that fit, and
    per entry what was found (:class:`WorkloadFit` as plain data)."""
    m = mapping or MetricMap()
    clean = clean_dump(dict(dump), m)
    found: dict[str, dict[str, Any]] = {}
    for w in topology.workload:
        if w.users is not None or w.entry in found:
            continue

        def of(name: str, svc: str = w.service) -> list[list[tuple[float, float]]]:
            return [
                _points(s, start, end)
                for s in _by_name(clean, name)
                if str(s["metric"].get(m.service_label, "")) == svc
            ]

        rate, mean = entry_windows(of(m.requests), of(m.duration_sum))
        fit = fit_workload(rate, mean)
        found[w.entry] = fit.to_dict()
        topology = apply_workload(topology, w.entry, fit)
    return topology, found


__all__ = [
    "ALPHA",
    "MIN_WINDOWS",
    "WorkloadFit",
    "apply_workload",
    "entry_windows",
    "fit_entries",
    "fit_workload",
    "mean_from_quantiles",
]
