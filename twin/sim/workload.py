"""Open-loop arrivals at the entries, and the entries' own counters.

An entry with request classes draws each arrival's class (operation) by the mix's shares,
from its own stream, so entries without classes draw as before.

Arrivals are Poisson with a piecewise-constant rate (the scenario's load profile times the
entry's rate). At a step the pending arrival is dropped and a fresh gap is drawn at the new
rate, which is exact for a Poisson process (memoryless gaps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twin.outcomes import OK
from twin.sim.events import NORMAL, Wake
from twin.sim.monitor import Counters
from twin.sim.service import Job, Operation

if TYPE_CHECKING:
    from twin.sim.engine import Context


class Entry:
    """A workload entry point: the parent of every request that enters there."""

    def __init__(
        self,
        ctx: Context,
        name: str,
        classes: list[tuple[Operation, float]],
        pick: Callable[[], float] | None,
    ) -> None:
        self.ctx = ctx
        self.env = ctx.env
        self.name = name
        self.classes = classes  # (operation, share): the request classes arriving here
        self.op = classes[0][0]
        total = sum(share for _, share in classes)
        acc = 0.0
        self.cumulative: list[float] = []
        for _, share in classes:
            acc += share / total
            self.cumulative.append(acc)
        self.pick = pick  # uniform draws choosing each arrival's class (None: one class)
        self.stats = Counters()
        self.attack = Counters()
        self.corrupted = 0  # measured successes that carried an undetected corruption
        self.w_corrupted = 0
        self.inflight = 0
        self.inflight_measured = 0
        self.trace: Callable[[Entry, Job, int], None] | None = None

    def admit(self, klass: int, cost: float) -> None:
        ctx = self.ctx
        now = self.env._now
        op = self.op if self.pick is None else self._draw(self.pick())
        job = Job(op, self, now, now >= ctx.warmup, klass, cost)
        stats = self.stats if klass == 0 else self.attack
        stats.w_arrivals += 1
        self.inflight += 1
        if job.measured:
            stats.arrivals += 1
            if klass == 0:
                self.inflight_measured += 1
        op.service.arrive(job)

    def _draw(self, u: float) -> Operation:
        for (op, _), edge in zip(self.classes, self.cumulative, strict=True):
            if u < edge:
                return op
        return self.classes[-1][0]

    def done(self, job: Job, code: int) -> None:
        """A request answered (success or failure): entry-level accounting."""
        self.inflight -= 1
        stats = self.stats if job.klass == 0 else self.attack
        stats.w_counts[code] += 1
        measured = job.measured
        if measured:
            if job.klass == 0:
                self.inflight_measured -= 1
            stats.counts[code] += 1
        if code == OK:
            lat = self.env._now - job.t0
            if measured:
                stats.w_hist.add(lat)
            else:
                stats.w_hist_u.add(lat)
            if job.corrupt and job.klass == 0:
                self.w_corrupted += 1
                if measured:
                    self.corrupted += 1
        if self.trace is not None:
            self.trace(self, job, code)


class Source:
    """Poisson arrivals of one request class at one entry, between ``start`` and ``end``."""

    def __init__(
        self,
        ctx: Context,
        entry: Entry,
        rate: float,
        gap: Callable[[], float],
        *,
        klass: int = 0,
        cost: float = 1.0,
        multiplier: float = 1.0,
    ) -> None:
        self.ctx = ctx
        self.entry = entry
        self.rate = rate
        self.gap = gap  # unit-mean exponential draws
        self.klass = klass
        self.cost = cost
        self.multiplier = multiplier
        self.generation = 0
        self.active = False

    def start(self) -> None:
        self.active = True
        self._schedule()

    def stop(self) -> None:
        self.active = False
        self.generation += 1

    def set_multiplier(self, m: float) -> None:
        self.multiplier = m
        if self.active:
            self.generation += 1
            self._schedule()

    def _schedule(self) -> None:
        r = self.rate * self.multiplier
        if r <= 0.0:
            return
        self.ctx.schedule(Wake(self._fire, self.generation), NORMAL, self.gap() / r)

    def _fire(self, wake: Wake) -> None:
        if wake.payload != self.generation or not self.active:
            return
        self.entry.admit(self.klass, self.cost)
        r = self.rate * self.multiplier
        wake.callbacks = [self._fire]
        self.ctx.schedule(wake, NORMAL, self.gap() / r)
