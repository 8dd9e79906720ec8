"""Every known hostile input, through the real command line, bounded in time and memory.

Each case of :data:`hostile_corpus.CASES` (one per variant of each finding: every document an
alias bomb is put in front of, every field ``.inf`` goes into, every bad chaos result...) is
written into a temporary folder and run as ``python -m twin.cli ...`` in its own process
group, killed past 10 s of CPU time (or 60 s of wall time, for a child that blocks) or
500 MB of resident memory. CPU time is the bound because the machine may be shared: a
correct refusal can wait for a core, but it cannot burn 10 s. Then the contract its kind
of input is held to (see the module docstring of ``hostile_corpus``) is checked: one line and
exit 2, the "unstable" verdict, the right figure from telemetry with bad points skipped, or an
enforcer that holds with a reason and stays alive. Peak RSS is read from ``wait4``.

The last test, two concurrent ``twin ingest`` into a fresh SQLite database, is kept apart
from the parametrised corpus: it is about concurrency, not about one hostile input.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hostile_corpus import (
    CASES,
    CPU_SECONDS,
    PRESERVED,
    RSS_LIMIT_MB,
    Bounded,
    Case,
    chaos_result,
    child_env,
    run_bounded,
    to_json,
    twin_argv,
)


def one_line_refusal(r: Bounded) -> str | None:
    """None when ``r`` is a refusal: exit 2, exactly one non-empty line on stderr, no
    traceback anywhere; else what is wrong."""
    lines = r.stderr.strip("\n").splitlines()
    if "Traceback" in r.stderr or "Traceback" in r.stdout:
        return f"traceback (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}"
    if r.returncode != 2:
        return f"exit {r.returncode}, expected 2; stderr {r.stderr.strip()[:300]!r}"
    if len(lines) != 1 or not lines[0].strip():
        return f"expected one line on stderr, got {len(lines)}: {r.stderr[:300]!r}"
    return None


def is_unstable_verdict(summary: dict[str, Any]) -> bool:
    """Whether a ``summary.json`` carries the documented verdict (twin.results.Verdict): the
    run stopped because the modelled system is unstable at this load (or its work ran away),
    naming the service that saturated first."""
    verdict = summary.get("verdict")
    return (
        isinstance(verdict, dict)
        and verdict.get("verdict") in ("unstable", "work")
        and isinstance(verdict.get("service"), str)
        and bool(verdict["service"])
    )


def unstable_run(folder: Path, out: str | None, r: Bounded) -> str | None:
    """None when the run stopped as documented: exit 3 (a refusal on the merits, not bad
    input), no traceback, and the verdict in ``summary.json``."""
    if r.returncode != 3 or "Traceback" in r.stderr:
        return f"exit {r.returncode}: {r.stderr.strip()[-300:]!r}"
    path = folder / (out or "out") / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return f"no readable summary.json: {exc}"
    if not is_unstable_verdict(summary):
        return "exit 3 without the verdict in summary.json"
    return None


def strict_json(line: str) -> Any:
    """Parse one line as strict JSON: ``NaN``/``Infinity`` are refused, as RFC 8259 does."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(line, parse_constant=refuse)


def enforcer_held(case: Case, r: Bounded) -> str | None:
    """None when the enforcer stayed alive (exit 0, no traceback), printed only strict JSON
    decisions, held the ``case.held`` decisions with a reason and not the ``case.not_held``."""
    if r.returncode != 0 or "Traceback" in r.stderr:
        return f"enforcer exited {r.returncode}: {r.stderr.strip()[-300:]!r}"
    decisions: dict[int, dict[str, Any]] = {}
    for line in r.stdout.splitlines():
        try:
            rec = strict_json(line)
        except ValueError as exc:
            return f"output line is not strict JSON ({exc}): {line[:200]!r}"
        decisions[int(rec["decision"])] = rec
    for n in case.held:
        rec = decisions.get(n)
        if rec is None:
            return f"no decision #{n} (got {sorted(decisions)})"
        if not rec.get("held") or not str(rec.get("reason") or "").strip():
            return f"decision #{n} not held with a reason: {json.dumps(rec)[:300]}"
    for n in case.not_held:
        rec = decisions.get(n)
        if rec is None:
            return f"no decision #{n} (got {sorted(decisions)})"
        if rec.get("held"):
            return f"decision #{n} held: {rec.get('reason')!r}"
    return None


def verdict(case: Case, folder: Path, r: Bounded) -> str | None:
    """None when ``r`` meets the case's contract; else what is wrong."""
    if case.expect == "refused":
        return one_line_refusal(r)
    if case.expect == "refused_or_unstable":
        refused = one_line_refusal(r)
        if refused is None:
            return None
        unstable = unstable_run(folder, case.out, r)
        return None if unstable is None else f"not refused ({refused}); not unstable ({unstable})"
    if case.expect == "holds":
        return enforcer_held(case, r)
    if "Traceback" in r.stderr:
        return f"traceback: {r.stderr.strip().splitlines()[-1:]}"
    if case.expect == "refused_or_accepted" and r.returncode == 2:
        return one_line_refusal(r)
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()[-300:]!r}"
    return case.check(folder, r) if case.check is not None else None


def left_behind(case: Case, folder: Path, before: dict[str, bytes], r: Bounded) -> str | None:
    """None when a refusal left no output folder and every preserved file unchanged."""
    if r.returncode == 0:
        return None
    if case.expect == "refused_or_unstable" and r.returncode == 3:
        # the documented stop: summary.json with the verdict, and nothing else
        found = sorted(p.name for p in (folder / (case.out or "out")).iterdir())
        return None if found == ["summary.json"] else f"the stopped run left {found}"
    if case.out is not None and (folder / case.out).exists():
        found = sorted(p.name for p in (folder / case.out).iterdir())
        return f"refused, yet {case.out}/ was left behind with {found}"
    for name, data in before.items():
        if (folder / name).read_bytes() != data:
            return f"refused, yet {name} was changed"
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_in_bounds(case: Case, tmp_path: Path) -> None:
    argv = case.write(tmp_path)
    before = {n: (tmp_path / n).read_bytes() for n in PRESERVED if (tmp_path / n).exists()}
    r = run_bounded(twin_argv(*argv), cwd=tmp_path, env=child_env(tmp_path))
    problems = [
        f"killed: {r.killed}" if r.killed else None,
        verdict(case, tmp_path, r) if not r.killed else None,
        left_behind(case, tmp_path, before, r) if not r.killed else None,
        f"peak RSS {r.peak_rss_mb:.0f} MB over {RSS_LIMIT_MB:g} MB"
        if r.peak_rss_mb > RSS_LIMIT_MB
        else None,
        f"CPU {r.cpu_seconds:.1f} s over {CPU_SECONDS:g} s"
        if r.cpu_seconds > CPU_SECONDS
        else None,
    ]
    found = [p for p in problems if p]
    assert not found, f"{case.id} ({case.row}): " + "; ".join(found)


def test_the_corpus_assertions_can_fail() -> None:
    ok = Bounded(2, "", "twin: error: x.yaml:3: rate: must be finite\n", 80.0, 1.0, None)
    assert one_line_refusal(ok) is None
    two = Bounded(2, "", "twin: error: a\nb\n", 80.0, 1.0, None)
    crash = Bounded(
        1, "", "Traceback (most recent call last):\n  ...\nRecursionError\n", 80, 1, None
    )
    accepted = Bounded(0, "ok", "", 80.0, 1.0, None)
    assert one_line_refusal(two) and one_line_refusal(crash) and one_line_refusal(accepted)
    assert is_unstable_verdict({"verdict": {"verdict": "unstable", "service": "b"}})
    assert not is_unstable_verdict({"verdict": {"verdict": "unstable", "service": None}})
    assert not is_unstable_verdict({"requests": 10, "verdict": "unstable"})
    with pytest.raises(ValueError):
        strict_json('{"timeout": Infinity}')


# -- concurrency: kept apart from the corpus ------------------------------------------------------


ROUNDS = 3
RECORDS = 20


def test_two_concurrent_ingests_into_a_fresh_sqlite_store_keep_every_record_once(
    tmp_path: Path,
) -> None:
    """Two ``twin ingest`` at once into a database neither has created: both succeed and
    every record is stored exactly once (a few rounds here; the store's own tests do more)."""
    env = child_env(tmp_path)
    for rnd in range(ROUNDS):
        folder = tmp_path / f"round{rnd}"
        folder.mkdir()
        files = []
        for w in range(2):
            doc = [{**chaos_result(), "test_id": f"w{w}-r{i}"} for i in range(RECORDS)]
            path = folder / f"w{w}.json"
            path.write_text(to_json(doc), encoding="utf-8")
            files.append(path)
        db = folder / "twin.db"
        results: list[subprocess.CompletedProcess[str]] = []

        def ingest(
            path: Path, db: Path = db, results: list[subprocess.CompletedProcess[str]] = results
        ) -> None:
            results.append(
                subprocess.run(
                    [sys.executable, "-m", "twin.cli", "ingest", str(path), "--db", str(db)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=60,
                    check=False,
                )
            )

        threads = [threading.Thread(target=ingest, args=(f,)) for f in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = [r.stderr.strip()[-300:] for r in results if r.returncode != 0]
        con = sqlite3.connect(db)
        try:
            stored = con.execute("select count(*) from chaos_results").fetchone()[0]
        finally:
            con.close()
        assert not failed and stored == 2 * RECORDS, (
            f"round {rnd}: {stored} of {2 * RECORDS} stored; failures {failed}"
        )
