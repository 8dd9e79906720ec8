"""Where ``twin watch`` reads production from: windows of per-service metrics on one clock.

A source yields :class:`Window` objects, oldest first: what every service showed over the
window (rate, success, latency quantiles, CPU, ...) and, where the telemetry has it, what
users saw at the entry. Live and recorded telemetry go through the same windows, so a replay
exercises exactly the loop that runs beside production:

- :class:`PrometheusSource`: polls ``query_range`` with calibration's metric mapping file
  (:class:`twin.calibrate.metrics.MetricMap`) and does the arithmetic calibration does
  (:func:`twin.calibrate.metrics.summarize`), window by window; long ranges are split at
  11,000 points by the client.
- :func:`replay`: recorded telemetry on a simulated clock, as fast as the machine reads it.
  Files are found by pattern and by their header, never by name or date, so a renamed
  folder or another day replays the same way: ``nezha`` (per-pod minute tables and the front
  end's SLI table), ``petshop`` (one issue folder; ``graph.csv`` and the normal-operation
  ``noissue/metrics.csv`` found in it or its parents), ``prometheus-dump`` (``query_range``
  answers as ``twin calibrate`` writes them) and ``generic`` (long tables of time, service,
  metric, value).
- :class:`StoredOtlpSource`: OTLP/HTTP metrics pushed to ``twin serve`` and kept raw in the
  database, turned into the Prometheus series the exporter would have written.

Metric names are the same whatever the format (:data:`RATE`, :data:`SUCCESS`, the latency
quantiles, :data:`CPU`, ...); a column or series a format does not map is counted in the
source's :class:`SourceReport`, never a crash. Service names are reduced from pod names as
calibration does (:func:`twin.calibrate.spans.service_from_pod`).
"""

from __future__ import annotations

import bisect
import math
import time as _time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from twin.calibrate import metrics as prom
from twin.calibrate import nezha, petshop
from twin.calibrate.spans import service_from_pod
from twin.errors import InputError
from twin.safeload import check_size

RATE = "rate"
"""Requests per second served."""
SUCCESS = "success"
"""Share of requests that succeeded, in [0, 1]."""
MEAN = "latency_mean"
P50 = "latency_p50"
P90 = "latency_p90"
P95 = "latency_p95"
P99 = "latency_p99"
"""Latency quantiles, seconds (server side where a format has both)."""
CPU = "cpu"
"""CPU use in the source's unit (share of the limit, or cores); compared only with its own
past, never across sources."""

Format = Literal["nezha", "petshop", "prometheus-dump", "generic"]
FORMATS: tuple[str, ...] = ("nezha", "petshop", "prometheus-dump", "generic")


@dataclass(frozen=True)
class EntrySli:
    """What users saw at the entry over a window: the figures SLOs are written on."""

    requests: float
    success: float | None
    p50: float | None
    p99: float | None
    p95: float | None = None


@dataclass(frozen=True)
class Window:
    """One window of production: ``time`` is its end (unix seconds), ``seconds`` its
    length; ``services`` maps service -> metric -> value; ``entry`` is filled when the
    telemetry has an SLI table (else the watch derives it from the entry services);
    ``baseline`` marks normal-operation telemetry replayed first to learn what normal is;
    ``edges`` maps a call edge ``"caller->callee"`` to its latency medians where the
    telemetry has them (``client_p50``: the caller's view, ``server_p50``: the callee's)."""

    time: float
    seconds: float
    services: Mapping[str, Mapping[str, float]]
    entry: EntrySli | None = None
    baseline: bool = False
    edges: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass
class SourceReport:
    """What a source read and what it could not use, counted."""

    files: list[str] = field(default_factory=list)
    windows: int = 0
    unmapped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def unmapped_metric(self, name: str, n: int = 1) -> None:
        self.unmapped[name] = self.unmapped.get(name, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "windows": self.windows,
            "unmapped": dict(sorted(self.unmapped.items())),
            "problems": self.problems[:50],
        }


class Source(Protocol):
    """Windows of production, oldest first; ``total`` is their number when known (replays,
    for progress), ``None`` live."""

    report: SourceReport

    @property
    def total(self) -> int | None: ...

    def windows(self) -> Iterator[Window]: ...


# -- recorded: one in-memory table of windows --------------------------------------------------


@dataclass
class Recorded:
    """A replay: every window read up front, yielded on a simulated clock; ``calls`` the
    call edges the telemetry names (empty when it names none)."""

    items: list[Window]
    report: SourceReport
    calls: tuple[tuple[str, str], ...] = ()

    @property
    def total(self) -> int | None:
        return len(self.items)

    def windows(self) -> Iterator[Window]:
        yield from self.items


MAX_HISTORY_S = 86_400.0
"""The longest history a watch reads before it judges (a day): enough for every band to
settle, and a bound on what one start may fetch."""

LIVE_HISTORY_S = 14_400.0
"""The history a live watch reads by default (4 h). Started at five points of the fault-free
hours of Nezha's Online Boutique day, the watch raised 63 false alarms over the next three
hours of each with no history, none with 1, 2 or 4 h (docs/watch.md); the longer one dilutes
an incident the history may hold."""


HISTORY_CHUNK = 240
"""Windows of history a live source fetches at once: what it holds in memory is bounded
whatever ``--history`` and ``--window`` are."""


def check_history(seconds: float) -> float:
    """``seconds`` of history, or a one-line input error when not 0 to :data:`MAX_HISTORY_S`."""
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_HISTORY_S):
        raise InputError(f"--history {seconds}: expected 0 to {MAX_HISTORY_S:.0f} seconds")
    return seconds


def learn_first(rec: Recorded, seconds: float) -> Recorded:
    """The recording with the windows ending within its first ``seconds`` (from the first
    window's start) marked baseline: read only to learn what normal is, as a live watch
    reads its history (:class:`PrometheusSource`)."""
    if check_history(seconds) == 0 or not rec.items:
        return rec
    t0 = rec.items[0].time - rec.items[0].seconds
    items = [replace(w, baseline=True) if w.time <= t0 + seconds + 1e-9 else w for w in rec.items]
    return replace(rec, items=items)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _only(folder: Path, pattern: str, what: str) -> list[Path]:
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not found:
        raise InputError(f"no {what} ({pattern}) in this folder", source=str(folder))
    return found


# -- nezha -------------------------------------------------------------------------------------

NEZHA_POD_COLUMNS = nezha.POD_COLUMNS
"""Nezha's per-pod columns -> metric names and the factor to their unit (percent -> share);
the one table lives with the reader (:data:`twin.calibrate.nezha.POD_COLUMNS`)."""


def nezha_windows(day: nezha.NezhaDay) -> Recorded:
    """A day read by :func:`twin.calibrate.nezha.read_day` as windows: per service its pod
    metrics, per call edge its two medians, the SLI table's figures as the entry's (the
    busiest service's rate stands for the entry's request count)."""
    rep = SourceReport(files=list(day.files), problems=list(day.notes))
    for name, n in day.unmapped.items():
        rep.unmapped_metric(name.split(":", 1)[1] if name.startswith("pod:") else name, n)
    step = day.step
    front_rate = _entry_rate(day.services)
    e = day.entry
    items = []
    for i, t in enumerate(day.times):
        services = {
            s: {m: float(a[i]) for m, a in ms.items() if math.isfinite(a[i])}
            for s, ms in day.services.items()
        }
        edges = {
            k: {m: float(a[i]) for m, a in ms.items() if math.isfinite(a[i])}
            for k, ms in day.edges.items()
        }
        rate = front_rate[i] if front_rate is not None else float("nan")
        entry = EntrySli(
            requests=float(rate * step) if math.isfinite(rate) else 0.0,
            success=_finite(e["success"][i]),
            p50=_finite(e["p50"][i]),
            p99=_finite(e["p99"][i]),
            p95=_finite(e["p95"][i]),
        )
        items.append(Window(float(t), step, services, entry, edges=edges))
    rep.windows = len(items)
    return Recorded(items, rep, calls=day.calls)


def read_nezha(folder: Path) -> Recorded:
    """A Nezha day folder (:func:`twin.calibrate.nezha.read_day`: files by pattern and
    header, clocks aligned) as windows on the SLI table's minutes."""
    return nezha_windows(nezha.read_day(folder))


def _entry_rate(cols: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray | None:
    """The busiest service's rate stands for the entry's when the SLI table has none."""
    rates = {s: m[RATE] for s, m in cols.items() if RATE in m}
    if not rates:
        return None
    best = max(rates, key=lambda s: float(np.nanmean(rates[s])) if len(rates[s]) else 0.0)
    return rates[best]


# -- petshop -----------------------------------------------------------------------------------

PETSHOP_METRICS: dict[tuple[str, str], tuple[str, float]] = {
    ("latency", "Average"): (MEAN, 1.0),
    ("latency", "p50"): (P50, 1.0),
    ("latency", "p90"): (P90, 1.0),
    ("latency", "p95"): (P95, 1.0),
    ("latency", "p99"): (P99, 1.0),
    ("requests", "Sum"): ("requests", 1.0),
    ("availability", "Average"): (SUCCESS, 0.01),
}
"""PetShop's (metric, statistic) -> metric names and the factor to their unit."""


def _find_up(folder: Path, pattern: str, levels: int = 3) -> Path | None:
    """The first file matching ``pattern`` in ``folder`` or one of its parents."""
    here = folder
    for _ in range(levels + 1):
        found = sorted(p for p in here.glob(pattern) if p.is_file())
        if found:
            return found[0]
        if here.parent == here:
            break
        here = here.parent
    return None


def _petshop_windows(
    path: Path, rep: SourceReport, *, baseline: bool
) -> tuple[list[Window], set[str]]:
    tidy = petshop.read_node_metrics(path)
    rep.files.append(str(path))
    key = list(zip(tidy["metric"], tidy["statistic"], strict=True))
    mapped = np.array([k in PETSHOP_METRICS for k in key], dtype=bool)
    for pair, n in Counter(p for p, ok in zip(key, mapped, strict=True) if not ok).items():
        rep.unmapped_metric(f"{pair[0]}/{pair[1]}", n)
    tidy = tidy[mapped]
    times = np.sort(tidy["t"].unique())
    step = float(np.median(np.diff(times))) if len(times) > 1 else 300.0
    per: dict[float, dict[str, dict[str, float]]] = {float(t): {} for t in times}
    for t, node, m, s, v in zip(
        tidy["t"], tidy["node"], tidy["metric"], tidy["statistic"], tidy["value"], strict=True
    ):
        name, k = PETSHOP_METRICS[(m, s)]
        per[float(t)].setdefault(str(node), {})[name] = float(v) * k
    out = []
    for t in times:
        svcs = per[float(t)]
        for ms in svcs.values():
            if "requests" in ms:
                ms[RATE] = ms["requests"] / step
        # a row is dated at the start of its period: the window ends one period later
        out.append(Window(float(t) + step, step, svcs, None, baseline))
    return out, set(tidy["node"].astype(str))


def read_petshop(folder: Path) -> Recorded:
    """One PetShop issue folder: its ``metrics.csv``, after the normal-operation
    ``noissue/metrics.csv`` found in the folder or a parent (replayed first, as baseline,
    re-timed to end where the issue begins: the two were recorded at different times);
    ``graph.csv`` (found the same way) must name every node the metrics do."""
    rep = SourceReport()
    here = _only(folder, "metrics.csv", "metrics table")[0]
    normal = _find_up(folder, "noissue/metrics.csv")
    graph = _find_up(folder, "graph.csv")
    if graph is None:
        raise InputError("no graph.csv in this folder or its parents", source=str(folder))
    nodes, edges = petshop.read_adjacency(graph)
    rep.files.append(str(graph))
    items: list[Window] = []
    if normal is not None and normal.resolve() != here.resolve():
        items, _ = _petshop_windows(normal, rep, baseline=True)
    else:
        rep.problems.append("no noissue/metrics.csv found: normal is learned from the issue")
    issue, seen = _petshop_windows(here, rep, baseline=False)
    unknown = sorted(seen - set(nodes))
    if unknown:
        rep.problems.append(f"nodes not in graph.csv: {', '.join(unknown[:5])}")
    if items and issue:
        # the normal period was recorded at another time: shift it to end where the issue's
        # first window begins, so the clock only moves forward
        shift = issue[0].time - issue[0].seconds - items[-1].time
        items = [replace(w, time=w.time + shift) for w in items]
    items += issue
    rep.windows = len(items)
    return Recorded(items, rep, calls=tuple(edges))


# -- Prometheus (dumps and live) ---------------------------------------------------------------


def _service_figures(m: prom.ServiceMetrics) -> dict[str, float]:
    out: dict[str, float] = {RATE: m.rate}
    for name, v in (
        (MEAN, m.mean),
        (P50, m.p50),
        (P95, m.p95),
        (P99, m.p99),
        (CPU, m.utilization),
        ("replicas", float(m.replicas)),
    ):
        if v is not None and math.isfinite(v):
            out[name] = float(v)
    if m.error_rate is not None:
        out[SUCCESS] = 1.0 - m.error_rate
    return out


class _SlicedDump:
    """A cleaned dump with each series' points sorted, so a window's points are found by
    bisection instead of a scan of the whole dump."""

    def __init__(self, dump: prom.Dump) -> None:
        self.series: list[tuple[str, dict[str, Any], list[float], list[list[float]]]] = []
        for sel, series in dump.items():
            for s in series:
                pts = sorted(s["values"])
                self.series.append((sel, s["metric"], [p[0] for p in pts], pts))

    def bounds(self) -> tuple[float, float] | None:
        ts = [t for *_, times, _ in self.series for t in (times[:1] + times[-1:])]
        return (min(ts), max(ts)) if ts else None

    def window(self, start: float, end: float) -> prom.Dump:
        out: dict[str, list[prom.Series]] = {}
        for sel, metric, times, pts in self.series:
            a, b = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
            out.setdefault(sel, []).append({"metric": metric, "values": pts[a:b]})
        return out


def dump_windows(
    dump: prom.Dump,
    mapping: prom.MetricMap,
    rep: SourceReport,
    *,
    window: float,
    start: float | None = None,
    end: float | None = None,
    births: prom.CounterBirths | None = None,
) -> list[Window]:
    """Windows of ``window`` seconds over a ``query_range`` dump (points cleaned and counted
    once, as calibration does), each summarised by calibration's own arithmetic. Counters
    born after their target's first sample start at 0 (:class:`twin.calibrate.metrics.
    CounterBirths`; ``births`` carries what earlier dumps of a stream showed)."""
    mrep = prom.MetricsReport()
    births = births or prom.CounterBirths(mapping)
    sliced = _SlicedDump(births.fill(prom.clean_dump(dump, mapping, mrep)))
    if mrep.series_unmapped:
        rep.unmapped_metric("series without a mapped name or service label", mrep.series_unmapped)
    if mrep.skipped_nonfinite or mrep.skipped_outlier_time or mrep.skipped_unreadable:
        rep.problems.append(mrep.line())
    span = sliced.bounds()
    if span is None:
        return []
    lo = span[0] if start is None else start
    hi = span[1] if end is None else end
    out = []
    t = lo
    while t + window <= hi + 1e-3:  # Prometheus' timestamps are whole milliseconds
        figs = prom.summarize(sliced.window(t, t + window), mapping, start=t, end=t + window)
        services = {s: _service_figures(m) for s, m in figs.items()}
        out.append(Window(t + window, window, services))
        t += window
    return out


def read_prometheus_dump(folder: Path, mapping: prom.MetricMap, window: float) -> Recorded:
    """Every ``*.json`` in the folder that holds ``query_range`` answers, merged."""
    rep = SourceReport()
    merged: dict[str, list[prom.Series]] = {}
    for p in _only(folder, "*.json", "query_range dumps"):
        try:
            d = prom.load_dump(p)
        except InputError as e:
            rep.problems.append(str(e))
            continue
        rep.files.append(str(p))
        for sel, series in d.items():
            merged.setdefault(sel, []).extend(series)
    if not merged:
        raise InputError("no file here holds query_range answers", source=str(folder))
    items = dump_windows(merged, mapping, rep, window=window)
    rep.windows = len(items)
    return Recorded(items, rep)


QUERY_STEP_S = 15.0
"""The live source's ``query_range`` step for windows at least this long."""


def query_step(window_s: float) -> float:
    """The ``query_range`` step a live window of ``window_s`` seconds is read at:
    :data:`QUERY_STEP_S`, or the window itself when shorter. A window counts a counter's
    increase between its points, so it needs one at each end: read at a longer step, a
    short window holds one point and every counter in it reads zero."""
    return min(QUERY_STEP_S, window_s)


class PrometheusSource:
    """Live: one window per poll, the raw series of the last ``window`` seconds fetched with
    ``query_range`` (split at 11,000 points; the step :func:`query_step`, or ``step`` if
    given, never longer than the window) and summarised as calibration does. Before the
    first poll, the ``history`` seconds before it are fetched the same way and yielded as
    baseline windows: the watch learns what normal is from them and judges none, so its
    bands do not start from a handful of minutes. ``clock`` and ``sleep`` are passed in so
    tests drive it without waiting."""

    def __init__(
        self,
        url: str,
        mapping: prom.MetricMap,
        *,
        window: float = 60.0,
        step: float | None = None,
        start: float | None = None,
        polls: int | None = None,
        history: float = 0.0,
        lag: float = 0.0,
        clock: Callable[[], float] = _time.time,
        sleep: Callable[[float], None] = _time.sleep,
        client: Any = None,
    ) -> None:
        self.client = client or prom.PrometheusClient(url)
        self.mapping, self.window_s = mapping, window
        self.step = min(step, window) if step is not None else query_step(window)
        self.start, self.polls, self.lag = start, polls, lag
        self.history = check_history(history)
        self.history_windows = math.floor(self.history / window + 1e-9)
        """Whole windows of history read before the first poll."""
        self.clock, self.sleep = clock, sleep
        self.report = SourceReport(files=[str(url)])
        self.births = prom.CounterBirths(mapping)

    @property
    def total(self) -> int | None:
        if self.polls is None:
            return None
        return self.polls + self.history_windows

    def windows(self) -> Iterator[Window]:
        # whole seconds: Prometheus answers on a millisecond grid, and a window whose ends
        # are not on it loses its last point
        t = self.start if self.start is not None else math.floor(self.clock()) - self.window_s
        h = t - self.history_windows * self.window_s
        while h < t - 1e-9:  # the history, a bounded number of windows per fetch
            end = min(h + HISTORY_CHUNK * self.window_s, t)
            dump = self.client.fetch(self.mapping, h, end, self.step)
            for w in dump_windows(
                dump,
                self.mapping,
                self.report,
                window=self.window_s,
                start=h,
                end=end,
                births=self.births,
            ):
                self.report.windows += 1
                yield replace(w, baseline=True)
            h = end
        n = 0
        while self.polls is None or n < self.polls:
            end = t + self.window_s
            wait = end + self.lag - self.clock()
            if wait > 0:
                self.sleep(wait)
            dump = self.client.fetch(self.mapping, t, end, self.step)
            got = dump_windows(
                dump, self.mapping, self.report, window=self.window_s, start=t, births=self.births
            )
            for w in got[:1] or [Window(end, self.window_s, {})]:
                self.report.windows += 1
                yield w
            t, n = end, n + 1


# -- generic -----------------------------------------------------------------------------------

_TIME_NAMES = ("time", "timestamp", "t")


def read_generic(folder: Path, window: float | None) -> Recorded:
    """Long tables (``*.csv`` or ``*.parquet``) with a time column (``time``, ``timestamp``
    or ``t``: unix seconds), ``service``, ``metric`` and ``value``; pod names are reduced to
    services. Rows are binned into windows of ``window`` seconds (default: the median gap
    between distinct times); several rows of one service and metric in a window average."""
    rep = SourceReport()
    frames = []
    for p in sorted([*folder.glob("*.csv"), *folder.glob("*.parquet")]):
        check_size(p, "telemetry")
        try:
            df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
        except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read ({e})", source=str(p)) from e
        tcol = next((c for c in _TIME_NAMES if c in df.columns), None)
        if tcol is None or not {"service", "metric", "value"} <= set(df.columns):
            rep.problems.append(f"{p.name}: not a long table (time, service, metric, value)")
            continue
        rep.files.append(str(p))
        frames.append(
            pd.DataFrame(
                {
                    "t": pd.to_numeric(df[tcol], errors="coerce"),
                    "service": df["service"].astype(str).map(service_from_pod),
                    "metric": df["metric"].astype(str),
                    "value": pd.to_numeric(df["value"], errors="coerce"),
                }
            )
        )
    if not frames:
        raise InputError(
            "no long table (time, service, metric, value) found (*.csv, *.parquet)",
            source=str(folder),
        )
    df = pd.concat(frames, ignore_index=True)
    bad = ~(np.isfinite(df["t"]) & np.isfinite(df["value"]))
    if bad.any():
        rep.problems.append(f"{int(bad.sum())} rows without a finite time and value skipped")
    df = df[~bad]
    if df.empty:
        raise InputError("no row with a finite time and value", source=str(folder))
    times = np.sort(df["t"].unique())
    step = window or (float(np.median(np.diff(times))) if len(times) > 1 else 60.0)
    t0 = float(times[0])
    df = df.assign(w=np.floor((df["t"] - t0) / step).astype(np.int64))
    g = df.groupby(["w", "service", "metric"], sort=True)["value"].mean()
    per: dict[int, dict[str, dict[str, float]]] = {}
    for (w, svc, m), v in g.items():
        per.setdefault(int(w), {}).setdefault(str(svc), {})[str(m)] = float(v)
    items = [Window(t0 + (w + 1) * step, step, per[w]) for w in sorted(per)]
    rep.windows = len(items)
    return Recorded(items, rep)


# -- OTLP batches stored by ``twin serve`` -----------------------------------------------------


def _prom_name(name: str, unit: str, suffix: str) -> str:
    base = name.replace(".", "_").replace("-", "_")
    if unit == "s" and not base.endswith("_seconds"):
        base += "_seconds"
    return base + suffix


def _attrs(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in items if isinstance(items, list) else []:
        if isinstance(a, dict) and isinstance(a.get("value"), dict):
            v = next(iter(a["value"].values()), "")
            out[str(a.get("key", "")).replace(".", "_")] = str(v)
    return out


def otlp_to_dump(documents: list[Any], mapping: prom.MetricMap) -> prom.Dump:
    """OTLP/JSON metric exports -> ``query_range``-shaped series, named as the Prometheus
    exporter names them (dots to underscores, ``_seconds`` for unit ``s``, ``_total`` on
    monotonic sums, histograms as ``_count``/``_sum`` and *cumulative* ``_bucket{le}``; OTLP
    counts per bucket). The resource's ``service.name`` becomes the mapping's service label;
    points need cumulative temporality (a delta point is counted unmapped)."""
    series: dict[str, dict[str, Any]] = {}

    def add(name: str, labels: dict[str, str], t: float, v: float) -> None:
        key = name + repr(sorted(labels.items()))
        s = series.setdefault(key, {"metric": {"__name__": name, **labels}, "values": []})
        s["values"].append([t, v])

    for doc in documents:
        for rm in doc.get("resourceMetrics", []) if isinstance(doc, dict) else []:
            res = _attrs((rm.get("resource") or {}).get("attributes"))
            svc = service_from_pod(res.get("service_name", res.get("k8s_pod_name", "")))
            base = {mapping.service_label: svc} if svc else {}
            if "service_instance_id" in res:
                base[mapping.instance_label] = res["service_instance_id"]
            for sm in rm.get("scopeMetrics", []) or []:
                for m in sm.get("metrics", []) or []:
                    name, unit = str(m.get("name", "")), str(m.get("unit", ""))
                    for kind in ("sum", "gauge", "histogram"):
                        body = m.get(kind)
                        if not isinstance(body, dict):
                            continue
                        for dp in body.get("dataPoints", []) or []:
                            t = _finite(dp.get("timeUnixNano"))
                            if t is None:
                                continue
                            t /= 1e9
                            labels = {**base, **_attrs(dp.get("attributes"))}
                            if kind == "histogram":
                                _otlp_histogram(add, _prom_name(name, unit, ""), labels, t, dp)
                                continue
                            v = _finite(dp.get("asDouble", dp.get("asInt")))
                            if v is None:
                                continue
                            mono = kind == "sum" and bool(body.get("isMonotonic"))
                            suffix = "_total" if mono and not name.endswith("total") else ""
                            add(_prom_name(name, unit, suffix), labels, t, v)
    out: dict[str, list[prom.Series]] = {}
    for s in series.values():
        out.setdefault(s["metric"]["__name__"], []).append(s)
    return out


def _otlp_histogram(
    add: Callable[[str, dict[str, str], float, float], None],
    base: str,
    labels: dict[str, str],
    t: float,
    dp: dict[str, Any],
) -> None:
    count, total = _finite(dp.get("count")), _finite(dp.get("sum"))
    if count is not None:
        add(base + "_count", labels, t, count)
    if total is not None:
        add(base + "_sum", labels, t, total)
    bounds = [_finite(b) for b in dp.get("explicitBounds", []) or []]
    counts = [_finite(c) for c in dp.get("bucketCounts", []) or []]
    if not counts or any(x is None for x in [*bounds, *counts]):
        return
    cum = np.cumsum([float(c or 0.0) for c in counts])
    les = [*(float(b or 0.0) for b in bounds), math.inf][: len(cum)]
    for le, c in zip(les, cum, strict=False):
        add(base + "_bucket", {**labels, "le": "+Inf" if math.isinf(le) else f"{le:g}"}, t, c)


class StoredOtlpSource:
    """OTLP metric batches that ``twin serve`` stored in the database, in windows (a replay
    of what was pushed; run it again to pick up newer batches)."""

    def __init__(self, store: Any, mapping: prom.MetricMap, *, window: float = 60.0) -> None:
        from sqlalchemy import select

        from twin.store.documents import TelemetryBatchRow

        with store.transaction(write=False) as s:
            q = select(TelemetryBatchRow.document).where(TelemetryBatchRow.signal == "metrics")
            docs = list(s.scalars(q.order_by(TelemetryBatchRow.id)))
        self.report = SourceReport(files=[f"{len(docs)} stored OTLP metric batch(es)"])
        self.items = dump_windows(otlp_to_dump(docs, mapping), mapping, self.report, window=window)
        self.report.windows = len(self.items)

    @property
    def total(self) -> int | None:
        return len(self.items)

    def windows(self) -> Iterator[Window]:
        yield from self.items


def replay(
    folder: str | Path,
    fmt: str,
    *,
    mapping: prom.MetricMap | None = None,
    window: float | None = None,
) -> Recorded:
    """Recorded telemetry of ``fmt`` in ``folder`` as windows on a simulated clock."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError("--replay: not a folder", source=str(folder))
    if fmt == "nezha":
        return read_nezha(p)
    if fmt == "petshop":
        return read_petshop(p)
    if fmt == "prometheus-dump":
        return read_prometheus_dump(p, mapping or prom.MetricMap(), window or 60.0)
    if fmt == "generic":
        return read_generic(p, window)
    raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")


__all__ = [
    "CPU",
    "FORMATS",
    "HISTORY_CHUNK",
    "LIVE_HISTORY_S",
    "MAX_HISTORY_S",
    "MEAN",
    "P50",
    "P90",
    "P95",
    "P99",
    "QUERY_STEP_S",
    "RATE",
    "SUCCESS",
    "EntrySli",
    "PrometheusSource",
    "Recorded",
    "Source",
    "SourceReport",
    "StoredOtlpSource",
    "Window",
    "check_history",
    "dump_windows",
    "learn_first",
    "otlp_to_dump",
    "query_step",
    "replay",
]
