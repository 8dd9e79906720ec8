"""Topology: the call graph, per-service parameters, the documents, and uploads."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import graph, outputs, ui
from explorer.catalog import System, display_path, load_uploaded, topology_dir
from twin.errors import TwinError
from twin.io import dump_yaml


def upload_section() -> None:
    st.subheader("Upload a system")
    st.caption(
        "A topology YAML (required), and optionally a scenario and a policy for it. "
        "The format is the twin's own (docs/reference.md). Problems are reported with "
        "their file, line and path in the document."
    )
    c1, c2, c3 = st.columns(3)
    topo = c1.file_uploader("Topology YAML", type=["yaml", "yml"], key="up_topology")
    scen = c2.file_uploader("Scenario YAML (optional)", type=["yaml", "yml"], key="up_scenario")
    pol = c3.file_uploader("Policy YAML (optional)", type=["yaml", "yml"], key="up_policy")
    if topo is None:
        if scen is not None or pol is not None:
            st.info("Add the topology the scenario and policy belong to.")
        return
    try:
        texts = (
            ui.uploaded_text(topo),
            ui.uploaded_text(scen) if scen is not None else None,
            ui.uploaded_text(pol) if pol is not None else None,
        )
        digest = ui.content_hash(*texts)
        if st.session_state.get("_upload_digest") == digest:
            st.success(f"Loaded **{texts[0][0]}**; it is selected in the sidebar.")
            return
        system = load_uploaded(texts[0], texts[1], texts[2])
    except TwinError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.session_state["_upload_digest"] = digest
    ui.add_upload(system)
    st.rerun()


def services_table(system: System) -> pd.DataFrame:
    g = system.topology.service_graph()
    rows = []
    for name, svc in system.topology.services.items():
        node = g.nodes[name]
        rows.append(
            {
                "service": name,
                "offered req/s": round(float(node["rate"]), 2),
                "offered utilisation": float(node["utilization"]),
                "replicas": svc.replicas,
                "workers": svc.workers,
                "queue limit": "unbounded" if svc.queue_limit is None else str(svc.queue_limit),
                "model": "thread per request" if svc.blocking else "event loop",
                "host": svc.host or "",
                "operations": ", ".join(
                    f"{op} ({1000 * o.service_time.expected():.2f} ms)"
                    for op, o in svc.operations.items()
                ),
                "calls": ", ".join(sorted(g.successors(name))),
            }
        )
    return pd.DataFrame(rows).sort_values("offered utilisation", ascending=False)


def calls_table(system: System) -> pd.DataFrame:
    g = system.topology.service_graph()
    rows = [
        {
            "caller": a,
            "callee": b,
            "calls/s": round(float(d["rate"]), 2),
            "per caller request": round(float(d["calls"]), 3),
            "network (ms)": round(1000 * float(d["latency"]), 3),
            "loss": float(d["loss"]),
        }
        for a, b, d in g.edges(data=True)
    ]
    return pd.DataFrame(rows).sort_values("calls/s", ascending=False) if rows else pd.DataFrame()


def _calibration_quality() -> None:
    """How well a calibrated twin reproduces what was observed (``twin calibrate``'s record)."""
    with st.expander("Calibration quality (for a topology from `twin calibrate`)"):
        st.caption(
            "Upload the `calibration.json` that `twin calibrate --out DIR` wrote beside the "
            "topology: observed rate, mean, p95 and p99 next to what the calibrated twin "
            "predicts at the observed load. Bundled topologies state their sources in their "
            "description instead."
        )
        upload = st.file_uploader("calibration.json", type=["json"], key="topo_calibration")
        if upload is None:
            return
        try:
            name, text = ui.uploaded_text(upload)
            table = outputs.calibration_table(text, name)
        except TwinError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        acc = table["mean accuracy"].dropna()
        if len(acc):
            st.metric("Mean-latency accuracy, average over scopes", f"{acc.mean():.1%}")
        st.dataframe(table, hide_index=True)


def render() -> None:
    st.title("Topology")
    system = ui.current_system()
    if system is not None:
        show(system)
    st.divider()
    upload_section()


def show(system: System) -> None:
    topo = system.topology
    g = topo.service_graph()
    st.subheader(topo.name)
    st.caption(
        "uploaded in this session"
        if system.origin == "uploaded"
        else "bundled: " + display_path(topology_dir() / f"{ui.system_label()}.yaml")
    )
    total = sum(w.rate for w in topo.workload)
    busiest = max(g.nodes, key=lambda n: float(g.nodes[n]["utilization"]))
    c = st.columns(4)
    c[0].metric("Services", len(topo.services))
    c[1].metric("Call edges", g.number_of_edges())
    c[2].metric("Offered load", f"{total:g} req/s")
    c[3].metric(
        "Busiest service",
        busiest,
        f"{float(g.nodes[busiest]['utilization']):.0%} utilised",
        delta_color="off",
        delta_arrow="off",
    )
    if topo.description or topo.source:
        with st.expander("What is modelled, and from which source"):
            if topo.description:
                st.markdown(topo.description)
            if topo.source:
                st.caption(f"Source: {topo.source}")
    st.caption(
        "Call graph: services sized by offered load, arrows as wide as their call rate, "
        "colour = offered utilisation at the bundled load (healthy system, no retries). "
        "Hover for details."
    )
    pos = graph.layout(g)
    st.plotly_chart(
        graph.figure(g, pos, height=max(380, 40 * graph.widest_layer(pos))),
        key="topology_graph",
        config={"displayModeBar": False},
    )
    _calibration_quality()
    tab_s, tab_c, tab_w, tab_d = st.tabs(["Services", "Calls", "Workload and SLO", "Documents"])
    with tab_s:
        table = services_table(system)
        st.dataframe(
            table,
            hide_index=True,
            height=min(36 * (len(table) + 1) + 4, 640),
            column_config={
                "offered utilisation": st.column_config.ProgressColumn(
                    "offered utilisation", format="percent", min_value=0.0, max_value=1.0
                ),
            },
        )
    with tab_c:
        st.dataframe(
            calls_table(system),
            hide_index=True,
            column_config={"loss": st.column_config.NumberColumn(format="percent")},
        )
    with tab_w:
        st.dataframe(
            pd.DataFrame([{"entry": w.entry, "req/s": w.rate} for w in topo.workload]),
            hide_index=True,
        )
        slo = topo.slo
        st.markdown(
            "SLO: "
            + (f"p99 ≤ {1000 * slo.latency_p99:g} ms" if slo.latency_p99 else "no latency target")
            + ", "
            + (
                f"availability ≥ {slo.availability:.3%}"
                if slo.availability
                else "no availability target"
            )
        )
    with tab_d:
        docs = [("topology", topo.model_dump(mode="json", exclude_unset=True))]
        if system.scenario is not None:
            docs.append(("scenario", system.scenario.model_dump(mode="json", exclude_unset=True)))
        if system.policy is not None:
            docs.append(("policy", system.policy.model_dump(mode="json", exclude_unset=True)))
        for kind, data in docs:
            text = dump_yaml(data)
            st.download_button(
                f"Download the {kind} ({topo.name}.{kind}.yaml)"
                if kind != "topology"
                else f"Download the topology ({topo.name}.yaml)",
                text,
                file_name=f"{topo.name}.yaml" if kind == "topology" else f"{topo.name}.{kind}.yaml",
                mime="application/x-yaml",
                key=f"download_{kind}",
            )
            with st.expander(f"{kind} YAML"):
                st.code(text, language="yaml")


render()
