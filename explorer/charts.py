"""Plotly figures for the What-if and Playback pages (plain data in, figures out)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from explorer.whatif import entry_over_time, service_metric

RUN_COLORS = {"unmitigated": "#8c96a8", "mitigated": "#2563eb"}
PALETTE = [
    "#2563eb",
    "#f59e0b",
    "#10b981",
    "#ef4444",
    "#8b5cf6",
    "#06b6d4",
    "#ec4899",
    "#84cc16",
]
FAULT_FILL = "rgba(239, 68, 68, 0.10)"


def _layout(
    fig: go.Figure, *, height: int = 300, title: str = "", legend: str = "top", **kw: Any
) -> go.Figure:
    """Shared look: title top left, legend top right (or below the plot), tight margins."""
    if legend == "top":
        placement = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1}
        margin = {"l": 10, "r": 10, "t": 56, "b": 10}
    else:
        placement = {"orientation": "h", "yanchor": "top", "y": -0.12, "xanchor": "left", "x": 0}
        margin = {"l": 10, "r": 10, "t": 40, "b": 10}
        fig.update_xaxes(title_text=None, ticksuffix=" s")
    fig.update_layout(
        height=height,
        margin=margin,
        legend=placement,
        title={
            "text": title,
            "x": 0,
            "xanchor": "left",
            "y": 0.98,
            "yanchor": "top",
            "font": {"size": 15},
        },
        hovermode="x unified",
        **kw,
    )
    return fig


def shade_faults(fig: go.Figure, faults: list[dict[str, Any]]) -> None:
    for f in faults:
        start, end = f.get("start"), f.get("end")
        if start is None or end is None:
            continue
        fig.add_vrect(
            x0=start,
            x1=end,
            fillcolor=FAULT_FILL,
            line_width=0,
            annotation_text=f"{f.get('kind')} @ {f.get('target')}",
            annotation_position="top left",
            annotation_font_size=10,
        )


def quantiles(runs: dict[str, dict[str, float | None]]) -> go.Figure:
    """Grouped bars: mean, p50, p95, p99 latency (ms) per run."""
    fig = go.Figure()
    keys = ["mean", "p50", "p95", "p99"]
    shown = [v for h in runs.values() for k in keys if (v := _ms(h.get(k))) is not None]
    for name, h in runs.items():
        values = [_ms(h.get(k)) for k in keys]
        fig.add_bar(
            name=name,
            x=keys,
            y=values,
            marker_color=RUN_COLORS.get(name),
            text=[_ms_label(v) for v in values],
            textposition="outside",
        )
    fig.update_yaxes(**_ms_axis(pd.Series(shown, dtype=float), "latency"))
    fig.update_traces(cliponaxis=False)
    return _layout(fig, barmode="group", title="Latency quantiles")


def reasons(runs: dict[str, dict[str, float]]) -> go.Figure:
    """Grouped bars: share of requests failed, by reason, per run."""
    all_reasons: list[str] = []
    for shares in runs.values():
        all_reasons += [r for r in shares if r not in all_reasons]
    fig = go.Figure()
    if not all_reasons:
        fig.add_annotation(
            text="no request failed in either run",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            font={"size": 14},
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    for name, shares in runs.items():
        fig.add_bar(
            name=name,
            x=all_reasons,
            y=[100 * shares.get(r, 0.0) for r in all_reasons],
            marker_color=RUN_COLORS.get(name),
            text=[f"{100 * shares.get(r, 0.0):.2f}%" for r in all_reasons],
            textposition="outside",
        )
    if all_reasons:
        fig.update_yaxes(title_text="% of requests")
    fig.update_traces(cliponaxis=False)
    return _layout(fig, barmode="group", title="Error rate by reason")


def over_time(
    runs: dict[str, pd.DataFrame], column: str, title: str, faults: list[dict[str, Any]]
) -> go.Figure:
    """One line per run of an entry-level figure over time (error_rate, mean or p99)."""
    fig = go.Figure()
    scale = 100.0 if column == "error_rate" else 1000.0
    for name, series in runs.items():
        per = entry_over_time(series)
        fig.add_scatter(
            x=per["time"],
            y=per[column] * scale,
            mode="lines",
            name=name,
            line={"color": RUN_COLORS.get(name), "width": 2},
        )
    fig.update_xaxes(title_text="simulated time (s)")
    if column == "error_rate":
        fig.update_yaxes(title_text="% of requests failed", rangemode="tozero")
    else:
        fig.update_yaxes(**_latency_axis(runs, column))
    shade_faults(fig, faults)
    return _layout(fig, title=title)


def utilisation(
    series: pd.DataFrame,
    services: list[str],
    title: str,
    faults: list[dict[str, Any]],
    *,
    cursor: float | None = None,
    height: int = 300,
) -> go.Figure:
    """Utilisation over time of the given services (same colours in every chart)."""
    util = service_metric(series, "utilization")
    fig = go.Figure()
    for i, name in enumerate(services):
        if name not in util:
            continue
        fig.add_scatter(
            x=util.index,
            y=util[name],
            mode="lines",
            name=name,
            line={"color": PALETTE[i % len(PALETTE)], "width": 1.8},
        )
    fig.update_xaxes(title_text="simulated time (s)")
    fig.update_yaxes(title_text="utilisation", range=[0, 1.05], tickformat=".0%")
    shade_faults(fig, faults)
    if cursor is not None:
        fig.add_vline(x=cursor, line_color="#111827", line_width=1.5, line_dash="dot")
    return _layout(fig, height=height, title=title, legend="bottom")


def entry_timeline(
    series: pd.DataFrame, faults: list[dict[str, Any]], *, cursor: float | None = None
) -> go.Figure:
    """Error share and latency of user requests over time, on two y axes."""
    per = entry_over_time(series)
    fig = go.Figure()
    fig.add_scatter(
        x=per["time"],
        y=per["error_rate"] * 100,
        name="failed (%)",
        mode="lines",
        line={"color": "#d1453b", "width": 2},
    )
    fig.add_scatter(
        x=per["time"],
        y=per["p99"] * 1000,
        name="p99, worst entry (ms)",
        mode="lines",
        yaxis="y2",
        line={"color": "#2563eb", "width": 2},
    )
    fig.add_scatter(
        x=per["time"],
        y=per["mean"] * 1000,
        name="mean (ms)",
        mode="lines",
        yaxis="y2",
        line={"color": "#60a5fa", "width": 1.5, "dash": "dot"},
    )
    fig.update_layout(
        yaxis={"title": {"text": "% failed"}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": "latency (ms)"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
            "tickmode": "auto",
        },
    )
    fig.update_xaxes(title_text="simulated time (s)")
    shade_faults(fig, faults)
    if cursor is not None:
        fig.add_vline(x=cursor, line_color="#111827", line_width=1.5, line_dash="dot")
    return _layout(fig, title="User requests", legend="bottom", height=320)


def _ms(v: float | None) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v * 1000.0


def _ms_label(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def utilisation_pair(
    runs: dict[str, pd.DataFrame], services: list[str], faults: list[dict[str, Any]]
) -> go.Figure:
    """Utilisation over time, one panel per run side by side, one legend."""
    from plotly.subplots import make_subplots

    names = list(runs)
    fig = make_subplots(
        rows=1,
        cols=len(names),
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=[f"Utilisation, {n}" for n in names],
    )
    for col, name in enumerate(names, start=1):
        util = service_metric(runs[name], "utilization")
        for i, svc in enumerate(services):
            if svc not in util:
                continue
            fig.add_scatter(
                x=util.index,
                y=util[svc],
                mode="lines",
                name=svc,
                legendgroup=svc,
                showlegend=col == 1,
                line={"color": PALETTE[i % len(PALETTE)], "width": 1.8},
                row=1,
                col=col,
            )
        for f in faults:
            if f.get("start") is not None and f.get("end") is not None:
                fig.add_vrect(
                    x0=f["start"], x1=f["end"], fillcolor=FAULT_FILL, line_width=0, row=1, col=col
                )
        fig.update_xaxes(title_text="simulated time (s)", row=1, col=col)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=1, title_text="utilisation")
    for ann in fig.layout.annotations:
        ann.update(font={"size": 14})
    return _layout(fig, height=340, legend="bottom")


def _latency_axis(runs: dict[str, pd.DataFrame], column: str) -> dict[str, Any]:
    values = pd.concat([entry_over_time(s)[column] * 1000 for s in runs.values()])
    return _ms_axis(values, "latency")


def _ms_axis(values: pd.Series, title: str) -> dict[str, Any]:
    """A log scale when the milliseconds span more than a factor 30, else linear from 0."""
    values = values.dropna()
    values = values[values > 0]
    if len(values) and values.max() / values.min() > 30:
        return {"type": "log", "dtick": 1, "title_text": f"{title} (ms, log)"}
    return {"type": "linear", "rangemode": "tozero", "title_text": f"{title} (ms)"}
