"""Plain results: the summary (``summary.json``), a tidy time series, a sampled trace.

Nothing here refers to engine objects, so results pickle, cross process boundaries and
outlive the simulation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from twin.results.record import Record
from twin.results.summary import Summary

SERIES_COLUMNS = ["time", "window", "scope", "name", "family", "metric", "value"]
TRACE_COLUMNS = ["entry", "class", "start", "end", "outcome", "corrupted"]


@dataclass
class TimeSeries:
    """One row per window, scope (entry or service), name and metric; ``family`` groups
    metrics: requests, failures, latency (seconds), resources, attack."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=SERIES_COLUMNS)
        for col in ("scope", "name", "family", "metric"):
            df[col] = df[col].astype("category")
        return df

    def to_parquet(self, path: str | Path) -> None:
        self.frame().to_parquet(path, index=False)


@dataclass
class Results:
    """One run's results: the typed summary, the per-window series and the sampled trace."""

    summary: Summary
    timeseries: TimeSeries = field(default_factory=TimeSeries)
    trace: list[tuple[Any, ...]] = field(default_factory=list)

    def trace_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.trace, columns=TRACE_COLUMNS)

    def write(self, out: str | Path, *, series: pd.DataFrame | None = None) -> Path:
        """Write summary.json, timeseries.parquet (and trace.parquet when sampled).

        ``series``: the time series' frame when the caller built it already (with one row
        per window and metric, building it costs as much as writing it)."""
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "summary.json", self.summary)
        frame = self.timeseries.frame() if series is None else series
        frame.to_parquet(d / "timeseries.parquet", index=False)
        if self.trace:
            self.trace_frame().to_parquet(d / "trace.parquet", index=False)
        return d


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_json(path: str | Path, data: Any) -> None:
    """Strict JSON (NaN becomes null), written to a temporary file then renamed, so a crash
    never leaves a half-written file behind. A record is written as its JSON form."""
    if isinstance(data, Record):
        data = data.to_json()
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(p)
