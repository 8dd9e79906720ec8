"""The Campaigns page's scheduled section: the state of ``twin schedule`` and its runs, and a
scheduled campaign run opened in the results."""

from __future__ import annotations

from pathlib import Path

from test_app_outputs import page
from test_schedule import Clock, t, write_campaign

from twin.campaign.schedule import Scheduler, load_schedule


def test_scheduled_section_lists_entries_and_runs_and_opens_a_run(tmp_path: Path) -> None:
    write_campaign(tmp_path)
    spec = tmp_path / "schedule.yaml"
    spec.write_text(
        "campaigns:\n  - {name: chain, campaign: campaign.yaml, cron: '@hourly'}\n"
        "  - {name: never, command: ['false'], cron: '@yearly'}\n"
    )
    clock = Clock(t(2026, 3, 1, 10, 0, 5))
    s = Scheduler(load_schedule(spec), spec, tmp_path / "out", clock=clock, sleep=clock.sleep)
    assert s.run(once=True) == 1
    at = page("campaigns")
    at.text_input(key="cp_sched_state").input(str(s.state_file)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # no campaign folder is open yet, so the only tables are the scheduled section's
    entries = at.dataframe[0].value
    assert list(entries["campaign"]) == ["chain", "never"]
    assert list(entries["last status"].fillna("-")) == ["done", "-"]
    runs = at.dataframe[1].value
    assert list(runs["occurrence"]) == ["2026-03-01T10:00:00.000000Z"]
    at.button(key="cp_sched_open").click().run()
    assert not at.exception
    assert at.text_input(key="cp_dir").value == str(tmp_path / "out" / "chain" / "20260301T100000Z")
    assert at.metric[0].value == "2"  # the baseline and one fault, one policy


def test_scheduled_section_waits_for_a_state_file(tmp_path: Path) -> None:
    at = page("campaigns")
    at.text_input(key="cp_sched_state").input(str(tmp_path / "none.json")).run()
    assert not at.exception and not at.error
    assert any("No scheduler has written" in c.value for c in at.caption)
