"""``Stretch``: what one ``step(seconds)`` of either engine saw.

A pydantic record like the summary, so the reference documents it and scripts can read it by
key, but the engines build it with ``model_construct``: the figures come from the engine
itself, and a step sits in the agent's training loop, where validating every figure would cost
more than reading it. Both engines fill every field; a figure the fluid engine does not model
is ``None`` there, as the field says.
"""

from __future__ import annotations

from pydantic import Field

from twin.results.record import Number, Record


class StretchLatency(Record):
    """Latency over the stretch, in seconds; ``None`` when nothing succeeded."""

    mean: Number | None = Field(None, description="mean latency (seconds)")
    p50: Number | None = Field(
        None, description="median (seconds); None from the fluid engine, which models p99 only"
    )
    p95: Number | None = Field(None, description="95th percentile (seconds); None from fluid")
    p99: Number | None = Field(None, description="99th percentile (seconds)")


class EntryStretch(Record):
    """One entry over the stretch (every request, warm-up included)."""

    arrivals: Number = Field(
        description="requests that arrived (fluid: the requests answered, a rate times time)"
    )
    succeeded: Number = Field(description="requests that succeeded")
    failed: Number = Field(description="requests that failed")
    failures: dict[str, Number] | None = Field(
        None, description="failed requests by reason; None from fluid, which has no reasons"
    )
    latency: StretchLatency = Field(description="end-to-end latency of the successes")


class ServiceStretch(EntryStretch):
    """One service over the stretch, with its resources."""

    utilization: Number | None = Field(
        None, description="busy share of the capacity in [0, 1]; None with no capacity"
    )
    queue: Number = Field(0, description="requests waiting at the end of the stretch")
    replicas: Number = Field(0, description="replicas, time-averaged over the stretch")
    ready: Number = Field(0, description="replicas that can take requests at the end")


class Stretch(Record):
    """What one ``step(seconds)`` saw, per entry and service, and the breakers at its end."""

    time: Number = Field(description="simulated time at the end of the stretch (seconds)")
    seconds: Number = Field(description="length of the stretch (seconds)")
    entries: dict[str, EntryStretch] = Field(description="per workload entry")
    services: dict[str, ServiceStretch] = Field(description="per service")
    breakers: dict[str, int] = Field(
        description="per edge with a breaker, its state at the end: 0 closed, 1 open, 2 half-open"
    )
