"""The normalised chaos-result record every format is turned into, and the small functions the
format parsers share: typed field access with located problems, the fault-kind lookup and
the content hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from twin.faults import by_chaos_rank
from twin.io import DocProblem
from twin.safeload import Loc
from twin.store.checks import kind_of
from twin.store.schema import CHAOS_FIELDS

_CHAOS_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (c.name, c.chaos_words) for c in by_chaos_rank()
)


def chaos_kind(name: str) -> str | None:
    """The twin fault kind a chaos tool's fault or action name most likely injected."""
    lowered = name.lower()
    for kind, words in _CHAOS_KINDS:
        if any(w in lowered for w in words):
            return kind
    return None


def content_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the fields that make a result what it is (:data:`CHAOS_FIELDS`), keys
    sorted: the same result in another key order or timestamp form hashes the same. (Rows
    stored before the finite-JSON check may hold a NaN; they still hash.)"""
    data = {k: record.get(k) for k in CHAOS_FIELDS}
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def get(
    doc: dict[str, Any],
    key: str,
    at: Loc,
    types: type | tuple[type, ...],
    expected: str,
    *,
    required: bool = False,
) -> Any:
    """``doc[key]`` when it has one of ``types``; missing or null gives ``None`` (or a problem
    when ``required``); a value of another type is a located problem saying what was
    expected. ``True`` is not a number here, though Python says it is an int."""
    value = doc.get(key)
    if value is None:
        if required:
            raise DocProblem((*at, key), "required field is missing")
        return None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        raise DocProblem((*at, key), f"expected {expected}, got {kind_of(value)}")
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def details_text(value: Any) -> str | None:
    """Free-text details as given; an object, list or number becomes its compact JSON text,
    so a tool that reports structured failure details loses nothing."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record(
    *,
    fmt: str,
    test_id: str,
    started: str,
    parameters: dict[str, Any],
    faults: list[dict[str, Any]],
    expected: str | None,
    actual: str | None,
    passed: bool | None,
    details: str | None,
    source: str,
    document: Any,
) -> dict[str, Any]:
    """One normalised chaos result: the row :meth:`twin.store.Store.ingest` writes."""
    kinds = sorted({k for f in faults if (k := chaos_kind(str(f.get("type") or "")))})
    out = {
        "format": fmt,
        "test_id": test_id,
        "started_at": started,
        "parameters": parameters,
        "faults": faults,
        "fault_kinds": kinds,
        "expected_outcome": expected,
        "actual_outcome": actual,
        "passed": passed,
        "details": details,
        "source": source,
        "document": document,
    }
    out["content_hash"] = content_hash(out)
    return out
