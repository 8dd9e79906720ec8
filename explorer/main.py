"""The explorer's entry: page setup, the system picker and the page list."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from explorer import ui

PAGES = Path(__file__).resolve().parent / "pages"


def main() -> None:
    st.set_page_config(
        page_title="Shadow Twin explorer",
        page_icon="🛰️",
        layout="wide",
        initial_sidebar_state="expanded",
    )
    nav = st.navigation(
        {
            "Explore": [
                st.Page(
                    PAGES / "topology.py", title="Topology", icon=":material/hub:", default=True
                ),
                st.Page(PAGES / "whatif.py", title="What-if", icon=":material/tune:"),
                st.Page(PAGES / "playback.py", title="Playback", icon=":material/play_circle:"),
            ],
            "Experiments and risk": [
                st.Page(PAGES / "campaigns.py", title="Campaigns", icon=":material/science:"),
                st.Page(
                    PAGES / "predictive.py", title="Predictive analysis", icon=":material/insights:"
                ),
                st.Page(
                    PAGES / "changes.py", title="Changes", icon=":material/published_with_changes:"
                ),
            ],
            "Learned mitigation": [
                st.Page(PAGES / "policies.py", title="Policies", icon=":material/shield:"),
            ],
        }
    )
    ui.sidebar()
    nav.run()
