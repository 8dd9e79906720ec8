"""Edges at run time: a caller calling a callee through the network, with its policy.

Per attempt: breaker check, timeout armed, loss and latency on the way, the callee's job;
on the answer: corruption detection, breaker record, retry with backoff within the budget,
or the call's final outcome back to the caller's job. A timed-out attempt is abandoned by
the caller only: the callee keeps working on it (that is how retry storms build up). An
asynchronous call goes through the same steps (retries included) but its outcome is
dropped at the end: its caller went on without it, and may be gone.

Timeouts of one edge are kept in a deadline queue with a single pending timer, so an idle
timeout costs a deque append and no event.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from twin.mitigations import BreakerState, RetryBudget, backoff_delay
from twin.outcomes import (
    CIRCUIT_OPEN,
    CODE,
    CORRUPTED,
    NETWORK_LOSS,
    OK,
    RETRIES_EXHAUSTED,
    TIMEOUT,
)
from twin.policy import ClientPolicy
from twin.sim.events import NORMAL, Bare
from twin.sim.service import CallSpec, Job, Service

if TYPE_CHECKING:
    from twin.sim.engine import Context


class Call(Bare):
    """One logical call (all its attempts); its own event while waiting out a backoff."""

    __slots__ = ("job", "n", "spec")

    def __init__(self, job: Job, spec: CallSpec) -> None:
        self.callbacks = None
        self._ok = True
        self._value = None
        self.job = job
        self.spec = spec
        self.n = 0  # attempts made so far - 1


class Attempt(Bare):
    """One attempt of a call; the parent of the callee's job."""

    __slots__ = ("call", "client", "closed", "code", "corrupt", "deadline", "n")

    def __init__(self, client: Client, call: Call, n: int) -> None:
        self.callbacks = None
        self._ok = True
        self._value = None
        self.client = client
        self.call = call
        self.n = n
        self.closed = False
        self.deadline = 0.0
        self.code = OK
        self.corrupt = 0.0

    def __lt__(self, other: Attempt) -> bool:  # for insort when a timeout was shortened
        return self.deadline < other.deadline

    def done(self, job: Job, code: int) -> None:
        """The callee answered this attempt."""
        if self.closed:
            return  # the caller gave up on it already
        client = self.client
        if client.bandwidth is not None:
            now = client.env._now
            start = now if now > client.link_free else client.link_free
            end = start + self.call.spec.size / client.bandwidth
            client.link_free = end
            self.code = code
            self.corrupt = job.corrupt
            self.callbacks = [client._response_arrived]
            client.ctx.schedule(self, NORMAL, end - now)
            return
        self.closed = True
        client._result(self, code, job.corrupt)


class Client:
    """The caller side of one caller->callee edge."""

    def __init__(
        self,
        ctx: Context,
        caller: Service,
        callee: Service,
        latency: Callable[[], float] | None,
        loss: float,
    ) -> None:
        self.ctx = ctx
        self.env = ctx.env
        self.caller = caller
        self.callee = callee
        self.name = f"{caller.name}->{callee.name}"
        self.latency = latency
        self.base_loss = loss
        self.loss = loss
        self.delays: list[Callable[[], float]] = []
        self.bandwidth: float | None = None
        self.link_free = 0.0
        self.uniform = ctx.uniform(f"client:{self.name}")
        self.timeout: float | None = None
        self.retries = None
        self.retry_codes: frozenset[int] = frozenset()
        self.breaker: BreakerState | None = None
        self.budget: RetryBudget | None = None
        self.wheel: deque[Attempt] = deque()
        self.timer = Bare()
        self.timer_at: float | None = None
        self.calls = 0
        self.attempts = 0
        self.retried = 0
        self.timeouts = 0
        self.refused = 0  # by the open breaker
        self.budget_denied = 0

    def configure(self, policy: ClientPolicy) -> None:
        """Apply a policy; breaker and budget state survive when their settings do not change."""
        self.timeout = policy.timeout
        self.retries = policy.retries  # type: ignore[assignment]
        r = policy.retries
        self.retry_codes = frozenset(CODE[c] for c in r.retry_on) if r is not None else frozenset()
        if r is not None and r.budget is not None:
            if self.budget is None or (self.budget.ratio, self.budget.span) != (
                r.budget,
                r.budget_window,
            ):
                self.budget = RetryBudget(r.budget, r.budget_window)
        else:
            self.budget = None
        cb = policy.circuit_breaker
        if cb is None:
            self.breaker = None
        elif self.breaker is None or self.breaker.cfg != cb:
            self.breaker = BreakerState(cb)

    # -- sending ------------------------------------------------------------------------------

    def issue(self, job: Job, spec: CallSpec) -> None:
        self.calls += 1
        if self.budget is not None:
            self.budget.on_request(self.env._now)
        self._send(Call(job, spec))

    def _retry(self, call: Call) -> None:
        # the caller may have died while this call backed off (nobody waits for an
        # asynchronous call: it goes on regardless)
        if not call.job.finished or call.spec.detached:
            self._send(call)

    def _send(self, call: Call) -> None:
        ctx = self.ctx
        breaker = self.breaker
        if breaker is not None and breaker.state and not breaker.allow(self.env._now):
            self.refused += 1
            self._finish(call, CIRCUIT_OPEN, 0.0)
            return
        self.attempts += 1
        att = Attempt(self, call, call.n)
        timeout = self.timeout
        if timeout is not None:
            self._arm(att, self.env._now + timeout)
        own = call.spec.latency
        if own is not None:
            delay = own()
        else:
            delay = self.latency() if self.latency is not None else 0.0
        for d in self.delays:
            delay += d()
        if self.loss and self.uniform() < self.loss:
            att.code = NETWORK_LOSS
            att.callbacks = [self._lost]
            ctx.schedule(att, NORMAL, delay)
        elif delay > 0.0:
            att.callbacks = [self._deliver]
            ctx.schedule(att, NORMAL, delay)
        else:
            self._deliver(att)

    def _deliver(self, att: Attempt) -> None:
        """The request reaches the callee (even if the caller has given up meanwhile)."""
        svc = self.callee
        op = att.call.spec.op
        if svc.failover_active and svc.failover_to is not None:
            svc = svc.failover_to
            op = svc.operations.get(op.name) or next(iter(svc.operations.values()))
        parent = att.call.job
        ctx = self.ctx
        now = self.env._now
        svc.arrive(Job(op, att, now, now >= ctx.warmup, parent.klass, parent.cost))

    def _lost(self, att: Attempt) -> None:
        if not att.closed:
            att.closed = True
            self._result(att, NETWORK_LOSS, 0.0)

    def _response_arrived(self, att: Attempt) -> None:
        if not att.closed:
            att.closed = True
            self._result(att, att.code, att.corrupt)

    # -- timeouts -----------------------------------------------------------------------------

    def _arm(self, att: Attempt, deadline: float) -> None:
        att.deadline = deadline
        q = self.wheel
        while q and q[0].closed:
            q.popleft()
        if not q or q[-1].deadline <= deadline:
            q.append(att)
        else:
            insort(q, att)
        if self.timer_at is None or deadline < self.timer_at:
            # no timer yet, or a shortened timeout (apply) needs an earlier one: a new timer
            # object makes the pending one stale (SimPy events cannot be cancelled)
            self.timer = Bare()
            self.timer_at = q[0].deadline
            self.timer.callbacks = [self._on_timer]
            self.ctx.schedule(self.timer, NORMAL, self.timer_at - self.env._now)

    def _on_timer(self, timer: Bare) -> None:
        if timer is not self.timer:
            return  # superseded by an earlier timer
        now = self.env._now
        q = self.wheel
        self.timer_at = -math.inf  # no re-arming from inside the loop (calls issued there wait)
        while q and (q[0].closed or q[0].deadline <= now):
            att = q.popleft()
            if not att.closed:
                att.closed = True
                self.timeouts += 1
                self._result(att, TIMEOUT, 0.0)
        while q and q[0].closed:
            q.popleft()
        if q:
            self.timer_at = q[0].deadline
            self.timer.callbacks = [self._on_timer]
            self.ctx.schedule(self.timer, NORMAL, self.timer_at - now)
        else:
            self.timer_at = None

    # -- answers ------------------------------------------------------------------------------

    def _result(self, att: Attempt, code: int, corrupt: float) -> None:
        call = att.call
        now = self.env._now
        if code == OK and corrupt and self.uniform() < corrupt:
            code = CORRUPTED  # this consumer noticed the bad response
        if self.breaker is not None:
            self.breaker.record(code == OK, now)
        if call.job.finished and not call.spec.detached:
            return  # the caller died meanwhile (outage): nobody waits for this call
        if code != OK:
            r = self.retries
            if r is not None and code in self.retry_codes:
                if call.n < r.max:
                    if self.budget is None or self.budget.try_retry(now):
                        call.n += 1
                        self.retried += 1
                        call.callbacks = [self._retry]
                        self.ctx.schedule(call, NORMAL, backoff_delay(r, call.n, self.uniform))
                        return
                    self.budget_denied += 1
                elif call.n > 0:
                    code = RETRIES_EXHAUSTED
            corrupt = 0.0
        self._finish(call, code, corrupt)

    def _finish(self, call: Call, code: int, corrupt: float) -> None:
        if call.spec.detached:
            return  # asynchronous: the caller does not hear the outcome
        job = call.job
        job.op.service.call_done(job, call.spec, code, corrupt)

    def summary(self) -> dict[str, int | str]:
        out: dict[str, int | str] = {
            "calls": self.calls,
            "attempts": self.attempts,
            "retries": self.retried,
            "timeouts": self.timeouts,
            "circuit_open": self.refused,
            "budget_denied": self.budget_denied,
        }
        if self.breaker is not None:
            out["breaker_transitions"] = len(self.breaker.transitions)
        return out
