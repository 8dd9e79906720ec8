"""Cold starts from telemetry: a serverless function's warm time, cold-start seconds and
keep-alive, or nothing when the data show none.

A request that finds no warm idle instance waits for a new one (runtime and code
initialisation) on top of its own work; an idle instance is reclaimed after ``keep_alive``
seconds. With one instance per replica and Poisson arrivals at rate λ, a request is cold with
probability ``exp(-λ K)`` (the gap since the previous request exceeds K), so a node's mean
latency is ``w + c exp(-λ K)``: the warm time ``w``, the cold start ``c``.

Two estimators, one per kind of data:

- :func:`fit_periods`, from aggregates (one row per period: the node's request rate, its
  mean latency and its request count, as CloudWatch or Prometheus give them): weighted least
  squares of the period means on ``exp(-λ_t K)`` (weights: the periods' request counts, a
  mean over more requests varies less), ``w`` and ``c`` linear for each ``K`` of a
  logarithmic grid spanning the observed gaps. The rate has to vary between periods for this
  to see anything: a node slow at every rate (or fast at every rate) gives no fit;
- :func:`fit_requests`, from requests (spans: a start time and a latency each, one node):
  the requests split by the gap since the node's previous request, cold above a threshold
  ``K``; ``K`` is where the split leaves the least squared error, ``w`` and ``c`` are the
  two groups' mean latencies and their difference.

Both keep a fit only when it explains the latencies better than a constant mean (F test at
``alpha``, 0.1% by default: the threshold ``K`` is chosen by search, which makes a plain test
too ready to find one) and the cold requests are the slower ones. The result is what
:class:`twin.topology.Service` takes as ``cold_start`` and ``keep_alive``
(:meth:`ColdStartFit.fields`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from twin.topology import Topology

ALPHA = 0.001
"""Significance a fit must reach against a constant mean latency."""
MIN_ROWS = 10
"""Fewest periods (or requests on each side of the split) a fit is made from."""
GRID = 80
"""Keep-alive candidates tried (logarithmic) by :func:`fit_periods`."""


@dataclass(frozen=True)
class ColdStartFit:
    """Cold starts seen at one node."""

    warm: float
    """Mean seconds of a warm request (all of the node's latency but the cold start)."""
    cold_start: float
    """Mean extra seconds of a cold request."""
    keep_alive: float
    """Seconds an idle instance stays warm."""
    p_value: float
    """F test of the fit against a constant mean latency."""
    n: int
    """Periods (or requests) it was fitted on."""

    def cold_share(self, rate: float, replicas: int = 1) -> float:
        """Chance that a request is cold at ``rate`` per second over ``replicas`` (Poisson)."""
        return math.exp(-max(0.0, rate) / max(1, replicas) * self.keep_alive)

    def fields(self) -> dict[str, Any]:
        """``cold_start`` and ``keep_alive`` of a topology's service (a constant cold start:
        means are all the fit knows)."""
        return {
            "cold_start": {"dist": "constant", "mean": self.cold_start},
            "keep_alive": self.keep_alive,
        }


def _f_test(sse0: float, sse1: float, extra: int, n: int, params: int) -> float:
    """p-value of the F test of a model with ``extra`` more parameters (``params`` in all)."""
    if n <= params or sse1 <= 0.0:
        return 0.0 if sse0 > sse1 else 1.0
    f = ((sse0 - sse1) / extra) / (sse1 / (n - params))
    return float(stats.f.sf(f, extra, n - params)) if f > 0 else 1.0


def fit_periods(
    rates: ArrayLike, means: ArrayLike, counts: ArrayLike, *, alpha: float = ALPHA
) -> ColdStartFit | None:
    """Cold starts from periods: each period's request ``rates`` (per second), ``means``
    (mean latency, seconds) and ``counts`` (requests, the weights). None when the mean
    latency does not fall with the rate as cold starts make it (see the module's notes)."""
    r = np.asarray(rates, dtype=float)
    m = np.asarray(means, dtype=float)
    wts = np.asarray(counts, dtype=float)
    ok = np.isfinite(r) & np.isfinite(m) & np.isfinite(wts) & (r > 0) & (wts > 0) & (m >= 0)
    r, m, wts = r[ok], m[ok], wts[ok]
    n = int(r.size)
    if n < MIN_ROWS or np.ptp(r) <= 0.0:
        return None
    mean0 = float(np.average(m, weights=wts))
    sse0 = float(np.sum(wts * (m - mean0) ** 2))
    if sse0 <= 1e-18 * max(mean0 * mean0, 1e-300) * float(np.sum(wts)):
        return None  # constant to rounding: nothing to explain
    # keep-alives from a tenth of the shortest mean gap to ten times the longest
    lo, hi = 0.1 / float(r.max()), 10.0 / float(r.min())
    best: tuple[float, float, float, float] | None = None  # sse, w, c, K
    for k in np.geomspace(lo, hi, GRID):
        x = np.exp(-r * k)
        xm = float(np.average(x, weights=wts))
        sxx = float(np.sum(wts * (x - xm) ** 2))
        if sxx <= 1e-12 * float(np.sum(wts)):
            continue
        c = float(np.sum(wts * (x - xm) * (m - mean0))) / sxx
        w = mean0 - c * xm
        if c <= 0.0 or w < 0.0:
            continue
        sse = float(np.sum(wts * (m - w - c * x) ** 2))
        if best is None or sse < best[0]:
            best = (sse, w, c, float(k))
    if best is None:
        return None
    sse1, w, c, k = best
    p = _f_test(sse0, sse1, 2, n, 3)
    if p >= alpha:
        return None
    return ColdStartFit(warm=w, cold_start=c, keep_alive=k, p_value=p, n=n)


def fit_requests(
    starts: ArrayLike, latencies: ArrayLike, *, alpha: float = ALPHA
) -> ColdStartFit | None:
    """Cold starts from one node's requests: start times (seconds) and latencies (seconds).
    A request is cold when the gap since the node's previous request is above the fitted
    keep-alive (the first request's gap is unknown: it is left out). None when no split by
    gap explains the latencies (see the module's notes)."""
    t = np.asarray(starts, dtype=float)
    lat = np.asarray(latencies, dtype=float)
    ok = np.isfinite(t) & np.isfinite(lat)
    t, lat = t[ok], lat[ok]
    order = np.argsort(t, kind="stable")
    t, lat = t[order], lat[order]
    if t.size < 2:
        return None
    return fit_gaps(np.diff(t), lat[1:], alpha=alpha)


def fit_gaps(gaps: ArrayLike, latencies: ArrayLike, *, alpha: float = ALPHA) -> ColdStartFit | None:
    """:func:`fit_requests` from each request's gap since the previous one at its instance
    (or replica) and its latency, both in seconds: gaps of several replicas can be pooled."""
    gap = np.asarray(gaps, dtype=float)
    lat = np.asarray(latencies, dtype=float)
    ok = np.isfinite(gap) & np.isfinite(lat)
    gap, lat = gap[ok], lat[ok]
    if gap.size < 2 * MIN_ROWS:
        return None
    by_gap = np.argsort(gap, kind="stable")
    g, y = gap[by_gap], lat[by_gap]
    n = int(y.size)
    # split after position i (warm: the i shortest gaps): prefix sums give every split's SSE
    s1, s2 = np.cumsum(y), np.cumsum(y * y)
    tot1, tot2 = float(s1[-1]), float(s2[-1])
    sse0 = tot2 - tot1 * tot1 / n
    if sse0 <= 0.0:
        return None
    i = np.arange(MIN_ROWS, n - MIN_ROWS + 1)
    warm1, warm2 = s1[i - 1], s2[i - 1]
    cold1, cold2 = tot1 - warm1, tot2 - warm2
    sse = (warm2 - warm1**2 / i) + (cold2 - cold1**2 / (n - i))
    distinct = g[i - 1] < g[i]  # a split between two equal gaps is no threshold
    if not distinct.any():
        return None
    sse = np.where(distinct, sse, np.inf)
    j = int(np.argmin(sse))
    split = int(i[j])
    warm = float(warm1[j] / split)
    cold = float(cold1[j] / (n - split))
    if cold <= warm:
        return None
    p = _f_test(sse0, float(sse[j]), 1, n, 2)
    if p >= alpha:
        return None
    keep = 0.5 * (float(g[split - 1]) + float(g[split]))
    return ColdStartFit(warm=warm, cold_start=cold - warm, keep_alive=keep, p_value=p, n=n)


def with_cold_starts(
    topology: Topology, spans: pd.DataFrame, services: list[str] | None = None
) -> tuple[Topology, dict[str, ColdStartFit]]:
    """A topology calibrated from ``spans`` (the tidy span table, :mod:`twin.calibrate.spans`)
    with the cold starts its server spans show: for each service (or each of ``services``),
    every server span's own time (its duration less its client spans') against the gap since
    the previous server span on the same instance (:func:`fit_gaps`). Without span kinds, a
    span whose parent belongs to another service (or that has none) is a server span and the
    service's other spans are its calls. A service with a fit
    gets ``cold_start`` and ``keep_alive``, and its operations' service times lose the cold
    start the spans carried (the fit's cold start x the share of its spans that were cold),
    each scaled by the same factor (at least 10% of it is kept)."""
    # a request to a service: a server span, or (a format without kinds) a span whose
    # parent is not its own service's; its calls: client spans, or (no kinds) the others
    of = dict(zip(spans["span_id"], spans["service"], strict=True))
    parent_service = spans["parent_id"].map(of)
    unknown = spans["kind"] == ""
    request = (spans["kind"] == "server") | (unknown & (parent_service != spans["service"]))
    server = spans[request]
    calls = spans[(spans["kind"] == "client") | (unknown & ~request)]
    busy = (calls["end"] - calls["start"]).groupby(calls["parent_id"]).sum()
    fits: dict[str, ColdStartFit] = {}
    docs = topology.to_dict()
    for name in services if services is not None else sorted(topology.services):
        rows = server[server["service"] == name]
        if rows.empty or name not in topology.services:
            continue
        children = rows["span_id"].map(busy).fillna(0.0)
        rows = rows.assign(own=(rows["end"] - rows["start"] - children).clip(lower=0.0))
        rows = rows.sort_values(["instance", "start"], kind="stable")
        gaps = rows.groupby("instance")["start"].diff().to_numpy(dtype=float)
        own = rows["own"].to_numpy(dtype=float)
        fit = fit_gaps(gaps, own)
        if fit is None:
            continue
        fits[name] = fit
        cold_share = float(np.mean(gaps[np.isfinite(gaps)] > fit.keep_alive))
        svc = docs["services"][name]
        svc.update(fit.fields())
        for op_name, op in topology.services[name].operations.items():
            mean = op.service_time.expected()
            if mean <= 0.0:
                continue
            factor = max(0.1, 1.0 - fit.cold_start * cold_share / mean)
            svc["operations"][op_name]["service_time"] = op.service_time.scaled(factor).model_dump(
                mode="json", exclude_none=True
            )
    return Topology.from_dict(docs), fits


__all__ = ["ALPHA", "ColdStartFit", "fit_gaps", "fit_periods", "fit_requests", "with_cold_starts"]
