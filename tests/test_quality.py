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
