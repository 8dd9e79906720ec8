"""Chaos results kept as Kubernetes objects: Litmus ``ChaosResult`` and Chaos Mesh experiments.

Both are read as ``kubectl get ... -o json`` prints them (one object, or a ``List``).

**Litmus** (``litmuschaos.io/v1alpha1``, kind ``ChaosResult``). One object per engine and
experiment: ``spec.engine``/``spec.experiment``; ``status.experimentStatus`` with ``phase``
(Running, Completed, Stopped), ``verdict`` (Pass, Fail, Stopped, Awaited), the failed step
(``failStep``, or ``failureOutput.failedStep`` and ``errorCode`` in later versions) and
``probeSuccessPercentage``; ``status.probeStatuses`` (``probeStatus`` in earlier versions);
``status.history`` with cumulative ``passedRuns``/``failedRuns``/``stoppedRuns`` and the
``targets``. The identity is the object (``namespace/ChaosResult/name``) and its
``metadata.creationTimestamp``: a later snapshot of the same object updates its row, and the
stored document keeps the cumulative history. ``Pass`` is passed, ``Fail`` failed; ``Awaited``
and ``Stopped`` give no verdict. The fault is the experiment's name (``pod-delete``,
``pod-network-latency``...).

**Chaos Mesh** (``chaos-mesh.org/v1alpha1``, kinds ending in ``Chaos``: ``PodChaos``,
``NetworkChaos``, ``StressChaos``, ``IOChaos``, ``HTTPChaos``...). The spec says what is
injected (``action`` and its settings); ``status.conditions`` (``Selected``, ``AllInjected``,
``AllRecovered``, ``Paused``), ``status.experiment.desiredPhase`` (Run, Stop) and
``containerRecords`` (per target: ``phase``, ``injectedCount``, ``recoveredCount``, events
with failure messages) say how far the injection got. Chaos Mesh judges the injection, not
the system, so ``passed`` is empty and ``actual_outcome`` is the injection state (``injected``,
``recovered``, ``paused``, ``no target selected``...). The identity is
``namespace/Kind/name`` and ``metadata.creationTimestamp``. Faults are named so the registry's
chaos words find their kind: a PodChaos's action (``pod-kill``), ``network-<action>`` (one per
netem setting), ``stress-cpu``/``stress-memory``, ``IOChaos`` (disk), ``http-abort``/
``http-delay``, ``dns-<action>``, ``jvm-<action>``; other kinds by their ``action``. A fault no
chaos word matches is kept and left unmapped.
"""

from __future__ import annotations

from typing import Any

from twin.io import DocProblem
from twin.safeload import Loc
from twin.store.checks import kind_of, outcome, utc_instant
from twin.store.checks import text as bounded_text
from twin.store.records import details_text, get, record
from twin.store.schema import OUTCOME_CHARS, TEST_ID_CHARS

LITMUS_GROUP = "litmuschaos.io/"
CHAOS_MESH_GROUP = "chaos-mesh.org/"
_CHAOS_MESH_INTERNAL = ("PodNetworkChaos", "PodIOChaos", "PodHttpChaos")
"""Per-pod objects the Chaos Mesh controller writes for itself, not experiments."""
_MAX_MESSAGES = 5


def is_kubernetes(doc: dict[str, Any]) -> bool:
    """Whether ``doc`` is a Litmus or Chaos Mesh object (by its ``apiVersion``)."""
    api = doc.get("apiVersion")
    return isinstance(api, str) and api.startswith((LITMUS_GROUP, CHAOS_MESH_GROUP))


def parse_object(doc: dict[str, Any], source: str, at: Loc = ()) -> dict[str, Any]:
    """One Litmus ``ChaosResult`` or Chaos Mesh experiment as a normalised record."""
    api = doc["apiVersion"]
    kind = get(doc, "kind", at, str, "a Kubernetes kind", required=True)
    if api.startswith(LITMUS_GROUP):
        if kind != "ChaosResult":
            raise DocProblem(
                (*at, "kind"),
                f"a Litmus {kind} is not a result: ingest its ChaosResult "
                "(kubectl get chaosresult -o json)",
            )
        return _litmus(doc, source, at)
    if not kind.endswith("Chaos") or kind in _CHAOS_MESH_INTERNAL:
        raise DocProblem(
            (*at, "kind"),
            f"a Chaos Mesh {kind} is not an experiment: ingest the experiments it ran "
            "(PodChaos, NetworkChaos, ...)",
        )
    return _chaos_mesh(doc, kind, source, at)


def _identity(doc: dict[str, Any], kind: str, at: Loc) -> tuple[str, str]:
    """``namespace/Kind/name`` and the normalised creation instant."""
    meta = get(doc, "metadata", at, dict, "an object", required=True)
    loc = (*at, "metadata")
    name = bounded_text(meta.get("name"), (*loc, "name"), TEST_ID_CHARS)
    namespace = get(meta, "namespace", loc, str, "a string")
    test_id = f"{namespace}/{kind}/{name}" if namespace else f"{kind}/{name}"
    if len(test_id) > TEST_ID_CHARS:
        raise DocProblem(
            (*loc, "name"),
            f"namespace/{kind}/name is {len(test_id)} characters, longer than the "
            f"{TEST_ID_CHARS} allowed",
        )
    created = get(meta, "creationTimestamp", loc, str, "a timestamp", required=True)
    return test_id, utc_instant(created, (*loc, "creationTimestamp"))


def _messages(found: list[str]) -> list[str]:
    """At most a few messages, then how many more: details stay readable."""
    if len(found) <= _MAX_MESSAGES:
        return found
    return [*found[:_MAX_MESSAGES], f"and {len(found) - _MAX_MESSAGES} more"]


# -- Litmus -----------------------------------------------------------------------------------

_VERDICTS = {"pass": True, "fail": False}


def _litmus(doc: dict[str, Any], source: str, at: Loc) -> dict[str, Any]:
    test_id, created = _identity(doc, "ChaosResult", at)
    spec = get(doc, "spec", at, dict, "an object", required=True)
    sloc = (*at, "spec")
    experiment = bounded_text(spec.get("experiment"), (*sloc, "experiment"), TEST_ID_CHARS)
    engine = get(spec, "engine", sloc, str, "a string")
    status = get(doc, "status", at, dict, "an object", required=True)
    stloc = (*at, "status")
    key = "experimentStatus" if "experimentStatus" in status else "experimentstatus"
    es = get(status, key, stloc, dict, "an object", required=True)
    eloc = (*stloc, key)
    phase = outcome(get(es, "phase", eloc, str, "a string"), (*eloc, "phase"), OUTCOME_CHARS)
    verdict = get(es, "verdict", eloc, str, "a string", required=True)
    actual = outcome(verdict, (*eloc, "verdict"), OUTCOME_CHARS)
    failure = get(es, "failureOutput", eloc, dict, "an object") or {}
    step = get(es, "failStep", eloc, str, "a string") or get(
        failure, "failedStep", (*eloc, "failureOutput"), str, "a string"
    )
    code = get(failure, "errorCode", (*eloc, "failureOutput"), (str, int), "a string")
    score = get(es, "probeSuccessPercentage", eloc, (str, int, float), "a percentage")
    history = get(status, "history", stloc, dict, "an object") or {}
    hloc = (*stloc, "history")
    runs = {
        k: get(history, f"{k}Runs", hloc, int, "a whole number")
        for k in ("passed", "failed", "stopped")
    }
    targets = get(history, "targets", hloc, list, "a list") or []
    for i, t in enumerate(targets):
        if not isinstance(t, dict):
            raise DocProblem((*hloc, "targets", i), f"expected an object, got {kind_of(t)}")
    passed = _VERDICTS.get(verdict.lower())
    problems = _litmus_probes(status, stloc)
    details = None
    if passed is not True:
        details = "; ".join(
            [
                f"verdict {verdict}" + (f", phase {phase}" if phase else ""),
                *([f"failed step: {step}"] if step and step != "N/A" else []),
                *([f"error code {code}"] if code else []),
                *_messages(problems),
            ]
        )
    fault: dict[str, Any] = {"type": experiment}
    if engine:
        fault["engine"] = engine
    names = [t["name"] for t in targets if isinstance(t.get("name"), str) and t["name"]]
    if names:
        fault["target"] = names[0]
        fault["targets"] = targets
    parameters = {
        "engine": engine,
        "experiment": experiment,
        "instance": spec.get("instance"),
        "probe_success_percentage": score,
        "runs": {k: v for k, v in runs.items() if v is not None} or None,
    }
    return record(
        fmt="litmus",
        test_id=test_id,
        started=created,
        parameters={k: v for k, v in parameters.items() if v not in (None, "")},
        faults=[fault],
        expected="Pass",
        actual=actual,
        passed=passed,
        details=details,
        source=source,
        document=doc,
    )


def _litmus_probes(status: dict[str, Any], at: Loc) -> list[str]:
    """``probe <name> failed: <description>`` for every failed probe, in both the current
    (``probeStatuses[].status.verdict``) and the earlier (``probeStatus[].status`` as a map
    of phase to text) shapes."""
    key = "probeStatuses" if "probeStatuses" in status else "probeStatus"
    out = []
    for i, p in enumerate(get(status, key, at, list, "a list") or []):
        loc = (*at, key, i)
        if not isinstance(p, dict):
            raise DocProblem(loc, f"expected an object, got {kind_of(p)}")
        name = str(p.get("name") or "?")
        st = get(p, "status", loc, dict, "an object") or {}
        verdict = st.get("verdict")
        if isinstance(verdict, str):
            if verdict.lower().startswith("fail"):
                why = st.get("description")
                out.append(f"probe {name} failed" + (f": {why}" if isinstance(why, str) else ""))
        elif any(isinstance(v, str) and "fail" in v.lower() for v in st.values()):
            out.append(f"probe {name} failed")
    return out


# -- Chaos Mesh -------------------------------------------------------------------------------


def _chaos_mesh(doc: dict[str, Any], kind: str, source: str, at: Loc) -> dict[str, Any]:
    test_id, created = _identity(doc, kind, at)
    spec = get(doc, "spec", at, dict, "an object", required=True)
    faults = _mesh_faults(kind, spec, (*at, "spec"))
    target = _selector_target(spec)
    status = get(doc, "status", at, dict, "an object") or {}
    state, messages, counts = _mesh_state(status, (*at, "status"))
    for f in faults:
        f.update(counts)
        if target:
            f["target"] = target
    return record(
        fmt="chaos-mesh",
        test_id=test_id,
        started=created,
        parameters={"kind": kind, **spec},
        faults=faults,
        expected=None,
        actual=state,
        passed=None,
        details=details_text("; ".join(_messages(messages))) if messages else None,
        source=source,
        document=doc,
    )


def _action(spec: dict[str, Any], at: Loc, default: str | None = None) -> str | None:
    value = get(spec, "action", at, str, "a string")
    return value or default


def _mesh_faults(kind: str, spec: dict[str, Any], at: Loc) -> list[dict[str, Any]]:
    """The faults a Chaos Mesh spec injects, named for :func:`~twin.store.records.chaos_kind`."""
    action = _action(spec, at)
    if kind == "PodChaos":
        return [{"type": action or "pod-kill"}]
    if kind == "NetworkChaos":
        if action == "netem":  # several settings at once; a rate limit is a bandwidth cap
            named = {"delay": "delay", "loss": "loss", "duplicate": "duplicate"}
            named |= {"corrupt": "corrupt", "rate": "bandwidth"}
            return [
                {"type": f"network-{word}", "settings": spec[k]}
                for k, word in named.items()
                if spec.get(k)
            ]
        settings = spec.get(action) if action else None
        fault: dict[str, Any] = {"type": f"network-{action or 'fault'}"}
        if settings is not None:
            fault["settings"] = settings
        return [fault]
    if kind == "StressChaos":
        stressors = get(spec, "stressors", at, dict, "an object") or {}
        found = [
            {"type": f"stress-{k}", "settings": stressors[k]}
            for k in ("cpu", "memory")
            if stressors.get(k) is not None
        ]
        options = get(spec, "stressngStressors", at, str, "a string")
        if options:  # stress-ng options name their own stressors (--cpu, --vm...)
            found.append({"type": options, "stress_ng": True})
        return found
    if kind == "IOChaos":
        return [{"type": "IOChaos", "action": action}]
    if kind == "HTTPChaos":
        actions = [k for k in ("abort", "delay", "replace", "patch") if spec.get(k)]
        return [{"type": f"http-{k}", "settings": spec[k]} for k in actions]
    if kind in ("DNSChaos", "JVMChaos"):
        prefix = kind[:-5].lower()
        name = f"{prefix}-{action or 'fault'}"
        if kind == "JVMChaos" and action == "stress":
            name += "-cpu" if spec.get("cpuCount") else "-memory" if spec.get("memType") else ""
        return [{"type": name}]
    return [{"type": action or kind}]


def _selector_target(spec: dict[str, Any]) -> str | None:
    """The service a selector names, when it names one the usual Kubernetes way: the ``app``
    or ``app.kubernetes.io/name`` label, or a single pod."""
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        return None
    labels = selector.get("labelSelectors")
    if isinstance(labels, dict):
        for key in ("app", "app.kubernetes.io/name"):
            if isinstance(labels.get(key), str) and labels[key]:
                return str(labels[key])
    pods = selector.get("pods")
    if isinstance(pods, dict):
        names = [n for v in pods.values() if isinstance(v, list) for n in v]
        if len(names) == 1 and isinstance(names[0], str):
            return names[0]
    return None


def _mesh_state(status: dict[str, Any], at: Loc) -> tuple[str, list[str], dict[str, int]]:
    """How far the injection got (a short phrase), the failure messages, and the totals of
    targets, injections and recoveries."""
    conditions: dict[str, bool] = {}
    messages: list[str] = []
    for i, c in enumerate(get(status, "conditions", at, list, "a list") or []):
        loc = (*at, "conditions", i)
        if not isinstance(c, dict):
            raise DocProblem(loc, f"expected an object, got {kind_of(c)}")
        ctype = get(c, "type", loc, str, "a string", required=True)
        conditions[ctype] = get(c, "status", loc, str, "a string") == "True"
        reason = c.get("reason")
        if not conditions[ctype] and isinstance(reason, str) and reason:
            messages.append(f"{ctype}: {reason}")
    failed = status.get("failedMessage")  # Chaos Mesh 1.x
    if isinstance(failed, str) and failed:
        messages.append(failed)
    exp = get(status, "experiment", at, dict, "an object") or {}
    eloc = (*at, "experiment")
    desired = get(exp, "desiredPhase", eloc, str, "Run or Stop")
    records = get(exp, "containerRecords", eloc, list, "a list") or []
    counts = {"targets": len(records), "injected": 0, "recovered": 0}
    for i, r in enumerate(records):
        loc = (*eloc, "containerRecords", i)
        if not isinstance(r, dict):
            raise DocProblem(loc, f"expected an object, got {kind_of(r)}")
        counts["injected"] += get(r, "injectedCount", loc, int, "a whole number") or 0
        counts["recovered"] += get(r, "recoveredCount", loc, int, "a whole number") or 0
        for j, e in enumerate(get(r, "events", loc, list, "a list") or []):
            if not isinstance(e, dict):
                raise DocProblem((*loc, "events", j), f"expected an object, got {kind_of(e)}")
            if e.get("type") == "Failed" and isinstance(e.get("message"), str):
                messages.append(
                    f"{r.get('id', '?')}: {e.get('operation', '?')} failed: {e['message']}"
                )
    old_phase = get(exp, "phase", eloc, str, "a string")  # Chaos Mesh 1.x
    if conditions.get("Paused"):
        state = "paused"
    elif conditions.get("Selected") is False:
        state = "no target selected"
    elif desired == "Stop":
        state = "recovered" if conditions.get("AllRecovered") else "recovering"
    elif desired == "Run":
        state = "injected" if conditions.get("AllInjected") else "injecting"
    elif old_phase:
        state = old_phase.lower()
    else:
        state = "not started"
    return outcome(state, eloc, OUTCOME_CHARS) or state, messages, counts
