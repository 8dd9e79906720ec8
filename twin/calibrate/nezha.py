"""Nezha's published telemetry layout (IntelligentDDS/Nezha ``rca_data/DAY/``): fault list,
per-pod 1-minute metrics and front-end SLIs, as tidy pandas frames.

Why a reader of its own: the fault ground truth (``DAY-fault_list.json``: per hour, a list of
``inject_time``, ``inject_timestamp``, ``inject_pod``, ``inject_type``) and the minute tables
(``POD_metric.csv``, ``front_service.csv``) are what a fault replay compares with, and they
have quirks a replay must not trip on silently: times are read from ``TimeStamp`` (Unix
seconds; ``Time`` is a Go time string), and a pod file whose timestamps do not overlap the
front end's (the adservice file of 2022-08-22 is 200,000,000 s ahead) is reported, not
joined by accident. Each row of a minute table summarises the minute that *ends* at its
timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    """Every ``*_metric.csv`` in ``folder`` -> per service its minute table (column ``t``), and
    the problems met. With ``span`` (the front end's first and last timestamp), a file whose
    timestamps do not overlap it is left out and said, never joined to the wrong minutes."""
    out: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*_metric.csv")):
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
        out[service_from_pod(pod)] = df
    return out, problems


def fault_minutes(
    sli: pd.DataFrame, start: float, seconds: float, min_overlap: float = 40.0
) -> pd.DataFrame:
    """The minute rows of ``sli`` whose minute (ending at ``t``) overlaps the fault window
    ``[start, start + seconds)`` by at least ``min_overlap`` seconds."""
    lo = (sli["t"] - 60.0).clip(lower=start)
    hi = sli["t"].clip(upper=start + seconds)
    return sli[(hi - lo) >= min_overlap]
