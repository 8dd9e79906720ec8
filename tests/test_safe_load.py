"""Every YAML and JSON input is read with bounded work: hostile documents and telemetry are
refused with one line naming the file, the limit and how to raise it, and exit 2.

The command-line cases run in a child process that reports its own peak RSS (``VmHWM`` of its
own address space, written at exit), so a refused alias bomb is shown to cost little memory,
not only to fail eventually. (``ru_maxrss`` of a child would not do: Linux carries the parent's
high-water mark across fork and exec, and a pytest worker with the learning stack loaded holds
over a gigabyte.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, child_env

from twin.errors import InputError
from twin.io import load_model, read_yaml
from twin.safeload import line_marks, load_yaml, load_yaml_all, loads_json, read_json
from twin.scenario import Scenario
from twin.topology import Topology

TOPOLOGY = (ROOT / "topologies" / "online-boutique.yaml").read_text(encoding="utf-8")
SCENARIO = (ROOT / "topologies" / "online-boutique.scenario.yaml").read_text(encoding="utf-8")
POLICY = (ROOT / "topologies" / "online-boutique.policy.yaml").read_text(encoding="utf-8")

BOMB = 'lol0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
)
"""A "billion laughs": 9**10 (3.5 billion) values once its aliases are expanded."""

PEAK_RSS_MB = 500
SECONDS = 10.0

PEAK_REPORTER = """
import atexit, runpy, sys
peak_file = sys.argv.pop(1)
def report_peak():
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(peak_file, "w") as out:
        out.write(str(kib))
atexit.register(report_peak)
sys.argv[0] = "twin"
runpy.run_module("twin.cli", run_name="__main__", alter_sys=True)
"""
"""Runs ``python -m twin.cli ARGS`` and writes the process's own peak RSS (KiB) at exit."""


def twin_bounded(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    """``twin ARGS`` in a child: (exit code, stderr, peak RSS in MB of that child alone)."""
    out, err, peak = cwd / "stdout.txt", cwd / "stderr.txt", cwd / "peak-kib.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "-c", PEAK_REPORTER, str(peak), *args],
            stdout=o,
            stderr=e,
            cwd=cwd,
            env=env if env is not None else child_env(),
        )
    deadline = time.monotonic() + 60
    while True:
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise AssertionError(f"twin {' '.join(args)} did not finish in 60 s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_mb = int(peak.read_text()) / 1024 if peak.exists() else float("inf")
    return proc.returncode, err.read_text(), rss_mb


def refused_in_one_line(code: int, stderr: str) -> str:
    assert code == 2, (code, stderr)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("twin: error: "), lines[0]
    return lines[0]


# -- alias bombs -------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_in_one_line_quickly_and_with_little_memory(
    tmp_path: Path,
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    start = time.monotonic()
    code, err, rss = twin_bounded("simulate", str(bomb), "--out", "out", cwd=tmp_path)
    seconds = time.monotonic() - start
    line = refused_in_one_line(code, err)
    assert f"{bomb}:" in line and "TWIN_MAX_NODES" in line, line
    assert rss < PEAK_RSS_MB, f"peak RSS {rss:.0f} MB"
    assert seconds < SECONDS, f"{seconds:.1f} s"


@pytest.mark.parametrize("role", ["topology", "scenario", "policy"])
def test_an_alias_bomb_in_front_of_a_document_is_refused_with_little_memory(
    tmp_path: Path, role: str
) -> None:
    docs = {"topology": TOPOLOGY, "scenario": SCENARIO, "policy": POLICY}
    paths = {}
    for name, text in docs.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text((BOMB if name == role else "") + text)
        paths[name] = str(p)
    code, err, rss = twin_bounded(
        "simulate",
        paths["topology"],
        "--scenario",
        paths["scenario"],
        "--policy",
        paths["policy"],
        "--out",
        "out",
        cwd=tmp_path,
    )
    line = refused_in_one_line(code, err)
    assert paths[role] in line and "TWIN_MAX_NODES" in line, line
    assert rss < PEAK_RSS_MB, f"peak RSS {rss:.0f} MB"


def test_a_yaml_alias_that_contains_itself_is_refused() -> None:
    with pytest.raises(InputError, match="refers to a node that contains it"):
        load_yaml("a: &x [1, *x]\n", "loop.yaml")


def test_too_many_aliases_are_refused_naming_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_MAX_ALIASES", "3")
    text = "a: &a 1\nb: [*a, *a, *a, *a]\n"
    with pytest.raises(InputError, match="TWIN_MAX_ALIASES"):
        load_yaml(text, "many.yaml")
    monkeypatch.setenv("TWIN_MAX_ALIASES", "4")
    assert load_yaml(text, "many.yaml") == {"a": 1, "b": [1, 1, 1, 1]}


def test_line_numbers_are_found_without_expanding_aliases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWIN_MAX_NODES", str(10**12))
    monkeypatch.setenv("TWIN_MAX_ALIASES", str(10**6))
    start = time.monotonic()
    marks = line_marks(BOMB)
    assert time.monotonic() - start < 2.0
    assert marks[("lol9",)] == 10
    assert len(marks) < 200  # one entry per node of the text, not per expanded value


# -- nesting -----------------------------------------------------------------------------------

DEEP = {"list": "[" * 100_000, "mapping": "{a: " * 5_000}
DEEP_JSON = {"list": "[" * 100_000, "mapping": '{"a": ' * 5_000}


@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deep_nesting_in_a_yaml_document_is_refused_in_one_line(tmp_path: Path, shape: str) -> None:
    doc = tmp_path / "deep.yaml"
    doc.write_text(DEEP[shape])
    code, err, rss = twin_bounded("check", str(doc), cwd=tmp_path)
    line = refused_in_one_line(code, err)
    assert f"{doc}:1: nested too deeply" in line and "TWIN_MAX_NESTING" in line, line
    assert rss < PEAK_RSS_MB


@pytest.mark.parametrize("shape", sorted(DEEP_JSON))
@pytest.mark.parametrize(
    "surface",
    [
        ("calibrate", "--traces", "{}", "--out", "out"),
        ("calibrate", "--metrics", "{}", "--out", "out"),
        ("ingest", "{}", "--db", "chaos.db"),
        ("simulate", "{}", "--out", "out"),
    ],
    ids=["trace", "metrics-dump", "chaos-json", "json-document"],
)
def test_deep_nesting_in_json_is_refused_in_one_line(
    tmp_path: Path, shape: str, surface: tuple[str, ...]
) -> None:
    f = tmp_path / "deep.json"
    f.write_text(DEEP_JSON[shape])
    args = [a.replace("{}", str(f)) for a in surface]
    code, err, rss = twin_bounded(*args, cwd=tmp_path)
    line = refused_in_one_line(code, err)
    assert str(f) in line and "nested too deeply" in line and "TWIN_MAX_NESTING" in line, line
    assert rss < PEAK_RSS_MB


def test_json_nesting_within_the_parser_but_past_the_limit_is_refused() -> None:
    text = "[" * 100 + "]" * 100
    with pytest.raises(InputError, match=r"nested too deeply \(limit 64; raise it with"):
        loads_json(text, "t.json")
    assert loads_json("[" * 60 + "]" * 60, "t.json") is not None


# -- sizes -------------------------------------------------------------------------------------


def test_a_document_larger_than_the_byte_limit_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    doc = tmp_path / "topology.yaml"
    doc.write_text(TOPOLOGY)
    env = child_env(TWIN_MAX_DOCUMENT_BYTES="1000")
    code, err, _ = twin_bounded("check", str(doc), cwd=tmp_path, env=env)
    line = refused_in_one_line(code, err)
    assert line.startswith(f"twin: error: {doc}: file is {len(TOPOLOGY.encode())} bytes"), line
    assert "(limit 1000; raise it with TWIN_MAX_DOCUMENT_BYTES)" in line


def test_a_telemetry_file_larger_than_its_limit_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    trace.write_text('{"resourceSpans": []}' + " " * 200)
    env = child_env(TWIN_MAX_TELEMETRY_BYTES="100")
    code, err, _ = twin_bounded(
        "calibrate", "--traces", str(trace), "--out", "out", cwd=tmp_path, env=env
    )
    line = refused_in_one_line(code, err)
    assert str(trace) in line and "TWIN_MAX_TELEMETRY_BYTES" in line, line


def test_a_limit_that_is_not_a_positive_integer_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWIN_MAX_NESTING", "deep")
    with pytest.raises(InputError, match="TWIN_MAX_NESTING='deep': expected a positive integer"):
        load_yaml("a: 1\n", "x.yaml")


def test_too_many_values_are_refused_even_without_aliases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWIN_MAX_NODES", "10")
    with pytest.raises(InputError, match="too many values"):
        load_yaml("[" + ", ".join(["1"] * 20) + "]", "wide.yaml")
    with pytest.raises(InputError, match="too many values"):
        loads_json("[" + ", ".join(["1"] * 20) + "]", "wide.json")


# -- duplicate keys ----------------------------------------------------------------------------


def _twice(text: str, after: str, line: str) -> str:
    """``text`` with ``line`` inserted right after the first line holding ``after``."""
    lines = text.splitlines(keepends=True)
    i = next(i for i, ln in enumerate(lines) if after in ln)
    return "".join([*lines[: i + 1], line, *lines[i + 1 :]])


TINY = """\
name: tiny
services:
  a:
    workers: 2
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        calls: [{to: b}]
  b:
    operations:
      default:
        service_time: 0.01
network:
  links:
    "a->b": {latency: 0.001}
workload:
  - {entry: a, rate: 5}
"""


@pytest.mark.parametrize(
    ("case", "text", "first", "second", "where"),
    [
        ("workers", _twice(TINY, "workers: 2", "    workers: 3\n"), 4, 5, "services.a"),
        (
            "service",
            TINY.replace("network:", "  a:\n    workers: 1\nnetwork:"),
            3,
            13,
            "services",
        ),
        ("edge", _twice(TINY, '"a->b"', '    "a->b": {latency: 0.002}\n'), 15, 16, "network.links"),
        ("duration", "duration: 30\nseed: 1\nduration: 60\n", 1, 3, None),
    ],
    ids=["workers", "service", "edge", "duration"],
)
def test_a_key_given_twice_is_refused_naming_both_lines(
    tmp_path: Path, case: str, text: str, first: int, second: int, where: str | None
) -> None:
    doc = tmp_path / f"{case}.yaml"
    doc.write_text(text)
    with pytest.raises(InputError) as info:
        read_yaml(doc)
    key = {"service": "a", "edge": "a->b"}.get(case, case)
    head = f"{doc}:{second}: " + (f"{where}: " if where else "")
    assert str(info.value) == f"{head}duplicate key {key!r} (first at line {first})"


def test_a_duplicate_key_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    doc = tmp_path / "tiny.yaml"
    doc.write_text(_twice(TINY, "workers: 2", "    workers: 3\n"))
    code, err, _ = twin_bounded("check", str(doc), cwd=tmp_path)
    line = refused_in_one_line(code, err)
    assert line == f"twin: error: {doc}:5: services.a: duplicate key 'workers' (first at line 4)"


def test_yaml_merge_keys_are_not_taken_for_duplicates() -> None:
    data = load_yaml("base: &b {x: 1, y: 2}\nthis:\n  <<: *b\n  y: 3\n", "merge.yaml")
    assert data["this"] == {"x": 1, "y": 3}


# -- numbers -----------------------------------------------------------------------------------


def test_numbers_with_an_exponent_are_floats_as_in_yaml_1_2() -> None:
    data = load_yaml("a: 5e-3\nb: 1e6\nc: -2.5E+2\nd: .5\ne: '5e-3'\nf: 7\n", "n.yaml")
    assert data == {"a": 0.005, "b": 1e6, "c": -250.0, "d": 0.5, "e": "5e-3", "f": 7}
    assert isinstance(data["a"], float) and isinstance(data["f"], int)


def test_a_document_may_write_a_mean_as_5e_3(tmp_path: Path) -> None:
    doc = tmp_path / "tiny.yaml"
    doc.write_text(TINY.replace("mean: 0.01", "mean: 5e-3"))
    topo = load_model(Topology, doc)
    dist = topo.services["a"].operations["default"].service_time
    assert getattr(dist, "mean", None) == 0.005


def test_yaml_1_1_booleans_are_kept() -> None:
    assert load_yaml("a: yes\nb: off\nc: true\n", "b.yaml") == {"a": True, "b": False, "c": True}


def test_bundled_documents_read_exactly_as_before() -> None:
    import yaml

    for path in sorted((ROOT / "topologies").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert load_yaml(text, str(path)) == yaml.safe_load(text), path


# -- other surfaces ----------------------------------------------------------------------------


def test_an_uploaded_alias_bomb_is_refused_in_one_line() -> None:
    from explorer.catalog import parse_text

    with pytest.raises(InputError, match=r"^upload\.yaml:\d+: too many values.*TWIN_MAX_NODES"):
        parse_text(Scenario, BOMB, "upload.yaml")


def test_an_enforcer_override_alias_bomb_is_refused_naming_the_file(tmp_path: Path) -> None:
    from agents.runtime import read_override

    override = tmp_path / "override.yaml"
    override.write_text(BOMB)
    with pytest.raises(InputError, match=rf"^{override}:\d+: too many values"):
        read_override(override, ("frontend",))


def test_multi_document_yaml_is_bounded_and_checked_too() -> None:
    assert load_yaml_all("a: 1\n---\nb: 2\n", "two.yaml") == [{"a": 1}, {"b": 2}]
    with pytest.raises(InputError, match="duplicate key 'b'"):
        load_yaml_all("a: 1\n---\nb: 2\nb: 3\n", "two.yaml")
    with pytest.raises(InputError, match="TWIN_MAX_NODES"):
        load_yaml_all("a: 1\n---\n" + BOMB, "two.yaml")


def test_invalid_json_names_its_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(InputError, match=rf"^{f}:4: invalid JSON"):
        read_json(f)
