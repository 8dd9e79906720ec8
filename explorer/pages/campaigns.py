"""Campaigns: launch a fault campaign (the control plane), watch it, browse what it found."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from explorer import outputs, ui
from twin.errors import TwinError

ROOT = Path(__file__).resolve().parents[2]
DIR_KEY = "cp_dir"
EXPERIMENTS_ENV = "SHADOW_TWIN_EXPERIMENTS"
"""Folder of campaign documents offered for launch (default: the repository's experiments/)."""


def _launch(spec: str, out: str, workers: int, progress: Callable[[float, str], None]) -> str:
    """One campaign, on a worker thread (its runs on ``workers`` processes); resumable."""
    from twin.campaign import load_campaign, run_campaign, write_report

    def tick(done: int, total: int) -> None:
        progress(done / max(total, 1), f"{done} of {total} runs")

    plan = load_campaign(spec)
    outcome = run_campaign(plan, out, workers=workers, on_progress=tick)
    write_report(outcome, plan)
    return out


def _launcher() -> None:
    st.subheader("Launch a campaign")
    if importlib.util.find_spec("twin.campaign") is None:
        st.info("Launching needs the campaign engine (`twin.campaign`), which is not installed.")
        return
    folder = Path(os.environ.get(EXPERIMENTS_ENV) or ROOT / "experiments")
    specs = {p.name: p for p in sorted(folder.glob("*.yaml"))}
    cols = st.columns([3, 3, 1])
    spec = cols[0].selectbox(
        "Campaign document",
        list(specs),
        key="cp_spec",
        help=f"Campaign files in {folder} (format: docs/campaigns.md)",
    )
    default = str(Path("out") / "campaigns" / Path(spec or "campaign").stem)
    out = cols[1].text_input("Output folder", value=default, key="cp_out")
    workers = int(cols[2].number_input("Workers", 1, 64, 2, key="cp_workers"))
    st.caption(
        "Runs on local processes off the page's thread; finished runs in the folder are "
        "reused, so a stopped campaign resumes. For a Dask cluster use "
        "`twin campaign SPEC --out DIR --cluster tcp://HOST:8786`."
    )
    if st.button("Launch", key="cp_launch", disabled=not spec):
        done = ui.attempt(_launch, str(specs[str(spec)]), out, workers, label="Campaign")
        if done is not None:
            st.session_state[DIR_KEY] = done
            st.success(f"Campaign finished: {done}")


def _modes(modes: list[dict[str, Any]]) -> None:
    st.subheader(f"Failure modes ({len(modes)}), worst first")
    if not modes:
        st.caption("No scenario breached an SLO in most of its replications.")
        return
    keep = (
        "policy",
        "fault_kind",
        "target",
        "load",
        "intensity_threshold",
        "slos_breached",
        "blast_radius",
        "severity",
    )
    st.dataframe(
        [{k: m.get(k) for k in keep} for m in modes], hide_index=True, key="cp_modes_table"
    )


def _browse() -> None:
    st.subheader("Results")
    folder = st.text_input(
        "Campaign output folder", key=DIR_KEY, help="The --out folder of `twin campaign`."
    )
    if not folder:
        st.caption("Launch a campaign above, or give the folder of one that ran.")
        return
    try:
        out = outputs.load_campaign(folder)
    except TwinError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    s = out.summary
    cols = st.columns(4)
    cols[0].metric("Runs", f"{s.get('runs', len(out.aggregated))}")
    cols[1].metric("Scenarios", f"{s.get('scenarios', out.aggregated['scenario'].nunique())}")
    cols[2].metric("Runs breaching an SLO", f"{s.get('runs_breaching_slo', '?')}")
    cols[3].metric("Failure modes", f"{len(out.failure_modes)}")
    c1, c2, c3 = st.columns(3)
    policy = c1.selectbox("Policy", out.policies, key="cp_policy")
    metric = c2.selectbox(
        "Figure",
        list(outputs.CAMPAIGN_METRICS),
        format_func=outputs.CAMPAIGN_METRICS.__getitem__,
        key="cp_metric",
    )
    top = int(c3.slider("Scenarios shown", 3, 50, 15, key="cp_top"))
    view = outputs.campaign_view(out, str(policy), str(metric)).head(top)
    fig = go.Figure(
        go.Bar(
            x=view[metric],
            y=view["scenario"],
            orientation="h",
            error_x=None
            if f"{metric}_hi" not in view
            else {
                "type": "data",
                "symmetric": False,
                "array": (view[f"{metric}_hi"] - view[metric]).fillna(0),
                "arrayminus": (view[metric] - view[f"{metric}_lo"]).fillna(0),
            },
        )
    )
    fig.update_layout(
        height=max(300, 22 * len(view)),
        yaxis={"autorange": "reversed"},
        xaxis_title=f"{outputs.CAMPAIGN_METRICS[str(metric)]} (mean, 95% interval)",
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title=f"Worst scenarios under policy {policy}",
    )
    st.plotly_chart(fig, key="cp_chart")
    st.dataframe(view, hide_index=True, key="cp_table")
    _modes(out.failure_modes)
    ui.report_download(
        out.folder,
        "Download the campaign report (HTML)",
        f"{out.folder.name}-report.html",
        key="cp_report",
    )


def render() -> None:
    st.title("Campaigns")
    _launcher()
    _browse()


render()
