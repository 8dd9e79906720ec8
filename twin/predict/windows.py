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

:func:`from_series` reads a simulation's time series; :func:`from_windows` the watch's
windows (:class:`twin.predict.sources.Window`; :func:`to_windows` the other way), so the
watch and the recogniser read production through one reader per format; :func:`read_nezha`
is Nezha's published layout through that path (the one reading,
:func:`twin.calibrate.nezha.read_day`). Dataset readers say which of their metrics map and
which do not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from twin.calibrate.nezha import POD_COLUMNS, read_day
from twin.predict.sources import EntrySli, Window, nezha_windows
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


HEALTHY: dict[str, float] = {"success": 1.0}
"""A metric's reading on a fully healthy system: a share that stays there is a reading (every
request answered well), not silence."""


def uninformative(tel: Telemetry) -> set[tuple[str, str]]:
    """(scope, metric) pairs that never vary anywhere in ``tel`` (a success rate reported as a
    constant 0, a gauge never filled): such a metric says nothing, and a model trained where
    it moves would read meaning into its silence, so both sides leave it out. A metric held
    at its :data:`HEALTHY` value throughout is kept: a fault-free recording of a healthy
    system shows exactly that, and a fault that breaks it is what the metric is for."""
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
                healthy = bool(finite.size) and bool(np.all(finite == HEALTHY.get(m, math.nan)))
                seen[m] = seen.get(m, False) or varies or healthy
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
    served_delay: Mapping[str, np.ndarray] | None = None,
) -> Telemetry:
    """A simulation's time series (:class:`~twin.results.TimeSeries` frame, windows of
    ``window`` s) as :class:`Telemetry`.

    The twin reports per service, not per edge; an edge's server-side median is its callee's
    median latency, and the client side adds the link's mean network latency plus
    ``extra_delay[edge]`` (per window, seconds: an injected network delay), which is how the
    twin's network model adds it to a call. ``served_delay[service]`` (per window, seconds)
    is a wait the service's own server-side latency includes without holding a worker (an
    awaited call or timer in its handler): added to its latency quantiles, hence to the
    server and client sides of the calls into it."""
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
        served = np.zeros(n) if served_delay is None else served_delay.get(name, np.zeros(n))
        services[name] = {
            "cpu": m.get("utilization", np.full(n, math.nan)),
            "latency_p95": m.get("p95", np.full(n, math.nan)) + served,
            "latency_p99": m.get("p99", np.full(n, math.nan)) + served,
            "rate": m.get("arrivals", np.zeros(n)) / window,
            "success": success,
        }
    delays = link_delay(topology)
    edges: dict[str, Series] = {}
    for key, base in delays.items():
        callee = key.split("->", 1)[1]
        p50 = raw.get(callee, {}).get("p50", np.full(n, math.nan))
        if served_delay is not None:
            p50 = p50 + served_delay.get(callee, np.zeros(n))
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


# -- the watch's windows ---------------------------------------------------------------------

ENTRY_OF_SLI: dict[str, str] = {
    "success": "success",
    "p50": "latency_p50",
    "p95": "latency_p95",
    "p99": "latency_p99",
}
"""A window's entry figures (:class:`~twin.predict.sources.EntrySli` fields) -> entry metrics."""


def window_length(windows: Sequence[Window]) -> float:
    """The windows' length, seconds: their median (60 when there are none)."""
    return float(np.median([w.seconds for w in windows])) if windows else 60.0


def from_windows(windows: Sequence[Window], calls: Iterable[tuple[str, str]] = ()) -> Telemetry:
    """The watch's windows (oldest first) as :class:`Telemetry`: each service's, edge's and
    the entry's metrics of this vocabulary, NaN where a window lacks one; a service metric
    outside it is listed in ``unmapped`` (``service:NAME``). ``calls`` are the call edges
    known besides those the windows measure."""
    n = len(windows)
    times = np.array([w.time for w in windows], dtype=float)
    window = window_length(windows)
    services: dict[str, Series] = {}
    edges: dict[str, Series] = {}
    entry: Series = {}
    unmapped: set[str] = set()
    for i, w in enumerate(windows):
        for s, ms in w.services.items():
            row = services.setdefault(s, {})
            for m, v in ms.items():
                if m in SERVICE_METRICS:
                    row.setdefault(m, np.full(n, math.nan))[i] = v
                else:
                    unmapped.add(f"service:{m}")
        for e, ms in w.edges.items():
            row = edges.setdefault(e, {})
            for m, v in ms.items():
                if m in EDGE_METRICS:
                    row.setdefault(m, np.full(n, math.nan))[i] = v
        if w.entry is not None:
            for f, m in ENTRY_OF_SLI.items():
                v = getattr(w.entry, f)
                if v is not None:
                    entry.setdefault(m, np.full(n, math.nan))[i] = v
    known = list(dict.fromkeys(calls))
    for e in edges:
        pair = tuple(e.split("->", 1))
        if len(pair) == 2 and pair not in known:
            known.append((pair[0], pair[1]))
    return Telemetry(times, window, services, edges, entry, tuple(known), tuple(sorted(unmapped)))


def to_windows(tel: Telemetry) -> list[Window]:
    """:class:`Telemetry` as the watch's windows (the inverse of :func:`from_windows` on this
    vocabulary): what a replay of the twin's own telemetry looks like."""
    out: list[Window] = []
    sli = {m: f for f, m in ENTRY_OF_SLI.items()}

    def at(series: Series, i: int) -> dict[str, float]:
        return {m: float(v[i]) for m, v in series.items() if math.isfinite(v[i])}

    for i, t in enumerate(tel.times):
        e = at(tel.entry, i)
        entry = (
            EntrySli(
                requests=0.0,
                success=e.get("success"),
                p50=e.get("latency_p50"),
                p99=e.get("latency_p99"),
                p95=e.get("latency_p95"),
            )
            if any(m in e for m in sli)
            else None
        )
        out.append(
            Window(
                float(t),
                tel.window,
                {s: at(v, i) for s, v in tel.services.items()},
                entry,
                edges={k: at(v, i) for k, v in tel.edges.items()},
            )
        )
    return out


# -- Nezha's published layout -----------------------------------------------------------------

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


@dataclass(frozen=True)
class LabelledFault:
    """A fault the dataset says was injected: when (Unix s), into which service, of which
    type (the dataset's own word)."""

    time: float
    service: str
    type: str
    label: str = ""


def read_nezha(folder: str | Path) -> tuple[Telemetry, list[LabelledFault]]:
    """One day of Nezha's layout as :class:`Telemetry` and its labelled faults: the one
    reading (:func:`twin.calibrate.nezha.read_day`: files by pattern and header, pod names
    reduced to services, clocks aligned) through the watch's windows
    (:func:`twin.predict.sources.nezha_windows`), so the recogniser sees what the watch sees.
    Pod columns outside this vocabulary are listed in ``unmapped``."""
    day = read_day(folder)
    rec = nezha_windows(day)
    tel = from_windows(rec.items, day.calls)
    outside = {
        f"pod:{col}"
        for col, (metric, _) in POD_COLUMNS.items()
        if metric not in SERVICE_METRICS and any(metric in s for s in day.services.values())
    }
    faults = [
        LabelledFault(f.timestamp, f.service, f.type, f"{f.time[11:16]} {f.service} {f.type}")
        for f in day.faults
    ]
    unmapped = tuple(sorted(set(day.unmapped) | outside))
    return replace(tel, unmapped=unmapped, notes=tuple(day.notes)), faults
