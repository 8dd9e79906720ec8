"""Watch: production beside the twin, from the folder ``twin watch`` wrote: the entry's
latency with the forecast band and the twin's prediction, alerts on the timeline, the twin's
state (load and service-time scale, its error) and each alert's mitigation with its effect
re-simulated in the twin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

DIR_KEY = "watch_dir"


def _load(folder: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | str:
    """The timeline and alerts of a watch folder, or what is missing (one line)."""
    p = Path(folder)
    need = [n for n in ("timeline.json", "alerts.jsonl") if not (p / n).is_file()]
    if need:
        return f"{folder}: no {' or '.join(need)} here (the --out folder of twin watch)"
    try:
        timeline = json.loads((p / "timeline.json").read_text(encoding="utf-8"))
        alerts = [
            json.loads(x)
            for x in (p / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
            if x.strip()
        ]
    except (OSError, ValueError) as exc:
        return f"{folder}: cannot read the watch output ({exc})"
    if not isinstance(timeline, dict) or not isinstance(timeline.get("windows"), list):
        return f"{folder}/timeline.json: windows: expected a list of window records"
    return timeline, alerts


def render() -> None:
    st.title("Watch")
    st.caption(
        "The shadow beside production: forecasts, alerts with P(breach), root cause and a "
        "mitigation tried in the twin. Produce a folder with `twin watch TOPOLOGY "
        "(--prometheus URL | --replay DIR --format F) --out DIR` (docs/watch.md)."
    )
    folder = st.text_input(
        "Watch output folder", key=DIR_KEY, help="The --out folder of twin watch."
    )
    if not folder:
        st.info(
            "Give the folder a `twin watch` run wrote (it needs timeline.json and alerts.jsonl)."
        )
        return
    loaded = _load(folder)
    if isinstance(loaded, str):
        st.error(loaded, icon=":material/error:")
        return
    timeline, alerts = loaded
    df = pd.DataFrame([w for w in timeline["windows"] if not w.get("baseline")])
    firing = [a for a in alerts if a.get("status") == "firing"]
    cols = st.columns(4)
    cols[0].metric("Windows", f"{len(df)}")
    cols[1].metric("Alerts fired", f"{len(firing)}")
    cols[2].metric("Resolved", f"{len(alerts) - len(firing)}")
    cols[3].metric("Horizon", f"{timeline.get('horizon_s', 0):g} s")
    if df.empty:
        st.caption("No windows in this run.")
        return
    df["when"] = pd.to_datetime(df["time"], unit="s", utc=True)
    fig = go.Figure()
    fig.add_scatter(x=df["when"], y=df["p99_hi"], line={"width": 0}, showlegend=False)
    fig.add_scatter(
        x=df["when"], y=df["p99_lo"], fill="tonexty", line={"width": 0}, name="forecast band"
    )
    fig.add_scatter(x=df["when"], y=df["p99"], name="observed p99", line={"width": 1})
    fig.add_scatter(x=df["when"], y=df["twin_p99"], name="twin p99", line={"dash": "dash"})
    slo = (timeline.get("slo") or {}).get("latency_p99")
    if slo:
        fig.add_hline(y=slo, line_color="red", annotation_text="SLO")
    if firing:
        fig.add_scatter(
            x=pd.to_datetime([a["time"] for a in firing], unit="s", utc=True),
            y=[slo or df["p99"].max()] * len(firing),
            mode="markers",
            marker={"symbol": "triangle-down", "size": 10},
            name="alerts",
            text=[a.get("summary", "") for a in firing],
        )
    fig.update_layout(height=380, yaxis={"type": "log", "title": "entry p99 (s)"})
    st.plotly_chart(fig, key="watch_latency")
    st.subheader("The twin beside production")
    state = go.Figure()
    state.add_scatter(x=df["when"], y=df["load_multiplier"], name="load x topology")
    state.add_scatter(x=df["when"], y=df["time_scale"], name="service-time scale")
    state.add_scatter(x=df["when"], y=df["twin_error"], name="twin error (1 - accuracy)")
    state.update_layout(height=300)
    st.plotly_chart(state, key="watch_state")
    st.subheader("Alerts")
    if not firing:
        st.caption("No alert fired.")
        return
    rows = [
        {
            "time": pd.to_datetime(a["time"], unit="s", utc=True),
            "kind": a["kind"],
            "root cause": ", ".join(a["root_cause"][:3]),
            "P(breach)": a["probability"],
            "time to breach (s)": a["time_to_breach_s"],
            "mitigation": a["mitigation"]["description"],
            "P(breach) with it": (a["mitigation"].get("effect") or {}).get("breach_with"),
        }
        for a in firing
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="watch_alerts")


render()
