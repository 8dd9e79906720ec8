"""OTLP/JSON, Jaeger JSON and Zipkin v2 readers (rows for :mod:`twin.calibrate.spans`).

A truncated JSON file is cut back to its last complete value; bad spans are counted and
skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twin.calibrate.asynchrony import FOLLOWS_FROM
from twin.calibrate.mask import Masker
from twin.calibrate.spans import (
    _KINDS,
    ReadReport,
    Row,
    _error_from_attrs,
    _otlp_attrs,
    _row,
    normalize_id,
    seconds,
    service_from_pod,
)
from twin.errors import InputError
from twin.safeload import loads_json


def detect_format(doc: Any) -> str | None:
    """``otlp``, ``jaeger`` or ``zipkin`` from a parsed JSON document's shape; None if unknown."""
    if isinstance(doc, dict):
        if "resourceSpans" in doc or "resource_spans" in doc:
            return "otlp"
        if isinstance(doc.get("data"), list) or ("spans" in doc and "processes" in doc):
            return "jaeger"
    if isinstance(doc, list):
        if not doc:
            return "zipkin"
        first = doc[0]
        if isinstance(first, dict) and ("traceId" in first or "localEndpoint" in first):
            return "zipkin"
        if isinstance(first, list):  # Zipkin's API returns a list of traces
            return "zipkin"
    return None


# -- JSON and truncation -----------------------------------------------------------------------


def _json_documents(text: str, path: Path, report: ReadReport) -> Iterator[Any]:
    """One JSON document, or one per line (the OTel collector's file exporter); a truncated
    document is cut back to its last complete value."""
    stripped = text.strip()
    if not stripped:
        return
    try:
        yield loads_json(stripped, str(path), "telemetry")
        return
    except ValueError:  # not JSON (json.JSONDecodeError), or a number too long to read
        pass
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    if len(lines) > 1:
        parsed: list[Any] = []
        bad = 0
        for ln in lines:
            try:
                parsed.append(loads_json(ln, str(path), "telemetry"))
            except ValueError:
                bad += 1
        if parsed and bad <= max(1, len(lines) // 10):
            if bad:
                report.add("unreadable JSON lines", bad)
            yield from parsed
            return
    repaired = repair_truncated_json(stripped)
    if repaired is None:
        raise InputError(
            "not valid JSON, and nothing complete could be recovered", source=str(path)
        )
    report.add("truncated files (read up to the last complete value)")
    report.notes.append(f"{path.name}: truncated at byte {len(text)}; read what was complete")
    yield repaired


def repair_truncated_json(text: str) -> Any | None:
    """Parse a JSON text cut off anywhere: keep every value that was complete, close the rest.

    Scans once, remembering the last place where a value inside a container had just ended
    and which containers were open there; that prefix plus the matching closers is valid JSON.
    """
    stack: list[str] = []
    in_str = False
    esc = False
    safe: tuple[int, tuple[str, ...]] | None = None
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
            safe = (i + 1, tuple(stack))  # an empty container is complete
        elif ch in "]}":
            if not stack:
                return None
            stack.pop()
            safe = (i + 1, tuple(stack))
    if safe is None:
        return None
    end, open_ = safe
    candidate = text[:end].rstrip().rstrip(",") + "".join(reversed(open_))
    try:
        return json.loads(candidate)
    except (ValueError, RecursionError):
        return None


# -- helpers -----------------------------------------------------------------------------------


def _items(value: Any, report: ReadReport) -> list[Any]:
    """``value`` when it is a list, else nothing: a wrong shape is counted, not a crash."""
    if isinstance(value, list):
        return value
    if value:
        report.add("malformed spans (skipped)")
    return []


def _read_otlp(doc: Any, masker: Masker, report: ReadReport) -> Iterator[Row]:
    for rs in _items(doc.get("resourceSpans") or doc.get("resource_spans"), report):
        if not isinstance(rs, dict):
            report.add("malformed spans (skipped)")
            continue
        resource = rs.get("resource")
        res = _otlp_attrs(resource.get("attributes") if isinstance(resource, dict) else None)
        service = str(res.get("service.name") or "")
        instance = str(
            res.get("k8s.pod.name")
            or res.get("service.instance.id")
            or res.get("host.name")
            or service
        )
        if not service and res.get("k8s.pod.name"):
            service = service_from_pod(str(res["k8s.pod.name"]))
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
        for ss in _items(scopes, report):
            for sp in _items(ss.get("spans") if isinstance(ss, dict) else ss, report):
                try:
                    attrs = _otlp_attrs(sp.get("attributes"))
                    parent = normalize_id(sp.get("parentSpanId"))
                    link = _same_trace_link(sp)
                    if not parent and link:  # a consumer hung from its producer by a link
                        parent = link
                        attrs[FOLLOWS_FROM] = True
                    status = sp.get("status") or {}
                    code = status.get("code")
                    error = code in (2, "STATUS_CODE_ERROR") or _error_from_attrs(attrs)
                    yield _row(
                        masker,
                        normalize_id(sp["traceId"]),
                        normalize_id(sp["spanId"]),
                        parent,
                        service,
                        instance,
                        str(sp.get("name", "")),
                        _KINDS.get(sp.get("kind", 0), ""),
                        seconds(sp["startTimeUnixNano"], 1e9),
                        seconds(sp["endTimeUnixNano"], 1e9),
                        bool(error),
                        attrs,
                    )
                except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                    report.add("malformed spans (skipped)")


def _same_trace_link(sp: dict[str, Any]) -> str:
    """The span id of the first OTLP link into the span's own trace ("" if none)."""
    links = sp.get("links")
    if not isinstance(links, list):
        return ""
    trace = normalize_id(sp.get("traceId"))
    for ln in links:
        if isinstance(ln, dict) and normalize_id(ln.get("traceId")) == trace:
            return normalize_id(ln.get("spanId"))
    return ""


# -- Jaeger ------------------------------------------------------------------------------------


def _jaeger_tags(tags: Any) -> dict[str, Any]:
    if isinstance(tags, dict):
        return dict(tags)
    if not isinstance(tags, list):
        return {}
    return {str(t["key"]): t.get("value") for t in tags if isinstance(t, dict) and "key" in t}


def _read_jaeger(doc: Any, masker: Masker, report: ReadReport) -> Iterator[Row]:
    traces = doc.get("data") if "data" in doc else [doc]
    if not isinstance(traces, list):
        report.add("malformed traces (skipped)")
        return
    for tr in traces:
        spans = tr.get("spans") if isinstance(tr, dict) else None
        if not isinstance(spans, list):
            report.add("malformed traces (skipped)")
            continue
        processes = tr.get("processes")
        if not isinstance(processes, dict):
            processes = {}
        for sp in spans:
            try:
                proc = sp.get("process") or processes.get(sp.get("processID")) or {}
                service = str(proc.get("serviceName") or "")
                ptags = _jaeger_tags(proc.get("tags"))
                instance = str(ptags.get("hostname") or ptags.get("ip") or service)
                parent = ""
                refs = [r for r in sp.get("references") or [] if isinstance(r, dict)]
                # the first CHILD_OF is the parent; FOLLOWS_FROM only when there is no CHILD_OF
                refs.sort(key=lambda r: r.get("refType") != "CHILD_OF")
                if refs:
                    parent = normalize_id(refs[0].get("spanID"))
                elif sp.get("parentSpanID"):
                    parent = normalize_id(sp["parentSpanID"])
                tags = _jaeger_tags(sp.get("tags"))
                if refs and refs[0].get("refType") == "FOLLOWS_FROM":
                    tags[FOLLOWS_FROM] = True
                kind = str(tags.get("span.kind") or "").lower()
                start = seconds(sp["startTime"], 1e6)
                yield _row(
                    masker,
                    normalize_id(sp.get("traceID") or tr.get("traceID")),
                    normalize_id(sp["spanID"]),
                    parent,
                    service,
                    instance,
                    str(sp.get("operationName", "")),
                    kind if kind in _KINDS.values() else "",
                    start,
                    start + seconds(sp["duration"], 1e6),
                    _error_from_attrs(tags),
                    tags,
                )
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                report.add("malformed spans (skipped)")


# -- Zipkin v2 ---------------------------------------------------------------------------------


def _read_zipkin(doc: Any, masker: Masker, report: ReadReport) -> Iterator[Row]:
    spans: list[Any] = []
    for item in doc:
        if isinstance(item, list):
            spans.extend(item)
        else:
            spans.append(item)
    for sp in spans:
        try:
            local = sp.get("localEndpoint") or {}
            service = str(local.get("serviceName") or "")
            host = local.get("ipv4") or local.get("ipv6") or ""
            instance = f"{host}:{local['port']}" if host and local.get("port") else str(host)
            tags = dict(sp.get("tags") or {})
            span_id = normalize_id(sp["id"])
            parent = normalize_id(sp.get("parentId"))
            kind = str(sp.get("kind") or "").lower()
            if sp.get("shared") and kind == "server":
                # B3 shared span: the server half reuses the client's id; give it its own and
                # hang it under the client half, as an unshared server span would be
                parent, span_id = span_id, span_id + "-server"
            start = seconds(sp["timestamp"], 1e6)
            yield _row(
                masker,
                normalize_id(sp["traceId"]),
                span_id,
                parent,
                service,
                instance or service,
                str(sp.get("name", "")),
                kind,
                start,
                start + seconds(sp.get("duration", 0), 1e6),
                "error" in tags or _error_from_attrs(tags),
                tags,
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            report.add("malformed spans (skipped)")


_PARSERS = {"otlp": _read_otlp, "jaeger": _read_jaeger, "zipkin": _read_zipkin}
