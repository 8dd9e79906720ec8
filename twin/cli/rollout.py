"""``twin rollout``: guard a running canary; roll back before the SLO breaks.

The work is :mod:`twin.change.rollout`; this module reads the flags, prints each decision as
a JSON line and the outcome. Exit codes: 0 the canary was not rolled back, 3 it was (or
would have been, without ``--act``), 2 bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twin.cli.errors import handles_errors
from twin.errors import TwinError


class RolledBack(TwinError):
    """The guard rolled the canary back (exit 3); why is in summary.json."""

    exit_code = 3
    label = "rolled back"


@handles_errors
def rollout(
    change: Annotated[Path, typer.Argument(help="Change YAML (the change set being rolled out).")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus URL to read the canary from.")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Recorded metrics JSON (offline replay).")
    ] = None,
    topology: Annotated[
        Path | None, typer.Option(help="Topology YAML: SLO, rollback signature, twin baseline.")
    ] = None,
    guard: Annotated[
        Path | None, typer.Option(help="Guard YAML: queries, windows, rollback plan.")
    ] = None,
    rollback: Annotated[
        Path | None, typer.Option(help="rollback.json from `twin check-change`.")
    ] = None,
    act: Annotated[bool, typer.Option(help="Run the rollback commands (else emit them).")] = False,
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Roll back at this P(breach).")
    ] = None,
    twin_baseline: Annotated[
        bool, typer.Option(help="Judge against the twin's prediction for the new version.")
    ] = False,
    serve: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve the decision on 127.0.0.1:PORT."),
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Failure-mode database URL: record the rollout there.")
    ] = None,
) -> None:
    """Judge the canary, forecast P(breach), roll back in time, verify the rollback."""
    from twin.change.guard import GuardSpec
    from twin.change.rollout import load_signature, record, run_rollout
    from twin.io import load_model
    from twin.topology import Topology

    topo = load_model(Topology, topology) if topology is not None else None
    spec = GuardSpec.load_file(guard) if guard is not None else None
    sig = load_signature(rollback) if rollback is not None else None
    summary = run_rollout(
        change,
        out=out,
        prometheus=prometheus,
        metrics_file=metrics,
        topology=topo,
        guard=spec,
        signature=sig,
        act=act,
        threshold=threshold,
        twin_baseline=twin_baseline,
        serve_port=serve,
        on_decision=lambda d: typer.echo(
            json.dumps(
                {
                    "elapsed_seconds": round(d.elapsed_seconds, 1),
                    "decision": d.decision,
                    "p_breach": round(d.p_breach, 3),
                    "score": d.score,
                    "reason": d.reason,
                }
            )
        ),
    )
    if db is not None:
        record(db, summary)
    done = "rolled back" if summary["rolled_back"] else "not rolled back"
    checks = summary["checks"]
    passed = sum(c["passed"] for c in checks)
    typer.echo(
        f"{summary['name']}: {done}"
        + (
            f" after {summary['seconds_to_rollback']:.1f} s"
            if summary["seconds_to_rollback"] is not None
            else ""
        )
        + (f"; verification {passed}/{len(checks)} passed" if checks else "")
        + f"; outputs in {out}"
    )
    if summary["rolled_back"]:
        raise RolledBack(summary["reason"])
