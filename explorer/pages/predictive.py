"""Predictive analysis: failure modes with probabilities and intervals, the risk ranking and
the recommended mitigations, from the folder ``twin risk`` wrote."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from explorer import outputs, ui
from twin.errors import TwinError

DIR_KEY = "pr_dir"


def render() -> None:
    st.title("Predictive analysis")
    st.caption(
        "Bayesian failure probabilities (PyMC): how likely each failure mode breaches an SLO "
        "within the horizon, with credible intervals. Produce them with "
        "`twin risk --history INCIDENTS --results CAMPAIGN_DIR --out DIR` (docs/risk.md); "
        "a report whose sampling diagnostics failed is refused there, never shown here."
    )
    folder = st.text_input("Risk output folder", key=DIR_KEY, help="The --out folder of twin risk.")
    if not folder:
        st.info("Give the folder a `twin risk` run wrote to see its ranking.")
        return
    try:
        out = outputs.load_risk(folder)
    except TwinError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    risk = out.risk
    level = float(risk.get("interval", 0.9))
    n_modes = len(risk["failure_modes"])
    cols = st.columns(3)
    cols[0].metric("Horizon", f"{out.horizon_days:g} days")
    cols[1].metric("Failure modes", f"{n_modes}")
    cols[2].metric("Credible interval", f"{level:.0%}")
    if n_modes == 0:
        st.caption("No failure modes in this report.")
        return
    c1, c2 = st.columns(2)
    order = c1.selectbox(
        "Rank by",
        list(outputs.RISK_ORDER),
        format_func=outputs.RISK_ORDER.__getitem__,
        key="pr_order",
    )
    top = int(c2.slider("Failure modes shown", 1, max(1, n_modes), min(10, n_modes), key="pr_top"))
    table = outputs.risk_table(out, str(order), top)
    labels = table["service"] + " / " + table["fault_kind"]
    fig = go.Figure(
        go.Scatter(
            x=table["p_breach"],
            y=labels,
            mode="markers",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": table["p_breach_hi"] - table["p_breach"],
                "arrayminus": table["p_breach"] - table["p_breach_lo"],
            },
        )
    )
    fig.update_layout(
        height=max(260, 26 * len(table)),
        yaxis={"autorange": "reversed"},
        xaxis={"title": f"P(SLO breach within {out.horizon_days:g} days), {level:.0%} interval"},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title=f"Top {len(table)} by {outputs.RISK_ORDER[str(order)]}",
    )
    st.plotly_chart(fig, key="pr_chart")
    st.dataframe(table, hide_index=True, key="pr_table")
    st.subheader("What to fix first")
    for _, row in table.iterrows():
        fix = (
            f"policy **{row['mitigation']}** saves about {row['minutes_saved']:.0f} min"
            if row["mitigation"]
            else "no campaign policy reduced it"
        )
        st.markdown(
            f"{int(row['rank'])}. **{row['service']}** / {row['fault_kind']}: "
            f"{row['expected_breach_minutes']:.0f} expected breach minutes "
            f"({row['minutes_lo']:.0f}-{row['minutes_hi']:.0f}); {fix}"
        )
    ui.report_download(
        out.folder,
        "Download the risk report (HTML)",
        f"{out.folder.name}-risk.html",
        key="pr_report",
    )


render()
