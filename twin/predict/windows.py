"""Telemetry as fixed windows, in one vocabulary both production and the twin speak.

The correlation engine compares a simulated failure with a real one, so both must be read
the same way: one row per window (the window *ending* at its time, as Prometheus and Nezha
summarise a minute), per service a few metrics, per call edge its latency seen by the caller
(client) and by the callee (server), and the entry's service-level figures. A metric one side
lacks is absent (NaN), never guessed.

The vocabulary (units in the names' descriptions):

============  ====================================================================
scope         metric: meaning
============  ====================================================================
service       ``cpu``: busy share of the service's processing capacity (0-1);
              ``latency_p95``, ``latency_p99``: server-side latency quantiles (s);
              ``rate``: requests per second; ``success``: share answered well (0-1)
edge          ``client_p50``: median latency of the call seen by the caller (s);
              ``server_p50``: the same call seen by the callee (s)
entry         ``success`` (0-1); ``latency_p50``, ``latency_p95``, ``latency_p99`` (s)
============  ====================================================================

:func:`from_series` reads a simulation's time series; :func:`read_nezha` reads Nezha's
published layout (per-pod minute tables, front-end SLIs, per-edge medians, the call edges and
the fault list), finding files by pattern. Dataset readers say which of their metrics map and
which do not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twin.calibrate.nezha import read_fault_list, read_front_sli
from twin.calibrate.spans import service_from_pod
from twin.errors import InputError
from twin.safeload import check_size
from twin.topology import Topology

SERVICE_METRICS: tuple[str, ...] = ("cpu", "latency_p95", "latency_p99", "rate", "success")
EDGE_METRICS: tuple[str, ...] = ("client_p50", "server_p50")
ENTRY_METRICS: tuple[str, ...] = ("success", "latency_p50", "latency_p95", "latency_p99")

Series = dict[str, np.ndarray]


@dataclass(frozen=True)
class Telemetry:
    """Windows of one system: ``times`` (end of each window, s), per service, edge
    (``"caller->callee"``) and the entry a dict metric -> values aligned with ``times``.

    ``calls`` are the call edges known to exist (whether or not their latency is measured);
    ``unmapped`` the source's metrics that have no counterpart here; ``notes`` what the
    reader had to do or leave out."""

    times: np.ndarray
    window: float
    services: dict[str, Series]
    edges: dict[str, Series]
    entry: Series
    calls: tuple[tuple[str, str], ...] = ()
    unmapped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def service_names(self) -> list[str]:
        """Every service the windows or the call edges know, sorted."""
        names = set(self.services) | {s for e in self.calls for s in e}
        return sorted(names)

    def callers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s: [] for s in self.service_names()}
        for a, b in self.calls:
            out[b].append(a)
        return out

    def callees(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s: [] for s in self.service_names()}
        for a, b in self.calls:
            out[a].append(b)
        return out

    def mask(self, lo: float, hi: float, min_overlap: float | None = None) -> np.ndarray:
        """Windows that overlap ``[lo, hi)`` by at least ``min_overlap`` seconds (default:
        half a window)."""
        need = self.window / 2 if min_overlap is None else min_overlap
        start = np.maximum(self.times - self.window, lo)
        end = np.minimum(self.times, hi)
        return np.asarray((end - start) >= need - 1e-9)

    def before(self, t: float, seconds: float) -> np.ndarray:
        """Windows lying wholly in the ``seconds`` before ``t``."""
        return np.asarray(
            (self.times <= t + 1e-9) & (self.times - self.window >= t - seconds - 1e-9)
        )


def uninformative(tel: Telemetry) -> set[tuple[str, str]]:
    """(scope, metric) pairs that never vary anywhere in ``tel`` (a success rate reported as a
    constant, a gauge never filled): such a metric says nothing, and a model trained where it
    moves would read meaning into its silence, so both sides leave it out."""
    out: set[tuple[str, str]] = set()
    groups: list[tuple[str, Iterable[Series]]] = [
        ("service", tel.services.values()),
        ("edge", tel.edges.values()),
        ("entry", [tel.entry]),
    ]
    for scope, many in groups:
        seen: dict[str, bool] = {}
        for series in many:
            for m, v in series.items():
                finite = v[np.isfinite(v)]
                varies = bool(finite.size) and float(np.ptp(finite)) > 0.0
                seen[m] = seen.get(m, False) or varies
        out |= {(scope, m) for m, varies in seen.items() if not varies}
    return out


# -- the twin's side ------------------------------------------------------------------------


def link_delay(topology: Topology) -> dict[str, float]:
    """Each call edge's mean network latency in the topology (s)."""
    net = topology.network
    out: dict[str, float] = {}
    for a, b in topology.service_graph().edges:
        key = f"{a}->{b}"
        link = net.links.get(key)
        dist = link.latency if link is not None and link.latency is not None else net.latency
        out[key] = float(dist.expected())
    return out


def from_series(
    frame: pd.DataFrame,
    topology: Topology,
    window: float,
    extra_delay: Mapping[str, np.ndarray] | None = None,
) -> Telemetry:
    """A simulation's time series (:class:`~twin.results.TimeSeries` frame, windows of
    ``window`` s) as :class:`Telemetry`.

    The twin reports per service, not per edge; an edge's server-side median is its callee's
    median latency, and the client side adds the link's mean network latency plus
    ``extra_delay[edge]`` (per window, seconds: an injected network delay), which is how the
    twin's network model adds it to a call."""
    f = frame[frame["window"] == window]
    times = np.sort(f["time"].unique()) + window
    index = {t: i for i, t in enumerate(times - window)}
    n = len(times)

    def grid(scope: str) -> dict[str, Series]:
        part = f[f["scope"] == scope]
        out: dict[str, Series] = {}
        for (name, metric), g in part.groupby(["name", "metric"], observed=True):
            arr = np.full(n, math.nan)
            idx = [index[t] for t in g["time"]]
            arr[idx] = g["value"].to_numpy(dtype=float)
            out.setdefault(str(name), {})[str(metric)] = arr
        return out

    raw = grid("service")
    services: dict[str, Series] = {}
    for name, m in raw.items():
        ok, bad = m.get("succeeded", np.zeros(n)), m.get("failed", np.zeros(n))
        done = ok + bad
        with np.errstate(invalid="ignore", divide="ignore"):
            success = np.where(done > 0, ok / done, math.nan)
        services[name] = {
            "cpu": m.get("utilization", np.full(n, math.nan)),
            "latency_p95": m.get("p95", np.full(n, math.nan)),
            "latency_p99": m.get("p99", np.full(n, math.nan)),
            "rate": m.get("arrivals", np.zeros(n)) / window,
            "success": success,
        }
    delays = link_delay(topology)
    edges: dict[str, Series] = {}
    for key, base in delays.items():
        callee = key.split("->", 1)[1]
        p50 = raw.get(callee, {}).get("p50", np.full(n, math.nan))
        extra = np.zeros(n) if extra_delay is None else extra_delay.get(key, np.zeros(n))
        edges[key] = {"server_p50": p50, "client_p50": p50 + base + extra}
    entries = grid("entry")
    entry: Series = {}
    if entries:
        main = max(entries, key=lambda k: float(np.nansum(entries[k].get("arrivals", 0.0))))
        e = entries[main]
        ok, bad = e.get("succeeded", np.zeros(n)), e.get("failed", np.zeros(n))
        with np.errstate(invalid="ignore", divide="ignore"):
            entry["success"] = np.where(ok + bad > 0, ok / (ok + bad), math.nan)
        for q in ("p50", "p95", "p99"):
            entry[f"latency_{q}"] = e.get(q, np.full(n, math.nan))
    calls = tuple((a, b) for a, b in topology.service_graph().edges)
    return Telemetry(times, window, services, edges, entry, calls)


# -- Nezha's published layout -----------------------------------------------------------------

NEZHA_POD_METRICS: dict[str, tuple[str, float]] = {
    "CpuUsageRate(%)": ("cpu", 0.01),
    "PodServerLatencyP95(s)": ("latency_p95", 1.0),
    "PodServerLatencyP99(s)": ("latency_p99", 1.0),
    "PodWorkload(Ops)": ("rate", 1.0),
    "PodSuccessRate(%)": ("success", 0.01),
}
"""Nezha pod column -> (metric, factor to the metric's unit). Every other column is unmapped:
memory, syscalls, network bytes and node figures have no counterpart in the twin; the
client-side pod latency is the edge table's business; P90s have no twin quantile."""

NEZHA_ENTRY_METRICS: dict[str, str] = {
    "success": "success",
    "p50": "latency_p50",
    "p95": "latency_p95",
    "p99": "latency_p99",
}
NEZHA_FAULT_KINDS: dict[str, str] = {
    "cpu_contention": "cpu_exhaustion",
    "cpu_consumed": "cpu_exhaustion",
    "network_delay": "latency",
    "exception": "error_rate",
    "return": "error_rate",
}
"""Nezha's fault types -> the twin's fault kinds: a CPU hog beside the pod or the pod's own
CPU burnt slow its processing (``cpu_exhaustion``); ``tc`` delay on the pod's interface
delays every call into it (``latency`` on those calls); a thrown exception or an early error
return fails a share of requests (``error_rate``). Any other type is unmapped
(:func:`nezha_kind` says None)."""


def nezha_kind(fault_type: str) -> str | None:
    """The twin's fault kind for a Nezha fault type, or None when it has none."""
    return NEZHA_FAULT_KINDS.get(fault_type)


_NEZHA_IDS = frozenset({"Time", "TimeStamp", "PodName", "time", "timestamp"})


@dataclass(frozen=True)
class LabelledFault:
    """A fault the dataset says was injected: when (Unix s), into which service, of which
    type (the dataset's own word)."""

    time: float
    service: str
    type: str
    label: str = ""


@dataclass
class _Grid:
    times: np.ndarray
    step: float
    notes: list[str] = field(default_factory=list)

    def place(self, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Values at times ``t`` on the grid (nearest slot within half a step)."""
        out = np.full(len(self.times), math.nan)
        pos = np.searchsorted(self.times, t)
        for i, (ti, vi) in enumerate(zip(t, v, strict=True)):
            best = None
            for j in (pos[i] - 1, pos[i]):
                if 0 <= j < len(self.times) and abs(self.times[j] - ti) <= self.step / 2:
                    best = (
                        j
                        if best is None or abs(self.times[j] - ti) < abs(self.times[best] - ti)
                        else best
                    )
            if best is not None:
                out[best] = vi
        return out


def _read_csv(path: Path) -> pd.DataFrame:
    check_size(path, "telemetry")
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read CSV ({e})", source=str(path)) from e


def _one(folder: Path, pattern: str, what: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    if len(found) > 1:
        raise InputError(
            f"more than one {what} ({', '.join(p.name for p in found)}): expected one",
            source=str(folder),
        )
    return found[0] if found else None


def _aligned(
    t: np.ndarray, ref: np.ndarray, step: float, name: str, notes: list[str]
) -> np.ndarray:
    """Times of one file put on the reference clock. A file whose times do not overlap the
    reference's but cover the same span with the same number of rows is the same capture
    under a clock set off by a constant: it is shifted by that constant, and said so.
    Anything else that does not overlap is left out (returned empty)."""
    if not len(t) or (t.max() >= ref.min() and t.min() <= ref.max()):
        return t
    same_span = abs((t.max() - t.min()) - (ref.max() - ref.min())) <= step
    if same_span and abs(len(t) - len(ref)) <= max(1, len(ref) // 100):
        shift = float(ref.min() - t.min())
        notes.append(
            f"{name}: clock {-shift:+.0f} s off the front end's, same span and rows: shifted"
        )
        return t + shift
    notes.append(f"{name}: times do not overlap the front end's: left out")
    return np.array([])


def _split_edge(col: str, services: set[str]) -> tuple[str, str] | None:
    for i, ch in enumerate(col):
        if ch == "_" and col[:i] in services and col[i + 1 :] in services:
            return col[:i], col[i + 1 :]
    return None


def read_nezha(folder: str | Path) -> tuple[Telemetry, list[LabelledFault]]:
    """One day of Nezha's layout (``rca_data/DAY/``) as :class:`Telemetry` and its labelled
    faults. Files are found by pattern: ``*_metric.csv`` (one per pod; the pod name reduced
    to its service), ``front_service*.csv`` (front-end SLIs, the grid's clock),
    ``source_*.csv`` / ``destination_*.csv`` (per-edge medians at the caller and the callee),
    ``dependency*.csv`` (call edges) and ``*fault_list*.json`` (ground truth; optional)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("expected a folder of Nezha telemetry", source=str(root))
    front = _one(root, "front_service*.csv", "front-end SLI table")
    if front is None:
        raise InputError("no front_service*.csv (the front end's SLIs)", source=str(root))
    sli = read_front_sli(front)
    ref = sli["t"].to_numpy(dtype=float)
    step = float(np.median(np.diff(ref))) if len(ref) > 1 else 60.0
    grid = _Grid(ref, step)
    notes: list[str] = []
    entry = {
        NEZHA_ENTRY_METRICS[k]: grid.place(ref, sli[k].to_numpy(dtype=float))
        for k in NEZHA_ENTRY_METRICS
    }
    services: dict[str, Series] = {}
    unmapped: set[str] = set()
    for path in sorted(root.glob("*_metric.csv")):
        df = _read_csv(path)
        if "TimeStamp" not in df.columns:
            raise InputError("missing column TimeStamp", source=str(path))
        service = service_from_pod(path.name[: -len("_metric.csv")])
        t = pd.to_numeric(df["TimeStamp"], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(t)
        df, t = df[keep], t[keep]
        t = _aligned(t, ref, step, path.name, notes)
        if not len(t):
            continue
        series: Series = {}
        for col in df.columns:
            if col in NEZHA_POD_METRICS:
                metric, k = NEZHA_POD_METRICS[col]
                v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float) * k
                series[metric] = grid.place(t, v)
            elif col not in _NEZHA_IDS:
                unmapped.add(f"pod:{col}")
        services[service] = series
    calls: list[tuple[str, str]] = []
    dep = _one(root, "dependency*.csv", "call-edge table")
    if dep is not None:
        d = _read_csv(dep)
        if {"Source", "Target"} <= set(d.columns):
            calls = [(str(a), str(b)) for a, b in zip(d["Source"], d["Target"], strict=True)]
        else:
            notes.append(f"{dep.name}: no Source/Target columns: call edges from the edge tables")
    known = set(services) | {s for e in calls for s in e}
    edges: dict[str, Series] = {}
    for pattern, metric in (("source_*.csv", "client_p50"), ("destination_*.csv", "server_p50")):
        for path in sorted(root.glob(pattern)):
            df = _read_csv(path)
            tcol = "timestamp" if "timestamp" in df.columns else "TimeStamp"
            if tcol not in df.columns:
                raise InputError("missing column timestamp", source=str(path))
            t = pd.to_numeric(df[tcol], errors="coerce").to_numpy(dtype=float)
            t = _aligned(t, ref, step, path.name, notes)
            if not len(t):
                continue
            for col in df.columns:
                if col in _NEZHA_IDS:
                    continue
                pair = _split_edge(col, known)
                if pair is None:
                    unmapped.add(f"edge:{col}")
                    continue
                key = f"{pair[0]}->{pair[1]}"
                v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
                edges.setdefault(key, {})[metric] = grid.place(t, v)
                if pair not in calls:
                    calls.append(pair)
    faults: list[LabelledFault] = []
    fl = _one(root, "*fault_list*.json", "fault list")
    if fl is not None:
        faults = [
            LabelledFault(f.timestamp, f.service, f.type, f"{f.time[11:16]} {f.service} {f.type}")
            for f in read_fault_list(fl)
        ]
    tel = Telemetry(
        times=ref,
        window=step,
        services=services,
        edges=edges,
        entry=entry,
        calls=tuple(calls),
        unmapped=tuple(sorted(unmapped)),
        notes=tuple(notes),
    )
    return tel, faults
