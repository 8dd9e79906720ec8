"""Baseline controllers the learned policy must beat, all in the env's action space.

A controller maps (observation, env) to an action, so static and reactive baselines and the
learned policy run through the very same episodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from agents import spaces as sp

if TYPE_CHECKING:
    from agents.env import MitigationEnv

Controller = Callable[[np.ndarray, "MitigationEnv"], np.ndarray]


def static(timeout: int, retries: int, breaker: int, rate: int, queue: int) -> Controller:
    """The same knob levels every step, every service (replicas unchanged)."""

    def act(_: np.ndarray, env: MitigationEnv) -> np.ndarray:
        return sp.compose([sp.KEEP] * env.n, queue, (timeout, retries, breaker, rate))

    return act


def no_mitigation() -> Controller:
    """The neutral action: 1 s timeout (the twin's loosest level), nothing else."""
    return static(0, 0, 0, 0, 0)


def best_practice() -> Controller:
    """A common hand-written policy: 0.5 s timeout, one budgeted retry, breakers, queue 50."""
    return static(1, 1, 1, 0, 1)


def threshold(high: float = 0.7, low: float = 0.3) -> Controller:
    """HPA-like scaling (utilisation above ``high``: +1 replica; below ``low``: -1 down to the
    topology's count) on top of the best-practice knobs with breakers."""

    def act(obs: np.ndarray, env: MitigationEnv) -> np.ndarray:
        util_of = sp.per_service(obs, env.n)[:, sp.Feature.UTILIZATION]
        deltas = []
        for i, name in enumerate(env.services):
            util = float(util_of[i])
            if util > high:
                deltas.append(sp.UP)
            elif util < low and env.replicas[name] > env.base_replicas[name]:
                deltas.append(sp.DOWN)
            else:
                deltas.append(sp.KEEP)
        return sp.compose(deltas, 1, (1, 1, 1, 0))

    return act


def adaptive(
    target: float = 0.6,
    knobs: tuple[int, int, int, int] = (1, 2, 0, 0),
    queue: int = 0,
    boot_steps: int = 2,
) -> Controller:
    """Scale only while needed, as the HPA rule does but per decision: a service's desired
    replicas are ceil(replicas * utilisation / ``target``); the action moves one replica
    towards it (and back towards the topology's count once the load is gone), and waits
    ``boot_steps`` decisions after a scale-up (the replica boots in 10 s) before the next. Global
    ``knobs`` (timeout, retries, breaker, rate-limit levels) stay fixed: 0.5 s timeout and
    two budgeted retries by default, no breaker (an open breaker hides the utilisation the
    rule reads). The teacher of the behaviour-cloning warm start, and a reactive baseline."""

    raised: dict[str, int] = {}  # service -> step of its last scale-up, this episode

    def act(obs: np.ndarray, env: MitigationEnv) -> np.ndarray:
        if env.steps == 0:
            raised.clear()
        util = sp.per_service(obs, env.n)[:, sp.Feature.UTILIZATION]
        deltas = []
        for i, name in enumerate(env.services):
            r = env.replicas[name]
            desired = max(env.base_replicas[name], int(np.ceil(r * float(util[i]) / target)))
            booting = env.steps - raised.get(name, -99) < boot_steps
            if desired > r and r < sp.MAX_REPLICAS and not booting:
                raised[name] = env.steps
                deltas.append(sp.UP)
            elif desired < r:
                deltas.append(sp.DOWN)
            else:
                deltas.append(sp.KEEP)  # at the count, at the cap, or waiting for a boot
        return sp.compose(deltas, queue, knobs)

    return act


STATIC_GRID: tuple[tuple[int, int, int, int, int], ...] = tuple(
    itertools.product(
        range(len(sp.TIMEOUTS)),
        range(len(sp.RETRIES)),
        range(len(sp.BREAKER)),
        range(len(sp.RATE_LIMITS)),
        range(len(sp.QUEUE_LIMITS)),
    )
)


def search_static(
    score: Callable[[Controller], float], candidates: int, seed: int
) -> tuple[tuple[int, int, int, int, int], Sequence[tuple[tuple[int, ...], float]]]:
    """Best static knobs by a seeded random search over STATIC_GRID (lower score wins).

    ``score`` must run on training scenarios only; the caller guarantees it.
    """
    tried = [(c, score(static(*c))) for c in static_candidates(candidates, seed)]
    best = min(tried, key=lambda t: t[1])[0]
    return best, tried


def static_candidates(candidates: int, seed: int) -> list[tuple[int, int, int, int, int]]:
    """The knob sets a seeded static search tries, in order (distinct grid points)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(STATIC_GRID), size=min(candidates, len(STATIC_GRID)), replace=False)
    return [STATIC_GRID[int(i)] for i in idx]


def reactive(
    hot: float = 0.93,
    warm: float = 0.8,
    down: float = 0.7,
    knobs: tuple[int, int, int, int] = (2, 1, 0, 0),
    queue: int = 1,
) -> Controller:
    """Scale only when the system is saturating, and scale back as soon as it is not.

    A service is *hot* when its utilisation reaches ``hot`` or its queue holds 10 or more. While
    any service is hot, every service at ``warm`` or above gets one more replica per decision
    (the entry's callees are next in line once the entry scales, so they go together). A
    service above its topology's count loses one as soon as the others would stay under
    ``down``. Why this and not HPA's 70% target: a demand that keeps utilisation at 90% still
    meets the SLO here, and replicas bought for it are pure cost. Global knobs default to the
    best static policy's (0.25 s timeout, one budgeted retry, queue 50). ``warm`` and ``down``
    were picked among five variants by the environment's priced score (violation minutes +
    0.3 x extra replica-minutes) on 48 training draws, never held-out ones (docs/agents.md)."""

    def act(obs: np.ndarray, env: MitigationEnv) -> np.ndarray:
        per = sp.per_service(obs, env.n)
        util, queue_sq = per[:, sp.Feature.UTILIZATION], per[:, sp.Feature.QUEUE]
        saturating = bool(np.any((util >= hot) | (queue_sq >= 0.5)))
        deltas = scale_deltas(
            util,
            [env.replicas[s] for s in env.services],
            [env.base_replicas[s] for s in env.services],
            up=saturating,
            down=not saturating,
            warm=warm,
            cool=down,
        )
        return sp.compose(deltas, queue, knobs)

    return act


def scale_deltas(
    util: Sequence[float] | np.ndarray,
    replicas: Sequence[int],
    base: Sequence[int],
    *,
    up: bool,
    down: bool,
    warm: float,
    cool: float,
) -> list[int]:
    """Replica-delta levels of the reactive scaling rule, per service: with ``up``, one more
    replica for every service at ``warm`` utilisation or above (below the cap); with
    ``down``, one fewer for every service above its topology's count whose load would stay
    under ``cool`` on one replica less (utilisation x r / (r - 1)). Shared by
    :func:`reactive` and DQN's macro actions (:mod:`agents.macro`)."""
    deltas = []
    for u, r, b in zip(util, replicas, base, strict=True):
        if up and float(u) >= warm and r < sp.MAX_REPLICAS:
            deltas.append(sp.UP)
        elif down and r > b and float(u) * r / (r - 1) < cool:
            deltas.append(sp.DOWN)
        else:
            deltas.append(sp.KEEP)
    return deltas
