"""Prometheus metrics -> per-service rates, latency, errors, CPU demand and replicas.

Live (``/api/v1/query_range``) or offline (a JSON dump of the same responses), through one
code path: we fetch the *raw* series (counters and cumulative ``le`` buckets) and do the
arithmetic here, so a dump written by ``twin calibrate --prometheus ... --out DIR``
(``DIR/metrics.json``) replays to exactly the same figures.

Format traps handled: ``query_range`` returns at most 11,000 points per series, so longer
ranges are split; Prometheus ``le`` buckets are cumulative (OTLP's are per bucket); counters
reset when a process restarts (a drop is a reset, not negative traffic).

The *utilisation law* gives service demand when traces are thin: D = U / X, i.e. CPU
seconds consumed per request served over the same window.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from twin.calibrate.timeline import far_in_time, time_fences
from twin.errors import InputError
from twin.io import http_url
from twin.safeload import limit, loads_json, read_text

MAX_POINTS = 11_000
"""Prometheus refuses query_range answers with more points per series than this."""
MAX_QUERIES = 1_000
"""Sub-ranges one series may be split into (11 million points at the step): a wider range
or a finer step is refused up front rather than queried for hours."""

Series = dict[str, Any]  # {"metric": {labels}, "values": [[t, "v"], ...]}
Dump = dict[str, list[Series]]  # selector -> series


class MetricMap(BaseModel):
    """Which metric and label names mean what. Defaults: OpenTelemetry semantic conventions
    as the Prometheus exporter names them (``http.server.request.duration`` in seconds),
    plus the process collector every Prometheus client library exports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_label: str = Field(default="job", description="label that names the service")
    instance_label: str = Field(default="instance", description="label that names a replica")
    requests: str = Field(default="http_server_request_duration_seconds_count")
    duration_sum: str = Field(default="http_server_request_duration_seconds_sum")
    duration_bucket: str = Field(default="http_server_request_duration_seconds_bucket")
    status_label: str = Field(default="http_response_status_code")
    error_status: str = Field(default="5", description="status values starting with this fail")
    cpu_seconds: str = Field(default="process_cpu_seconds_total")
    up: str = Field(default="up")
    extra_selector: str = Field(default="", description='added to every selector, e.g. env="prod"')

    def selectors(self) -> list[str]:
        sel = "{" + self.extra_selector + "}" if self.extra_selector else ""
        names = [self.requests, self.duration_sum, self.duration_bucket, self.cpu_seconds, self.up]
        return [n + sel for n in names if n]

    @classmethod
    def load(cls, path: str | Path) -> MetricMap:
        from twin.io import load_model

        return load_model(cls, path)


@dataclass
class ServiceMetrics:
    """What the metrics say about one service over the window."""

    service: str
    window: float  # seconds
    requests: float  # served in the window
    rate: float  # rps
    mean: float | None  # seconds
    p50: float | None
    p95: float | None
    p99: float | None
    error_rate: float | None
    cpu_seconds: float | None
    utilization: float | None  # CPU seconds per second
    demand: float | None  # CPU seconds per request (utilisation law)
    replicas: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- time ---------------------------------------------------------------------------------------


def parse_time(value: str | float | None) -> float | None:
    """Unix seconds, or an RFC 3339 / ISO 8601 time (UTC when no zone is given)."""
    if value is None or value == "":
        return None
    bad = InputError(f"not a time: {value!r} (use unix seconds or ISO 8601)")
    if isinstance(value, (int, float)):
        t = float(value)
    else:
        try:
            t = float(value)
        except ValueError:
            try:
                dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise bad from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            t = dt.timestamp()
    if not math.isfinite(t):
        raise bad
    return t


def split_range(start: float, end: float, step: float) -> list[tuple[float, float]]:
    """Sub-ranges of at most MAX_POINTS points each, sharing no sample."""
    if not (math.isfinite(step) and step > 0):
        raise InputError(f"step must be a positive number of seconds, got {step}")
    span = (MAX_POINTS - 1) * step
    if math.isfinite(start) and math.isfinite(end) and end > start:
        queries = (end - start) // (span + step) + 1
        if queries > MAX_QUERIES:
            raise InputError(
                f"{end - start:.6g} s at a {step:g} s step is {queries:.3g} queries of "
                f"{MAX_POINTS} points per series (at most {MAX_QUERIES}): narrow --start/--end "
                "or widen --step"
            )
    elif not (math.isfinite(start) and math.isfinite(end)):
        raise InputError(f"the range {start}..{end} is not a finite time range")
    out = []
    t = start
    while t <= end:
        e = min(end, t + span)
        out.append((t, e))
        t = e + step
    return out


# -- live ---------------------------------------------------------------------------------------


class PrometheusClient:
    """The HTTP API's ``query_range``, split into allowed sizes and stitched together."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = http_url(url, "prometheus").rstrip("/")
        self.timeout = timeout

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        merged: dict[str, Series] = {}
        for a, b in split_range(start, end, step):
            for s in self._query(query, a, b, step):
                key = json.dumps(s.get("metric", {}), sort_keys=True)
                if key in merged:
                    merged[key]["values"].extend(s.get("values", []))
                else:
                    merged[key] = {
                        "metric": s.get("metric", {}),
                        "values": list(s.get("values", [])),
                    }
        return list(merged.values())

    def _query(self, query: str, start: float, end: float, step: float) -> list[Series]:
        qs = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
        url = f"{self.url}/api/v1/query_range?{qs}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                cap = limit("TWIN_MAX_TELEMETRY_BYTES")
                body = loads_json(resp.read(cap + 1), f"Prometheus at {self.url}", "telemetry")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise InputError(f"Prometheus refused {query!r}: HTTP {exc.code} {detail}") from None
        except (
            urllib.error.URLError,
            OSError,
            http.client.HTTPException,
            ValueError,  # json.JSONDecodeError, and a URL urllib cannot open
        ) as exc:
            raise InputError(f"cannot query Prometheus at {self.url}: {exc}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error", body) if isinstance(body, dict) else body
            raise InputError(f"Prometheus error for {query!r}: {str(error)[:200]}")
        data = body.get("data")
        result = data.get("result", []) if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise InputError(f"Prometheus answered {query!r} without a result list")
        return [s for s in result if isinstance(s, dict)]

    def fetch(self, mapping: MetricMap, start: float, end: float, step: float) -> Dump:
        """Every raw series calibration uses, as a dump (see :func:`load_dump`)."""
        return {sel: self.query_range(sel, start, end, step) for sel in mapping.selectors()}


# -- offline ------------------------------------------------------------------------------------


def _as_series(data: Any, source: str) -> list[Series]:
    if isinstance(data, dict) and "data" in data:  # a whole API response
        if data.get("status") not in (None, "success"):
            error = str(data.get("error"))[:200]
            raise InputError(f"dump holds a failed query: {error}", source=source)
        data = data["data"].get("result", []) if isinstance(data["data"], dict) else None
    if not isinstance(data, list) or not all(
        isinstance(s, dict) and isinstance(s.get("metric"), dict) for s in data
    ):
        raise InputError("expected query_range results (a list of {metric, values})", source=source)
    return data


def load_dump(path: str | Path) -> Dump:
    """A metrics dump: ``{selector: response or result list}``, a single API response, or a
    bare result list (series are then keyed by their ``__name__``)."""
    p = Path(path)
    try:
        data = loads_json(read_text(p, "telemetry"), str(p), "telemetry")
    except ValueError as exc:  # json.JSONDecodeError, or a number too long to read
        raise InputError(f"cannot read metrics dump: {exc}", source=str(p)) from None
    if isinstance(data, dict) and "data" not in data:
        return {str(k): _as_series(v, f"{p}: {k}") for k, v in data.items()}
    out: Dump = defaultdict(list)
    for s in _as_series(data, str(p)):
        out[str(s["metric"].get("__name__", ""))].append(s)
    return dict(out)


def _by_name(dump: Dump, name: str) -> list[Series]:
    """Series of one metric name, whichever selector fetched them."""
    out = []
    for sel, series in dump.items():
        base = sel.split("{", 1)[0]
        for s in series:
            metric = s.get("metric") if isinstance(s, dict) else None
            if isinstance(metric, dict) and metric.get("__name__", base) == name:
                out.append(s)
    return out


# -- quality ------------------------------------------------------------------------------------


@dataclass
class MetricsReport:
    """What a metrics dump held and what could not be used, counted: points that are not a
    [time, value] pair of numbers (``unreadable``), values or times that are NaN or infinite
    (Prometheus answers 0/0 with ``NaN``), times far from the rest (:mod:`.timeline`), and
    series the mapping does not name or that lack the service label (``unmapped``)."""

    source: str = "metrics"
    series: int = 0
    points: int = 0
    used: int = 0
    skipped_nonfinite: int = 0
    skipped_outlier_time: int = 0
    skipped_unreadable: int = 0
    series_unreadable: int = 0
    series_unmapped: int = 0
    time_fences: tuple[float, float] | None = None
    unusable: list[str] = field(default_factory=list)  # mapped series with points, none usable

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["time_fences"] = list(self.time_fences) if self.time_fences else None
        d["unusable"] = self.unusable[:20]
        return d

    def line(self) -> str:
        return (
            f"metrics: used {self.used} of {self.points} points in {self.series} series; "
            f"skipped {self.skipped_nonfinite} not finite, {self.skipped_outlier_time} far in "
            f"time, {self.skipped_unreadable} unreadable; {self.series_unmapped} series "
            f"unmapped, {self.series_unreadable} unreadable"
        )


def _label(s: Series) -> str:
    metric = s.get("metric", {})
    name = str(metric.get("__name__", ""))
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}"


def clean_dump(
    dump: Dump, mapping: MetricMap | None = None, report: MetricsReport | None = None
) -> Dump:
    """The dump with only usable points, as ``[time, value]`` floats; everything left out is
    counted in ``report`` (see :class:`MetricsReport`). Times far from the rest are judged
    over every point of the dump together, so one series' bad clock cannot pass as normal."""
    m = mapping or MetricMap()
    rep = report if report is not None else MetricsReport()
    names = {m.requests, m.duration_sum, m.duration_bucket, m.cpu_seconds, m.up} - {""}
    parsed: list[tuple[str, Series, bool, np.ndarray]] = []
    times: list[np.ndarray] = []
    for sel, series in dump.items():
        base = sel.split("{", 1)[0]
        for s in series if isinstance(series, list) else []:
            rep.series += 1
            metric = s.get("metric") if isinstance(s, dict) else None
            values = s.get("values") if isinstance(s, dict) else None
            if not isinstance(metric, dict) or not isinstance(values, list):
                rep.series_unreadable += 1
                continue
            mapped = metric.get("__name__", base) in names and bool(metric.get(m.service_label))
            rep.series_unmapped += not mapped
            pts = np.full((len(values), 2), np.nan)
            ok = np.zeros(len(values), dtype=bool)
            for i, pair in enumerate(values):
                try:
                    t, v = pair
                    pts[i] = float(t), float(v)
                except (TypeError, ValueError, OverflowError):
                    continue
                ok[i] = True
            rep.points += len(values)
            rep.skipped_unreadable += int((~ok).sum())
            finite = ok & np.isfinite(pts).all(axis=1)
            rep.skipped_nonfinite += int((ok & ~finite).sum())
            times.append(pts[ok, 0])  # a point's time counts even when its value is NaN
            parsed.append((sel, s, mapped, pts[finite]))
    fences = time_fences(np.concatenate(times) if times else np.array([]))
    rep.time_fences = fences
    out: dict[str, list[Series]] = defaultdict(list)
    for sel, s, mapped, pts in parsed:
        far = far_in_time(pts[:, 0], fences)
        rep.skipped_outlier_time += int(far.sum())
        kept = pts[~far]
        rep.used += len(kept)
        if mapped and len(s["values"]) and not len(kept):
            rep.unusable.append(_label(s))
        out[sel].append({"metric": s["metric"], "values": kept.tolist()})
    return dict(out)


# -- counters created at their first increment --------------------------------------------------


BIRTH_BEFORE_S = 1e-3
"""Where :class:`CounterBirths` puts a born counter's zero: this long before its first
sample (Prometheus' timestamps are whole milliseconds)."""


class CounterBirths:
    """Counters a target creates at their first increment start at 0.

    A client library exposes a labelled counter only once it has counted something: a
    service's first failed request creates its ``status="500"`` series with the value 1.
    Read as is, that first sample has nothing before it, so ``increase`` over the window
    gives 0 and the service's first failures are never seen (Prometheus' own ``rate`` and
    ``increase`` lose them the same way; its created-timestamp handling and OpenMetrics'
    ``_created`` exist for this). A counter series that first appears while its target
    (service label, instance label) was already being scraped was born in between: a
    zero is put just before its first sample, so all of its first value is increase. A
    target seen for the first time (a new replica) is left as it reads: what its counters
    held before its first scrape is unknown.

    One instance follows a stream of dumps (a live source's polls): series and targets seen
    in earlier dumps count as known. Memory is one key per series."""

    def __init__(self, mapping: MetricMap | None = None) -> None:
        self.mapping = mapping or MetricMap()
        m = self.mapping
        self.counters = {m.requests, m.duration_sum, m.duration_bucket, m.cpu_seconds} - {""}
        self.targets: set[tuple[str, str]] = set()
        self.series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self.born = 0

    def _target(self, metric: dict[str, Any]) -> tuple[str, str]:
        m = self.mapping
        return str(metric.get(m.service_label, "")), str(metric.get(m.instance_label, ""))

    def fill(self, dump: Dump) -> Dump:
        """``dump`` (cleaned: float ``[time, value]`` points) with a zero before every
        counter series born after its target's first sample."""
        first: dict[tuple[str, str], float] = {}
        for sel, series in dump.items():
            base = sel.split("{", 1)[0]
            for s in series:
                if s["metric"].get("__name__", base) in self.counters and s["values"]:
                    tgt = self._target(s["metric"])
                    t0 = min(t for t, _ in s["values"])
                    first[tgt] = min(first.get(tgt, t0), t0)
        out: dict[str, list[Series]] = {}
        for sel, series in dump.items():
            base = sel.split("{", 1)[0]
            kept = out.setdefault(sel, [])
            for s in series:
                metric = s["metric"]
                if metric.get("__name__", base) not in self.counters or not s["values"]:
                    kept.append(s)
                    continue
                key = (sel, tuple(sorted((str(k), str(v)) for k, v in metric.items())))
                tgt = self._target(metric)
                t0 = min(t for t, _ in s["values"])
                born = key not in self.series and (tgt in self.targets or t0 > first[tgt])
                self.series.add(key)
                if born:
                    self.born += 1
                    # a millisecond before: the window that ends on t0 counts it, the one
                    # that starts there does not count it again
                    zero = [t0 - BIRTH_BEFORE_S, 0.0]
                    kept.append({"metric": metric, "values": [zero, *s["values"]]})
                else:
                    kept.append(s)
        self.targets |= set(first)
        return out


# -- arithmetic ---------------------------------------------------------------------------------


def _points(s: Series, start: float | None, end: float | None) -> list[tuple[float, float]]:
    pts = []
    values = s.get("values")
    for pair in values if isinstance(values, list) else []:
        try:
            t, v = pair
            tf, vf = float(t), float(v)
        except (TypeError, ValueError, OverflowError):
            continue
        if not (math.isfinite(tf) and math.isfinite(vf)):
            continue
        if (start is None or tf >= start) and (end is None or tf <= end):
            pts.append((tf, vf))
    pts.sort()
    return pts


def increase(points: list[tuple[float, float]]) -> float:
    """Counter increase over the points; a drop is a restart (the counter began again at 0)."""
    total = 0.0
    for (_, a), (_, b) in itertools.pairwise(points):
        total += b - a if b >= a else b
    return total


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus' rule on cumulative (``le``, count) pairs: linear inside the bucket; the
    +Inf bucket answers with the highest finite bound."""
    bs = sorted(buckets)
    if not bs or bs[-1][1] <= 0:
        return None
    total = bs[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in bs:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return bs[-1][0]


def summarize(
    dump: Dump,
    mapping: MetricMap | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    report: MetricsReport | None = None,
) -> dict[str, ServiceMetrics]:
    """Per service over [start, end] (default: everything in the dump), from the usable
    points only (:func:`clean_dump`; what was left out is counted in ``report``). A counter
    born while its target was already scraped (a service's first failed request) counts
    from zero (:class:`CounterBirths`), as the watch's sources count it."""
    m = mapping or MetricMap()
    lab = m.service_label
    dump = CounterBirths(m).fill(clean_dump(dump, m, report))

    def group(name: str) -> dict[str, list[Series]]:
        g: dict[str, list[Series]] = defaultdict(list)
        for s in _by_name(dump, name):
            g[str(s["metric"].get(lab, ""))].append(s)
        return g

    reqs = group(m.requests)
    sums = group(m.duration_sum)
    buckets = group(m.duration_bucket)
    cpus = group(m.cpu_seconds)
    ups = group(m.up)
    services = sorted((set(reqs) | set(cpus)) - {""})
    out: dict[str, ServiceMetrics] = {}
    for svc in services:
        pts_all = [p for s in reqs.get(svc, []) for p in _points(s, start, end)]
        t0 = min((t for t, _ in pts_all), default=start or 0.0)
        t1 = max((t for t, _ in pts_all), default=end or 0.0)
        cpu_pts = [_points(s, start, end) for s in cpus.get(svc, [])]
        if not pts_all and cpu_pts:
            t0 = min(p[0][0] for p in cpu_pts if p)
            t1 = max(p[-1][0] for p in cpu_pts if p)
        window = max(t1 - t0, 0.0)
        n = sum(increase(_points(s, start, end)) for s in reqs.get(svc, []))
        errs = sum(
            increase(_points(s, start, end))
            for s in reqs.get(svc, [])
            if str(s["metric"].get(m.status_label, "")).startswith(m.error_status)
        )
        total_time = sum(increase(_points(s, start, end)) for s in sums.get(svc, []))
        cum: dict[float, float] = defaultdict(float)
        for s in buckets.get(svc, []):
            try:
                le = float(s["metric"].get("le", "nan"))
            except ValueError:
                continue
            if not math.isnan(le):
                cum[le] += increase(_points(s, start, end))
        bl = list(cum.items())
        cpu = sum(increase(p) for p in cpu_pts) if cpu_pts else None
        instances = {
            str(s["metric"].get(m.instance_label, ""))
            for s in ups.get(svc, [])
            if any(v >= 1 for _, v in _points(s, start, end))
        }
        if not instances:
            instances = {str(s["metric"].get(m.instance_label, "")) for s in reqs.get(svc, [])}
        out[svc] = ServiceMetrics(
            service=svc,
            window=window,
            requests=n,
            rate=n / window if window > 0 else 0.0,
            mean=total_time / n if n > 0 and sums.get(svc) else None,
            p50=histogram_quantile(0.5, bl),
            p95=histogram_quantile(0.95, bl),
            p99=histogram_quantile(0.99, bl),
            error_rate=errs / n if n > 0 else None,
            cpu_seconds=cpu,
            utilization=cpu / window if cpu is not None and window > 0 else None,
            demand=cpu / n if cpu is not None and n > 0 else None,
            replicas=max(1, len(instances)),
        )
    return out


def up_fraction(dump: Dump, mapping: MetricMap | None = None) -> dict[str, float]:
    """Share of samples where each service's targets were up (availability as scraped)."""
    m = mapping or MetricMap()
    acc: dict[str, list[float]] = defaultdict(list)
    for s in _by_name(dump, m.up):
        acc[str(s["metric"].get(m.service_label, ""))].extend(v for _, v in _points(s, None, None))
    return {k: sum(1 for x in v if x >= 1) / len(v) for k, v in acc.items() if v}
