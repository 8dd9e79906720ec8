"""``twin watch``: the shadow beside production, forecasting, recognising and alerting.

The work is :func:`twin.predict.outputs.run_watch`; this module reads the options, shows
progress on replays, and, with ``--act``, wires the enforcer's safety net (bounds, change
rate limit, operator override) in front of the learned policy's decisions: the library
never imports the agents.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from twin.cli.errors import handles_errors


@handles_errors
def watch(
    topology: Annotated[Path, typer.Argument(help="The calibrated topology YAML.")],
    out: Annotated[Path, typer.Option(help="Output folder (alerts.jsonl, report.html).")],
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus base URL (polls query_range).")
    ] = None,
    replay: Annotated[Path | None, typer.Option(help="Recorded telemetry folder.")] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="nezha, petshop, prometheus-dump or generic.")
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="Metric-name mapping YAML (as twin calibrate).")
    ] = None,
    window: Annotated[
        float | None, typer.Option(help="Seconds per window (default: the data's own).")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Failure-mode database URL (mitigations; alerts stored).")
    ] = None,
    horizon: Annotated[float, typer.Option(help="Look-ahead of P(breach), seconds.")] = 1800.0,
    webhook: Annotated[
        str | None, typer.Option(help="Alertmanager-compatible webhook URL.")
    ] = None,
    slo_p99: Annotated[
        float | None, typer.Option(help="Entry p99 objective, seconds (default: topology's).")
    ] = None,
    slo_availability: Annotated[
        float | None, typer.Option(help="Availability objective (default: topology's).")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Learned policy (policy.json from twin export): its decisions."),
    ] = None,
    act: Annotated[
        bool,
        typer.Option(help="Apply the policy's decisions through the enforcer's safety net."),
    ] = False,
    override: Annotated[
        Path | None, typer.Option(help="Operator override file (with --act); it wins.")
    ] = None,
    polls: Annotated[
        int | None, typer.Option(min=1, help="Stop a live watch after N windows.")
    ] = None,
    history: Annotated[
        float | None,
        typer.Option(
            help="Seconds of telemetry read only to learn what normal is before judging "
            "(live: fetched before the first poll, default 14400; replay: the first ones, "
            "default 0)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the Monte Carlo look-ahead and of training.")
    ] = 1,
    recogniser: Annotated[
        str | None,
        typer.Option(
            help="Name kind and root cause with the classifier trained on the twin's "
            "failures: a folder holding one, or 'auto' (trained once on the replay, cached)."
        ),
    ] = None,
) -> None:
    """Watch production beside the twin: alerts with P(breach), root cause and mitigation."""
    from twin.calibrate.metrics import MetricMap
    from twin.errors import InputError
    from twin.io import load_model
    from twin.predict.outputs import WatchRun, run_watch
    from twin.predict.sources import FORMATS, check_history
    from twin.predict.watch import WatchConfig
    from twin.topology import Topology

    if format is not None and format not in FORMATS:
        raise InputError(f"watch: --format {format!r}: expected one of {', '.join(FORMATS)}")
    if not (math.isfinite(horizon) and horizon > 0):
        raise InputError(f"watch: --horizon {horizon}: must be a positive number of seconds")
    if window is not None and not (math.isfinite(window) and window > 0):
        raise InputError(f"watch: --window {window}: must be a positive number of seconds")
    if slo_p99 is not None and not (math.isfinite(slo_p99) and slo_p99 > 0):
        raise InputError(f"watch: --slo-p99 {slo_p99}: must be a positive number of seconds")
    if slo_availability is not None and not 0 < slo_availability < 1:
        raise InputError(f"watch: --slo-availability {slo_availability}: must be in (0, 1)")
    if history is not None:
        check_history(history)
    if act and policy is None:
        raise InputError("watch: --act needs --policy (the enforcer's bounds come from it)")
    if override is not None and not act:
        raise InputError("watch: --override applies only with --act")
    topo = load_model(Topology, topology)
    config = WatchConfig(
        horizon_s=horizon, seed=seed, slo_latency_p99=slo_p99, slo_availability=slo_availability
    )
    run = WatchRun(
        topology=topo,
        out=out,
        prometheus=prometheus,
        replay=replay,
        format=format,
        mapping=MetricMap.load(mapping) if mapping else None,
        window_s=window,
        db=db,
        webhook=webhook,
        config=config,
        polls=polls,
        history_s=history,
        title=f"twin watch {replay or prometheus}",
        recogniser=recogniser,
        seed=seed,
    )
    mitigation, on_alerts, on_window = (None, None, None)
    if policy is not None:
        mitigation, on_alerts, on_window = _policy_hooks(
            policy, override if act else None, act, topo
        )
    bar: Any = None
    trainbar: Any = None

    def training(done: int, total: int) -> None:
        nonlocal trainbar
        if trainbar is None:
            trainbar = typer.progressbar(length=total, label="training the recogniser", file=None)
            trainbar.__enter__()
        trainbar.update(1)
        if done == total:
            trainbar.__exit__(None, None, None)

    def progress(i: int, total: int | None) -> None:
        nonlocal bar
        if total is None:
            return
        if bar is None:
            bar = typer.progressbar(length=total, label="replaying", file=None)
            bar.__enter__()
        bar.update(1)

    try:
        result = run_watch(
            run,
            progress=progress,
            mitigation=mitigation,
            on_alerts=on_alerts,
            on_window=on_window,
            training=training,
        )
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    typer.echo(
        f"watch: {result.windows} windows in {result.wall_seconds:.1f} s; "
        f"{result.alerts_firing} alert(s) fired, {result.alerts_resolved} resolved"
    )
    typer.echo(f"watch: {result.recogniser}")
    for p in result.problems[:10]:
        typer.echo(f"watch: {p}", err=True)
    typer.echo(f"watch: wrote {result.out / 'alerts.jsonl'} and {result.out / 'report.html'}")


def _policy_hooks(
    policy: Path, override: Path | None, act: bool, topology: Any
) -> tuple[Any, Any, Any]:
    """The learned policy as the mitigation source, and with ``act`` its decision sent
    through the enforcer (bounds, change rate limit, operator override) for every firing
    alert; the enforcer's record is printed, as ``twin enforce`` prints it.

    The enforcer reads the window the alert was raised on as its snapshot (per service:
    p99 latency, error rate from the success ratio, CPU as utilisation, replicas from the
    topology). A window that lacks one of them is a missing reading, so the enforcer holds
    and says which (as it does for a missing Prometheus series)."""
    from agents.export.policy_file import PolicyFile
    from agents.runtime import Enforcer, MetricsUnavailable, Snapshot, describe, rules_decider
    from agents.spaces import ServiceReading
    from twin.predict import sources as src
    from twin.predict.watch import Candidate

    pf = PolicyFile.load(policy)
    decide = rules_decider(pf) if pf.rules is not None else None
    if decide is None:
        from agents.runtime import onnx_decider

        decide = onnx_decider(pf, policy)

    class _LatestWindow:
        """The enforcer's metric source: the window being judged."""

        def __init__(self) -> None:
            self.window: src.Window | None = None

        def see(self, w: src.Window) -> None:
            self.window = w

        def read(self, now: float) -> Snapshot:
            w = self.window
            if w is None:
                raise MetricsUnavailable("no window read yet")
            readings = {}
            for name in pf.observation.services:
                got = w.services.get(name, {})
                need = {
                    "p99": got.get(src.P99),
                    "success": got.get(src.SUCCESS),
                    "cpu": got.get(src.CPU),
                }
                missing = [k for k, v in need.items() if v is None or not math.isfinite(v)]
                if missing:
                    raise MetricsUnavailable(
                        f"window at {w.time:.0f}: {name} has no {', '.join(missing)} reading"
                    )
                svc = topology.services.get(name)
                readings[name] = ServiceReading(
                    p99_seconds=max(0.0, float(need["p99"] or 0.0)),
                    error_rate=min(1.0, max(0.0, 1.0 - float(need["success"] or 0.0))),
                    utilization=max(0.0, float(need["cpu"] or 0.0)),
                    replicas=svc.replicas if svc is not None else 1,
                )
            return Snapshot(w.time, readings)

    source = _LatestWindow()
    enforcer = Enforcer(pf, source, decide, override_path=override)

    def mitigation(kind: str, target: str) -> Candidate | None:
        return Candidate(
            name=f"learned policy {policy.name}",
            source="policy",
            policy=pf.fallback.model_dump(mode="json", exclude_none=True),
        )

    def on_alerts(alerts: list[Any]) -> None:
        if not act:
            return
        for a in alerts:
            if a.status == "firing":
                rec = enforcer.step(a.time)
                typer.echo(f"watch: act: {describe(rec)}")

    return mitigation, on_alerts, source.see
