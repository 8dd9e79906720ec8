"""``twin export``: a trained policy folder -> policy.json, policy.onnx and runtime files,
validated against published schemas and re-simulated in the twin before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.errors import handles_errors


@handles_errors
def export(
    policy_dir: Annotated[Path, typer.Argument(help="Folder with model.zip and evaluation.json.")],
    out: Annotated[Path, typer.Option(help="Export folder (replaced atomically).")] = Path(
        "export"
    ),
    scenarios: Annotated[
        int, typer.Option(min=1, help="Training-catalogue scenarios for the re-simulation.")
    ] = 12,
    seed: Annotated[int, typer.Option(help="Seed of the re-simulation and distillation.")] = 0,
    schemas: Annotated[
        Path | None,
        typer.Option(
            help="Folder of CRD schemas to validate against (default: $TWIN_CRD_SCHEMAS, "
            "else the vendored copy)."
        ),
    ] = None,
) -> None:
    """Export a learned policy for production; refuse one that does worse than the baseline."""
    from rich.console import Console

    console = Console(stderr=True)
    from agents.export.build import export_policy

    with console.status("exporting") as status:
        summary = export_policy(
            policy_dir,
            out,
            scenarios=scenarios,
            seed=seed,
            schemas=schemas,
            progress=status.update,
        )
    typer.echo(
        f"ONNX = torch on {summary['onnx_agreement']:.1%} of sampled observations; "
        f"rules agree on {summary['rules_agreement']:.1%} of held-aside states, "
        f"{summary['rules_component_agreement']:.1%} of components ({summary['rules_nodes']} nodes)"
    )
    for runtime, rep in summary["schemas"].items():
        typer.echo(f"{runtime:<13} {rep['files']} file(s) valid against {rep['against']}")
    sims = ", ".join(f"{k} {v:.3f}" for k, v in summary["validated_in_twin"].items())
    typer.echo(f"re-simulated violation minutes: {sims}")
    typer.echo(f"wrote {out}")
