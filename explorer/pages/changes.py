"""Changes: the checks `twin check-change` stored, the rollouts that followed, and how well
the checks predicted them."""

from __future__ import annotations

import os
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from twin.errors import TwinError

DB_ENV = "TWIN_DB"


def _load(url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from twin.change.history import accuracy, history
    from twin.store import Store

    with Store(url) as store:
        entries = history(store)
    return [e.to_json() for e in entries], accuracy(entries)


def _rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        risk = e["risk"] or {}
        rolled = [r for r in e["rollouts"] if r["rolled_back"]]
        bad = e["observed_bad"]
        rows.append(
            {
                "submitted": e["submitted_at"],
                "change": e["name"],
                "decision": e["decision"] or "unchecked",
                "risk": risk.get("mean"),
                "risk 90% low": risk.get("lo"),
                "risk 90% high": risk.get("hi"),
                "rollouts": len(e["rollouts"]),
                "outcome": "–" if bad is None else ("bad" if bad else "fine"),
                "rolled back after (s)": rolled[0]["time_to_rollback"] if rolled else None,
                "reasons": "; ".join(e["reasons"]),
            }
        )
    return rows


def _chart(entries: list[dict[str, Any]]) -> go.Figure:
    colour = {None: "#8c959f", True: "#cf222e", False: "#1a7f37"}
    label = {None: "no rollout yet", True: "went bad", False: "went fine"}
    fig = go.Figure()
    for outcome in (None, True, False):
        pts = [e for e in entries if e["observed_bad"] is outcome and e["risk"]]
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[e["submitted_at"] for e in pts],
                y=[e["risk"]["mean"] for e in pts],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [e["risk"]["hi"] - e["risk"]["mean"] for e in pts],
                    "arrayminus": [e["risk"]["mean"] - e["risk"]["lo"] for e in pts],
                },
                mode="markers",
                marker={
                    "color": colour[outcome],
                    "symbol": ["x" if e["decision"] == "no-go" else "circle" for e in pts],
                    "size": 10,
                },
                text=[e["name"] for e in pts],
                name=label[outcome],
            )
        )
    fig.update_layout(
        xaxis_title="checked at",
        yaxis_title="predicted change in P(SLO breach)",
        height=360,
        margin={"t": 20},
    )
    return fig


st.title("Changes")
st.caption(
    "Every `twin check-change --db` verdict, the rollouts recorded after it, and the "
    "prediction's accuracy (no-go against rolled back or breached). Crosses are no-go."
)
url = st.text_input(
    "Failure-mode database",
    value=os.environ.get(DB_ENV) or "twin.db",
    key="ch_db",
    help="A file path (SQLite) or a URL (postgresql://...).",
)
try:
    entries, acc = _load(url)
except TwinError as exc:
    st.error(str(exc))
    entries, acc = [], {}
if not entries:
    st.info("No change checked yet: run `twin check-change ... --db URL`.")
else:
    cols = st.columns(4)
    cols[0].metric("Checks", acc["checks"])
    cols[1].metric("Rollouts", acc["rollouts"])
    cols[2].metric("Rollbacks", acc["rollbacks"])
    a = acc["accuracy"]
    cols[3].metric("Prediction accuracy", "–" if a is None else f"{a:.0%}")
    st.caption(
        f"Judged {acc['judged']}: no-go and went bad {acc['tp']}, no-go and went fine "
        f"{acc['fp']}, go and went bad {acc['fn']}, go and went fine {acc['tn']}; median "
        "time to rollback "
        + (
            "–"
            if acc["median_time_to_rollback"] is None
            else f"{acc['median_time_to_rollback']:g} s"
        )
        + "."
    )
    st.plotly_chart(_chart(entries), use_container_width=True)
    st.dataframe(_rows(entries), hide_index=True, use_container_width=True)
