"""``twin campaign``, ``twin ingest``, ``twin modes``, ``twin availability``: fault campaigns,
the failure-mode database and the graph-only availability baseline. Heavy imports happen
inside the commands so ``twin --help`` stays instant.

The campaign report itself is :mod:`twin.campaign.report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from twin.cli.errors import handles_errors
from twin.cli.simulate import MAX_MEMORY_HELP, MAX_REQUESTS_HELP
from twin.errors import InputError

if TYPE_CHECKING:
    from twin.campaign import Outcome
    from twin.sim.budget import Budget


def _store(db: str | None) -> Any:
    from twin.store import Store

    return Store(db)


DB_HELP = "Failure-mode database: a SQLite file or a URL (default: $TWIN_DB or ./twin.db)."


@handles_errors
def campaign(
    spec: Annotated[Path, typer.Argument(help="Campaign YAML.")],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("campaign-out"),
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 1,
    cluster: Annotated[
        str | None, typer.Option(help="Dask scheduler address, e.g. tcp://host:8786.")
    ] = None,
    db: Annotated[str | None, typer.Option(help=DB_HELP)] = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="Do not record in the database.")] = False,
    max_requests: Annotated[str | None, typer.Option(help=MAX_REQUESTS_HELP)] = None,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    """Run a fault campaign: runs.parquet, aggregated.parquet, summary.json, report.html.

    Finished runs in --out are reused, so a killed campaign resumes where it stopped. Every
    run is checked against the budget (--max-requests, --max-memory, per run) before anything
    is written; a run stopped as unstable is a row with its verdict.
    """
    from twin.sim.budget import Budget

    budget = Budget.from_limits(max_requests, max_memory)
    try:
        _campaign(spec, out, workers, cluster, None if no_db else db, not no_db, budget)
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            raise InputError(f"database: {str(exc).splitlines()[0]}") from exc
        raise


def _campaign(
    spec: Path,
    out: Path,
    workers: int,
    cluster: str | None,
    db: str | None,
    use_db: bool,
    budget: Budget,
) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from twin.campaign import load_campaign, run_campaign

    if cluster and workers > 1:
        raise InputError("give --workers or --cluster, not both")
    plan = load_campaign(spec)
    from twin.campaign.execute import check_budget

    check_budget(plan.tasks(), plan.topology, budget)  # before the database or --out exist
    store = _store(db) if use_db else None
    console = Console(stderr=True)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task(f"campaign {plan.campaign.name}", total=None)
            outcome = run_campaign(
                plan,
                out,
                workers=workers,
                cluster=cluster,
                store=store,
                on_progress=lambda d, n: bar.update(task, completed=d, total=n),
                budget=budget,
            )
    finally:
        if store is not None:
            store.close()
    from twin.campaign.report import write_report

    write_report(outcome, plan)
    _print_outcome(outcome, None if store is None else store.url)


def _print_outcome(o: Outcome, db_url: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from twin.campaign.report import ms, pct, trigger_text

    s = o.summary
    console = Console()
    console.print(
        f"{s['campaign']}: {s['runs']} runs ({o.executed} run now, {o.reused} reused) of "
        f"{s['scenarios']} scenarios x {len(s['policies'])} policies x {s['replications']} "
        f"replication(s) on {s['topology']}; {s['runs_breaching_slo']} runs breached an SLO "
        f"({s['wall_seconds']:.1f} s wall, {s['engine']})"
    )
    if o.modes:
        t = Table(title="Failure modes, worst first", title_justify="left")
        for col in ("severity", "policy", "trigger", "availability", "p99", "blast radius"):
            t.add_column(col, justify="right" if col != "trigger" else "left")
        for m in o.modes[:10]:
            t.add_row(
                f"{m['severity']:.1f}x",
                m["policy"],
                trigger_text(m),
                pct(m["availability"]),
                ms(m["latency_p99"]),
                str(m["blast_radius"]),
            )
        console.print(t)
    where = f"; failure modes in {db_url}" if db_url else ""
    console.print(
        f"wrote {o.out}/runs.parquet, aggregated.parquet, summary.json, report.html{where}"
    )


@handles_errors
def ingest(
    files: Annotated[list[Path], typer.Argument(help="Chaos result JSON files.")],
    db: Annotated[str | None, typer.Option(help=DB_HELP)] = None,
) -> None:
    """Store chaos-test results (plain JSON, Chaos Toolkit journals, Litmus ChaosResults, Chaos
    Mesh experiments); re-ingesting is a no-op."""
    with _store(db) as store:
        r = store.ingest_files(files)
        url = store.url
    typer.echo(
        f"ingested {len(files)} file(s) into {url}: {r.added} new, {r.unchanged} already "
        f"there, {r.updated} updated"
    )


@handles_errors
def modes(
    db: Annotated[str | None, typer.Option(help=DB_HELP)] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List failure modes found by campaigns, worst first, with recommended mitigations."""
    with _store(db) as store:
        found = store.failure_modes(limit=limit)
        chaos = store.counts()["chaos_results"]
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    from twin.campaign.report import ms, pct, trigger_text

    console = Console()
    if not found:
        console.print(f"no failure modes recorded yet ({chaos} chaos results stored)")
        return
    t = Table(title="Failure modes, worst first", title_justify="left")
    for col in ("#", "severity", "policy", "trigger", "effect", "mitigation"):
        t.add_column(col)
    for i, m in enumerate(found, 1):
        reasons = ", ".join(list(m["failure_reasons"])[:2])
        effect = (
            f"{', '.join(m['slos_breached']) or '–'} breached; avail {pct(m['availability'])}, "
            f"p99 {ms(m['latency_p99'])}; {m['blast_radius']} services ({reasons})"
        )
        mit = m["mitigations"][0]["policy"] if m["mitigations"] else "–"
        t.add_row(str(i), f"{m['severity']:.1f}x", m["policy"], trigger_text(m), effect, mit)
    console.print(t)


@handles_errors
def availability(
    topology: Annotated[Path, typer.Argument(help="Topology YAML.")],
    replica_availability: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance each replica is up.")
    ] = 0.999,
    host_availability: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance each host is up.")
    ] = 1.0,
    trials: Annotated[int, typer.Option(min=1, help="Component draws per replication.")] = 10_000,
    replications: Annotated[int, typer.Option(min=1, help="Independent replications.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed.")] = 1,
) -> None:
    """Graph-only availability (Monte Carlo over component failures): a fast baseline to set
    beside the full simulation."""
    from twin.availability import estimate
    from twin.topology import Topology

    topo = Topology.load(topology)
    est = estimate(
        topo,
        replica_availability=replica_availability,
        host_availability=host_availability,
        trials=trials,
        replications=replications,
        seed=seed,
    )
    from twin.campaign.report import pct

    ci = "" if est.lo is None else f" [{pct(est.lo)}, {pct(est.hi)}]"
    typer.echo(
        f"{topo.name}: graph-only availability {pct(est.availability)}{ci} "
        f"({replications} x {trials} draws, replica availability {replica_availability})"
    )
