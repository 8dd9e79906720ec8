"""What the API accepts and answers, as pydantic models: the OpenAPI document is generated
from them, so the fuzzer, the clients and the server read one contract.

Documents the twin owns are strict (``extra="forbid"``: a misspelt field is an error, not
silently dropped). OTLP requests are the exception: the OTLP/JSON specification tells
receivers to ignore fields they do not know, so a newer collector keeps working.
Units: seconds; probabilities in [0, 1]; times are ISO 8601 text (OTLP: Unix nanoseconds).
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin.faults import FAULT_KINDS
from twin.incidents import classify, parse_duration

Text = Annotated[str, Field(max_length=500)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Scalar = str | int | float | bool | None


def utc_instant(value: str) -> str:
    """An ISO 8601 date or time as the UTC instant, ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; a time
    without a zone is taken as UTC. ValueError for anything else."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected an ISO 8601 time, e.g. 2024-10-27T10:00:00Z")
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time, e.g. 2024-10-27T10:00:00Z, got {value!r}"
        ) from None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.replace(tzinfo=None).isoformat() + "Z"


Instant = Annotated[
    str, Field(max_length=40, json_schema_extra={"format": "date-time"})
]  # checked by utc_instant where it is stored


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Open(BaseModel):
    """OTLP messages: unknown fields are ignored, as the OTLP/JSON specification asks."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# -- chaos results ------------------------------------------------------------------------------


class ChaosRecordIn(_Strict):
    """The plain failure-injection record. Chaos Toolkit journals, Litmus ``ChaosResult``
    objects and Chaos Mesh experiments are accepted as their tools write them."""

    test_id: Annotated[str, Field(min_length=1, max_length=500, pattern=r"\S")]
    timestamp: Instant
    parameters: dict[str, Any] | None = None
    injected_faults: list[dict[str, Any]] | None = None
    expected_outcome: Annotated[str, Field(max_length=100)] | None = None
    actual_outcome: Annotated[str, Field(max_length=100)] | None = None
    failure_details: Annotated[str, Field(max_length=100_000)] | None = None

    @field_validator("timestamp")
    @classmethod
    def _time(cls, v: str) -> str:
        utc_instant(v)
        return v


CHAOS_BODY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"$ref": "#/components/schemas/ChaosRecordIn"},
        {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ChaosRecordIn"},
            "maxItems": 1000,
        },
        {
            "type": "object",
            "description": "A Chaos Toolkit journal, a Litmus ChaosResult or a Chaos Mesh "
            "experiment, as the tool writes it.",
        },
    ]
}
"""The chaos-results request body: one plain record, a list of them, or a tool's document."""


# -- simulations ---------------------------------------------------------------------------------


class SimEvent(_Strict):
    """One event of a discrete-event simulation: when (seconds since its start), what, where."""

    time: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    kind: Name
    target: Text | None = None
    attributes: dict[str, Scalar] = Field(default_factory=dict)


class SimSeries(_Strict):
    """One time series: ``points`` are ``[time_seconds, value]`` pairs in time order."""

    name: Name
    unit: Annotated[str, Field(max_length=50)] | None = None
    labels: dict[str, Annotated[str, Field(max_length=200)]] = Field(default_factory=dict)
    points: list[tuple[float, float]] = Field(default_factory=list, max_length=1_000_000)

    @model_validator(mode="after")
    def _ordered(self) -> SimSeries:
        times = [t for t, _ in self.points]
        if any(not math.isfinite(t) or not math.isfinite(v) for t, v in self.points):
            raise ValueError("points must be finite numbers")
        if any(b < a for a, b in itertools.pairwise(times)):
            raise ValueError("points must be in time order")
        return self


class SimulationIn(_Strict):
    """A simulation run from any tool (SimPy, Ciw, the twin itself): the parameters it ran
    with, its events, its time series, and metadata; ``summary`` holds a summary such as
    the twin's ``summary.json``."""

    name: Name
    tool: Annotated[str, Field(min_length=1, max_length=100)] = "unknown"
    parameters: dict[str, Any] = Field(default_factory=dict)
    events: list[SimEvent] = Field(default_factory=list, max_length=1_000_000)
    series: list[SimSeries] = Field(default_factory=list, max_length=10_000)
    summary: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


# -- incidents ------------------------------------------------------------------------------------


class IncidentIn(_Strict):
    """One incident, in the columns ``twin risk --history`` reads: when, which service, the
    fault kind (or a symptom the twin classifies), and optionally how long (``duration``:
    seconds or text such as ``15m``; or ``duration_minutes``) and how strong."""

    time: Instant
    service: Annotated[str, Field(min_length=1, max_length=500)]
    fault_kind: Literal[FAULT_KINDS] | None = None  # type: ignore[valid-type]
    symptom: Annotated[str, Field(max_length=10_000)] | None = None
    cause: Annotated[str, Field(max_length=10_000)] | None = None
    duration: Annotated[str, Field(max_length=50)] | Annotated[float, Field(ge=0)] | None = None
    duration_minutes: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    intensity: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        utc_instant(v)
        return v

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: str | float | None) -> str | float | None:
        secs = parse_duration(v)
        if secs is not None and (secs < 0 or not math.isfinite(secs)):
            raise ValueError("expected a duration >= 0")
        return v

    @model_validator(mode="after")
    def _kind(self) -> IncidentIn:
        if self.fault_kind is None:
            if not self.symptom:
                raise ValueError("give fault_kind, or a symptom to classify")
            if classify(f"{self.symptom} {self.cause or ''}") is None:
                raise ValueError(
                    f"cannot tell the fault kind from the symptom {self.symptom[:80]!r}: "
                    "give fault_kind"
                )
        return self

    def kind(self) -> str:
        """The fault kind: as given, or classified from the symptom and cause."""
        return self.fault_kind or classify(f"{self.symptom} {self.cause or ''}") or ""

    def seconds(self) -> float | None:
        """The duration in seconds, if one was given."""
        if self.duration_minutes is not None:
            return self.duration_minutes * 60.0
        return parse_duration(self.duration)


class IncidentsIn(_Strict):
    """Incidents to store: the ``{"incidents": [...]}`` file shape of ``twin risk
    --history``."""

    incidents: list[IncidentIn] = Field(min_length=1, max_length=10_000)


# -- OTLP/JSON ------------------------------------------------------------------------------------

TraceId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{32}$",
        description="16 bytes as 32 hex digits (OTLP/JSON writes ids as hex, not base64)",
    ),
]
SpanId = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{16}$", description="8 bytes as 16 hex digits")]
Nanos = Annotated[
    str | Annotated[int, Field(ge=0)],
    Field(description="Unix time in nanoseconds (a decimal string, as OTLP/JSON writes 64-bit)"),
]


def _nanos(v: str | int) -> str | int:
    if isinstance(v, str) and not v.isdigit():
        raise ValueError("expected Unix nanoseconds as decimal digits")
    if int(v) >= 2**64:
        raise ValueError("expected Unix nanoseconds below 2^64")
    return v


class KeyValue(_Open):
    """An OTLP attribute; ``value`` is an AnyValue (``stringValue``, ``intValue``...)."""

    key: Annotated[str, Field(max_length=1000)]
    value: dict[str, Any] | None = None


class Resource(_Open):
    attributes: list[KeyValue] = Field(default_factory=list)


class Scope(_Open):
    name: Annotated[str, Field(max_length=1000)] = ""
    version: Annotated[str, Field(max_length=200)] = ""


class Span(_Open):
    """One OTLP span; ids are hex text, and an id that is not hex is refused rather than
    decoded as base64 (the mistake protobuf's JSON mapping makes)."""

    traceId: TraceId  # noqa: N815 - OTLP's own field names
    spanId: SpanId  # noqa: N815
    parentSpanId: SpanId | Literal[""] = ""  # noqa: N815
    name: Annotated[str, Field(max_length=1000)]
    kind: Annotated[int, Field(ge=0, le=5)] | Annotated[str, Field(max_length=40)] = 0
    startTimeUnixNano: Nanos  # noqa: N815
    endTimeUnixNano: Nanos  # noqa: N815
    attributes: list[KeyValue] = Field(default_factory=list)
    status: dict[str, Any] | None = None

    _start = field_validator("startTimeUnixNano")(_nanos)
    _end = field_validator("endTimeUnixNano")(_nanos)


class ScopeSpans(_Open):
    scope: Scope | None = None
    spans: list[Span] = Field(default_factory=list)


class ResourceSpans(_Open):
    resource: Resource | None = None
    scopeSpans: list[ScopeSpans] = Field(default_factory=list)  # noqa: N815


class ExportTraceServiceRequest(_Open):
    """The OTLP/HTTP traces request (``POST /v1/traces`` of a collector), JSON encoding."""

    resourceSpans: list[ResourceSpans] = Field(default_factory=list)  # noqa: N815

    def items(self) -> int:
        return sum(len(ss.spans) for rs in self.resourceSpans for ss in rs.scopeSpans)


class DataPoints(_Open):
    """A gauge, sum, histogram, exponential histogram or summary: its data points."""

    dataPoints: list[dict[str, Any]] = Field(default_factory=list)  # noqa: N815


class Metric(_Open):
    """One OTLP metric with exactly one of its data kinds."""

    name: Annotated[str, Field(min_length=1, max_length=1000)]
    unit: Annotated[str, Field(max_length=200)] = ""
    gauge: DataPoints | None = None
    sum: DataPoints | None = None
    histogram: DataPoints | None = None
    exponentialHistogram: DataPoints | None = None  # noqa: N815
    summary: DataPoints | None = None

    def points(self) -> int:
        kinds = (self.gauge, self.sum, self.histogram, self.exponentialHistogram, self.summary)
        return sum(len(k.dataPoints) for k in kinds if k is not None)


class ScopeMetrics(_Open):
    scope: Scope | None = None
    metrics: list[Metric] = Field(default_factory=list)


class ResourceMetrics(_Open):
    resource: Resource | None = None
    scopeMetrics: list[ScopeMetrics] = Field(default_factory=list)  # noqa: N815


class ExportMetricsServiceRequest(_Open):
    """The OTLP/HTTP metrics request (``POST /v1/metrics`` of a collector), JSON encoding."""

    resourceMetrics: list[ResourceMetrics] = Field(default_factory=list)  # noqa: N815

    def items(self) -> int:
        return sum(
            m.points() for rm in self.resourceMetrics for sm in rm.scopeMetrics for m in sm.metrics
        )


class PartialSuccess(BaseModel):
    """OTLP's partial success: what was rejected and why (empty when all was accepted)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rejectedSpans: int | None = None  # noqa: N815
    rejectedDataPoints: int | None = None  # noqa: N815
    errorMessage: str | None = None  # noqa: N815


class ExportResponse(BaseModel):
    """The OTLP export response; whether the batch was new is in the ``Twin-Stored``
    header, since collectors read only OTLP's own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    partialSuccess: PartialSuccess | None = None  # noqa: N815


# -- answers -------------------------------------------------------------------------------------


class Stored(BaseModel):
    """What happened to one record: ``created``, ``already_existed`` (the same content was
    there), or ``updated`` (a chaos result with the same identity and new content)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key: str
    status: Literal["created", "already_existed", "updated"]


class IngestAnswer(BaseModel):
    """The answer to a write: per record what happened, the totals, the stored body's hash,
    and whether this is a replay of an earlier answer for the same ``Idempotency-Key``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    created: int
    already_existed: int
    updated: int
    records: list[Stored]
    document: str
    replayed: bool = False


class Problem(BaseModel):
    """An RFC 9457 problem: ``type`` (a URI naming the kind), ``title``, ``status``,
    ``detail`` (one line), and for a schema error ``errors`` with each field's path."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None


class Page(BaseModel):
    """One page of a list: ``items`` and the ``cursor`` of the next page (null on the last)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    items: list[dict[str, Any]]
    next_cursor: int | None


class IncidentPage(BaseModel):
    """One page of incidents, readable as it is by ``twin risk --history``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    incidents: list[dict[str, Any]]
    next_cursor: int | None


class Health(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: Literal["ok"]
    database: str
