"""``twin schedule``: campaigns on a cron-like schedule (the library is
:mod:`twin.campaign.schedule`)."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from twin.cli.campaign import DB_HELP
from twin.cli.errors import handles_errors
from twin.errors import InputError


def _until(text: str | None) -> datetime | None:
    if text is None:
        return None
    from twin.campaign.cron import as_utc

    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InputError(
            f"--until: {text!r} is not an ISO 8601 time (e.g. 2026-03-01T06:00Z)"
        ) from None


@handles_errors
def schedule(
    spec: Annotated[Path, typer.Argument(help="Schedule YAML (docs/campaigns.md).")],
    db: Annotated[str | None, typer.Option(help=DB_HELP)] = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="Do not record in the database.")] = False,
    out: Annotated[Path, typer.Option(help="Output directory: one folder per run.")] = Path(
        "schedule-out"
    ),
    state: Annotated[
        Path | None, typer.Option(help="State file (default: OUT/schedule-state.json).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
    until: Annotated[
        str | None, typer.Option(help="Stop at this UTC time (ISO 8601, e.g. 2026-03-01T06:00Z).")
    ] = None,
    max_runs: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many occurrences have run.")
    ] = None,
) -> None:
    """Run campaigns on a schedule, in the foreground until SIGTERM (or --once, --until,
    --max-runs). Resumable: a restarted scheduler never repeats a finished occurrence and
    runs missed ones at most once (see catch_up)."""
    from twin.campaign.schedule import Scheduler, load_schedule

    stop_at = _until(until)
    sched = load_schedule(spec)
    store = None
    if not no_db:
        from twin.store import Store

        store = Store(db)
    try:
        s = Scheduler(
            sched,
            spec,
            out,
            store=store,
            state_file=state,
            log=lambda line: typer.echo(f"{datetime.now().astimezone():%H:%M:%S} {line}", err=True),
        )

        def on_term(signum: int, frame: FrameType | None) -> None:
            if s.stop_event.is_set():
                raise SystemExit(128 + signum)  # a second signal: stop at once
            s.stop()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        ran = s.run(once=once, until=stop_at, max_runs=max_runs)
    finally:
        if store is not None:
            store.close()
    where = f"; results in {store.url}" if store is not None else ""
    typer.echo(f"{ran} occurrence(s) run; state in {s.state_file}{where}")
