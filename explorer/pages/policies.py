"""Policies: needs learned policies and their export (issue #7); shows the system's own
static policy file, which is real, and says that it is not a learned one."""

from __future__ import annotations

import streamlit as st

from explorer import ui
from twin.io import dump_yaml


def render() -> None:
    st.title("Policies")
    ui.needs(
        "learned mitigation policies and their export",
        7,
        will_show=[
            "the learned policy against the baselines (no policy, the best static policy "
            "found by search) on held-out fault scenarios, over several seeds",
            "its rules: which timeouts, retries, breakers, shedding and scaling it chooses, "
            "and when",
            "export buttons to download it as Istio, Envoy, Resilience4j and Kubernetes HPA "
            "files, each re-validated in the twin",
        ],
        until_then=[
            "the **What-if** page compares mitigations you set by hand with the unprotected system",
        ],
    )
    system = ui.current_system()
    if system is None or system.policy is None:
        return
    st.subheader("This system's static policy file")
    st.caption(
        "Hand-written with the topology, not learned: the kind of static baseline a learned "
        "policy will have to beat. It is the twin's own format; exporters to runtime formats "
        "come with issue #7."
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
