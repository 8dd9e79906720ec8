"""What the tests share: where the repository and the public datasets are, running the
``twin`` command line in a child process, and a check that the suite leaves the repository as
it found it (tests write into temporary folders, never into the checkout).

Test modules import the constants and helpers by name (``from conftest import ROOT``): pytest
puts this folder on ``sys.path``, as it does for ``stats_helpers``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root folder."""

SHARED_DATA = Path(os.environ.get("TWIN_PUBLIC_DATA", ROOT.parent / "shared" / "data"))
"""The public datasets (traces, metrics, topologies, schemas): ``$TWIN_PUBLIC_DATA``, or the
``shared/data`` folder beside the checkout, where CI lays them."""

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the public datasets are not at {SHARED_DATA}"
)
"""Marks a test that reads the public datasets; it is skipped only when they are absent."""


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python process: this checkout first on its path, so the
    child runs the code under test even when an installed copy lives elsewhere."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
        **extra,
    }


def run_twin(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``twin ARGS`` in a child process (``python -m twin.cli``), output captured as text; the
    exit code is the caller's to check."""
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=timeout,
        env=env if env is not None else child_env(),
    )


# -- the suite leaves the repository as it found it --------------------------------------------

_CACHES = (
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".import_linter_cache",
    "__pycache__",
)
"""Tool caches that may appear anywhere during a run; every other new file is a test's fault."""
_BEFORE = pytest.StashKey[set[str] | None]()
_WRITTEN = pytest.StashKey[list[str]]()


def _repository_files() -> set[str] | None:
    """Untracked and ignored paths in the checkout, or None when it is not a git checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    r = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        return None
    found = set()
    for line in r.stdout.splitlines():
        status, path = line[:2], line[3:]
        if status in ("??", "!!") and not any(part in _CACHES for part in Path(path).parts):
            found.add(path)
    return found


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # a pytest-xdist worker: the controller checks


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_worker(session.config):
        session.config.stash[_BEFORE] = _repository_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_worker(session.config):
        return
    before = session.config.stash.get(_BEFORE, None)
    after = _repository_files()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        session.config.stash[_WRITTEN] = new
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    new = terminalreporter.config.stash.get(_WRITTEN, None)
    if new:
        terminalreporter.section("files written into the repository", sep="=", red=True)
        terminalreporter.line("Tests must write into tmp_path; these appeared during the run:")
        for path in new:
            terminalreporter.line(f"  {path}")
