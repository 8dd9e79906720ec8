"""Playback: a run replayed on the call graph, window by window, next to its time series."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from explorer import charts, graph, ui
from explorer.catalog import System
from explorer.whatif import RunOutput, busiest, doc_json

# session state: system label -> {source name: run} for runs started on this page
RUNS_KEY = "_playback_runs"

FRAME_SECONDS = 1.0
FRAMES = 40  # a whole run plays in about this many frames


def sources(system: System, label: str) -> dict[str, RunOutput | None]:
    """Runs that can be played: the last what-if of this system (both sides) and the system's
    scenario file, with and without its policy (None until it has been run)."""
    out: dict[str, RunOutput | None] = {}
    whatif = st.session_state.get("_whatif_results", {}).get(label)
    if whatif is not None:
        out["last what-if, mitigated"] = whatif[1].mitigated
        out["last what-if, unmitigated"] = whatif[1].baseline
    done: dict[str, RunOutput] = st.session_state.get(RUNS_KEY, {}).get(label, {})
    if system.scenario is not None:
        out["scenario file, no policy"] = done.get("scenario file, no policy")
        if system.policy is not None:
            out["scenario file, with its policy"] = done.get("scenario file, with its policy")
    return out


def run_scenario_file(system: System, label: str, source: str) -> RunOutput | None:
    assert system.scenario is not None
    topo_json = doc_json(system.topology)
    scen_json = doc_json(system.scenario)
    pol_json = None
    if source.endswith("with its policy") and system.policy is not None:
        pol_json = doc_json(system.policy)
    run = ui.attempt(
        ui.cached_run, topo_json, scen_json, pol_json, label=f"Running {system.name}'s scenario"
    )
    if run is None:
        return None
    st.session_state.setdefault(RUNS_KEY, {}).setdefault(label, {})[source] = run
    return run


def _toggle_play() -> None:
    playing = not st.session_state.get("pb_playing", False)
    st.session_state["pb_playing"] = playing
    st.session_state["pb_restart"] = playing


def render() -> None:
    st.title("Playback")
    system = ui.current_system()
    if system is None:
        return
    label = ui.system_label()
    options = sources(system, label)
    if not options:
        st.info(
            "Nothing to play yet: run a what-if first (What-if page). This system has no "
            "scenario file to run here.",
            icon=":material/info:",
        )
        return
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    source = c1.selectbox("Run", list(options), key="pb_source")
    run = options[source]
    if run is None:
        c2.button("Run the scenario file", key="pb_run_file", type="primary")
        scen = system.scenario
        assert scen is not None
        st.caption(
            f"{system.name}.scenario.yaml: {scen.duration:g} simulated s, "
            f"{len(scen.faults)} fault(s). Press the button to run it (cached afterwards)."
        )
        if not st.session_state.get("pb_run_file"):
            return
        run = run_scenario_file(system, label, source)
        if run is None:
            return
    st.caption(
        "These are the twin's series only. Setting them beside observed telemetry needs the "
        "comparison `twin calibrate --metrics` writes (report.md, calibration.json)."
    )
    play(system, run)


def play(system: System, run: RunOutput) -> None:
    table = graph.health(run.series, system.topology.slo.latency_p99)
    times = sorted(float(t) for t in table["time"].unique())
    if not times:
        st.warning("This run recorded no per-service time series (too many services).")
        return
    restart = st.session_state.pop("pb_restart", False)
    if st.session_state.get("pb_t") not in times or (
        restart and st.session_state["pb_t"] == times[-1]
    ):
        st.session_state["pb_t"] = times[0]
    frame(system, run, table, times, bool(st.session_state.get("pb_playing", False)))


def frame(
    system: System, run: RunOutput, table: pd.DataFrame, times: list[float], playing: bool
) -> None:
    """One frame; while playing, the fragment reruns on a timer and steps the time on."""

    @st.fragment(run_every=FRAME_SECONDS if playing else None)
    def _frame() -> None:
        if bool(st.session_state.get("pb_playing", False)) != playing:
            st.rerun(scope="app")  # Play/Pause pressed: start or stop the timer
        if playing:
            i = times.index(st.session_state["pb_t"])
            step = max(1, -(-len(times) // FRAMES))
            if i + 1 < len(times):
                st.session_state["pb_t"] = times[min(i + step, len(times) - 1)]
            else:
                st.session_state["pb_playing"] = False
                st.rerun(scope="app")
        c1, c2 = st.columns([1, 7], vertical_alignment="bottom")
        c1.button(
            "Pause" if playing else "Play",
            key="pb_play",
            icon=":material/pause:" if playing else ":material/play_arrow:",
            on_click=_toggle_play,
            width="stretch",
        )
        t = c2.select_slider(
            "Time (start of the window, simulated s)",
            options=times,
            key="pb_t",
            format_func=lambda x: f"{x:g} s",
        )
        draw(system, run, table, float(t))

    _frame()


def draw(system: System, run: RunOutput, table: pd.DataFrame, t: float) -> None:
    now = table[table["time"] == t].set_index("service")
    g = system.topology.service_graph()
    pos = graph.layout(g)
    colors = {str(s): graph.STATUS_COLORS[str(row["status"])] for s, row in now.iterrows()}
    hover = {str(s): _hover(str(s), row) for s, row in now.iterrows()}
    left, right = st.columns([1, 1], gap="medium")
    with left:
        counts = now["status"].value_counts()
        st.markdown(
            " ".join(
                f"<span style='color:{graph.STATUS_COLORS[s]}'>●</span> {s} {int(counts.get(s, 0))}"
                for s in ("healthy", "degraded", "failing", "idle")
            )
            + f" &nbsp;·&nbsp; window {t:g} s",
            unsafe_allow_html=True,
            help="\n".join(f"- **{k}**: {v}" for k, v in graph.STATUS_RULES.items()),
        )
        st.plotly_chart(
            graph.figure(
                g, pos, colors=colors, hover=hover, height=max(380, 40 * graph.widest_layer(pos))
            ),
            key="pb_graph",
            config={"displayModeBar": False},
        )
    faults = [f.to_json() for f in run.summary.faults]
    with right:
        st.plotly_chart(
            charts.entry_timeline(run.series, faults, cursor=t),
            key="pb_chart_entry",
            config={"displayModeBar": False},
        )
        st.plotly_chart(
            charts.utilisation(run.series, busiest(run.series, 6), "Utilisation", faults, cursor=t),
            key="pb_chart_util",
            config={"displayModeBar": False},
        )
    shown = now.reset_index()[
        ["service", "status", "arrivals", "error_rate", "utilization", "p99", "queue"]
    ]
    shown["error_rate"] = shown["error_rate"].fillna(0.0)
    shown["p99"] = [("–" if pd.isna(v) else f"{1000 * float(v):.1f}") for v in shown["p99"]]
    order = {"failing": 0, "degraded": 1, "healthy": 2, "idle": 3}
    shown = shown.sort_values(by="status", key=lambda s: s.map(order), kind="stable")
    st.dataframe(
        shown,
        hide_index=True,
        key="pb_table",
        height=min(36 * (len(shown) + 1) + 4, 600),
        column_config={
            "error_rate": st.column_config.NumberColumn("failed", format="percent"),
            "utilization": st.column_config.ProgressColumn(
                "utilisation", format="percent", min_value=0.0, max_value=1.0
            ),
            "p99": st.column_config.TextColumn("p99 (ms)"),
            "arrivals": st.column_config.NumberColumn("arrivals", format="%d"),
            "queue": st.column_config.NumberColumn("queue", format="%d"),
        },
    )


def _hover(name: str, row: Any) -> str:
    def num(x: Any, fmt: str) -> str:
        return "–" if pd.isna(x) else format(float(x), fmt)

    return (
        f"<b>{name}</b>: {row['status']}<br>arrivals {num(row['arrivals'], '.0f')}"
        f"<br>failed {num(row['error_rate'], '.1%')}"
        f"<br>utilisation {num(row['utilization'], '.0%')}"
        f"<br>p99 {num(row['p99'], '.4f')} s<br>queue {num(row['queue'], '.0f')}"
    )


render()
