"""``Simulation``: the three documents and a seed in, plain results out; runs or steps."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import simpy

from twin.distributions import Exponential, uniform_sampler
from twin.faults import fault_windows
from twin.outcomes import REASONS, reason_name
from twin.policy import ClientPolicy, Policy
from twin.results import (
    EntryStretch,
    Results,
    ServiceStretch,
    Stretch,
    Summary,
    TimeSeries,
    Verdict,
)
from twin.results.series import Block, Metrics
from twin.rng import generator
from twin.scenario import Scenario
from twin.sim.budget import SERIES_AUTO_LIMIT, Budget, CallGraph, estimate, keeps_service_series
from twin.sim.client import Client
from twin.sim.control import Autoscaler, FailoverControl, FaultController
from twin.sim.events import NORMAL, Wake
from twin.sim.service import (
    ALWAYS,
    FOLLOW,
    GATES,
    Broker,
    CallSpec,
    Disk,
    Host,
    Job,
    Operation,
    Service,
)
from twin.sim.workload import Entry, Source, Users
from twin.topology import Topology

CORRUPTED: Metrics = (("requests", "corrupted"),)
ATTACK: Metrics = (("attack", "arrivals"), ("attack", "succeeded"), ("attack", "failed"))
RESOURCES: Metrics = (
    ("resources", "utilization"),
    ("resources", "queue"),
    ("resources", "replicas"),
)

__all__ = ["SERIES_AUTO_LIMIT", "Context", "Simulation", "Stopped"]


class Stopped(Exception):
    """Raised inside a running simulation when it must stop with a verdict (caught by
    :meth:`Simulation.run` and :meth:`Simulation.step`, never seen by callers)."""


class Context:
    """What every run-time object shares: the SimPy environment, seeds and the warm-up, and
    the count of requests in the system that stops an unstable run.

    ``arrived`` and ``done`` count every job (a request at one service) that arrived and that
    finished; a service compares their difference with ``in_flight_cap`` at each arrival,
    which is all the guard costs per request.
    """

    def __init__(self, env: simpy.Environment, seed: int, warmup: float) -> None:
        self.env = env
        self.seed = seed
        self.warmup = warmup
        # SimPy types its queue as holding Events; ours are duck-typed bare events
        self.schedule: Callable[[Any, int, float], None] = env.schedule  # type: ignore[assignment]
        self.arrived = 0
        self.done = 0
        self.in_flight_cap = 1 << 62
        self.stop: Callable[[str], None] = _no_stop

    def overflow(self) -> None:
        """The requests in the system passed the cap: the run stops as unstable."""
        self.stop("unstable")

    def uniform(self, stream: str) -> Callable[[], float]:
        return uniform_sampler(generator(self.seed, stream))


def _no_stop(kind: str) -> None:  # a context outside a simulation never stops
    return None


class Simulation:
    """A twin run. ``run()`` to the end, or ``step(seconds)`` / ``apply(policy)`` in between.

    Same topology, scenario, policy and seed: same results, bit for bit.
    """

    def __init__(
        self,
        topology: Topology,
        scenario: Scenario | None = None,
        policy: Policy | None = None,
        *,
        seed: int | None = None,
        series: str = "auto",
        trace_sample: float = 0.0,
        trace_limit: int = 100_000,
        budget: Budget | None = None,
    ) -> None:
        scenario = scenario or Scenario()
        if seed is not None:
            scenario = scenario.model_copy(update={"seed": seed})
        scenario.check_against(topology)
        self.topology = topology
        self.scenario = scenario
        self.policy = policy or Policy()
        self.policy.check_against(topology)
        # the work and memory the run will need, refused above the budget before anything
        # is built (twin.sim.budget)
        self.budget = budget or Budget.from_limits()
        self.graph = CallGraph(topology, self.policy)
        self.estimate = estimate(
            topology,
            scenario,
            self.policy,
            series=series,
            trace_sample=trace_sample,
            trace_limit=trace_limit,
            graph=self.graph,
        )
        self.budget.check(self.estimate)
        self.verdict: Verdict | None = None
        self.env = simpy.Environment()
        self.ctx = Context(self.env, scenario.seed, scenario.warmup)
        self.ctx.in_flight_cap = self.budget.in_flight_cap(self.estimate)
        self.ctx.stop = self._stop
        self.work_cap = self.budget.work_cap()
        self.hosts = {n: Host(n, h.cores) for n, h in topology.hosts.items()}
        for n, h in topology.hosts.items():
            if h.disk_bandwidth is not None:
                self.hosts[n].disk = Disk(h.disk_bandwidth)
        self.services: dict[str, Service] = {}
        self.clients: dict[str, Client] = {}
        self.entries: dict[str, Entry] = {}
        self.sources: list[Source | Users] = []
        self._build()
        self.series_services = keeps_service_series(series, len(self.services))
        self.blocks: list[Block] = []  # the time series, a block per window and scope
        self.window = scenario.window
        self.window_start = 0.0
        self._marks: dict[str, tuple[float, float, float]] = {}
        self.autoscalers: dict[str, Autoscaler] = {}
        self.failovers: dict[str, FailoverControl] = {}
        self.apply(self.policy)
        self.faults = FaultController(self, fault_windows(scenario))
        self.trace_rows: list[tuple[Any, ...]] = []
        if trace_sample > 0.0:
            self._install_trace(trace_sample, trace_limit)
        self._start_load()
        self.ctx.schedule(Wake(self._tick), NORMAL, self.window)
        if scenario.warmup > 0:
            self.ctx.schedule(Wake(self._warmup_mark), NORMAL, scenario.warmup)
        self.wall = 0.0

    # -- construction -------------------------------------------------------------------------

    def _build(self) -> None:
        topo = self.topology
        ctx = self.ctx
        for name, spec in topo.services.items():
            host = self.hosts[spec.host] if spec.host else None
            svc = (Broker if spec.broker else Service)(
                ctx,
                name,
                replicas=spec.replicas,
                workers=spec.workers,
                queue_limit=spec.queue_limit,
                blocking=spec.blocking,
                host=host,
            )
            for op_name, op in spec.operations.items():
                sample = op.service_time.sampler(generator(ctx.seed, f"work:{name}:{op_name}"))
                svc.operations[op_name] = Operation(svc, op_name, sample)
                if op.io is not None:  # its own stream: topologies without I/O draw as before
                    io = op.io.sampler(generator(ctx.seed, f"io:{name}:{op_name}"))
                    svc.operations[op_name].io = io
            if spec.disk_bandwidth is not None:
                svc.give_disks(spec.disk_bandwidth)
            if spec.cpu_limit is not None:
                svc.limit_cpu(spec.cpu_limit, spec.cpu_period)
            if spec.cold_start is not None:  # its own stream: other services draw as before
                cold = spec.cold_start.sampler(generator(ctx.seed, f"cold:{name}"))
                svc.cold_starting(cold, spec.keep_alive)
            self.services[name] = svc
        for name, spec in topo.services.items():
            svc = self.services[name]
            for op_name, op in spec.operations.items():
                stages: list[list[CallSpec]] = []
                group: list[CallSpec] = []
                for k, call in enumerate(op.calls):
                    callee_name, callee_op = topo.resolve(call.to)
                    client = self._client(name, callee_name)
                    target = self.services[callee_name].operations[callee_op]
                    own = None
                    if call.latency is not None:  # its own stream: other calls draw as before
                        key = f"net:{name}:{op_name}:{k}"
                        own = call.latency.sampler(generator(ctx.seed, key))
                    gate = GATES[call.when]
                    args = (call.optional, call.size_bytes, target, own)
                    if call.parallel:
                        group.append(
                            CallSpec(
                                client, call.probability, call.count, *args, gate, call.asynchronous
                            )
                        )
                        continue
                    if group:
                        stages.append(group)
                        group = []
                    for rep in range(call.count):  # later repetitions follow the first's condition
                        g = gate if rep == 0 or gate == ALWAYS else FOLLOW
                        stages.append(
                            [CallSpec(client, call.probability, 1, *args, g, call.asynchronous)]
                        )
                if group:
                    stages.append(group)
                svc.operations[op_name].stages = stages
                svc.operations[op_name].gated = any(
                    c.when != "always" or c.asynchronous for c in op.calls
                )
        for i, w in enumerate(topo.workload):
            key = w.entry
            if key not in self.entries:
                ops = self.services[w.service].operations
                classes = [
                    (ops[node.partition(":")[2]], share) for node, share in topo.entry_classes(w)
                ]
                pick = ctx.uniform(f"classes:{i}:{key}") if len(classes) > 1 else None
                self.entries[key] = Entry(ctx, key, classes, pick)
        for i, w in enumerate(topo.workload):
            entry = self.entries[w.entry]
            if w.poisson_rate > 0.0:
                gap = Exponential(mean=1.0).sampler(generator(ctx.seed, f"arrivals:{i}:{w.entry}"))
                self.sources.append(Source(ctx, entry, w.poisson_rate, gap))
            if w.think_time is not None:  # a closed loop: its own stream of think times
                think = w.think_time.sampler(generator(ctx.seed, f"think:{i}:{w.entry}"))
                closed = w.rate - w.poisson_rate
                self.sources.append(Users(ctx, entry, w.users_at, think, closed))

    def _client(self, caller: str, callee: str) -> Client:
        key = f"{caller}->{callee}"
        client = self.clients.get(key)
        if client is None:
            link = self.topology.link(caller, callee)
            lat = link.latency
            sampler = None
            if lat is not None and lat.expected() > 0:
                sampler = lat.sampler(generator(self.ctx.seed, f"net:{key}"))
            callee_svc = self.services[callee]
            client = Client(
                self.ctx,
                self.services[caller],
                callee_svc,
                sampler,
                link.loss,
            )
            client.configure(ClientPolicy())
            self.clients[key] = client
        return client

    def _start_load(self) -> None:
        steps = self.scenario.load.steps()
        first = steps[0][1] if steps[0][0] <= 0.0 else 1.0
        for src in self.sources:
            src.multiplier = first
            src.start()
        for at, mult in steps:
            if at > 0.0:
                self.ctx.schedule(Wake(self._load_step, mult), NORMAL, at)

    def _load_step(self, wake: Wake) -> None:
        for src in self.sources:
            src.set_multiplier(wake.payload)

    def zone_of(self, service: str) -> str | None:
        spec = self.topology.services[service]
        if spec.host is not None:
            return self.topology.hosts[spec.host].zone
        return spec.zone

    def entry_for(self, target: str) -> Entry:
        """The entry a traffic fault hits (created if the workload has no such entry)."""
        if target not in self.entries:
            svc, op = self.topology.resolve(target)
            target_op = self.services[svc].operations[op]
            match = [e for e in self.entries.values() if any(o is target_op for o, _ in e.classes)]
            if match:
                return match[0]
            self.entries[target] = Entry(
                self.ctx, target, [(self.services[svc].operations[op], 1.0)], None
            )
        return self.entries[target]

    # -- policy -------------------------------------------------------------------------------

    def apply(self, policy: Policy) -> None:
        """Put a policy in force now (the stepping API: the RL agent and live what-if use it)."""
        policy.check_against(self.topology)
        self.policy = policy
        for key, client in self.clients.items():
            caller, _, callee = key.partition("->")
            client.configure(policy.client(caller, callee))
        spec = self.topology.services
        for name, svc in self.services.items():
            sp = policy.services.get(name)
            svc.queue_limit = (
                sp.queue_limit if sp and sp.queue_limit is not None else (spec[name].queue_limit)
            )
            svc.max_concurrency = sp.max_concurrency if sp else None
            from twin.mitigations import TokenBucket

            rl = sp.rate_limit if sp else None
            if rl is None:
                svc.bucket = None
            elif svc.bucket is None or (svc.bucket.rps, svc.bucket.burst) != (rl.rps, rl.burst):
                svc.bucket = TokenBucket(rl.rps, rl.burst)
                svc.bucket.last = self.env.now
            scaler = self.autoscalers.get(name)
            asc = sp.autoscale if sp else None
            if scaler is not None and (asc is None or asc != scaler.cfg):
                scaler.stop()
                del self.autoscalers[name]
            if asc is not None and name not in self.autoscalers:
                self.autoscalers[name] = Autoscaler(self.ctx, svc, asc)
            fo = sp.failover if sp else None
            ctl = self.failovers.get(name)
            if ctl is not None and (fo is None or fo != ctl.cfg):
                svc.failover_active = False
                svc.failover_to = None
                del self.failovers[name]
            if fo is not None and name not in self.failovers:
                if not self.series_services:  # its first observation: this window's only
                    self._roll_services((name,))
                self.failovers[name] = FailoverControl(svc, self.services[fo.to], fo)
            for rep in svc.replicas:
                if rep.queue:
                    svc._drain(rep)

    # -- monitoring ---------------------------------------------------------------------------

    def _warmup_mark(self, _: Wake) -> None:
        now = self.env.now
        for name, svc in self.services.items():
            self._marks[name] = svc.areas(now)

    def _tick(self, wake: Wake) -> None:
        self._close_window()
        wake.callbacks = [self._tick]
        self.ctx.schedule(wake, NORMAL, self.window)
        if self.ctx.arrived > self.work_cap:
            self._stop("work")

    # -- stopping with a verdict ----------------------------------------------------------------

    def _stop(self, kind: str) -> None:
        """Record why the run stops now and unwind out of SimPy (see :class:`Verdict`)."""
        ctx = self.ctx
        service, rho = self._saturated_first()
        self.verdict = Verdict(
            verdict="unstable" if kind == "unstable" else "work",
            service=service,
            utilization=rho,
            stopped_at=self.env.now,
            in_flight=ctx.arrived - ctx.done,
            requests=ctx.arrived,
            limit=ctx.in_flight_cap if kind == "unstable" else self.work_cap,
        )
        raise Stopped(kind)

    def offered_utilisation(self) -> dict[str, float]:
        """Each service's offered utilisation now, from the documents and the state of the
        run: the arrival rates in force (load step, surge and attack sources, each weighted by
        its cost) through the call graph, times the mean service time and the slow-down of
        faults, over the workers of the replicas that are up (each replica's capped at its
        CPU limit, less what hogs take)."""
        work: dict[str, float] = {}
        sources: list[Source | Users] = list(self.sources)
        sources += [h for _, h in self.faults.active if isinstance(h, Source)]
        for src in sources:
            if src.active:
                rate = src.rate * src.multiplier * src.cost
                total = sum(share for _, share in src.entry.classes)
                for op, share in src.entry.classes:
                    node = f"{op.service.name}:{op.name}"
                    work[node] = work.get(node, 0.0) + rate * share / total
        rates = self.graph.spread(work)
        load: dict[str, float] = dict.fromkeys(self.services, 0.0)
        for node, rate in rates.items():
            load[self.graph.service_of[node]] += rate * self.graph.mean_time[node]
        out = {}
        for name, svc in self.services.items():
            slow = svc.slow * (svc.host.slow if svc.host is not None else 1.0)
            cap = svc.cap if svc.cpu_limit is None else svc.cpu_capacity()
            out[name] = load[name] * slow / cap if cap > 0 else math.inf
        return out

    def _saturated_first(self) -> tuple[str | None, float | None]:
        """The service offered the highest utilisation now when it is at least 1; else the
        service holding the most requests (a backlog with another cause: a delay, retries)."""
        rho = self.offered_utilisation()
        if rho:
            name = max(rho, key=lambda n: rho[n])
            if rho[name] >= 1.0:
                return name, rho[name] if math.isfinite(rho[name]) else None
        held = {n: sum(len(r.jobs) for r in s.replicas) for n, s in self.services.items()}
        if not held:
            return None, None
        name = max(held, key=lambda n: held[n])
        return name, rho.get(name)

    def _close_window(self) -> None:
        """Close the monitor window: series rows, failover observations, counters rolled.

        Without per-service series a service's window is only a buffer for its totals: it
        fills over many windows and :meth:`_roll_services` empties it when ``step`` or
        ``results`` reads the totals; only the services a failover control watches window
        by window are rolled here. A pass over every service each window would cost in
        proportion to the topology's size, not to its traffic.
        """
        now = self.env.now
        t0 = self.window_start
        span = now - t0
        if span <= 0:
            return
        blocks = self.blocks
        for ctl in self.failovers.values():
            ctl.observe(now)
        for name, entry in self.entries.items():
            entry.stats.emit_window(blocks, t0, span, "entry", name)
            if entry.w_corrupted:
                blocks.append((t0, span, "entry", name, CORRUPTED, (float(entry.w_corrupted),)))
                entry.w_corrupted = 0
            attack = entry.attack
            if attack.active:
                blocks.append((t0, span, "entry", name, ATTACK, attack.take_counts()))
        if not self.series_services:
            # no per-service series: roll the buffered totals, skip the quantiles
            self._roll_services(self.failovers)
            self.window_start = now
            return
        for name, svc in self.services.items():
            svc.stats.emit_window(blocks, t0, span, "service", name)
            if svc.attack.active:
                svc.attack.roll_window()
            b0, c0, p0 = svc.win_mark
            svc.win_mark = areas = svc.areas(now)
            cap = areas[1] - c0
            utilization = (areas[0] - b0) / cap if cap > 0 else math.nan
            queue = float(svc.queue_length())
            resources = (utilization, queue, (areas[2] - p0) / span)
            blocks.append((t0, span, "service", name, RESOURCES, resources))
        self.window_start = now

    def _roll_services(self, names: Iterable[str] | None = None) -> None:
        """Move what the services' windows buffered into their totals and stretches
        (``names``: only those services; default: every one)."""
        for name in self.services if names is None else names:
            svc = self.services[name]
            svc.stats.roll_window()
            svc.attack.roll_window()

    # -- running ------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return float(self.env.now)

    @property
    def events(self) -> int:
        """Events SimPy has scheduled so far (its event-id counter)."""
        eid = getattr(self.env, "_eid", None)
        return int(repr(eid)[6:-1]) if eid is not None else -1

    def run(
        self, until: float | None = None, progress: Callable[[float], None] | None = None
    ) -> Results:
        """Run to ``until`` (default: the scenario's end) and return the results so far."""
        end = self.scenario.duration if until is None else min(until, self.scenario.duration)
        t = time.perf_counter()
        try:
            if self.verdict is not None:
                pass  # stopped with a verdict: nothing more to run
            elif progress is None:
                if end > self.env.now:
                    self.env.run(until=end)
            else:
                chunk = max(self.window, (end - self.env.now) / 100)
                while self.env.now < end:
                    self.env.run(until=min(end, self.env.now + chunk))
                    progress(self.env.now)
        except Stopped:
            pass
        self.wall += time.perf_counter() - t
        return self.results()

    def step(self, seconds: float) -> Stretch:
        """Advance ``seconds`` and return what that stretch saw, per entry and service:
        arrivals, outcomes by reason, latency quantiles (seconds), utilisation, queue now,
        replicas (time-averaged), and the breakers' states now."""
        start = self.env.now
        end = min(start + seconds, self.scenario.duration)
        for c in self._all_counters():
            c.reset_stretch()
        marks = {}
        for name, svc in self.services.items():
            marks[name] = svc.areas(start)
        t = time.perf_counter()
        if end > self.env.now and self.verdict is None:
            with contextlib.suppress(Stopped):
                self.env.run(until=end)
        if self.verdict is not None:  # stopped: the stretch ends where the run did
            end = max(start, self.env.now)
        self._close_window()
        self._roll_services()
        self.wall += time.perf_counter() - t
        span = max(end - start, 1e-12)
        services: dict[str, ServiceStretch] = {}
        for name, svc in self.services.items():
            b0, c0, p0 = marks[name]
            b1, c1, p1 = svc.areas(end)
            cap = c1 - c0
            services[name] = ServiceStretch.model_construct(
                **svc.stats.stretch(),
                utilization=(b1 - b0) / cap if cap > 0 else None,
                queue=svc.queue_length(),
                replicas=(p1 - p0) / span,
                ready=len(svc.routable),
            )
        entries = {}
        for name, e in self.entries.items():
            entries[name] = EntryStretch.model_construct(**e.stats.stretch())
        return Stretch.model_construct(
            time=end,
            seconds=end - start,
            entries=entries,
            services=services,
            breakers={k: c.breaker.state for k, c in self.clients.items() if c.breaker},
        )

    def _all_counters(self) -> list[Any]:
        out: list[Any] = [e.stats for e in self.entries.values()]
        out += [s.stats for s in self.services.values()]
        return out

    def state(self) -> dict[str, Any]:
        """What a controller can see now: queues, replicas, breakers (plain data)."""
        return {
            "time": self.now,
            "services": {
                n: {
                    "queue": s.queue_length(),
                    "busy": s.busy,
                    "capacity": s.cap,
                    "replicas": len(s.replicas),
                    "ready": len(s.routable),
                    "failover_active": s.failover_active,
                }
                for n, s in self.services.items()
            },
            "breakers": {k: c.breaker.state for k, c in self.clients.items() if c.breaker},
        }

    # -- results ------------------------------------------------------------------------------

    def _install_trace(self, fraction: float, limit: int) -> None:
        u = self.ctx.uniform("trace")
        rows = self.trace_rows

        def record(entry: Entry, job: Job, code: int) -> None:
            if len(rows) < limit and u() < fraction:
                rows.append(
                    (
                        entry.name,
                        "attack" if job.klass else "user",
                        job.t0,
                        self.env.now,
                        reason_name(code),
                        bool(job.corrupt),
                    )
                )

        for e in self.entries.values():
            e.trace = record

    def results(self) -> Results:
        """Plain-data results (no engine objects): summary, time series, sampled trace."""
        if self.env.now > self.window_start:
            self._close_window()
        self._roll_services()
        now = self.env.now
        measured = max(0.0, now - self.scenario.warmup)
        total_req = total_ok = total_fail = corrupted = inflight = 0
        failures: dict[str, int] = {}
        from twin.stats import LogHistogram

        hist = LogHistogram()
        entries: dict[str, Any] = {}
        attack: dict[str, Any] = {}
        for name, e in self.entries.items():
            s = e.stats.summary()
            s["corrupted"] = e.corrupted
            s["in_flight"] = e.inflight_measured
            entries[name] = s
            total_req += s["requests"]
            total_ok += s["succeeded"]
            total_fail += s["failed"]
            corrupted += e.corrupted
            inflight += e.inflight_measured
            for k, v in s["failures"].items():
                failures[k] = failures.get(k, 0) + v
            hist.merge(e.stats.hist)
            if e.attack.arrivals:
                attack[name] = e.attack.summary()
        services: dict[str, Any] = {}
        for name, svc in self.services.items():
            b0, c0, p0 = self._marks.get(name, (0.0, 0.0, 0.0))
            b1, c1, p1 = svc.areas(now)
            cap = c1 - c0
            s = svc.stats.summary()
            s = {
                "arrivals": s["requests"],
                "completions": s["succeeded"],
                "failed": s["failed"],
                "failures": s["failures"],
                "rejected": s["failures"].get("REJECTED", 0),
                "utilization": (b1 - b0) / cap if cap > 0 else None,
                "replica_seconds": p1 - p0,
                "latency": s["latency"],
            }
            services[name] = s
        slo = self.topology.slo
        lat = hist.summary()
        summary: dict[str, Any] = {
            "requests": total_req,
            "succeeded": total_ok,
            "failed": total_fail,
            "in_flight": inflight,
            "corrupted": corrupted,
            "failures": dict(sorted(failures.items(), key=lambda kv: REASONS.index(kv[0]))),
            "latency": {k: (None if math.isnan(v) else v) for k, v in lat.items()},
            "availability": total_ok / (total_ok + total_fail) if total_ok + total_fail else None,
            "throughput": total_ok / measured if measured > 0 else None,
            "entries": entries,
            "services": services,
            "edges": {k: c.summary() for k, c in self.clients.items()},
            "attack": attack,
            "replica_seconds": sum(s["replica_seconds"] for s in services.values()),
            "slo": _slo_check(slo.latency_p99, slo.availability, lat["p99"], total_ok, total_fail),
            "faults": self.faults.log,
            "simulated_seconds": now,
            "measured_seconds": measured,
            "seed": self.scenario.seed,
            "events": self.events,
            "wall_seconds": self.wall,
        }
        if self.verdict is not None:
            summary["verdict"] = self.verdict
        return Results(
            summary=Summary.model_validate(summary),
            timeseries=TimeSeries(blocks=self.blocks),
            trace=list(self.trace_rows),
        )


def _slo_check(
    p99_target: float | None, avail_target: float | None, p99: float, ok: int, failed: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p99_target is not None:
        out["latency_p99"] = {
            "target": p99_target,
            "value": None if math.isnan(p99) else p99,
            "met": (not math.isnan(p99)) and p99 <= p99_target,
        }
    if avail_target is not None:
        a = ok / (ok + failed) if ok + failed else None
        out["availability"] = {
            "target": avail_target,
            "value": a,
            "met": a is not None and a >= avail_target,
        }
    return out
