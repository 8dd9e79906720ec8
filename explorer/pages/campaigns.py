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
SCHEDULE_ENV = "SHADOW_TWIN_SCHEDULE_STATE"
"""State file of ``twin schedule`` shown in the scheduled section (default:
schedule-out/schedule-state.json, the command's default)."""


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


def _open(folder: str) -> None:
    st.session_state[DIR_KEY] = folder  # a callback: it runs before the folder box is drawn


def _scheduled() -> None:
    """What ``twin schedule`` did: each entry's position and its latest runs; a finished
    campaign run opens in the results above."""
    st.subheader("Scheduled")
    default = os.environ.get(SCHEDULE_ENV) or str(Path("schedule-out") / "schedule-state.json")
    path = st.text_input(
        "Schedule state file",
        value=default,
        key="cp_sched_state",
        help="The state file of `twin schedule SPEC.yaml --out DIR` (DIR/schedule-state.json).",
    )
    if not path or not Path(path).is_file():
        st.caption("No scheduler has written this state file yet: `twin schedule SPEC.yaml`.")
        return
    from twin.campaign.schedule import read_state

    try:
        state = read_state(path)
    except TwinError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    entries = [
        {
            "campaign": name,
            "handled up to": e["cursor"],
            "running": e["running"],
            "last status": (e["last"] or {}).get("status"),
            "last occurrence": (e["last"] or {}).get("occurrence"),
        }
        for name, e in state["entries"].items()
    ]
    st.dataframe(entries, hide_index=True, key="cp_sched_entries")
    runs = [
        {
            "campaign": r.get("entry"),
            "occurrence": r.get("occurrence")
            or f"{r.get('skipped_from')} .. {r.get('skipped_to')}",
            "status": r.get("status"),
            "finished": r.get("finished"),
            "runs breaching an SLO": (r.get("summary") or {}).get("runs_breaching_slo"),
            "failure modes": (r.get("summary") or {}).get("failure_modes"),
            "error": r.get("error"),
            "folder": r.get("out"),
        }
        for r in state["runs"]
    ]
    st.caption(f"Latest {len(runs)} records, newest first (skipped: missed occurrences not run).")
    st.dataframe(runs, hide_index=True, key="cp_sched_runs")
    done = [
        r["out"]
        for r in state["runs"]
        if r.get("status") == "done" and (r.get("summary") or {}).get("kind") == "campaign"
    ]
    if done:
        pick = st.selectbox("Scheduled campaign run", done, key="cp_sched_pick")
        st.button("Show its results above", key="cp_sched_open", on_click=_open, args=(str(pick),))


def render() -> None:
    st.title("Campaigns")
    _launcher()
    _browse()
    _scheduled()


render()
