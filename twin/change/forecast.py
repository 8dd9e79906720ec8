"""P(SLO breach) over the next minutes, from the recent windows of a running canary.

The SLO is a ratio over a trailing window: at most ``1 - objective`` of the requests of the
last ``window`` seconds may be bad (failed, or slower than the latency objective). It is
breached at time ``t`` when the bad share of ``[t - window, t]`` exceeds that budget (with
at least ``min_events`` requests in the window, so a quiet start is not a breach).

The forecast is a burn-rate projection with its uncertainty. From the last ``recent``
seconds (the canary's current behaviour, at its current traffic weight) it takes the
posterior of the bad share ``p ~ Beta(1/2 + bad, 1/2 + good)`` (Jeffreys prior) and of the
request rate ``lambda ~ Gamma(1/2 + requests, recent)``. Each draw plays the next
``horizon`` seconds forward in a few steps: new requests ``Poisson(lambda dt)``, of which
``Binomial(n, p)`` are bad, added to the part of the trailing window already observed at
each future instant. P(breach) is the share of draws in which the window ratio crosses the
budget at any of those instants. It uses only counts a Prometheus counter gives, assumes the
canary keeps its current behaviour and weight (a promotion step raises the risk, and the
guard evaluates again at the next interval), and is exact in the limit of many draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def window_ratio(bad: float, total: float, min_events: int) -> float | None:
    """The bad share of a window, or None below ``min_events`` requests."""
    return bad / total if total >= max(1, min_events) else None


def breach_probability(
    *,
    known_bad: Sequence[float],
    known_total: Sequence[float],
    offsets: Sequence[float],
    recent_bad: float,
    recent_total: float,
    recent_seconds: float,
    objective: float,
    min_events: int,
    rng: np.random.Generator,
    draws: int = 4000,
) -> float:
    """P(the trailing-window bad share exceeds ``1 - objective`` at one of ``offsets``).

    ``offsets`` are seconds ahead (increasing, > 0); ``known_bad[k]`` and ``known_total[k]``
    are the events already observed that will still be in the window at ``now +
    offsets[k]``. The recent window's counts give the posteriors of the bad share and the
    rate (see the module docstring)."""
    budget = 1.0 - objective
    kb = np.asarray(known_bad, dtype=float)
    kt = np.asarray(known_total, dtype=float)
    off = np.asarray(offsets, dtype=float)
    if not (len(kb) == len(kt) == len(off)) or len(off) == 0:
        raise ValueError("known_bad, known_total and offsets must have the same non-zero length")
    good = max(recent_total - recent_bad, 0.0)
    p = rng.beta(0.5 + recent_bad, 0.5 + good, size=draws)
    lam = rng.gamma(0.5 + recent_total, 1.0 / max(recent_seconds, 1e-9), size=draws)
    n_cum = np.zeros(draws)
    b_cum = np.zeros(draws)
    breach = np.zeros(draws, dtype=bool)
    prev = 0.0
    for k in range(len(off)):
        dt = off[k] - prev
        prev = off[k]
        n = rng.poisson(lam * dt)
        b_cum += rng.binomial(n, p)
        n_cum += n
        total = kt[k] + n_cum
        ratio = np.divide(kb[k] + b_cum, total, out=np.zeros(draws), where=total > 0)
        breach |= (total >= max(1, min_events)) & (ratio > budget)
    return float(breach.mean())


def increments(values: Sequence[float]) -> np.ndarray:
    """Per-step increases of a cumulative counter, counting a drop as a reset (the new value
    is the increase, as Prometheus' ``increase`` does)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return np.zeros(0)
    d = np.diff(v)
    return np.where(d < 0, v[1:], d)


__all__ = ["breach_probability", "increments", "window_ratio"]
