"""A `twin serve` killed with SIGKILL mid-load, then restarted: every acknowledged record
is stored exactly once and no row lacks its raw document (all of a request's rows are in
one transaction). Runs benchmarks/serve_load.py briefly, on SQLite, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, child_env


def _figures(out: str) -> dict[str, str]:
    return {
        k.strip(): v.strip()
        for line in out.splitlines()
        if ":" in line and not line.startswith(("status codes", "load average", "twin serve"))
        for k, v in [line.split(":", 1)]
    }


def test_a_killed_server_loses_nothing_it_acknowledged_and_leaves_no_partial_rows(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "serve_load.py"),
            "--db",
            f"sqlite:///{tmp_path / 'twin.db'}",
            "--rate",
            "60",
            "--duration",
            "6",
            "--clients",
            "20",
            "--workers",
            "1",
            "--kill-after",
            "2.5",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    f = _figures(done.stdout)
    assert f["killed"] == "True"
    acked, rows = int(f["acknowledged"]), int(f["rows"])
    assert acked > 100  # requests were answered before and after the kill
    assert f["lost"] == "0" and f["duplicated"] == "0"
    assert f["rows_without_raw_document"] == "0"
    assert rows == acked + int(f["stored_unanswered"])
