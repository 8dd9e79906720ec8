"""``twin enforce``: run a learned policy against live metrics, behind its safety net."""

from __future__ import annotations

import math
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from twin.cli.errors import handles_errors

EMITS = ("dry-run", "json", "webhook")


@handles_errors
def enforce(
    policy: Annotated[Path, typer.Argument(help="policy.json written by `twin export`.")],
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus base URL (instant queries each interval).")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Metrics file to replay, one JSON snapshot per line.")
    ] = None,
    queries: Annotated[
        Path | None, typer.Option(help="YAML mapping features to PromQL (docs/enforce.md).")
    ] = None,
    override: Annotated[
        Path | None, typer.Option(help="Operator override file; re-read every interval.")
    ] = None,
    emit: Annotated[str, typer.Option(help="dry-run, json or webhook.")] = "dry-run",
    url: Annotated[str | None, typer.Option(help="Webhook URL (with --emit webhook).")] = None,
    rules: Annotated[
        bool, typer.Option(help="Decide with the distilled rules instead of the network.")
    ] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between decisions (default: the policy's).")
    ] = None,
    once: Annotated[bool, typer.Option(help="One decision, then exit.")] = False,
    max_decisions: Annotated[int | None, typer.Option(min=1, help="Stop after N.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    log: Annotated[
        Path | None, typer.Option(help="Append every decision here (JSON lines).")
    ] = None,
) -> None:
    """Decide mitigations each interval from live metrics; emit them; hold when unsure."""
    _enforce(
        policy,
        prometheus,
        metrics,
        queries,
        override,
        emit,
        url,
        rules,
        interval,
        once,
        max_decisions,
        duration,
        log,
    )


def _enforce(
    policy: Path,
    prometheus: str | None,
    metrics: Path | None,
    queries: Path | None,
    override: Path | None,
    emit: str,
    url: str | None,
    rules: bool,
    interval: float | None,
    once: bool,
    max_decisions: int | None,
    duration: float | None,
    log: Path | None,
) -> None:
    from agents.export.policy_file import PolicyFile
    from agents.runtime import (
        Enforcer,
        FileMetrics,
        MetricSource,
        PrometheusMetrics,
        PrometheusQueries,
        Webhook,
        describe,
        onnx_decider,
        rules_decider,
        run,
        to_json,
    )
    from twin.errors import InputError
    from twin.io import http_url, load_model

    if (prometheus is None) == (metrics is None):
        raise InputError("enforce: give exactly one of --prometheus URL or --metrics FILE")
    if emit not in EMITS:
        raise InputError(f"enforce: --emit {emit!r}: expected one of {', '.join(EMITS)}")
    if emit == "webhook" and not url:
        raise InputError("enforce: --emit webhook needs --url")
    if url is not None:
        http_url(url, "enforce: --url")
    if prometheus is not None:
        http_url(prometheus, "enforce: --prometheus")
    if interval is not None and not (math.isfinite(interval) and interval > 0):
        raise InputError(f"enforce: --interval {interval}: must be a positive number of seconds")
    if duration is not None and not duration > 0:
        raise InputError(f"enforce: --duration {duration}: must be a positive number of seconds")
    pf = PolicyFile.load(policy)
    decide = rules_decider(pf) if rules else onnx_decider(pf, policy)
    source: MetricSource
    if metrics is not None:
        source = FileMetrics(metrics)
    else:
        q = load_model(PrometheusQueries, queries) if queries else PrometheusQueries()
        source = PrometheusMetrics(str(prometheus), pf.observation.services, q)
    enforcer = Enforcer(pf, source, decide, override_path=override)

    def to_stdout(rec: dict[str, Any]) -> str | None:
        typer.echo(to_json(rec) if emit == "json" else describe(rec))
        return None

    if emit == "webhook":
        hook = Webhook(str(url))

        def emitter(rec: dict[str, Any]) -> str | None:
            typer.echo(describe(rec))
            return hook(rec)
    else:
        emitter = to_stdout

    def stop(signum: int, _: object) -> None:
        typer.echo(f"enforce: stopping on signal {signum}", err=True)
        sys.exit(0)

    # The handlers last as long as the loop: a caller that runs the command in-process (a
    # test, a notebook) gets its own back, and processes it forks later do not inherit them.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run(
            enforcer,
            emitter,
            interval=interval or pf.interval_seconds,
            max_decisions=1 if once else max_decisions,
            duration=duration,
            log_path=log,
            on_problem=lambda msg: typer.echo(f"enforce: {msg}", err=True),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
