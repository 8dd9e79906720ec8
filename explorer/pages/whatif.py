"""What-if: pick a load, a fault and mitigations; the twin runs the window twice (no policy,
then the mitigated one) and shows both side by side."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from explorer import charts, ui
from explorer.catalog import System
from explorer.whatif import (
    FAULT_LABELS,
    INTENSITY,
    FaultChoice,
    Mitigations,
    WhatIfInputs,
    WhatIfResult,
    build_policy,
    build_scenario,
    busiest,
    default_fault,
    documents_json,
    from_slider,
    headline,
    reasons,
    targets,
    to_slider,
)
from twin.errors import TwinError
from twin.faults import FAULT_KINDS
from twin.io import dump_yaml
from twin.policy import Policy
from twin.results import Summary

# session state: system label -> (the documents' JSON, the result shown)
RESULTS_KEY = "_whatif_results"

NO_FAULT = "none"
ALL = "*"


def _reset_fault_details() -> None:
    for key in ("wi_target", "wi_intensity"):
        st.session_state.pop(key, None)


def _clamp(key: str, low: float, high: float) -> None:
    """Keep a remembered slider value inside a range that changed since."""
    if key in st.session_state:
        st.session_state[key] = min(high, max(low, st.session_state[key]))


def _default(key: str, value: Any) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def fault_controls(system: System, duration: float) -> FaultChoice | None:
    topo = system.topology
    preset = default_fault(topo, system.scenario, duration)
    _default("wi_kind", preset.kind)
    kind = st.selectbox(
        "Fault kind",
        [NO_FAULT, *FAULT_KINDS],
        key="wi_kind",
        format_func=lambda k: "no fault" if k == NO_FAULT else FAULT_LABELS.get(k, k),
        on_change=_reset_fault_details,
    )
    if kind == NO_FAULT:
        return None
    options = targets(topo, kind)
    if not options:
        st.caption(f"This topology has nothing a {kind} fault can target.")
        return None
    if st.session_state.get("wi_target") not in options:
        st.session_state["wi_target"] = preset.target if preset.target in options else options[0]
    target = st.selectbox("Target", options, key="wi_target")
    top = float(duration)
    _default("wi_start", min(preset.start, top - 1))
    _clamp("wi_start", 0.0, top - 1)
    start = st.slider("Starts at", 0.0, top - 1, key="wi_start", step=1.0, format="%.0f s")
    _default("wi_length", min(preset.duration, top))
    _clamp("wi_length", 1.0, top)
    length = st.slider("Lasts", 1.0, top, key="wi_length", step=1.0, format="%.0f s")
    spec = INTENSITY[kind]
    _default(
        "wi_intensity", to_slider(kind, preset.intensity) if preset.kind == kind else spec.default
    )
    _clamp("wi_intensity", spec.low, spec.high)
    intensity = st.slider(
        spec.label.capitalize(),
        spec.low,
        spec.high,
        key="wi_intensity",
        step=spec.step,
        format="%.0f" if spec.step >= 1 else ("%.1f" if spec.step >= 0.1 else "%.2f"),
        help=spec.help,
    )
    return FaultChoice(
        kind, str(target), float(start), float(length), from_slider(kind, float(intensity))
    )


def mitigation_controls(system: System) -> Mitigations | Policy:
    """The controls, or the system's own policy file when that is picked."""
    sources = ["controls"]
    if system.policy is not None:
        sources.append("policy file")
    _default("wi_source", "controls")
    if st.session_state["wi_source"] not in sources:
        st.session_state["wi_source"] = "controls"
    source = st.radio(
        "Mitigated run uses",
        sources,
        key="wi_source",
        horizontal=True,
        format_func=lambda s: (
            "the controls below" if s == "controls" else "the system's policy file"
        ),
        help="The unmitigated run always uses no policy: no timeouts, no retries.",
    )
    if source == "policy file" and system.policy is not None:
        with st.expander("The policy file", expanded=False):
            st.code(dump_yaml(system.policy.model_dump(mode="json", exclude_unset=True)), "yaml")
        return system.policy
    topo = system.topology
    st.caption('Client side, on every call (`"*"`):')
    _default("wi_timeout_on", True)
    timeout = None
    if st.toggle("Timeout", key="wi_timeout_on"):
        timeout = st.slider("Timeout per attempt (s)", 0.01, 5.0, 0.5, 0.01, key="wi_timeout")
    retries = None
    budget = None
    if st.toggle("Retries", key="wi_retries_on"):
        retries = st.slider("Retries after the first attempt", 1, 5, 2, key="wi_retries")
        budget = st.slider(
            "Retry budget (share of extra attempts)",
            0.05,
            1.0,
            0.2,
            0.05,
            key="wi_budget",
            help="Exponential backoff from 20 ms, capped at 0.5 s, full jitter.",
        )
    rate = None
    open_for = 5.0
    if st.toggle("Circuit breaker", key="wi_breaker_on"):
        rate = st.slider(
            "Opens at failure rate",
            0.1,
            1.0,
            0.5,
            0.05,
            key="wi_breaker_rate",
            help="Over the last 20 calls, after at least 10.",
        )
        open_for = st.slider("Stays open (s)", 1.0, 30.0, 5.0, 1.0, key="wi_breaker_open")
    st.caption("Server side:")
    scopes = [ALL, *topo.services]
    _default("wi_scope", ALL)
    scope = st.selectbox(
        "Applies to",
        scopes,
        key="wi_scope",
        format_func=lambda s: "every service" if s == ALL else s,
    )
    queue = None
    if st.toggle("Load shedding (queue limit)", key="wi_shed_on"):
        queue = st.slider(
            "Waiting requests per replica",
            0,
            200,
            20,
            key="wi_queue_limit",
            help="Beyond it a request is REJECTED at once.",
        )
    scale_max = None
    target_util = 0.6
    boot = 10.0
    if st.toggle("Autoscaling", key="wi_scale_on"):
        scale_max = st.slider("Max replicas", 1, 20, 4, key="wi_scale_max")
        target_util = st.slider("Target utilisation", 0.2, 0.95, 0.6, 0.05, key="wi_scale_target")
        boot = st.slider(
            "Boot time (s)",
            0.0,
            60.0,
            10.0,
            1.0,
            key="wi_scale_boot",
            help="Decisions every 5 s, scale-in 30 s after the last change.",
        )
    return Mitigations(
        timeout=timeout,
        retries=retries,
        retry_budget=budget,
        breaker_failure_rate=rate,
        breaker_open_for=open_for,
        queue_limit=queue,
        autoscale_max=scale_max,
        autoscale_target=target_util,
        autoscale_boot=boot,
        scope=scope,
    )


def render() -> None:
    st.title("What-if")
    system = ui.current_system()
    if system is None:
        return
    st.caption(
        f"**{system.name}**: pick a load, a fault and mitigations. The twin runs the window "
        "twice with the same seed, unprotected and mitigated, and shows both side by side."
    )
    left, right = st.columns([1, 2.6], gap="large")
    with left:
        with st.container(border=True):
            st.markdown("**Load and window**")
            load = st.slider(
                "Load multiplier",
                0.25,
                5.0,
                1.0,
                0.25,
                key="wi_load",
                help="Every entry's rate times this.",
            )
            c1, c2 = st.columns(2)
            duration = c1.number_input("Simulated seconds", 10, 600, 60, 10, key="wi_duration")
            seed = c2.number_input("Seed", 0, 10_000, 1, key="wi_seed")
        with st.container(border=True):
            st.markdown("**Fault**")
            fault = fault_controls(system, float(duration))
        with st.container(border=True):
            st.markdown("**Mitigations** (the mitigated run)")
            mitigation = mitigation_controls(system)
        clicked = st.button("Run what-if", type="primary", key="wi_run", width="stretch")
    inputs = WhatIfInputs(load=float(load), duration=float(duration), seed=int(seed), fault=fault)
    with right:
        try:
            scenario = build_scenario(system.topology, inputs)
            policy = (
                mitigation
                if isinstance(mitigation, Policy)
                else build_policy(system.topology, mitigation)
            )
        except TwinError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        key = documents_json(system.topology, scenario, policy)
        results: dict[str, tuple[tuple[str, str, str], WhatIfResult]] = st.session_state.setdefault(
            RESULTS_KEY, {}
        )
        label = ui.system_label()
        shown = results.get(label)
        if clicked or shown is None:
            started = time.perf_counter()
            result = ui.attempt(ui.cached_whatif, *key, label="Running the twin")
            if result is None:
                return
            shown = (key, result)
            results[label] = shown
            st.session_state["_whatif_elapsed"] = time.perf_counter() - started
        if shown[0] != key:
            st.info(
                "The inputs changed since this run: press **Run what-if** to update.",
                icon=":material/refresh:",
            )
        show(shown[1])


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    if v >= 1.0:
        return f"{v:.2f} s" if v < 100 else f"{v:.0f} s"
    return f"{v * 1000:.0f} ms" if v >= 0.01 else f"{v * 1000:.2f} ms"


def _pct(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    if v in (0.0, 1.0):
        return f"{100 * v:.0f}%"
    return f"{100 * v:.{digits}f}%"


def _delta_ms(new: float | None, old: float | None) -> str | None:
    if new is None or old is None:
        return None
    d = new - old
    if abs(d) < 5e-5:
        return None
    return f"{d:+.2f} s" if abs(d) >= 1.0 else f"{d * 1000:+.1f} ms"


def _delta_pct(new: float | None, old: float | None) -> str | None:
    if new is None or old is None:
        return None
    d = 100 * (new - old)
    return None if abs(d) < 0.005 else f"{d:+.2f} pp"


def _slo_text(summary: Summary) -> str:
    slo = {
        k: v
        for k, v in (
            ("latency_p99", summary.slo.latency_p99),
            ("availability", summary.slo.availability),
        )
        if v is not None
    }
    if not slo:
        return "no SLO"
    missed = [k for k, v in slo.items() if not v.met]
    return "met" if not missed else "missed: " + ", ".join(k.replace("_", " ") for k in missed)


def show(result: WhatIfResult) -> None:
    base = headline(result.baseline.summary)
    mit = headline(result.mitigated.summary)
    elapsed = st.session_state.get("_whatif_elapsed")
    fault_text = (
        ", ".join(
            f"{f['kind']} on {f['target']} from {f['start']:g} s to {f['end']:g} s"
            for f in result.faults
        )
        or "no fault"
    )
    scen = result.scenario
    st.caption(
        f"{scen['duration']:g} simulated s at load ×{scen['load']['multiplier']:g}, seed "
        f"{scen['seed']}, {fault_text}. {int(base['requests'] or 0):,} user requests per run; "
        f"the twin took {result.wall_seconds:.2f} s for both runs"
        + (
            " (this answer came from the cache)."
            if elapsed is not None and elapsed < 0.5 * result.wall_seconds
            else "."
        )
    )
    for title, h, ref, summary in (
        ("Unmitigated (no policy)", base, None, result.baseline.summary),
        ("Mitigated", mit, base, result.mitigated.summary),
    ):
        st.markdown(f"**{title}** · SLO {_slo_text(summary)}")
        cols = st.columns(4)
        cols[0].metric(
            "p50", _ms(h["p50"]), _delta_ms(h["p50"], ref["p50"]) if ref else None, "inverse"
        )
        cols[1].metric(
            "p99", _ms(h["p99"]), _delta_ms(h["p99"], ref["p99"]) if ref else None, "inverse"
        )
        cols[2].metric(
            "Error rate",
            _pct(h["error_rate"]),
            _delta_pct(h["error_rate"], ref["error_rate"]) if ref else None,
            "inverse",
        )
        cols[3].metric(
            "Availability",
            _pct(h["availability"]),
            _delta_pct(h["availability"], ref["availability"]) if ref else None,
        )
    runs = {"unmitigated": result.baseline, "mitigated": result.mitigated}
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        charts.quantiles({"unmitigated": base, "mitigated": mit}),
        key="wi_chart_quantiles",
        config={"displayModeBar": False},
    )
    c2.plotly_chart(
        charts.reasons({k: reasons(v.summary) for k, v in runs.items()}),
        key="wi_chart_reasons",
        config={"displayModeBar": False},
    )
    series = {k: v.series for k, v in runs.items()}
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        charts.over_time(series, "error_rate", "Failed requests over time", result.faults),
        key="wi_chart_errors",
        config={"displayModeBar": False},
    )
    c2.plotly_chart(
        charts.over_time(series, "p99", "p99 latency over time (worst entry)", result.faults),
        key="wi_chart_p99",
        config={"displayModeBar": False},
    )
    st.plotly_chart(
        charts.utilisation_pair(series, busiest(result.baseline.series, 6), result.faults),
        key="wi_chart_util",
        config={"displayModeBar": False},
    )
    with st.expander("The documents that ran (use them with `twin simulate`)"):
        c1, c2 = st.columns(2)
        scen_yaml = dump_yaml(result.scenario)
        pol_yaml = dump_yaml(result.policy)
        c1.code(scen_yaml, language="yaml")
        c1.download_button(
            "Download scenario",
            scen_yaml,
            "whatif.scenario.yaml",
            "application/x-yaml",
            key="wi_dl_scenario",
        )
        c2.code(pol_yaml, language="yaml")
        c2.download_button(
            "Download policy",
            pol_yaml,
            "whatif.policy.yaml",
            "application/x-yaml",
            key="wi_dl_policy",
        )


render()
