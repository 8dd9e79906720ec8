"""``twin``: the command line, one typer app over thin command modules.

Each command group has its module here (:mod:`.simulate`, :mod:`.calibrate`, :mod:`.campaign`,
:mod:`.schedule`, :mod:`.risk`, :mod:`.train`, :mod:`.export`, :mod:`.enforce`); each command
calls a library function and prints what it returned. Heavy imports (the engine, PyMC, torch,
onnxruntime) happen inside the commands, so ``twin --help`` is instant.

Every command ends through the one handler in :mod:`.errors`: bad input of any kind prints one
line, ``twin: error: file:line: path.in.doc: what was expected``, and exits 2; a refusal on
the merits exits 3; the global ``--traceback`` shows the Python traceback instead.
"""

from __future__ import annotations

from typing import Annotated

import typer

from twin.cli import (
    calibrate,
    campaign,
    change,
    drift,
    enforce,
    export,
    mirror,
    replay,
    risk,
    rollout,
    schedule,
    serve,
    simulate,
    train,
    watch,
)
from twin.cli.errors import request_traceback

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Shadow Twin: a simulated shadow of your microservices, for faults and mitigations.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    traceback: Annotated[bool, typer.Option("--traceback", help="Show Python tracebacks.")] = False,
) -> None:
    request_traceback(traceback)


app.command("simulate")(simulate.simulate)
app.command("check")(simulate.check)
app.command("generate")(simulate.generate)
app.command("risk")(risk.risk)
app.command("calibrate")(calibrate.calibrate)
app.command("campaign")(campaign.campaign)
app.command("schedule")(schedule.schedule)
app.command("ingest")(campaign.ingest)
app.command("modes")(campaign.modes)
app.command("availability")(campaign.availability)
app.command("evaluate")(train.evaluate)
app.command("train")(train.train)
app.command("enforce")(enforce.enforce)
app.command("export")(export.export)
app.command("serve")(serve.serve)
app.add_typer(serve.tokens_app, name="tokens")
app.command("drift")(drift.drift)
app.command("mirror")(mirror.mirror)
app.command("watch")(watch.watch)
app.command("check-change")(change.check_change)
app.command("changes")(change.changes)
app.command("rollout")(rollout.rollout)
app.command("replay")(replay.replay)


def main() -> None:
    """The ``twin`` console script."""
    app()


__all__ = ["app", "main"]
