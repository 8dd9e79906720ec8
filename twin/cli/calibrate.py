"""``twin calibrate``: telemetry in, a twin out, and the twin checked against what was seen.

The work is :func:`twin.calibrate.run_calibration`; this module reads the flags into a
:class:`twin.calibrate.CalibrationConfig` and prints the record it returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from twin.cli.errors import handles_errors
from twin.errors import InputError

T = TypeVar("T")

DEMANDS = ("auto", "cpu", "traces")
NETWORKS = ("floor", "full")


def _parse_workers(items: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items or []:
        svc, sep, n = item.rpartition("=")
        if not sep:
            svc, n = "*", item
        try:
            out[svc or "*"] = int(n)
        except ValueError:
            raise InputError(f"--workers: expected N or SERVICE=N, got {item!r}") from None
        if out[svc or "*"] < 1:
            raise InputError(f"--workers: must be at least 1, got {item!r}")
    return out


def _until_terminated(work: Callable[[], T]) -> T:
    """Run ``work`` with SIGTERM raising SystemExit (as SIGINT raises KeyboardInterrupt), so a
    calibration stopped by a supervisor or a timeout cleans up what it staged, as a failed one
    does. The previous handler is restored afterwards (in-process callers keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        return work()

    def stop(signum: int, _: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return work()
    finally:
        signal.signal(signal.SIGTERM, previous)


@handles_errors
def calibrate(
    out: Annotated[Path, typer.Option(help="Output directory (topology.yaml, calibration.json).")],
    traces: Annotated[
        list[Path] | None,
        typer.Option(help="Trace file: OTLP/JSON, Jaeger JSON, Zipkin v2 JSON, CSV/Parquet."),
    ] = None,
    more_traces: Annotated[
        list[Path] | None, typer.Argument(help="More trace files (so `--traces a b c` works).")
    ] = None,
    prometheus: Annotated[str | None, typer.Option(help="Prometheus base URL.")] = None,
    metrics: Annotated[Path | None, typer.Option(help="query_range JSON dump.")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Metric-name mapping YAML.")] = None,
    start: Annotated[str | None, typer.Option(help="Window start: unix s or ISO 8601.")] = None,
    end: Annotated[str | None, typer.Option(help="Window end: unix s or ISO 8601.")] = None,
    step: Annotated[float, typer.Option(help="Prometheus step, seconds.")] = 15.0,
    name: Annotated[str | None, typer.Option(help="Topology name.")] = None,
    sampling: Annotated[
        float, typer.Option(help="Fraction of requests that were traced (scales rates).")
    ] = 1.0,
    workers: Annotated[
        list[str] | None, typer.Option(help="Workers per replica: N or SERVICE=N (repeatable).")
    ] = None,
    demand: Annotated[
        str, typer.Option(help="Service demand from: auto (CPU when traces are thin), cpu, traces.")
    ] = "auto",
    mask: Annotated[Path | None, typer.Option(help="Masking patterns YAML.")] = None,
    predict: Annotated[
        float, typer.Option(help="Simulated seconds for the observed-vs-twin check (0: skip).")
    ] = 300.0,
    seed: Annotated[int, typer.Option(help="Seed of the check run.")] = 1,
    network: Annotated[
        str,
        typer.Option(
            help="Link latency from client-minus-server time: floor (10th percentile; the "
            "rest is queueing at the callee) or full (the whole fitted gap, per request "
            "class and drawn once per request and edge; the default)."
        ),
    ] = "full",
    classes: Annotated[
        bool,
        typer.Option(
            help="Split each entry operation into request classes by call signature "
            "(--no-classes: one operation per entry, its calls drawn independently)."
        ),
    ] = True,
    cold_starts: Annotated[
        bool,
        typer.Option(
            help="Fit each traced service's cold starts (its own time against the gap since "
            "its instance's previous request): those that show them get cold_start and "
            "keep_alive."
        ),
    ] = False,
    keep_transients: Annotated[
        bool,
        typer.Option(
            "--keep-transients",
            help="Fit on every request, stalls included. By default requests that start in "
            "a transient episode (one series' spans stretched far beyond the rest of the "
            "window) are set aside and reported.",
        ),
    ] = False,
    manifests: Annotated[
        list[Path] | None,
        typer.Option(
            help="Kubernetes manifests (files or folders): each workload's resources.limits.cpu "
            "becomes its service's cpu_limit (repeatable)."
        ),
    ] = None,
    optional: Annotated[
        list[str] | None,
        typer.Option(
            help="CALLER->CALLEE: a failed call along this edge degrades but does not fail the "
            "caller (a page served without its ad), which a recording where nothing failed "
            "cannot show (repeatable)."
        ),
    ] = None,
) -> None:
    """Calibrate a twin from traces and/or Prometheus metrics; compare it with what was seen."""
    from twin.calibrate.run import CalibrationConfig, format_figure, run_calibration
    from twin.io import http_url, parse_model

    files = [*(traces or []), *(more_traces or [])]
    if demand not in DEMANDS:
        raise InputError(f"--demand: expected auto, cpu or traces, got {demand!r}")
    if network not in NETWORKS:
        raise InputError(f"--network: expected floor or full, got {network!r}")
    if prometheus and metrics:
        raise InputError("give --prometheus or --metrics, not both")
    if not files and not (prometheus or metrics):
        raise InputError("nothing to calibrate from: give --traces and/or --prometheus/--metrics")
    if prometheus:
        http_url(prometheus, "--prometheus")
    config = parse_model(
        CalibrationConfig,
        {
            "out": out,
            "traces": files,
            "prometheus": prometheus,
            "metrics": metrics,
            "mapping": mapping,
            "start": start,
            "end": end,
            "step_seconds": step,
            "name": name,
            "sampling": sampling,
            "workers": _parse_workers(workers),
            "demand": demand,
            "mask": mask,
            "predict_seconds": predict,
            "seed": seed,
            "network": network,
            "classes": classes,
            "cold_starts": cold_starts,
            "keep_transients": keep_transients,
            "manifests": manifests or [],
            "optional": optional or [],
        },
        source="command line",
    )
    record = _until_terminated(
        lambda: run_calibration(config, on_note=lambda line: typer.echo(line, err=True))
    )
    typer.echo(
        f"wrote {out}/topology.yaml ({record.services} services, "
        f"{record.edges} call edges), calibration.json, report.md"
    )
    for r in record.comparison:
        if r["scope"].startswith("entry"):
            acc = r.get("mean_accuracy")
            typer.echo(
                f"{r['scope']}: mean observed {format_figure(r['mean_observed'], 'ms')} ms, "
                f"twin {format_figure(r['mean_twin'], 'ms')} ms "
                f"(accuracy {format_figure(acc, '%')})"
            )
