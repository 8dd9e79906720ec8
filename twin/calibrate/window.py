"""One observed window of production: what continuous recalibration reads.

A window is what a minute (or any stretch) of telemetry says about the system: the entry's
SLI (arrivals, P50, P99, success) and, where the telemetry has them, per service its request
rate, server-side P99 and CPU, per call edge the caller's and the callee's median latency,
and per entry service the shares of its request classes. Every figure but the time is
optional: a window that lacks one simply says nothing about it (the follower counts what it
had to skip), so one document serves a front-end-only SLI feed and a full per-pod scrape.

:func:`windows_from_nezha` turns a day read by :func:`twin.calibrate.nezha.read_day` (the one
Nezha reader) into windows; any other source builds them directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from twin.bounds import Finite, Name, Probability, Seconds

if TYPE_CHECKING:
    from twin.calibrate.nezha import NezhaDay

NonNegative = Annotated[Finite, Field(ge=0.0)]
"""A finite figure that cannot be negative (a rate, a CPU reading)."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceFigures(_Doc):
    """One service over the window (every replica together)."""

    rate: NonNegative | None = Field(
        default=None, description="requests per second the service served (req/s)"
    )
    latency_p99: Seconds | None = Field(
        default=None, description="server-side 99th percentile latency, calls included (s)"
    )
    cpu: NonNegative | None = Field(
        default=None,
        description="CPU in use, in any unit proportional to cores (a share of the limit, "
        "cores, millicores): only its changes per request are read",
    )


class EdgeFigures(_Doc):
    """One call edge over the window: the same calls timed by both sides (seconds)."""

    client_p50: Seconds | None = Field(default=None, description="caller's median call time (s)")
    server_p50: Seconds | None = Field(
        default=None, description="callee's median time serving them (s)"
    )


class Window(_Doc):
    """What production showed over one window. All figures but ``time`` are optional."""

    time: Finite = Field(description="end of the window (Unix seconds)")
    seconds: Seconds = Field(default=60.0, gt=0.0, description="length of the window (s)")
    rate: NonNegative | None = Field(
        default=None, description="requests per second arriving at the entries (req/s)"
    )
    p50: Seconds | None = Field(default=None, description="entry latency median (s)")
    p99: Seconds | None = Field(default=None, description="entry latency 99th percentile (s)")
    success: Probability | None = Field(default=None, description="entry success share")
    mix: dict[Name, dict[Name, Probability]] = Field(
        default_factory=dict,
        description="per entry service, its request classes' shares of the arrivals "
        "(operation -> share)",
    )
    services: dict[Name, ServiceFigures] = Field(
        default_factory=dict, description="per service (names as in the topology)"
    )
    edges: dict[str, EdgeFigures] = Field(
        default_factory=dict, description='per call edge "caller->callee"'
    )


def _num(v: float) -> float | None:
    """A figure as a window takes it: finite and not negative, else missing."""
    x = float(v)
    return x if math.isfinite(x) and x >= 0.0 else None


def windows_from_nezha(day: NezhaDay, entry_service: str) -> Iterator[Window]:
    """The day's minutes as windows. The entry's arrivals are the request rate of
    ``entry_service`` (the topology's entry: Nezha's SLI table has no rate, the entry pod's
    workload is it). Per service: workload (ops/s), server P99 and CPU share; per edge:
    both sides' medians."""
    for i, t in enumerate(day.times):
        services = {}
        for name, series in day.services.items():
            fig = ServiceFigures(
                rate=_num(series["rate"][i]) if "rate" in series else None,
                latency_p99=_num(series["latency_p99"][i]) if "latency_p99" in series else None,
                cpu=_num(series["cpu"][i]) if "cpu" in series else None,
            )
            if fig != ServiceFigures():
                services[name] = fig
        edges = {}
        for key, series in day.edges.items():
            e = EdgeFigures(
                client_p50=_num(series["client_p50"][i]) if "client_p50" in series else None,
                server_p50=_num(series["server_p50"][i]) if "server_p50" in series else None,
            )
            if e != EdgeFigures():
                edges[key] = e
        success = _num(day.entry["success"][i])
        front = services.get(entry_service)
        yield Window(
            time=float(t),
            seconds=day.step,
            rate=front.rate if front is not None and front.rate else None,
            p50=_num(day.entry["p50"][i]),
            p99=_num(day.entry["p99"][i]),
            success=min(success, 1.0) if success is not None else None,
            services=services,
            edges=edges,
        )


__all__ = ["EdgeFigures", "ServiceFigures", "Window", "windows_from_nezha"]
