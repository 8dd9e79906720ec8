"""Policies: a learned mitigation policy against its baselines on held-out fault scenarios,
its distilled rules and its exported runtime files, read from the folders `twin evaluate`
and `twin export` wrote; and this system's own static policy file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import outputs, ui
from twin.errors import TwinError
from twin.io import dump_yaml

BUNDLED = Path(__file__).resolve().parents[2] / "agents" / "policies"
DIR_KEY = "po_dir"


def _bundled() -> list[str]:
    if not BUNDLED.is_dir():
        return []
    return sorted(str(p) for p in BUNDLED.iterdir() if (p / "evaluation.json").is_file())


def _interval_chart(table: pd.DataFrame, metric: str) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=table["policy"],
            y=table[metric],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": table[f"{metric}_hi"] - table[metric],
                "arrayminus": table[metric] - table[f"{metric}_lo"],
            },
        )
    )
    fig.update_layout(
        height=320,
        yaxis={"title": outputs.POLICY_METRICS[metric]},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title=f"{outputs.POLICY_METRICS[metric]}, mean and 95% interval",
    )
    return fig


def _learned(out: outputs.PolicyOutput) -> None:
    table = outputs.policy_table(out)
    cols = st.columns(3)
    cols[0].metric("Held-out scenarios", f"{out.scenarios}")
    cols[1].metric("Policies compared", f"{len(table)}")
    cols[2].metric("Topology", str(out.evaluation.get("topology", "?")))
    metric = st.selectbox(
        "Figure",
        list(outputs.POLICY_METRICS),
        format_func=outputs.POLICY_METRICS.__getitem__,
        key="po_metric",
    )
    st.plotly_chart(_interval_chart(table, str(metric)), key="po_chart")
    st.dataframe(table, hide_index=True, key="po_table")
    pf = out.policy_file
    if pf is None:
        st.info(
            "No export in this folder yet: `twin export POLICY_DIR --out POLICY_DIR/export` "
            "writes policy.json and the runtime files (docs/export.md)."
        )
        return
    st.subheader("Exported policy")
    bounds = pf.get("bounds", {})
    c = st.columns(3)
    c[0].metric("Decision interval", f"{pf.get('interval_seconds', '?')} s")
    c[1].metric("Changes per decision (max)", f"{bounds.get('max_changes_per_decision', '?')}")
    model = pf.get("model", {})
    agree = model.get("agreement_with_torch")
    c[2].metric("ONNX = torch", f"{agree:.1%}" if isinstance(agree, int | float) else "?")
    rules = pf.get("rules")
    if isinstance(rules, dict):
        st.markdown(
            f"**Distilled rules** (decision tree, depth {rules.get('max_depth')}): agrees with "
            f"the network on {float(rules.get('agreement', 0.0)):.1%} of "
            f"{rules.get('agreement_samples')} held-aside observations."
        )
        try:
            st.code(outputs.tree_text(rules), language="python")
        except TwinError as exc:
            st.error(f"{out.folder}: policy.json: {exc}", icon=":material/error:")
    checked = pf.get("provenance", {}).get("validated_in_twin")
    if checked:
        with st.expander("Validated in the shadow before export"):
            st.json(checked)
    st.markdown("**Fallback** (held when metrics are missing or bad):")
    st.code(dump_yaml(pf.get("fallback", {})), language="yaml")
    for runtime, files in out.renderings.items():
        with st.expander(f"{runtime}: {len(files)} file(s)"):
            for f in files:
                text = f.read_text(encoding="utf-8")
                st.code(text, language="yaml")
                st.download_button(
                    f"Download {runtime}/{f.name}",
                    text,
                    file_name=f"{runtime}-{f.name}",
                    mime="application/x-yaml",
                    key=f"po_dl_{runtime}_{f.name}",
                )


def render() -> None:
    st.title("Policies")
    st.caption(
        "A mitigation policy learned in the twin (docs/agents.md) against no mitigation, best "
        "practice, a threshold heuristic and the best static policy found by search, on "
        "held-out fault scenarios; then its export for production (docs/export.md)."
    )
    choices = _bundled()
    picked = st.selectbox(
        "Policy folder",
        [*choices, "another folder..."],
        format_func=lambda p: Path(p).name if p in choices else p,
        key="po_pick",
    )
    folder = (
        picked
        if picked in choices
        else st.text_input("Folder", key=DIR_KEY, help="The --out folder of twin evaluate.")
    )
    if folder:
        try:
            out = outputs.load_policy_dir(folder)
        except TwinError as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            _learned(out)
    system = ui.current_system()
    if system is None or system.policy is None:
        return
    st.subheader("This system's static policy file")
    st.caption(
        "Hand-written with the topology, not learned: the kind of static baseline a learned "
        "policy has to beat, in the twin's own format."
    )
    text = dump_yaml(system.policy.model_dump(mode="json", exclude_unset=True))
    st.code(text, language="yaml")
    st.download_button(
        f"Download {system.name}.policy.yaml",
        text,
        file_name=f"{system.name}.policy.yaml",
        mime="application/x-yaml",
        key="policies_download",
    )


render()
