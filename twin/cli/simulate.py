"""``twin simulate``, ``twin check``, ``twin generate``: one topology in, a run or a verdict out."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from twin.cli.errors import handles_errors
from twin.errors import InputError, TwinError

if TYPE_CHECKING:
    from twin.results import Summary
    from twin.sim.budget import Budget

MAX_REQUESTS_HELP = (
    "Most requests one run may serve, calls included (1e8, 500M; default $TWIN_MAX_REQUESTS "
    "or 100M)."
)
MAX_MEMORY_HELP = "Most memory one run may hold (2GiB; default $TWIN_MAX_MEMORY or 256MiB)."
VERDICT_EXIT = 3
"""Exit status of a run stopped with a verdict (see :func:`stopped`)."""


@handles_errors
def simulate(
    topology: Annotated[Path, typer.Argument(help="Topology YAML.")],
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML (load, faults).")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML (mitigations).")] = None,
    duration: Annotated[float | None, typer.Option(help="Simulated seconds (overrides).")] = None,
    warmup: Annotated[float | None, typer.Option(help="Seconds excluded from statistics.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (overrides the scenario's).")] = None,
    replications: Annotated[int, typer.Option(min=1, help="Independent replications.")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Local processes for replications.")] = 1,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("twin-out"),
    trace_sample: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of requests kept in trace.parquet.")
    ] = 0.0,
    series: Annotated[
        str, typer.Option(help="Per-service time series: auto (up to 200 services), all, entries.")
    ] = "auto",
    max_requests: Annotated[str | None, typer.Option(help=MAX_REQUESTS_HELP)] = None,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    """Run the twin: writes summary.json, timeseries.parquet and report.html to --out.

    A run whose estimated work or memory passes the budget is refused before it starts (exit
    2). A run whose requests in flight grow past the memory budget (the modelled system is
    unstable at this load) stops: summary.json holds the verdict and the figures until then,
    nothing else is written, and the exit status is 3.
    """
    from twin.sim.budget import Budget

    _simulate(
        topology,
        scenario,
        policy,
        duration,
        warmup,
        seed,
        replications,
        workers,
        out,
        trace_sample,
        series,
        Budget.from_limits(max_requests, max_memory),
    )


def stopped(summary: Summary) -> TwinError:
    """The one line (exit 3) of a run stopped with a verdict.

    Exit 3, not 0: the run did not produce what was asked (figures over the whole duration),
    and a script must not read its summary as one that did; not 2 either: nothing in the input
    is malformed, the modelled system is what it is. ``summary.json`` holds the verdict for
    scripts that want the detail.
    """
    v = summary.verdict
    assert v is not None
    from twin.sim.budget import count

    rho = "" if v.utilization is None else f" (offered utilisation {v.utilization:.3g})"
    if v.verdict == "unstable":
        what = (
            f"the modelled system is unstable at this load: {v.service} saturated first{rho}; "
            f"the run stopped at {v.stopped_at:,.1f} s with {count(v.in_flight)} requests in "
            f"flight, the most the memory budget holds"
        )
    else:
        what = (
            f"the run served {count(v.requests)} requests by {v.stopped_at:,.1f} s, twice its "
            f"request budget (most held by {v.service}{rho}); raise it with --max-requests"
        )
    return _Verdict(what)


class _Verdict(TwinError):
    exit_code = VERDICT_EXIT
    label = "stopped"


def load_documents(
    topology: Path, scenario: Path | None, policy: Path | None, overrides: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """Load and cross-check the three documents; every problem is one InputError line."""
    from twin.io import DocProblem, parse_model
    from twin.policy import Policy
    from twin.scenario import Scenario
    from twin.topology import Topology

    topo = Topology.load(topology)
    sc = Scenario.load_file(scenario) if scenario else Scenario()
    if overrides:
        data = sc.model_dump(mode="json", exclude_none=True)
        data.update(overrides)
        sc = parse_model(Scenario, data, source="command line")
    pol = Policy.load_file(policy) if policy else None
    for doc, path in ((sc, scenario or "scenario"), (pol, policy)):
        if doc is None:
            continue
        try:
            doc.check_against(topo)
        except DocProblem as exc:
            from twin.io import _located, read_yaml

            text = read_yaml(path)[1] if isinstance(path, Path) else None
            raise _located(exc.loc, exc.message, str(path), text) from None
    return topo, sc, pol


def _simulate(
    topology: Path,
    scenario: Path | None,
    policy: Path | None,
    duration: float | None,
    warmup: float | None,
    seed: int | None,
    replications: int,
    workers: int,
    out: Path,
    trace_sample: float,
    series: str,
    budget: Budget,
) -> None:
    if series not in ("auto", "all", "entries"):
        raise InputError(f"--series: expected auto, all or entries, got {series!r}")
    overrides: dict[str, Any] = {}
    if duration is not None:
        overrides["duration"] = duration
    if warmup is not None:
        overrides["warmup"] = warmup
    if seed is not None:
        overrides["seed"] = seed
    topo, sc, pol = load_documents(topology, scenario, policy, overrides)
    from twin.io import output_dir
    from twin.sim.budget import check_run

    check_run(topo, sc, pol, budget, series=series, trace_sample=trace_sample)
    output_dir(out)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from twin.replicate import combine, run_replications
    from twin.report import write_report
    from twin.results import write_json
    from twin.sim import Simulation

    console = Console(stderr=True)
    started = time.perf_counter()
    show = console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show,
    ) as bar:
        if replications == 1:
            task = bar.add_task(f"simulating {topo.name}", total=sc.duration)
            sim = Simulation(topo, sc, pol, series=series, trace_sample=trace_sample, budget=budget)
            results = [sim.run(progress=lambda t: bar.update(task, completed=t))]
        else:
            task = bar.add_task(f"{replications} replications of {topo.name}", total=replications)
            results = run_replications(
                topo,
                sc,
                pol,
                replications=replications,
                workers=workers,
                trace_sample=trace_sample,
                on_done=lambda n: bar.update(task, completed=n),
                budget=budget,
            )
    summary = combine(results).model_copy(
        update={"wall_seconds": time.perf_counter() - started, "topology": topo.name}
    )
    if summary.verdict is not None:
        write_json(out / "summary.json", summary)
        raise stopped(summary)
    plot_df = results[0].timeseries.frame()
    results[0].write(out, series=plot_df)
    write_json(out / "summary.json", summary)
    if replications > 1:
        import pandas as pd

        frames = []
        for i, r in enumerate(results):
            f = r.timeseries.frame() if i else plot_df.copy()
            f.insert(0, "replication", i)
            frames.append(f)
        series_df = pd.concat(frames, ignore_index=True)
        series_df.to_parquet(out / "timeseries.parquet", index=False)
        plot_df = frames[0]
    write_report(out / "report.html", summary, plot_df, title=f"Shadow Twin: {topo.name}")
    _print_table(summary, out)


def _print_table(summary: Summary, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v * 1000:,.1f} ms"

    t = Table(
        title=f"{summary.topology or ''}: {summary.requests:,.0f} requests",
        title_justify="left",
    )
    for col in ("succeeded", "failed", "availability", "p50", "p95", "p99", "mean"):
        t.add_column(col, justify="right")
    lat = summary.latency
    avail = summary.availability
    t.add_row(
        f"{summary.succeeded:,.0f}",
        f"{summary.failed:,.0f}",
        "–" if avail is None else f"{avail * 100:.3f}%",
        ms(lat.p50),
        ms(lat.p95),
        ms(lat.p99),
        ms(lat.mean),
    )
    console = Console()
    console.print(t)
    if summary.failures:
        console.print(
            "failures: " + ", ".join(f"{k} {v:,.0f}" for k, v in summary.failures.items())
        )
    verdicts = (
        ("latency_p99", summary.slo.latency_p99),
        ("availability", summary.slo.availability),
    )
    for name, s in verdicts:
        if s is None:
            continue
        value = "–" if s.value is None else f"{s.value:.4g}"
        verdict = "met" if s.met else "MISSED"
        console.print(f"SLO {name}: {verdict} (target {s.target}, value {value})")
    console.print(
        f"wrote {out}/summary.json, timeseries.parquet, report.html "
        f"({summary.wall_seconds:.1f} s wall)"
    )


@handles_errors
def check(
    topology: Annotated[Path, typer.Argument(help="Topology YAML.")],
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML.")] = None,
    max_requests: Annotated[str | None, typer.Option(help=MAX_REQUESTS_HELP)] = None,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    """Check documents without running them: the offered utilisation of every service at the
    peak load, whether the system is stable at that load, and the work a run would need.

    Exit 2 when a document is wrong or ``twin simulate`` would refuse the run for its budget;
    a service offered a utilisation of 1 or more is reported (``unstable at this load``) with
    exit 0, since a run may still be short enough to finish.
    """
    from twin.sim.budget import Budget, check_run, count

    topo, sc, pol = load_documents(topology, scenario, policy, {})
    budget = Budget.from_limits(max_requests, max_memory)
    est = check_run(topo, sc, pol, budget)
    g = topo.service_graph()
    peak = est.peak
    worst, rho = peak.busiest
    typer.echo(
        f"ok: {topo.name}: {g.number_of_nodes()} services, {g.number_of_edges()} call edges; "
        f"busiest {worst} at {_pct(rho)} offered utilisation"
        + (f" (at {peak.time:g} s)" if peak.time > 0 else "")
    )
    width = max(len(n) for n in peak.utilisation)
    for name, r in sorted(peak.utilisation.items(), key=lambda kv: (-kv[1], kv[0])):
        flag = "  saturated" if r >= 1.0 else ""
        typer.echo(f"  {name:<{width}}  {_pct(r):>8}{flag}")
    if est.saturates is not None:
        at, name, r = est.saturates
        typer.echo(
            f"unstable at this load: {name} saturates first (offered utilisation {_pct(r)} "
            f"from {at:g} s)"
        )
    typer.echo(
        f"work: {est.describe()}; budget {count(budget.max_requests)} requests, "
        f"{_size(budget.max_memory)}"
    )


def _pct(x: float) -> str:
    if not math.isfinite(x):
        return "unbounded"
    return f"{x:.0%}" if x < 100 else f"{x * 100:.3g}%"


def _size(n: float) -> str:
    from twin.sim.budget import size

    return size(n)


@handles_errors
def generate(
    services: Annotated[int, typer.Option(min=2, help="How many services.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 1,
    out: Annotated[Path, typer.Option(help="Topology YAML to write.")] = Path("synthetic.yaml"),
) -> None:
    """Generate a large synthetic topology shaped like published production call graphs."""
    from twin.synthetic import generate as gen

    topo = gen(services, seed=seed)
    try:
        topo.to_yaml(out)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", source=str(out)) from None
    typer.echo(f"wrote {out}: {len(topo.services)} services")
