"""Campaigns on a schedule: a document of campaigns with cron-like times, run by a resumable
scheduler whose results go to the failure-mode database.

Why it works this way:

- **Occurrences are instants, not ticks.** Each entry's times come from its cron expression
  or interval (:mod:`twin.campaign.cron`), so a scheduler that sleeps late, or restarts,
  finds the same instants and can tell which ran.
- **The state file is the memory** (``schedule-state.json``, written atomically). Before an
  occurrence runs it is marked ``running``; after, the entry's cursor moves to it and the run
  is recorded. So a scheduler killed *between* occurrences never repeats one, and one killed
  *during* an occurrence resumes that occurrence in the same folder (a twin campaign reuses
  its finished runs there) rather than starting a second.
- **Catch-up runs at most once.** Occurrences missed while no scheduler ran are never run one
  by one: with ``catch_up: latest`` (the default) the latest missed one runs, once, and the
  earlier ones are recorded as one skipped window; with ``catch_up: none`` the latest runs
  only if it is less than ``grace`` seconds old. An interrupted occurrence that a newer one
  has overtaken is recorded as abandoned. A new entry starts at the minute it is first seen:
  nothing before it is "missed".
- **The clock is passed in**, and so is the sleep, so tests run days of schedule in
  milliseconds; SIGTERM sets the stop event the default sleep waits on.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import signal
import string
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin.bounds import Int, PositiveSeconds
from twin.campaign.cron import Cron, CronError, Every, as_utc
from twin.errors import InputError, TwinError
from twin.incidents import parse_duration
from twin.io import load_model, output_dir
from twin.safeload import read_text

if TYPE_CHECKING:
    from twin.store import Store

STATE_VERSION = 1
MAX_HISTORY_BYTES = 1 << 20
"""How much of the end of the history file :func:`read_state` reads."""
PLACEHOLDERS = frozenset({"out", "occurrence", "db", "spec_dir"})
"""What a command's arguments may name in braces: the run's output folder, the occurrence
(``20260101T020000Z``), the database URL and the schedule file's folder."""
ENTRY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduledCampaign(_Doc):
    """One campaign and when it runs: a twin campaign file (``campaign``) or a command
    (``command``, e.g. a real-shadow comparison), on a ``cron`` expression or ``every``
    interval."""

    name: str = Field(
        pattern=ENTRY_NAME, description="unique; also the folder of its runs under --out"
    )
    campaign: str | None = Field(
        default=None, description="twin campaign YAML, relative to the schedule file"
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="argv run in the schedule file's folder; may name {out}, {occurrence}, "
        "{db}, {spec_dir}",
    )
    cron: str | None = Field(
        default=None, description="five fields, UTC: 'minute hour day month weekday'"
    )
    every: str | PositiveSeconds | None = Field(
        default=None, description="an interval: seconds, or '15m', '6h', '1h30m'"
    )
    anchor: datetime | None = Field(
        default=None,
        description="with every: an instant the intervals count from (default 1970-01-01 UTC)",
    )
    catch_up: Literal["latest", "none"] = Field(
        default="latest",
        description="missed occurrences: run the latest once, or none older than grace",
    )
    grace: PositiveSeconds = Field(
        default=60.0, description="seconds late an occurrence may start with catch_up: none"
    )
    timeout: PositiveSeconds = Field(
        default=3600.0, description="seconds a command may run before it is stopped"
    )
    ingest: Literal["none", "chaos", "evidence"] = Field(
        default="none",
        description="a command's results into the database: chaos results, or calibration "
        "evidence (the 'evidence' list of a JSON file); a twin campaign is always recorded",
    )
    results: str = Field(
        default="*.json", description="glob, relative to the run's folder, of the files ingested"
    )
    workers: Int = Field(default=1, ge=1, le=256, description="a twin campaign's processes")
    enabled: bool = Field(default=True, description="false: kept in the file, never run")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            Cron.parse(value)  # CronError is a ValueError: located by the loader
        return value

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | float | None) -> str | float | None:
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a duration (e.g. 90, '15m', '6h')") from None
            if seconds is None or seconds < 1.0:
                raise ValueError("an interval is at least 1 second")
        elif value is not None and value < 1.0:
            raise ValueError("an interval is at least 1 second")
        return value

    @field_validator("command")
    @classmethod
    def _placeholders(cls, value: list[str] | None) -> list[str] | None:
        for arg in value or []:
            try:
                names = {n for _, n, _, _ in string.Formatter().parse(arg) if n is not None}
            except ValueError as exc:
                raise ValueError(f"argument {arg!r}: {exc}") from None
            unknown = names - PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"argument {arg!r} names {{{sorted(unknown)[0]}}}; known: "
                    + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
                )
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> ScheduledCampaign:
        if (self.campaign is None) == (self.command is None):
            raise ValueError("give exactly one of campaign (a twin campaign file) or command")
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron or every")
        if self.anchor is not None and self.every is None:
            raise ValueError("anchor goes with every")
        if self.campaign is not None and self.ingest != "none":
            raise ValueError("ingest is for commands; a twin campaign is always recorded")
        return self

    def trigger(self) -> Cron | Every:
        """The entry's occurrences."""
        if self.cron is not None:
            return Cron.parse(self.cron)
        seconds = parse_duration(self.every)
        assert seconds is not None  # checked by the validator
        if self.anchor is None:
            return Every(seconds)
        return Every(seconds, as_utc(self.anchor))


class Schedule(_Doc):
    """A schedule document: the campaigns and when each runs (times in UTC)."""

    campaigns: list[ScheduledCampaign] = Field(min_length=1, max_length=1_000)

    @field_validator("campaigns")
    @classmethod
    def _unique(cls, value: list[ScheduledCampaign]) -> list[ScheduledCampaign]:
        seen: set[str] = set()
        for c in value:
            if c.name in seen:
                raise ValueError(f"two campaigns are named {c.name!r}")
            seen.add(c.name)
        return value


def load_schedule(path: str | Path) -> Schedule:
    """Read and check a schedule, and every twin campaign file it names (each refusal one
    located line)."""
    from twin.campaign.generate import load_campaign

    sched = load_model(Schedule, path)
    base = Path(path).resolve().parent
    for c in sched.campaigns:
        if c.campaign is not None and c.enabled:
            load_campaign(base / c.campaign)
    return sched


# -- state --------------------------------------------------------------------------------------


def stamp(t: datetime) -> str:
    """An occurrence as a folder name and state key: ``20260101T020000Z``."""
    return as_utc(t).strftime("%Y%m%dT%H%M%SZ")


def iso(t: datetime) -> str:
    return as_utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass
class EntryState:
    """Where one entry stands: occurrences at or before ``cursor`` are handled; ``running``
    is an occurrence started and not finished (a scheduler was stopped during it); ``last``
    is the record of its latest finished run."""

    cursor: datetime
    running: datetime | None = None
    last: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": iso(self.cursor),
            "running": None if self.running is None else iso(self.running),
            "last": self.last,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EntryState:
        run = d.get("running")
        return cls(parse_iso(d["cursor"]), None if run is None else parse_iso(run), d.get("last"))


@dataclass
class State:
    """The scheduler's memory: ``STATE`` (one small JSON file, rewritten atomically) decides
    what runs; ``STATE-runs.jsonl`` beside it is the history, one record per line, appended
    after the state that it describes is saved (so a crash can lose a history line, never
    a decision)."""

    path: Path
    entries: dict[str, EntryState] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return runs_log(self.path)

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(read_text(path, "document"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            entries = {k: EntryState.from_json(v) for k, v in data["entries"].items()}
            return cls(path, entries)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"not a schedule state file: {exc}", source=str(path)) from None

    def record(self, run: dict[str, Any]) -> None:
        """A run record for the history (and the entry's ``last`` when it ran)."""
        if "started" in run:
            self.entries[run["entry"]].last = run
        self.pending.append(run)

    def save(self) -> None:
        doc = {
            "version": STATE_VERSION,
            "entries": {k: v.to_json() for k, v in self.entries.items()},
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(doc, allow_nan=False) + "\n", encoding="utf-8")
        tmp.replace(self.path)
        if self.pending:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(r, allow_nan=False) + "\n" for r in self.pending)
            self.pending.clear()


def runs_log(state_file: Path) -> Path:
    """The history file beside a state file."""
    return state_file.with_name(state_file.stem + "-runs.jsonl")


@contextlib.contextmanager
def locked(state_file: Path) -> Iterator[None]:
    """Hold ``STATE.lock`` so two schedulers never share one state (the second is refused)."""
    lock = state_file.with_name(state_file.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                "another scheduler is running on this state file", source=str(state_file)
            ) from None
        yield
    finally:
        os.close(fd)


# -- running one occurrence ---------------------------------------------------------------------


class Stopped(TwinError):
    """The scheduler was asked to stop during a run; the occurrence stays ``running``."""


@dataclass
class Due:
    """An occurrence to run now, and what the decision left behind."""

    entry: ScheduledCampaign
    occurrence: datetime
    skipped: tuple[datetime, datetime] | None = None  # missed occurrences not run
    abandoned: datetime | None = None  # an interrupted occurrence overtaken by a newer one
    resumed: bool = False


Runner = Callable[[ScheduledCampaign, datetime, Path], dict[str, Any]]
"""Runs one occurrence into its folder and returns what to record (``summary`` figures);
raises to mark it failed."""


class Scheduler:
    """Runs a schedule's due occurrences, remembering them in ``state_file``.

    ``clock`` returns the current UTC time and ``sleep(seconds)`` waits (default: the stop
    event, so :meth:`stop` and SIGTERM wake it). ``runner`` runs one occurrence (default:
    :meth:`run_occurrence`: a twin campaign through :func:`twin.campaign.run_campaign`, or a
    command); tests pass their own."""

    def __init__(
        self,
        schedule: Schedule,
        spec_path: str | Path,
        out: str | Path,
        *,
        store: Store | None = None,
        state_file: str | Path | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        runner: Runner | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.schedule = schedule
        self.spec_dir = Path(spec_path).resolve().parent
        self.out = output_dir(out)
        self.store = store
        self.state_file = Path(state_file) if state_file else self.out / "schedule-state.json"
        self.clock = clock or (lambda: datetime.now(UTC))
        self.stop_event = threading.Event()
        self.sleep = sleep or (lambda s: self.stop_event.wait(s) and None)
        self.runner = runner or self.run_occurrence
        self.log = log or (lambda _: None)
        self.state = State.load(self.state_file)
        self.triggers = {c.name: c.trigger() for c in schedule.campaigns}
        self.executed = 0
        self._registered = False  # entries seen for the first time, not yet saved

    def stop(self) -> None:
        self.stop_event.set()

    # -- deciding -------------------------------------------------------------------------------

    def due(self, now: datetime) -> list[Due]:
        """What runs at ``now``, oldest occurrence first; registers new entries (their cursor
        is the start of this minute, so an occurrence due this minute runs)."""
        found: list[Due] = []
        for c in self.schedule.campaigns:
            if not c.enabled:
                continue
            st = self.state.entries.get(c.name)
            if st is None:
                start = as_utc(now).replace(second=0, microsecond=0)
                st = self.state.entries[c.name] = EntryState(start - timedelta(microseconds=1))
                self._registered = True
            trig = self.triggers[c.name]
            latest = trig.latest_at_or_before(now)
            if latest is None or latest <= st.cursor:
                continue
            if st.running is not None and latest == st.running:
                found.append(Due(c, st.running, resumed=True))
                continue
            # missed: occurrences after the cursor (or the interrupted one) before the latest
            first = trig.next_after(st.running or st.cursor)
            skipped = None
            if first is not None and first < latest:
                before = trig.latest_at_or_before(latest - timedelta(seconds=1))
                skipped = (first, before or first)
            due = Due(c, latest, skipped, st.running)
            if c.catch_up == "none" and (as_utc(now) - latest).total_seconds() > c.grace:
                due.skipped = (first or latest, latest)
                self._skip_only(due)
                continue
            found.append(due)
        return sorted(found, key=lambda d: d.occurrence)

    def _skip_only(self, d: Due) -> None:
        """catch_up: none, and the latest is too late: record the window, run nothing."""
        st = self.state.entries[d.entry.name]
        self._record_misses(d)
        st.cursor, st.running = d.occurrence, None
        self.state.save()

    def _record_misses(self, d: Due) -> None:
        if d.abandoned is not None:
            self.state.record(
                {"entry": d.entry.name, "occurrence": iso(d.abandoned), "status": "abandoned"}
            )
            self.log(f"{d.entry.name}: {stamp(d.abandoned)} abandoned (a newer one is due)")
        if d.skipped is not None:
            a, b = d.skipped
            self.state.record(
                {
                    "entry": d.entry.name,
                    "status": "skipped",
                    "skipped_from": iso(a),
                    "skipped_to": iso(b),
                }
            )
            self.log(f"{d.entry.name}: missed occurrences {stamp(a)}..{stamp(b)} skipped")

    # -- running --------------------------------------------------------------------------------

    def run_due(self, now: datetime, max_runs: int | None = None) -> int:
        """Run what is due at ``now`` (in order), each recorded before and after; returns how
        many ran. Stops early on :meth:`stop` or when ``max_runs`` have run in total."""
        ran = 0
        for d in self.due(now):
            if self.stop_event.is_set() or (max_runs is not None and self.executed >= max_runs):
                break
            st = self.state.entries[d.entry.name]
            self._record_misses(d)
            st.running = d.occurrence
            self.state.save()
            folder = self.out / d.entry.name / stamp(d.occurrence)
            started = self.clock()
            record: dict[str, Any] = {
                "entry": d.entry.name,
                "occurrence": iso(d.occurrence),
                "started": iso(started),
                "out": str(folder),
                "resumed": d.resumed,
            }
            self.log(f"{d.entry.name}: {stamp(d.occurrence)} starts -> {folder}")
            try:
                output_dir(folder)
                record["summary"] = self.runner(d.entry, d.occurrence, folder)
                record["status"] = "done"
            except Stopped:
                self.log(f"{d.entry.name}: {stamp(d.occurrence)} stopped; resumes next start")
                raise
            except Exception as exc:  # a failed run is recorded, the schedule goes on
                record["status"] = "failed"
                record["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            record["finished"] = iso(self.clock())
            st.cursor, st.running = d.occurrence, None
            self.state.record(record)
            self.state.save()
            self.executed += 1
            ran += 1
            self.log(f"{d.entry.name}: {stamp(d.occurrence)} {record['status']}")
        if self._registered:
            self.state.save()
            self._registered = False
        return ran

    def next_wake(self, now: datetime) -> datetime | None:
        """The earliest next occurrence of any enabled entry after ``now``."""
        times = [
            t
            for c in self.schedule.campaigns
            if c.enabled and (t := self.triggers[c.name].next_after(now)) is not None
        ]
        return min(times, default=None)

    def run(
        self,
        *,
        once: bool = False,
        until: datetime | None = None,
        max_runs: int | None = None,
        max_wait: float = 60.0,
    ) -> int:
        """Run until stopped (or ``until``, or ``max_runs`` runs, or one pass with ``once``);
        returns how many occurrences ran. Never waits more than ``max_wait`` seconds at once,
        so a changed clock or ``until`` is noticed."""
        with locked(self.state_file):
            try:
                while not self.stop_event.is_set():
                    now = self.clock()
                    if until is not None and now >= as_utc(until):
                        break
                    self.run_due(now, max_runs)
                    if once or (max_runs is not None and self.executed >= max_runs):
                        break
                    wake = self.next_wake(self.clock())
                    if until is not None:
                        wake = min(wake, as_utc(until)) if wake else as_utc(until)
                    wait = max_wait if wake is None else (wake - self.clock()).total_seconds()
                    self.sleep(min(max(wait, 0.0), max_wait))
            except Stopped:
                pass
        return self.executed

    def run_occurrence(
        self, entry: ScheduledCampaign, occurrence: datetime, folder: Path
    ) -> dict[str, Any]:
        """The default runner: a twin campaign (recorded in the database as it runs) or a
        command (its result files ingested when it succeeds)."""
        if entry.campaign is not None:
            return self._run_campaign(entry, folder)
        return self._run_command(entry, occurrence, folder)

    def _run_campaign(self, entry: ScheduledCampaign, folder: Path) -> dict[str, Any]:
        from twin.campaign.generate import load_campaign
        from twin.campaign.report import write_report
        from twin.campaign.run import run_campaign

        assert entry.campaign is not None
        plan = load_campaign(self.spec_dir / entry.campaign)

        def check(done: int, total: int) -> None:
            if self.stop_event.is_set():
                raise Stopped("stopped")

        outcome = run_campaign(
            plan, folder, workers=entry.workers, store=self.store, on_progress=check
        )
        write_report(outcome, plan)
        s = outcome.summary
        return {
            "kind": "campaign",
            "campaign": s["campaign"],
            "key": s["key"],
            "topology": s["topology"],
            "runs": s["runs"],
            "runs_breaching_slo": s["runs_breaching_slo"],
            "failure_modes": len(outcome.modes),
            "executed": outcome.executed,
            "reused": outcome.reused,
        }

    def _run_command(
        self, entry: ScheduledCampaign, occurrence: datetime, folder: Path
    ) -> dict[str, Any]:
        assert entry.command is not None
        values = {
            "out": str(folder),
            "occurrence": stamp(occurrence),
            "db": "" if self.store is None else self.store.url,
            "spec_dir": str(self.spec_dir),
        }
        argv = [a.format(**values) for a in entry.command]
        log_path = folder / "command.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=self.spec_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            deadline = time.monotonic() + entry.timeout
            while proc.poll() is None:
                if self.stop_event.is_set() or time.monotonic() > deadline:
                    _end(proc)
                    if self.stop_event.is_set():
                        raise Stopped("stopped")
                    raise TwinError(f"command ran past its timeout of {entry.timeout:g} s")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.2)
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            raise TwinError(f"command exited {proc.returncode}: {tail[0][:300]}")
        summary: dict[str, Any] = {"kind": "command", "exit_code": 0}
        files = sorted(glob.glob(str(folder / entry.results)))
        if entry.ingest != "none" and self.store is not None:
            summary["ingested"] = self._ingest(entry.ingest, [Path(f) for f in files])
        return summary

    def _ingest(self, kind: str, files: list[Path]) -> dict[str, int]:
        assert self.store is not None
        if kind == "chaos":
            r = self.store.ingest_files(files)
            return {"files": len(files), "added": r.added, "unchanged": r.unchanged}
        from twin.safeload import loads_json, read_text
        from twin.store.documents import add_calibration_evidence

        rows: list[dict[str, Any]] = []
        for f in files:
            data = loads_json(read_text(f, "telemetry"), str(f), "telemetry")
            ev = data.get("evidence") if isinstance(data, dict) else None
            if not isinstance(ev, list):
                raise InputError("expected an object with an 'evidence' list", source=str(f))
            rows += ev
        statuses = add_calibration_evidence(self.store, rows)
        return {"files": len(files), "added": statuses.count("created")}


def _end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, SIGKILL what is left after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


def read_state(path: str | Path, limit: int = 200) -> dict[str, Any]:
    """A state file as plain data (for reports and the explorer): each entry's cursor, any
    running occurrence and its last run, and the latest ``limit`` history records, newest
    first (read from the end of the history file, so a long history costs nothing)."""
    p = Path(path)
    st = State.load(p)
    runs: list[dict[str, Any]] = []
    log = runs_log(p)
    if log.exists():
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - MAX_HISTORY_BYTES))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
        if size > MAX_HISTORY_BYTES:
            lines = lines[1:]  # the first line read may be cut
        for line in reversed(lines):
            if len(runs) >= limit:
                break
            with contextlib.suppress(json.JSONDecodeError):
                runs.append(json.loads(line))
    return {"entries": {k: v.to_json() for k, v in st.entries.items()}, "runs": runs}


__all__ = [
    "MAX_HISTORY_BYTES",
    "PLACEHOLDERS",
    "CronError",
    "Due",
    "EntryState",
    "Schedule",
    "ScheduledCampaign",
    "Scheduler",
    "State",
    "Stopped",
    "load_schedule",
    "read_state",
    "runs_log",
    "stamp",
]
