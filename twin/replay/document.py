"""The one document every format becomes: observed windows and the faults injected among them.

An adapter (:mod:`.nezha`, :mod:`.petshop`, :mod:`.generic`) reads its files into
:class:`Observed`; everything after (which windows are fault-free, the twin's runs, the
scoring) works on this document alone, so a new format is one reader and one fault mapping.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from twin.bounds import MAX_DIST_VALUE, MAX_FACTOR, MAX_RATE, MAX_SECONDS, Finite, Probability

MAX_UNIX_SECONDS = 1e11
"""Latest time a window or a fault may name (Unix seconds; about the year 5000)."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figures(_Doc):
    """What one service (or the entry) showed over a window; None where not measured."""

    rate: Finite | None = Field(default=None, ge=0, le=MAX_RATE, description="requests per second")
    mean: Finite | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="mean latency, seconds"
    )
    p50: Finite | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="median latency, seconds"
    )
    p99: Finite | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="99th percentile, seconds"
    )
    success: Probability | None = Field(
        default=None, description="share of requests that succeeded"
    )
    cpu: Finite | None = Field(
        default=None,
        ge=0,
        le=MAX_FACTOR,
        description="CPU used, as a share of the CPU limit (1: at the limit; a container's "
        "accounting can read slightly above)",
    )


class Window(Figures):
    """One observed window, ``[time - seconds, time)``: the entry's figures (or those of
    :attr:`Observed.observed`), and per service where the format has them."""

    time: Finite = Field(ge=0, le=MAX_UNIX_SECONDS, description="end of the window, Unix seconds")
    seconds: Finite = Field(gt=0, le=MAX_SECONDS, description="length of the window, seconds")
    segment: str = Field(
        default="",
        description="the capture the window belongs to: windows of different captures are "
        "never joined into one block, and a fault is matched only with its own capture's",
    )
    services: dict[str, Figures] = Field(default_factory=dict, description="per service")
    mean_estimate: Finite | None = Field(
        default=None,
        ge=0,
        le=MAX_SECONDS,
        description="the entry's mean latency (seconds) estimated from published quantiles "
        "where the data give no mean: read by the workload fit and the closed loop's load, "
        "never scored",
    )


class Fault(_Doc):
    """One injected fault as the data describe it, and the twin fault it maps to (if any)."""

    start: Finite = Field(ge=0, le=MAX_UNIX_SECONDS, description="Unix seconds")
    end: Finite = Field(ge=0, le=MAX_UNIX_SECONDS, description="Unix seconds (after start)")
    target: str = Field(description="the service (or 'a->b' edge) the fault was injected at")
    type: str = Field(description="the fault's type in the data's own words")
    label: str = Field(description="how tables name this fault")
    segment: str = Field(default="", description="the capture its windows are in")
    kind: str | None = Field(default=None, description="twin fault kind, when the data name one")
    magnitude: Finite | None = Field(
        default=None,
        ge=-MAX_DIST_VALUE,
        le=MAX_DIST_VALUE,
        description="the fault's intensity in the kind's unit, when published",
    )
    baseline: Figures | None = Field(
        default=None,
        description="the target service's own figures (request rate, CPU use) over the "
        "recording's fault-free minutes, where the data have them: a mapping expresses the "
        "fault through the service it hit (never through the fault's own minutes)",
    )
    detail: dict[str, str] = Field(
        default_factory=dict, description="format-specific facts the mapping needs"
    )


class Observed(_Doc):
    """A replayable dataset: windows, faults, and how to read them."""

    format: str
    observed: str | None = Field(
        default=None,
        description="the service whose figures the windows hold (None: every entry pooled)",
    )
    windows: list[Window]
    faults: list[Fault]
    block_seconds: Finite = Field(
        default=1800.0,
        gt=0,
        le=MAX_SECONDS,
        description="fault-free windows are compared in blocks this long",
    )
    twin_seconds: Finite = Field(
        default=600.0,
        gt=0,
        le=MAX_SECONDS,
        description="simulated seconds of a fault-free block's run",
    )
    files: list[str] = Field(default_factory=list, description="what was read")
    notes: list[str] = Field(default_factory=list, description="what the reader had to say")
