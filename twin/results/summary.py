"""``Summary``: what ``summary.json`` holds, as a typed record.

Key order and presence are the file's: a run writes every key in the order below; a key an
older file lacks stays absent when the file is read and written again. With ``--replications``
each figure is the mean over the runs, ``ci`` holds its 95% interval, and the keys are written
as the combined summary has always written them (see :func:`replicated_order`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer
from typing_extensions import TypeAliasType

from twin.results.record import Number, Record

REPLICATION_KEPT = ("faults", "seed", "edges", "slo", "wall_seconds")
"""Keys a combined summary copies from the first replication instead of averaging."""


class LatencyStats(Record):
    """End-to-end latency of successful requests, in seconds; ``null`` when none succeeded."""

    mean: Number | None = Field(None, description="mean latency (seconds)")
    p50: Number | None = Field(None, description="median latency (seconds)")
    p95: Number | None = Field(None, description="95th percentile (seconds)")
    p99: Number | None = Field(None, description="99th percentile (seconds)")
    max: Number | None = Field(None, description="largest latency seen (seconds)")


class Outcomes(Record):
    """Requests of one scope and what became of them (measured: arrived after the warm-up)."""

    requests: Number = Field(0, description="requests that arrived after the warm-up")
    succeeded: Number = Field(0, description="requests that succeeded")
    failed: Number = Field(0, description="requests that failed, whatever the reason")
    failures: dict[str, Number] = Field(
        default_factory=dict,
        description="failed requests by reason (TIMEOUT, REJECTED, ...); reasons that never "
        "happened are left out",
    )
    latency: LatencyStats = Field(
        default_factory=LatencyStats, description="latency of the successful requests"
    )


class EntrySummary(Outcomes):
    """One workload entry: the requests users sent to it."""

    corrupted: Number = Field(0, description="successful responses that carried corrupted data")
    in_flight: Number = Field(0, description="measured requests still unanswered at the end")


class ServiceSummary(Record):
    """One service: every arrival (users' requests, calls from other services, retries)."""

    arrivals: Number = Field(0, description="arrivals after the warm-up, retries included")
    completions: Number = Field(0, description="arrivals served successfully")
    failed: Number = Field(0, description="arrivals that failed")
    failures: dict[str, Number] = Field(
        default_factory=dict, description="failed arrivals by reason"
    )
    rejected: Number = Field(0, description="arrivals refused by a full queue or load shedding")
    utilization: Number | None = Field(
        None,
        description="busy share of the capacity after the warm-up, in [0, 1]; null when the "
        "service had no capacity",
    )
    replica_seconds: Number = Field(0, description="replicas integrated over measured time (s)")
    latency: LatencyStats = Field(
        default_factory=LatencyStats, description="time from arrival to response (seconds)"
    )


class EdgeSummary(Record):
    """One caller->callee edge, over the whole run (warm-up included)."""

    calls: Number = Field(0, description="calls the caller made")
    attempts: Number = Field(0, description="attempts, first tries and retries")
    retries: Number = Field(0, description="retry attempts")
    timeouts: Number = Field(0, description="attempts the caller abandoned at its timeout")
    circuit_open: Number = Field(0, description="calls refused by an open circuit breaker")
    budget_denied: Number = Field(0, description="retries the retry budget did not allow")
    breaker_transitions: Number | None = Field(
        None, description="breaker state changes; absent when the edge has no breaker"
    )


class SloVerdict(Record):
    """One SLO target against the run's figure."""

    target: float = Field(description="the topology's target")
    value: Number | None = Field(description="the run's figure; null when there was none")
    met: bool = Field(description="whether the figure meets the target")


class SloVerdicts(Record):
    """The verdicts for the SLOs the topology sets; an SLO it does not set is absent."""

    latency_p99: SloVerdict | None = Field(None, description="p99 latency (seconds)")
    availability: SloVerdict | None = Field(None, description="availability, in [0, 1]")


class FaultRecord(Record):
    """A fault window as it opened, or an out-of-memory kill it caused."""

    fault: int | None = Field(
        None, description="index of the fault in the scenario; absent for an OOM kill"
    )
    kind: str = Field(description="fault kind, or `oom_kill`")
    target: str = Field(description="service, replica (`svc#i`), host, zone or edge")
    start: Number = Field(description="simulated time it opened (seconds)")
    end: Number = Field(description="simulated time it closes (seconds)")


class Verdict(Record):
    """Why a run stopped before its end, and what that says about the modelled system.

    ``unstable``: the requests in the system grew past what the memory budget holds (an
    unbounded queue): the system cannot serve this load, and ``service`` is the one that
    saturated first. ``work``: the run served more than twice its request budget (a retry storm
    multiplying the calls, most often). The figures beside the verdict cover the run up to
    ``stopped_at``. A run that ends normally has no verdict, and its ``summary.json`` no
    ``verdict`` key.
    """

    verdict: Literal["unstable", "work"] = Field(description="why the run stopped")
    service: str | None = Field(
        description="the service that saturated first: the one offered the highest "
        "utilisation at the stop when that is at least 1, else the one holding the most "
        "requests"
    )
    utilization: Number | None = Field(
        description="that service's offered utilisation at the stop (rate x visits x mean "
        "service time / its working capacity), from the documents and the load then"
    )
    stopped_at: Number = Field(description="simulated time when the run stopped (seconds)")
    in_flight: Number = Field(description="requests in the system then, calls included")
    requests: Number = Field(description="requests served until then, calls included")
    limit: Number = Field(
        description="the limit that was passed: requests in flight (unstable) or served (work)"
    )


class Interval(Record):
    """A mean over replications with its 95% Student-t confidence interval."""

    mean: float | None = Field(description="mean over replications")
    lo: float | None = Field(description="lower bound; null with one value")
    hi: float | None = Field(description="upper bound; null with one value")


CiTree = TypeAliasType("CiTree", "dict[str, Interval | CiTree]")
"""The summary's shape, each figure replaced by its :class:`Interval`."""


class Summary(Record):
    """What ``twin simulate`` writes to ``summary.json``.

    Counts are of requests that arrived after the warm-up; latencies are of successful
    requests, in seconds. With ``--replications N`` every figure is the mean over the N runs
    and ``ci`` holds its 95% interval; figures no run had (for example a latency with no
    success) are then absent.
    """

    requests: Number = Field(0, description="user requests that arrived after the warm-up")
    succeeded: Number = Field(0, description="user requests that succeeded")
    failed: Number = Field(0, description="user requests that failed")
    in_flight: Number = Field(0, description="measured user requests unanswered at the end")
    corrupted: Number = Field(0, description="successful responses that carried corrupted data")
    failures: dict[str, Number] = Field(
        default_factory=dict, description="failed user requests by reason"
    )
    latency: LatencyStats = Field(
        default_factory=LatencyStats, description="end-to-end latency (seconds)"
    )
    availability: Number | None = Field(
        None, description="succeeded / (succeeded + failed), in [0, 1]; null with no outcome"
    )
    throughput: Number | None = Field(
        None, description="successful requests per measured second; null with no measured time"
    )
    entries: dict[str, EntrySummary] = Field(default_factory=dict, description="per entry")
    services: dict[str, ServiceSummary] = Field(default_factory=dict, description="per service")
    edges: dict[str, EdgeSummary] = Field(
        default_factory=dict, description="per caller->callee edge (`caller->callee`)"
    )
    attack: dict[str, Outcomes] = Field(
        default_factory=dict,
        description="per entry, the attack or surge traffic's requests (not counted above)",
    )
    replica_seconds: Number = Field(0, description="replica-seconds of every service, measured")
    slo: SloVerdicts = Field(default_factory=SloVerdicts, description="the SLO verdicts")
    faults: list[FaultRecord] = Field(
        default_factory=list, description="fault windows that opened, in order"
    )
    simulated_seconds: Number = Field(0, description="simulated time at the end (seconds)")
    measured_seconds: Number = Field(0, description="simulated time after the warm-up (seconds)")
    seed: int | None = Field(None, description="the scenario seed (the first run's)")
    events: Number = Field(0, description="events the engine scheduled")
    wall_seconds: float = Field(0.0, description="wall-clock time of the run (seconds)")
    ci: CiTree | None = Field(
        None, description="95% confidence interval of every figure; only with replications"
    )
    replications: int | None = Field(None, description="number of runs; only with replications")
    seeds: list[int] | None = Field(None, description="each run's seed; only with replications")
    topology: str | None = Field(None, description="the topology's name (written by the CLI)")
    verdict: Verdict | None = Field(
        None,
        description="present only when the run stopped before its end: why, and the service "
        "that saturated first (see Verdict)",
    )

    @model_serializer(mode="wrap")
    def _file_order(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if self.replications is None or not info.exclude_unset:
            return out
        return replicated_order(out)


def _sorted(d: Any) -> Any:
    if isinstance(d, dict) and d.keys() != Interval.model_fields.keys():
        return {k: _sorted(d[k]) for k in sorted(d)}
    return d


def replicated_order(d: dict[str, Any]) -> dict[str, Any]:
    """The combined summary's key order: the kept keys as the first run had them, then every
    averaged figure sorted by path, then ``ci`` (sorted), ``replications``, ``seeds`` and
    whatever was added after (``topology``, ``verdict``)."""
    tail = ("ci", "replications", "seeds")
    out = {k: v for k, v in d.items() if k in REPLICATION_KEPT}
    averaged = {k: v for k, v in d.items() if k not in REPLICATION_KEPT and k not in tail}
    rest = {k: averaged.pop(k) for k in list(averaged) if k in ("topology", "verdict")}
    out.update(_sorted(averaged))
    for k in tail:
        if k in d:
            out[k] = _sorted(d[k])
    out.update(rest)
    return out
