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

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.calibrate.coldstart import ColdStartFit, fit_periods
from twin.errors import InputError
from twin.faults import ErrorRateFault
from twin.safeload import check_size

PERIOD_SECONDS = 300.0
"""Seconds per CloudWatch row when a file has a single row to tell."""
FUNCTION_TYPES = ("AWS::Lambda", "AWS::Lambda::Function")
"""X-Ray node types (the name's ``_TYPE`` suffix) of a serverless function, the nodes whose
cold starts are looked for."""


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


# -- a twin from per-node aggregates ----------------------------------------------------------


def service_name(node: str) -> str:
    """A node's name as a twin service name (``:`` separates a service from an operation)."""
    return node.replace(":", "_")


def period_seconds(tidy: pd.DataFrame) -> float:
    """Seconds between a metrics file's rows (their median gap)."""
    t = np.unique(tidy["t"].to_numpy(dtype=float))
    return float(np.median(np.diff(t))) if len(t) > 1 else PERIOD_SECONDS


def build_topology(
    nodes: pd.DataFrame,
    edges: list[tuple[str, str]],
    *,
    period: float = PERIOD_SECONDS,
    workers: int = 64,
    name: str = "petshop",
    cold: dict[str, ColdStartFit] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A topology document from a node table (:func:`node_table`) and the call graph.

    - services: every node with traffic; entries: such nodes nobody calls, at their rate;
    - calls: a callee's requests are shared among its callers in proportion to theirs, so
      A makes ``req_B / sum(req of B's callers)`` calls per request (count and probability);
    - a caller cannot wait for a callee slower than itself (a queue, a state machine, a
      client stub): such a call is asynchronous, so the callee gets it as arrivals of its
      own and the caller does not wait;
    - self time: the node's mean latency minus its calls' (floored at 10%), lognormal whose
      variance is the node's own (from its p50 and p99) minus what its calls bring;
    - a callee that fails more often than its caller cannot be a hard dependency: the call
      is ``optional``; intrinsic failures are the node's (1 - availability) minus its calls';
    - ``workers`` per node: managed services and autoscaled containers publish no pool size;
    - ``cold``: nodes with cold starts (:func:`cold_starts`) get ``cold_start`` and
      ``keep_alive``, and their self time loses the cold start they carried at this level's
      rate; a fit that leaves the node less time than its calls take is dropped (the
      latency fell with the rate because the callees' did), listed in ``_cold_rejected``.

    Returns the document and, per node, what was derived (``_entries``: where each entry's
    arrivals come from)."""
    have = {
        n
        for n in nodes.index
        if float(nodes.loc[n].get("requests_Sum", 0.0) or 0.0) > 0
        and np.isfinite(nodes.loc[n].get("latency_Average", np.nan))
    }
    edges = [(a, b) for a, b in edges if a in have and b in have]
    req = {n: float(nodes.loc[n, "requests_Sum"]) for n in have}
    lat = {n: float(nodes.loc[n, "latency_Average"]) for n in have}
    fail = {n: 1.0 - float(nodes.loc[n].get("availability_Average", 100.0)) / 100.0 for n in have}
    callers: dict[str, list[str]] = {}
    for a, b in edges:
        callers.setdefault(b, []).append(a)
    per_req = {(a, b): req[b] / sum(req[c] for c in callers[b]) for a, b in edges}
    async_edges = {(a, b) for a, b in edges if lat[b] > lat[a]}

    def spread(n: str) -> float:
        """cv of a lognormal with the node's own p50 and p99 (0.5 when unknown)."""
        row: Any = nodes.loc[n]
        p50, p99 = float(row.get("latency_p50", np.nan)), float(row.get("latency_p99", np.nan))
        if np.isfinite(p50) and np.isfinite(p99) and p50 > 0 and p99 > p50:
            sigma = math.log(p99 / p50) / 2.326
            return float(math.sqrt(math.expm1(sigma * sigma)))
        return 0.5

    services: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for n in sorted(have):
        calls = []
        sub_lat = sub_fail = sub_var = 0.0
        for a, b in edges:
            if a != n or (a, b) in async_edges:
                continue
            c = per_req[(a, b)]
            count = max(1, round(c))
            prob = min(1.0, c / count)
            optional = fail[b] > fail[a] + 1e-9
            calls.append(
                {
                    "to": f"{service_name(b)}:op",
                    "probability": round(prob, 6),
                    "count": count,
                    "optional": optional,
                }
            )
            sub_lat += c * lat[b]
            sub_var += c * (spread(b) * lat[b]) ** 2 + count * prob * (1 - prob) * lat[b] ** 2
            if not optional:
                sub_fail += c * fail[b]
        own = lat[n]
        fit = (cold or {}).get(n)
        if fit is not None and lat[n] - fit.cold_start * fit.cold_share(req[n] / period) < sub_lat:
            # warm, the node would be faster than its own calls: its latency falls with
            # the rate because theirs does, not through its cold starts
            info.setdefault("_cold_rejected", {})[n] = (
                f"less its cold starts, {lat[n]:.4g} s is below its calls' {sub_lat:.4g} s"
            )
            fit = None
        if fit is not None:
            own -= fit.cold_start * fit.cold_share(req[n] / period)
        self_mean = max(own - sub_lat, 0.1 * own, 1e-6)
        var_self = max((spread(n) * lat[n]) ** 2 - sub_var, (0.1 * self_mean) ** 2)
        cv = float(np.clip(math.sqrt(var_self) / self_mean, 0.1, 3.0))
        services[service_name(n)] = {
            "workers": workers,
            **(fit.fields() if fit is not None else {}),
            "operations": {
                "op": {
                    "service_time": {"dist": "lognormal", "mean": self_mean, "cv": cv},
                    "calls": calls,
                }
            },
        }
        info[n] = {
            "self_mean": self_mean,
            "cv": cv,
            "intrinsic_failure": float(np.clip(fail[n] - sub_fail, 0.0, 1.0)),
            "async_calls": sorted(b for a, b in async_edges if a == n),
        }
    called = {b for a, b in edges if (a, b) not in async_edges}
    sources: dict[str, list[tuple[str, float]]] = {n: [(n, 1.0)] for n in have - called}
    for a, b in sorted(async_edges):
        sources.setdefault(b, []).append((a, per_req[(a, b)]))
    info["_entries"] = dict(sources)
    workload = []
    for n, src in sorted(sources.items()):
        r = sum(f * req[m] / period for m, f in src)
        if r > 0:
            workload.append({"entry": f"{service_name(n)}:op", "rate": r})
    doc = {
        "name": name,
        "description": "calibrated from per-node aggregates (twin.calibrate.petshop)",
        "services": services,
        "workload": workload,
    }
    return doc, info


def intrinsic_faults(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes' own failure shares as always-on ``error_rate`` faults (a scenario's)."""
    return [
        {
            "kind": ErrorRateFault.name,
            "target": service_name(n),
            "probability": i["intrinsic_failure"],
        }
        for n, i in info.items()
        if not n.startswith("_") and i["intrinsic_failure"] > 0
    ]


def is_function(node: str) -> bool:
    """Whether X-Ray typed the node as a serverless function (:data:`FUNCTION_TYPES`)."""
    return node.endswith(tuple("_" + t for t in FUNCTION_TYPES))


def cold_starts(
    tidy: pd.DataFrame,
    nodes: list[str] | None = None,
    calls: dict[str, list[tuple[str, float]]] | None = None,
) -> dict[str, ColdStartFit]:
    """Cold starts of the function nodes (or of ``nodes``) from their periods' rates, own
    mean latencies and request counts (:func:`twin.calibrate.coldstart.fit_periods`); nodes
    where none shows are left out. ``calls``: per node, the callees it waits for and their
    calls per request; a period's own latency is the node's less theirs in that period (a
    callee's mean over periods where it has none), so a callee's warming up is not taken
    for the node's."""
    period = period_seconds(tidy)
    names = nodes if nodes is not None else sorted({n for n in tidy["node"] if is_function(n)})
    lat = tidy[(tidy["metric"] == "latency") & (tidy["statistic"] == "Average")].pivot_table(
        index="t", columns="node", values="value"
    )
    req = tidy[(tidy["metric"] == "requests") & (tidy["statistic"] == "Sum")].pivot_table(
        index="t", columns="node", values="value"
    )
    out: dict[str, ColdStartFit] = {}
    for node in names:
        if node not in lat.columns or node not in req.columns:
            continue
        own = lat[node].copy()
        for callee, k in (calls or {}).get(node, []):
            if callee in lat.columns:
                own -= k * lat[callee].fillna(lat[callee].mean())
        n = req[node].to_numpy(dtype=float)
        fit = fit_periods(n / period, own.to_numpy(dtype=float), n)
        if fit is not None:
            out[node] = fit
    return out


def waited_calls(doc: dict[str, Any], nodes: list[str]) -> dict[str, list[tuple[str, float]]]:
    """Per node of a :func:`build_topology` document, the callees it waits for (its calls,
    asynchronous ones are not in it) with their calls per request."""
    by_service = {service_name(n): n for n in nodes}
    out: dict[str, list[tuple[str, float]]] = {}
    for svc, spec in doc["services"].items():
        for op in spec["operations"].values():
            for c in op["calls"]:
                callee = by_service.get(c["to"].rpartition(":")[0])
                if svc in by_service and callee is not None:
                    k = float(c["probability"]) * int(c["count"])
                    out.setdefault(by_service[svc], []).append((callee, k))
    return out


def calibrate_level(
    folder: Path, *, workers: int = 64, cold: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """One traffic level of the dataset (``graph.csv`` and ``noissue/metrics.csv`` in
    ``folder``) -> the topology document, its intrinsic failures as always-on faults, and
    what was derived per node (:func:`build_topology`). ``cold``: look for the function
    nodes' cold starts in their own latency (:func:`cold_starts`, with the calls of a first
    build; ``info["_cold_starts"]`` lists them)."""
    tidy = read_node_metrics(folder / "noissue" / "metrics.csv")
    _, edges = read_adjacency(folder / "graph.csv")
    table, period = node_table(tidy), period_seconds(tidy)
    doc, info = build_topology(table, edges, period=period, workers=workers)
    fits: dict[str, ColdStartFit] = {}
    if cold:
        fits = cold_starts(tidy, calls=waited_calls(doc, list(table.index)))
    if fits:
        doc, info = build_topology(table, edges, period=period, workers=workers, cold=fits)
    info["_cold_starts"] = {
        n: vars(f) for n, f in fits.items() if n not in info.get("_cold_rejected", {})
    }
    return doc, intrinsic_faults(info), info
