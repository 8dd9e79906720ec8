"""Nezha's published telemetry layout (IntelligentDDS/Nezha ``rca_data/DAY/``): fault list,
per-pod 1-minute metrics and front-end SLIs, as tidy pandas frames, and a whole day on the
front end's minutes (:func:`read_day`, the one reading ``twin watch --format nezha`` and the
recogniser share).

Why a reader of its own: the fault ground truth (``DAY-fault_list.json``: per hour, a list of
``inject_time``, ``inject_timestamp``, ``inject_pod``, ``inject_type``) and the minute tables
(``POD_metric.csv``, ``front_service.csv``) are what a fault replay compares with, and they
have quirks a replay must not trip on silently: times are read from ``TimeStamp`` (Unix
seconds; ``Time`` is a Go time string), and a pod file whose timestamps do not overlap the
front end's (in one published day a pod's file is 200,000,000 s ahead) is reported, not
joined by accident. Each row of a minute table summarises the minute that *ends* at its
timestamp.

Files are found by pattern in the folder given and the folders below it (:func:`find`), so a
day reads the same from Nezha's own layout (``DAY/DAY-fault_list.json`` beside
``DAY/metric/*.csv``) and from one flat folder. A service whose pod was replaced during the
day has a file per pod; they are read as one service (:func:`combine`), never one in place
of the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twin.calibrate.spans import service_from_pod
from twin.errors import InputError
from twin.safeload import check_size, loads_json, read_text

FRONT_COLUMNS = {
    "SuccessRate(%)": "success_pct",
    "LatencyP50(s)": "p50",
    "LatencyP90(s)": "p90",
    "LatencyP95(s)": "p95",
    "LatencyP99(s)": "p99",
}


@dataclass(frozen=True)
class NezhaFault:
    """One injected fault: when (Unix seconds), where (pod and its service), what type."""

    timestamp: float
    time: str
    pod: str
    service: str
    type: str


ADDITIVE_COLUMNS = frozenset({"PodWorkload(Ops)", "NetworkReceiveBytes", "NetworkTransmitBytes"})
"""Mapped per-pod columns that add up over a service's pods (requests, bytes); the others
(shares of a pod's limit, latency quantiles, success) are averaged where two pods cover one
minute."""


def find(root: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` in ``root`` or any folder below it (hidden ones skipped),
    sorted by path."""
    return sorted(
        p
        for p in root.rglob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def combine(old: np.ndarray | None, new: np.ndarray, additive: bool) -> np.ndarray:
    """Two pods' series of one service on one grid (NaN where a pod has no row): where one pod
    has a value it is the service's; where both have, the sum (``additive``) or the mean."""
    if old is None:
        return new
    both = np.isfinite(old) & np.isfinite(new)
    out = np.where(np.isfinite(old), old, new)
    out[both] = old[both] + new[both] if additive else 0.5 * (old[both] + new[both])
    return out


def read_fault_list(path: Path) -> list[NezhaFault]:
    """The injected faults, sorted by time. A malformed entry is an :class:`InputError`."""
    try:
        doc = loads_json(read_text(path, "telemetry"), str(path), "telemetry")
    except ValueError as e:  # json.JSONDecodeError, or a number too long to read
        raise InputError(f"cannot read fault list ({e})", source=str(path)) from e
    if not isinstance(doc, dict):
        raise InputError("expected an object of hour -> list of faults", source=str(path))
    out: list[NezhaFault] = []
    for hour, items in doc.items():
        if not isinstance(items, list):
            raise InputError("expected a list of faults", source=str(path), where=str(hour))
        for i, f in enumerate(items):
            where = f"{hour}[{i}]"
            try:
                pod = str(f["inject_pod"])
                out.append(
                    NezhaFault(
                        timestamp=float(f["inject_timestamp"]),
                        time=str(f.get("inject_time", "")),
                        pod=pod,
                        service=service_from_pod(pod),
                        type=str(f["inject_type"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as e:
                raise InputError(
                    f"needs inject_timestamp (number), inject_pod, inject_type ({e})",
                    source=str(path),
                    where=where,
                ) from e
    return sorted(out, key=lambda f: f.timestamp)


def _read_minutes(path: Path, needed: list[str]) -> pd.DataFrame:
    check_size(path, "telemetry")
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read CSV ({e})", source=str(path)) from e
    missing = [c for c in ["TimeStamp", *needed] if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", source=str(path))
    df["t"] = pd.to_numeric(df["TimeStamp"], errors="coerce")
    return df.dropna(subset=["t"]).sort_values("t").reset_index(drop=True)


def read_front_sli(path: Path) -> pd.DataFrame:
    """``front_service.csv`` -> t (Unix s, end of the minute), success (0-1), p50..p99 (s)."""
    df = _read_minutes(path, list(FRONT_COLUMNS))
    df = df.rename(columns=FRONT_COLUMNS)
    df["success"] = df["success_pct"] / 100.0
    return df[["t", "success", "p50", "p90", "p95", "p99"]]


def read_pod_metrics(
    folder: Path, span: tuple[float, float] | None = None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Every ``*_metric.csv`` in ``folder`` or below it -> per pod its minute table (column
    ``t``; a day's service reading is :func:`read_day`'s, its pods combined), and the problems
    met. With ``span`` (the front end's first and last timestamp), a file whose
    timestamps do not overlap it is left out and said, never joined to the wrong minutes."""
    out: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    for path in find(folder, "*_metric.csv"):
        pod = path.name[: -len("_metric.csv")]
        df = _read_minutes(path, ["PodWorkload(Ops)"])
        if span is not None and len(df):
            lo, hi = float(df["t"].min()), float(df["t"].max())
            if hi < span[0] or lo > span[1]:
                problems.append(
                    f"{path.name}: TimeStamp {lo:.0f}-{hi:.0f} does not overlap the front end's "
                    f"{span[0]:.0f}-{span[1]:.0f} (offset {lo - span[0]:+.0f} s): left out"
                )
                continue
        out[pod] = df
    return out, problems


def fault_minutes(
    sli: pd.DataFrame, start: float, seconds: float, min_overlap: float = 40.0
) -> pd.DataFrame:
    """The minute rows of ``sli`` whose minute (ending at ``t``) overlaps the fault window
    ``[start, start + seconds)`` by at least ``min_overlap`` seconds."""
    lo = (sli["t"] - 60.0).clip(lower=start)
    hi = sli["t"].clip(upper=start + seconds)
    return sli[(hi - lo) >= min_overlap]


# -- a whole day on one clock -----------------------------------------------------------------

POD_COLUMNS: dict[str, tuple[str, float]] = {
    "CpuUsageRate(%)": ("cpu", 0.01),
    "MemoryUsageRate(%)": ("memory", 0.01),
    "NetworkReceiveBytes": ("net_rx_bytes", 1.0),
    "NetworkTransmitBytes": ("net_tx_bytes", 1.0),
    "PodClientLatencyP90(s)": ("client_p90", 1.0),
    "PodClientLatencyP95(s)": ("client_p95", 1.0),
    "PodClientLatencyP99(s)": ("client_p99", 1.0),
    "PodServerLatencyP90(s)": ("latency_p90", 1.0),
    "PodServerLatencyP95(s)": ("latency_p95", 1.0),
    "PodServerLatencyP99(s)": ("latency_p99", 1.0),
    "PodWorkload(Ops)": ("rate", 1.0),
    "PodSuccessRate(%)": ("success", 0.01),
}
"""Nezha's per-pod columns -> metric names (the watch's and the recogniser's vocabulary) and
the factor to their unit (percent -> share). Every other column is counted as unmapped:
syscalls, raw CPU and memory, node figures."""

EDGE_TABLES: tuple[tuple[str, str], ...] = (
    ("source_*.csv", "client_p50"),
    ("destination_*.csv", "server_p50"),
)
"""Per-edge median tables (a column per ``caller_callee``): the caller's view, the callee's."""

IDENTITY = frozenset({"Time", "TimeStamp", "PodName", "time", "timestamp", "t"})


@dataclass(frozen=True)
class NezhaDay:
    """One day of Nezha's layout on the front end's minutes. ``times``: the end of each minute
    (Unix s, the SLI table's clock); ``entry``: the SLI table's ``success`` (0-1) and ``p50``,
    ``p90``, ``p95``, ``p99`` (s); ``services``: per service (pod name reduced) metric
    (:data:`POD_COLUMNS`) -> values; ``edges``: per ``"caller->callee"`` ``client_p50`` and
    ``server_p50`` (s); all aligned with ``times``, NaN where a file has no row. ``calls``: the
    call edges the dependency and edge tables name; ``unmapped``: per unmapped column
    (``pod:``/``edge:`` prefixed) the number of files that carry it; ``notes``: what the
    reader had to shift or leave out."""

    times: np.ndarray
    step: float
    entry: dict[str, np.ndarray]
    services: dict[str, dict[str, np.ndarray]]
    edges: dict[str, dict[str, np.ndarray]]
    calls: tuple[tuple[str, str], ...]
    faults: list[NezhaFault]
    files: list[str] = field(default_factory=list)
    unmapped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _headers(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return [c.strip() for c in fh.readline().strip().split(",")]
    except OSError as e:
        raise InputError(f"cannot read ({e})", source=str(path)) from e


def is_sli_table(path: Path) -> bool:
    """The front end's SLI table is known by its header (``TimeStamp``, ``SuccessRate(%)``,
    ``LatencyP99(s)``, no pod column), never by its name."""
    cols = set(_headers(path))
    return {"TimeStamp", "SuccessRate(%)", "LatencyP99(s)"} <= cols and "PodName" not in cols


def _csv(path: Path) -> pd.DataFrame:
    check_size(path, "telemetry")
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read CSV ({e})", source=str(path)) from e


def _one(folder: Path, pattern: str, what: str) -> Path | None:
    found = find(folder, pattern)
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found)
        raise InputError(
            f"more than one {what} ({names}): expected one day's folder", source=str(folder)
        )
    return found[0] if found else None


def align_clock(
    t: np.ndarray, ref: np.ndarray, step: float, name: str, notes: list[str]
) -> np.ndarray:
    """Times of one file put on the reference clock. A file whose times do not overlap the
    reference's but cover the same span with the same number of rows is the same capture
    under a clock set off by a constant: it is shifted by that constant, and said so.
    Anything else that does not overlap is left out (returned empty), and said."""
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


def on_grid(times: np.ndarray, step: float, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Values at times ``t`` placed on the sorted grid ``times``: each at the nearest slot
    within half a step (a later row wins a shared slot), NaN where none lands."""
    out = np.full(len(times), math.nan)
    if not len(times) or not len(t):
        return out
    pos = np.clip(np.searchsorted(times, t), 1, len(times) - 1) if len(times) > 1 else None
    if pos is None:
        near = np.zeros(len(t), dtype=int)
    else:
        left, right = times[pos - 1], times[pos]
        near = np.where(np.abs(t - left) <= np.abs(right - t), pos - 1, pos)
    ok = np.abs(times[near] - t) <= step / 2
    out[near[ok]] = v[ok]
    return out


def _split_edge(col: str, services: set[str]) -> tuple[str, str] | None:
    for i, ch in enumerate(col):
        if ch == "_" and col[:i] in services and col[i + 1 :] in services:
            return col[:i], col[i + 1 :]
    return None


def read_day(folder: str | Path) -> NezhaDay:
    """One day of Nezha's layout (``rca_data/DAY/``), files found by pattern and header in
    the folder or below it (:func:`find`): the SLI table(s) (:func:`is_sli_table`; their
    minutes are the grid), ``*_metric.csv`` (one per pod; a service's pods are combined,
    :func:`combine`), ``source_*.csv`` / ``destination_*.csv`` (per-edge medians),
    ``dependency*.csv`` (call edges) and ``*fault_list*.json`` (ground truth); all but the
    SLI and pod tables are optional. A file on a clock off by a constant is shifted back
    (:func:`align_clock`); a row joins the grid minute nearest its time within half a step."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("expected a folder of Nezha telemetry", source=str(root))
    slis = [p for p in find(root, "*.csv") if is_sli_table(p)]
    if not slis:
        raise InputError(
            "no SLI table (a CSV with TimeStamp, SuccessRate(%), LatencyP99(s))", source=str(root)
        )
    sli = pd.concat([read_front_sli(p) for p in slis]).sort_values("t")
    sli = sli.drop_duplicates("t").reset_index(drop=True)
    if sli.empty:
        raise InputError("the SLI table has no row with a timestamp", source=str(slis[0]))
    files = [str(p) for p in slis]
    times = sli["t"].to_numpy(dtype=float)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 60.0
    entry = {k: sli[k].to_numpy(dtype=float) for k in ("success", "p50", "p90", "p95", "p99")}
    notes: list[str] = []
    unmapped: dict[str, int] = {}
    pods = find(root, "*_metric.csv")
    if not pods:
        raise InputError("no per-pod metric tables (*_metric.csv) in this folder", source=str(root))
    services: dict[str, dict[str, np.ndarray]] = {}
    for path in pods:
        df = _csv(path)
        files.append(str(path))
        if "TimeStamp" not in df.columns:
            raise InputError("missing column TimeStamp", source=str(path))
        t = pd.to_numeric(df["TimeStamp"], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(t)
        df, t = df[keep], align_clock(t[keep], times, step, path.name, notes)
        for col in df.columns:
            if col not in POD_COLUMNS and col not in IDENTITY:
                unmapped[f"pod:{col}"] = unmapped.get(f"pod:{col}", 0) + 1
        if not len(t):
            continue
        series = services.setdefault(service_from_pod(path.name[: -len("_metric.csv")]), {})
        for col, (metric, k) in POD_COLUMNS.items():
            if col in df.columns:
                v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float) * k
                grid = on_grid(times, step, t, v)
                series[metric] = combine(series.get(metric), grid, col in ADDITIVE_COLUMNS)
    calls: list[tuple[str, str]] = []
    dep = _one(root, "dependency*.csv", "call-edge table")
    if dep is not None:
        d = _csv(dep)
        files.append(str(dep))
        if {"Source", "Target"} <= set(d.columns):
            calls = [(str(a), str(b)) for a, b in zip(d["Source"], d["Target"], strict=True)]
        else:
            notes.append(f"{dep.name}: no Source/Target columns: call edges from the edge tables")
    known = set(services) | {s for e in calls for s in e}
    edges: dict[str, dict[str, np.ndarray]] = {}
    for pattern, metric in EDGE_TABLES:
        for path in find(root, pattern):
            df = _csv(path)
            files.append(str(path))
            tcol = "timestamp" if "timestamp" in df.columns else "TimeStamp"
            if tcol not in df.columns:
                raise InputError("missing column timestamp", source=str(path))
            t = pd.to_numeric(df[tcol], errors="coerce").to_numpy(dtype=float)
            t = align_clock(t, times, step, path.name, notes)
            if not len(t):
                continue
            for col in df.columns:
                if col in IDENTITY:
                    continue
                pair = _split_edge(col, known)
                if pair is None:
                    unmapped[f"edge:{col}"] = unmapped.get(f"edge:{col}", 0) + 1
                    continue
                v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
                edges.setdefault(f"{pair[0]}->{pair[1]}", {})[metric] = on_grid(times, step, t, v)
                if pair not in calls:
                    calls.append(pair)
    fl = _one(root, "*fault_list*.json", "fault list")
    faults = read_fault_list(fl) if fl is not None else []
    if fl is not None:
        files.append(str(fl))
    return NezhaDay(
        times, step, entry, services, edges, tuple(calls), faults, files, unmapped, notes
    )
