"""A simulated rolling update: how long it takes, how many requests fail, what it costs.

The controller is Kubernetes' Deployment rolling update: ``maxSurge`` (a count, or a
percentage of the replicas rounded up) new pods may exist above the desired count,
``maxUnavailable`` (rounded down; 1 when both are 0) ready pods may be missing below it.
Each time a new pod becomes ready the controller scales the new set up and the old one down
as far as both bounds allow; a new pod is ready ``ready_seconds`` after it is created.

Requests fail when the load balancer still sends them to a pod that has stopped: the load
balancer's set of endpoints follows the pods ``propagation_seconds`` late (kube-proxy's and
the endpoints controller's delay), traffic is spread evenly over that set, and a deleted pod
keeps serving for ``drain_seconds`` (a preStop sleep) before it stops; the requests in
flight on a pod when it stops fail too (``response_seconds`` of traffic share each). The
downtime is in error-seconds: failed requests divided by the request rate, so it does not
depend on the load as long as the remaining pods can carry it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise


def resolve(value: int | str | None, replicas: int, *, round_up: bool, default: str = "25%") -> int:
    """A ``maxSurge``/``maxUnavailable`` value as a pod count (percentages of ``replicas``)."""
    v: int | str = default if value is None else value
    if isinstance(v, str) and v.strip().endswith("%"):
        share = float(v.strip()[:-1]) / 100.0 * replicas
        return math.ceil(share - 1e-9) if round_up else math.floor(share + 1e-9)
    return int(v)


@dataclass(frozen=True)
class RolloutParams:
    """What decides a rolling update's timing and its failures (seconds)."""

    replicas: int
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    ready_seconds: float = 5.0
    propagation_seconds: float = 1.0
    drain_seconds: float = 0.0
    response_seconds: float = 0.05


@dataclass(frozen=True)
class Pod:
    created: float
    ready: float
    deleted: float | None  # None: still running at the end (a new pod)


@dataclass(frozen=True)
class RolloutResult:
    """The timeline and its figures."""

    surge: int
    unavailable: int
    pods: tuple[Pod, ...]
    duration_seconds: float
    downtime_seconds: float
    surge_replica_seconds: float


def _schedule(p: RolloutParams, surge: int, unavailable: int) -> list[Pod]:
    n = p.replicas
    before = -(p.propagation_seconds + p.ready_seconds + 1.0)  # ready and seen long before
    old = [Pod(before, before, None) for _ in range(n)]
    new: list[Pod] = []
    t = 0.0
    alive_old = list(range(n))
    guard = 0
    while alive_old or len(new) < n:
        guard += 1
        if guard > 10 * n + 10:
            raise RuntimeError("rolling update did not converge")  # cannot happen: bounds
        ready_new = sum(1 for q in new if q.ready <= t)
        # scale up the new set within maxSurge
        total = len(alive_old) + len(new)
        room = min(n + surge - total, n - len(new))
        for _ in range(max(0, room)):
            new.append(Pod(t, t + p.ready_seconds, None))
        # scale down the old set while at least n - maxUnavailable pods stay ready
        available = len(alive_old) + ready_new
        removable = min(len(alive_old), available - (n - unavailable))
        for _ in range(max(0, removable)):
            i = alive_old.pop(0)
            old[i] = Pod(before, before, t)
        pending = [q.ready for q in new if q.ready > t]
        if not pending:
            if alive_old and removable <= 0 and room <= 0:
                raise RuntimeError("rolling update cannot progress")
            continue
        t = min(pending)
    return old + new


def error_seconds(pods: list[Pod] | tuple[Pod, ...], p: RolloutParams) -> tuple[float, list[float]]:
    """Error-seconds of a pod timeline (simulated, or observed on a real system) and the
    times at which the load balancer's view or a pod's state changes."""
    lag, drain = p.propagation_seconds, p.drain_seconds
    # endpoint view: a pod is in it over [ready + lag, deleted + lag); it serves over
    # [ready, deleted + drain)
    marks = {0.0}
    for q in pods:
        marks.update({q.ready + lag, q.ready})
        if q.deleted is not None:
            marks.update({q.deleted + lag, q.deleted + drain})
    times = sorted(m for m in marks if m >= 0.0)
    downtime = 0.0
    for a, b in pairwise(times):
        mid = (a + b) / 2
        view = [
            q for q in pods if q.ready + lag <= mid and (q.deleted is None or mid < q.deleted + lag)
        ]
        dead = [q for q in view if q.deleted is not None and mid >= q.deleted + drain]
        if view:
            downtime += (b - a) * len(dead) / len(view)
    for q in pods:  # in-flight requests on a pod when it stops
        if q.deleted is None:
            continue
        stop = q.deleted + drain
        if stop >= q.deleted + lag:
            continue  # out of the view before it stops: nothing in flight
        view = [
            r
            for r in pods
            if r.ready + lag <= stop and (r.deleted is None or stop < r.deleted + lag)
        ]
        downtime += p.response_seconds / max(1, len(view))
    return downtime, times


def simulate(p: RolloutParams) -> RolloutResult:
    """Simulate one rolling update of ``p.replicas`` pods."""
    n = p.replicas
    if n < 1:
        return RolloutResult(0, 0, (), 0.0, 0.0, 0.0)
    surge = resolve(p.max_surge, n, round_up=True)
    unavailable = resolve(p.max_unavailable, n, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    pods = _schedule(p, surge, unavailable)
    downtime, times = error_seconds(pods, p)
    last = max((q.deleted for q in pods if q.deleted is not None), default=0.0)
    duration = max(last, *(q.ready for q in pods))
    surge_s = 0.0
    for a, b in pairwise(times):
        mid = (a + b) / 2
        if mid > duration:
            break
        running = sum(
            1 for q in pods if q.created <= mid and (q.deleted is None or mid < q.deleted)
        )
        surge_s += (b - a) * max(0, running - n)
    return RolloutResult(surge, unavailable, tuple(pods), duration, downtime, surge_s)


__all__ = ["Pod", "RolloutParams", "RolloutResult", "error_seconds", "resolve", "simulate"]
