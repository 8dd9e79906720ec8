"""``twin schedule``: the document, the resumable scheduler on a simulated clock, ingest into
the database, and the command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import child_env, run_twin
from test_campaign import CHAIN

from twin.campaign.schedule import (
    Schedule,
    ScheduledCampaign,
    Scheduler,
    Stopped,
    load_schedule,
    locked,
    read_state,
)
from twin.errors import InputError
from twin.io import parse_model


def t(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)  # type: ignore[misc]


class Clock:
    """A simulated clock: sleeping moves it forward."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 0.001))


class Crash(BaseException):
    """A hard kill in the middle of a run: nothing after it in the scheduler executes."""


class Recorder:
    def __init__(self, crash_on: datetime | None = None) -> None:
        self.calls: list[tuple[str, datetime]] = []
        self.crash_on = crash_on

    def __call__(self, entry: ScheduledCampaign, occ: datetime, folder: Path) -> dict[str, Any]:
        self.calls.append((entry.name, occ))
        if occ == self.crash_on:
            raise Crash
        return {"ok": True}


def schedule(*entries: dict[str, Any]) -> Schedule:
    return parse_model(Schedule, {"campaigns": list(entries)})


HOURLY = {"name": "hourly", "command": ["true"], "cron": "0 * * * *"}


TINY_CAMPAIGN = """\
name: tiny
topology: chain3.yaml
duration: 4
warmup: 1
policies: {none: null}
grid:
  faults: [{kind: error_rate, targets: [c], intensities: [0.5]}]
"""


def write_campaign(d: Path) -> Path:
    """A two-run campaign (baseline and one fault): what matters here is where it goes."""
    (d / "chain3.yaml").write_text(CHAIN)
    (d / "campaign.yaml").write_text(TINY_CAMPAIGN)
    return d / "campaign.yaml"


def scheduler(tmp_path: Path, sched: Schedule, clock: Clock, runner: Recorder) -> Scheduler:
    return Scheduler(
        sched, tmp_path / "s.yaml", tmp_path / "out", clock=clock, sleep=clock.sleep, runner=runner
    )


# -- the document -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            "campaigns:\n  - name: a\n    command: [x]\n    cron: '61 * * * *'\n",
            r"s.yaml:4: campaigns\[0\].cron: minute field: 61 is outside 0-59",
        ),
        (
            "campaigns:\n  - name: a\n    command: [x]\n    cron: '@daily'\n    colour: red\n",
            r"s.yaml:5: campaigns\[0\].colour: unknown field",
        ),
        (
            "campaigns:\n  - name: a\n    command: [x]\n",
            r"campaigns\[0\]: give exactly one of cron or every",
        ),
        (
            "campaigns:\n  - name: a\n    command: [x]\n    campaign: c.yaml\n    every: 1h\n",
            r"campaigns\[0\]: give exactly one of campaign",
        ),
        (
            "campaigns:\n  - name: a\n    command: ['{outdir}']\n    every: 1h\n",
            r"campaigns\[0\].command: .*names \{outdir\}",
        ),
        (
            "campaigns:\n  - name: a\n    command: [x]\n    every: soon\n",
            r"campaigns\[0\].every: 'soon' is not a duration",
        ),
        (
            "campaigns:\n  - {name: a, command: [x], every: 1h}\n"
            "  - {name: a, command: [y], every: 2h}\n",
            r"campaigns: two campaigns are named 'a'",
        ),
        (
            "campaigns:\n  - name: ../up\n    command: [x]\n    every: 1h\n",
            r"campaigns\[0\].name: ",
        ),
        (
            "campaigns:\n  - name: a\n    campaign: missing.yaml\n    every: 1h\n",
            r"missing.yaml",
        ),
    ],
)
def test_bad_schedules_are_refused_with_a_located_line(
    tmp_path: Path, body: str, words: str
) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(body)
    with pytest.raises(InputError, match=words):
        load_schedule(p)


# -- deciding and resuming ----------------------------------------------------------------------


def test_a_new_entry_does_not_run_the_past_but_runs_an_occurrence_due_this_minute(
    tmp_path: Path,
) -> None:
    clock, rec = Clock(t(2026, 3, 1, 10, 0, 20)), Recorder()
    s = scheduler(tmp_path, schedule(HOURLY, {**HOURLY, "name": "daily", "cron": "0 0 * * *"}),
                  clock, rec)  # fmt: skip
    assert s.run(once=True) == 1
    assert rec.calls == [("hourly", t(2026, 3, 1, 10))]


def test_a_simulated_day_runs_each_occurrence_exactly_once(tmp_path: Path) -> None:
    clock, rec = Clock(t(2026, 3, 1, 0, 0, 1)), Recorder()
    five = {"name": "five", "command": ["true"], "cron": "*/5 * * * *"}
    s = scheduler(tmp_path, schedule(HOURLY, five), clock, rec)
    s.run(until=t(2026, 3, 2))
    hourly = [o for n, o in rec.calls if n == "hourly"]
    fives = [o for n, o in rec.calls if n == "five"]
    assert hourly == [t(2026, 3, 1, h) for h in range(24)]
    assert fives == [t(2026, 3, 1) + timedelta(minutes=5 * k) for k in range(288)]


def test_restart_between_occurrences_repeats_nothing_and_catches_up_once(tmp_path: Path) -> None:
    clock, rec = Clock(t(2026, 3, 1, 10, 0, 5)), Recorder()
    sched = schedule(HOURLY)
    scheduler(tmp_path, sched, clock, rec).run(until=t(2026, 3, 1, 11, 30))
    assert rec.calls == [("hourly", t(2026, 3, 1, 10)), ("hourly", t(2026, 3, 1, 11))]
    # killed at 11:30; restarted at 11:40: 11:00 is done, nothing is due
    clock.now = t(2026, 3, 1, 11, 40)
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 0
    # restarted at 15:10 after four missed hours: only the latest, 15:00, runs
    clock.now = t(2026, 3, 1, 15, 10)
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 1
    assert rec.calls[-1] == ("hourly", t(2026, 3, 1, 15))
    skipped = [r for r in read_state(tmp_path / "out" / "schedule-state.json")["runs"]
               if r["status"] == "skipped"]  # fmt: skip
    assert skipped == [{"entry": "hourly", "status": "skipped",
                        "skipped_from": "2026-03-01T12:00:00.000000Z",
                        "skipped_to": "2026-03-01T14:00:00.000000Z"}]  # fmt: skip
    # and again at once: the catch-up is not run a second time
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 0
    assert len(rec.calls) == 3


def test_an_occurrence_killed_mid_run_resumes_once_in_the_same_folder(tmp_path: Path) -> None:
    clock = Clock(t(2026, 3, 1, 10, 0, 5))
    sched = schedule(HOURLY)
    with pytest.raises(Crash):
        scheduler(tmp_path, sched, clock, Recorder(crash_on=t(2026, 3, 1, 10))).run(once=True)
    state = read_state(tmp_path / "out" / "schedule-state.json")
    assert state["entries"]["hourly"]["running"] == "2026-03-01T10:00:00.000000Z"
    rec = Recorder()
    clock.now = t(2026, 3, 1, 10, 20)
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 1
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 0
    assert rec.calls == [("hourly", t(2026, 3, 1, 10))]
    runs = read_state(tmp_path / "out" / "schedule-state.json")["runs"]
    assert [(r["status"], r["resumed"]) for r in runs] == [("done", True)]
    assert runs[0]["out"].endswith("hourly/20260301T100000Z")


def test_an_interrupted_occurrence_overtaken_by_a_newer_one_is_abandoned(tmp_path: Path) -> None:
    clock = Clock(t(2026, 3, 1, 10, 0, 5))
    sched = schedule(HOURLY)
    with pytest.raises(Crash):
        scheduler(tmp_path, sched, clock, Recorder(crash_on=t(2026, 3, 1, 10))).run(once=True)
    rec = Recorder()
    clock.now = t(2026, 3, 1, 13, 1)
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 1
    assert rec.calls == [("hourly", t(2026, 3, 1, 13))]
    runs = read_state(tmp_path / "out" / "schedule-state.json")["runs"]
    assert [r["status"] for r in reversed(runs)] == ["abandoned", "skipped", "done"]
    assert runs[1]["skipped_from"].startswith("2026-03-01T11:00")


def test_catch_up_none_runs_nothing_late_but_an_occurrence_within_grace(tmp_path: Path) -> None:
    sched = schedule({**HOURLY, "catch_up": "none", "grace": 120})
    clock, rec = Clock(t(2026, 3, 1, 10, 0, 30)), Recorder()
    scheduler(tmp_path, sched, clock, rec).run(once=True)
    clock.now = t(2026, 3, 1, 14, 5)
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 0
    clock.now = t(2026, 3, 1, 15, 1, 59)
    assert scheduler(tmp_path, sched, clock, rec).run(once=True) == 1
    assert rec.calls == [("hourly", t(2026, 3, 1, 10)), ("hourly", t(2026, 3, 1, 15))]


def test_a_failed_run_is_recorded_and_not_retried(tmp_path: Path) -> None:
    def fails(entry: ScheduledCampaign, occ: datetime, folder: Path) -> dict[str, Any]:
        raise InputError("topology.yaml: services: required field is missing")

    clock = Clock(t(2026, 3, 1, 10, 0, 5))
    s = Scheduler(schedule(HOURLY), tmp_path / "s.yaml", tmp_path / "out", clock=clock,
                  sleep=clock.sleep, runner=fails)  # fmt: skip
    assert s.run(until=t(2026, 3, 1, 11, 30)) == 2
    runs = read_state(s.state_file)["runs"]
    assert [r["status"] for r in runs] == ["failed", "failed"]
    assert runs[0]["error"] == "topology.yaml: services: required field is missing"


def test_stop_during_a_run_leaves_the_occurrence_to_resume(tmp_path: Path) -> None:
    clock = Clock(t(2026, 3, 1, 10, 0, 5))

    def stopped(entry: ScheduledCampaign, occ: datetime, folder: Path) -> dict[str, Any]:
        raise Stopped("stopped")

    s = Scheduler(schedule(HOURLY), tmp_path / "s.yaml", tmp_path / "out", clock=clock,
                  sleep=clock.sleep, runner=stopped)  # fmt: skip
    assert s.run() == 0
    assert read_state(s.state_file)["entries"]["hourly"]["running"] is not None


def test_max_runs_bounds_the_scheduler(tmp_path: Path) -> None:
    clock, rec = Clock(t(2026, 3, 1, 0, 0, 1)), Recorder()
    five = {"name": "five", "command": ["true"], "cron": "*/5 * * * *"}
    assert scheduler(tmp_path, schedule(five), clock, rec).run(max_runs=3) == 3
    assert len(rec.calls) == 3


def test_two_schedulers_never_share_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with locked(state), pytest.raises(InputError, match="another scheduler is running"):  # noqa: SIM117
        with locked(state):
            pass


# -- real runs: a twin campaign into the database, a command's evidence -------------------------


def test_a_scheduled_twin_campaign_is_recorded_in_the_database(tmp_path: Path) -> None:
    from twin.store import Store

    write_campaign(tmp_path)
    spec = tmp_path / "schedule.yaml"
    spec.write_text("campaigns:\n  - {name: chain, campaign: campaign.yaml, cron: '@hourly'}\n")
    clock = Clock(t(2026, 3, 1, 10, 0, 5))
    with Store(str(tmp_path / "t.db")) as store:
        s = Scheduler(load_schedule(spec), spec, tmp_path / "out", store=store, clock=clock,
                      sleep=clock.sleep)  # fmt: skip
        assert s.run(once=True) == 1
        counts = store.counts()
    run = read_state(s.state_file)["runs"][0]
    assert run["status"] == "done", run
    assert counts["campaigns"] == 1 and counts["runs"] == run["summary"]["runs"] > 0
    assert (Path(run["out"]) / "report.html").exists()


def test_a_scheduled_command_ingests_its_evidence_and_a_slow_one_is_stopped(
    tmp_path: Path,
) -> None:
    from twin.store import Store
    from twin.store.documents import page

    ev = {
        "observed_at": "2026-03-01T10:00:00Z", "source": "threeway", "topology": "testbed",
        "scenario": "delay", "fault_kind": "latency", "target": "catalog",
        "metric": "latency_mean", "predicted": 0.2, "measured": 0.1, "accuracy": 0.0,
        "disagrees": True,
    }  # fmt: skip
    writer = tmp_path / "writer.py"
    writer.write_text(
        f"import json, sys\njson.dump({{'evidence': [{ev!r}]}}, open(sys.argv[1], 'w'))\n"
    )
    spec = tmp_path / "schedule.yaml"
    spec.write_text(
        json.dumps(
            {
                "campaigns": [
                    {"name": "shadow", "command": [sys.executable, str(writer), "{out}/e.json"],
                     "cron": "@hourly", "ingest": "evidence"},
                    {"name": "slow", "command": [sys.executable, "-c", "import time; "
                     "time.sleep(60)"], "cron": "@hourly", "timeout": 1},
                ]
            }
        )
    )  # fmt: skip
    clock = Clock(t(2026, 3, 1, 10, 0, 5))
    with Store(str(tmp_path / "t.db")) as store:
        s = Scheduler(load_schedule(spec), spec, tmp_path / "out", store=store, clock=clock,
                      sleep=clock.sleep)  # fmt: skip
        started = time.monotonic()
        s.run(once=True)
        assert time.monotonic() - started < 30
        rows, _ = page(store, "calibration_evidence", limit=10, filters=[("disagrees", True)])
    runs = {r["entry"]: r for r in read_state(s.state_file)["runs"]}
    assert runs["shadow"]["summary"]["ingested"] == {"files": 1, "added": 1}
    assert runs["slow"]["status"] == "failed" and "timeout of 1 s" in runs["slow"]["error"]
    assert [(r["scenario"], r["metric"], r["accuracy"]) for r in rows] == [
        ("delay", "latency_mean", 0.0)
    ]


# -- the command line ---------------------------------------------------------------------------


def test_cli_bad_schedule_exits_2_with_one_line(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("campaigns:\n  - name: a\n    command: [x]\n    cron: '* * * * 9'\n")
    r = run_twin("schedule", str(p), "--no-db", "--once", "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"twin: error: {p}:4: campaigns[0].cron: day of week field: 9 is outside 0-6"
    ]


def test_cli_once_runs_what_is_due_and_records_it(tmp_path: Path) -> None:
    write_campaign(tmp_path)
    spec = tmp_path / "schedule.yaml"
    spec.write_text("campaigns:\n  - {name: chain, campaign: campaign.yaml, every: 1m}\n")
    db, out = tmp_path / "t.db", tmp_path / "out"
    r = run_twin("schedule", str(spec), "--once", "--db", str(db), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "1 occurrence(s) run" in r.stdout
    r2 = run_twin("schedule", str(spec), "--once", "--db", str(db), "--out", str(out))
    assert r2.returncode == 0, r2.stderr
    runs = read_state(out / "schedule-state.json")["runs"]
    occurrences = [x["occurrence"] for x in runs if x["status"] == "done"]
    assert len(occurrences) == len(set(occurrences)) >= 1


def test_cli_runs_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    spec = tmp_path / "schedule.yaml"
    spec.write_text("campaigns:\n  - {name: yearly, command: ['true'], cron: '@yearly'}\n")
    out = tmp_path / "out"
    p = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "schedule", str(spec), "--no-db", "--out", str(out)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (out / "schedule-state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert p.poll() is None, p.stderr.read() if p.stderr else ""
        p.send_signal(signal.SIGTERM)
        stdout, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    assert "0 occurrence(s) run" in stdout
