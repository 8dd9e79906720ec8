"""The tidy span table every trace format becomes: its columns, the per-read report of
problems, and the id, pod-name and attribute helpers all readers share."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.calibrate.mask import Masker

COLUMNS = [
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "instance",
    "operation",
    "kind",
    "start",
    "end",
    "error",
    "attributes",
]

Row = tuple[str, str, str, str, str, str, str, float, float, bool, str]

SKEW_TOLERANCE = 0.001
"""Seconds a remote child may start before its parent before we call it clock skew."""

_KINDS = {
    0: "",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
    "SPAN_KIND_UNSPECIFIED": "",
    "SPAN_KIND_INTERNAL": "internal",
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
}

_POD = re.compile(r"^(?P<svc>.+?)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_STATEFUL = re.compile(r"^(?P<svc>.+)-\d+$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass
class ReadReport:
    """What reading found: counts of spans and of every problem, with one line per file."""

    files: list[str] = field(default_factory=list)
    spans: int = 0
    traces: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    partial_traces: int = 0
    notes: list[str] = field(default_factory=list)
    masked: int = 0
    skipped_nonfinite: int = 0
    skipped_outlier_time: int = 0
    time_fences: tuple[float, float] | None = None

    def add(self, problem: str, n: int = 1) -> None:
        if n:
            self.problems[problem] += n

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "spans": self.spans,
            "traces": self.traces,
            "partial_traces": self.partial_traces,
            "problems": dict(self.problems),
            "masked_values": self.masked,
            "skipped_nonfinite": self.skipped_nonfinite,
            "skipped_outlier_time": self.skipped_outlier_time,
            "time_fences": list(self.time_fences) if self.time_fences else None,
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        out = [f"read {self.spans} spans in {self.traces} traces from {len(self.files)} file(s)"]
        for k, v in sorted(self.problems.items()):
            out.append(f"  {k}: {v}")
        if self.skipped_nonfinite:
            out.append(
                f"  spans with a time that is not a finite number (skipped): "
                f"{self.skipped_nonfinite}"
            )
        if self.skipped_outlier_time and self.time_fences:
            lo, hi = self.time_fences
            out.append(
                f"  spans far in time from the rest, outside {lo:.0f}..{hi:.0f} (skipped): "
                f"{self.skipped_outlier_time}"
            )
        if self.partial_traces:
            out.append(
                f"  {self.partial_traces} partial trace(s) (missing parents or clock skew): "
                "their call edges are kept, their timings are left out of the statistics"
            )
        out += [f"  {n}" for n in self.notes]
        return out


# -- times ------------------------------------------------------------------------------------


def seconds(value: Any, per_second: float) -> float:
    """A time or duration counted in units of ``1 / per_second`` s (1e9: nanoseconds) -> s.

    An integer (or a string of digits) is divided as an integer, so nanosecond timestamps keep
    the precision they have; NaN and infinities pass through, and a number too large for a
    float becomes infinity (both are counted and skipped with the span, never used); anything
    that is not a number raises ValueError (a malformed span).
    """
    if value is None or isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, float):
        return value / per_second
    try:
        return int(value) / per_second
    except OverflowError:
        return math.inf
    except (TypeError, ValueError):
        pass
    try:
        return float(value) / per_second
    except OverflowError:
        return math.inf
    except TypeError:
        raise ValueError(f"not a number: {value!r}") from None


# -- ids and names ----------------------------------------------------------------------------


def normalize_id(value: Any) -> str:
    """Ids as lowercase hex. OTLP/JSON writes hex; an id in base64 (protobuf's JSON mapping of
    bytes) is decoded to hex rather than read as text."""
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:x}"
    s = str(value).strip()
    if not s or _HEX.match(s):
        return s.lower()
    if len(s) in (12, 24) or s.endswith("="):
        try:
            raw = base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError):
            return s
        if len(raw) in (8, 16):
            return raw.hex()
    return s


def service_from_pod(pod: str) -> str:
    """Kubernetes pod -> workload: ``frontend-579b9bff58-t2dbm`` -> ``frontend`` (Deployment's
    pod-template hash and pod suffix), ``redis-0`` -> ``redis`` (StatefulSet ordinal)."""
    m = _POD.match(pod)
    if m:
        return m.group("svc")
    m = _STATEFUL.match(pod)
    return m.group("svc") if m else pod


def _otlp_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError, OverflowError):
            return v["intValue"]
    if "arrayValue" in v:
        return [_otlp_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return {
            kv.get("key", ""): _otlp_value(kv.get("value"))
            for kv in (v["kvlistValue"] or {}).get("values", [])
        }
    if "bytesValue" in v:
        return "{bytes}"
    return None


def _otlp_attrs(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    out: dict[str, Any] = {}
    for kv in items:
        if isinstance(kv, dict) and "key" in kv:
            out[str(kv["key"])] = _otlp_value(kv.get("value"))
    return out


def _error_from_attrs(attrs: Mapping[str, Any]) -> bool:
    err = attrs.get("error")
    if err is True or (isinstance(err, str) and err.lower() == "true"):
        return True
    for key in ("http.status_code", "http.response.status_code", "status_code"):
        code = attrs.get(key)
        try:
            if code is not None and int(code) >= 500:
                return True
        except (TypeError, ValueError, OverflowError):
            pass
    code = attrs.get("rpc.grpc.status_code")
    try:
        # gRPC codes that mean the server failed (UNKNOWN, DEADLINE, INTERNAL, UNAVAILABLE...)
        return code is not None and int(code) in (2, 4, 13, 14, 15)
    except (TypeError, ValueError, OverflowError):
        return False


def _json_attrs(masker: Masker, attrs: Mapping[str, Any]) -> str:
    if not attrs:
        return "{}"
    return json.dumps(masker.attributes(attrs), sort_keys=True, default=str)


def _row(
    masker: Masker,
    trace_id: str,
    span_id: str,
    parent_id: str,
    service: str,
    instance: str,
    operation: str,
    kind: str,
    start: float,
    end: float,
    error: bool,
    attrs: Mapping[str, Any],
) -> Row:
    return (
        trace_id,
        span_id,
        parent_id,
        service,
        instance,
        masker.text(operation),
        kind,
        start,
        end,
        error,
        _json_attrs(masker, attrs),
    )


# -- OTLP/JSON ---------------------------------------------------------------------------------
