"""The topology document: what the system is. Loaded from YAML, checked, turned into networkx."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from twin.bounds import (
    MAX_BYTES,
    MAX_CALL_COUNT,
    MAX_CORES,
    MAX_QUEUE,
    MAX_REPLICAS,
    MAX_WORKERS,
    BytesPerSecond,
    Finite,
    Int,
    Name,
    PositiveSeconds,
    Probability,
    Rate,
    Reference,
)
from twin.distributions import Constant, Dist
from twin.io import DocProblem, dump_yaml, load_model, parse_model

Fraction = Probability

MIX_TOLERANCE = 0.01
"""How far a mix's shares may sum from 1 (rounded shares); they are normalised when used."""

CFS_PERIOD = 0.1
"""Seconds of the kernel's CFS bandwidth period (``cpu.cfs_period_us`` 100000), which
Kubernetes uses for every CPU limit."""
CFS_PERIOD_MIN, CFS_PERIOD_MAX = 0.001, 1.0
"""The periods the kernel accepts (1 ms to 1 s)."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Host(_Doc):
    """A machine (or node) whose cores are shared by the services placed on it."""

    cores: Int = Field(
        ge=1, le=MAX_CORES, description="CPU cores; processing on the host waits for a free core"
    )
    zone: Name | None = Field(default=None, description="failure domain, for zone outages")
    disk_bandwidth: BytesPerSecond | None = Field(
        default=None,
        description="bytes per second of the host's disk, shared FIFO by every replica on it",
    )


class Call(_Doc):
    """One downstream call an operation makes after its own processing."""

    to: Reference = Field(description='"service" or "service:operation"')
    probability: Fraction = Field(default=1.0, description="chance the call is made at all")
    count: Int = Field(
        default=1, ge=1, le=MAX_CALL_COUNT, description="how many calls when it is made"
    )
    parallel: bool = Field(
        default=False,
        description="consecutive parallel calls are issued together and joined before the next",
    )
    optional: bool = Field(
        default=False, description="a failure of this call degrades but does not fail the caller"
    )
    size_bytes: Int = Field(
        default=2048, ge=0, le=int(MAX_BYTES), description="response size, for bandwidth faults"
    )
    latency: Dist | None = Field(
        default=None,
        description="network seconds of this call, over the edge's link latency (default: the "
        "link's): request classes calling the same edge can wait differently on it",
    )
    when: Literal["always", "previous_ok", "previous_failed"] = Field(
        default="always",
        description="made only on the outcome of the stage before this call's own (a stage: a "
        "sequential call with all its repetitions, or a group of consecutive parallel calls): "
        "`previous_ok` when every call made there succeeded (a cache miss going to the "
        "database), `previous_failed` when one failed (a fallback); `probability` still "
        "applies. A stage where no call was made (or whose own condition was not met) is "
        "neither, so the call is not made either",
    )
    asynchronous: bool = Field(
        default=False,
        description="fire-and-forget: the caller goes on at once and never hears the outcome, "
        "which cannot fail it; the callee still does the work (and its calls), loaded as by "
        "any call",
    )


def expected_calls(calls: Sequence[Call], failure: Sequence[float]) -> list[float]:
    """Expected number of each call per request of the operation that makes them.

    ``failure[i]`` is the chance that one call ``i`` fails once made (the traffic equations
    use its link's loss, the healthy system; the fluid engine its current failure share).
    An unconditional call is made ``probability x count`` times; a conditional one that many
    times the chance its previous stage ended as its ``when`` asks, with stages independent
    given the stage before them. Asynchronous calls never fail their stage (the caller does
    not hear their outcome). Without conditional calls this is exactly ``probability x count``.
    """
    if all(c.when == "always" for c in calls):
        return [c.probability * c.count for c in calls]
    out = [0.0] * len(calls)
    prev = (0.0, 0.0)  # (ok, failed) of the stage before: the first call has none
    for stage in call_stages(calls):
        ok = failed = 0.0
        none_before = max(0.0, 1.0 - prev[0] - prev[1])
        for outcome, weight in (("none", none_before), ("ok", prev[0]), ("failed", prev[1])):
            if weight <= 0.0:
                continue
            none = nofail = 1.0
            for i in stage:
                c = calls[i]
                if not _gate_open(c.when, outcome):
                    continue
                out[i] += weight * c.probability * c.count
                f = 0.0 if c.asynchronous else min(1.0, max(0.0, failure[i]))
                if c.parallel:  # made once with probability, then `count` calls
                    none *= 1.0 - c.probability
                    nofail *= 1.0 - c.probability + c.probability * (1.0 - f) ** c.count
                else:  # each repetition drawn on its own
                    none *= (1.0 - c.probability) ** c.count
                    nofail *= (1.0 - c.probability * f) ** c.count
            ok += weight * max(0.0, nofail - none)
            failed += weight * (1.0 - nofail)
        prev = (ok, failed)
    return out


def _gate_open(when: str, outcome: str) -> bool:
    return (
        when == "always"
        or (when == "previous_ok" and outcome == "ok")
        or (when == "previous_failed" and outcome == "failed")
    )


def call_stages(calls: Sequence[Call]) -> list[list[int]]:
    """Indices of ``calls`` by stage: a run of consecutive parallel calls is one stage, any
    other call (all its repetitions) one stage of its own."""
    stages: list[list[int]] = []
    for i, c in enumerate(calls):
        if c.parallel and stages and calls[stages[-1][-1]].parallel:
            stages[-1].append(i)
        else:
            stages.append([i])
    return stages


def _check_conditions(calls: Sequence[Call], loc: tuple[str | int, ...]) -> None:
    """A conditional call needs a stage before it that can end as its condition asks."""
    stages = call_stages(calls)
    for k, stage in enumerate(stages):
        for i in stage:
            when = calls[i].when
            if when == "always":
                continue
            if k == 0:
                raise DocProblem((*loc, i, "when"), "the first call has no call before it")
            before = [calls[j] for j in stages[k - 1]]
            if when == "previous_failed" and not any(
                c.optional and not c.asynchronous for c in before
            ):
                raise DocProblem(
                    (*loc, i, "when"),
                    "never made: no call before it can fail without failing the caller (mark "
                    "the call it falls back from `optional: true`; asynchronous calls never "
                    "fail their caller)",
                )


class Operation(_Doc):
    """What a service does for one kind of request: its own processing, then its calls."""

    service_time: Dist = Field(description="processing seconds on one worker (and one core)")
    calls: list[Call] = Field(default_factory=list, description="made in order after processing")
    io: Dist | None = Field(
        default=None,
        description="bytes of disk I/O per request, done after processing (default: none)",
    )


class Service(_Doc):
    """A deployment: identical replicas, each with its own workers and FIFO queue."""

    replicas: Int = Field(default=1, ge=1, le=MAX_REPLICAS, description="load-balanced round-robin")
    workers: Int = Field(
        default=1, ge=1, le=MAX_WORKERS, description="requests one replica serves at once"
    )
    queue_limit: Int | None = Field(
        default=None,
        ge=0,
        le=MAX_QUEUE,
        description="waiting requests per replica; beyond it: REJECTED",
    )
    blocking: bool = Field(
        default=False,
        description="true: the worker is held while calls are outstanding (thread per request)",
    )
    host: Name | None = Field(default=None, description="a key of `hosts`: shares its cores")
    zone: Name | None = Field(default=None, description="failure domain when no host is given")
    disk_bandwidth: BytesPerSecond | None = Field(
        default=None,
        description="bytes per second of each replica's own disk (a service without a host)",
    )
    cpu_limit: Finite | None = Field(
        default=None,
        gt=0.0,
        le=MAX_CORES,
        description="cores per replica (Kubernetes `resources.limits.cpu`, e.g. 0.2 for 200m): "
        "a CFS quota of cpu_limit x cpu_period CPU-seconds per period, shared by the "
        "replica's workers; spent, processing waits for the next period (null: no limit)",
    )
    cpu_period: Finite = Field(
        default=CFS_PERIOD,
        ge=CFS_PERIOD_MIN,
        le=CFS_PERIOD_MAX,
        description="seconds of one CFS quota period (the kernel's default: 0.1)",
    )
    operations: dict[Name, Operation] = Field(
        min_length=1, description="by name; with one operation callers may omit its name"
    )
    cold_start: Dist | None = Field(
        default=None,
        description="extra seconds on the worker for a request that finds no warm idle "
        "instance (a serverless function's cold start: runtime and code initialisation). "
        "An instance is one worker of a replica: created on demand (up to `workers`), warm "
        "while it serves and for `keep_alive` seconds after (null: no cold starts)",
    )
    keep_alive: PositiveSeconds | None = Field(
        default=None,
        description="seconds an idle instance stays warm before it is reclaimed, so that the "
        "next request to need it starts cold (null: never reclaimed); needs `cold_start`",
    )
    broker: bool = Field(
        default=False,
        description="a message queue with its consumers: a call to it is answered (acknowledged) "
        "as soon as the message is queued, or refused (REJECTED) when `queue_limit` is full; "
        "`replicas` are its partitions, each with its own FIFO backlog (the queue length the "
        "metrics report), consumed by its `workers`; a consumed message does the operation's "
        "work and calls, and its outcome is the broker's own (no caller waits for it)",
    )

    @model_serializer(mode="wrap")
    def _omit_default_period(self, handler: SerializerFunctionWrapHandler) -> Any:
        """The default period is left out when written, so documents that do not use CPU
        limits read and write as they did before the field existed."""
        data = handler(self)
        if isinstance(data, dict) and self.cpu_period == CFS_PERIOD:
            data.pop("cpu_period", None)
        return data

    def cold_share(self, rate: float, replicas: float | None = None) -> float:
        """Chance that a request finds no warm idle instance, in steady state, with Poisson
        arrivals at ``rate`` per second spread over the replicas: ``exp(-rate / replicas x
        keep_alive)``, the chance that the replica's previous request came more than
        ``keep_alive`` seconds before (exact for one instance and requests short beside the
        gaps; more instances are warm more often, so it is an upper bound). 0 without cold
        starts or when instances are never reclaimed (only each instance's first request is
        cold). ``replicas``: those serving now, when not the document's."""
        if self.cold_start is None or self.keep_alive is None:
            return 0.0
        per = max(0.0, rate) / max(1.0, self.replicas if replicas is None else replicas)
        return math.exp(-per * self.keep_alive)

    def cold_seconds(self, rate: float) -> float:
        """Mean cold-start seconds a request carries at ``rate`` (:meth:`cold_share` x the
        cold start's mean)."""
        if self.cold_start is None:
            return 0.0
        return self.cold_share(rate) * self.cold_start.expected()


class Link(_Doc):
    """Network behaviour of one caller->callee edge."""

    latency: Dist | None = Field(default=None, description="seconds per call; default: network's")
    loss: Fraction = Field(default=0.0, description="chance a call is lost (NETWORK_LOSS)")


class Network(_Doc):
    """Defaults for every call, and per-edge overrides keyed ``"a->b"``."""

    latency: Dist = Field(default_factory=lambda: Constant(mean=0.0))
    loss: Fraction = 0.0
    links: dict[str, Link] = Field(default_factory=dict)


MAX_USERS = 1_000_000
"""The most users one closed-loop entry may have."""


class WorkloadEntry(_Doc):
    """Requests arriving at an entry point, optionally split into request classes.

    Open loop (the default): Poisson arrivals at ``rate``, whatever the system does. Closed
    loop (``users`` and ``think_time``): each of ``users`` users sends a request, waits for
    its answer (success or failure), thinks for a ``think_time`` draw and sends the next, as
    Locust and JMeter run; the system's slowness slows the arrivals. Mixed (``users`` and
    ``open_rate``): both on the same entry, Poisson arrivals at ``open_rate`` beside the users.
    """

    entry: Reference = Field(description='"service" or "service:operation"')
    rate: Rate = Field(
        description="requests per second. Open loop: the Poisson rate. Closed or mixed: the "
        "entry's throughput at the bundled state (what calibration observed: the users' "
        "throughput plus `open_rate`), read by traffic equations and utilisation; the users' "
        "real throughput in a run follows from the system (X = users / (R + Z))"
    )
    users: Int | None = Field(
        default=None,
        ge=1,
        le=MAX_USERS,
        description="closed loop: concurrent users, each with at most one request in flight "
        "(the scenario's load multiplier multiplies them, rounded to the nearest user)",
    )
    think_time: Dist | None = Field(
        default=None,
        description="closed loop: seconds a user waits after an answer before its next request "
        "(mean above 0); required with `users`",
    )
    open_rate: Rate | None = Field(
        default=None,
        description="mixed model: Poisson arrivals per second on this entry beside the users "
        "(part of `rate`; the load multiplier multiplies it too)",
    )
    mix: dict[Name, Fraction] = Field(
        default_factory=dict,
        description="request classes: operation of the entry's service -> its share of the "
        "entry's arrivals (shares sum to 1; each arrival draws its class). `entry` then names "
        "the service only, and the entry's statistics cover every class, as its SLI does",
    )

    @property
    def service(self) -> str:
        """The entry's service (``entry`` without its operation)."""
        return self.entry.partition(":")[0]

    @property
    def closed(self) -> bool:
        """Whether users (a closed loop) send some of this entry's requests."""
        return self.users is not None

    @property
    def poisson_rate(self) -> float:
        """Open-loop arrivals per second at the bundled load (0 for a closed loop)."""
        if self.users is None:
            return self.rate
        return self.open_rate or 0.0

    def users_at(self, multiplier: float) -> int:
        """Users at a load multiplier: ``users x multiplier`` rounded to the nearest user,
        halves up (0 without users)."""
        if self.users is None:
            return 0
        return math.floor(self.users * multiplier + 0.5)


def _check_closed(i: int, w: WorkloadEntry) -> None:
    """A closed or mixed entry's fields agree: users come with a think time (mean above 0,
    or users who never pause would loop on instant failures), an open rate comes with users
    and is part of ``rate``, and the users' part of ``rate`` is within what they can send."""
    loc: tuple[str | int, ...] = ("workload", i)
    if w.users is None:
        for name in ("think_time", "open_rate"):
            if getattr(w, name) is not None:
                raise DocProblem(
                    (*loc, name),
                    "needs `users` (without users the entry is an open loop at `rate`)",
                )
        return
    if w.think_time is None:
        raise DocProblem((*loc, "think_time"), "required with `users`: a distribution of seconds")
    z = w.think_time.expected()
    if not z > 0.0:
        raise DocProblem(
            (*loc, "think_time"),
            "a mean above 0 s (users who never pause would resend at once after an instant "
            "failure, without end)",
        )
    open_rate = w.open_rate or 0.0
    if open_rate > w.rate:
        raise DocProblem(
            (*loc, "open_rate"),
            f"at most `rate` ({w.rate:g}): the open arrivals are part of the entry's rate",
        )
    most = w.users / z
    if w.rate - open_rate > most * (1.0 + 1e-9):
        raise DocProblem(
            (*loc, "rate"),
            f"the users' share of `rate` ({w.rate - open_rate:g}/s) is more than {w.users} users "
            f"thinking {z:g} s on average can send ({most:g}/s = users / mean think time)",
        )


class SLO(_Doc):
    """Service-level objectives for the entry points."""

    latency_p99: PositiveSeconds | None = Field(default=None, description="seconds")
    availability: Fraction | None = None


class Topology(_Doc):
    """A system: services, how they call each other, where they run and what load arrives."""

    name: str = Field(min_length=1, description="shown in reports")
    description: str = Field(default="", description="what is modelled and what is assumed")
    source: str = Field(default="", description="where the model comes from (public source)")
    hosts: dict[Name, Host] = Field(default_factory=dict, description="machines sharing cores")
    services: dict[Name, Service] = Field(min_length=1, description="by name")
    network: Network = Field(default_factory=Network, description="latency and loss of calls")
    workload: list[WorkloadEntry] = Field(min_length=1, description="where requests come in")
    slo: SLO = Field(default_factory=SLO, description="objectives the report checks")

    # -- resolution -------------------------------------------------------------------------

    def resolve(self, target: str) -> tuple[str, str]:
        """``"svc"`` or ``"svc:op"`` -> (service, operation); ValueError when it names nothing."""
        svc, _, op = target.partition(":")
        service = self.services.get(svc)
        if service is None:
            raise ValueError(f"unknown service {svc!r}")
        if op:
            if op not in service.operations:
                raise ValueError(f"service {svc!r} has no operation {op!r}")
            return svc, op
        if len(service.operations) == 1:
            return svc, next(iter(service.operations))
        if "default" in service.operations:
            return svc, "default"
        raise ValueError(f"service {svc!r} has several operations: name one as {svc}:<operation>")

    def entry_classes(self, w: WorkloadEntry) -> list[tuple[str, float]]:
        """The ``svc:op`` nodes an entry's arrivals go to, with their shares (summing to 1)."""
        if not w.mix:
            return [(":".join(self.resolve(w.entry)), 1.0)]
        total = sum(w.mix.values())
        return [(f"{w.entry}:{op}", share / total) for op, share in w.mix.items()]

    def link(self, caller: str, callee: str) -> Link:
        """The effective network behaviour of an edge (per-edge values over the defaults)."""
        link = self.network.links.get(f"{caller}->{callee}")
        latency = link.latency if link is not None and link.latency is not None else None
        return Link(
            latency=latency if latency is not None else self.network.latency,
            loss=link.loss if link is not None else self.network.loss,
        )

    def disk_of(self, service: str) -> float | None:
        """Bytes per second of the disk a service's I/O goes to: its host's, else its own."""
        svc = self.services[service]
        if svc.host is not None:
            return self.hosts[svc.host].disk_bandwidth
        return svc.disk_bandwidth

    def has_disk(self) -> bool:
        """Whether any host or service declares a disk bandwidth (disk faults need one)."""
        return any(h.disk_bandwidth for h in self.hosts.values()) or any(
            s.disk_bandwidth for s in self.services.values()
        )

    # -- checks -----------------------------------------------------------------------------

    def cross_check(self) -> None:
        """Checks that span fields; each problem names its path in the document."""
        for name, svc in self.services.items():
            if svc.host is not None and svc.host not in self.hosts:
                raise DocProblem(("services", name, "host"), f"unknown host {svc.host!r}")
            if svc.host is not None and svc.cpu_limit is not None:
                raise DocProblem(
                    ("services", name, "cpu_limit"),
                    f"service on host {svc.host!r} shares the host's cores: a CPU limit is "
                    "modelled for a service without a host (give one or the other)",
                )
            if svc.keep_alive is not None and svc.cold_start is None:
                raise DocProblem(
                    ("services", name, "keep_alive"),
                    "needs `cold_start` (the seconds a request waits when no instance is warm)",
                )
            if svc.host is not None and svc.disk_bandwidth is not None:
                raise DocProblem(
                    ("services", name, "disk_bandwidth"),
                    f"service on host {svc.host!r} uses the host's disk_bandwidth",
                )
            for op_name, op in svc.operations.items():
                if op.io is not None and self.disk_of(name) is None:
                    raise DocProblem(
                        ("services", name, "operations", op_name, "io"),
                        "I/O needs a disk: give disk_bandwidth to the service or its host",
                    )
                for i, call in enumerate(op.calls):
                    try:
                        self.resolve(call.to)
                    except ValueError as exc:
                        loc = ("services", name, "operations", op_name, "calls", i, "to")
                        raise DocProblem(loc, str(exc)) from None
                _check_conditions(op.calls, ("services", name, "operations", op_name, "calls"))
        for i, w in enumerate(self.workload):
            self._check_entry(i, w)
        edges = self.service_graph().edges
        for key in self.network.links:
            caller, sep, callee = key.partition("->")
            if not sep:
                raise DocProblem(("network", "links", key), 'expected a key "caller->callee"')
            if (caller, callee) not in edges:
                raise DocProblem(("network", "links", key), "no such call in the topology")
        graph = self.operation_graph()
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            self._check_offered_load()
            return
        path = " -> ".join(f"{u}" for u, _ in cycle) + f" -> {cycle[0][0]}"
        svc, op = cycle[0][0].split(":", 1)
        raise DocProblem(
            ("services", svc, "operations", op, "calls"),
            f"calls form a cycle that would recurse forever: {path}",
        )

    def _check_entry(self, i: int, w: WorkloadEntry) -> None:
        _check_closed(i, w)
        if not w.mix:
            try:
                self.resolve(w.entry)
            except ValueError as exc:
                raise DocProblem(("workload", i, "entry"), str(exc)) from None
            return
        if ":" in w.entry:
            raise DocProblem(("workload", i, "entry"), "with a mix, name the service only")
        svc = self.services.get(w.entry)
        if svc is None:
            raise DocProblem(("workload", i, "entry"), f"unknown service {w.entry!r}")
        for op in w.mix:
            if op not in svc.operations:
                raise DocProblem(
                    ("workload", i, "mix", op), f"service {w.entry!r} has no operation {op!r}"
                )
        total = sum(w.mix.values())
        if abs(total - 1.0) > MIX_TOLERANCE:
            raise DocProblem(
                ("workload", i, "mix"), f"shares sum to {total:.6g}, expected 1 (within 1%)"
            )

    def _check_offered_load(self) -> None:
        """Every operation's offered rate and work are finite: rates and call counts within
        their ranges can still multiply, call after call, past the largest float."""
        rates = self.operation_rates()
        for name, svc in self.services.items():
            for op_name, op in svc.operations.items():
                rate = rates[f"{name}:{op_name}"]
                if not (math.isfinite(rate) and math.isfinite(rate * op.service_time.expected())):
                    raise DocProblem(
                        ("services", name, "operations", op_name),
                        f"the calls into {name}:{op_name} multiply the workload past any "
                        "finite rate",
                    )

    # -- graphs -----------------------------------------------------------------------------

    def call_shares(self, service: str, op: Operation) -> list[float]:
        """Expected number of each of ``op``'s calls per request (:func:`expected_calls`) in
        the healthy system: a call fails only when its link loses it."""
        if all(c.when == "always" for c in op.calls):
            return [c.probability * c.count for c in op.calls]
        loss = []
        for c in op.calls:
            callee = c.to.partition(":")[0]
            loss.append(self.link(service, callee).loss if callee in self.services else 0.0)
        return expected_calls(op.calls, loss)

    def operation_graph(self) -> nx.DiGraph:
        """``svc:op`` nodes, an edge per call; used for cycle checks and traffic equations."""
        g: nx.DiGraph = nx.DiGraph()
        for name, svc in self.services.items():
            for op_name, op in svc.operations.items():
                src = f"{name}:{op_name}"
                g.add_node(src, service=name, operation=op_name)
                for call, mult in zip(op.calls, self.call_shares(name, op), strict=True):
                    dst = ":".join(self.resolve(call.to))
                    if g.has_edge(src, dst):
                        g[src][dst]["calls"] += mult
                    else:
                        g.add_edge(src, dst, calls=mult)
        return g

    def operation_rates(self) -> dict[str, float]:
        """Offered arrival rate (rps) per ``svc:op`` at the bundled load, by traffic equations.

        Retries and failures are not counted: this is the load of a healthy system.
        """
        g = self.operation_graph()
        rate = dict.fromkeys(g.nodes, 0.0)
        for w in self.workload:
            for node, share in self.entry_classes(w):
                rate[node] += w.rate * share
        for node in nx.topological_sort(g):
            for _, dst, data in g.out_edges(node, data=True):
                rate[dst] += rate[node] * data["calls"]
        return rate

    def service_graph(self) -> nx.DiGraph:
        """The twin as networkx: services as nodes, calls as edges, parameters as attributes.

        Node attributes: replicas, workers, queue_limit, blocking, host, rate (rps offered),
        utilization (offered work / capacity). Edge attributes: calls (per caller request),
        rate (rps), latency (mean seconds), loss.
        """
        g: nx.DiGraph = nx.DiGraph(name=self.name)
        try:
            op_rates = self.operation_rates()
        except (ValueError, nx.NetworkXUnfeasible):
            op_rates = {}
        for name, svc in self.services.items():
            rate = sum(op_rates.get(f"{name}:{o}", 0.0) for o in svc.operations)
            work = sum(
                op_rates.get(f"{name}:{o}", 0.0) * op.service_time.expected()
                for o, op in svc.operations.items()
            )
            if svc.cold_start is not None:
                work += rate * svc.cold_seconds(rate)
            g.add_node(
                name,
                replicas=svc.replicas,
                workers=svc.workers,
                queue_limit=svc.queue_limit,
                blocking=svc.blocking,
                host=svc.host,
                rate=rate,
                utilization=work / (svc.replicas * svc.workers),
            )
        for name, svc in self.services.items():
            for op_name, op in svc.operations.items():
                src_rate = op_rates.get(f"{name}:{op_name}", 0.0)
                for call, mult in zip(op.calls, self.call_shares(name, op), strict=True):
                    try:
                        callee, _ = self.resolve(call.to)
                    except ValueError:
                        continue
                    if g.has_edge(name, callee):
                        g[name][callee]["rate"] += src_rate * mult
                    else:
                        link = self.link(name, callee) if callee in self.services else Link()
                        if call.latency is not None:
                            link = Link(latency=call.latency, loss=link.loss)
                        g.add_edge(
                            name,
                            callee,
                            rate=src_rate * mult,
                            calls=mult,
                            latency=link.latency.expected() if link.latency else 0.0,
                            loss=link.loss,
                        )
        return g

    # -- files ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` reads back to an equal topology."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text (written to ``path`` if given) that loads back to an equal topology."""
        text = dump_yaml(self.to_dict())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<topology>") -> Topology:
        return parse_model(cls, data, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        """Read and check a topology YAML file; problems raise a one-line InputError."""
        return load_model(cls, path)
