"""``FluidSimulation``: an aggregated, time-stepped twin of the same three documents.

Why: the request-level engine simulates Online Boutique at about 60-100 simulated seconds
per wall second, which caps an RL environment at ~20 decisions per second. Training wants
thousands per second, so the environment trains on an aggregated twin and evaluates on
the full one. This module is that aggregated twin: rates instead of requests, advanced in
steps of ``dt`` seconds, with the engine's stepping face (``apply``, ``step`` returning the
same stretch keys) so the environment can use either.

What it models, per step (mean-value analysis over the operation graph):

- arrivals: the workload rates x the load profile, plus surge and attack classes, admitted
  through the entry's rate limit (fluid token bucket, burst ignored); a closed loop's users
  arrive at ``N / (R + Z)``, the interactive response-time law at the entry's last response
  time (:meth:`FluidSimulation._entry_rate`);
- traffic equations: each admitted request makes its calls (probability x count), retried
  calls multiply attempts (within the retry budget), an open breaker stops the calls; a
  conditional call is made its expected share of times
  (:func:`twin.topology.expected_calls`, with each call's failure share of the last step);
- asynchronous calls load their callee but add nothing to the caller's latency or failures;
  a call to a broker waits only for its acknowledgement (its network latency, refused when
  the broker sheds or is down), and the broker's backlog is its queue;
- each service as an M/M/c queue (c = ready replicas x free workers): mean wait from Erlang
  C below saturation, a fluid backlog above it, drained at the service rate; a queue limit
  sheds the excess (REJECTED); a blocking service holds its worker for its downstream
  calls, an event-loop one does not;
- latency: mean and variance of the response time propagated up the call graph (service
  time x CPU and GC slowdown + injected delay + wait + calls, parallel calls as their
  maximum), timeouts cut a call at its timeout and fail it with the exponential-tail share
  ``exp(-timeout / mean)``; the entry p99 is the gamma quantile with that mean and
  variance, raised to the timeout when more than 1% of successes went through a retry;
- failures: outages (no ready replica), error-rate faults, sheds and timeouts combine as
  independent events; optional calls do not fail their caller; retries re-try each
  failure with the same chance;
- breakers: per edge, open when the call failure share reaches the threshold (with at least
  ``min_requests`` calls in the step), stay open ``open_for`` seconds, then close if the
  failure share is below the threshold;
- CPU limits (``cpu_limit``, a CFS quota per replica): a replica whose limit (less what
  hogs take) is below its workers is a single server of the quota: capacity
  ``limit / mean CPU work`` per replica, the M/G/1 (Pollaczek-Khinchine) wait at the quota's
  utilisation in place of the workers' Erlang C, plus the mean wait for the next period of
  a job alone on its replica, arriving at a uniform phase (:func:`throttle_delay`);
- cold starts (``cold_start``, ``keep_alive``): each request carries the cold start's mean
  times the chance it finds no warm instance, ``exp(-rate / replicas x keep_alive)`` at the
  last step's arrival rate (Poisson arrivals; exact for one instance and short requests),
  as processing time on the worker, with the Bernoulli mixture's variance; instances that are
  never reclaimed (no ``keep_alive``) are warm in steady state;
- disk I/O: an operation's ``io`` bytes at its disk's bandwidth (divided by disk faults'
  factors), plus the M/G/1 wait at the disk's last-step utilisation (capped at 99%), added
  to the node's latency, and to the worker's holding time in a blocking service;
- replicas: outages, memory leaks (all replicas grow from the baseline, GC slowdown
  ``1 + gc (used/limit)^2``, killed at the limit for ``restart_time``), the HPA loop of an
  ``autoscale`` policy (period, boot time, cooldown, +max(4, 100%) per period).

What it does not model: network loss, bandwidth, pool exhaustion and data corruption
faults (ignored), failover, host CPU sharing (and CPU faults that take a host's cores),
per-request ordering effects (a timed-out request's work is not wasted), and any
randomness: it is deterministic, the seed is unused.
Its agreement with the engine is measured in tests/test_fluid.py and docs/agents.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scipy.special import gammaincc, gammaincinv

from twin.faults import FaultWindow, fault_windows
from twin.mitigations import CLOSED, HALF_OPEN, OPEN, CircuitState
from twin.policy import Autoscale, ClientPolicy, Policy
from twin.results import EntryStretch, ServiceStretch, Stretch, StretchLatency
from twin.scenario import Scenario
from twin.sim.budget import Budget, fluid_estimate
from twin.stats import either
from twin.topology import Call, Topology, WorkloadEntry, expected_calls

P99_Z = 0.99


CLOSED_DAMPING = 0.5
"""Share of the step from a closed loop's last throughput to ``N / (R + Z)`` at the last
response time: the undamped iteration overshoots and oscillates where the response time
climbs steeply with the rate (near saturation); half steps settle there too."""

SUMMED_SERVERS = 1000
"""Up to this many servers Erlang C sums the terms of its closed form; beyond (and wherever
the sum overflows, with an offered load past about 700) it runs Erlang B's recursion, which
stays within range and stops once B underflows to 0, so ``replicas x workers`` of a billion
costs what the offered load costs, not a billion steps."""


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a`` = lambda/mu (a < c)."""
    if a <= 0.0:
        return 0.0
    if c <= SUMMED_SERVERS:
        term = 1.0
        total = 1.0
        for k in range(1, c):
            term *= a / k
            total += term
        term *= a / c
        last = term * c / (c - a)
        out = last / (total + last)
        if math.isfinite(out):
            return out
    b = 1.0  # Erlang B with k servers: B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
        if b == 0.0:
            return 0.0
    return c * b / (c - a * (1.0 - b))


def throttle_delay(work: float, quota: float, period: float) -> float:
    """Mean seconds a job of ``work`` CPU-seconds waits for quota when it runs alone on its
    replica (quota ``quota`` CPU-seconds per ``period``), arriving at a uniform phase of the
    period with the period's quota whole.

    With ``s`` the time left in the period at arrival: if ``s >= quota`` the job runs
    ``quota`` and waits ``s - quota``, then every further period costs a wait of
    ``period - quota`` until its work is done; if ``s < quota`` the period ends before the
    quota does and only the later periods cost waits. Averaging over ``s`` gives, for
    ``work = m quota + f`` (``0 <= f < quota``, ``work > quota``),
    ``(P - Q) / P x ((P - Q)(1/2 + k) + work - Q)`` with ``k = m - 1`` (``m - 2`` when
    ``f = 0``). Work within one quota, or a quota of a whole period, never waits.
    """
    if work <= quota or quota >= period:
        return 0.0
    m = math.floor(work / quota)
    k = m - 1 if work - m * quota > 0.0 else m - 2
    gap = period - quota
    return gap / period * (gap * (0.5 + k) + work - quota)


WORK_POINTS = 16
"""Quantiles of a job's CPU work over which the fluid engine averages its wait for quota."""


def _unit_quantiles(cv2: float) -> tuple[float, ...]:
    """Mid-quantiles of a gamma of mean 1 and squared cv ``cv2`` (constant work: ``(1,)``)."""
    if cv2 <= 1e-12:
        return (1.0,)
    shape = 1.0 / cv2
    return tuple(
        float(gammaincinv(shape, (i + 0.5) / WORK_POINTS)) / shape for i in range(WORK_POINTS)
    )


@dataclass
class _Call:
    callee: str  # service
    node: str  # svc:op
    mult: float  # probability x count
    prob: float
    optional: bool
    parallel: bool
    net: float  # mean network seconds of the call (its own latency, else its edge's)
    count: int = 1
    detached: bool = False  # asynchronous: load only


@dataclass
class _Node:
    service: str
    mean_s: float  # mean service time, seconds
    var_s: float
    calls: list[_Call]
    spec: list[Call] = field(default_factory=list)  # the document's calls
    conditional: bool = False  # some call has a `when`: shares vary with failures


@dataclass
class _Svc:
    workers: int
    blocking: bool
    base_replicas: int
    replicas: float  # ready
    booting: list[tuple[float, int]] = field(default_factory=list)  # (ready at, count)
    backlog: float = 0.0
    down_until: float = -math.inf
    leak_since: float | None = None
    last_scale: float = -math.inf
    next_scale: float = math.inf
    busy: float = 0.0  # busy worker-seconds in the stretch
    cap: float = 0.0  # worker-seconds available in the stretch
    rep_area: float = 0.0
    arrivals: float = 0.0
    ok: float = 0.0
    failed: float = 0.0
    lat_sum: float = 0.0
    queue: float = 0.0
    util_last: float = 0.0


@dataclass
class _Breaker:
    state: CircuitState = CLOSED
    until: float = 0.0


class FluidSimulation:
    """The aggregated twin: ``step(seconds)`` returns a :class:`~twin.results.Stretch`, as the
    request-level engine does (both are :class:`~twin.sim.SteppedTwin`)."""

    def __init__(
        self,
        topology: Topology,
        scenario: Scenario | None = None,
        policy: Policy | None = None,
        *,
        seed: int | None = None,
        dt: float = 1.0,
        budget: Budget | None = None,
    ) -> None:
        self.topology = topology
        self.scenario = scenario or Scenario()
        self.scenario.check_against(topology)
        # its work is steps x operations whatever the rates, its memory the fault timeline
        (budget or Budget.from_limits()).check_fluid(fluid_estimate(topology, self.scenario, dt))
        self.dt = dt
        self.now = 0.0
        self.windows: list[FaultWindow] = fault_windows(self.scenario)
        self.nodes: dict[str, _Node] = {}
        for name, svc in topology.services.items():
            for op_name, op in svc.operations.items():
                calls = []
                for c in op.calls:
                    s, o = topology.resolve(c.to)
                    net = c.latency or topology.link(name, s).latency
                    calls.append(
                        _Call(
                            s,
                            f"{s}:{o}",
                            c.probability * c.count,
                            c.probability,
                            c.optional,
                            c.parallel,
                            net.expected() if net is not None else 0.0,
                            c.count,
                            c.asynchronous,
                        )
                    )
                d = op.service_time
                mean = d.expected()
                cond = any(c.when != "always" for c in op.calls)
                self.nodes[f"{name}:{op_name}"] = _Node(
                    name, mean, d.variance(), calls, list(op.calls), cond
                )
        import networkx as nx

        self.order = list(nx.topological_sort(topology.operation_graph()))
        # CPU limits: service -> (cores per replica, period seconds)
        self.limits = {
            n: (s.cpu_limit, s.cpu_period)
            for n, s in topology.services.items()
            if s.cpu_limit is not None
        }
        self._keep: dict[str, float] = {}
        self._throttle: dict[str, float] = {}
        # per node of a limited service: its work's quantiles at mean 1 (a gamma of the
        # work's cv), over which the wait for the next period is averaged
        self.work_points = {
            k: _unit_quantiles(nd.var_s / nd.mean_s**2 if nd.mean_s > 0 else 0.0)
            for k, nd in self.nodes.items()
            if nd.service in self.limits
        }
        self.svcs = {
            n: _Svc(s.workers, s.blocking, s.replicas, float(s.replicas))
            for n, s in topology.services.items()
        }
        # cold starts: services with them, their last step's arrival rate (at first the
        # traffic equations'), and the variance the cold starts add this step
        self.cold = {n: s for n, s in topology.services.items() if s.cold_start is not None}
        self._cold_lam: dict[str, float] = {}
        if self.cold:
            op_rates = topology.operation_rates()
            self._cold_lam = {
                n: sum(op_rates.get(f"{n}:{o}", 0.0) for o in s.operations)
                for n, s in self.cold.items()
            }
        self._cold_var: dict[str, float] = {}
        self.edges = sorted(
            {(self.nodes[n].service, c.callee) for n in self.nodes for c in self.nodes[n].calls}
        )
        self.breakers = {f"{a}->{b}": _Breaker() for a, b in self.edges}
        self.ops = {n: [k for k, nd in self.nodes.items() if nd.service == n] for n in self.svcs}
        # entry -> its request classes' nodes and shares
        self.entry_nodes = {w.entry: topology.entry_classes(w) for w in topology.workload}
        self.entry_services = {w.service for w in topology.workload}
        self.callers = {n: [f"{a}->{b}" for a, b in self.edges if b == n] for n in self.svcs}
        self.edge_set = {f"{a}->{b}" for a, b in self.edges}
        # disk I/O: node -> (seconds per request at full bandwidth, cv^2, disk, service); a
        # host's disk is shared by its services, a service's own disks by nobody (one each)
        self.io: dict[str, tuple[float, float, str, str]] = {}
        for name, spec in topology.services.items():
            bw = topology.disk_of(name)
            for op_name, op in spec.operations.items():
                if op.io is None or bw is None:
                    continue
                m_io = op.io.expected()
                cv2 = op.io.variance() / m_io**2 if m_io > 0 else 0.0
                disk = f"host:{spec.host}" if spec.host is not None else f"own:{name}"
                self.io[f"{name}:{op_name}"] = (m_io / bw, cv2, disk, name)
        self._io_lam: dict[str, float] = {}  # last step's arrival rate of nodes with I/O
        # the faults' share of the current step, reset by _advance (service -> value)
        self._cpu: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._err: dict[str, float] = {}
        self._down: dict[str, float] = {}
        self._disk: dict[str, float] = {}
        self._extra: dict[str, list[tuple[float, float, bool]]] = {}
        self._leaking: set[str] = set()
        self.edge_net = {}  # mean network seconds per edge (its link's latency)
        for a, b in self.edges:
            link = topology.link(a, b).latency
            self.edge_net[f"{a}->{b}"] = link.expected() if link is not None else 0.0
        # last step's per-node figures, used by callers (one-step lag breaks the cycle
        # between rates, which flow down, and latencies, which flow up)
        self.resp = {n: (nd.mean_s, nd.var_s) for n, nd in self.nodes.items()}
        self.fail = dict.fromkeys(self.nodes, 0.0)
        # expected calls per request of each node's calls (conditional ones move with the
        # failure shares) and the brokers' share of refused messages, as of the last step
        self.shares = {
            n: expected_calls(nd.spec, [0.0] * len(nd.calls)) for n, nd in self.nodes.items()
        }
        self.brokers = {n for n, s in topology.services.items() if s.broker}
        self.ack_fail = dict.fromkeys(self.brokers, 0.0)
        self.retried: dict[str, float] = {}
        self.apply(policy or Policy())
        self.entries = {w.entry: w for w in topology.workload}
        self._users_rate: dict[str, float] = {}  # closed loops: last step's users' throughput
        self._entry_stats = {w.entry: [0.0, 0.0, 0.0, 0.0] for w in topology.workload}

    # -- policy --------------------------------------------------------------------------------

    def apply(self, policy: Policy) -> None:
        for key in policy.clients:
            if key != "*" and key not in self.edge_set:
                raise ValueError(f"policy: clients: no call {key!r} in the topology")
        unknown = set(policy.services) - set(self.svcs)
        if unknown:
            raise ValueError(f"policy: services: unknown {sorted(unknown)}")
        self.policy = policy
        self.client: dict[str, ClientPolicy] = {
            f"{a}->{b}": policy.client(a, b) for a, b in self.edges
        }
        for name, s in self.svcs.items():
            sp = policy.services.get(name)
            asc = sp.autoscale if sp else None
            if asc is not None and s.next_scale == math.inf:
                s.next_scale = self.now + asc.period

    def _service_policy(self, name: str) -> Any:
        return self.policy.services.get(name)

    # -- faults --------------------------------------------------------------------------------

    def _active(self, t: float) -> list[FaultWindow]:
        return [w for w in self.windows if w.start <= t < w.end]

    # what faults may do in a step (twin.faults.FluidEngine); a target that is not a service
    # (an edge, host:, zone:) is not modelled here and is ignored

    def slow(self, service: str, factor: float) -> None:
        if service in self._cpu:
            self._cpu[service] *= factor

    def add_delay(self, service: str, seconds: float) -> None:
        if service in self._delay:
            self._delay[service] += seconds

    def add_errors(self, service: str, probability: float) -> None:
        if service in self._err:
            self._err[service] = either(self._err[service], probability)

    def take_down(self, service: str, replicas: int | None) -> None:
        s = self.svcs.get(service)
        if s is not None:
            self._down[service] += s.replicas if replicas is None else replicas

    def leak_clock(self, service: str, window_start: float) -> float | None:
        s = self.svcs.get(service)
        if s is None:
            return None
        self._leaking.add(service)
        if s.leak_since is None:
            s.leak_since = window_start
        return s.leak_since

    def restart(self, service: str, until: float) -> None:
        s = self.svcs[service]
        s.down_until = until
        s.leak_since = until

    def extra_traffic(self, entry: str, rate: float, cost: float, attack: bool) -> None:
        svc = entry.partition(":")[0]
        for e, wl in self.entries.items():
            if wl.service == svc:
                self._extra[e].append((rate, cost, attack))
                break

    def steal_quota(self, service: str, share: float) -> None:
        if service in self._keep:
            self._keep[service] *= 1.0 - share

    def steal_cores(self, target: str, cores: int) -> None:
        return None  # host CPU sharing is not modelled here

    def _quota(
        self,
        name: str,
        lam: dict[str, float],
        cost: dict[str, float],
        cpu: dict[str, float],
        ready: float,
    ) -> tuple[float, float] | None:
        """The quota as the service's server, when its limit (less hogs) is below its
        workers: (capacity in requests/s, mean M/G/1 wait); the per-node waits for the next
        period go to ``self._throttle``. None when the quota does not bind."""
        lim = self.limits.get(name)
        if lim is None:
            return None
        cores, period = lim
        per = cores * self._keep[name]
        if per >= self.svcs[name].workers:
            return None
        quota = per * period
        arr = work = second = 0.0
        for n in self.ops[name]:
            nd = self.nodes[n]
            w = nd.mean_s * cpu[name]
            pts = self.work_points[n]
            self._throttle[n] = sum(throttle_delay(w * x, quota, period) for x in pts) / len(pts)
            if lam[n] > 0:
                arr += lam[n]
                work += cost[n] * w
                second += cost[n] * (w * w + nd.var_s * cpu[name] ** 2)
        if per <= 0.0:
            return 0.0, 0.0
        if arr <= 0.0:
            return math.inf, 0.0
        mean = work / arr
        mu = max(ready, 0.0) * per / mean if mean > 0 else math.inf
        rho = arr / mu if mu > 0 else math.inf
        if rho >= 1.0:
            return mu, 0.0
        # E[S^2] of the quota server's service (work / per), per replica's arrivals
        es2 = second / arr / (per * per)
        lam_rep = arr / max(ready, 1e-12)
        # requests much smaller than the quota mostly run side by side within a period and
        # wait only when a period's quota runs short: the quota server's wait is scaled by
        # sqrt(work / quota), an interpolation checked against the request-level engine
        grain = math.sqrt(min(1.0, mean / quota)) if quota > 0 else 1.0
        return mu, grain * lam_rep * es2 / 2.0 / (1.0 - rho)

    def _cold_starts(self, ready: dict[str, float]) -> None:
        """Cold starts as processing time: each request of a service with them carries the
        cold start with the chance that it finds no warm instance at last step's arrival
        rate over the replicas now ready (:meth:`twin.topology.Service.cold_share`, Poisson
        arrivals), added to the service's delay; its variance, a Bernoulli mixture's, to
        ``_cold_var``."""
        self._cold_var = {}
        for name, spec in self.cold.items():
            cold = spec.cold_start
            assert cold is not None
            p = spec.cold_share(self._cold_lam.get(name, 0.0), max(1.0, ready[name]))
            if p <= 0.0:
                continue
            m = cold.expected()
            self._delay[name] += p * m
            self._cold_var[name] = p * (cold.variance() + m * m) - (p * m) ** 2

    def slow_disk(self, service: str, factor: float) -> None:
        if service in self._disk:
            self._disk[service] *= factor

    def _io_times(self, ready: dict[str, float]) -> dict[str, tuple[float, float]]:
        """Mean seconds of each node's disk I/O: its service time at the disk's bandwidth
        (divided by disk faults' factors) plus the M/G/1 (Pollaczek-Khinchine) wait at the
        disk's utilisation last step, capped at 99% (a saturated disk in the request-level
        engine queues without bound; here the wait is large but finite). Returns (mean,
        variance), the wait taken as exponential."""
        rho: dict[str, float] = {}
        second: dict[str, float] = {}  # sum of lambda x E[S^2] / 2 per disk
        for node, (sec, cv2, disk, svc) in self.io.items():
            s_eff = sec * self._disk[svc]
            share = max(1.0, ready[svc]) if disk.startswith("own:") else 1.0
            lam = self._io_lam.get(node, 0.0) / share
            rho[disk] = rho.get(disk, 0.0) + lam * s_eff
            second[disk] = second.get(disk, 0.0) + lam * s_eff * s_eff * (1.0 + cv2) / 2.0
        out: dict[str, tuple[float, float]] = {}
        for node, (sec, cv2, disk, svc) in self.io.items():
            s_eff = sec * self._disk[svc]
            w = second[disk] / (1.0 - min(rho[disk], 0.99))
            out[node] = (s_eff + w, s_eff * s_eff * cv2 + w * w)
        return out

    def _load(self, t: float) -> float:
        m = 1.0
        for at, mult in self.scenario.load.steps():
            if t >= at:
                m = mult
        return m

    # -- one small step ------------------------------------------------------------------------

    def _advance(self, dt: float) -> None:
        t = self.now
        active = self._active(t)
        cpu = self._cpu = dict.fromkeys(self.svcs, 1.0)
        delay = self._delay = dict.fromkeys(self.svcs, 0.0)
        err = self._err = dict.fromkeys(self.svcs, 0.0)
        down = self._down = dict.fromkeys(self.svcs, 0.0)  # replicas taken down by an outage
        self._disk = dict.fromkeys(self.svcs, 1.0)
        self._keep = dict.fromkeys(self.limits, 1.0)
        self._throttle = {}
        extra = self._extra = {e: [] for e in self.entries}
        leaking = self._leaking = set()
        for win in active:
            win.fault.fluid(self, win.start, t)
        for name, s in self.svcs.items():
            if name not in leaking:
                s.leak_since = None
            # booted replicas join
            while s.booting and s.booting[0][0] <= t:
                s.replicas += s.booting.pop(0)[1]
        ready = {
            n: 0.0 if t < s.down_until else max(0.0, s.replicas - down[n])
            for n, s in self.svcs.items()
        }
        io_time = self._io_times(ready) if self.io else {}
        if self.cold:
            self._cold_starts(ready)

        # rates flow down the call graph
        lam = dict.fromkeys(self.nodes, 0.0)
        user = dict.fromkeys(self.nodes, 0.0)
        cost = dict.fromkeys(self.nodes, 0.0)  # cost-weighted arrivals
        load = (
            self._load(t) * self.scenario.load.multiplier
            if not self.scenario.load.profile
            else self._load(t)
        )
        rate_limited: dict[str, float] = {}
        offered = {e: self._entry_rate(e, wl, load) for e, wl in self.entries.items()}
        for e, wl in self.entries.items():
            base = offered[e]
            users = base + sum(r for r, _, att in extra[e] if not att)
            attack = sum(r for r, _, att in extra[e] if att)
            attack_cost = sum(r * c for r, c, att in extra[e] if att)
            total = users + attack
            sp = self._service_policy(wl.service)
            admit = 1.0
            if sp is not None and sp.rate_limit is not None and total > sp.rate_limit.rps:
                admit = sp.rate_limit.rps / total
            rate_limited[e] = 1 - admit
            for node, share in self.entry_nodes[e]:
                lam[node] += total * admit * share
                user[node] += users * admit * share
                cost[node] += (users + attack_cost) * admit * share
        shed: dict[str, float] = {}
        for node in self.order:
            nd = self.nodes[node]
            if lam[node] <= 0:
                continue
            # calls go out at the rate requests are served, not offered
            sv = self.svcs[nd.service]
            workers = ready[nd.service] * sv.workers
            own = nd.mean_s * cpu[nd.service] + delay[nd.service]
            if sv.blocking:
                own += self._calls_mean(node)
                if node in io_time:
                    own += io_time[node][0]
            served = 1.0 if own <= 0 else min(1.0, workers / own / lam[node])
            for c, share in zip(nd.calls, self.shares[node], strict=True):
                key = f"{nd.service}->{c.callee}"
                if self.breakers[key].state == OPEN:
                    continue
                cp = self.client[key]
                f_call = self._call_fail(key, c.node)
                attempts = 1.0
                r = cp.retries
                if r is not None and r.max and f_call > 0:
                    extra_att = sum(f_call**k for k in range(1, r.max + 1))
                    if r.budget is not None:
                        extra_att = min(extra_att, r.budget)
                    attempts += extra_att
                k = share * attempts * served
                lam[c.node] += lam[node] * k
                user[c.node] += user[node] * k
                cost[c.node] += cost[node] * k

        if self.io:
            self._io_lam = {n: lam[n] for n in self.io}

        # each service as a queue
        wait: dict[str, tuple[float, float]] = {}
        for name, s in self.svcs.items():
            ops = self.ops[name]
            arr = sum(lam[n] for n in ops)
            sp = self._service_policy(name)
            cw = max(0, round(ready[name] * s.workers))
            hold_num = 0.0
            for n in ops:
                nd = self.nodes[n]
                own = nd.mean_s * cpu[name] + delay[name]
                if s.blocking:
                    own += self._calls_mean(n)
                    if n in io_time:
                        own += io_time[n][0]
                hold_num += cost[n] * own if lam[n] > 0 else 0.0
            hold = (
                hold_num / arr
                if arr > 0
                else (
                    sum(self.nodes[n].mean_s for n in ops) / max(1, len(ops)) * cpu[name]
                    + delay[name]
                )
            )
            s.cap += cw * dt
            s.rep_area += ready[name] * dt
            s.arrivals += arr * dt
            if name in self._cold_lam:
                self._cold_lam[name] = arr
            if cw == 0:
                shed[name] = 1.0
                if name in self.ack_fail:
                    self.ack_fail[name] = 1.0
                s.busy += 0.0
                s.backlog = 0.0
                wait[name] = (0.0, 0.0)
                s.util_last = 1.0 if arr > 0 else 0.0
                continue
            mu = cw / hold if hold > 0 else math.inf
            quota = self._quota(name, lam, cost, cpu, ready[name]) if self.limits else None
            if quota is not None:
                mu = min(mu, quota[0])
            limit = None
            ql = sp.queue_limit if sp is not None and sp.queue_limit is not None else None
            if ql is None:
                ql = self.topology.services[name].queue_limit
            if ql is not None:
                limit = ql * max(1.0, ready[name])
            a = arr * hold
            if arr < mu and s.backlog <= 0:
                if quota is None:
                    pw = erlang_c(cw, a)
                    wq = pw / (mu - arr) if mu > arr else 0.0
                else:  # the quota is the server (M/G/1): waits while it is in use
                    pw = arr / mu
                    wq = quota[1]
                lq = arr * wq
                served = arr
                rej = 0.0
                if limit is not None and lq > limit:
                    rej = min(
                        1.0,
                        pw * math.exp(-(cw / hold - arr) * limit / max(arr, 1e-9)) if arr else 0.0,
                    )
                    lq = limit
                    wq = limit / mu
                s.backlog = 0.0
            else:
                s.backlog = max(0.0, s.backlog + (arr - mu) * dt)
                # callers abandon (deadline propagation) what waits past their timeout
                patience = self._patience(name)
                if patience is not None:
                    s.backlog = min(s.backlog, mu * patience)
                rej = 0.0
                if limit is not None and s.backlog > limit:
                    rej = (s.backlog - limit) / max(arr * dt, 1e-9)
                    rej = min(1.0, rej)
                    s.backlog = limit
                served = min(arr * (1 - rej), mu)
                lq = s.backlog
                wq = lq / mu
            s.queue = lq
            s.busy += served * hold * dt
            s.util_last = served * hold / cw
            shed[name] = rej
            if name in self.ack_fail:
                self.ack_fail[name] = rej
            # Erlang-C waits are near-exponential; a fluid backlog is served FIFO, so
            # everyone waits about the same
            wait[name] = (wq, wq * wq if s.backlog <= 0 else (0.3 * wq) ** 2)

        # latencies and failures flow up the call graph
        resp: dict[str, tuple[float, float]] = {}
        fail: dict[str, float] = {}
        retried_share: dict[str, float] = {}
        for node in reversed(self.order):
            nd = self.nodes[node]
            name = nd.service
            wq, wv = wait.get(name, (0.0, 0.0))
            mean = nd.mean_s * cpu[name] + delay[name] + wq
            if self._throttle:
                mean += self._throttle.get(node, 0.0)
            var = nd.var_s * cpu[name] ** 2 + wv
            if self._cold_var:
                var += self._cold_var.get(name, 0.0)
            if node in io_time:
                mean += io_time[node][0]
                var += io_time[node][1]
            ok = (1 - err[name]) * (1 - shed.get(name, 0.0))
            if ready[name] <= 0:
                ok = 0.0
            seq_mean = seq_var = 0.0
            par_mean = par_var = 0.0
            retried = 0.0
            seen: list[tuple[float, float, float, float]] = []  # mean, var, failure, timeout share
            for c in nd.calls:
                if c.detached:  # not waited for, never fails the caller
                    seen.append((0.0, 0.0, 0.0, 0.0))
                    continue
                key = f"{name}->{c.callee}"
                cp = self.client[key]
                br = self.breakers[key]
                m, v, f_node = self._answer(c.node, resp, fail)
                m += c.net
                f_attempt = self._attempt_fail(cp, m, f_node)
                tmo_share = 0.0
                if br.state == OPEN:
                    f_call = 1.0
                    m, v = 0.0, 0.0
                else:
                    n_retries = cp.retries.max if cp.retries is not None else 0
                    f_call = f_attempt ** (n_retries + 1)
                    if cp.timeout is not None:
                        m = min(m, cp.timeout)
                    tmo = cp.timeout
                    if n_retries and tmo is not None and m > 0:
                        # only a timed-out attempt costs the timeout before its retry
                        tmo_share = math.exp(-tmo / m)
                seen.append((m, v, f_call, tmo_share))
            if nd.conditional:
                self.shares[node] = expected_calls(nd.spec, [f for _, _, f, _ in seen])
            for c, share, (m, v, f_call, tmo_share) in zip(
                nd.calls, self.shares[node], seen, strict=True
            ):
                if c.detached:
                    continue
                made = c.prob if not nd.conditional else share / c.count
                if tmo_share:
                    retried = max(retried, made * tmo_share)
                if not c.optional:
                    ok *= (1 - f_call) ** share
                cm, cv = share * m, share * v + made * (1 - made) * m * m
                if c.parallel:
                    par_mean, par_var = max(par_mean, cm), max(par_var, cv)
                else:
                    seq_mean += cm
                    seq_var += cv
            resp[node] = (mean + seq_mean + par_mean, var + seq_var + par_var)
            fail[node] = 1 - ok
            retried_share[node] = retried
        self.resp, self.fail = resp, fail

        # breakers see this step's call outcomes
        for src, dst in self.edges:
            key = f"{src}->{dst}"
            cp = self.client[key]
            br = self.breakers[key]
            cb = cp.circuit_breaker
            if cb is None:
                br.state = CLOSED
                continue
            calls = sum(lam[n] for n in self.ops[src]) * dt
            f_att = max(
                self._attempt_fail(cp, a[0] + self.edge_net[key], a[2])
                for a in (self._answer(n, resp, fail) for n in self.ops[dst])
            )
            if br.state == OPEN and t >= br.until:
                br.state = HALF_OPEN
            if br.state == HALF_OPEN:
                br.state = OPEN if f_att >= cb.failure_rate else CLOSED
                if br.state == OPEN:
                    br.until = t + cb.open_for
            elif br.state == CLOSED and calls >= cb.min_requests and f_att >= cb.failure_rate:
                br.state, br.until = OPEN, t + cb.open_for

        # entries and per-service outcome counts
        for e in self.entries:
            n_all = (offered[e] + sum(r for r, _, att in extra[e] if not att)) * dt
            st = self._entry_stats[e]
            parts = []
            for node, share in self.entry_nodes[e]:
                n_users = n_all * share
                m, v, seen_f = self._answer(node, resp, fail)
                fe = either(seen_f, rate_limited[e])
                st[0] += n_users * (1 - fe)
                st[1] += n_users * fe
                parts.append((n_users * (1 - fe), m, v, self._p99(m, v, retried_share[node], node)))
                st[3] += n_users * (1 - fe) * m
            st[2] = max(st[2], _mixture_p99(parts))
        for name, s in self.svcs.items():
            for n in self.ops[name]:
                s.ok += user[n] * (1 - fail[n]) * dt
                s.failed += user[n] * fail[n] * dt
        self.retried = retried_share
        self._autoscale(t, dt)
        self.now = t + dt

    def _entry_rate(self, e: str, wl: WorkloadEntry, load: float) -> float:
        """Requests per second arriving at an entry this step: the open rate x the load, plus
        a closed loop's throughput by the interactive response-time law ``X = N / (R + Z)``
        (``N`` users at this load, ``Z`` the mean think time, ``R`` the entry's mean response
        time as the last step saw it). Each step is one fixed-point iteration, damped by
        :data:`CLOSED_DAMPING`, so the users' rate settles where ``X = N / (R(X) + Z)``;
        a backlog above saturation lengthens ``R`` until the users are held back."""
        if wl.think_time is None:
            return wl.rate * load
        n = wl.users_at(load)
        r = sum(share * self.resp[node][0] for node, share in self.entry_nodes[e])
        target = n / (r + wl.think_time.expected())
        last = self._users_rate.get(e)
        x = target if last is None else last + CLOSED_DAMPING * (target - last)
        self._users_rate[e] = x
        return wl.poisson_rate * load + x

    def _patience(self, name: str) -> float | None:
        """The longest a caller waits for ``name`` (None: some caller waits forever, or it
        is an entry, whose outside clients have no timeout here)."""
        if name in self.entry_services or name in self.ack_fail:
            return None  # outside clients, or a broker's callers, do not wait on its backlog
        tmos = [self.client[k].timeout for k in self.callers[name]]
        if not tmos or any(t is None for t in tmos):
            return None
        return max(t for t in tmos if t is not None)

    def _call_fail(self, key: str, node: str) -> float:
        m, _, f = self._answer(node, self.resp, self.fail)
        return self._attempt_fail(self.client[key], m + self.edge_net[key], f)

    def _answer(
        self, node: str, resp: dict[str, tuple[float, float]], fail: dict[str, float]
    ) -> tuple[float, float, float]:
        """Mean and variance of the seconds a caller of ``node`` waits, and the chance it
        fails: the node's response, or a broker's acknowledgement (admission only). ``resp``
        and ``fail`` fall back to the last step's figures."""
        svc = self.nodes[node].service
        if svc in self.ack_fail:
            return 0.0, 0.0, self.ack_fail[svc]
        m, v = resp.get(node, self.resp[node])
        return m, v, fail.get(node, self.fail[node])

    @staticmethod
    def _attempt_fail(cp: ClientPolicy, mean: float, f_node: float) -> float:
        tmo = cp.timeout
        f_timeout = math.exp(-tmo / mean) if tmo is not None and mean > 0 else 0.0
        return either(f_node, f_timeout)

    def _calls_mean(self, node: str) -> float:
        nd = self.nodes[node]
        seq = par = 0.0
        for c, share in zip(nd.calls, self.shares[node], strict=True):
            if c.detached:
                continue
            m = self._answer(c.node, self.resp, self.fail)[0] + c.net
            tmo = self.client[f"{nd.service}->{c.callee}"].timeout
            if tmo is not None:
                m = min(m, tmo)
            if c.parallel:
                par = max(par, share * m)
            else:
                seq += share * m
        return seq + par

    def _p99(self, mean: float, var: float, retried: float, node: str) -> float:
        if mean <= 0:
            return 0.0
        if var <= 0:
            p = mean
        else:
            k = mean * mean / var
            p = float(gammaincinv(k, P99_Z)) * var / mean
        if retried > 1 - P99_Z:
            tmo = min(
                (
                    cp.timeout
                    for key, cp in self.client.items()
                    if key.startswith(f"{self.nodes[node].service}->") and cp.timeout
                ),
                default=0.0,
            )
            p = max(p, tmo + mean)
        return p

    def _autoscale(self, t: float, dt: float) -> None:
        for name, s in self.svcs.items():
            sp = self._service_policy(name)
            asc: Autoscale | None = sp.autoscale if sp else None
            if asc is None or t + dt < s.next_scale:
                continue
            s.next_scale = t + dt + asc.period
            current = s.replicas + sum(k for _, k in s.booting)
            util = s.util_last
            want = max(
                asc.min,
                min(
                    asc.max, math.ceil(max(1.0, s.replicas) * util / asc.target_utilization - 1e-9)
                ),
            )
            if want > current:
                add = int(min(want - current, max(4, current)))
                s.booting.append((t + dt + asc.boot_time, add))
                s.last_scale = t
            elif want < current and t - s.last_scale >= asc.cooldown:
                drop = int(current - want)
                while drop and s.booting:
                    s.booting.pop()
                    drop -= 1
                s.replicas = max(0.0, s.replicas - drop)
                s.last_scale = t

    # -- the stepping face ---------------------------------------------------------------------

    def step(self, seconds: float) -> Stretch:
        """Advance ``seconds`` (in steps of ``dt``) and report the stretch; the fluid engine
        has no failure reasons and models only the p99 and mean latency."""
        start = self.now
        end = min(start + seconds, self.scenario.duration)
        for s in self.svcs.values():
            s.busy = s.cap = s.rep_area = s.arrivals = s.ok = s.failed = s.lat_sum = 0.0
        self._entry_stats = {e: [0.0, 0.0, 0.0, 0.0] for e in self.entries}
        while self.now < end - 1e-9:
            self._advance(min(self.dt, end - self.now))
        span = max(end - start, 1e-12)
        services = {}
        for name, s in self.svcs.items():
            p99 = max(
                (self._p99(*self.resp[n], self.retried.get(n, 0.0), n) for n in self.ops[name]),
                default=0.0,
            )
            services[name] = ServiceStretch.model_construct(
                arrivals=s.arrivals,
                succeeded=s.ok,
                failed=s.failed,
                failures=None,
                latency=StretchLatency.model_construct(mean=None, p50=None, p95=None, p99=p99),
                utilization=s.busy / s.cap if s.cap > 0 else None,
                queue=s.queue,
                replicas=s.rep_area / span,
                ready=s.replicas,
            )
        entries = {}
        for e, (ok, failed, p99, lat) in self._entry_stats.items():
            entries[e] = EntryStretch.model_construct(
                arrivals=ok + failed,
                succeeded=ok,
                failed=failed,
                failures=None,
                latency=StretchLatency.model_construct(
                    mean=lat / ok if ok else None,
                    p50=None,
                    p95=None,
                    p99=p99 if ok > 0 else None,
                ),
            )
        return Stretch.model_construct(
            time=end,
            seconds=end - start,
            entries=entries,
            services=services,
            breakers={
                k: b.state for k, b in self.breakers.items() if self.client[k].circuit_breaker
            },
        )


def _mixture_p99(parts: list[tuple[float, float, float, float]]) -> float:
    """The 99th percentile of request classes mixed by weight: ``parts`` are (weight, mean,
    variance, the class's own p99), each class a gamma of that mean and variance as in
    :meth:`FluidSimulation._p99`. The mixture's quantile lies between the classes' smallest
    and largest; it is found by bisection on the mixture's tail share."""
    live = [p for p in parts if p[0] > 0 and p[1] > 0]
    if not live:
        return max((p[3] for p in parts), default=0.0)
    if len(live) == 1:
        return live[0][3]
    total = sum(w for w, *_ in live)
    target = 1.0 - P99_Z

    def tail(x: float) -> float:
        out = 0.0
        for w, m, v, _ in live:
            if v <= 0:
                out += w if x < m else 0.0
            else:
                out += w * float(gammaincc(m * m / v, x * m / v))
        return out / total

    lo, hi = min(p[3] for p in live), max(p[3] for p in live)
    if tail(hi) > target:  # a class's own p99 is raised by retries: keep the largest
        return hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if tail(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi
