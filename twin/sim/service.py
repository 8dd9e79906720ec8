"""Services at run time: replicas with workers and FIFO queues, host cores, the job life cycle.

A *job* is one attempt of one operation at one service. Its life: admission (rate limit,
a replica that is up, bulkhead, queue limit) -> a worker -> a core if the service sits on a
host -> its own processing -> its disk I/O, if the operation declares some -> its calls,
stage by stage -> finish, which answers the parent (a caller's attempt, or the entry
request). Non-blocking services hand the worker back after processing (before their I/O, if
any: it is asynchronous to them); blocking ones keep it until the job finishes.

Calls run stage by stage: a stage is one sequential call (each repetition of it) or a group
of consecutive parallel calls, issued together and joined. A conditional call (``when``)
looks at how the stage before its own ended: *ok* when every call made there succeeded,
*failed* when one failed, neither when no call was made there (or its own condition was not
met). An asynchronous call is issued and not waited for: it counts as made (ok) for its
stage, and its outcome goes nowhere. Operations with neither kind run the plain loop.

A broker (:class:`Broker`) answers its caller when a message is queued (its acknowledgement)
and consumes the message later: the job then belongs to nobody (:data:`CONSUMED`) and only
the broker's own counters see its outcome.

CPU limits (a Kubernetes ``resources.limits.cpu``, enforced by the kernel's CFS bandwidth
control): a replica may use ``limit x period`` CPU-seconds in each period of ``period``
seconds (periods start at multiples of ``period``). Its workers run at once, each on a core
of its own, and spend the quota together; once it is spent, every one of them waits for the
next period, when the quota is whole again (unused quota is not carried over). A job's own
processing is CPU work: it ends when the job has received that much CPU. A hog inside the
pod takes its share of every period's quota first. See :class:`Quota`.

Cold starts (a serverless function's instances: ``cold_start``, ``keep_alive``): each
worker of a replica is an instance, created when a job needs one and none idle is warm. A job
takes the replica's most recently idle instance; if that one has been idle longer than the
keep-alive, every idle one has (they went idle before it), they are reclaimed and the job
gets a new instance, whose cold start (a draw of its own stream) is added to the job's
processing. An instance goes idle when its job lets the worker go; a replica that dies takes
its instances with it.

Host contention: cores taken from a host by other work (a CPU fault on the node) are held
back from the services placed on it; a core that is busy when they are taken is handed over
when its job lets it go.

Disk I/O: a disk serves one I/O at a time, first come first served, for ``bytes /
bandwidth`` seconds (times the slow-down of disk faults on the service and its host, as
they stand when the I/O starts). A host's disk is shared by every replica placed on it; a
service without a host gives each replica a disk of its own.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twin.mitigations import TokenBucket
from twin.outcomes import ERROR, OK, RATE_LIMITED, REJECTED, SERVICE_DOWN
from twin.sim.events import NORMAL, Bare, Wake
from twin.sim.monitor import Counters

if TYPE_CHECKING:
    from twin.sim.client import Client
    from twin.sim.engine import Context


class Parent(Protocol):
    def done(self, job: Job, code: int) -> None: ...


# how a stage of calls ended, for conditional calls (FAILED outranks MADE, MADE outranks NONE)
NONE = 0  # no call made
MADE = 1  # calls made, none failed (so far)
FAILED = 2  # a call made there failed
SKIPPED = 3  # its condition was not met
# the gate of a call: ALWAYS, or made only after the previous stage ended MADE or FAILED,
# or FOLLOW: a later repetition of a sequential conditional call, made when the first was
ALWAYS, IF_OK, IF_FAILED, FOLLOW = 0, MADE, FAILED, 4
GATES = {"always": ALWAYS, "previous_ok": IF_OK, "previous_failed": IF_FAILED}


class _Consumed:
    """The parent of a message its broker has acknowledged: nobody waits for its outcome."""

    __slots__ = ()

    def done(self, job: Job, code: int) -> None:
        return None


CONSUMED = _Consumed()


class Job(Bare):
    """One attempt of an operation at a service (and its own SimPy event)."""

    __slots__ = (
        "cold",
        "core",
        "corrupt",
        "cost",
        "cur",
        "finished",
        "holding",
        "klass",
        "measured",
        "op",
        "parent",
        "pending",
        "prev",
        "replica",
        "stage",
        "started",
        "t0",
    )

    def __init__(
        self, op: Operation, parent: Parent, t0: float, measured: bool, klass: int, cost: float
    ) -> None:
        self.callbacks = None
        self._ok = True
        self._value = None
        self.op = op
        self.parent = parent
        self.t0 = t0
        self.measured = measured
        self.klass = klass  # 0 user, 1 attack
        self.cost = cost
        self.corrupt = 0.0  # detection probability of a corruption it carries (0: clean)
        self.replica: Replica | None = None
        self.stage = 0
        self.pending = 0
        self.prev = NONE  # how the stage before the current one ended (conditional calls)
        self.cur = NONE  # how the current stage is ending so far
        self.finished = False
        self.started = False  # counted in its replica's in-flight requests
        self.holding = False  # holds a worker
        self.core = False  # holds a host core
        self.cold = 0.0  # cold-start seconds added to its processing (no warm instance)


class CallSpec:
    """A call of an operation, resolved to the client (edge) that carries it."""

    __slots__ = (
        "client",
        "count",
        "detached",
        "gate",
        "latency",
        "op",
        "optional",
        "probability",
        "size",
    )

    def __init__(
        self,
        client: Client,
        probability: float,
        count: int,
        optional: bool,
        size: int,
        op: Operation,
        latency: Callable[[], float] | None = None,
        gate: int = ALWAYS,
        detached: bool = False,
    ) -> None:
        self.client = client
        self.probability = probability
        self.count = count
        self.optional = optional
        self.size = size
        self.op = op  # the callee's operation (one edge can carry calls to several)
        self.latency = latency  # this call's own network delay, over the edge's
        self.gate = gate  # ALWAYS, IF_OK, IF_FAILED or FOLLOW
        self.detached = detached  # asynchronous: not waited for, its outcome goes nowhere


class Operation:
    """An operation at run time: its samplers and its calls grouped into stages."""

    __slots__ = ("gated", "io", "name", "sample", "service", "stages")

    def __init__(self, service: Service, name: str, sample: Callable[[], float]) -> None:
        self.service = service
        self.name = name
        self.sample = sample
        self.io: Callable[[], float] | None = None  # bytes of disk I/O per request
        self.stages: list[list[CallSpec]] = []
        self.gated = False  # some call is conditional or asynchronous: the gated loop runs it


class Disk:
    """One disk: FIFO, one I/O at a time at ``bandwidth`` bytes per second."""

    __slots__ = ("bandwidth", "busy", "queue")

    def __init__(self, bandwidth: float) -> None:
        self.bandwidth = bandwidth
        self.busy = False
        self.queue: deque[tuple[Job, float]] = deque()  # (job, bytes) waiting


WORK_EPS = 1e-9
"""CPU-seconds below which a job's remaining work, or a period's remaining quota, is spent
(float sums of many small steps never land exactly on zero)."""


class Quota:
    """One replica's CFS bandwidth state.

    Every running job receives CPU at the same rate (1 while the quota lasts, 0 while
    throttled), so one clock ``v`` (CPU-seconds each running job has received) orders their
    completions: a job with ``work`` CPU-seconds that starts at clock ``v0`` is done when the
    clock reaches ``v0 + work`` (``heap``). With ``n`` jobs running the quota ``left`` falls
    at rate ``n``. The next event is the first completion, the quota running out, or, while
    throttled or idle to the period's end, the refill; ``epoch`` voids a planned wake-up
    that a later change (a job starting) re-planned.
    """

    __slots__ = ("end", "epoch", "heap", "k", "left", "seq", "t", "throttled", "v")

    def __init__(self) -> None:
        self.v = 0.0
        self.t = 0.0  # time of the last advance
        self.k = -1  # index of the current period
        self.end = 0.0  # its end (seconds)
        self.left = 0.0  # CPU-seconds of quota left in it
        self.throttled = False
        self.heap: list[tuple[float, int, Job]] = []
        self.seq = 0
        self.epoch = 0


class Replica:
    __slots__ = (
        "booting",
        "busy",
        "cpu",
        "disk",
        "draining",
        "eff_workers",
        "index",
        "inflight",
        "jobs",
        "leak",
        "queue",
        "up",
        "warm",
    )

    def __init__(self, index: int, workers: int) -> None:
        self.index = index
        self.busy = 0
        self.inflight = 0
        self.queue: deque[Job] = deque()
        self.jobs: dict[Job, None] = {}  # insertion-ordered: deterministic kills
        self.up = True
        self.booting = False
        self.draining = False
        self.eff_workers = workers
        self.leak: Any = None  # MemoryLeak state while a leak fault is active
        self.disk: Disk | None = None  # its own disk (a service without a host)
        self.cpu: Quota | None = None  # CFS bandwidth state (a service with a CPU limit)
        # cold starts: when each idle instance last finished a request, oldest first
        self.warm: list[float] = []


class Host:
    """Cores shared by the services placed on a host: FIFO for a free core."""

    __slots__ = (
        "busy_area",
        "cores",
        "disk",
        "disk_slow",
        "free",
        "last",
        "name",
        "queue",
        "slow",
        "stolen",
    )

    def __init__(self, name: str, cores: int) -> None:
        self.name = name
        self.cores = cores
        self.free = cores
        self.queue: deque[Job] = deque()
        self.slow = 1.0  # processing slow-down of faults on the host
        self.disk_slow = 1.0  # disk I/O slow-down of faults on the host
        self.disk: Disk | None = None  # shared by every replica on the host
        self.busy_area = 0.0
        self.last = 0.0
        self.stolen = 0  # cores taken by contention on the host (CPU faults)

    def steal(self, cores: int) -> None:
        """Contention takes ``cores`` in all (fewer: gives some back). Cores taken while
        busy are owed (``free`` below zero) and handed over as their jobs let them go; cores
        given back go to the jobs waiting for one."""
        cores = min(cores, self.cores)
        self.free -= cores - self.stolen
        self.stolen = cores
        q = self.queue
        while self.free > 0 and q:
            nxt = q.popleft()
            if not nxt.finished:
                self.free -= 1
                nxt.core = True
                nxt.op.service._begin(nxt)


class Service:
    """One service at run time: replicas, policy knobs, fault state and its counters."""

    def __init__(
        self,
        ctx: Context,
        name: str,
        *,
        replicas: int,
        workers: int,
        queue_limit: int | None,
        blocking: bool,
        host: Host | None,
    ) -> None:
        self.ctx = ctx
        self.env = ctx.env  # hot paths read SimPy's clock as env._now (the `now` property's field)
        self.name = name
        self.workers = workers
        self.blocking = blocking
        self.host = host
        self.base_queue_limit = queue_limit
        self.queue_limit = queue_limit
        self.max_concurrency: int | None = None
        self.bucket: TokenBucket | None = None
        self.operations: dict[str, Operation] = {}
        self.replicas: list[Replica] = [Replica(i, workers) for i in range(replicas)]
        self.routable: list[Replica] = list(self.replicas)
        self.rr = 0
        self.stats = Counters()
        self.attack = Counters()
        # fault state, recomputed by the fault controller
        self.slow = 1.0
        self.delays: list[Callable[[], float]] = []
        self.error_p = 0.0
        self.corrupt_p = 0.0
        self.corrupt_detect = 0.0
        self.pool_fraction = 0.0
        self.disk_slow = 1.0
        self.disk_bandwidth: float | None = None  # each replica's own disk (no host)
        # CPU limit (cores per replica; None: none), its period, the share of each period's
        # quota left to the service by hogs in its pods, and the CPU-seconds it received
        self.cpu_limit: float | None = None
        self.cpu_period = 0.1
        self.quota_keep = 1.0
        self.cpu_seconds = 0.0
        # cold starts (a serverless function's instances): the cold-start sampler (None:
        # none), seconds an idle instance stays warm, and how many starts were cold or warm
        self.cold: Callable[[], float] | None = None
        self.keep_alive = math.inf
        self.cold_starts = 0
        self.warm_starts = 0
        self.uniform: Callable[[], float] = ctx.uniform(f"service:{name}")
        self.schedule = ctx.schedule
        # failover: when active, callers are sent to `failover_to`
        self.failover_to: Service | None = None
        self.failover_active = False
        # utilisation accounting: busy-worker-seconds, capacity-seconds, replica-seconds
        # (busy changes on every job; capacity and replica count rarely: accounted apart)
        self.busy = 0
        self.busy_area = 0.0
        self.last = 0.0
        self.cap = replicas * workers
        self.npods = replicas
        self.cap_area = 0.0
        self.pods_area = 0.0
        self.cap_last = 0.0
        self.win_mark = (0.0, 0.0, 0.0)  # the areas when the last monitor window closed
        self.next_replica_index = replicas

    # -- accounting ---------------------------------------------------------------------------

    def _capacity_changed(self) -> None:
        """Workers of replicas that are up (draining ones still work off what they hold).

        Jobs that hold a worker when pool exhaustion takes workers away keep it until they
        finish, so a replica's capacity is max(usable workers, busy workers) meanwhile.
        """
        self._cap_to(self.env._now)
        self.cap = sum(max(r.eff_workers, r.busy) for r in self.replicas if r.up)
        self.npods = len(self.replicas)

    def _cap_to(self, now: float) -> None:
        dt = now - self.cap_last
        if dt:
            self.cap_area += self.cap * dt
            self.pods_area += self.npods * dt
            self.cap_last = now

    def areas(self, now: float) -> tuple[float, float, float]:
        """Busy-worker-seconds, worker-seconds and replica-seconds from the start to ``now``."""
        return (
            self.busy_area + self.busy * (now - self.last),
            self.cap_area + self.cap * (now - self.cap_last),
            self.pods_area + self.npods * (now - self.cap_last),
        )

    # -- admission --------------------------------------------------------------------------

    def arrive(self, job: Job) -> None:
        ctx = self.ctx
        ctx.arrived += 1
        if ctx.arrived - ctx.done > ctx.in_flight_cap:  # the run's one guard per request
            ctx.overflow()
        stats = self.stats if job.klass == 0 else self.attack
        stats.w_arrivals += 1
        if job.measured:
            stats.arrivals += 1
        bucket = self.bucket
        if bucket is not None and not bucket.take(self.env._now):
            self.finish(job, RATE_LIMITED)
            return
        routable = self.routable
        n = len(routable)
        if not n:
            self.finish(job, SERVICE_DOWN)
            return
        i = self.rr
        if i >= n:
            i = 0
        self.rr = i + 1
        rep = routable[i]
        job.replica = rep
        rep.jobs[job] = None
        maxc = self.max_concurrency
        if rep.busy < rep.eff_workers and (maxc is None or rep.inflight < maxc) and not rep.queue:
            self._start(job, rep)
        elif self.queue_limit is not None and len(rep.queue) >= self.queue_limit:
            self.finish(job, REJECTED)
        else:
            rep.queue.append(job)

    def _start(self, job: Job, rep: Replica) -> None:
        now = self.env._now
        dt = now - self.last
        if dt:
            self.busy_area += self.busy * dt
            self.last = now
        self.busy += 1
        rep.busy += 1
        rep.inflight += 1
        job.started = True
        job.holding = True
        if self.cold is not None:
            job.cold = self._instance(rep, now)
        host = self.host
        if host is None:
            self._begin(job)
        elif host.free > 0:
            host.free -= 1
            job.core = True
            self._begin(job)
        else:
            host.queue.append(job)

    def _instance(self, rep: Replica, now: float) -> float:
        """A worker of ``rep`` for a job: its most recently idle instance if still warm
        (0 s), else a new one (a cold-start draw). The most recent is the last to expire, so
        when it has expired every older one has too."""
        warm = rep.warm
        if warm:
            if now - warm.pop() <= self.keep_alive:
                self.warm_starts += 1
                return 0.0
            warm.clear()
        self.cold_starts += 1
        assert self.cold is not None
        return self.cold()

    def _begin(self, job: Job) -> None:
        # a cold start is processing on the worker too (0.0 when warm: x + 0.0 is x)
        t = (job.op.sample() * job.cost + job.cold) * self.slow
        rep = job.replica
        if rep is not None and rep.leak is not None:
            t *= rep.leak.slowdown(self.env._now)
        host = self.host
        if host is not None:
            t *= host.slow
            job.callbacks = [self._core_done]
        elif self.cpu_limit is not None:
            self._cpu_run(job, t)
            return
        else:
            if self.delays:
                for d in self.delays:
                    t += d()
            job.callbacks = [self._processed if job.op.io is None else self._io]
        self.schedule(job, NORMAL, t)

    def _core_done(self, job: Job) -> None:
        host = self.host
        assert host is not None
        if job.core:  # a killed job gave its core back already
            job.core = False
            self._release_core(host)
        self._cpu_done(job)

    def _release_core(self, host: Host) -> None:
        if host.free < 0:  # the core is owed to contention on the host
            host.free += 1
            return
        q = host.queue
        while q:
            nxt = q.popleft()
            if not nxt.finished:
                nxt.core = True
                nxt.op.service._begin(nxt)
                return
        host.free += 1

    # -- CPU quota (CFS bandwidth control) ---------------------------------------------------

    def cold_starting(self, sample: Callable[[], float], keep_alive: float | None) -> None:
        """Give the service cold starts: ``sample`` draws a cold start's seconds; an idle
        instance stays warm ``keep_alive`` seconds (None: for ever)."""
        self.cold = sample
        self.keep_alive = math.inf if keep_alive is None else keep_alive

    def limit_cpu(self, cores: float, period: float) -> None:
        """Give every replica a CFS quota of ``cores x period`` CPU-seconds per ``period``."""
        self.cpu_limit = cores
        self.cpu_period = period

    def cpu_capacity(self) -> float:
        """Cores the service may use now: the workers of the replicas that are up, each
        replica's capped at its CPU limit (what hogs leave of it)."""
        if self.cpu_limit is None:
            return float(self.cap)
        per = self.cpu_limit * self.quota_keep
        return float(sum(min(max(r.eff_workers, r.busy), per) for r in self.replicas if r.up))

    def _cpu_run(self, job: Job, work: float) -> None:
        """``job`` needs ``work`` CPU-seconds on its replica, under the replica's quota."""
        rep = job.replica
        assert rep is not None
        q = rep.cpu
        if q is None:
            q = rep.cpu = Quota()
        now = self.env._now
        self._cpu_advance(q, now)
        q.seq += 1
        heapq.heappush(q.heap, (q.v + work, q.seq, job))
        self._cpu_plan(rep, q, now)

    def _cpu_advance(self, q: Quota, now: float) -> None:
        """Bring ``q`` to ``now``: CPU given to the running jobs, and the refill when a period
        has begun (planned wake-ups never let a busy replica pass a period's end)."""
        dt = now - q.t
        if dt > 0.0:
            n = len(q.heap)
            if n and not q.throttled:
                q.v += dt
                used = n * dt
                q.left -= used
                self.cpu_seconds += used
            q.t = now
        period = self.cpu_period
        if now >= q.end - WORK_EPS * period:
            k = int(now / period + 1e-9)
            if k <= q.k:
                k = q.k + 1
            q.k = k
            q.end = (k + 1) * period
            assert self.cpu_limit is not None
            q.left = self.cpu_limit * period * self.quota_keep
            q.throttled = q.left <= WORK_EPS

    def _cpu_plan(self, rep: Replica, q: Quota, now: float) -> None:
        """Plan the replica's next CPU event (a completion, the quota spent, the refill)."""
        n = len(q.heap)
        if not n:
            return
        q.epoch += 1
        to_end = q.end - now
        if q.throttled:
            delay = to_end
        else:
            delay = min(q.heap[0][0] - q.v, q.left / n, to_end)
        self.schedule(Wake(self._cpu_wake, (rep, q, q.epoch)), NORMAL, max(0.0, delay))

    def _cpu_wake(self, wake: Wake) -> None:
        rep, q, epoch = wake.payload
        if rep.cpu is not q or q.epoch != epoch:
            return  # re-planned since, or the replica died
        now = self.env._now
        self._cpu_advance(q, now)
        heap = q.heap
        done: list[Job] = []
        limit = q.v + WORK_EPS
        while heap and heap[0][0] <= limit:
            done.append(heapq.heappop(heap)[2])
        if not q.throttled and q.left <= WORK_EPS:
            q.throttled = True
        self._cpu_plan(rep, q, now)
        for job in done:
            self._cpu_done(job)

    def _cpu_done(self, job: Job) -> None:
        """The job's CPU work is done (on a host's core or within its quota): its injected
        delays (holding the worker), then on."""
        if job.finished:
            return
        extra = 0.0
        for d in self.delays:
            extra += d()
        after = self._processed if job.op.io is None else self._io
        if extra > 0.0:
            job.callbacks = [after]
            self.schedule(job, NORMAL, extra)
        else:
            after(job)

    # -- disk I/O ------------------------------------------------------------------------------

    def give_disks(self, bandwidth: float) -> None:
        """Every replica (and every later one) gets a disk of its own of this bandwidth."""
        self.disk_bandwidth = bandwidth
        for rep in self.replicas:
            rep.disk = Disk(bandwidth)

    def _disk(self, job: Job) -> Disk:
        host = self.host
        disk = host.disk if host is not None else job.replica.disk  # type: ignore[union-attr]
        assert disk is not None, "the topology check gives every service with I/O a disk"
        return disk

    def _io(self, job: Job) -> None:
        if job.finished:
            return
        op_io = job.op.io
        assert op_io is not None
        if not self.blocking:
            self._release_worker(job)
        disk = self._disk(job)
        size = op_io()
        if disk.busy:
            disk.queue.append((job, size))
        else:
            self._disk_start(disk, job, size)

    def _disk_start(self, disk: Disk, job: Job, size: float) -> None:
        disk.busy = True
        slow = self.disk_slow
        if self.host is not None:
            slow *= self.host.disk_slow
        job.callbacks = [self._io_done]
        self.schedule(job, NORMAL, size / disk.bandwidth * slow)

    def _io_done(self, job: Job) -> None:
        disk = self._disk(job)
        disk.busy = False
        q = disk.queue
        while q:
            nxt, size = q.popleft()
            if not nxt.finished:
                nxt.op.service._disk_start(disk, nxt, size)
                break
        if not job.finished:
            self._processed(job)

    def _processed(self, job: Job) -> None:
        if job.finished:
            return
        if self.error_p and self.uniform() < self.error_p:
            self.finish(job, ERROR)
            return
        if self.corrupt_p and self.uniform() < self.corrupt_p:
            job.corrupt = self.corrupt_detect or 1e-12
        stages = job.op.stages
        if not stages:
            self.finish(job, OK)
            return
        if not self.blocking and job.holding:
            self._release_worker(job)
        job.stage = 0
        self._run_stage(job)

    def _release_worker(self, job: Job) -> None:
        job.holding = False
        rep = job.replica
        assert rep is not None
        now = self.env._now
        dt = now - self.last
        if dt:
            self.busy_area += self.busy * dt
            self.last = now
        self.busy -= 1
        rep.busy -= 1
        if self.cold is not None:  # its instance is idle, and warm, from now
            rep.warm.append(now)
        if rep.busy >= rep.eff_workers:  # a worker taken by pool exhaustion is now gone
            self._capacity_changed()
        if rep.queue:
            self._drain(rep)

    def _drain(self, rep: Replica) -> None:
        if not rep.up:
            return
        q = rep.queue
        maxc = self.max_concurrency
        while q and rep.busy < rep.eff_workers and (maxc is None or rep.inflight < maxc):
            self._start(q.popleft(), rep)

    # -- calls ------------------------------------------------------------------------------

    def _run_stage(self, job: Job) -> None:
        if job.op.gated:
            self._run_gated(job)
            return
        stages = job.op.stages
        n = len(stages)
        while job.stage < n:
            stage = stages[job.stage]
            if len(stage) == 1 and stage[0].count == 1:  # the common case: one call
                spec = stage[0]
                if spec.probability >= 1.0 or self.uniform() < spec.probability:
                    job.pending = 1
                    spec.client.issue(job, spec)
                    return
                job.stage += 1
                continue
            u = self.uniform
            plan: list[CallSpec] = []
            for spec in stage:
                if spec.probability >= 1.0 or u() < spec.probability:
                    plan.extend([spec] * spec.count)
            if plan:
                job.pending = len(plan)
                for spec in plan:
                    spec.client.issue(job, spec)
                    if job.finished:  # a call failed at once and failed the job
                        return
                return
            job.stage += 1
        self.finish(job, OK)

    def _run_gated(self, job: Job) -> None:
        """The stage loop for operations with conditional or asynchronous calls."""
        stages = job.op.stages
        n = len(stages)
        u = self.uniform
        while job.stage < n:
            stage = stages[job.stage]
            if stage[0].gate != FOLLOW:  # a new stage: the current one becomes the previous
                job.prev = job.cur
                job.cur = NONE
            prev = job.prev
            met = False
            plan: list[CallSpec] = []
            for spec in stage:
                gate = spec.gate
                if gate == FOLLOW:
                    if job.cur == SKIPPED:
                        continue
                elif gate and gate != prev:
                    continue
                met = True
                if spec.probability >= 1.0 or u() < spec.probability:
                    plan.extend([spec] * spec.count)
            if not met:
                job.cur = SKIPPED
            elif plan:
                if job.cur == NONE:
                    job.cur = MADE
                waits = [spec for spec in plan if not spec.detached]
                for spec in plan:  # fire-and-forget first: a call answered at once may
                    if spec.detached:  # move the job on before the loop ends
                        spec.client.issue(job, spec)
                if waits:
                    job.pending = len(waits)
                    for spec in waits:
                        spec.client.issue(job, spec)
                        if job.finished:
                            return
                    return
            job.stage += 1
        self.finish(job, OK)

    def call_done(self, job: Job, spec: CallSpec, code: int, corrupt: float) -> None:
        """A call of ``job`` answered (after its retries); move on, or fail the job."""
        if job.finished:
            return
        if code != OK:
            job.cur = FAILED
            if not spec.optional:
                self.finish(job, code)
                return
        if corrupt and code == OK:
            job.corrupt = corrupt
        job.pending -= 1
        if job.pending == 0:
            job.stage += 1
            self._run_stage(job)

    # -- finish -----------------------------------------------------------------------------

    def finish(self, job: Job, code: int) -> None:
        if job.finished:
            return
        job.finished = True
        self.ctx.done += 1
        rep = job.replica
        if rep is not None:
            rep.jobs.pop(job, None)
            if job.holding:
                job.holding = False
                now = self.env._now
                dt = now - self.last
                if dt:
                    self.busy_area += self.busy * dt
                    self.last = now
                self.busy -= 1
                rep.busy -= 1
                if self.cold is not None:
                    rep.warm.append(now)
                if rep.busy >= rep.eff_workers and rep.up:
                    self._capacity_changed()
            if job.started:
                rep.inflight -= 1
                if rep.queue:
                    self._drain(rep)
        stats = self.stats if job.klass == 0 else self.attack
        stats.w_counts[code] += 1
        if job.measured:
            stats.counts[code] += 1
        if code == OK:
            lat = self.env._now - job.t0
            if job.measured:
                stats.w_hist.add(lat)
            else:
                stats.w_hist_u.add(lat)
        job.parent.done(job, code)

    # -- replicas going down and up (outages, OOM kills, scaling) -------------------------------

    def kill(self, rep: Replica) -> None:
        """The replica dies: everything on it fails with SERVICE_DOWN, nothing new reaches it."""
        if not rep.up:
            return
        rep.up = False
        rep.cpu = None  # its jobs die with it; a restart starts a fresh quota
        self._capacity_changed()
        if rep in self.routable:
            self.routable.remove(rep)
        jobs = list(rep.jobs)
        rep.queue.clear()
        host = self.host
        for job in jobs:
            if job.core and host is not None:
                job.core = False
                self._release_core(host)
            self.finish(job, SERVICE_DOWN)
        rep.warm.clear()  # its instances die with it: a restart starts cold

    def revive(self, rep: Replica) -> None:
        """The replica serves again (restarted, booted, outage over)."""
        if rep.up or rep.draining or rep.booting:
            return
        rep.up = True
        self._capacity_changed()
        self.routable.append(rep)
        self.routable.sort(key=lambda r: r.index)

    def set_eff_workers(self) -> None:
        """Apply the pool-exhaustion fraction to every replica's usable workers."""
        held = math.floor(self.pool_fraction * self.workers + 0.5)
        self._cap_to(self.env._now)
        for rep in self.replicas:
            rep.eff_workers = max(0, self.workers - held)
        self._capacity_changed()
        for rep in self.replicas:
            if rep.queue:
                self._drain(rep)

    def add_replica(self) -> Replica:
        """A new replica, booting: it costs from now and serves once :meth:`revive`d."""
        self._cap_to(self.env._now)
        held = math.floor(self.pool_fraction * self.workers + 0.5)
        rep = Replica(self.next_replica_index, self.workers)
        rep.eff_workers = max(0, self.workers - held)
        if self.disk_bandwidth is not None:
            rep.disk = Disk(self.disk_bandwidth)
        self.next_replica_index += 1
        rep.up = False
        rep.booting = True
        self.replicas.append(rep)
        self.npods = len(self.replicas)
        return rep

    def drain(self, rep: Replica) -> None:
        """Scale-in: no new work; the replica goes once what it holds is done."""
        rep.draining = True
        if rep in self.routable:
            self.routable.remove(rep)
        if rep.booting:
            rep.booting = False
        self.purge_drained()

    def purge_drained(self) -> None:
        gone = [r for r in self.replicas if r.draining and not r.jobs and not r.queue]
        if gone:
            self.replicas = [r for r in self.replicas if r not in gone]
            self._capacity_changed()

    def queue_length(self) -> int:
        return sum(len(r.queue) for r in self.replicas)


class Broker(Service):
    """A message queue with its consumer pool: the caller is answered when the message is
    queued (or refused: REJECTED, RATE_LIMITED, SERVICE_DOWN, as any arrival), and the
    replicas' workers consume the backlog, FIFO per replica (a partition)."""

    def arrive(self, job: Job) -> None:
        parent = job.parent
        Service.arrive(self, job)
        if not job.finished:  # queued or being consumed: acknowledge it now
            job.parent = CONSUMED
            parent.done(job, OK)
