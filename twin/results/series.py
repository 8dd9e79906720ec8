"""Plain results: the summary (``summary.json``), a tidy time series, a sampled trace.

Nothing here refers to engine objects, so results pickle, cross process boundaries and
outlive the simulation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.results.record import Record
from twin.results.summary import Summary

SERIES_COLUMNS = ["time", "window", "scope", "name", "family", "metric", "value"]
TRACE_COLUMNS = ["entry", "class", "start", "end", "outcome", "corrupted"]


Metrics = tuple[tuple[str, str], ...]
"""The (family, metric) pairs of a block's rows, in order."""

Block = tuple[float, float, str, str, Metrics, tuple[float, ...]]
"""One window of one scope: window start (s), window length (s), scope, name, the metrics and
their values. A block is one row per metric; the engine keeps blocks, not rows, because a
run with short windows reports hundreds of thousands of rows and a block costs one tuple."""


@dataclass
class TimeSeries:
    """One row per window, scope (entry or service), name and metric; ``family`` groups
    metrics: requests, failures, latency (seconds), resources, attack.

    Built from ``given`` rows (7-tuples in :data:`SERIES_COLUMNS` order) or from ``blocks``
    (a block per window and scope; their rows come before the given ones); both forms of
    the same rows give the same frame."""

    given: list[tuple[Any, ...]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """Every row as a 7-tuple (built on each call from the blocks)."""
        out = [
            (t0, span, scope, name, fam, metric, v)
            for t0, span, scope, name, metrics, values in self.blocks
            for (fam, metric), v in zip(metrics, values, strict=True)
        ]
        return out + self.given if out else self.given

    def frame(self) -> pd.DataFrame:
        if self.given or not self.blocks:
            df = pd.DataFrame(self.rows, columns=SERIES_COLUMNS)
            for col in ("scope", "name", "family", "metric"):
                df[col] = df[col].astype("category")
            return df
        return _block_frame(self.blocks)

    def to_parquet(self, path: str | Path) -> None:
        self.frame().to_parquet(path, index=False)


def _block_frame(blocks: list[Block]) -> pd.DataFrame:
    """The frame of ``blocks``, column by column: numpy repeats a block's window, scope and
    name over its rows; categories are the sorted distinct strings, as ``astype`` gives."""
    t0, span, scope, name, metrics, values = zip(*blocks, strict=True)
    sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(blocks))
    keys: dict[Metrics, int] = {}
    key_of = np.fromiter(
        (keys.setdefault(m, len(keys)) for m in metrics), dtype=np.int64, count=len(blocks)
    )
    families = sorted({f for m in keys for f, _ in m})
    names_of_metric = sorted({x for m in keys for _, x in m})
    fam_code = {f: i for i, f in enumerate(families)}
    met_code = {x: i for i, x in enumerate(names_of_metric)}
    # a table per key, padded: row r of a block is entry (key, r)
    width = max(map(len, keys))
    fam_table = np.zeros((len(keys), width), dtype=np.int64)
    met_table = np.zeros((len(keys), width), dtype=np.int64)
    for k, m in enumerate(keys):
        fam_table[k, : len(m)] = [fam_code[f] for f, _ in m]
        met_table[k, : len(m)] = [met_code[x] for _, x in m]
    starts = np.cumsum(sizes) - sizes
    row_key = np.repeat(key_of, sizes)
    row_pos = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(starts, sizes)
    fam = fam_table[row_key, row_pos]
    met = met_table[row_key, row_pos]

    def categorical(per_block: tuple[str, ...]) -> pd.Categorical:
        cats = sorted(set(per_block))
        code = {c: i for i, c in enumerate(cats)}
        codes = np.fromiter(map(code.__getitem__, per_block), dtype=np.int64, count=len(blocks))
        return _categories(np.repeat(codes, sizes), cats)

    total = int(sizes.sum())
    data = {
        "time": np.repeat(np.array(t0, dtype=float), sizes),
        "window": np.repeat(np.array(span, dtype=float), sizes),
        "scope": categorical(scope),
        "name": categorical(name),
        "family": _categories(fam, families),
        "metric": _categories(met, names_of_metric),
        "value": np.fromiter(chain.from_iterable(values), dtype=float, count=total),
    }
    return pd.DataFrame(data)


def _categories(codes: Any, categories: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype="str"))


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
