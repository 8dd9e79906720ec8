"""The PetShop dataset's layout (amazon-science/petshop-root-cause-analysis, ``dataset/``):
CloudWatch/X-Ray per-node metrics with three header rows and a call-graph adjacency matrix.

``metrics.csv``: header rows ``microservice`` (node), ``metric`` (latency, requests,
availability) and ``statistic`` (Average, p50, p90, p95, p99, Sum); the first column holds
``unix_timestamp`` then one row per 5-minute period. ``graph.csv``: a square 0/1 matrix with
the node names as row and column labels; a 1 in row A, column B means A calls B.

Why a reader of its own: these are aggregates, not spans, so calibration works from per-node
means and quantiles; the reader's job is to get the three header rows and the matrix right
and to say what is wrong with a file in one line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from twin.errors import InputError
from twin.safeload import check_size


def read_node_metrics(path: Path) -> pd.DataFrame:
    """``metrics.csv`` -> a tidy frame: t (Unix s, start of the period), node, metric,
    statistic, value (seconds for latency, a count for requests, percent for availability).
    Empty cells (no traffic in the period) are dropped."""
    check_size(path, "telemetry")
    try:
        raw = pd.read_csv(path, header=[0, 1, 2])
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read a 3-header-row CSV ({e})", source=str(path)) from e
    if raw.shape[1] < 2 or len(raw) < 2:
        raise InputError("expected a time column and at least one node column", source=str(path))
    first = raw.columns[0]
    if str(raw.iloc[0, 0]) != "unix_timestamp":
        raise InputError(
            f"first column, first row: expected 'unix_timestamp', found {raw.iloc[0, 0]!r}",
            source=str(path),
        )
    body = raw.iloc[1:]
    t = pd.to_numeric(body[first], errors="coerce")
    if t.isna().any():
        bad = int(t.isna().to_numpy().nonzero()[0][0]) + 5  # 3 header rows + label row, 1-based
        raise InputError(f"row {bad}: timestamp is not a number", source=str(path))
    frames = []
    for col in raw.columns[1:]:
        node, metric, stat = (str(x) for x in col)
        v = pd.to_numeric(body[col], errors="coerce")
        frames.append(
            pd.DataFrame(
                {"t": t.to_numpy(), "node": node, "metric": metric, "statistic": stat, "value": v}
            )
        )
    out = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    return out.reset_index(drop=True)


def read_adjacency(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """``graph.csv`` -> (nodes, edges caller -> callee). The matrix must be square with the same
    labels on both axes, and hold 0/1 (or weights, any value > 0 is an edge)."""
    check_size(path, "telemetry")
    try:
        m = pd.read_csv(path, index_col=0)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read the adjacency matrix ({e})", source=str(path)) from e
    rows, cols = [str(x) for x in m.index], [str(x) for x in m.columns]
    if rows != cols:
        extra = sorted(set(rows) ^ set(cols))
        raise InputError(
            f"row and column labels differ ({len(rows)} x {len(cols)}; e.g. {extra[:3]})",
            source=str(path),
        )
    vals = m.apply(pd.to_numeric, errors="coerce")
    if vals.isna().any().any():
        r, c = next(zip(*vals.isna().to_numpy().nonzero(), strict=True))
        raise InputError(f"{rows[r]} -> {cols[c]}: not a number", source=str(path))
    edges = [
        (rows[i], cols[j])
        for i in range(len(rows))
        for j in range(len(cols))
        if float(vals.iloc[i, j]) > 0 and i != j
    ]
    return rows, edges


def node_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per node, the mean over periods of each (metric, statistic): columns like
    ``latency_Average``, ``latency_p99``, ``requests_Sum``, ``availability_Average``."""
    g = tidy.groupby(["node", "metric", "statistic"])["value"].mean().reset_index()
    g["col"] = g["metric"] + "_" + g["statistic"]
    return g.pivot(index="node", columns="col", values="value")
