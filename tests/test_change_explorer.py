"""The explorer's Changes page: the stored checks, their rollouts and the accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from twin.change.history import record_check, record_rollout
from twin.store import Store

APP = str(ROOT / "app.py")


def _open(monkeypatch: pytest.MonkeyPatch, db: Path) -> AppTest:
    monkeypatch.setenv("TWIN_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("explorer/pages/changes.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_changes_page_shows_checks_rollouts_and_accuracy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "twin.db"
    with Store(str(db)) as store:
        risk = {"mean": 0.4, "lo": 0.2, "hi": 0.6}
        bad = record_check(store, {"name": "slow-db", "decision": "no-go", "risk": risk})
        record_check(store, {"name": "raise-timeout", "decision": "go", "risk": risk})
        record_rollout(
            store, name="slow-db", check_id=bad, rolled_back=True, observed_breach=True,
            time_to_rollback=30.0,
        )  # fmt: skip
    at = _open(monkeypatch, db)
    assert at.title[0].value == "Changes"
    shown = {m.label: m.value for m in at.metric}
    assert shown == {
        "Checks": "2",
        "Rollouts": "1",
        "Rollbacks": "1",
        "Prediction accuracy": "100%",
    }
    frame = at.dataframe[0].value
    assert list(frame["change"]) == ["slow-db", "raise-timeout"]
    assert list(frame["outcome"]) == ["bad", "–"]


def test_the_changes_page_with_an_empty_database_says_how_to_fill_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(monkeypatch, tmp_path / "empty.db")
    assert "twin check-change" in at.info[0].value
