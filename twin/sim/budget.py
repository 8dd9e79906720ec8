"""The work and the memory a run will need, estimated before it starts, and the budget it must
fit in.

A topology, a scenario and a policy may come from anyone, and each number in them multiplies
the work of a run: a rate of ``1e12`` requests per second, a call made ``1e9`` times, ``1e9``
replicas, a monitor window of a microsecond, a fault sampled every nanosecond. Each is valid on
its own; together with the run's duration they ask for more than any machine has. So before a
run builds anything, :func:`estimate` works out from the documents alone:

- **requests**: the entries' rates x the load profile over the duration (a closed loop's
  at most ``users / mean think time``, the most its users can send, X = N / (R + Z) <= N / Z),
  plus the surge and attack traffic of the fault windows, times each entry's fan-out (the
  expected calls one of its requests makes through the call graph: probability x count per
  call). ``requests`` is
  the healthy system's count; ``requests_worst`` takes every retry the policy allows on every
  call (an upper bound for a retry storm);
- **objects**: the services, their replicas (up to an autoscaler's maximum), and the calls an
  operation repeats in sequence (the engine keeps one stage per repetition);
- **windows**: duration / window, times the series rows each window writes;
- **fault occurrences**: one per fixed fault, duration / (mean interval + mean duration) per
  sampled one (the timeline keeps every occurrence);
- **requests in flight**: by Little's law, the arrival rate at each operation at the peak
  load times the time a request spends there (its queueing wait, ``S rho / (1 - rho)``, its
  processing and its calls), when every service is stable (``rho < 1``). A service with cold
  starts adds to each request's processing the mean cold start times the chance it finds
  no warm instance at that rate (``exp(-rate / replicas x keep_alive)``, Poisson arrivals),
  in its utilisation too.

:meth:`Budget.check` refuses a run whose requests pass ``--max-requests`` or whose memory
passes ``--max-memory``, with one line giving the estimate and the flag (and the environment
variable, :mod:`twin.safeload`'s ``TWIN_MAX_REQUESTS`` and ``TWIN_MAX_MEMORY``) that raises it.
Memory is counted with the per-object sizes below, measured on CPython 3 with the engine's
own objects; the defaults leave a run under about 500 MB of resident memory, interpreter and
libraries included.

While a run goes, the request-level engine keeps the count of requests in the system (one
increment at an arrival, one at a finish, one comparison) and stops the run with a verdict
when they would need more than the memory left by the estimate: an unbounded queue means the
modelled system is unstable at this load (:class:`twin.results.Verdict`). :func:`utilisation`
is the analytic side of the same verdict: the offered utilisation ``rho`` of each service,
``rate x visits x mean service time / (replicas x workers)``, at each change of the load.

The fluid engine's work does not scale with requests: it advances every operation and edge
once per step of ``dt`` seconds whatever the rates, and a backlog is one number, not a queue
of objects. Its budget (:func:`fluid_estimate`) counts operation-steps against
``--max-requests`` and its fault occurrences against ``--max-memory``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from twin.errors import InputError
from twin.faults.base import FaultBase, TrafficFault
from twin.policy import Policy
from twin.safeload import amount, limit
from twin.scenario import Scenario
from twin.topology import Topology

BYTES_PER_REQUEST = 512
"""A request in flight at one service: its job, the call and attempt that carry it, its slot in
the replica's table (measured: 440 bytes each, with 200,000 in flight)."""
BYTES_PER_REPLICA = 1024
"""A replica: its queue, its table of jobs, its counters (measured: 1,020 bytes)."""
BYTES_PER_SERVICE = 16 * 1024
"""A service with its operations, counters, histograms and the clients of its calls
(measured: 14,400 bytes on a synthetic topology of 2,000 services)."""
BYTES_PER_STAGE = 128
"""One repetition of a sequential call (``count: n`` without ``parallel`` is n stages)."""
BYTES_PER_BLOCK = 512
"""One time-series block (a window of one entry or service), with its rows in the output frame
(measured: 200 bytes while running, 370 once the frame is built)."""
BYTES_PER_OCCURRENCE = 2048
"""One fault occurrence: its window, the scaled fault, its wake-ups and its log record in the
summary (measured: 1,650 bytes)."""
BYTES_PER_TRACE_ROW = 256
"""One sampled trace row."""
BLOCKS_PER_ENTRY = 3
"""Blocks an entry writes per window, at most: counts, latency, and attack or corruption."""
BLOCKS_PER_SERVICE = 3
"""Blocks a service writes per window, at most: counts, latency and resources."""
SERIES_AUTO_LIMIT = 200
"""With ``series="auto"``, per-service time series are kept up to this many services."""
WORK_SLACK = 2.0
"""A running simulation stops with a verdict once it has served this many times its request
budget: the estimate may be low by the randomness of arrivals and by retries, not by more."""
MIN_IN_FLIGHT = 10_000
"""Requests in flight a run may always hold, however little memory its objects leave."""


def keeps_service_series(series: str, services: int) -> bool:
    """Whether a run with this ``series`` option writes per-service time series."""
    return series == "all" or (series == "auto" and services <= SERIES_AUTO_LIMIT)


def _mul(a: float, b: float) -> float:
    """``a * b`` with ``0 * inf = 0`` (no load over an endless run is no request)."""
    return 0.0 if a == 0.0 or b == 0.0 else a * b


def _finite_or_inf(x: float) -> float:
    return math.inf if math.isnan(x) else x


# -- the call graph ---------------------------------------------------------------------------


class CallGraph:
    """The operation graph of a topology as estimates need it, built once and reused.

    Nodes are ``"service:operation"``; each call carries its expected count per request of the
    caller (probability x count) and the attempts a policy allows on its edge.
    """

    def __init__(self, topology: Topology, policy: Policy | None = None) -> None:
        policy = policy or Policy()
        self.topology = topology
        graph: nx.DiGraph = nx.DiGraph()
        self.service_of: dict[str, str] = {}
        self.mean_time: dict[str, float] = {}
        self.calls: dict[str, list[tuple[str, float, float, float]]] = {}
        # calls whose caller does not wait for the callee's work (asynchronous calls, calls
        # to a broker): (node, index in calls[node])
        self.unawaited: set[tuple[str, int]] = set()
        self.stages = 0
        for name, svc in topology.services.items():
            for op_name, op in svc.operations.items():
                node = f"{name}:{op_name}"
                graph.add_node(node)
                self.service_of[node] = name
                self.mean_time[node] = op.service_time.expected()
                out = []
                for call, mult in zip(op.calls, topology.call_shares(name, op), strict=True):
                    callee, callee_op = topology.resolve(call.to)
                    dst = f"{callee}:{callee_op}"
                    graph.add_edge(node, dst)
                    retries = policy.client(name, callee).retries
                    attempts = 1.0 + (retries.max if retries is not None else 0)
                    link = topology.link(name, callee)
                    latency = link.latency.expected() if link.latency is not None else 0.0
                    out.append((dst, mult, attempts, latency))
                    self.stages += 1 if call.parallel else call.count
                    if call.asynchronous or topology.services[callee].broker:
                        self.unawaited.add((node, len(out) - 1))
                self.calls[node] = out
        self.order: list[str] = list(nx.topological_sort(graph))

    def node(self, entry: str) -> str:
        """The ``svc:op`` node of an entry written ``svc`` or ``svc:op`` (an entry with
        request classes: its first class; :meth:`at_entries` spreads by the mix)."""
        return self.classes(entry)[0][0]

    def classes(self, entry: str) -> list[tuple[str, float]]:
        """The ``svc:op`` nodes an entry's requests go to, with their shares."""
        for w in self.topology.workload:
            if w.entry == entry:
                return self.topology.entry_classes(w)
        return [(":".join(self.topology.resolve(entry)), 1.0)]

    def at_entries(self, rates: Mapping[str, float]) -> dict[str, float]:
        """Amounts arriving at entries (by entry name) as amounts at nodes, by the mixes."""
        out: dict[str, float] = {}
        for entry, x in rates.items():
            for node, share in self.classes(entry):
                out[node] = out.get(node, 0.0) + _mul(x, share)
        return out

    def spread(self, at_entries: Mapping[str, float], *, worst: bool = False) -> dict[str, float]:
        """Amounts (rates or counts) entering at nodes, carried through every call: what
        reaches each node. ``worst``: every call is attempted as often as its retries allow."""
        amount_at = dict.fromkeys(self.order, 0.0)
        for node, x in at_entries.items():
            amount_at[node] += x
        for node in self.order:
            x = amount_at[node]
            if x == 0.0:
                continue
            for dst, mult, attempts, _ in self.calls[node]:
                amount_at[dst] += _mul(x, mult * attempts if worst else mult)
        return amount_at

    def utilisation(self, entry_work: Mapping[str, float]) -> dict[str, float]:
        """Offered utilisation of every service for request rates (weighted by their cost)
        entering at nodes: rate x visits x mean service time / (replicas x workers)."""
        rates = self.spread(entry_work)
        work: dict[str, float] = dict.fromkeys(self.topology.services, 0.0)
        for node, rate in rates.items():
            work[self.service_of[node]] += _mul(rate, self.mean_time[node])
        for name, (rate, cold) in self._cold_seconds(rates).items():
            work[name] += _mul(rate, cold)
        out = {}
        for name, svc in self.topology.services.items():
            out[name] = _finite_or_inf(work[name] / (svc.replicas * svc.workers))
        return out

    def _cold_seconds(self, rates: Mapping[str, float]) -> dict[str, tuple[float, float]]:
        """Each service with cold starts at these node rates: (its rate, the mean cold-start
        seconds a request carries at that rate, :meth:`twin.topology.Service.cold_seconds`,
        Poisson arrivals)."""
        out: dict[str, tuple[float, float]] = {}
        for name, svc in self.topology.services.items():
            if svc.cold_start is None:
                continue
            rate = sum(r for n, r in rates.items() if self.service_of[n] == name)
            out[name] = (rate, svc.cold_seconds(rate))
        return out

    def in_flight(self, entry_rates: Mapping[str, float], rho: Mapping[str, float]) -> float:
        """Requests in the system by Little's law (inf when a service has ``rho >= 1``)."""
        if any(r >= 1.0 for r in rho.values()):
            return math.inf
        rates = self.spread(entry_rates)
        cold = self._cold_seconds(rates)
        stay: dict[str, float] = {}
        for node in reversed(self.order):
            s = self.mean_time[node]
            if cold and self.service_of[node] in cold:
                s += cold[self.service_of[node]][1]
            r = rho[self.service_of[node]]
            t = s + s * r / (1.0 - r)
            for k, (dst, mult, _, latency) in enumerate(self.calls[node]):
                if (node, k) not in self.unawaited:
                    t += _mul(mult, latency + stay[dst])
            stay[node] = t
        return _finite_or_inf(sum(_mul(rates[n], stay[n]) for n in self.order))


# -- the estimate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    """The load at one moment: when, each service's offered utilisation, and the worst."""

    time: float
    utilisation: dict[str, float]

    @property
    def busiest(self) -> tuple[str, float]:
        name = max(self.utilisation, key=lambda n: self.utilisation[n])
        return name, self.utilisation[name]


@dataclass(frozen=True)
class WorkEstimate:
    """What a run will need, from its documents alone (see the module's docstring)."""

    duration: float
    """Simulated seconds."""
    entry_requests: float
    """Requests arriving at the entries (users, surges and attacks)."""
    requests: float
    """Requests served by services, calls included, in a healthy run."""
    requests_worst: float
    """The same with every retry the policy allows taken on every call."""
    services: int
    replicas: float
    """Replica objects, an autoscaler's maximum included."""
    stages: float
    """Sequential call repetitions the engine keeps as stages."""
    windows: float
    blocks: float
    """Time-series blocks (windows x the scopes that write series)."""
    fault_occurrences: float
    trace_rows: float
    in_flight: float
    """Requests in the system at the peak load by Little's law; inf when unstable."""
    peak: Peak
    """The load at which the busiest service is busiest."""
    saturates: tuple[float, str, float] | None
    """(when, service, rho) for the first moment a service is offered ``rho >= 1``."""
    fan_out: float
    """Service requests per entry request in a healthy run (calls included), at the
    workload's mix of entries."""

    def memory_parts(self) -> dict[str, float]:
        """Bytes by what holds them (the requests in flight only when the system is stable)."""
        parts = {
            "services": self.services * float(BYTES_PER_SERVICE),
            "replica objects": _mul(self.replicas, BYTES_PER_REPLICA),
            "call stages": _mul(self.stages, BYTES_PER_STAGE),
            "time-series windows": _mul(self.blocks, BYTES_PER_BLOCK),
            "fault occurrences": _mul(self.fault_occurrences, BYTES_PER_OCCURRENCE),
            "trace rows": _mul(self.trace_rows, BYTES_PER_TRACE_ROW),
        }
        if math.isfinite(self.in_flight):
            parts["requests in flight"] = _mul(self.in_flight, BYTES_PER_REQUEST)
        return parts

    @property
    def memory(self) -> float:
        """Estimated bytes the run holds for its model."""
        return _finite_or_inf(sum(self.memory_parts().values()))

    @property
    def static_memory(self) -> float:
        """Bytes that do not depend on how many requests are in flight."""
        parts = self.memory_parts()
        parts.pop("requests in flight", None)
        return _finite_or_inf(sum(parts.values()))

    def describe(self) -> str:
        """One line for people: the work and the memory."""
        return (
            f"{count(self.requests)} requests, calls included ({count(self.entry_requests)} at "
            f"the entries x {self.fan_out:.3g} each; up to {count(self.requests_worst)} with "
            f"every retry), {size(self.memory)} of memory, "
            f"{count(self.windows)} windows, {count(self.fault_occurrences)} fault occurrences"
        )


def count(x: float) -> str:
    """A count for a message: ``12,345``, ``6.0e+11`` or ``unbounded``."""
    if not math.isfinite(x):
        return "unbounded"
    return f"{x:,.0f}" if x < 1e7 else f"{x:.2g}"


def size(n: float) -> str:
    """Bytes for a message: ``256 MiB``, ``1.5 TiB`` or ``unbounded``."""
    if not math.isfinite(n):
        return "unbounded"
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1024:.3g} KiB"


def _load_integral(scenario: Scenario) -> tuple[float, list[tuple[float, float]]]:
    """Multiplier-seconds of the load profile over the run, and its steps within the run."""
    end = scenario.duration
    steps = [(at, m) for at, m in scenario.load.steps() if at < end]
    total = 0.0
    for i, (at, m) in enumerate(steps):
        until = steps[i + 1][0] if i + 1 < len(steps) else end
        total += _mul(m, until - at)
    return _finite_or_inf(total), steps


def _span(fault: FaultBase, end: float) -> tuple[float, float]:
    lo = fault.start
    hi = end if fault.duration is None else min(end, fault.start + fault.duration)
    return lo, hi


def _occurrences(fault: FaultBase, end: float) -> tuple[float, float]:
    """(occurrences, share of its span it is active) of one fault within the run."""
    lo, hi = _span(fault, end)
    if hi <= lo:
        return 0.0, 0.0
    sample = fault.sample
    if sample is None:
        return 1.0, 1.0
    gap = sample.interval.expected()
    length = max(0.0, sample.duration.expected())
    cycle = gap + length
    n = _finite_or_inf((hi - lo) / cycle) if cycle > 0 else math.inf
    return n + 1.0, (length / cycle if cycle > 0 else 0.0)


def _traffic(fault: FaultBase) -> tuple[float, float]:
    """(requests per second, cost) of a traffic fault while active; (0, 0) otherwise."""
    if not isinstance(fault, TrafficFault):
        return 0.0, 0.0
    scale = 1.0
    if fault.sample is not None and fault.sample.intensity is not None:
        scale = fault.sample.intensity.expected()
    return _mul(fault.rate, scale), fault.cost


def peaks(graph: CallGraph, scenario: Scenario) -> list[Peak]:
    """Each service's offered utilisation at every moment the load changes: the start, each
    load step and each traffic fault's start (a sampled traffic fault counts as on over its
    whole span: the estimate errs towards load)."""
    end = scenario.duration
    _, steps = _load_integral(scenario)
    moments = {at for at, _ in steps}
    traffic = []
    for f in scenario.faults:
        rate, cost = _traffic(f)
        lo, hi = _span(f, end)
        if rate > 0 and hi > lo:
            traffic.append((lo, hi, f.target, _mul(rate, cost)))
            moments.add(lo)
    out = []
    for t in sorted(moments):
        mult = next(m for at, m in reversed(steps) if at <= t)
        work = graph.at_entries(_by_entry(graph.topology, mult))
        for lo, hi, entry, rate in traffic:
            if lo <= t < hi:
                for node, x in graph.at_entries({entry: rate}).items():
                    work[node] = work.get(node, 0.0) + x
        out.append(Peak(t, graph.utilisation(work)))
    return out


def estimate(
    topology: Topology,
    scenario: Scenario,
    policy: Policy | None = None,
    *,
    series: str = "auto",
    trace_sample: float = 0.0,
    trace_limit: int = 100_000,
    graph: CallGraph | None = None,
) -> WorkEstimate:
    """The work and memory of one run of the request-level engine (see the module)."""
    policy = policy or Policy()
    graph = graph or CallGraph(topology, policy)
    end = scenario.duration
    load, _ = _load_integral(scenario)
    entries = graph.at_entries(_by_entry(topology, load, most=True))
    scopes = {w.entry for w in topology.workload}
    occurrences = 0.0
    for f in scenario.faults:
        n, share = _occurrences(f, end)
        occurrences += n
        rate, _ = _traffic(f)
        if rate > 0 and n > 0:
            lo, hi = _span(f, end)
            extra = graph.at_entries({f.target: _mul(_mul(rate, hi - lo), share)})
            for node, x in extra.items():
                entries[node] = entries.get(node, 0.0) + x
            scopes.add(f.target)
    entry_requests = _finite_or_inf(sum(entries.values()))
    requests = _finite_or_inf(sum(graph.spread(entries).values()))
    worst = _finite_or_inf(sum(graph.spread(entries, worst=True).values()))
    replicas = 0.0
    for name, svc in topology.services.items():
        sp = policy.services.get(name)
        top = sp.autoscale.max if sp is not None and sp.autoscale is not None else 0
        replicas += max(svc.replicas, top)
    windows = _finite_or_inf(end / scenario.window)
    per_window = len(scopes) * BLOCKS_PER_ENTRY
    if keeps_service_series(series, len(topology.services)):
        per_window += len(topology.services) * BLOCKS_PER_SERVICE
    moments = peaks(graph, scenario)
    peak = max(moments, key=lambda p: p.busiest[1])
    saturates = None
    for p in moments:
        name, rho = p.busiest
        if rho >= 1.0:
            saturates = (p.time, name, rho)
            break
    mult = max((m for _, m in _load_integral(scenario)[1]), default=1.0)
    rates = graph.at_entries(_by_entry(topology, mult))  # the in-flight set at the peak
    base = graph.at_entries(_by_entry(topology, 1.0))
    fan_out = _finite_or_inf(sum(graph.spread(base).values()) / sum(base.values()))
    return WorkEstimate(
        fan_out=fan_out,
        duration=end,
        entry_requests=entry_requests,
        requests=requests,
        requests_worst=worst,
        services=len(topology.services),
        replicas=replicas,
        stages=float(graph.stages),
        windows=windows,
        blocks=_mul(windows, per_window),
        fault_occurrences=occurrences,
        trace_rows=min(float(trace_limit), _mul(trace_sample, entry_requests)),
        in_flight=graph.in_flight(rates, peak.utilisation),
        peak=peak,
        saturates=saturates,
    )


@dataclass(frozen=True)
class FluidEstimate:
    """What a run of the fluid engine needs: operation-steps, and its fault occurrences."""

    steps: float
    node_steps: float
    fault_occurrences: float
    services: int

    @property
    def memory(self) -> float:
        return _finite_or_inf(
            self.services * float(BYTES_PER_SERVICE)
            + _mul(self.fault_occurrences, BYTES_PER_OCCURRENCE)
        )


def fluid_estimate(topology: Topology, scenario: Scenario, dt: float) -> FluidEstimate:
    """The fluid engine's work: every operation and edge once per step, whatever the rates."""
    nodes = sum(len(s.operations) for s in topology.services.values())
    edges = sum(len(op.calls) for s in topology.services.values() for op in s.operations.values())
    steps = _finite_or_inf(scenario.duration / dt)
    occurrences = sum(_occurrences(f, scenario.duration)[0] for f in scenario.faults)
    return FluidEstimate(steps, _mul(steps, nodes + edges), occurrences, len(topology.services))


# -- the budget -------------------------------------------------------------------------------


def _limit_value(value: str | int | None, option: str, env: str) -> int:
    if value is None:
        return limit(env)
    if isinstance(value, int):
        if value <= 0:
            raise InputError(f"{option}={value}: expected a positive integer")
        return value
    return amount(value, option)


@dataclass(frozen=True)
class Budget:
    """The most work and memory one run may take (defaults: :mod:`twin.safeload`'s limits)."""

    max_requests: int
    """Requests a run may serve, calls between services included."""
    max_memory: int
    """Bytes a run may hold for its model."""

    @classmethod
    def from_limits(
        cls, max_requests: str | int | None = None, max_memory: str | int | None = None
    ) -> Budget:
        """The budget from command-line values (``"1e9"``, ``"2GiB"``), else from
        ``TWIN_MAX_REQUESTS`` / ``TWIN_MAX_MEMORY``, else the defaults."""
        return cls(
            _limit_value(max_requests, "--max-requests", "TWIN_MAX_REQUESTS"),
            _limit_value(max_memory, "--max-memory", "TWIN_MAX_MEMORY"),
        )

    def check(self, est: WorkEstimate) -> None:
        """Refuse, in one line with the estimate and how to raise the limit, a run above the
        budget."""
        if not est.requests <= self.max_requests:
            raise InputError(
                f"work budget: the run would serve {_about(est.requests)} requests, calls "
                f"included ({count(est.entry_requests)} at the entries x {est.fan_out:.3g} "
                f"calls each, over {est.duration:g} s), above the budget of "
                f"{count(self.max_requests)}; raise it with --max-requests or TWIN_MAX_REQUESTS"
            )
        parts = est.memory_parts()
        if not est.memory <= self.max_memory:
            what = max(parts, key=lambda k: parts[k])
            raise InputError(
                f"memory budget: the run would hold {_about_size(est.memory)} (mostly "
                f"{what}: {_what(est, what)}), above the budget of {size(self.max_memory)}; "
                "raise it with --max-memory or TWIN_MAX_MEMORY"
            )

    def check_fluid(self, est: FluidEstimate) -> None:
        """The fluid engine's refusal: operation-steps and fault occurrences."""
        if not est.node_steps <= self.max_requests:
            raise InputError(
                f"work budget: the fluid run would take {_about(est.node_steps)} "
                f"operation-steps ({count(est.steps)} steps), above the budget of "
                f"{count(self.max_requests)}; raise it with --max-requests or TWIN_MAX_REQUESTS"
            )
        if not est.memory <= self.max_memory:
            raise InputError(
                f"memory budget: the fluid run would hold {_about_size(est.memory)} "
                f"({count(est.fault_occurrences)} fault occurrences), above the budget of "
                f"{size(self.max_memory)}; raise it with --max-memory or TWIN_MAX_MEMORY"
            )

    def in_flight_cap(self, est: WorkEstimate) -> int:
        """Requests in the system at which a running simulation stops with a verdict: the
        memory the estimate's objects leave, at :data:`BYTES_PER_REQUEST` each."""
        free = self.max_memory - est.static_memory
        return max(MIN_IN_FLIGHT, int(free // BYTES_PER_REQUEST))

    def work_cap(self) -> int:
        """Requests served at which a running simulation stops with a verdict."""
        return int(self.max_requests * WORK_SLACK)


def _about(x: float) -> str:
    return f"about {count(x)}" if math.isfinite(x) else "an unbounded number of"


def _about_size(n: float) -> str:
    return f"about {size(n)}" if math.isfinite(n) else "unbounded memory"


def _what(est: WorkEstimate, part: str) -> str:
    numbers = {
        "services": f"{est.services:,} services",
        "replica objects": f"{count(est.replicas)} replicas",
        "call stages": f"{count(est.stages)} sequential calls",
        "time-series windows": f"{count(est.windows)} windows of series",
        "fault occurrences": f"{count(est.fault_occurrences)} fault occurrences",
        "trace rows": f"{count(est.trace_rows)} trace rows",
        "requests in flight": f"{count(est.in_flight)} requests in flight",
    }
    return numbers[part]


def check_run(
    topology: Topology,
    scenario: Scenario,
    policy: Policy | None = None,
    budget: Budget | None = None,
    *,
    series: str = "auto",
    trace_sample: float = 0.0,
) -> WorkEstimate:
    """Estimate one run and refuse it above ``budget`` (default: from the limits)."""
    est = estimate(topology, scenario, policy, series=series, trace_sample=trace_sample)
    (budget or Budget.from_limits()).check(est)
    return est


__all__ = [
    "BYTES_PER_REQUEST",
    "Budget",
    "CallGraph",
    "FluidEstimate",
    "Peak",
    "WorkEstimate",
    "check_run",
    "count",
    "estimate",
    "fluid_estimate",
    "keeps_service_series",
    "peaks",
    "size",
]


def _by_entry(topology: Topology, multiplier: float, *, most: bool = False) -> dict[str, float]:
    """The workload's rates by entry, times ``multiplier``. A closed loop's rate is the
    document's (its throughput at the bundled state), never more than its users can send
    (``N / Z``: X = N / (R + Z)); ``most``: that bound itself,
    for counting the requests a run can serve (``multiplier`` may then be multiplier-seconds:
    the users are not rounded)."""
    out: dict[str, float] = {}
    for w in topology.workload:
        rate = _mul(w.rate, multiplier)
        if w.think_time is not None and w.users is not None:
            bound = _mul(w.poisson_rate, multiplier) + _mul(
                w.users / w.think_time.expected(), multiplier
            )
            rate = bound if most else min(rate, bound)
        out[w.entry] = out.get(w.entry, 0.0) + rate
    return out
