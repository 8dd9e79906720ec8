"""Arrivals at the entries (open loop, closed loop), and the entries' own counters.

An entry with request classes draws each arrival's class (operation) by the mix's shares,
from its own stream, so entries without classes draw as before.

Arrivals are Poisson with a piecewise-constant rate (the scenario's load profile times the
entry's rate). At a step the pending arrival is dropped and a fresh gap is drawn at the new
rate, which is exact for a Poisson process (memoryless gaps).

A closed loop (:class:`Users`) is a number of users, each sending a request, waiting for its
answer (success or failure, whatever the reason), thinking for a think-time draw and sending
the next, as Locust and JMeter run. Its arrivals slow down with the system: at most one
request per user is in flight. The users start at once (time 0, or the load step that adds
them); a load step that removes users takes thinking users at once and the others after
their current request. Think times come from the entry's own stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twin.outcomes import OK
from twin.sim.events import NORMAL, Wake
from twin.sim.monitor import Counters
from twin.sim.service import Job, Operation, Parent

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

    def admit(self, klass: int, cost: float, parent: Parent | None = None) -> None:
        """A request arrives (``parent``: who hears its answer after the entry, default the
        entry alone)."""
        ctx = self.ctx
        now = self.env._now
        op = self.op if self.pick is None else self._draw(self.pick())
        job = Job(op, self if parent is None else parent, now, now >= ctx.warmup, klass, cost)
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


class Users:
    """A closed loop of users at one entry: each sends a request, waits for its answer, thinks
    for a ``think`` draw (seconds) and sends the next. ``users_at(multiplier)`` says how many
    at a load multiplier (:meth:`twin.topology.WorkloadEntry.users_at`).

    It is the parent of its requests' jobs: the entry counts each answer first, then the user
    who sent it thinks (or leaves, when a load step removed users while it waited). A thinking
    user is its pending wake-up (a :class:`Wake` whose payload turns true when a load step
    takes the user away).
    """

    def __init__(
        self,
        ctx: Context,
        entry: Entry,
        users_at: Callable[[float], int],
        think: Callable[[], float],
        rate: float,
    ) -> None:
        self.ctx = ctx
        self.entry = entry
        self.users_at = users_at
        self.think = think
        self.rate = rate  # throughput at the bundled state, for offered-utilisation verdicts
        self.cost = 1.0
        self.multiplier = 1.0
        self.active = False
        self.thinking: dict[Wake, None] = {}  # users waiting to send, in order of arrival
        self.waiting = 0  # users with a request in flight
        self.leaving = 0  # of those, how many leave after their answer
        self.peak = 0  # the most requests in flight at once

    @property
    def count(self) -> int:
        """Users now (thinking, or waiting for an answer and staying)."""
        return len(self.thinking) + self.waiting - self.leaving

    def start(self) -> None:
        self.active = True
        self._resize(self.users_at(self.multiplier))

    def stop(self) -> None:
        self.active = False
        self._resize(0)

    def set_multiplier(self, m: float) -> None:
        self.multiplier = m
        if self.active:
            self._resize(self.users_at(m))

    def _resize(self, want: int) -> None:
        have = self.count
        if want > have:
            back = min(self.leaving, want - have)  # asked to leave, not gone yet: they stay
            self.leaving -= back
            for _ in range(want - have - back):
                self._pause(0.0)  # a new user sends at once
        elif want < have:
            drop = have - want
            while drop and self.thinking:
                wake = next(reversed(self.thinking))
                del self.thinking[wake]
                wake.payload = True
                drop -= 1
            self.leaving += drop

    def _pause(self, seconds: float) -> None:
        wake = Wake(self._send, False)
        self.thinking[wake] = None
        self.ctx.schedule(wake, NORMAL, seconds)

    def _send(self, wake: Wake) -> None:
        if wake.payload:  # taken away by a load step while thinking
            return
        del self.thinking[wake]
        self.waiting += 1
        if self.waiting > self.peak:
            self.peak = self.waiting
        self.entry.admit(0, 1.0, self)

    def done(self, job: Job, code: int) -> None:
        """The answer reaches the entry, then its user: it thinks, or leaves."""
        self.entry.done(job, code)
        self.waiting -= 1
        if self.leaving:
            self.leaving -= 1
            return
        self._pause(self.think())
