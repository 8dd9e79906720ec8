"""The explorer's Watch page: without a folder it says what it needs; with a folder that
lacks the watch's files it names them in one line; with a real ``twin watch`` output it
draws the timeline and lists the alert."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the explorer needs streamlit (the `app` extra)")
pytest.importorskip("plotly", reason="the explorer needs plotly (the `app` extra)")

from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_watch_cli import TOPOLOGY, _replay
from typer.testing import CliRunner

from twin.cli import app

APP = str(ROOT / "app.py")


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("explorer/pages/watch.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_watch_page_says_what_it_needs(tmp_path: Path) -> None:
    at = _page()
    assert any("timeline.json and alerts.jsonl" in str(i.value) for i in at.info)
    at.text_input(key="watch_dir").input(str(tmp_path)).run()
    assert not at.exception
    assert any("no timeline.json or alerts.jsonl here" in str(e.value) for e in at.error)


def test_the_watch_page_draws_a_real_watch_output(tmp_path: Path) -> None:
    topo = tmp_path / "topo.yaml"
    topo.write_text(TOPOLOGY)
    _replay(tmp_path / "rec")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "watch",
            str(topo),
            "--replay",
            str(tmp_path / "rec"),
            "--format",
            "nezha",
            "--out",
            str(out),
            "--horizon",
            "600",
        ],
    )
    assert res.exit_code == 0, res.output
    at = _page()
    at.text_input(key="watch_dir").input(str(out)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Windows"] == "60" and int(shown["Alerts fired"]) >= 1
    assert len(at.dataframe) == 1
