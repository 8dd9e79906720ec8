"""Chaos results from the tools that produce them, normalised to one record shape.

Four formats, each recognised by its own marks:

=================  ==========================================================================
format             recognised by
=================  ==========================================================================
``chaos-json``     ``test_id`` and ``timestamp`` (the plain failure-injection JSON)
``chaostoolkit``   ``chaoslib-version``, or ``experiment`` with ``run`` (a journal)
``litmus``         ``apiVersion: litmuschaos.io/...``, ``kind: ChaosResult``
``chaos-mesh``     ``apiVersion: chaos-mesh.org/...`` and an experiment kind (``PodChaos``...)
=================  ==========================================================================

A file may hold one result, a list of them, or a Kubernetes ``List`` (``kubectl get ... -o
json``). Every record carries the identity ``(format, test_id, started_at)`` with the start
as a normalised UTC instant, the faults with the twin's fault kinds (:func:`chaos_kind`), the
verdict (``passed``: true, false, or empty when the tool gives none), and the document as the
tool wrote it. Everything is checked before the store sees it (:mod:`twin.store.checks`), so a
problem is one :class:`~twin.errors.InputError` naming ``file:line: path`` whatever the
backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twin.errors import InputError
from twin.io import DocProblem, _located
from twin.safeload import Loc, loads_json, read_text
from twin.store import kube
from twin.store.checks import check_json, kind_of, outcome, utc_instant
from twin.store.checks import text as bounded_text
from twin.store.records import details_text, get, record
from twin.store.schema import OUTCOME_CHARS, TEST_ID_CHARS


def _parse_plain(doc: dict[str, Any], where: str, at: Loc = ()) -> dict[str, Any]:
    test_id = bounded_text(doc.get("test_id"), (*at, "test_id"), TEST_ID_CHARS)
    if doc.get("timestamp") is None:
        raise DocProblem((*at, "timestamp"), "required field is missing")
    started = utc_instant(doc["timestamp"], (*at, "timestamp"))
    faults = get(doc, "injected_faults", at, list, "a list of objects") or []
    for i, f in enumerate(faults):
        if not isinstance(f, dict):
            raise DocProblem((*at, "injected_faults", i), f"expected an object, got {kind_of(f)}")
        name = f.get("type", f.get("name"))
        if name is not None and not isinstance(name, str):
            key = "type" if "type" in f else "name"
            raise DocProblem((*at, "injected_faults", i, key), "expected a string")
    params = get(doc, "parameters", at, dict, "an object") or {}
    expected = outcome(doc.get("expected_outcome"), (*at, "expected_outcome"), OUTCOME_CHARS)
    actual = outcome(doc.get("actual_outcome"), (*at, "actual_outcome"), OUTCOME_CHARS)
    return record(
        fmt="chaos-json",
        test_id=test_id,
        started=started,
        parameters=params,
        faults=faults,
        expected=expected,
        actual=actual,
        passed=expected is None or actual == expected,
        details=details_text(doc.get("failure_details")),
        source=where,
        document=doc,
    )


def _parse_journal(doc: dict[str, Any], where: str, at: Loc = ()) -> dict[str, Any]:
    """A Chaos Toolkit journal: the experiment's actions are the faults; it passed when it
    completed without the steady state deviating."""
    start = utc_instant(get(doc, "start", at, str, "a timestamp", required=True), (*at, "start"))
    exp = get(doc, "experiment", at, dict, "an object") or {}
    title = get(exp, "title", (*at, "experiment"), str, "a string") or "untitled experiment"
    test_id = bounded_text(title, (*at, "experiment", "title"), TEST_ID_CHARS)
    faults = []
    for i, item in enumerate(get(doc, "run", at, list, "a list of activity results") or []):
        loc = (*at, "run", i)
        if not isinstance(item, dict):
            raise DocProblem(loc, f"expected an activity result object, got {kind_of(item)}")
        act = get(item, "activity", loc, dict, "an object") or {}
        if act.get("type") != "action":
            continue
        prov = get(act, "provider", (*loc, "activity"), dict, "an object") or {}
        name = act.get("name") or prov.get("func") or "action"
        if not isinstance(name, str):
            raise DocProblem((*loc, "activity", "name"), f"expected a string, got {kind_of(name)}")
        faults.append(
            {
                "type": name,
                "provider": prov.get("func") or prov.get("path") or prov.get("url"),
                "arguments": prov.get("arguments") or {},
                "duration": item.get("duration"),
                "status": item.get("status"),
            }
        )
    status = str(get(doc, "status", at, str, "a string") or "unknown")
    deviated = bool(get(doc, "deviated", at, bool, "true or false"))
    passed = status == "completed" and not deviated
    problems = []
    states = get(doc, "steady_states", at, dict, "an object") or {}
    for phase, state in states.items():
        loc = (*at, "steady_states", phase)
        if not isinstance(state, dict) or state.get("steady_state_met") is not False:
            continue
        bad = []
        for j, probe in enumerate(get(state, "probes", loc, list, "a list") or []):
            if not isinstance(probe, dict):
                raise DocProblem((*loc, "probes", j), f"expected an object, got {kind_of(probe)}")
            if probe.get("tolerance_met") is False:
                act = get(probe, "activity", (*loc, "probes", j), dict, "an object") or {}
                bad.append(str(act.get("name", "?")))
        problems.append(f"steady state not met {phase}: {', '.join(bad) or '?'}")
    details = "; ".join([f"status {status}", *problems]) if not passed else None
    config = get(exp, "configuration", (*at, "experiment"), dict, "an object") or {}
    return record(
        fmt="chaostoolkit",
        test_id=test_id,
        started=start,
        parameters={k: v for k, v in config.items() if "secret" not in k.lower()},
        faults=faults,
        expected="steady state holds",
        actual="deviated" if deviated else outcome(status, (*at, "status"), OUTCOME_CHARS),
        passed=passed,
        details=details,
        source=where,
        document=_without_secrets(doc),
    )


def _without_secrets(doc: dict[str, Any]) -> dict[str, Any]:
    """The journal as written, less where it ran and its secrets (the experiment's
    ``secrets`` block and configuration keys that name a secret)."""
    out = {k: v for k, v in doc.items() if k not in ("node", "platform")}
    exp = out.get("experiment")
    if isinstance(exp, dict):
        exp = {k: v for k, v in exp.items() if k != "secrets"}
        if isinstance(exp.get("configuration"), dict):
            config = exp["configuration"]
            exp["configuration"] = {k: v for k, v in config.items() if "secret" not in k.lower()}
        out["experiment"] = exp
    return out


def _items(data: Any) -> tuple[list[Any], Loc]:
    """The documents in a file: a list, a Kubernetes ``List`` (``items``), or one object."""
    if isinstance(data, list):
        return data, ()
    if (
        isinstance(data, dict)
        and isinstance(data.get("kind"), str)
        and data["kind"].endswith("List")
        and isinstance(data.get("items"), list)
    ):
        return data["items"], ("items",)
    return [data], ()


def parse_chaos(
    data: Any, source: str = "<chaos result>", text: str | None = None
) -> list[dict[str, Any]]:
    """Normalise chaos results (see the module's table of formats). A problem is one
    :class:`InputError` naming ``source:line`` (when ``text`` is given) and the path."""
    docs, prefix = _items(data)
    many = isinstance(data, list) or bool(prefix)
    out = []
    try:
        for i, doc in enumerate(docs):
            at: Loc = (*prefix, i) if many else ()
            if not isinstance(doc, dict):
                raise DocProblem(at, f"expected a JSON object, got {kind_of(doc)}")
            check_json(doc, at)
            if kube.is_kubernetes(doc):
                out.append(kube.parse_object(doc, source, at))
            elif "chaoslib-version" in doc or ("experiment" in doc and "run" in doc):
                out.append(_parse_journal(doc, source, at))
            elif "test_id" in doc:
                out.append(_parse_plain(doc, source, at))
            else:
                raise DocProblem(
                    at,
                    "not a chaos result: expected test_id/timestamp, a Chaos Toolkit journal, "
                    "a Litmus ChaosResult or a Chaos Mesh experiment",
                )
    except DocProblem as exc:
        raise _located(exc.loc, exc.message, source, text) from None
    return out


def parse_chaos_file(path: Path) -> list[dict[str, Any]]:
    """Read and normalise one chaos result file (JSON)."""
    body = read_text(path, "telemetry")
    try:
        data = loads_json(body, str(path), "telemetry")
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from None
    return parse_chaos(data, str(path), body)
