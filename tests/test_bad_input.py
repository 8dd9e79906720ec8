"""Bad input is refused by ``twin simulate`` with one line and exit code 2.

The contract (DESIGN.md, twin/io.py): one line ``file:line: path.in.doc: what was expected``
on stderr, no traceback, exit 2; and a refused run loses nothing already stored in --out.

Defects these tests found (block-value line numbers, validator-only paths, hangs on
degenerate faults) were fixed in the engine; the tests keep them fixed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_twin

TOPOLOGY = """\
name: shop
hosts:
  node-1: {cores: 2, zone: z1}
services:
  a:
    workers: 2
    host: node-1
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        calls:
          - {to: b, probability: 1.0}
          - {to: c, probability: 0.5, count: 2, parallel: true}
  b:
    operations:
      default:
        service_time: {dist: exponential, mean: 0.02}
  c:
    operations:
      default:
        service_time: 0.005
network:
  links:
    "a->b": {latency: {dist: constant, mean: 0.001}, loss: 0.0}
workload:
  - {entry: a, rate: 5}
"""

SCENARIO = """\
duration: 30
warmup: 5
seed: 3
faults:
  - {kind: latency, target: b, start: 10, duration: 10, delay: {dist: constant, mean: 0.2}}
  - {kind: packet_loss, target: "a->b", start: 0, duration: 30, probability: 0.05}
  - {kind: outage, target: "host:node-1", start: 20, duration: 2}
"""

POLICY = """\
clients:
  "*": {timeout: 1.0}
  "a->b":
    timeout: 0.5
    retries: {max: 2, backoff: exponential, base: 0.05, cap: 1.0, jitter: full, budget: 0.2}
    circuit_breaker: {failure_rate: 0.5, window: 20, min_requests: 10, open_for: 5.0}
services:
  b:
    queue_limit: 50
    autoscale: {min: 1, max: 4, target_utilization: 0.7, boot_time: 5, cooldown: 10}
    failover: {to: c, when_error_rate: 0.5}
"""

GOOD = {"topology": TOPOLOGY, "scenario": SCENARIO, "policy": POLICY}


def twin(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_twin(*args, timeout=timeout)


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, f"{old!r} not in the document"
    return text.replace(old, new, 1)


def line_of(text: str, marker: str) -> int:
    """1-based number of the first line holding ``marker``."""
    for i, line in enumerate(text.splitlines(), start=1):
        if marker in line:
            return i
    raise AssertionError(f"{marker!r} not in the document")


def the_one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The run was refused: exit 2, exactly one line on stderr, no traceback anywhere."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("twin: error: "), lines[0]
    return lines[0]


def assert_located(message: str, file: Path, path: str | None, line: int | None) -> None:
    """``file[:line]: path: ...``: the file, the line when given and the path inside it."""
    where = f"{file}:{line}" if line is not None else str(file)
    head = f"twin: error: {where}: " + (f"{path}: " if path else "")
    assert message.startswith(head), f"expected {head!r} at the start of\n{message!r}"


@dataclass(frozen=True)
class Case:
    doc: str  # which document is bad: topology, scenario or policy
    old: str  # text replaced in the good document ...
    new: str  # ... by this
    path: str | None  # the path inside the document the message must name
    expected: tuple[str, ...]  # what the message must say was expected / found
    line_marker: str | None = None  # the reported line is the first line holding this
    block_value: bool = False  # the named key's value is a block starting on the next line


CASES = {
    # -- topology ------------------------------------------------------------------------------
    "unknown-call-target": Case(
        "topology",
        "{to: b, probability: 1.0}",
        "{to: nowhere, probability: 1.0}",
        "services.a.operations.default.calls[0].to",
        ("unknown service 'nowhere'",),
        "to: nowhere",
    ),
    "unknown-call-operation": Case(
        "topology",
        "{to: c, probability: 0.5",
        "{to: 'c:write', probability: 0.5",
        "services.a.operations.default.calls[1].to",
        ("no operation 'write'",),
        "c:write",
    ),
    "probability-above-one": Case(
        "topology",
        "{to: b, probability: 1.0}",
        "{to: b, probability: 1.5}",
        "services.a.operations.default.calls[0].probability",
        ("less than or equal to 1",),
        "probability: 1.5",
    ),
    "probability-below-zero": Case(
        "topology",
        "probability: 0.5",
        "probability: -0.5",
        "services.a.operations.default.calls[1].probability",
        ("greater than or equal to 0",),
        "probability: -0.5",
    ),
    "negative-service-time-mean": Case(
        "topology",
        "mean: 0.02}",
        "mean: -0.02}",
        "services.b.operations.default.service_time.mean",
        ("greater than 0",),
        "mean: -0.02",
    ),
    "negative-workload-rate": Case(
        "topology",
        "rate: 5}",
        "rate: -5}",
        "workload[0].rate",
        ("greater than 0",),
        "rate: -5",
    ),
    "missing-workload": Case(
        "topology",
        "workload:\n  - {entry: a, rate: 5}\n",
        "",
        "workload",
        ("required field is missing",),
    ),
    "unknown-workload-entry": Case(
        "topology",
        "{entry: a, rate: 5}",
        "{entry: zz, rate: 5}",
        "workload[0].entry",
        ("unknown service 'zz'",),
        "entry: zz",
    ),
    "unknown-service-field": Case(
        "topology",
        "    workers: 2",
        "    workerz: 2",
        "services.a.workerz",
        ("unknown field",),
        "workerz",
    ),
    "unknown-top-level-field": Case(
        "topology",
        "name: shop\n",
        "name: shop\nowner: me\n",
        "owner",
        ("unknown field",),
        "owner:",
    ),
    "unknown-host": Case(
        "topology",
        "host: node-1",
        "host: node-9",
        "services.a.host",
        ("unknown host 'node-9'",),
        "host: node-9",
    ),
    "unknown-distribution": Case(
        "topology",
        "{dist: exponential, mean: 0.02}",
        "{dist: weibull, mean: 0.02}",
        "services.b.operations.default.service_time",
        ("'weibull'", "'exponential'", "'lognormal'"),
        "weibull",
    ),
    "link-for-a-call-that-does-not-exist": Case(
        "topology",
        '"a->b": {latency',
        '"b->a": {latency',
        "network.links.b->a",
        ("no such call",),
        '"b->a"',
    ),
    "link-key-not-an-edge": Case(
        "topology",
        '"a->b": {latency',
        '"ab": {latency',
        "network.links.ab",
        ("caller->callee",),
        '"ab"',
    ),
    # -- scenario ------------------------------------------------------------------------------
    "negative-fault-start": Case(
        "scenario",
        "start: 10,",
        "start: -10,",
        "faults[0].start",
        ("greater than or equal to 0",),
        "start: -10",
    ),
    "negative-fault-duration": Case(
        "scenario",
        "start: 10, duration: 10,",
        "start: 10, duration: -10,",
        "faults[0].duration",
        ("greater than 0",),
        "duration: -10",
    ),
    "negative-scenario-duration": Case(
        "scenario",
        "duration: 30\n",
        "duration: -30\n",
        "duration",
        ("greater than 0",),
        "duration: -30",
    ),
    "unknown-fault-target": Case(
        "scenario",
        "{kind: latency, target: b,",
        "{kind: latency, target: zz,",
        "faults[0].target",
        ("unknown service 'zz'",),
        "target: zz",
    ),
    "unknown-fault-host": Case(
        "scenario",
        '"host:node-1"',
        '"host:node-9"',
        "faults[2].target",
        ("unknown host 'node-9'",),
        "host:node-9",
    ),
    "fault-on-a-call-that-does-not-exist": Case(
        "scenario",
        'target: "a->b"',
        'target: "b->a"',
        "faults[1].target",
        ("no call 'b->a'",),
        '"b->a"',
    ),
    "bandwidth-fault-on-a-service": Case(
        "scenario",
        "faults:\n",
        "faults:\n  - {kind: bandwidth, target: b, bytes_per_second: 1000}\n",
        "faults[0].target",
        ("bandwidth", "edge"),
        "kind: bandwidth",
    ),
    "error-rate-fault-on-an-edge": Case(
        "scenario",
        "faults:\n",
        'faults:\n  - {kind: error_rate, target: "a->b", probability: 0.5}\n',
        "faults[0].target",
        ("error_rate", "service, not an edge"),
        "kind: error_rate",
    ),
    "unknown-fault-kind": Case(
        "scenario",
        "{kind: latency, target: b,",
        "{kind: meteor, target: b,",
        "faults[0]",
        ("'meteor'", "'latency'", "'outage'"),
        "meteor",
    ),
    "unknown-scenario-field": Case(
        "scenario", "seed: 3", "sead: 3", "sead", ("unknown field",), "sead"
    ),
    # -- policy --------------------------------------------------------------------------------
    "unknown-policy-edge": Case(
        "policy",
        '"a->b":\n',
        '"a->z":\n',
        "clients.a->z",
        ("no call 'a->z'",),
        '"a->z"',
        block_value=True,
    ),
    "policy-key-not-an-edge": Case(
        "policy",
        '"a->b":\n',
        '"ab":\n',
        "clients.ab",
        ('"caller->callee"',),
        '"ab"',
        block_value=True,
    ),
    "unknown-policy-service": Case(
        "policy",
        "  b:\n    queue_limit",
        "  zz:\n    queue_limit",
        "services.zz",
        ("unknown service 'zz'",),
        "zz:",
        block_value=True,
    ),
    "failover-to-unknown-service": Case(
        "policy",
        "{to: c,",
        "{to: c-standby,",
        "services.b.failover.to",
        ("unknown service 'c-standby'",),
        "c-standby",
    ),
    "autoscale-max-below-min": Case(
        "policy",
        "{min: 1, max: 4,",
        "{min: 5, max: 4,",
        "services.b.autoscale",
        ("max (4) must be >= min (5)",),
        "autoscale",
    ),
    "unknown-retry-on-reason": Case(
        "policy",
        "jitter: full,",
        "jitter: full, retry_on: [TIMEOUT, BOGUS],",
        "clients.a->b.retries.retry_on",
        ("'BOGUS'", "'TIMEOUT'", "'RETRIES_EXHAUSTED'"),
        "retries:",
    ),
    "negative-timeout": Case(
        "policy",
        "timeout: 0.5",
        "timeout: -0.5",
        "clients.a->b.timeout",
        ("greater than 0",),
        "timeout: -0.5",
    ),
    "unknown-policy-field": Case(
        "policy",
        "queue_limit: 50",
        "queue_limt: 50",
        "services.b.queue_limt",
        ("unknown field",),
        "queue_limt",
    ),
}


def write_docs(tmp_path: Path, bad: str | None = None, text: str | None = None) -> list[str]:
    """The three documents in tmp_path (``bad`` replaced by ``text``); the CLI arguments."""
    paths = {}
    for doc, good in GOOD.items():
        p = tmp_path / f"{doc}.yaml"
        p.write_text(text if doc == bad and text is not None else good)
        paths[doc] = p
    return [
        str(paths["topology"]),
        "--scenario",
        str(paths["scenario"]),
        "--policy",
        str(paths["policy"]),
    ]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_document_is_refused_with_one_line_naming_file_line_path_and_expectation(
    case: Case, tmp_path: Path
) -> None:
    text = edit(GOOD[case.doc], case.old, case.new)
    args = write_docs(tmp_path, case.doc, text)
    message = the_one_line(twin("simulate", *args, "--out", str(tmp_path / "out")))
    file = tmp_path / f"{case.doc}.yaml"
    line = line_of(text, case.line_marker) if case.line_marker else None
    if case.block_value and line is not None:
        # the key's line (not the first line of its block value)
        assert any(
            message.startswith(f"twin: error: {file}:{n}: {case.path}: ") for n in (line, line + 1)
        ), message
    else:
        assert_located(message, file, case.path, line)
    for needle in case.expected:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert not (tmp_path / "out").exists()  # refused before anything was written


BLOCK_CASES = {k: c for k, c in CASES.items() if c.block_value}


@pytest.mark.parametrize("case", BLOCK_CASES.values(), ids=BLOCK_CASES.keys())
def test_error_about_a_key_with_a_block_value_points_at_the_key_line(
    case: Case, tmp_path: Path
) -> None:
    text = edit(GOOD[case.doc], case.old, case.new)
    message = the_one_line(twin("simulate", *write_docs(tmp_path, case.doc, text)))
    assert case.line_marker is not None
    assert_located(
        message, tmp_path / f"{case.doc}.yaml", case.path, line_of(text, case.line_marker)
    )


def test_the_good_documents_run(tmp_path: Path) -> None:
    """The baseline every bad case edits is itself valid (so each failure is the edit's)."""
    proc = twin("simulate", *write_docs(tmp_path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "summary.json").exists()


def test_call_cycle_is_refused_naming_the_calls_that_form_it(tmp_path: Path) -> None:
    text = edit(
        TOPOLOGY, "service_time: 0.005\n", "service_time: 0.005\n        calls: [{to: a}]\n"
    )
    args = write_docs(tmp_path, "topology", text)
    message = the_one_line(twin("simulate", *args))
    topo = tmp_path / "topology.yaml"
    # the cycle may be reported from either of its ends; both name a line and the calls list
    m = re.match(
        rf"twin: error: {re.escape(str(topo))}:(\d+): services\.(a|c)\.operations"
        r"\.default\.calls: ",
        message,
    )
    assert m, message
    # a's calls are a block list (key on one line, list from the next: either is fine here,
    # see test_error_about_a_key_with_a_block_value_points_at_the_key_line); c's are inline
    if m.group(2) == "a":
        assert int(m.group(1)) in (line_of(text, "calls:"), line_of(text, "calls:") + 1)
    else:
        assert int(m.group(1)) == line_of(text, "calls: [{to: a}]")
    assert "cycle" in message and "a:default" in message and "c:default" in message


def test_warmup_not_shorter_than_duration_is_refused_naming_both(tmp_path: Path) -> None:
    text = edit(SCENARIO, "warmup: 5", "warmup: 30")
    args = write_docs(tmp_path, "scenario", text)
    message = the_one_line(twin("simulate", *args))
    assert message.startswith(f"twin: error: {tmp_path / 'scenario.yaml'}")
    assert "warmup (30.0) must be shorter than duration (30.0)" in message


def test_warmup_not_shorter_than_duration_names_the_warmup_line_and_path(tmp_path: Path) -> None:
    text = edit(SCENARIO, "warmup: 5", "warmup: 30")
    args = write_docs(tmp_path, "scenario", text)
    message = the_one_line(twin("simulate", *args))
    assert_located(message, tmp_path / "scenario.yaml", "warmup", line_of(text, "warmup"))


def test_warmup_override_not_shorter_than_duration_is_refused_naming_the_command_line(
    tmp_path: Path,
) -> None:
    args = write_docs(tmp_path)
    message = the_one_line(twin("simulate", *args, "--duration", "10", "--warmup", "20"))
    assert message.startswith("twin: error: command line: ")
    assert "warmup (20.0) must be shorter than duration (10.0)" in message


def test_negative_duration_override_is_refused_naming_the_option(tmp_path: Path) -> None:
    message = the_one_line(twin("simulate", *write_docs(tmp_path), "--duration", "-10"))
    assert message.startswith("twin: error: command line: duration: ")
    assert "greater than 0" in message


def test_negative_bare_number_service_time_names_the_service_time_path(tmp_path: Path) -> None:
    text = edit(TOPOLOGY, "service_time: 0.005", "service_time: -0.005")
    message = the_one_line(twin("simulate", *write_docs(tmp_path, "topology", text)))
    topo = tmp_path / "topology.yaml"
    line = line_of(text, "-0.005")
    assert_located(message, topo, "services.c.operations.default.service_time", line)
    assert "greater than or equal to 0" in message


def test_unknown_retry_on_reason_names_the_retry_on_path_and_line(tmp_path: Path) -> None:
    text = edit(
        POLICY,
        "    retries: {max: 2, backoff: exponential, base: 0.05, cap: 1.0, jitter: full, "
        "budget: 0.2}\n",
        "    retries:\n      max: 2\n      retry_on: [TIMEOUT, BOGUS]\n",
    )
    message = the_one_line(twin("simulate", *write_docs(tmp_path, "policy", text)))
    line = line_of(text, "retry_on")
    assert_located(message, tmp_path / "policy.yaml", "clients.a->b.retries.retry_on", line)


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", ["topology", "scenario", "policy"])
def test_missing_file_is_refused_naming_it(doc: str, tmp_path: Path) -> None:
    args = write_docs(tmp_path)
    missing = tmp_path / f"no-such-{doc}.yaml"
    args[args.index(str(tmp_path / f"{doc}.yaml"))] = str(missing)
    message = the_one_line(twin("simulate", *args))
    assert message == f"twin: error: {missing}: file not found"


@pytest.mark.parametrize("doc", ["topology", "scenario", "policy"])
@pytest.mark.parametrize("content", ["", "\n# only a comment\n"], ids=["empty", "comment-only"])
def test_empty_file_is_refused_naming_it(doc: str, content: str, tmp_path: Path) -> None:
    args = write_docs(tmp_path, doc, content)
    message = the_one_line(twin("simulate", *args))
    assert message == f"twin: error: {tmp_path / f'{doc}.yaml'}: document is empty"


@pytest.mark.parametrize("doc", ["topology", "scenario", "policy"])
def test_invalid_yaml_syntax_is_refused_naming_file_and_line(doc: str, tmp_path: Path) -> None:
    good = GOOD[doc]
    lines = good.splitlines(keepends=True)
    text = "".join([*lines[:2], "  oops: a: b\n", *lines[2:]])  # line 3: nested mapping value
    message = the_one_line(twin("simulate", *write_docs(tmp_path, doc, text)))
    file = tmp_path / f"{doc}.yaml"
    assert str(file) in message
    assert "invalid YAML" in message and "mapping values are not allowed" in message
    # the line is given, as "file:3:" or "file: line 3:"
    assert f"{file}:3:" in message or f"{file}: line 3:" in message, message


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    args = write_docs(tmp_path, "topology", "- a\n- b\n")
    message = the_one_line(twin("simulate", *args))
    assert message == (
        f"twin: error: {tmp_path / 'topology.yaml'}: expected a mapping at the top, got list"
    )


# -- nothing stored is lost ------------------------------------------------------------------------


def _snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_refused_run_leaves_existing_outputs_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    good_args = write_docs(tmp_path)
    proc = twin("simulate", *good_args, "--duration", "25", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    before = _snapshot(out)
    assert {"summary.json", "timeseries.parquet", "report.html"} <= set(before)

    bad_policy = tmp_path / "bad-policy.yaml"
    bad_policy.write_text(edit(POLICY, "{to: c,", "{to: c-standby,"))
    bad_scenario = tmp_path / "bad-scenario.yaml"
    bad_scenario.write_text(edit(SCENARIO, "target: b,", "target: zz,"))
    refused = [
        ["--policy", str(bad_policy)],
        ["--scenario", str(bad_scenario)],
        ["--policy", str(tmp_path / "missing-policy.yaml")],
        ["--duration", "10", "--warmup", "99"],
    ]
    topo, *_ = good_args
    for extra in refused:
        the_one_line(twin("simulate", topo, *extra, "--out", str(out)))
        assert _snapshot(out) == before, f"outputs changed by a refused run with {extra}"


# -- inputs that must not hang the run ----------------------------------------------------------

HANG_SECONDS = 90.0  # generous: a loaded CI machine imports slowly; a hang never ends
"""The run below (the engine alone, no report) takes well under a second when it works."""

_RUN_ENGINE = """
import sys
from twin.errors import TwinError
from twin.io import DocProblem
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology
try:
    topo = Topology.load(sys.argv[1])
    Simulation(topo, Scenario.load_file(sys.argv[2])).run()
except (TwinError, DocProblem) as exc:
    print(f"twin: error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def _finishes_or_is_refused(topology: Path, scenario: Path) -> None:
    """The engine returns: it runs to the end, or refuses the input with one line. (The engine
    alone, without the CLI's report, so a loaded machine cannot be mistaken for a hang.)"""
    cmd = [sys.executable, "-c", _RUN_ENGINE, str(topology), str(scenario)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=HANG_SECONDS
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the simulation did not return within {HANG_SECONDS} s: it hangs")
    if proc.returncode != 0:
        the_one_line(proc)


def test_sampled_fault_with_zero_interval_and_duration_does_not_hang(tmp_path: Path) -> None:
    scenario = (
        "duration: 10\n"
        "faults:\n"
        "  - {kind: error_rate, target: b, probability: 0.5, sample: {interval: 0, duration: 0}}\n"
    )
    write_docs(tmp_path, "scenario", scenario)
    _finishes_or_is_refused(tmp_path / "topology.yaml", tmp_path / "scenario.yaml")


def test_memory_leak_starting_at_its_limit_does_not_hang(tmp_path: Path) -> None:
    scenario = (
        "duration: 10\n"
        "faults:\n"
        "  - {kind: memory_leak, target: b, growth_mb_per_s: 1, limit_mb: 100,"
        " baseline_mb: 200, restart_time: 0}\n"
    )
    write_docs(tmp_path, "scenario", scenario)
    _finishes_or_is_refused(tmp_path / "topology.yaml", tmp_path / "scenario.yaml")


def test_unknown_train_teacher_is_refused_naming_the_option_before_any_output(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    line = the_one_line(twin("train", "--out", str(out), "--steps", "8", "--teacher", "oracle"))
    assert "--teacher" in line and "oracle" in line and "reactive" in line
    assert not out.exists()
