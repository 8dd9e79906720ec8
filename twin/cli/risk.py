"""``twin risk``: incident history + campaign results (+ chaos results) -> risk.json and a report.

The assessment and the shape of ``risk.json`` are :mod:`twin.bayes.riskreport`; this module
reads the flags into a :class:`~twin.bayes.riskreport.RiskConfig` and writes the files.

Exit codes: 0 reported; 2 bad input (one line naming file, row and column); 3 refused
because the sampler's diagnostics failed (the reason is printed, and written with the
diagnostics to ``DIR/diagnostics.json`` and ``DIR/report.html``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin.cli.errors import handles_errors
from twin.errors import InputError

if TYPE_CHECKING:
    from twin.bayes.riskreport import RiskReport


@handles_errors
def risk(
    history: Annotated[Path, typer.Option(help="Incident log (CSV/JSON) or counts table.")],
    results: Annotated[Path, typer.Option(help="Campaign output directory (runs.parquet).")],
    db: Annotated[
        str | None, typer.Option(help="Failure-mode database URL (chaos-test results).")
    ] = None,
    horizon: Annotated[str, typer.Option(help="Risk horizon: 30d, 2w, 12h.")] = "30d",
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("risk-out"),
    topology: Annotated[
        Path | None, typer.Option(help="Topology YAML: the known services (default: campaign's).")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="Policy in force (default: the campaign's first).")
    ] = None,
    load: Annotated[float, typer.Option(min=0.0, help="Load multiplier to judge at.")] = 1.0,
    period: Annotated[str, typer.Option(help="Period length for the incident log.")] = "30d",
    method: Annotated[str, typer.Option(help="nutpie, pymc (NUTS) or advi (fast).")] = "nutpie",
    draws: Annotated[int, typer.Option(min=1, help="Draws per chain.")] = 2000,
    tune: Annotated[int, typer.Option(min=0, help="Tuning steps per chain.")] = 1000,
    chains: Annotated[int, typer.Option(min=1, help="Chains.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed.")] = 1,
    scenarios: Annotated[
        int, typer.Option(min=0, help="Also write N posterior scenario files to DIR/scenarios/.")
    ] = 0,
) -> None:
    """Failure probabilities, risk and remediation priorities (Bayesian, PyMC)."""
    _risk(
        history,
        results,
        db,
        horizon,
        out,
        topology,
        policy,
        load,
        period,
        method,
        draws,
        tune,
        chains,
        seed,
        scenarios,
    )


def _risk(
    history: Path,
    results: Path,
    db: str | None,
    horizon: str,
    out: Path,
    topology: Path | None,
    policy: str | None,
    load: float,
    period: str,
    method: str,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    scenarios: int,
) -> None:
    from twin.bayes.evidence import parse_horizon
    from twin.bayes.fit import METHODS

    horizon_days = parse_horizon(horizon)
    try:
        period_days = parse_horizon(period)
    except InputError as exc:
        raise InputError(exc.detail, source="--period") from None
    if method not in METHODS:
        raise InputError(f"expected one of {', '.join(METHODS)}, got {method!r}", source="--method")
    topo = None
    if topology is not None:
        from twin.topology import Topology

        topo = Topology.load(topology)
    from twin.io import output_dir

    output_dir(out)

    from twin.bayes.report import write_report
    from twin.bayes.risk import posterior_scenarios
    from twin.bayes.riskreport import RiskConfig, assess, refusal, risk_report
    from twin.io import dump_yaml, parse_model
    from twin.results import write_json

    config = parse_model(
        RiskConfig,
        {
            "history": history,
            "results": results,
            "db": db,
            "horizon_days": horizon_days,
            "period_days": period_days,
            "services": None if topo is None else list(topo.services),
            "policy": policy,
            "load": load,
            "method": method,
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "progress": sys.stderr.isatty(),
        },
        source="command line",
    )
    started = time.perf_counter()
    result = assess(config, on_evidence=lambda line: typer.echo(line, err=True))
    diag = [d.to_dict() for d in result.diagnostics]
    write_json(out / "diagnostics.json", {"ok": result.ok, "models": diag})
    if not result.ok or result.risk is None:
        refused = refusal(result)
        write_report(
            out / "report.html", None, result.diagnostics, result.notes, refused=str(refused)
        )
        stale = out / "risk.json"
        if stale.exists():  # an earlier report is kept, but not where it reads as this one's
            stale.replace(out / "risk.previous.json")
            refused.args = (f"{refused}; the earlier risk.json is now risk.previous.json",)
        raise refused
    report = risk_report(config, result, wall_seconds=time.perf_counter() - started)
    write_json(out / "risk.json", report.model_dump())
    write_report(out / "report.html", result.risk, result.diagnostics, result.notes)
    written = ["risk.json", "diagnostics.json", "report.html"]
    if scenarios and result.inputs is not None:
        sdir = out / "scenarios"
        sdir.mkdir(exist_ok=True)
        docs = posterior_scenarios(
            result.inputs, scenarios, seed=seed, horizon_days=horizon_days, topology=topo
        )
        for i, doc in enumerate(docs):
            (sdir / f"posterior-{i:03d}.yaml").write_text(dump_yaml(doc), encoding="utf-8")
        written.append(f"scenarios/ ({len(docs)})")
    _print_table(report, out, written)


def _print_table(report: RiskReport, out: Path, written: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    def iv(d: dict[str, float], spec: str) -> str:
        return f"{d['mean']:{spec}} [{d['lo']:{spec}}, {d['hi']:{spec}}]"

    t = Table(
        title=f"risk over {report.horizon_days:g} days (policy {report.policy}, "
        f"{report.interval:.0%} intervals)",
        title_justify="left",
    )
    for col in ("rank", "service", "fault", "breach minutes", "P(breach)", "RPN", "mitigation"):
        t.add_column(col, justify="left" if col in ("service", "fault", "mitigation") else "right")
    for m in report.failure_modes[:10]:
        mit = m["mitigation"]
        t.add_row(
            str(m["rank"]),
            m["service"],
            m["fault_kind"],
            iv(m["expected_breach_minutes"], ".1f"),
            iv(m["p_breach"], ".2f"),
            str(m["rpn"]["rpn"]),
            mit["policy"] if mit else "–",
        )
    console = Console()
    console.print(t)
    console.print(f"wrote {out}/: {', '.join(written)} ({report.wall_seconds:.1f} s wall)")
