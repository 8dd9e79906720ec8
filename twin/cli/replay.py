"""``twin replay``: the twin's accuracy on recorded faults, from a folder of telemetry.

The work is :func:`twin.replay.replay`; this module reads the options, shows progress and
prints the headline figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.errors import handles_errors


@handles_errors
def replay(
    topology: Annotated[Path, typer.Argument(help="The calibrated topology YAML.")],
    data: Annotated[Path, typer.Option(help="Folder of recorded telemetry and faults.")],
    format: Annotated[str, typer.Option("--format", help="nezha, petshop or generic.")],
    out: Annotated[Path, typer.Option(help="Output folder (accuracy.json, .md, .png).")],
    fit: Annotated[
        str,
        typer.Option(
            help="first: fit each fault type's magnitude on its first fault (not "
            "scored); none: magnitudes as the data give them."
        ),
    ] = "none",
    scenario: Annotated[
        Path | None,
        typer.Option(help="Scenario whose faults are always on (calibration's scenario.yaml)."),
    ] = None,
    workload: Annotated[
        str,
        typer.Option(
            help="auto: keep the topology's closed loop, or fit open or closed (users, think "
            "time) on the windows outside the held-out faults; open or closed: force one."
        ),
    ] = "auto",
    anchor: Annotated[
        str,
        typer.Option(
            help="before: carry the offset between production and the twin over the "
            "lookback before each fault into the fault; none: the twin as calibrated."
        ),
    ] = "none",
    seeds: Annotated[int, typer.Option(help="Runs pooled per fault.")] = 3,
    seed: Annotated[int, typer.Option(help="First seed.")] = 1,
    block: Annotated[
        float | None, typer.Option(help="Fault-free block, seconds (default: the format's).")
    ] = None,
) -> None:
    """Replay recorded faults in the twin and score it against what was observed."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from twin.errors import InputError
    from twin.io import load_model, parse_model
    from twin.replay import FORMATS, ReplayConfig
    from twin.replay import replay as run
    from twin.replay.outputs import fault_free_yardstick_line, yardstick_line
    from twin.scenario import Scenario
    from twin.topology import Topology

    if format not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    config = parse_model(
        ReplayConfig,
        {
            "fit": fit,
            "workload": workload,
            "anchor": anchor,
            "seeds": seeds,
            "seed": seed,
            "block_seconds": block,
        },
        source="command line",
    )
    topo = load_model(Topology, topology)
    base = (
        [
            f.model_dump(mode="json", exclude_none=True)
            for f in load_model(Scenario, scenario).faults
        ]
        if scenario
        else []
    )
    console = Console(stderr=True)
    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("replay", total=None)
        res = run(
            topo,
            data,
            format,
            out,
            config,
            base_faults=base,
            on_progress=lambda d, n: bar.update(task, completed=d, total=n),
        )
    h, ff, wl = res["held_out"], res["fault_free"], res["workload"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    typer.echo(f"wrote {out}/accuracy.json, accuracy.md, accuracy.png")
    typer.echo(f"workload: {wl['model']} ({wl['source']}): {wl['fit']['reason']}")
    typer.echo(
        f"held out: {res['n_held_out']} faults; P50 median {pct(h['p50']['median'])}, "
        f"P99 median {pct(h['p99']['median'])}; misses {res['misses']}; "
        f"unmapped {len(res['unmapped'])}"
    )
    typer.echo(yardstick_line(h))
    typer.echo(
        f"fault-free: {ff['n_blocks']} blocks; P50 mean {pct(ff['p50']['mean'])}, "
        f"P99 mean {pct(ff['p99']['mean'])}"
    )
    typer.echo(fault_free_yardstick_line(ff))
