"""A calibration run: telemetry in, a twin out, and the twin checked against what was seen.

:func:`run_calibration` takes a :class:`CalibrationConfig` and returns a
:class:`CalibrationRecord`, writing ``topology.yaml``, ``scenario.yaml``, ``calibration.json``
and ``report.md`` to the configured folder. After building the topology it runs the twin at
the observed load and puts each observed figure next to the predicted one, so a user sees at
once how far to trust the twin. This is the one module of the package that runs the
simulator; the readers and fitters beside it know nothing of it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.bounds import safe_name
from twin.calibrate.accuracy import accuracy_or_none
from twin.calibrate.declared import parse_edge, with_optional_calls
from twin.errors import InputError
from twin.faults import ErrorRateFault
from twin.io import output_dir
from twin.results import LatencyStats, Summary

ROUND = 6
DEMANDS = ("auto", "cpu", "traces")
NETWORKS = ("floor", "full")


class CalibrationConfig(BaseModel):
    """Everything one calibration needs: where the telemetry is, how to read it, where the
    twin goes. One document, so the command line, the experiments and scripts run the same
    calibration from the same inputs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path = Field(description="Folder written: topology.yaml, calibration.json, report.md.")
    traces: tuple[Path, ...] = Field(
        default=(), description="Trace files: OTLP/JSON, Jaeger JSON, Zipkin v2 JSON, CSV/Parquet."
    )
    prometheus: str | None = Field(default=None, description="Prometheus base URL.")
    metrics: Path | None = Field(default=None, description="A query_range JSON dump.")
    mapping: Path | None = Field(default=None, description="Metric-name mapping YAML.")
    start: str | None = Field(default=None, description="Window start: unix s or ISO 8601.")
    end: str | None = Field(default=None, description="Window end: unix s or ISO 8601.")
    step_seconds: float = Field(default=15.0, gt=0, description="Prometheus step, seconds.")
    name: str | None = Field(
        default=None, description="Topology name (default: the first trace file's stem)."
    )
    sampling: float = Field(
        default=1.0, gt=0, le=1, description="Fraction of requests traced (scales rates)."
    )
    workers: dict[str, int] = Field(
        default_factory=dict,
        description="Workers per replica by service; the key '*' sets every service's.",
    )
    demand: Literal["auto", "cpu", "traces"] = Field(
        default="auto",
        description="Service demand from: auto (CPU when traces are thin), cpu or traces.",
    )
    mask: Path | None = Field(default=None, description="Masking patterns YAML.")
    predict_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Simulated seconds of the observed-vs-twin check (0: skip).",
    )
    seed: int = Field(default=1, description="Seed of the check run.")
    network: Literal["floor", "full"] = Field(
        default="full",
        description="Link latency from client-minus-server time: floor (10th percentile; the "
        "rest is queueing at the callee) or full (the whole fitted gap).",
    )
    manifests: tuple[Path, ...] = Field(
        default=(),
        description="Kubernetes manifests (files or folders): CPU limits of the workloads "
        "(resources.limits.cpu) become their services' cpu_limit.",
    )

    cold_starts: bool = Field(
        default=False,
        description="Fit each traced service's cold starts (own time against the gap since its "
        "instance's previous request): a service that shows them gets cold_start and keep_alive.",
    )
    classes: bool = Field(
        default=True,
        description="Split each entry operation into request classes by call signature "
        "(false: one operation per entry, its calls drawn independently).",
    )
    keep_transients: bool = Field(
        default=False,
        description="Fit on every request, transient episodes included (false: requests "
        "starting in an episode, a burst of one series' spans stretched far beyond the rest "
        "of the window, are set aside and reported; see twin.calibrate.transients).",
    )
    optional: tuple[str, ...] = Field(
        default=(),
        description="Call edges CALLER->CALLEE whose failure degrades but does not fail the "
        "caller (a page served without its ad): what a recording where nothing failed cannot "
        "show. Every call along the edge becomes optional; an edge the traces do not have "
        "is an error (twin.calibrate.declared).",
    )

    @model_validator(mode="after")
    def _sources(self) -> CalibrationConfig:
        if self.prometheus and self.metrics:
            raise ValueError("give prometheus or metrics, not both")
        if not self.traces and not (self.prometheus or self.metrics):
            raise ValueError("nothing to calibrate from: give traces and/or prometheus/metrics")
        if any(n < 1 for n in self.workers.values()):
            raise ValueError("workers: must be at least 1")
        for edge in self.optional:
            try:
                parse_edge(edge)
            except InputError as e:
                raise ValueError(e.detail) from None
        return self


class CalibrationRecord(BaseModel):
    """What a calibration found: the topology it wrote and how the twin compares with what
    was observed. ``document`` is ``calibration.json`` as written (inputs, what was read, the
    call graph, the fitted service times, notes and the comparison rows)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path = Field(description="Folder written.")
    topology: str = Field(description="Name of the calibrated topology.")
    services: int = Field(description="Services in the call graph.")
    edges: int = Field(description="Call edges in the call graph.")
    comparison: list[dict[str, Any]] = Field(
        description="One row per scope: observed, twin and accuracy of rate, mean, p95, p99."
    )
    document: dict[str, Any] = Field(description="calibration.json as written.")


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None}
    return {
        "mean": float(np.mean(values)),
        "p50": float(np.quantile(values, 0.5)),
        "p95": float(np.quantile(values, 0.95)),
        "p99": float(np.quantile(values, 0.99)),
    }


def observed_figures(
    graph: Any, sampling: float = 1.0, topology: Any = None
) -> dict[str, dict[str, Any]]:
    """Per entry operation and per service: rate, error rate and latency as traced. An entry
    the topology splits into request classes (a workload entry with a mix) is one scope, its
    service, covering every root operation of it, as the twin reports it."""
    w = max(graph.window, 1e-9)
    out: dict[str, dict[str, Any]] = {}
    per_service: dict[str, list[Any]] = {}
    mixed = {e.entry for e in topology.workload if e.mix} if topology is not None else set()
    for svc in sorted(mixed):
        roots = [st for (s, _), st in graph.operations.items() if st.roots and safe_name(s) == svc]
        n = sum(st.roots for st in roots)
        if n:
            out[f"entry {svc}"] = {
                "rate": n / w / sampling,
                "error_rate": sum(st.errors for st in roots) / sum(st.instances for st in roots),
                **_stats(np.concatenate([st.durations for st in roots])),
            }
    for (svc, op), st in graph.operations.items():
        per_service.setdefault(svc, []).append(st)
        if st.roots and safe_name(svc) not in mixed:
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


def predicted_figures(summary: Summary) -> dict[str, dict[str, Any]]:
    """The same figures from a twin summary."""
    secs = max(float(summary.measured_seconds or 0.0), 1e-9)
    out: dict[str, dict[str, Any]] = {}
    for name, e in summary.entries.items():
        req = e.requests
        out[f"entry {name}"] = {
            "rate": req / secs,
            "error_rate": e.failed / req if req else 0.0,
            **_quantiles(e.latency),
        }
    for name, s in summary.services.items():
        arr = s.arrivals
        out[f"service {name}"] = {
            "rate": arr / secs,
            "error_rate": s.failed / arr if arr else 0.0,
            **_quantiles(s.latency),
        }
    return out


def _quantiles(lat: LatencyStats) -> dict[str, float | None]:
    return {"mean": lat.mean, "p50": lat.p50, "p95": lat.p95, "p99": lat.p99}


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
            row[f"{k}_accuracy"] = accuracy_or_none(pred.get(k), obs.get(k))
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


def _made_by_us(path: Path) -> list[Path]:
    """The folders of ``path`` that do not exist yet (deepest first): the ones to remove
    again if the run fails, so a failed calibration leaves nothing behind."""
    missing = []
    p = path.absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def run_calibration(
    config: CalibrationConfig, *, on_note: Callable[[str], None] = lambda _: None
) -> CalibrationRecord:
    """Calibrate a twin from telemetry and check it at the observed load.

    Writes ``topology.yaml``, ``scenario.yaml``, ``calibration.json``, ``report.md`` (and
    ``spans.parquet`` / ``metrics.json`` of what was read) to ``config.out``; each reading
    problem worth knowing is passed to ``on_note`` as one line, and what the telemetry's
    quality cost (points and spans skipped, and why) as one ``telemetry:`` line, once the run
    has succeeded (a failure is one InputError line that carries its own counts).

    Every file is written to a hidden folder inside ``config.out`` first and moved into place
    only when the whole run succeeded: a run that fails (bad telemetry, a refused simulation,
    an interrupt) leaves the folder as it was, and removes it if it made it."""
    made = _made_by_us(config.out)
    output_dir(config.out)
    stage = Path(tempfile.mkdtemp(prefix=".calibrating-", dir=config.out))
    notes: list[str] = []
    try:
        result = _calibrate(config, stage, notes.append)
        for f in sorted(stage.iterdir()):
            f.replace(config.out / f.name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(stage, ignore_errors=True)
    for line in notes:
        on_note(line)
    return result


def _quality_line(record: dict[str, Any]) -> str:
    """One line: how much of the telemetry was used, and what was skipped."""
    parts = []
    read = record.get("read")
    if read:
        parts.append(
            f"used {read['spans']} spans; skipped {read['skipped_nonfinite']} with a time that "
            f"is not finite, {read['skipped_outlier_time']} far in time, "
            f"{read['problems'].get('malformed spans (skipped)', 0)} malformed"
        )
        win = record.get("callgraph", {})
        if win:
            parts.append(
                f"observed {win['window_seconds']:.6g} s in {win['window_stretches']} stretch(es)"
            )
    quality = record.get("metrics_read")
    if quality:
        parts.append(
            f"metrics: used {quality['used']} of {quality['points']} points; skipped "
            f"{quality['skipped_nonfinite']} not finite, {quality['skipped_outlier_time']} far "
            f"in time, {quality['skipped_unreadable']} unreadable; "
            f"{quality['series_unmapped']} series unmapped"
        )
    return "telemetry: " + "; ".join(parts)


def _calibrate(
    c: CalibrationConfig, out: Path, on_note: Callable[[str], None]
) -> CalibrationRecord:
    """The calibration of :func:`run_calibration`, writing into ``out`` (its staging folder)."""
    traces = list(c.traces)
    prometheus, metrics, mapping = c.prometheus, c.metrics, c.mapping
    start, end, step, name, sampling = c.start, c.end, c.step_seconds, c.name, c.sampling
    demand, mask, predict, seed, network = c.demand, c.mask, c.predict_seconds, c.seed, c.network
    from twin.calibrate.build import BuildOptions, build_topology
    from twin.calibrate.callgraph import build_callgraph, capture_window
    from twin.calibrate.mask import Masker
    from twin.calibrate.metrics import (
        MetricMap,
        MetricsReport,
        PrometheusClient,
        load_dump,
        parse_time,
        summarize,
    )
    from twin.calibrate.service_time import MIN_FIT
    from twin.calibrate.traces import read_traces

    masker = Masker.load(mask) if mask else Masker()
    record: dict[str, Any] = {"inputs": {"traces": [str(t) for t in traces]}}
    t_start, t_end = parse_time(start), parse_time(end)
    metric_figures: dict[str, Any] = {}
    if prometheus or metrics:
        mmap = MetricMap.load(mapping) if mapping else MetricMap()
        if prometheus:
            t_end = t_end if t_end is not None else time.time()
            t_start = t_start if t_start is not None else t_end - 3600.0
            client = PrometheusClient(prometheus)
            dump = client.fetch(mmap, t_start, t_end, step)
            _write_atomic(out / "metrics.json", json.dumps(dump))
            record["inputs"]["prometheus"] = prometheus
            quality = MetricsReport(source=f"Prometheus at {client.url}")
        else:
            assert metrics is not None
            dump = load_dump(metrics)
            record["inputs"]["metrics"] = str(metrics)
            quality = MetricsReport(source=str(metrics))
        metric_figures = summarize(dump, mmap, start=t_start, end=t_end, report=quality)
        record["metrics_read"] = quality.to_dict()
        if quality.unusable and not quality.used:
            raise InputError(
                f"{quality.unusable[0]}: no usable point in this or any series "
                f"({quality.skipped_nonfinite} not finite, {quality.skipped_unreadable} "
                f"unreadable, {quality.skipped_outlier_time} far in time)",
                source=quality.source,
            )
        record["metrics"] = {k: v.to_dict() for k, v in metric_figures.items()}
    record["inputs"]["window"] = {"start": t_start, "end": t_end}
    opts = BuildOptions(
        name=name or (traces[0].stem if traces else "calibrated"),
        sampling=sampling,
        workers=dict(c.workers),
        network=network,
        classes=c.classes,
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
            on_note(line)
        if spans.empty:
            raise InputError(
                "no usable spans in the trace file(s) (and window): "
                f"{report.skipped_nonfinite} with a time that is not finite and "
                f"{report.skipped_outlier_time} far in time skipped, "
                f"{sum(report.problems.values())} other problem(s)"
            )
        spans.to_parquet(out / "spans.parquet", index=False)
        from twin.calibrate.transients import set_aside

        steady, aside = set_aside(spans, keep=c.keep_transients)
        record["transients"] = aside.to_dict()
        for line in aside.lines():
            on_note(line)
        graph = build_callgraph(steady, c.workers)
        if graph.window <= 0.0:
            raise InputError(
                "the spans cover no time at all (every one starts and ends at one instant): "
                "no rate can be measured from them"
            )
        if steady is not spans:
            # the stretches set aside were watched, but not in steady state: out of the whole
            # capture's observed time (the steady spans' own window may already have lost
            # them, where a stretch sits at an end or leaves a silence)
            graph = replace(graph, window=max(capture_window(spans).seconds - aside.seconds, 1e-9))
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
    if prometheus or metrics:  # open or closed loop: does the entry's rate fall with latency?
        from twin.calibrate.workload_model import fit_entries

        topo, record["workload"] = fit_entries(topo, dump, mmap, start=t_start, end=t_end)
        for entry, fit in record["workload"].items():
            on_note(f"workload {entry}: {fit['model']} loop: {fit['reason']}")
    if c.manifests:
        from twin.calibrate.cpu import cpu_limits_from_manifests, with_cpu_limits

        limits = cpu_limits_from_manifests(c.manifests)
        topo, cpu_notes = with_cpu_limits(topo, limits)
        record["cpu_limits"] = {n: s.cpu_limit for n, s in topo.services.items() if s.cpu_limit}
        for note in cpu_notes:
            on_note(note)
    if c.optional:
        topo, marked = with_optional_calls(topo, c.optional)
        record["declared_optional"] = marked
        for edge, n in marked.items():
            on_note(f"optional {edge}: {n} call(s) degrade but do not fail the caller (declared)")
    if c.cold_starts and c.traces:
        from twin.calibrate.coldstart import with_cold_starts

        topo, cold = with_cold_starts(topo, spans)
        record["cold_starts"] = {svc: vars(f) for svc, f in cold.items()}
        for svc, f in cold.items():
            on_note(
                f"cold starts {svc}: {f.cold_start:.3g} s after {f.keep_alive:.3g} s idle "
                f"(warm {f.warm:.3g} s, p = {f.p_value:.2g})"
            )
    (out / "topology.yaml").write_text(topo.to_yaml(), encoding="utf-8")
    record.update(cal.record)
    on_note(_quality_line(record))
    faults = []
    for svc in topo.services:
        sts = [o for k, o in graph.operations.items() if k[0] == svc]
        n = sum(o.instances for o in sts)
        p = sum(o.intrinsic_errors for o in sts) / n if n else 0.0
        if p > 0:
            faults.append(
                {"kind": ErrorRateFault.name, "target": svc, "probability": round(p, ROUND)}
            )
    scenario_data: dict[str, Any] = {
        "duration": max(predict, 1.0),
        "warmup": min(30.0, predict * 0.1),
        "seed": seed,
        "faults": faults,
    }
    from twin.io import dump_yaml

    (out / "scenario.yaml").write_text(dump_yaml(scenario_data), encoding="utf-8")
    observed = observed_figures(graph, sampling, topo) if traces else {}
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
    (out / "report.md").write_text(render_report(topo.name, record, rows), encoding="utf-8")
    cg = record.get("callgraph", {})
    return CalibrationRecord(
        out=c.out,
        topology=topo.name,
        services=len(cg.get("services", {})),
        edges=len(cg.get("edges", [])),
        comparison=rows,
        document=record,
    )


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


def format_figure(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if unit == "ms":
        return f"{v * 1000:.2f}"
    if unit == "%":
        return f"{v * 100:.1f}%"
    return f"{v:.3g}"


def render_report(name: str, record: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """A Markdown report: what was read, the graph, the fits, and observed vs twin."""
    fmt = format_figure
    lines = [f"# Calibration of {name}", ""]
    lines += [_quality_line(record).replace("telemetry: ", "Telemetry: ", 1) + ".", ""]
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
    for note in record.get("transients", {}).get("notes", []):
        lines.append(f"- {note}")
    for edge, n in record.get("declared_optional", {}).items():
        lines.append(
            f"- declared optional: `{edge}` ({n} call(s)): a failure there degrades but does "
            "not fail the caller"
        )
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
                f"| `{r['scope']}` | {fmt(r['rate_observed'])} | {fmt(r['rate_twin'])} "
                f"| {fmt(r['mean_observed'], 'ms')} | {fmt(r['mean_twin'], 'ms')} "
                f"| {fmt(r['mean_accuracy'], '%')} "
                f"| {fmt(r['p95_observed'], 'ms')} | {fmt(r['p95_twin'], 'ms')} "
                f"| {fmt(r['p95_accuracy'], '%')} "
                f"| {fmt(r['p99_observed'], 'ms')} | {fmt(r['p99_twin'], 'ms')} "
                f"| {fmt(r['p99_accuracy'], '%')} "
                f"| {fmt(r['error_rate_observed'], '%')} | {fmt(r['error_rate_twin'], '%')} |"
            )
    return "\n".join(lines) + "\n"


__all__ = [
    "CalibrationConfig",
    "CalibrationRecord",
    "compare",
    "observed_figures",
    "predicted_figures",
    "render_report",
    "run_calibration",
]
