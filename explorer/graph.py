"""The call graph on screen: a layered networkx layout, drawn with plotly.

Services are nodes sized by their offered load (requests per second), edges are arrows as
wide as their call rate. Nodes are coloured either by offered utilisation (the Topology
page) or by health status in one window of a run (the Playback page).
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import pandas as pd
import plotly.graph_objects as go

STATUS_COLORS: dict[str, str] = {
    "healthy": "#2e9e5b",
    "degraded": "#f0a202",
    "failing": "#d1453b",
    "idle": "#b8bcc4",
}
STATUS_RULES: dict[str, str] = {
    "failing": "5% or more of its requests fail, or utilisation 95% or more",
    "degraded": "1% or more fail, utilisation 80% or more, or its p99 above the SLO's p99",
    "healthy": "serving, none of the above",
    "idle": "no requests arrived in the window",
}


def layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Left-to-right layers: entries first, each service one layer right of its deepest
    caller (cycles are collapsed first). Within a layer, nodes sit near their callers."""
    if g.number_of_nodes() == 0:
        return {}
    cond = nx.condensation(g)
    layer_of_comp: dict[int, int] = {}
    for depth, comps in enumerate(nx.topological_generations(cond)):
        for c in comps:
            layer_of_comp[c] = depth
    mapping = cond.graph["mapping"]
    layers: dict[int, list[str]] = {}
    for node in g.nodes:
        layers.setdefault(layer_of_comp[mapping[node]], []).append(node)
    order: dict[str, float] = {}
    for depth in sorted(layers):
        nodes = layers[depth]  # in the topology's own order: ties stay put (stable sorts)
        if depth == 0:
            nodes.sort(key=lambda n: -float(g.nodes[n].get("rate", 0.0)))
        else:
            nodes.sort(key=lambda n: _barycentre(g, n, order))
        for i, n in enumerate(nodes):
            order[n] = i - (len(nodes) - 1) / 2
    # x from -1 (entries) to 1 (deepest layer); y spaced alike in every layer, within [-1, 1]
    deepest = max(layers)
    half = max((max(len(v) for v in layers.values()) - 1) / 2, 1.0)
    return {
        str(n): (-1.0 + 2.0 * depth / deepest if deepest else 0.0, -order[n] / half)
        for depth, nodes in layers.items()
        for n in nodes
    }


def _barycentre(g: nx.DiGraph, node: str, order: dict[str, float]) -> float:
    ys = [order[p] for p in g.predecessors(node) if p in order]
    return sum(ys) / len(ys) if ys else 0.0


def _scaled(value: float, top: float, low: float, high: float) -> float:
    if top <= 0 or value <= 0:
        return low
    return low + (high - low) * math.sqrt(value / top)


def figure(
    g: nx.DiGraph,
    pos: dict[str, tuple[float, float]],
    *,
    colors: dict[str, str] | None = None,
    hover: dict[str, str] | None = None,
    height: int = 480,
) -> go.Figure:
    """The graph as a plotly figure. Without ``colors``, nodes are coloured by offered
    utilisation (a colour bar shows the scale)."""
    rates = {n: float(g.nodes[n].get("rate", 0.0)) for n in g.nodes}
    top_rate = max(rates.values(), default=0.0)
    edge_rates = {(a, b): float(d.get("rate", 0.0)) for a, b, d in g.edges(data=True)}
    top_edge = max(edge_rates.values(), default=0.0)
    fig = go.Figure()
    annotations: list[dict[str, Any]] = []
    mid_x: list[float] = []
    mid_y: list[float] = []
    mid_text: list[str] = []
    for (a, b), rate in edge_rates.items():
        if a not in pos or b not in pos:
            continue
        (x0, y0), (x1, y1) = pos[a], pos[b]
        annotations.append(
            {
                "x": x1,
                "y": y1,
                "ax": x0,
                "ay": y0,
                "xref": "x",
                "yref": "y",
                "axref": "x",
                "ayref": "y",
                "showarrow": True,
                "arrowhead": 2,
                "arrowsize": 1.0,
                "arrowwidth": _scaled(rate, top_edge, 0.8, 7.0),
                "arrowcolor": "rgba(90, 100, 120, 0.45)",
                "standoff": _scaled(rates.get(b, 0.0), top_rate, 10, 26) / 2 + 2,
                "startstandoff": _scaled(rates.get(a, 0.0), top_rate, 10, 26) / 2,
                "text": "",
            }
        )
        mid_x.append((x0 + x1) / 2)
        mid_y.append((y0 + y1) / 2)
        d = g.edges[a, b]
        mid_text.append(
            f"<b>{a} → {b}</b><br>{rate:.1f} calls/s ({d.get('calls', 0):.2f} per request)"
            f"<br>network {1000 * float(d.get('latency', 0.0)):.2f} ms, loss {d.get('loss', 0):.1%}"
        )
    fig.add_trace(
        go.Scatter(
            x=mid_x,
            y=mid_y,
            mode="markers",
            marker={"size": 8, "color": "rgba(0,0,0,0)"},
            hoverinfo="text",
            hovertext=mid_text,
            showlegend=False,
        )
    )
    nodes = [n for n in g.nodes if n in pos]
    xs = [pos[n][0] for n in nodes]
    ys = [pos[n][1] for n in nodes]
    sizes = [_scaled(rates[n], top_rate, 12, 44) for n in nodes]
    texts = [
        (hover or {}).get(n)
        or (
            f"<b>{n}</b><br>{rates[n]:.1f} req/s offered"
            f"<br>utilisation {float(g.nodes[n].get('utilization', 0.0)):.0%}"
            f"<br>{g.nodes[n].get('replicas', 1)} replica(s) × {g.nodes[n].get('workers', 1)}"
            f" worker(s){', blocking' if g.nodes[n].get('blocking') else ''}"
        )
        for n in nodes
    ]
    marker: dict[str, Any] = {"size": sizes, "line": {"width": 1.5, "color": "white"}}
    if colors is None:
        marker.update(
            color=[float(g.nodes[n].get("utilization", 0.0)) for n in nodes],
            colorscale=[[0, "#3fb27f"], [0.6, "#f2c14e"], [0.85, "#f08a4b"], [1.0, "#d1453b"]],
            cmin=0.0,
            cmax=1.0,
            showscale=True,
            colorbar={"title": {"text": "offered<br>utilisation"}, "tickformat": ".0%"},
        )
    else:
        marker["color"] = [colors.get(n, STATUS_COLORS["idle"]) for n in nodes]
    for n, x, y, size in zip(nodes, xs, ys, sizes, strict=True):
        annotations.append(
            {
                "x": x,
                "y": y,
                "xref": "x",
                "yref": "y",
                "text": n,
                "showarrow": False,
                "yshift": -(size / 2 + 9),
                "font": {"size": 11, "color": "#31333f"},
                "bgcolor": "rgba(255, 255, 255, 0.85)",
                "borderpad": 1,
            }
        )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            marker=marker,
            hoverinfo="text",
            hovertext=texts,
            showlegend=False,
        )
    )
    pad_x = 0.12
    fig.update_layout(
        annotations=annotations,
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={
            "visible": False,
            "range": [min(xs, default=-1) - pad_x, max(xs, default=1) + pad_x],
        },
        yaxis={
            "visible": False,
            "range": [min(ys, default=-1) - 0.22, max(ys, default=1) + 0.16],
        },
        plot_bgcolor="rgba(0,0,0,0)",
        hoverlabel={"align": "left"},
        dragmode=False,
    )
    return fig


# -- health over time (Playback) ------------------------------------------------------------


def health(series: pd.DataFrame, slo_p99: float | None = None) -> pd.DataFrame:
    """Per window and service: arrivals, error share, utilisation, p99, queue and a status
    (see :data:`STATUS_RULES`)."""
    cols = ["time", "service", "arrivals", "error_rate", "utilization", "p99", "queue", "status"]
    svc = series[series["scope"] == "service"]
    if svc.empty:
        return pd.DataFrame(columns=cols)
    wide = svc.pivot_table(
        index=["time", "name"], columns="metric", values="value", aggfunc="sum", observed=True
    )
    for c in ("arrivals", "succeeded", "failed", "utilization", "p99", "queue"):
        if c not in wide:
            wide[c] = math.nan
    wide = wide.reset_index().rename(columns={"name": "service"})
    answered = wide["succeeded"].fillna(0) + wide["failed"].fillna(0)
    wide["error_rate"] = (wide["failed"] / answered).where(answered > 0)
    wide["status"] = [
        status(a, e, u, p, slo_p99)
        for a, e, u, p in zip(
            wide["arrivals"], wide["error_rate"], wide["utilization"], wide["p99"], strict=True
        )
    ]
    wide["service"] = wide["service"].astype(str)
    return wide[cols]


def status(
    arrivals: float, error_rate: float, utilization: float, p99: float, slo_p99: float | None
) -> str:
    def val(x: float) -> float:
        return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    err, util, lat = val(error_rate), val(utilization), val(p99)
    if val(arrivals) <= 0 and err == 0 and util == 0:
        return "idle"
    if err >= 0.05 or util >= 0.95:
        return "failing"
    if err >= 0.01 or util >= 0.8 or (slo_p99 is not None and lat > slo_p99):
        return "degraded"
    return "healthy"


def widest_layer(pos: dict[str, tuple[float, float]]) -> int:
    """How many nodes share the most crowded layer (to size the figure)."""
    counts: dict[float, int] = {}
    for x, _ in pos.values():
        counts[round(x, 6)] = counts.get(round(x, 6), 0) + 1
    return max(counts.values(), default=1)
