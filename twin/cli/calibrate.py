"""``twin calibrate``: telemetry in, a twin out, and the twin checked against what was seen.

Lives above both ``twin.calibrate`` (which knows nothing of the simulator) and ``twin.sim``:
after building the topology it runs the twin at the observed load and puts each observed
figure next to the predicted one, so a user sees at once how far to trust the twin.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from twin.cli.errors import handles_errors
from twin.errors import InputError

ROUND = 6


def accuracy(pred: float, meas: float) -> float:
    """PerfSim's accuracy: 1 - |predicted - measured| / measured (NaN when measured is 0).
    The one definition behind every accuracy figure: reports here and the experiments."""
    return 1.0 - abs(pred - meas) / abs(meas) if meas else float("nan")


def _acc(pred: float | None, meas: float | None) -> float | None:
    """:func:`accuracy`, or None where a figure is missing or the measured one is 0."""
    if pred is None or meas is None or meas == 0:
        return None
    return accuracy(pred, meas)


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None}
    return {
        "mean": float(np.mean(values)),
        "p50": float(np.quantile(values, 0.5)),
        "p95": float(np.quantile(values, 0.95)),
        "p99": float(np.quantile(values, 0.99)),
    }


def observed_figures(graph: Any, sampling: float = 1.0) -> dict[str, dict[str, Any]]:
    """Per entry operation and per service: rate, error rate and latency as traced."""
    w = max(graph.window, 1e-9)
    out: dict[str, dict[str, Any]] = {}
    per_service: dict[str, list[Any]] = {}
    for (svc, op), st in graph.operations.items():
        per_service.setdefault(svc, []).append(st)
        if st.roots:
            out[f"entry {svc}:{op}"] = {
                "rate": st.roots / w / sampling,
                "error_rate": st.error_rate,
                **_stats(st.durations),
            }
    for svc, sts in per_service.items():
        n = sum(s.instances for s in sts)
        out[f"service {svc}"] = {
            "rate": n / w / sampling,
            "error_rate": sum(s.errors for s in sts) / n if n else 0.0,
            **_stats(np.concatenate([s.durations for s in sts])),
        }
    return out


def predicted_figures(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The same figures from a twin summary."""
    secs = max(float(summary.get("measured_seconds") or 0.0), 1e-9)
    out: dict[str, dict[str, Any]] = {}
    for name, e in summary.get("entries", {}).items():
        req = e.get("requests", 0)
        out[f"entry {name}"] = {
            "rate": req / secs,
            "error_rate": e.get("failed", 0) / req if req else 0.0,
            **{k: e.get("latency", {}).get(k) for k in ("mean", "p50", "p95", "p99")},
        }
    for name, s in summary.get("services", {}).items():
        arr = s.get("arrivals", 0)
        out[f"service {name}"] = {
            "rate": arr / secs,
            "error_rate": s.get("failed", 0) / arr if arr else 0.0,
            **{k: s.get("latency", {}).get(k) for k in ("mean", "p50", "p95", "p99")},
        }
    return out


def compare(
    observed: dict[str, dict[str, Any]], predicted: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per scope: observed, predicted and accuracy of rate, mean, p95, p99; error
    rates compared by difference (percentage points), as accuracy on a rate near 0 is
    meaningless."""
    rows = []
    for scope, obs in observed.items():
        pred = predicted.get(scope, {})
        row: dict[str, Any] = {"scope": scope}
        for k in ("rate", "mean", "p95", "p99"):
            row[f"{k}_observed"] = obs.get(k)
            row[f"{k}_twin"] = pred.get(k)
            row[f"{k}_accuracy"] = _acc(pred.get(k), obs.get(k))
        row["error_rate_observed"] = obs.get("error_rate")
        row["error_rate_twin"] = pred.get("error_rate")
        e_o, e_t = obs.get("error_rate"), pred.get("error_rate")
        row["error_rate_diff_pp"] = None if e_o is None or e_t is None else 100.0 * (e_t - e_o)
        rows.append(row)
    return rows


def _write_atomic(path: Path, text: str) -> None:
    """Write beside the target and rename, so an interrupted run never leaves half a file
    where a good one was."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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


def run_calibration(
    *,
    traces: list[Path],
    out: Path,
    prometheus: str | None = None,
    metrics: Path | None = None,
    mapping: Path | None = None,
    start: str | None = None,
    end: str | None = None,
    step: float = 15.0,
    name: str | None = None,
    sampling: float = 1.0,
    workers: list[str] | None = None,
    demand: str = "auto",
    mask: Path | None = None,
    predict: float = 300.0,
    seed: int = 1,
    network: str = "floor",
) -> dict[str, Any]:
    """Everything ``twin calibrate`` does; returns the calibration record (also written)."""
    from twin.calibrate.build import BuildOptions, build_topology
    from twin.calibrate.callgraph import build_callgraph
    from twin.calibrate.mask import Masker
    from twin.calibrate.metrics import (
        MetricMap,
        PrometheusClient,
        load_dump,
        parse_time,
        summarize,
    )
    from twin.calibrate.service_time import MIN_FIT
    from twin.calibrate.traces import read_traces

    if demand not in ("auto", "cpu", "traces"):
        raise InputError(f"--demand: expected auto, cpu or traces, got {demand!r}")
    if network not in ("floor", "full"):
        raise InputError(f"--network: expected floor or full, got {network!r}")
    if prometheus and metrics:
        raise InputError("give --prometheus or --metrics, not both")
    if not traces and not (prometheus or metrics):
        raise InputError("nothing to calibrate from: give --traces and/or --prometheus/--metrics")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create output directory: {exc.strerror}", source=str(out)
        ) from None
    masker = Masker.load(mask) if mask else Masker()
    record: dict[str, Any] = {"inputs": {"traces": [str(t) for t in traces]}}
    t_start, t_end = parse_time(start), parse_time(end)
    metric_figures: dict[str, Any] = {}
    if prometheus or metrics:
        mmap = MetricMap.load(mapping) if mapping else MetricMap()
        if prometheus:
            t_end = t_end if t_end is not None else time.time()
            t_start = t_start if t_start is not None else t_end - 3600.0
            dump = PrometheusClient(prometheus).fetch(mmap, t_start, t_end, step)
            _write_atomic(out / "metrics.json", json.dumps(dump))
            record["inputs"]["prometheus"] = prometheus
        else:
            assert metrics is not None
            dump = load_dump(metrics)
            record["inputs"]["metrics"] = str(metrics)
        metric_figures = summarize(dump, mmap, start=t_start, end=t_end)
        record["metrics"] = {k: v.to_dict() for k, v in metric_figures.items()}
    record["inputs"]["window"] = {"start": t_start, "end": t_end}
    opts = BuildOptions(
        name=name or (traces[0].stem if traces else "calibrated"),
        sampling=sampling,
        workers=_parse_workers(workers),
        network=network,
        source="twin calibrate from " + ", ".join(p.name for p in traces or [Path("metrics")]),
    )
    if traces:
        spans, report = read_traces(traces, masker=masker)
        if t_start is not None:
            spans = spans[spans["start"] >= t_start]
        if t_end is not None:
            spans = spans[spans["end"] <= t_end]
        record["read"] = report.to_dict()
        for line in report.lines():
            typer.echo(line, err=True)
        if spans.empty:
            raise InputError("no usable spans in the trace file(s) (and window)")
        tmp = out / ".spans.parquet.tmp"
        spans.to_parquet(tmp, index=False)
        tmp.replace(out / "spans.parquet")
        graph = build_callgraph(spans)
        for svc, mf in metric_figures.items():
            if svc not in graph.services:
                continue
            opts.replicas[svc] = mf.replicas
            timed = sum(o.used for k, o in graph.operations.items() if k[0] == svc)
            thin = timed < MIN_FIT
            if mf.demand and (demand == "cpu" or (demand == "auto" and thin)):
                opts.demand[svc] = mf.demand
    else:
        graph = _graph_from_metrics(metric_figures)
    cal = build_topology(graph, opts)
    topo = cal.topology
    _write_atomic(out / "topology.yaml", topo.to_yaml())
    record.update(cal.record)
    faults = []
    for svc in topo.services:
        sts = [o for k, o in graph.operations.items() if k[0] == svc]
        n = sum(o.instances for o in sts)
        p = sum(o.intrinsic_errors for o in sts) / n if n else 0.0
        if p > 0:
            faults.append({"kind": "error_rate", "target": svc, "probability": round(p, ROUND)})
    scenario_data: dict[str, Any] = {
        "duration": max(predict, 1.0),
        "warmup": min(30.0, predict * 0.1),
        "seed": seed,
        "faults": faults,
    }
    from twin.io import dump_yaml

    _write_atomic(out / "scenario.yaml", dump_yaml(scenario_data))
    observed = observed_figures(graph, sampling) if traces else {}
    for svc, mf in metric_figures.items():
        observed[f"metrics {svc}"] = {
            "rate": mf.rate,
            "error_rate": mf.error_rate,
            "mean": mf.mean,
            "p50": mf.p50,
            "p95": mf.p95,
            "p99": mf.p99,
        }
    rows: list[dict[str, Any]] = []
    if predict > 0:
        from twin.io import parse_model
        from twin.scenario import Scenario
        from twin.sim import Simulation

        sc = parse_model(Scenario, scenario_data, source="calibration scenario")
        summary = Simulation(topo, sc).run().summary
        predicted = predicted_figures(summary)
        for svc in metric_figures:
            if f"service {svc}" in predicted:
                predicted[f"metrics {svc}"] = predicted[f"service {svc}"]
        rows = compare(observed, predicted)
        record["comparison"] = rows
    from twin.results import write_json

    write_json(out / "calibration.json", record)
    _write_atomic(out / "report.md", render_report(topo.name, record, rows))
    return record


def _graph_from_metrics(figures: dict[str, Any]) -> Any:
    """No traces: each service an entry of its own, timed by its metrics (no edges known)."""
    from twin.calibrate.callgraph import CallGraph, OperationStats, ServiceStats

    if not figures:
        raise InputError("the metrics hold no request or CPU series for any service")
    ops = {}
    services = {}
    window = max((f.window for f in figures.values()), default=1.0) or 1.0
    for svc, f in figures.items():
        t = f.demand if f.demand else f.mean
        if not t or f.requests <= 0:
            continue
        samples = np.full(8, t)
        n = round(f.requests)
        ops[(svc, "default")] = OperationStats(
            service=svc,
            operation="default",
            instances=n,
            used=len(samples),
            from_partial=False,
            durations=np.full(8, f.mean or t),
            self_times=samples,
            errors=round((f.error_rate or 0.0) * n),
            intrinsic_errors=round((f.error_rate or 0.0) * n),
            roots=n,
        )
        services[svc] = ServiceStats(svc, [f"{svc}-{i}" for i in range(f.replicas)], 1, 1)
    if not ops:
        raise InputError("the metrics hold no service with both requests and a latency or CPU")
    return CallGraph(services, ops, set(), {}, window, 0)


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if unit == "ms":
        return f"{v * 1000:.2f}"
    if unit == "%":
        return f"{v * 100:.1f}%"
    return f"{v:.3g}"


def render_report(name: str, record: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """A Markdown report: what was read, the graph, the fits, and observed vs twin."""
    lines = [f"# Calibration of {name}", ""]
    read = record.get("read")
    if read:
        lines += [
            f"Read {read['spans']} spans in {read['traces']} traces from "
            f"{len(read['files'])} file(s); {read['masked_values']} sensitive value(s) masked.",
            "",
        ]
        for k, v in sorted(read["problems"].items()):
            lines.append(f"- {k}: {v}")
        if read["partial_traces"]:
            lines.append(
                f"- {read['partial_traces']} partial trace(s): call edges kept, timings left out"
            )
        lines.append("")
    cg = record.get("callgraph", {})
    if cg:
        lines += [
            f"Services: {len(cg['services'])}; call edges: {len(cg['edges'])}; traced window "
            f"{cg['window_seconds']:.1f} s.",
            "",
            "Edges: " + ", ".join(f"`{e}`" for e in cg["edges"]),
            "",
        ]
    fits = record.get("service_times", {})
    if fits:
        lines += [
            "## Service times (self time per operation)",
            "",
            "| operation | n | mean ms | cv | chosen | why |",
            "|---|---|---|---|---|---|",
        ]
        for k, f in fits.items():
            lines.append(
                f"| `{k}` | {f['n']} | {f['mean'] * 1000:.3f} | {f['cv']:.2f} | {f['family']} "
                f"| {f['reason']} |"
            )
        lines.append("")
    for note in record.get("notes", []):
        lines.append(f"- {note}")
    if rows:
        lines += [
            "",
            "## Observed vs twin at the observed load",
            "",
            "Accuracy = 1 − |twin − observed| / observed; error rates differ in percentage points.",
            "",
            "| scope | rate obs | rate twin | mean ms obs | twin | acc | p95 ms obs | twin | acc "
            "| p99 ms obs | twin | acc | errors obs | twin |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| `{r['scope']}` | {_fmt(r['rate_observed'])} | {_fmt(r['rate_twin'])} "
                f"| {_fmt(r['mean_observed'], 'ms')} | {_fmt(r['mean_twin'], 'ms')} "
                f"| {_fmt(r['mean_accuracy'], '%')} "
                f"| {_fmt(r['p95_observed'], 'ms')} | {_fmt(r['p95_twin'], 'ms')} "
                f"| {_fmt(r['p95_accuracy'], '%')} "
                f"| {_fmt(r['p99_observed'], 'ms')} | {_fmt(r['p99_twin'], 'ms')} "
                f"| {_fmt(r['p99_accuracy'], '%')} "
                f"| {_fmt(r['error_rate_observed'], '%')} | {_fmt(r['error_rate_twin'], '%')} |"
            )
    return "\n".join(lines) + "\n"


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
            "rest is queueing at the callee) or full (the whole fitted gap)."
        ),
    ] = "floor",
) -> None:
    """Calibrate a twin from traces and/or Prometheus metrics; compare it with what was seen."""
    files = [*(traces or []), *(more_traces or [])]
    record = run_calibration(
        traces=files,
        out=out,
        prometheus=prometheus,
        metrics=metrics,
        mapping=mapping,
        start=start,
        end=end,
        step=step,
        name=name,
        sampling=sampling,
        workers=workers,
        demand=demand,
        mask=mask,
        predict=predict,
        seed=seed,
        network=network,
    )
    cg = record.get("callgraph", {})
    typer.echo(
        f"wrote {out}/topology.yaml ({len(cg.get('services', {}))} services, "
        f"{len(cg.get('edges', []))} call edges), calibration.json, report.md"
    )
    for r in record.get("comparison", []):
        if r["scope"].startswith("entry"):
            acc = r.get("mean_accuracy")
            typer.echo(
                f"{r['scope']}: mean observed {_fmt(r['mean_observed'], 'ms')} ms, "
                f"twin {_fmt(r['mean_twin'], 'ms')} ms (accuracy {_fmt(acc, '%')})"
            )


__all__ = ["calibrate", "compare", "observed_figures", "predicted_figures", "run_calibration"]
