"""The command line has one app and one error handler, and every command honours it.

Bad input to any command ends with one line on stderr and exit 2; with the global
``--traceback`` the same input raises the error itself, so the curious see where it came
from. No module outside ``twin/cli`` builds a typer app or prints the error line itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.errors import InputError, TwinError

ROOT = Path(__file__).resolve().parents[1]


def bad_invocations(tmp: Path) -> dict[str, list[str]]:
    """One quick, bad invocation per command: each fails on input before any real work."""
    missing = str(tmp / "missing.yaml")
    return {
        "simulate": ["simulate", missing],
        "check": ["check", missing],
        "generate": ["generate", "--services", "3", "--out", str(tmp / "no-dir" / "t.yaml")],
        "risk": ["risk", "--history", missing, "--results", str(tmp), "--horizon", "soon"],
        "calibrate": ["calibrate", "--out", str(tmp / "cal"), "--demand", "guess"],
        "campaign": ["campaign", missing, "--no-db"],
        "ingest": ["ingest", missing, "--db", str(tmp / "t.db")],
        "modes": ["modes", "--db", "nosuchdialect://nowhere"],
        "availability": ["availability", missing],
        "evaluate": ["evaluate", str(tmp / "no-policy"), "--out", str(tmp / "ev")],
        "train": ["train", "--out", str(tmp / "run"), "--algo", "guess"],
        "enforce": ["enforce", missing],
        "export": ["export", str(tmp / "no-policy"), "--out", str(tmp / "ex")],
        "drift": ["drift", missing, "--observed", missing, "--out", str(tmp / "drift")],
        "serve": ["serve", "--db", str(tmp / "t.db"), "--tokens", missing, "--port", "0"],
        "mirror": [
            "mirror",
            *("--production", "nowhere", "--shadow", "127.0.0.1:1", "--share", "0.1"),
            *("--listen", "1", "--out", str(tmp / "m")),
        ],
        "schedule": ["schedule", missing, "--once", "--out", str(tmp / "sched")],
        "watch": [
            "watch",
            *(missing, "--replay", str(tmp), "--format", "nezha", "--out", str(tmp / "w")),
        ],
        "check-change": ["check-change", missing, missing, "--out", str(tmp / "cc")],
        "changes": ["changes", "--db", "nosuchdialect://nowhere"],
        "rollout": ["rollout", missing, "--metrics", missing, "--out", str(tmp / "ro")],
        "replay": [
            "replay",
            *(missing, "--data", str(tmp), "--format", "nezha", "--out", str(tmp / "rp")),
        ],
    }


def test_every_registered_command_has_a_bad_invocation_in_this_test(tmp_path: Path) -> None:
    names = {c.name for c in app.registered_commands}
    assert names == set(bad_invocations(tmp_path))


@pytest.mark.parametrize("command", sorted(bad_invocations(Path("/tmp"))))
def test_bad_input_is_one_line_and_exit_2_without_traceback(command: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, bad_invocations(tmp_path)[command])
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("twin: error: "), lines[0]
    assert "Traceback" not in res.output


@pytest.mark.parametrize("command", sorted(bad_invocations(Path("/tmp"))))
def test_bad_input_raises_the_error_itself_with_traceback(command: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["--traceback", *bad_invocations(tmp_path)[command]])
    assert isinstance(res.exception, InputError), (res.exit_code, res.output, res.exception)
    assert res.stderr == ""


def test_the_console_script_prints_the_traceback_when_asked(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "twin.cli", "--traceback", "check", str(tmp_path / "x.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("twin.errors.InputError: ")


def test_a_refusal_on_the_merits_exits_3_with_its_own_label() -> None:
    from agents.export.build import ExportRefused

    assert (TwinError.exit_code, TwinError.label) == (2, "error")
    assert (ExportRefused.exit_code, ExportRefused.label) == (3, "refused")


def _python_files() -> list[Path]:
    dirs = ("twin", "agents", "explorer", "experiments", "benchmarks", "testbed")
    files = [p for d in dirs for p in (ROOT / d).rglob("*.py")]
    return [*files, ROOT / "app.py"]


def test_no_module_outside_the_cli_package_builds_a_typer_app_or_handles_cli_errors() -> None:
    offenders = []
    for path in _python_files():
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("twin", "cli"):
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (
                node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
            )
        }
        if "typer" in imported or "click" in imported or "twin: error" in text:
            offenders.append(str(rel))
    assert offenders == []


def test_the_database_defaults_to_twin_db_in_the_current_folder_unless_twin_db_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.store import resolve_url

    monkeypatch.delenv("TWIN_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_url(None) == f"sqlite:///{tmp_path.resolve() / 'twin.db'}"
    monkeypatch.setenv("TWIN_DB", str(tmp_path / "elsewhere.db"))
    assert resolve_url(None) == f"sqlite:///{tmp_path.resolve() / 'elsewhere.db'}"
    # a database made in the checkout, at its root or in a folder, is ignored by git
    for where in ("twin.db", "experiments/twin.db", "twin.db-journal"):
        r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", where], check=False)
        assert r.returncode == 0, f"{where} is not ignored by git"


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "csv"],
        ["--format", "generic", "--fit", "always"],
        ["--format", "generic", "--seeds", "0"],
        ["--format", "generic", "--anchor", "after"],
        ["--format", "generic"],
    ],
)
def test_replay_bad_invocations_are_one_line_and_exit_2(args: list[str], tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(
        "name: t\nservices: {a: {operations: {op: {service_time: {dist: constant, mean: 0.01}}}}}"
        "\nworkload: [{entry: 'a:op', rate: 1}]\n"
    )
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(
        app,
        [
            "replay",
            str(topo),
            "--data",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "o"),
            *args,
        ],
    )
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("twin: error: ") and res.stderr.count("\n") == 1
    assert not (tmp_path / "o" / "accuracy.json").exists()
