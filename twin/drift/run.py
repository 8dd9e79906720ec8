"""The drift assessment as library functions the command line calls: detect, predict,
plan, and write ``drift.json``, ``plans.json``, the report and the patches of a plan."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import TypeAdapter

from twin.drift.diff import diff_states
from twin.drift.documents import (
    Drift,
    DriftAlert,
    DriftPolicy,
    IgnoreRule,
    IgnoreRules,
    Override,
    Plan,
    PlansDocument,
    Prediction,
)
from twin.drift.history import from_managed_fields, parse_time, read_history
from twin.drift.manifests import K8sObject, read_objects, read_observed
from twin.drift.plans import Traffic, choose, impact, make_plans
from twin.errors import InputError
from twin.io import dump_yaml, load_model, parse_model
from twin.safeload import check_size, read_yaml


def load_ignore(path: Path) -> list[IgnoreRule]:
    """Ignore rules: a file with ``ignoreDifferences:``, or an Argo CD Application."""
    data, text = read_yaml(path)
    if (
        isinstance(data, dict)
        and isinstance(data.get("spec"), dict)
        and "ignoreDifferences" in data["spec"]
    ):
        data = {"ignoreDifferences": data["spec"]["ignoreDifferences"]}
    doc = parse_model(IgnoreRules, data, source=str(path), text=text)
    return list(doc.ignoreDifferences)


@dataclass
class Detection:
    expected: dict[str, K8sObject]
    observed: dict[str, K8sObject]
    drifts: list[Drift]


def detect(
    expected: Sequence[str | Path],
    observed: Sequence[str],
    *,
    namespace: str = "default",
    ignore: Path | None = None,
) -> Detection:
    """Read both states and diff them, ignore rules applied."""
    exp = read_objects(expected, namespace=namespace)
    if not exp:
        raise InputError(
            "no Kubernetes objects in the expected state", source=", ".join(map(str, expected))
        )
    obs = read_observed(observed, exp)
    rules = load_ignore(ignore) if ignore is not None else []
    return Detection(exp, obs, diff_states(exp, obs, rules))


@dataclass
class Forecast:
    predictions: list[Prediction] = field(default_factory=list)
    alerts: list[DriftAlert] = field(default_factory=list)
    source: str = ""
    refused: str | None = None


def predict(
    history: pd.DataFrame,
    *,
    horizon_days: float,
    threshold: float,
    interval: float = 0.9,
    draws: int = 1000,
    seed: int = 1,
    source: str = "",
) -> Forecast:
    """Fit the drift-rate model to a tidy history and predict P(drift within the horizon);
    an alert for every resource whose posterior mean is at least ``threshold``. A fit whose
    diagnostics fail gives no predictions, only the reason."""
    from twin.bayes.checks import diagnose
    from twin.bayes.drift import build_drift_model, drift_probabilities
    from twin.bayes.fit import FitOptions, fit

    f = fit(build_drift_model(history), FitOptions(draws=draws, tune=1000, chains=2, seed=seed))
    diag = diagnose(f, model="drift")
    if not diag.ok:
        return Forecast(source=source, refused="; ".join(diag.problems))
    table = drift_probabilities(f.idata, history, horizon_days, interval)
    preds = [
        Prediction(
            resource=r.resource,
            probability=r.probability,
            low=r.low,
            high=r.high,
            changes_seen=r.changes_seen,
        )
        for r in table.itertuples()
    ]
    alerts = alerts_from(table, threshold=threshold, horizon_days=horizon_days, interval=interval)
    return Forecast(preds, alerts, source)


def alerts_from(
    table: pd.DataFrame, *, threshold: float, horizon_days: float, interval: float
) -> list[DriftAlert]:
    """A proactive alert for every resource of a prediction table (as
    :func:`twin.bayes.drift.drift_probabilities` returns) whose P(drift) is at least
    ``threshold``, most likely first."""
    rows = table[table["probability"] >= threshold].sort_values("probability", ascending=False)
    return [
        DriftAlert(
            resource=str(r["resource"]),
            probability=float(r["probability"]),
            low=float(r["low"]),
            high=float(r["high"]),
            interval=interval,
            horizon_days=horizon_days,
            threshold=threshold,
            top_field_class=str(r["top_field_class"]),
            top_manager=str(r["top_manager"]),
        )
        for r in rows.to_dict("records")
    ]


def history_table(
    history: Path | None,
    observed: dict[str, K8sObject],
    *,
    namespace: str = "default",
    now: datetime | None = None,
) -> tuple[pd.DataFrame, str]:
    """The change history: the folder or change log given, else the observed managedFields."""
    if history is not None:
        return read_history(history, namespace=namespace), str(history)
    return from_managed_fields(observed, now or datetime.now(UTC)), "managedFields"


def read_traffic(path: Path | None, rate_now: float, now: datetime | None = None) -> Traffic:
    """The low-traffic window from a forecast or history (CSV ``time, rate``): the hour of day
    with the lowest mean rate, and the hours from ``now`` until it next starts."""
    if path is None:
        return Traffic(rate_now=rate_now)
    check_size(path, "telemetry")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read the traffic forecast: {exc}", source=str(path)) from None
    if not {"time", "rate"} <= set(df.columns) or df.empty:
        raise InputError("expected columns time, rate", source=str(path))
    times = [parse_time(str(t)) for t in df["time"]]
    if any(t is None for t in times):
        raise InputError("a time is not ISO-8601", source=str(path))
    rates = pd.to_numeric(df["rate"], errors="coerce")
    if rates.isna().any():
        raise InputError("a rate is not a number", source=str(path))
    hours = pd.Series([t.hour for t in times if t is not None])
    by_hour = rates.groupby(hours.to_numpy()).mean()
    hour = int(str(by_hour.idxmin()))
    t0 = now or datetime.now(UTC)
    wait = (hour - t0.hour - t0.minute / 60.0) % 24.0
    return Traffic(
        rate_now=rate_now,
        window_hour=hour,
        rate_window=float(by_hour.min()),
        hours_until_window=wait,
    )


def _slug(rid: str) -> str:
    return rid.replace("/", "-")


def write_plan(plan: Plan, out: Path, *, dry_run: bool = True) -> Path:
    """The patch files of a plan and ``apply.sh`` with the kubectl commands (server-side
    dry runs unless ``dry_run`` is off). Nothing is sent to a cluster from here."""
    folder = out / f"plan-{plan.id}-{plan.name}"
    folder.mkdir(parents=True, exist_ok=True)
    dry = " --dry-run=server" if dry_run else ""
    lines = [
        "#!/bin/sh",
        f"# plan {plan.id}: {plan.name} ({plan.when}) - {plan.description}",
        "set -e",
    ]
    for i, a in enumerate(plan.actions, start=1):
        kind, ns, name = a.resource.split("/", 2)
        if a.patch is not None:
            f = folder / f"{i:03d}-{_slug(a.resource)}.yaml"
            f.write_text(dump_yaml(a.patch), encoding="utf-8")
        if a.target == "desired-state":
            what = "write" if a.patch is not None else "remove"
            lines.append(
                f"# desired state: {what} {a.resource}"
                + (f" from {f.name}" if a.patch is not None else "")
            )
            continue
        if a.operation == "delete":
            lines.append(
                f"kubectl delete {shlex.quote(kind)} {shlex.quote(name)} -n {shlex.quote(ns)}{dry}"
            )
        else:
            lines.append(
                "kubectl apply --server-side --force-conflicts --field-manager=twin-drift "
                f"-n {shlex.quote(ns)} "
                f"-f {shlex.quote(f.name)}{dry}"
            )
    (folder / "apply.sh").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_outputs(
    out: Path,
    detection: Detection,
    plans_doc: PlansDocument | None,
    forecast: Forecast | None,
) -> list[Path]:
    """``drift.json``, ``plans.json``, ``predictions.json`` and ``alerts.jsonl`` (with a
    history), ``report.md`` and ``drift.png``."""
    written = []
    drift_json = out / "drift.json"
    drift_json.write_text(
        json.dumps(TypeAdapter(list[Drift]).dump_python(detection.drifts, mode="json"), indent=2)
        + "\n",
        encoding="utf-8",
    )
    written.append(drift_json)
    if plans_doc is not None:
        p = out / "plans.json"
        p.write_text(plans_doc.model_dump_json(indent=2) + "\n", encoding="utf-8")
        written.append(p)
    if forecast is not None and forecast.refused is None:
        p = out / "predictions.json"
        p.write_text(
            json.dumps([x.model_dump(mode="json") for x in forecast.predictions], indent=2) + "\n",
            encoding="utf-8",
        )
        a = out / "alerts.jsonl"
        a.write_text("".join(x.model_dump_json() + "\n" for x in forecast.alerts), encoding="utf-8")
        written += [p, a]
    written.append(_plot(out / "drift.png", detection.drifts))
    written.append(_report(out / "report.md", detection, plans_doc, forecast))
    return written


def _plot(path: Path, drifts: Sequence[Drift]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from twin.drift.history import field_class

    counts: dict[str, int] = {}
    for d in drifts:
        c = field_class(d.path)
        counts[c] = counts.get(c, 0) + 1
    fig, ax = plt.subplots(figsize=(6, 3))
    names = sorted(counts, key=lambda k: -counts[k])
    ax.barh(names, [counts[n] for n in names], color="#c0392b")
    ax.invert_yaxis()
    ax.set_xlabel("drifted fields")
    ax.set_title(f"{len(drifts)} drift(s) by field class")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _report(
    path: Path, det: Detection, plans_doc: PlansDocument | None, fc: Forecast | None
) -> Path:
    lines = ["# Configuration drift", ""]
    lines.append(
        f"{len(det.expected)} expected resources, {len(det.observed)} observed objects, "
        f"**{len(det.drifts)} drift(s)**."
    )
    lines += [
        "",
        "![drift by field class](drift.png)",
        "",
        "| resource | path | expected | observed | manager | since |",
        "|---|---|---|---|---|---|",
    ]

    def cell(v: Any) -> str:
        text = json.dumps(v) if not isinstance(v, str) else v
        return (text[:60] + "...") if len(text) > 63 else text

    for d in det.drifts:
        exp = "(present)" if d.path == "" and d.expected is not None else cell(d.expected)
        obs = "(present)" if d.path == "" and d.observed is not None else cell(d.observed)
        lines.append(
            f"| {d.resource} | `{d.path or '(whole resource)'}` | {exp} | {obs} "
            f"| {d.manager or ''} | {d.since or ''} |"
        )
    if plans_doc is not None:
        if plans_doc.impact is not None:
            im = plans_doc.impact
            lines += ["", "## Impact", ""]
            lines.append(
                f"Modelled in the twin: {len(im.modelled)} drift(s); "
                f"not modelled: {len(im.unmapped)}."
            )
            if im.observed_availability is not None:
                lines.append(
                    f"At load x{im.load_multiplier:g}: availability "
                    f"{im.expected_availability:.4f} expected, {im.observed_availability:.4f} "
                    f"drifted; p99 {im.expected_p99_seconds or float('nan'):.3f} s -> "
                    f"{im.observed_p99_seconds or float('nan'):.3f} s; "
                    f"meets the SLO: {im.observed_meets_slo}."
                )
        lines += [
            "",
            "## Plans",
            "",
            "| # | plan | when | downtime (s) | failed requests | replica-hours "
            "| security notes | passes policy |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in plans_doc.plans:
            lines.append(
                f"| {p.id} | {p.name} | {p.when} | {p.downtime_seconds:.2f} "
                f"| {p.failed_requests:.0f} | {p.cost_replica_hours:.1f} | {len(p.security)} "
                f"| {'yes' if p.passes_policy else 'no: ' + '; '.join(p.reasons)} |"
            )
        if plans_doc.chosen is not None:
            lines.append(f"\nChosen: plan {plans_doc.chosen} (by {plans_doc.chosen_by}).")
    if fc is not None:
        lines += ["", "## Prediction", ""]
        if fc.refused:
            lines.append(f"No prediction: the sampler's diagnostics failed ({fc.refused}).")
        else:
            lines.append(f"From {fc.source}: {len(fc.alerts)} alert(s).")
            lines += ["", "| resource | P(drift) | interval |", "|---|---|---|"]
            for x in sorted(fc.predictions, key=lambda x: -x.probability)[:20]:
                lines.append(f"| {x.resource} | {x.probability:.2f} | {x.low:.2f}-{x.high:.2f} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def plans_document(
    det: Detection,
    *,
    topology: Path | None,
    policy: Path | None,
    override: Path | None,
    traffic: Path | None,
    load_multiplier: float,
    auto: bool,
) -> PlansDocument:
    """Impact (with a topology), the three plans and, with ``auto``, the choice."""
    from twin.topology import Topology

    pol = load_model(DriftPolicy, policy) if policy is not None else DriftPolicy()
    topo = Topology.load(topology) if topology is not None else None
    rate = sum(w.rate for w in topo.workload) * load_multiplier if topo is not None else 0.0
    imp = (
        impact(det.drifts, det.expected, det.observed, topo, load_multiplier=load_multiplier)
        if topo is not None and det.drifts
        else None
    )
    plans = (
        make_plans(
            det.drifts, det.expected, det.observed, policy=pol, traffic=read_traffic(traffic, rate)
        )
        if det.drifts
        else []
    )
    chosen, by = None, None
    if auto and plans:
        ov = load_model(Override, override) if override is not None else None
        chosen, by = choose(plans, ov)
    return PlansDocument.model_validate(
        {
            "drifts": len(det.drifts),
            "impact": imp,
            "plans": plans,
            "chosen": chosen,
            "chosen_by": by,
        }
    )


__all__ = [
    "Detection",
    "Forecast",
    "alerts_from",
    "detect",
    "history_table",
    "load_ignore",
    "plans_document",
    "predict",
    "read_traffic",
    "write_outputs",
    "write_plan",
]
