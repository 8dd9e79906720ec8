"""``twin check-change`` and ``twin changes``: judge a change in the twin; list the judged.

``check-change`` exits 0 for go, 3 for no-go, 2 for bad input: a CI pipeline gates on it.
The method is :mod:`twin.change.check`; this module reads the files, renders client policy
as Istio YAML for the rollback signature (the mesh renderer lives with the exporters), and
writes the outputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin.cli.errors import handles_errors
from twin.errors import TwinError

if TYPE_CHECKING:
    from twin.change.rollback import ConfigFile
    from twin.policy import Policy
    from twin.topology import Topology


class NoGo(TwinError):
    """The change was judged no-go (exit 3); the reasons are in verdict.json."""

    exit_code = 3
    label = "no-go"


def _istio(policy: Policy, topology: Topology, callees: Sequence[str]) -> list[ConfigFile]:
    """The Istio resources of the given callees under ``policy`` (what reverting restores)."""
    import yaml

    from agents.export.istio import render
    from twin.change.rollback import ConfigFile

    files = render(policy, topology)
    out = []
    for svc in callees:
        resources = files.get(f"{svc}.yaml")
        if resources:
            text = yaml.safe_dump_all(resources, sort_keys=False)
            out.append(ConfigFile(format="istio", name=f"{svc}.yaml", text=text))
    return out


@handles_errors
def check_change(
    topology: Annotated[Path, typer.Argument(help="Topology YAML (the system as it runs).")],
    change: Annotated[Path, typer.Argument(help="Change YAML (the change set).")],
    policy: Annotated[Path | None, typer.Option(help="Policy YAML in force.")] = None,
    risk: Annotated[
        Path | None, typer.Option(help="risk.json from `twin risk` (default: fault catalogue).")
    ] = None,
    load: Annotated[
        float | None, typer.Option(min=0.0, help="Load multiplier (default 1: the peak).")
    ] = None,
    replications: Annotated[int, typer.Option(min=1, help="Paired runs under a fault.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed.")] = 1,
    requests_per_run: Annotated[
        float,
        typer.Option(min=1.0, help="Work budget of one run: requests, calls included."),
    ] = 40_000.0,
    db: Annotated[
        str | None, typer.Option(help="Failure-mode database URL: store the check there.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("change-out"),
) -> None:
    """Judge a change before it ships: verdict.json, rollback.json, report.html.

    Exit 0: go; 3: no-go (reasons printed and in verdict.json); 2: bad input."""
    from twin.change.check import CheckOptions, load_risk
    from twin.change.check import check_change as run_check
    from twin.change.document import ChangeFile
    from twin.change.report import write_outputs
    from twin.change.rollback import build_rollback
    from twin.io import output_dir
    from twin.policy import Policy
    from twin.topology import Topology

    topo = Topology.load(topology)
    pol = Policy.load_file(policy) if policy is not None else None
    changes = ChangeFile.load(change)
    risk_doc = load_risk(risk) if risk is not None else None
    options = CheckOptions(
        load=load,
        replications=replications,
        seed=seed,
        risk=risk_doc,
        requests_per_run=requests_per_run,
    )
    with typer.progressbar(length=2 * (replications + 1), label="paired runs", file=None) as bar:
        last = [0]

        def on_run(done: int, total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        result = run_check(topo, changes, pol, options, on_run=on_run)
    signature = build_rollback(
        changes.changes, result.reduced, service_p99=result.calm_p99, render_clients=_istio
    )
    output_dir(out)
    verdict = write_outputs(result, signature, out)
    if db is not None:
        from twin.change.history import record_check
        from twin.store import Store

        with Store(db) as store:
            record_check(store, verdict)
    v = result.verdict
    typer.echo(
        f"{v.name}: {v.decision}  risk {v.risk.mean:+.3f} [{v.risk.lo:+.3f}, {v.risk.hi:+.3f}]"
        f"  breach minutes {v.breach_minutes.mean:+.2f}  ({out}/verdict.json)"
    )
    for r in v.reasons:
        typer.echo(f"  - {r}")
    if v.decision == "no-go":
        raise NoGo(f"{len(v.reasons)} reason(s); see {out}/verdict.json")


@handles_errors
def changes(
    db: Annotated[str | None, typer.Option(help="Failure-mode database URL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Checks and rollouts in the database, with how well the checks predicted."""
    from twin.change.history import accuracy, accuracy_by_month, history
    from twin.store import Store

    with Store(db) as store:
        entries = history(store)
    acc = accuracy(entries)
    monthly = accuracy_by_month(entries)
    if as_json:
        doc = {"entries": [e.to_json() for e in entries], "accuracy": acc, "by_month": monthly}
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"{'submitted':25} {'name':32} {'decision':8} {'risk':>8} outcome")
    for e in entries:
        risk = f"{e.risk['mean']:+.3f}" if e.risk else "–"
        bad = e.observed_bad
        outcome = "–" if bad is None else ("bad" if bad else "fine")
        rolled = [r for r in e.rollouts if r["rolled_back"]]
        if rolled:
            ttr = rolled[0]["time_to_rollback"]
            outcome += f" (rolled back{'' if ttr is None else f' after {ttr:g} s'})"
        typer.echo(
            f"{e.submitted_at:25} {e.name[:32]:32} {e.decision or '–':8} {risk:>8} {outcome}"
        )
    a = acc["accuracy"]
    typer.echo(
        f"{acc['checks']} check(s), {acc['rollouts']} rollout(s), {acc['rollbacks']} rollback(s); "
        f"prediction accuracy {'–' if a is None else f'{a:.0%}'} over {acc['judged']} "
        f"(no-go and bad {acc['tp']}, no-go and fine {acc['fp']}, go and bad {acc['fn']}, "
        f"go and fine {acc['tn']})"
    )
    for m in monthly:
        if m["judged"]:
            typer.echo(f"  {m['month']}: accuracy {m['accuracy']:.0%} over {m['judged']}")
