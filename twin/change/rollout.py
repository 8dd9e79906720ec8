"""``twin rollout``: the guard put together for one change set.

What the guard reads and does comes from a guard document (``--guard``) or, without one,
from the change and the topology: the canary's service is the one the change gives a new
version (or patches first); its metrics are the OpenTelemetry HTTP histogram
(:class:`twin.calibrate.metrics.MetricMap`), the canary selected as ``job="SVC-canary"``
and its baseline as ``job="SVC"``; the SLO is the topology's (good = succeeded within
``latency_p99``, objective = ``availability``, else 0.99). The rollback plan and its
verification checks are the change's rollback signature (:mod:`twin.change.rollback`),
or a ``rollback.json`` given with ``--rollback``.

Outputs in ``--out``: ``decisions.jsonl`` (one line per interval), ``summary.json``,
``rollback.json`` (the signature, when there is one), ``metrics.json`` (every point read:
``--metrics`` replays the run offline), ``guard.json`` (the guard document used) and
``report.md``.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from twin.calibrate.metrics import MetricMap
from twin.change.document import ChangeFile, ChangeSet, VersionChange
from twin.change.guard import (
    Check,
    CommandExecutor,
    DecisionRecord,
    EmitOnly,
    Executor,
    Guard,
    GuardSpec,
    MetricSource,
    PrometheusSource,
    RecordedSource,
    RollbackPlan,
)
from twin.change.rollback import RollbackSignature, build_rollback
from twin.errors import InputError
from twin.io import output_dir
from twin.topology import Topology

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(text: str) -> float:
    """A Prometheus duration (``30s``, ``5m``) in seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise InputError(f"not a Prometheus duration: {text!r} (e.g. 30s, 5m)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def plan_from_signature(sig: RollbackSignature) -> RollbackPlan:
    """The signature's commands (reverts in order) and verification checks, as the guard's
    plan: shell commands become argv lists (no shell runs them)."""
    commands = [
        shlex.split(c) for r in sorted(sig.reverts, key=lambda r: r.order) for c in r.commands
    ]
    checks = [
        Check(
            name=v.name,
            query=v.promql,
            op=v.comparison,
            threshold=v.threshold,
            window_seconds=duration_seconds(v.window),
        )
        for v in sig.verification
    ]
    return RollbackPlan(commands=commands, checks=checks)


def canary_service(changes: ChangeSet) -> str:
    """The service the canary runs: the first new version, else the first service a
    topology patch touches."""
    for c in changes.order():
        if isinstance(c, VersionChange):
            return c.service
    for c in changes.order():
        patch = getattr(c, "patch", None)
        if getattr(c, "target", None) == "topology" and isinstance(patch, dict):
            for svc in patch.get("services") or {}:
                return str(svc)
    raise InputError(
        "the change names no service for a canary (no version change, no topology patch of "
        "a service): give a guard document (--guard)"
    )


def default_spec(
    service: str,
    topology: Topology | None,
    *,
    metrics: MetricMap | None = None,
    canary_suffix: str = "-canary",
    threshold: float = 0.5,
) -> GuardSpec:
    """The guard document for ``service`` from the metric names and the topology's SLO."""
    m = metrics or MetricMap()
    lab = m.service_label
    extra = f",{m.extra_selector}" if m.extra_selector else ""

    def sel(job: str, more: str = "") -> str:
        return "{" + f'{lab}="{job}"{extra}{more}' + "}"

    def mean(job: str) -> str:
        return f"sum(rate({m.duration_sum}{sel(job)}[1m])) / sum(rate({m.requests}{sel(job)}[1m]))"

    def errors(job: str) -> str:
        fail = f',{m.status_label}=~"{m.error_status}.."'
        return (
            f"(sum(rate({m.requests}{sel(job, fail)}[1m])) or vector(0)) / "
            f"sum(rate({m.requests}{sel(job)}[1m]))"
        )

    canary = service + canary_suffix
    entry = service
    latency, objective = 1.0, 0.99
    if topology is not None:
        if topology.workload:
            entry = topology.resolve(topology.workload[0].entry)[0]
        latency = topology.slo.latency_p99 or latency
        objective = topology.slo.availability or objective
    ok = f',{m.status_label}!~"{m.error_status}..",le="{float(latency)}"'
    return GuardSpec.model_validate(
        {
            "service": service,
            "interval_seconds": 30.0,
            "step_seconds": 30.0,
            "lookback_seconds": 600.0,
            "warmup_seconds": 120.0,
            "recent_seconds": 600.0,
            "recent_min_seconds": 120.0,
            "horizon_seconds": 900.0,
            "threshold": threshold,
            "max_seconds": 3600.0,
            "metrics": [
                {
                    "name": "latency_mean",
                    "canary": mean(canary),
                    "baseline": mean(service),
                    "allowed_increase": 1.2,
                    "variance_check": False,
                },
                {
                    "name": "error_ratio",
                    "canary": errors(canary),
                    "baseline": errors(service),
                    "nan_strategy": "replace",
                    "critical": True,
                    "min_shift": 0.005,
                },
            ],
            "slo": {
                "total": f"sum({m.requests}{sel(entry)})",
                "good": f"sum({m.duration_bucket}{sel(entry, ok)})",
                "objective": objective,
                "window_seconds": 3600.0,
            },
        }
    )


def twin_samples(
    changes: ChangeSet, topology: Topology | None, spec: GuardSpec
) -> dict[str, list[float]]:
    """The synthetic baseline of every ``baseline: twin`` metric (:mod:`.synthetic`)."""
    if topology is None:
        raise InputError("the twin's baseline needs the topology (--topology)")
    from twin.change.synthetic import predicted_samples

    stats = {m.name: m.twin_stat or m.name for m in spec.metrics if m.baseline == "twin"}
    if not stats:
        return {}
    return predicted_samples(topology, changes, spec.service, stats, step_seconds=spec.step_seconds)


def with_twin_baseline(spec: GuardSpec) -> GuardSpec:
    """Every metric judged against the twin's prediction instead of a deployment."""
    return spec.model_copy(
        update={"metrics": [m.model_copy(update={"baseline": "twin"}) for m in spec.metrics]}
    )


def record(store_url: str, summary: Mapping[str, Any], *, observed_breach: bool = False) -> str:
    """Store the rollout's outcome in the failure-mode database (``twin changes`` lists it)."""
    from twin.change.history import record_rollout
    from twin.store import Store

    detail = {
        k: summary.get(k)
        for k in ("service", "max_p_breach", "final_score", "final_classification", "reason")
    }
    detail["checks"] = [
        {"name": c["name"], "value": c["value"], "passed": c["passed"]}
        for c in summary.get("checks", [])
    ]
    detail["verified"] = summary.get("verified")
    with Store(store_url) as store:
        return record_rollout(
            store,
            name=str(summary["name"]),
            rolled_back=bool(summary["rolled_back"]),
            observed_breach=observed_breach,
            time_to_rollback=summary.get("seconds_to_rollback") if summary["rolled_back"] else None,
            detail=detail,
        )


def load_signature(path: str | Path) -> RollbackSignature:
    from twin.io import load_model

    return load_model(RollbackSignature, path)


def _report(summary: Mapping[str, Any], decisions: Sequence[DecisionRecord]) -> str:
    lines = [
        f"# Rollout guard: {summary['name']}",
        "",
        f"- service: `{summary['service']}`",
        f"- outcome: **{'rolled back' if summary['rolled_back'] else 'not rolled back'}**"
        + (
            f" after {summary['seconds_to_rollback']:.1f} s ({summary['reason']})"
            if summary["rolled_back"] and summary["seconds_to_rollback"] is not None
            else ""
        ),
        f"- executed: {'yes' if summary['acted'] else 'no (emitted only)'}",
        f"- highest P(breach): {summary['max_p_breach']:.2f} (threshold {summary['threshold']:g})",
        f"- last judgement: {summary['final_classification']} (score {summary['final_score']})",
        "",
        "## Verification",
        "",
    ]
    if summary["checks"]:
        lines += ["| check | value | rule | passed |", "|---|---|---|---|"]
        for c in summary["checks"]:
            lines.append(
                f"| {c['name']} | {c['value']} | {c['op']} {c['threshold']:g} | "
                f"{'yes' if c['passed'] else 'NO'} |"
            )
    else:
        lines.append("No rollback, or no checks in the plan.")
    lines += ["", "## Decisions", "", "| s | decision | P(breach) | score | reason |"]
    lines.append("|---|---|---|---|---|")
    for d in decisions:
        sc = "-" if d.score is None else f"{d.score:.0f}"
        lines.append(
            f"| {d.elapsed_seconds:.0f} | {d.decision} | {d.p_breach:.2f} | {sc} | {d.reason} |"
        )
    return "\n".join(lines) + "\n"


def run_rollout(
    change: str | Path,
    *,
    out: str | Path,
    prometheus: str | None = None,
    metrics_file: str | Path | None = None,
    topology: Topology | None = None,
    guard: GuardSpec | None = None,
    signature: RollbackSignature | None = None,
    act: bool = False,
    threshold: float | None = None,
    executor: Executor | None = None,
    started_at: float | None = None,
    synthetic: Mapping[str, Sequence[float]] | None = None,
    twin_baseline: bool = False,
    serve_port: int | None = None,
    on_decision: Any = None,
) -> dict[str, Any]:
    """Guard one canary of ``change`` until it is rolled back or its time is up; returns the
    summary and writes the outputs (see the module docstring)."""
    if (prometheus is None) == (metrics_file is None):
        raise InputError("give exactly one of --prometheus URL and --metrics FILE")
    cf = ChangeFile.load(change)
    dest = output_dir(out)
    if signature is None and topology is not None:
        signature = build_rollback(cf.changes, cf.reduce(topology))
    spec = guard or default_spec(canary_service(cf.changes), topology)
    if twin_baseline:
        spec = with_twin_baseline(spec)
    if synthetic is None and any(m.baseline == "twin" for m in spec.metrics):
        synthetic = twin_samples(cf.changes, topology, spec)
    if signature is not None and not spec.rollback.commands and not spec.rollback.checks:
        spec = spec.model_copy(update={"rollback": plan_from_signature(signature)})
    source: MetricSource
    if metrics_file is not None:
        rec = RecordedSource.load(metrics_file)
        source = rec
        started = rec.started_at if started_at is None else started_at
        spec = spec.model_copy(update={"max_seconds": min(spec.max_seconds, rec.end - started)})
    elif prometheus is not None:
        source = PrometheusSource(prometheus)
        started = source.now() if started_at is None else started_at
    g = Guard(spec, source, started_at=started, synthetic=synthetic, threshold=threshold)
    (dest / "guard.json").write_text(spec.model_dump_json(indent=1), encoding="utf-8")
    if signature is not None:
        (dest / "rollback.json").write_text(
            json.dumps(signature.to_json(), indent=1), encoding="utf-8"
        )
    ex = executor or (CommandExecutor() if act else EmitOnly())
    lines = (dest / "decisions.jsonl").open("w", encoding="utf-8")
    seen: list[DecisionRecord] = []
    server = None
    if serve_port is not None:
        from twin.change.endpoint import serve_decisions

        server = serve_decisions(g, serve_port)

    def emit(d: DecisionRecord) -> None:
        seen.append(d)
        lines.write(d.model_dump_json() + "\n")
        lines.flush()
        if on_decision is not None:
            on_decision(d)

    try:
        with lines:
            summary = g.run(ex, on_decision=emit, stop=threading.Event())
        if server is not None and isinstance(source, PrometheusSource):
            # the final decision stays readable for two intervals: a tool polling every
            # interval sees the rollback before the endpoint goes away
            time.sleep(min(2 * spec.interval_seconds, 120.0))
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    summary = {"name": cf.changes.name, **summary}
    if isinstance(source, PrometheusSource):
        (dest / "metrics.json").write_text(
            json.dumps({"started_at": started, "series": source.recording()}), encoding="utf-8"
        )
    (dest / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    (dest / "report.md").write_text(_report(summary, seen), encoding="utf-8")
    return summary


__all__ = [
    "canary_service",
    "default_spec",
    "duration_seconds",
    "load_signature",
    "plan_from_signature",
    "record",
    "run_rollout",
    "twin_samples",
    "with_twin_baseline",
]
