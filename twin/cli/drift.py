"""``twin drift``: expected manifests vs the observed state -> drift.json, plans.json, a report.

The work is :mod:`twin.drift.run`; this module reads the flags and prints what happened.
Read-only unless asked: ``--plan N --apply`` (or ``--auto``) writes the plan's patch files and
an ``apply.sh`` of kubectl commands, which are server-side dry runs unless ``--no-dry-run``;
nothing here talks to a cluster except to read it (``--observed URL``).

Exit codes: 0 done (drift or not; ``--exit-code`` makes drift exit 1); 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.errors import handles_errors
from twin.errors import InputError


@handles_errors
def drift(
    expected: Annotated[
        list[Path], typer.Argument(help="Manifests: files or folders (YAML, JSON, Lists).")
    ],
    observed: Annotated[
        list[str],
        typer.Option(help="Observed state: kubectl dumps (files, folders) or a cluster API URL."),
    ],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    history: Annotated[
        Path | None, typer.Option(help="Snapshots folder or change-log CSV, for drift prediction.")
    ] = None,
    topology: Annotated[
        Path | None, typer.Option(help="Topology YAML, for the SLO impact.")
    ] = None,
    ignore: Annotated[
        Path | None, typer.Option(help="ignoreDifferences rules (or an Argo CD Application).")
    ] = None,
    namespace: Annotated[
        str, typer.Option(help="Namespace of manifests that name none.")
    ] = "default",
    policy: Annotated[
        Path | None, typer.Option(help="Drift policy YAML (limits for --auto).")
    ] = None,
    override: Annotated[
        Path | None, typer.Option(help="Override YAML: the operator's plan, always wins.")
    ] = None,
    traffic: Annotated[
        Path | None, typer.Option(help="Traffic forecast CSV (time, rate): the low-traffic window.")
    ] = None,
    load: Annotated[float, typer.Option(min=0.0, help="Load multiplier for the impact.")] = 1.0,
    predict: Annotated[
        bool, typer.Option(help="Predict drift from managedFields when no --history.")
    ] = False,
    horizon_days: Annotated[float, typer.Option(min=0.0, help="Prediction horizon (days).")] = 30.0,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Alert when P(drift) >= this.")
    ] = 0.5,
    draws: Annotated[int, typer.Option(min=100, help="Posterior draws per chain.")] = 1000,
    plan: Annotated[int | None, typer.Option(help="Plan number for --apply.")] = None,
    apply: Annotated[
        bool, typer.Option(help="Write the chosen plan's patches and kubectl commands.")
    ] = False,
    auto: Annotated[
        bool, typer.Option(help="Apply the first plan within the policy (an override wins).")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="kubectl commands as server-side dry runs.")] = True,
    exit_code: Annotated[bool, typer.Option(help="Exit 1 when there is drift.")] = False,
) -> None:
    """Configuration drift: only real differences, their impact, plans and prediction."""
    from twin.drift.run import (
        detect,
        history_table,
        plans_document,
        write_outputs,
        write_plan,
    )
    from twin.drift.run import (
        predict as fit_predict,
    )
    from twin.io import output_dir

    if apply and plan is None and not auto:
        raise InputError("--apply needs --plan N (or use --auto)", source="--apply")
    det = detect(expected, observed, namespace=namespace, ignore=ignore)
    doc = plans_document(
        det,
        topology=topology,
        policy=policy,
        override=override,
        traffic=traffic,
        load_multiplier=load,
        auto=auto,
    )
    fc = None
    if history is not None or predict:
        table, source = history_table(history, det.observed, namespace=namespace)
        fc = fit_predict(
            table, horizon_days=horizon_days, threshold=threshold, draws=draws, source=source
        )
    folder = output_dir(out)
    write_outputs(folder, det, doc, fc)
    typer.echo(
        f"{len(det.drifts)} drift(s) in {len({d.resource for d in det.drifts})} resource(s); "
        f"wrote {folder}/drift.json, plans.json, report.md"
    )
    for p in doc.plans:
        verdict = "passes" if p.passes_policy else "fails: " + "; ".join(p.reasons)
        typer.echo(
            f"  plan {p.id} {p.name}: downtime {p.downtime_seconds:.2f} s, "
            f"{p.cost_replica_hours:.1f} replica-hours, "
            f"{len(p.security)} security note(s); {verdict}"
        )
    if fc is not None:
        typer.echo(
            f"prediction: {fc.refused}"
            if fc.refused
            else f"prediction: {len(fc.alerts)} alert(s) written to {folder}/alerts.jsonl"
        )
    chosen = plan if plan is not None else doc.chosen
    if (apply or auto) and chosen is not None:
        match = [p for p in doc.plans if p.id == chosen]
        if not match:
            raise InputError(f"no plan {chosen} (there are {len(doc.plans)})", source="--plan")
        where = write_plan(match[0], folder, dry_run=dry_run)
        typer.echo(
            f"plan {chosen} written to {where}/apply.sh"
            + (" (server-side dry run)" if dry_run else "")
        )
    elif auto:
        typer.echo(
            "auto: no plan applied ("
            + (
                "the override says none"
                if doc.chosen_by == "override"
                else "none passes the policy"
            )
            + ")"
        )
    if exit_code and det.drifts:
        raise typer.Exit(1)
