"""The project's own promises about its code: lint, types, layering, generated docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_finds_no_problems() -> None:
    r = _run("ruff", "check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_is_clean() -> None:
    r = _run(sys.executable, "-m", "mypy")
    assert r.returncode == 0, r.stdout[-3000:]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_lower_layers_never_import_higher_ones() -> None:
    r = _run("lint-imports")
    assert r.returncode == 0, r.stdout[-3000:]


def test_reference_docs_match_the_models() -> None:
    from twin.refdoc import render

    assert (ROOT / "docs" / "reference.md").read_text(encoding="utf-8") == render(), (
        "docs/reference.md is stale: run `python -m twin.refdoc > docs/reference.md`"
    )


CARELESS = """\
from pathlib import Path


def test_one_that_writes_into_the_checkout() -> None:
    out = Path(__file__).resolve().parents[1] / "out"
    out.mkdir()
    (out / "left.txt").write_text("x")
"""
TIDY = """\
from pathlib import Path


def test_one_that_writes_into_its_tmp_path(tmp_path: Path) -> None:
    (tmp_path / "fine.txt").write_text("x")
"""


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_the_suite_fails_when_a_test_leaves_a_file_in_the_repository(tmp_path: Path) -> None:
    """The check in conftest.py, on a throwaway checkout holding it: a test that writes into
    the checkout passes, yet the run fails and names the file (ignored by git or not); a
    test that writes into its tmp_path leaves the run green."""
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / ".gitignore").write_text("/out/\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    def pytest_run(test: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "tests" / "test_it.py").write_text(test, encoding="utf-8")
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    careless = pytest_run(CARELESS)
    assert careless.returncode == pytest.ExitCode.TESTS_FAILED, careless.stdout
    assert "1 passed" in careless.stdout
    assert "files written into the repository" in careless.stdout
    assert "out/left.txt" in careless.stdout
    tidy = pytest_run(TIDY)
    assert tidy.returncode == pytest.ExitCode.OK, tidy.stdout
    assert "files written into the repository" not in tidy.stdout
