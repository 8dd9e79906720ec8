"""When faults happen: fixed windows, and sampled ones drawn with a seed.

What a fault *does* is documented on its kind's class and carried out by the engines through
the narrow interfaces of :mod:`twin.faults.base`; this module only turns a scenario's fault
list into concrete, scaled windows, so the same seed always gives the same fault timeline
whoever asks (engine, campaigns, RL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twin.faults.base import FaultBase
from twin.rng import generator


class _Timeline(Protocol):
    """What window expansion needs of a scenario."""

    @property
    def duration(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def faults(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class FaultWindow:
    """One occurrence of a fault: active on [start, end) with its intensity already scaled."""

    index: int  # position in the scenario's fault list
    fault: FaultBase  # one of twin.faults.KINDS
    start: float
    end: float


def scale_fault(fault: FaultBase, k: float) -> Any:
    """The fault with its intensity multiplied by ``k`` (each kind says how: probabilities
    capped at 1, a slow-down factor never below 1, a bandwidth divided...)."""
    return fault.scaled(k)


def fault_windows(scenario: _Timeline, horizon: float | None = None) -> list[FaultWindow]:
    """Every occurrence of every fault up to ``horizon`` seconds, sorted by start time."""
    end_of_run = scenario.duration if horizon is None else horizon
    out: list[FaultWindow] = []
    for i, f in enumerate(scenario.faults):
        lo = f.start
        hi = end_of_run if f.duration is None else min(end_of_run, f.start + f.duration)
        if f.sample is None:
            if lo < hi:
                out.append(FaultWindow(i, f, lo, hi))
            continue
        seed = scenario.seed if f.sample.seed is None else f.sample.seed
        rng = generator(seed, f"fault-sample-{i}")
        gap = f.sample.interval.sampler(rng)
        length = f.sample.duration.sampler(rng)
        scale = f.sample.intensity.sampler(rng) if f.sample.intensity is not None else None
        t = lo
        while True:
            step = gap()
            t += step
            if t >= hi:
                break
            d = length()
            if step <= 0.0 and d <= 0.0:
                continue  # a zero draw; the positive mean of `interval` guarantees progress
            k = scale() if scale is not None else 1.0
            if d > 0:
                out.append(FaultWindow(i, scale_fault(f, k), t, min(hi, t + d)))
            t += d
    out.sort(key=lambda w: (w.start, w.index))
    return out
