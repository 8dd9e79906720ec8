"""Chaos results from the tools that produce them, normalised to one record shape: the
plain failure-injection JSON and Chaos Toolkit journals."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from twin.errors import InputError
from twin.faults import by_chaos_rank
from twin.io import DocProblem, _located
from twin.safeload import loads_json, read_text

_CHAOS_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (c.name, c.chaos_words) for c in by_chaos_rank()
)


def chaos_kind(name: str) -> str | None:
    """The twin fault kind a chaos tool's fault or action name most likely injected."""
    text = name.lower()
    for kind, words in _CHAOS_KINDS:
        if any(w in text for w in words):
            return kind
    return None


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record(
    fmt: str,
    test_id: str,
    started: str,
    parameters: Any,
    faults: list[Any],
    expected: str | None,
    actual: str | None,
    passed: bool,
    details: str | None,
    source: str,
    original: Any,
) -> dict[str, Any]:
    kinds = sorted(
        {k for f in faults if (k := chaos_kind(str(f.get("type") or f.get("name") or "")))}
    )
    return {
        "format": fmt,
        "test_id": test_id,
        "started_at": started,
        "parameters": parameters or {},
        "faults": faults,
        "fault_kinds": kinds,
        "expected_outcome": expected,
        "actual_outcome": actual,
        "passed": passed,
        "details": details,
        "content_hash": _hash(original),
        "source": source,
    }


def _timestamp(value: Any, loc: tuple[str | int, ...]) -> str:
    """The timestamp as given, once it is known to be ISO 8601 (``Z`` allowed)."""
    if not isinstance(value, str) or not value:
        raise DocProblem(loc, "expected an ISO 8601 timestamp string, e.g. 2024-10-27T10:00:00Z")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DocProblem(
            loc, f"expected an ISO 8601 timestamp, e.g. 2024-10-27T10:00:00Z, got {value!r}"
        ) from None
    return value


def _parse_plain(doc: dict[str, Any], where: str, at: tuple[int, ...] = ()) -> dict[str, Any]:
    if not doc.get("timestamp"):
        raise DocProblem((*at, "timestamp"), "required field is missing")
    if not isinstance(doc["test_id"], str) or not doc["test_id"].strip():
        raise DocProblem((*at, "test_id"), "expected a non-empty string")
    started = _timestamp(doc["timestamp"], (*at, "timestamp"))
    faults = doc.get("injected_faults") or []
    if not isinstance(faults, list):
        raise DocProblem((*at, "injected_faults"), "expected a list of objects")
    for i, f in enumerate(faults):
        if not isinstance(f, dict):
            raise DocProblem((*at, "injected_faults", i), "expected an object")
    params = doc.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise DocProblem((*at, "parameters"), "expected an object")
    expected = doc.get("expected_outcome")
    actual = doc.get("actual_outcome")
    return _record(
        "chaos-json",
        doc["test_id"],
        started,
        doc.get("parameters"),
        faults,
        None if expected is None else str(expected),
        None if actual is None else str(actual),
        expected is None or actual == expected,
        doc.get("failure_details"),
        where,
        doc,
    )


def _parse_journal(doc: dict[str, Any], where: str, at: tuple[int, ...] = ()) -> dict[str, Any]:
    """A Chaos Toolkit journal: the experiment's actions are the faults; it passed when it
    completed without the steady state deviating."""
    exp = doc.get("experiment") or {}
    if not doc.get("start"):
        raise DocProblem((*at, "start"), "required field is missing (Chaos Toolkit journal)")
    start = _timestamp(doc["start"], (*at, "start"))
    if not isinstance(exp, dict):
        raise DocProblem((*at, "experiment"), "expected an object")
    if not isinstance(doc.get("run") or [], list):
        raise DocProblem((*at, "run"), "expected a list of activity results")
    faults = []
    for item in doc.get("run") or []:
        act = item.get("activity") or {}
        if act.get("type") != "action":
            continue
        prov = act.get("provider") or {}
        faults.append(
            {
                "type": act.get("name") or prov.get("func") or "action",
                "provider": prov.get("func") or prov.get("path") or prov.get("url"),
                "arguments": prov.get("arguments") or {},
                "duration": item.get("duration"),
                "status": item.get("status"),
            }
        )
    status = str(doc.get("status") or "unknown")
    deviated = bool(doc.get("deviated"))
    passed = status == "completed" and not deviated
    problems = []
    for phase, state in (doc.get("steady_states") or {}).items():
        if isinstance(state, dict) and state.get("steady_state_met") is False:
            bad = [
                (p.get("activity") or {}).get("name", "?")
                for p in state.get("probes") or []
                if p.get("tolerance_met") is False
            ]
            problems.append(f"steady state not met {phase}: {', '.join(bad) or '?'}")
    details = "; ".join([f"status {status}", *problems]) if not passed else None
    return _record(
        "chaostoolkit",
        str(exp.get("title") or "untitled experiment"),
        start,
        {k: v for k, v in (exp.get("configuration") or {}).items() if "secret" not in k.lower()},
        faults,
        "steady state holds",
        "deviated" if deviated else status,
        passed,
        details,
        where,
        {k: v for k, v in doc.items() if k not in ("node", "platform")},
    )


def parse_chaos(
    data: Any, source: str = "<chaos result>", text: str | None = None
) -> list[dict[str, Any]]:
    """Normalise chaos results: the plain JSON shape (``test_id``, ``timestamp``,
    ``injected_faults``, ``expected_outcome``, ``actual_outcome``...), a list of them, or a
    Chaos Toolkit journal (recognised by ``chaoslib-version`` / ``experiment``). A problem is
    one :class:`InputError` naming ``source:line`` (when ``text`` is given) and the path."""
    docs = data if isinstance(data, list) else [data]
    out = []
    try:
        for i, doc in enumerate(docs):
            at: tuple[int, ...] = (i,) if isinstance(data, list) else ()
            if not isinstance(doc, dict):
                raise DocProblem(at, "expected a JSON object")
            if "chaoslib-version" in doc or ("experiment" in doc and "run" in doc):
                out.append(_parse_journal(doc, source, at))
            elif "test_id" in doc:
                out.append(_parse_plain(doc, source, at))
            else:
                raise DocProblem(
                    at, "not a chaos result: expected test_id/timestamp or a Chaos Toolkit journal"
                )
    except DocProblem as exc:
        raise _located(exc.loc, exc.message, source, text) from None
    return out


def parse_chaos_file(path: Path) -> list[dict[str, Any]]:
    """Read and normalise one chaos result file (JSON)."""
    text = read_text(path, "telemetry")
    try:
        data = loads_json(text, str(path), "telemetry")
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from None
    return parse_chaos(data, str(path), text)
