"""Hostile input, generated: valid base documents, the fixed corpus of known-bad inputs, the
structure-aware mutations the fuzzers apply, and a bounded way to run the command line.

Three users share this module: ``tests/test_hostile_corpus.py`` runs every :data:`CASES`
entry through ``twin`` in a child process; ``tests/test_fuzz.py`` drives the mutations with
hypothesis against every loader in-process (:data:`SURFACES`); ``benchmarks/fuzz.py`` drives
the same mutations from a seeded numpy generator for a longer run. Inputs are written into a
temporary folder when a case runs; nothing large is kept in the repository.

A case names the contract it is held to (:class:`Expect`):

- ``refused``: exit 2, exactly one line on stderr, no traceback, no output folder left.
- ``refused_or_unstable``: refused, or the run ends with the documented "unstable" verdict in
  its ``summary.json`` (a load the modelled system cannot carry is a result, not a crash).
- ``accepted``: exit 0 and a case-specific check of what was produced (an outlier skipped,
  ``5e-3`` read as a number, one row for one test run).
- ``refused_or_accepted``: telemetry with bad points: refused, or accepted with the bad points
  skipped (the check: the calibrated rate is the true one).
- ``holds``: the enforcer keeps running, every decision is strict JSON, and the decisions the
  bad input reaches are held with a reason.

Every child runs under :func:`run_bounded`: a wall limit that kills its process group and a
peak-RSS limit watched from outside and read back from ``wait4``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root folder."""

ENFORCE_POLICY = ROOT / "agents" / "policies" / "online-boutique" / "export" / "policy.json"
"""The bundled exported policy the enforcer cases run (read only)."""

CPU_SECONDS = 10.0
"""Every corpus case ends within this much CPU time (user + system), or it is killed and
fails. CPU time, not wall time, is the bound a case is held to: on a shared machine a correct
refusal can wait longer than this for a core, but it cannot burn more than this."""

WALL_SECONDS = 60.0
"""A backstop for a child that blocks without using CPU: killed past this wall time."""

RSS_LIMIT_MB = 500.0
"""Every corpus case peaks under this resident set size, or it is killed and fails."""

Content = str | bytes | Callable[[], str | bytes]
Expect = Literal["refused", "refused_or_unstable", "refused_or_accepted", "accepted", "holds"]


# -- base documents ----------------------------------------------------------------------------


def topology() -> dict[str, Any]:
    """A small valid topology: entry ``a`` calls ``b``, one host, one link, 5 requests/s."""
    return {
        "name": "shop",
        "hosts": {"node-1": {"cores": 2, "zone": "z1"}},
        "services": {
            "a": {
                "workers": 2,
                "host": "node-1",
                "operations": {
                    "default": {
                        "service_time": {"dist": "exponential", "mean": 0.01},
                        "calls": [{"to": "b"}],
                    }
                },
            },
            "b": {
                "operations": {
                    "default": {"service_time": {"dist": "lognormal", "mean": 0.02, "cv": 1.0}}
                }
            },
        },
        "network": {"links": {"a->b": {"latency": {"dist": "constant", "mean": 0.001}}}},
        "workload": [{"entry": "a", "rate": 5.0}],
        "slo": {"latency_p99": 0.5, "availability": 0.99},
    }


def scenario() -> dict[str, Any]:
    """A 20-second scenario with one latency fault on ``b``."""
    return {
        "duration": 20.0,
        "warmup": 2.0,
        "seed": 1,
        "window": 1.0,
        "faults": [
            {
                "kind": "latency",
                "target": "b",
                "start": 5.0,
                "duration": 5.0,
                "delay": {"dist": "constant", "mean": 0.1},
            }
        ],
    }


def policy() -> dict[str, Any]:
    """Timeouts everywhere, retries and a breaker on ``a->b``, a queue limit on ``b``."""
    return {
        "clients": {
            "*": {"timeout": 1.0},
            "a->b": {
                "timeout": 0.5,
                "retries": {"max": 2, "backoff": "exponential", "base": 0.05, "budget": 0.2},
                "circuit_breaker": {
                    "failure_rate": 0.5,
                    "window": 20,
                    "min_requests": 10,
                    "open_for": 5.0,
                },
            },
        },
        "services": {"b": {"queue_limit": 50}},
    }


def campaign() -> dict[str, Any]:
    """A two-run campaign over :func:`topology` (written beside it as ``topology.yaml``)."""
    return {
        "name": "hostile",
        "topology": "topology.yaml",
        "duration": 20.0,
        "warmup": 2.0,
        "seed": 1,
        "policies": {"none": None},
        "grid": {
            "faults": [{"kind": "error_rate", "targets": ["b"], "intensities": [0.2]}],
            "loads": [1.0],
        },
    }


def enforce_services() -> tuple[str, ...]:
    """The services the bundled exported policy observes."""
    doc = json.loads(ENFORCE_POLICY.read_text(encoding="utf-8"))
    return tuple(doc["observation"]["services"])


def snapshot(t: float, services: Sequence[str] | None = None) -> dict[str, Any]:
    """One healthy metrics-file record at unix time ``t``."""
    names = enforce_services() if services is None else services
    reading = {"p99_seconds": 0.1, "error_rate": 0.0, "utilization": 0.4, "replicas": 1}
    return {"time": t, "services": {s: dict(reading) for s in names}}


def override() -> dict[str, Any]:
    """An operator override that sets every knob once."""
    return {
        "timeout_seconds": 0.5,
        "retries": 1,
        "circuit_breaker": True,
        "rate_limit_x": 2.0,
        "replicas": {"frontend": 2},
        "queue_limits": {"frontend": 20},
    }


def chaos_result() -> dict[str, Any]:
    """A plain chaos-test result."""
    return {
        "test_id": "deploy_v2.3_highload",
        "timestamp": "2024-10-27T10:00:00Z",
        "parameters": {"concurrent_users": 1000, "request_rate": 500},
        "injected_faults": [{"type": "network_latency", "duration": 2, "value": 200}],
        "expected_outcome": "success",
        "actual_outcome": "failure",
        "failure_details": "500 error on /users endpoint",
    }


def chaos_journal() -> dict[str, Any]:
    """A Chaos Toolkit journal with one action and a deviated steady state."""
    return {
        "chaoslib-version": "1.42.3",
        "experiment": {
            "title": "Checkout survives a cart outage",
            "configuration": {"base_url": "http://shop.local"},
            "method": [],
        },
        "start": "2024-11-02T08:15:00",
        "end": "2024-11-02T08:16:10",
        "status": "completed",
        "deviated": True,
        "run": [
            {
                "activity": {
                    "type": "action",
                    "name": "kill-cart",
                    "provider": {"type": "python", "func": "kill", "arguments": {"n": 1}},
                },
                "status": "succeeded",
                "duration": 1.5,
            }
        ],
        "steady_states": {
            "after": {
                "steady_state_met": False,
                "probes": [{"activity": {"name": "p99"}, "tolerance_met": False}],
            }
        },
    }


TRACE_T0 = 1_700_000_000.0
"""Unix seconds of the first generated trace."""
TRACE_RATE = 5.0
"""Requests per second in the generated traces: what calibration must find again."""
TRACE_COUNT = 100


def _trace_starts() -> list[float]:
    return [TRACE_T0 + i / TRACE_RATE for i in range(TRACE_COUNT)]


def otlp_traces() -> dict[str, Any]:
    """OTLP/JSON: 100 requests at 5/s into ``front``, each calling ``back``."""

    def span(
        tid: str, sid: str, parent: str, name: str, start: float, end: float
    ) -> dict[str, Any]:
        return {
            "traceId": tid,
            "spanId": sid,
            "parentSpanId": parent,
            "name": name,
            "kind": 2,
            "startTimeUnixNano": str(int(start * 1e9)),
            "endTimeUnixNano": str(int(end * 1e9)),
        }

    front, back = [], []
    for i, t in enumerate(_trace_starts()):
        tid = f"{i + 1:032x}"
        front.append(span(tid, f"{2 * i + 1:016x}", "", "GET /", t, t + 0.02))
        back.append(
            span(tid, f"{2 * i + 2:016x}", f"{2 * i + 1:016x}", "get", t + 0.005, t + 0.015)
        )

    def resource(service: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
        attrs = [{"key": "service.name", "value": {"stringValue": service}}]
        return {"resource": {"attributes": attrs}, "scopeSpans": [{"spans": spans}]}

    return {"resourceSpans": [resource("front", front), resource("back", back)]}


def zipkin_traces() -> list[dict[str, Any]]:
    """Zipkin v2 JSON: the same 100 requests as :func:`otlp_traces`."""
    out: list[dict[str, Any]] = []
    for i, t in enumerate(_trace_starts()):
        tid = f"{i + 1:032x}"
        out.append(
            {
                "traceId": tid,
                "id": f"{2 * i + 1:016x}",
                "name": "get /",
                "kind": "SERVER",
                "timestamp": int(t * 1e6),
                "duration": 20_000,
                "localEndpoint": {"serviceName": "front"},
            }
        )
        out.append(
            {
                "traceId": tid,
                "id": f"{2 * i + 2:016x}",
                "parentId": f"{2 * i + 1:016x}",
                "name": "get",
                "kind": "SERVER",
                "timestamp": int((t + 0.005) * 1e6),
                "duration": 10_000,
                "localEndpoint": {"serviceName": "back"},
            }
        )
    return out


def jaeger_traces() -> dict[str, Any]:
    """Jaeger JSON (the query API's ``data`` shape): the same requests, one process each side."""
    traces = []
    for i, t in enumerate(_trace_starts()):
        tid = f"{i + 1:032x}"
        root = {
            "traceID": tid,
            "spanID": f"{2 * i + 1:016x}",
            "operationName": "GET /",
            "references": [],
            "startTime": int(t * 1e6),
            "duration": 20_000,
            "tags": [],
            "processID": "p1",
        }
        child = {
            "traceID": tid,
            "spanID": f"{2 * i + 2:016x}",
            "operationName": "get",
            "references": [{"refType": "CHILD_OF", "traceID": tid, "spanID": f"{2 * i + 1:016x}"}],
            "startTime": int((t + 0.005) * 1e6),
            "duration": 10_000,
            "tags": [],
            "processID": "p2",
        }
        traces.append(
            {
                "traceID": tid,
                "spans": [root, child],
                "processes": {"p1": {"serviceName": "front"}, "p2": {"serviceName": "back"}},
            }
        )
    return {"data": traces}


PROM_RATE = 10.0
"""Requests per second in :func:`prometheus_dump`: what calibration must find again."""


def prometheus_dump() -> dict[str, Any]:
    """A query_range dump of one service ``api`` at 10 requests/s, 10% errors, over 60 s."""
    job = {"job": "api", "instance": "127.0.0.1:1"}
    ts = [0, 10, 20, 30, 40, 50, 60]

    def series(name: str, labels: dict[str, str], values: list[tuple[float, float]]) -> Any:
        return {
            "metric": {"__name__": name, **labels},
            "values": [[t, repr(v)] for t, v in values],
        }

    result = {
        "http_server_request_duration_seconds_count": [
            series(
                "http_server_request_duration_seconds_count",
                {**job, "http_response_status_code": "200"},
                [(t, t * 9.0) for t in ts],
            ),
            series(
                "http_server_request_duration_seconds_count",
                {**job, "http_response_status_code": "500"},
                [(t, t * 1.0) for t in ts],
            ),
        ],
        "http_server_request_duration_seconds_sum": [
            series("http_server_request_duration_seconds_sum", job, [(t, t * 0.2) for t in ts])
        ],
        "http_server_request_duration_seconds_bucket": [
            series(
                "http_server_request_duration_seconds_bucket",
                {**job, "le": le},
                [(t, t * 10 * f) for t in ts],
            )
            for le, f in (("0.01", 0.2), ("0.05", 0.9), ("+Inf", 1.0))
        ],
        "process_cpu_seconds_total": [
            series("process_cpu_seconds_total", job, [(t, t * 0.15) for t in ts])
        ],
        "up": [series("up", job, [(t, 1.0) for t in ts])],
    }
    return {
        k: {"status": "success", "data": {"resultType": "matrix", "result": v}}
        for k, v in result.items()
    }


def incident_log() -> str:
    """An incident log (CSV) for the risk history reader."""
    return (
        "time,service,fault_kind,duration\n"
        "2024-01-01T00:00:00Z,a,outage,10m\n"
        "2024-01-05T00:00:00Z,b,latency,5m\n"
    )


def metric_map() -> dict[str, Any]:
    """A metric-name mapping for ``twin calibrate --mapping``."""
    return {"service_label": "job", "requests": "http_server_request_duration_seconds_count"}


def mask_config() -> dict[str, Any]:
    """Masking patterns for ``twin calibrate --mask``."""
    return {"patterns": {"card": "[0-9]{16}"}, "keys": ["password", "token"]}


def queries() -> dict[str, Any]:
    """PromQL mapping for ``twin enforce --queries``."""
    return {"service_label": "job", "window": "1m"}


# -- text ---------------------------------------------------------------------------------------


def to_yaml(doc: Any) -> str:
    """YAML text of a document (``.inf``/``.nan`` for non-finite floats), keys in order."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1_000_000)


def to_json(doc: Any) -> str:
    """JSON text of a document; non-finite floats become JSON's ``NaN``/``Infinity``."""
    return json.dumps(doc)


def alias_bomb(width: int = 9, levels: int = 9, prefix: str = "lol") -> str:
    """The "billion laughs": ``levels`` mappings of ``width`` aliases to the previous level
    (9 x 9 expands to 9**9, about 390 million strings), as top-level keys."""
    lines = [f"{prefix}0: &{prefix}0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        refs = ", ".join([f"*{prefix}{i - 1}"] * width)
        lines.append(f"{prefix}{i}: &{prefix}{i} [{refs}]")
    return "\n".join(lines) + "\n"


def deep_list(depth: int = 100_000) -> str:
    """``[`` repeated, never closed: a parser that recurses runs out of stack first."""
    return "[" * depth


def deep_map_yaml(depth: int = 5_000) -> str:
    """``{a:`` repeated (YAML flow mappings), never closed."""
    return "{a: " * depth


def deep_map_json(depth: int = 5_000) -> str:
    """``{"a":`` repeated, never closed."""
    return '{"a": ' * depth


def duplicate_line(text: str, key: str, occurrence: int = 0) -> str:
    """The YAML text with the line defining ``key:`` (its ``occurrence``-th) written twice."""
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if line.lstrip().startswith(f"{key}:")]
    i = found[occurrence]
    return "\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]]) + "\n"


def big_topology(megabytes: float = 50.0) -> str:
    """A valid-looking topology of about ``megabytes`` MB: a long chain of services."""
    doc = topology()
    body = doc["services"]["b"]
    n = int(megabytes * 1024 * 1024 / 120)
    services = {f"s{i:07d}": body for i in range(n)}
    services["a"] = doc["services"]["a"]
    services["b"] = body
    doc["services"] = services
    return to_yaml(doc)


def set_at(doc: Any, path: Sequence[str | int], value: Any) -> Any:
    """A deep copy of ``doc`` with the value at ``path`` replaced by ``value``."""
    out = copy.deepcopy(doc)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


# -- the bounded child ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounded:
    """What a bounded child did: its exit code (negative: killed by that signal), output,
    peak RSS in MB (from ``wait4``), wall seconds, why it was killed (if it was) and its CPU
    seconds (user + system, from ``wait4``)."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    wall_seconds: float
    killed: str | None
    cpu_seconds: float = 0.0


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return 0.0


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = CPU_SECONDS,
    rss_limit_mb: float = RSS_LIMIT_MB,
    wall_limit: float = WALL_SECONDS,
    poll: float = 0.02,
) -> Bounded:
    """Run ``argv`` in its own process group; kill the group once the child has used
    ``timeout`` CPU seconds, or past ``wall_limit`` wall seconds, or once its RSS passes
    ``rss_limit_mb``. The peak RSS reported is the child's own high-water mark (``VmHWM``),
    read while it runs: ``ru_maxrss`` from ``wait4`` cannot be used, since Linux keeps it
    across ``exec`` and a child forked from a large test process would report its parent's
    size."""
    import subprocess

    out_path, err_path = cwd / ".bounded.stdout", cwd / ".bounded.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    started = time.monotonic()
    killed: str | None = None
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _rss_mb(proc.pid, "VmHWM"))
        if killed is None:
            if _cpu_s(proc.pid) > timeout:
                killed = f"CPU time over {timeout:g} s"
            elif time.monotonic() - started > wall_limit:
                killed = f"wall time over {wall_limit:g} s"
            elif _rss_mb(proc.pid) > rss_limit_mb:
                killed = f"RSS over {rss_limit_mb:g} MB"
            if killed is not None:
                _kill_group(proc.pid)
        time.sleep(poll)
    wall = time.monotonic() - started
    _kill_group(proc.pid)  # anything it left running
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_bytes().decode("utf-8", "replace")
    stderr = err_path.read_bytes().decode("utf-8", "replace")
    out_path.unlink()
    err_path.unlink()
    cpu = usage.ru_utime + usage.ru_stime
    return Bounded(proc.returncode, stdout, stderr, peak, wall, killed, cpu)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def twin_argv(*args: str) -> list[str]:
    """``python -m twin.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", "twin.cli", *args]


def child_env(home: Path) -> dict[str, str]:
    """The environment of a corpus child: this checkout first on its path, one thread per
    numeric library (the box is shared), the failure-mode database inside ``home``."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
        "TWIN_DB": str(home / "twin.db"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "COLUMNS": "200",
    }


# -- the corpus -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile input: the files it needs (relative names; content, or a function that
    makes it), the ``twin`` arguments (``{d}`` is the case's folder), the contract, and the
    output folder that a refusal must not leave behind."""

    id: str
    row: str
    files: Mapping[str, Content]
    args: tuple[str, ...]
    expect: Expect
    out: str | None = None
    check: Callable[[Path, Bounded], str | None] | None = None
    held: tuple[int, ...] = field(default=())
    """For ``holds``: the 1-based decisions that must be held."""
    not_held: tuple[int, ...] = field(default=())
    """For ``holds``: the 1-based decisions that must not be held."""

    def write(self, folder: Path) -> list[str]:
        """Write the case's files into ``folder``; the arguments with ``{d}`` filled in."""
        for name, content in self.files.items():
            body = content() if callable(content) else content
            p = folder / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(body, bytes):
                p.write_bytes(body)
            else:
                p.write_text(body, encoding="utf-8")
        return [a.format(d=folder) for a in self.args]


def _docs(**texts: str) -> dict[str, Content]:
    base: dict[str, Content] = {
        "topology.yaml": to_yaml(topology()),
        "scenario.yaml": to_yaml(scenario()),
        "policy.yaml": to_yaml(policy()),
    }
    base.update({f"{k}.yaml": v for k, v in texts.items()})
    return base


SIMULATE = (
    "simulate",
    "{d}/topology.yaml",
    "--scenario",
    "{d}/scenario.yaml",
    "--policy",
    "{d}/policy.yaml",
    "--out",
    "{d}/out",
)
CHECK = (
    "check",
    "{d}/topology.yaml",
    "--scenario",
    "{d}/scenario.yaml",
    "--policy",
    "{d}/policy.yaml",
)


def _sim_case(
    id: str, row: str, expect: Expect = "refused", extra: tuple[str, ...] = (), **texts: str
) -> Case:
    return Case(id, row, _docs(**texts), (*SIMULATE, *extra), expect, out="out")


def _enforce_args(*extra: str) -> tuple[str, ...]:
    return (
        "enforce",
        str(ENFORCE_POLICY),
        "--rules",
        "--metrics",
        "{d}/metrics.jsonl",
        "--emit",
        "json",
        "--interval",
        "0.01",
        *extra,
    )


def _metrics_lines(*records: Any) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


def _healthy_metrics(n: int = 3) -> str:
    return _metrics_lines(*(snapshot(100.0 + 5 * i) for i in range(n)))


def _calibrate_case(id: str, row: str, name: str, content: Content, flag: str) -> Case:
    return Case(
        id,
        row,
        {name: content},
        ("calibrate", flag, f"{{d}}/{name}", "--out", "{d}/out", "--predict", "0"),
        "refused",
        out="out",
    )


def _chaos_case(id: str, row: str, content: Content, expect: Expect = "refused") -> Case:
    return Case(id, row, {"result.json": content}, ("ingest", "{d}/result.json"), expect)


def _campaign_case(id: str, row: str, spec: str) -> Case:
    return Case(
        id,
        row,
        {"topology.yaml": to_yaml(topology()), "campaign.yaml": spec},
        ("campaign", "{d}/campaign.yaml", "--out", "{d}/out", "--no-db"),
        "refused",
        out="out",
    )


# checks for accepted cases: None when it holds, else what was wrong


def _calibrated_rate(folder: Path) -> float | None:
    try:
        doc = yaml.safe_load((folder / "out" / "topology.yaml").read_text(encoding="utf-8"))
        return float(sum(w["rate"] for w in doc["workload"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def _rate_near(truth: float, tolerance: float = 0.25) -> Callable[[Path, Bounded], str | None]:
    def check(folder: Path, _: Bounded) -> str | None:
        rate = _calibrated_rate(folder)
        if rate is None:
            return "no readable workload rate in out/topology.yaml"
        if not math.isfinite(rate) or abs(rate - truth) > tolerance * truth:
            return f"calibrated entry rate {rate!r}, expected {truth} +/- {tolerance:.0%}"
        return None

    return check


def _reads_as_number(_: Path, r: Bounded) -> str | None:
    return None if r.stdout.startswith("ok:") else f"twin check did not say ok: {r.stdout!r}"


def _one_chaos_row(folder: Path, _: Bounded) -> str | None:
    import sqlite3

    con = sqlite3.connect(folder / "twin.db")
    try:
        n = con.execute("select count(*) from chaos_results").fetchone()[0]
    finally:
        con.close()
    return None if n == 1 else f"{n} chaos_results rows for one test run, expected 1"


def _bomb_before(doc_text: str) -> str:
    return alias_bomb() + doc_text


def _inf(path: Sequence[str | int], doc: Callable[[], dict[str, Any]]) -> str:
    return to_yaml(set_at(doc(), path, math.inf))


def _faulted(fault: dict[str, Any], **scenario_fields: Any) -> str:
    doc = scenario()
    doc["faults"] = [fault]
    doc.update(scenario_fields)
    return to_yaml(doc)


_SURGE = {"kind": "traffic_surge", "target": "a", "start": 5.0, "duration": 5.0, "rate": 5.0}
_CPU = {"kind": "cpu_exhaustion", "target": "b", "start": 5.0, "duration": 5.0, "factor": 2.0}
_LEAK = {
    "kind": "memory_leak",
    "target": "b",
    "start": 5.0,
    "duration": 5.0,
    "growth_mb_per_s": 1e300,
    "restart_time": 0.0,
}


def _topology_with(path: Sequence[str | int], value: Any) -> str:
    return to_yaml(set_at(topology(), path, value))


def _renamed_service(name: str) -> str:
    doc = topology()
    doc["services"][name] = doc["services"].pop("b")
    doc["services"]["a"]["operations"]["default"]["calls"] = [{"to": name}]
    doc["network"] = {}
    return to_yaml(doc)


def _chaos_variants() -> list[Case]:
    row = "chaos JSON"
    cases = [
        _chaos_case("chaos-random-bytes", row, bytes(np.random.default_rng(7).bytes(4096))),
        _chaos_case(
            "chaos-failure-details-object",
            row,
            to_json({**chaos_result(), "failure_details": {"code": 500, "path": "/users"}}),
            # any JSON value is a detail: stored as compact JSON text (docs/store.md)
            "accepted",
        ),
        _chaos_case("chaos-deep-list", "YAML and JSON nesting", deep_list()),
        _chaos_case("chaos-deep-map", "YAML and JSON nesting", deep_map_json()),
    ]
    wrong = {
        "journal-run-not-list": ("run", {"a": 1}),
        "journal-run-item-not-object": ("run", [1, "x", None]),
        "journal-experiment-string": ("experiment", "title"),
        "journal-steady-states-list": ("steady_states", [1, 2]),
        "journal-probes-not-objects": (
            "steady_states",
            {"after": {"steady_state_met": False, "probes": ["x", 3]}},
        ),
        "journal-activity-string": ("run", [{"activity": "kill", "status": "ok"}]),
        "journal-start-number": ("start", 12345),
        "journal-configuration-list": ("experiment", {"title": "t", "configuration": [1, 2]}),
    }
    for name, (key, value) in wrong.items():
        cases.append(
            _chaos_case(f"chaos-{name}", "chaos JSON", to_json({**chaos_journal(), key: value}))
        )
    plain_wrong = {
        "plain-test-id-number": ("test_id", 42),
        "plain-faults-object": ("injected_faults", {"type": "x"}),
        "plain-timestamp-garbage": ("timestamp", "yesterday"),
    }
    for name, (key, value) in plain_wrong.items():
        cases.append(_chaos_case(f"chaos-{name}", row, to_json({**chaos_result(), key: value})))
    cases += [
        _chaos_case(
            "chaos-nan-in-parameters",
            "chaos JSON values",
            '{"test_id": "t1", "timestamp": "2024-10-27T10:00:00Z", '
            '"parameters": {"rate": NaN, "users": Infinity}, "expected_outcome": "ok", '
            '"actual_outcome": "ok"}',
        ),
        _chaos_case(
            "chaos-test-id-10mb",
            "chaos JSON values",
            lambda: to_json({**chaos_result(), "test_id": "x" * (10 * 1024 * 1024)}),
        ),
        _chaos_case(
            "chaos-nul-byte",
            "chaos JSON values",
            to_json({**chaos_result(), "test_id": "run\x00one"}),
        ),
    ]
    stamps = (
        "2024-10-27T10:00:00Z",
        "2024-10-27T10:00:00+00:00",
        "2024-10-27T11:00:00+01:00",
        "2024-10-27T10:00:00.000Z",
    )
    files: dict[str, Content] = {
        f"r{i}.json": to_json({**chaos_result(), "timestamp": s}) for i, s in enumerate(stamps)
    }
    cases.append(
        Case(
            "chaos-same-instant-four-spellings",
            "chaos JSON identity",
            files,
            ("ingest", *(f"{{d}}/r{i}.json" for i in range(len(stamps)))),
            "accepted",
            check=_one_chaos_row,
        )
    )
    return cases


def _otlp_with(edit: Callable[[dict[str, Any]], None]) -> Callable[[], str]:
    def make() -> str:
        doc = otlp_traces()
        edit(doc)
        return to_json(doc)

    return make


def _first_front_span(doc: dict[str, Any]) -> dict[str, Any]:
    span: dict[str, Any] = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    return span


def _year_2100(doc: dict[str, Any]) -> None:
    sp = _first_front_span(doc)
    sp["startTimeUnixNano"] = str(4_102_444_800 * 10**9)
    sp["endTimeUnixNano"] = str(4_102_444_800 * 10**9 + 20_000_000)


def _times_1e12(doc: dict[str, Any]) -> None:
    sp = _first_front_span(doc)
    sp["startTimeUnixNano"] = str(int(sp["startTimeUnixNano"]) * 10**12)
    sp["endTimeUnixNano"] = str(int(sp["endTimeUnixNano"]) * 10**12)


def _zipkin_1e40() -> str:
    spans = zipkin_traces()
    spans[0]["timestamp"] = 1e40
    return to_json(spans)


def _trace_cases() -> list[Case]:
    row = "traces"
    out: list[Case] = []
    for id, content in (
        ("traces-zipkin-timestamp-1e40", _zipkin_1e40),
        ("traces-otlp-year-2100", _otlp_with(_year_2100)),
        ("traces-otlp-timestamps-x1e12", _otlp_with(_times_1e12)),
    ):
        out.append(
            Case(
                id,
                row,
                {"traces.json": content},
                ("calibrate", "--traces", "{d}/traces.json", "--out", "{d}/out", "--predict", "0"),
                "refused_or_accepted",
                out="out",
                check=_rate_near(TRACE_RATE),
            )
        )
    for fmt, make in (("otlp", deep_list), ("zipkin", deep_map_json)):
        out.append(
            _calibrate_case(
                f"traces-deep-{fmt}", "YAML and JSON nesting", "t.json", make, "--traces"
            )
        )
    return out


def _prom_with(value: Any, *, field: int = 1, point: int = 3) -> Callable[[], str]:
    def make() -> str:
        doc = prometheus_dump()
        name = "http_server_request_duration_seconds_count"
        values = doc[name]["data"]["result"][0]["values"]
        if field < 0:
            values[point] = values[point][:1]
        else:
            values[point][field] = value
        return to_json(doc)

    return make


def _metrics_cases() -> list[Case]:
    row = "metrics"
    out: list[Case] = []
    for id, make in (
        ("metrics-prometheus-nan", _prom_with("NaN")),
        ("metrics-prometheus-plus-inf", _prom_with("+Inf")),
        ("metrics-timestamp-1e300", _prom_with(1e300, field=0, point=6)),
    ):
        out.append(
            Case(
                id,
                row,
                {"metrics.json": make},
                (
                    "calibrate",
                    "--metrics",
                    "{d}/metrics.json",
                    "--out",
                    "{d}/out",
                    "--predict",
                    "0",
                ),
                "refused_or_accepted",
                out="out",
                check=_rate_near(PROM_RATE),
            )
        )
    for id, make in (
        ("metrics-garbage-value", _prom_with({"x": [1, 2]})),
        ("metrics-short-pair", _prom_with(None, field=-1)),
    ):
        out.append(
            Case(
                id,
                row,
                {"metrics.json": make},
                (
                    "calibrate",
                    "--metrics",
                    "{d}/metrics.json",
                    "--out",
                    "{d}/out",
                    "--predict",
                    "0",
                ),
                "refused_or_accepted",
                out="out",
                check=_rate_near(PROM_RATE),
            )
        )
    out += [
        _calibrate_case(
            "metrics-deep-list", "YAML and JSON nesting", "m.json", deep_list, "--metrics"
        ),
        _calibrate_case(
            "metrics-deep-map", "YAML and JSON nesting", "m.json", deep_map_json, "--metrics"
        ),
    ]
    return out


def _document_cases() -> list[Case]:
    t, s, p = to_yaml(topology()), to_yaml(scenario()), to_yaml(policy())
    cases: list[Case] = []

    # YAML alias bomb: alone, and in front of every document type
    bomb = "YAML alias bomb"
    cases.append(
        Case(
            "yaml-alias-bomb-alone",
            bomb,
            {"topology.yaml": alias_bomb()},
            ("check", "{d}/topology.yaml"),
            "refused",
        )
    )
    for doc in ("topology", "scenario", "policy"):
        cases.append(
            Case(
                f"yaml-alias-bomb-{doc}",
                bomb,
                _docs(
                    **{
                        doc: _bomb_before(
                            to_yaml(
                                {
                                    "topology": topology(),
                                    "scenario": scenario(),
                                    "policy": policy(),
                                }[doc]
                            )
                        )
                    }
                ),
                CHECK,
                "refused",
            )
        )
    cases.append(
        _campaign_case("yaml-alias-bomb-campaign", bomb, _bomb_before(to_yaml(campaign())))
    )
    cases.append(
        Case(
            "yaml-alias-bomb-topology-simulate",
            bomb,
            _docs(topology=_bomb_before(t)),
            SIMULATE,
            "refused",
            out="out",
        )
    )
    # the mapping is read with metrics, the masking patterns with traces
    for flag, name, settings, inputs in (
        ("--mapping", "mapping", metric_map(), "--metrics"),
        ("--mask", "mask", mask_config(), "--traces"),
    ):
        data: Content = (
            (lambda: to_json(prometheus_dump()))
            if inputs == "--metrics"
            else (lambda: to_json(otlp_traces()))
        )
        cases.append(
            Case(
                f"yaml-alias-bomb-{name}",
                bomb,
                {f"{name}.yaml": _bomb_before(to_yaml(settings)), "input.json": data},
                (
                    "calibrate",
                    inputs,
                    "{d}/input.json",
                    flag,
                    f"{{d}}/{name}.yaml",
                    "--out",
                    "{d}/out",
                    "--predict",
                    "0",
                ),
                "refused",
                out="out",
            )
        )
    cases.append(
        Case(
            "yaml-alias-bomb-queries",
            bomb,
            {"queries.yaml": _bomb_before(to_yaml(queries()))},
            (
                "enforce",
                str(ENFORCE_POLICY),
                "--rules",
                "--prometheus",
                "http://127.0.0.1:9",
                "--queries",
                "{d}/queries.yaml",
                "--once",
            ),
            "refused",
        )
    )

    # nesting in YAML documents
    nest = "YAML and JSON nesting"
    for doc in ("topology", "scenario", "policy"):
        cases.append(
            Case(f"yaml-deep-list-{doc}", nest, _docs(**{doc: deep_list()}), CHECK, "refused")
        )
        cases.append(
            Case(f"yaml-deep-map-{doc}", nest, _docs(**{doc: deep_map_yaml()}), CHECK, "refused")
        )
    cases.append(_campaign_case("yaml-deep-list-campaign", nest, deep_list()))
    cases.append(_campaign_case("yaml-deep-map-campaign", nest, deep_map_yaml()))

    # duplicate keys
    dup = "YAML duplicate keys"
    cases += [
        Case(
            "yaml-duplicate-workers",
            dup,
            _docs(topology=duplicate_line(t, "workers")),
            CHECK,
            "refused",
        ),
        Case(
            "yaml-duplicate-service",
            dup,
            _docs(
                topology=t.replace(
                    "services:\n",
                    "services:\n  b: {operations: {default: {service_time: 0.1}}}\n",
                    1,
                )
            ),
            CHECK,
            "refused",
        ),
        Case(
            "yaml-duplicate-duration",
            dup,
            _docs(scenario=duplicate_line(s, "duration")),
            CHECK,
            "refused",
        ),
        Case(
            "yaml-duplicate-policy-edge",
            dup,
            _docs(policy=p.replace("  a->b:\n", "  a->b: {timeout: 2.0}\n  a->b:\n", 1)),
            CHECK,
            "refused",
        ),
        Case(
            "yaml-duplicate-link-edge",
            dup,
            _docs(topology=t.replace("  links:\n", "  links:\n    a->b: {loss: 0.5}\n", 1)),
            CHECK,
            "refused",
        ),
    ]

    # YAML 1.1 reads 5e-3 as a string: it must be the number
    cases.append(
        Case(
            "yaml-exponent-without-dot",
            "YAML 5e-3",
            _docs(topology=t.replace("mean: 0.02", "mean: 5e-3").replace("rate: 5.0", "rate: 5e0")),
            CHECK,
            "accepted",
            check=_reads_as_number,
        )
    )

    # .inf everywhere a number goes
    inf = "documents .inf"
    svc_b = ("services", "b", "operations", "default", "service_time")
    cases += [
        _sim_case("inf-rate", inf, topology=_inf(("workload", 0, "rate"), topology)),
        Case(
            "inf-rate-check",
            inf,
            _docs(topology=_inf(("workload", 0, "rate"), topology)),
            CHECK,
            "refused",
        ),
        _sim_case("inf-duration", inf, scenario=_inf(("duration",), scenario)),
        _sim_case(
            "inf-multiplier",
            inf,
            scenario=to_yaml({**scenario(), "load": {"multiplier": math.inf}}),
        ),
        _sim_case("inf-mean", inf, topology=_inf((*svc_b, "mean"), topology)),
        Case(
            "inf-mean-check",
            inf,
            _docs(topology=_inf((*svc_b, "mean"), topology)),
            CHECK,
            "refused",
        ),
        _sim_case("inf-cv", inf, topology=_inf((*svc_b, "cv"), topology)),
        _sim_case("inf-delay", inf, scenario=_inf(("faults", 0, "delay", "mean"), scenario)),
        _sim_case("inf-factor", inf, scenario=_faulted({**_CPU, "factor": math.inf})),
        _sim_case("inf-cost", inf, scenario=_faulted({**_SURGE, "cost": math.inf})),
        _sim_case("inf-cli-duration", inf, extra=("--duration", "inf")),
        _sim_case(
            "nan-rate", inf, topology=to_yaml(set_at(topology(), ("workload", 0, "rate"), math.nan))
        ),
    ]

    # sizes past any budget
    huge = "documents huge"
    cases += [
        _sim_case(
            "huge-replicas-1e9",
            huge,
            "refused_or_unstable",
            topology=_topology_with(("services", "b", "replicas"), 1_000_000_000),
        ),
        _sim_case(
            "huge-call-count-1e9",
            huge,
            "refused_or_unstable",
            topology=_topology_with(
                ("services", "a", "operations", "default", "calls", 0, "count"), 1_000_000_000
            ),
        ),
        _sim_case(
            "huge-rate-1e12",
            huge,
            "refused_or_unstable",
            topology=_topology_with(("workload", 0, "rate"), 1e12),
        ),
        _sim_case(
            "huge-rate-1e6",
            huge,
            "refused_or_unstable",
            topology=_topology_with(("workload", 0, "rate"), 1e6),
        ),
        _sim_case(
            "huge-multiplier-1e9",
            huge,
            "refused_or_unstable",
            scenario=to_yaml({**scenario(), "load": {"multiplier": 1e9}}),
        ),
        _sim_case(
            "huge-surge-1e12",
            huge,
            "refused_or_unstable",
            scenario=_faulted({**_SURGE, "rate": 1e12}),
        ),
        Case(
            "huge-topology-50mb",
            huge,
            {**_docs(), "topology.yaml": big_topology},
            SIMULATE,
            "refused",
            out="out",
        ),
    ]

    # parameters the samplers cannot handle
    deg = "documents degenerate"
    cases += [
        _sim_case(
            "gamma-cv-1e-300",
            deg,
            topology=_topology_with(svc_b, {"dist": "gamma", "mean": 0.02, "cv": 1e-300}),
        ),
        _sim_case(
            "lognormal-cv-1e300",
            deg,
            topology=_topology_with(svc_b, {"dist": "lognormal", "mean": 0.02, "cv": 1e300}),
        ),
        _sim_case("memory-leak-1e300-restart-0", deg, scenario=_faulted(_LEAK)),
        _sim_case("window-1e-6", deg, scenario=to_yaml({**scenario(), "window": 1e-6})),
        _sim_case(
            "sampled-fault-every-1e-9",
            deg,
            scenario=_faulted(
                {
                    "kind": "error_rate",
                    "target": "b",
                    "start": 0.0,
                    "duration": 20.0,
                    "probability": 0.5,
                    "sampling": {
                        "interval": {"dist": "constant", "mean": 1e-9},
                        "duration": {"dist": "constant", "mean": 1e-9},
                    },
                }
            ),
        ),
    ]

    # cross-field and naming
    cross = "documents cross-field"
    cases += [
        _sim_case(
            "fault-after-run-end",
            cross,
            scenario=_faulted({**scenario()["faults"][0], "start": 100.0}),
        ),
        _sim_case(
            "outage-replicas-50-on-1",
            cross,
            scenario=_faulted(
                {"kind": "outage", "target": "b", "start": 5.0, "duration": 5.0, "replicas": 50}
            ),
        ),
        _sim_case(
            "multiplier-with-profile",
            cross,
            scenario=to_yaml(
                {
                    **scenario(),
                    "load": {"multiplier": 2.0, "profile": [{"at": 0.0, "multiplier": 1.0}]},
                }
            ),
        ),
        _sim_case(
            "replicas-true", cross, topology=_topology_with(("services", "b", "replicas"), True)
        ),
    ]
    for label, name in (("empty", ""), ("star", "*"), ("arrow", "x->y"), ("colon", "c:op")):
        cases.append(
            Case(
                f"service-name-{label}",
                cross,
                _docs(topology=_renamed_service(name)),
                CHECK,
                "refused",
            )
        )
    return cases


def _enforce_cases() -> list[Case]:
    row = "enforce"
    good = _healthy_metrics(2)
    future = _metrics_lines(snapshot(100.0), snapshot(1e18), snapshot(105.0), snapshot(110.0))
    ov = override()
    cases = [
        Case(
            "enforce-snapshot-time-1e18",
            row,
            {"metrics.jsonl": future},
            _enforce_args(),
            "holds",
            held=(2,),
            not_held=(1, 3, 4),
        ),
        Case(
            "enforce-override-queue-limit-negative",
            row,
            {
                "metrics.jsonl": good,
                "override.yaml": to_yaml({**ov, "queue_limits": {"frontend": -1}}),
            },
            _enforce_args("--override", "{d}/override.yaml"),
            "holds",
            held=(1, 2),
        ),
        Case(
            "enforce-override-timeout-inf",
            row,
            {"metrics.jsonl": good, "override.yaml": to_yaml({**ov, "timeout_seconds": math.inf})},
            _enforce_args("--override", "{d}/override.yaml"),
            "holds",
            held=(1, 2),
        ),
        Case(
            "enforce-override-alias-bomb",
            "YAML alias bomb",
            {"metrics.jsonl": good, "override.yaml": _bomb_before(to_yaml(ov))},
            _enforce_args("--override", "{d}/override.yaml"),
            "holds",
            held=(1, 2),
        ),
        Case(
            "enforce-override-deep-list",
            "YAML and JSON nesting",
            {"metrics.jsonl": good, "override.yaml": deep_list()},
            _enforce_args("--override", "{d}/override.yaml"),
            "holds",
            held=(1, 2),
        ),
        Case(
            "enforce-metrics-deep-list",
            "YAML and JSON nesting",
            {"metrics.jsonl": _metrics_lines(snapshot(100.0), deep_list(), snapshot(105.0))},
            _enforce_args(),
            "holds",
            held=(2,),
            not_held=(1, 3),
        ),
        Case(
            "enforce-url-not-a-url",
            row,
            {"metrics.jsonl": good},
            (
                "enforce",
                str(ENFORCE_POLICY),
                "--rules",
                "--metrics",
                "{d}/metrics.jsonl",
                "--emit",
                "webhook",
                "--url",
                "not a url",
                "--interval",
                "0.01",
            ),
            "refused",
        ),
    ]
    return cases


def _campaign_cases() -> list[Case]:
    row = "campaign"
    c = campaign()
    return [
        _campaign_case("campaign-loads-empty", row, to_yaml(set_at(c, ("grid", "loads"), []))),
        _campaign_case("campaign-duration-inf", row, to_yaml({**c, "duration": math.inf})),
        _campaign_case(
            "campaign-fault-start-beyond-duration", row, to_yaml({**c, "fault_start": 1000.0})
        ),
        _campaign_case(
            "campaign-error-intensity-3",
            row,
            to_yaml(set_at(c, ("grid", "faults", 0, "intensities"), [3.0])),
        ),
    ]


def _store_cases() -> list[Case]:
    row = "store"
    text = "this is not a database\n" * 100
    return [
        Case(
            "store-db-not-sqlite-ingest",
            row,
            {"notadb.db": text, "r.json": to_json(chaos_result())},
            ("ingest", "{d}/r.json", "--db", "{d}/notadb.db"),
            "refused",
        ),
        Case(
            "store-db-not-sqlite-modes",
            row,
            {"notadb.db": text},
            ("modes", "--db", "{d}/notadb.db"),
            "refused",
        ),
        Case(
            "store-db-random-bytes-modes",
            row,
            {"notadb.db": bytes(np.random.default_rng(3).bytes(8192))},
            ("modes", "--db", "{d}/notadb.db"),
            "refused",
        ),
        Case(
            "store-db-not-sqlite-campaign",
            row,
            {
                "notadb.db": text,
                "topology.yaml": to_yaml(topology()),
                "campaign.yaml": to_yaml(campaign()),
            },
            ("campaign", "{d}/campaign.yaml", "--out", "{d}/out", "--db", "{d}/notadb.db"),
            "refused",
            out="out",
        ),
    ]


CASES: tuple[Case, ...] = (
    *_document_cases(),
    *_trace_cases(),
    *_metrics_cases(),
    *_chaos_variants(),
    *_store_cases(),
    *_enforce_cases(),
    *_campaign_cases(),
)
"""Every input of the hostile-input findings, each variant its own case."""

PRESERVED = ("notadb.db",)
"""Files a case writes that a refusal must leave byte for byte as they were."""


# -- mutations: what the fuzzers do to a valid document ------------------------------------------

HOSTILE_NUMBERS: tuple[Any, ...] = (
    math.inf,
    -math.inf,
    math.nan,
    1e308,
    -1e308,
    1e-300,
    5e-324,
    -1,
    0,
    -0.0,
    10**30,
    2**63,
    -(2**63),
    1_000_000_000,
    True,
    False,
)
HOSTILE_NAMES: tuple[str, ...] = ("*", "a->b", "x:y", "", " ", "\x00", "host:node-1", "é" * 3)
HOSTILE_VALUES: tuple[Any, ...] = (
    *HOSTILE_NUMBERS,
    *HOSTILE_NAMES,
    None,
    "1e400",
    "NaN",
    "5e-3",
    [],
    {},
    [[[[[]]]]],
    {"a": {"b": {"c": {}}}},
    "x" * 100_000,
    list(range(1000)),
)
"""Values a mutation puts where a valid one was: non-finite and extreme numbers, booleans
where numbers go, names that collide with the policy's syntax, wrong types, long strings."""

Op = Literal["replace", "drop", "duplicate", "rename", "nest"]
OPS: tuple[Op, ...] = ("replace", "drop", "duplicate", "rename", "nest")
TextOp = Literal["dup-line", "drop-line", "truncate", "bomb", "deep", "swap-char"]
TEXT_OPS: tuple[TextOp, ...] = ("dup-line", "drop-line", "truncate", "bomb", "deep", "swap-char")
NEST_DEPTH = 100
"""Levels a ``nest`` mutation wraps a value in: past the loaders' nesting limit."""


@dataclass(frozen=True)
class Mutation:
    """One change to a decoded document: ``op`` at the ``at``-th path (modulo how many there
    are, in a fixed walk order), with ``value`` where the op needs one."""

    op: Op
    at: int
    value: Any = None


@dataclass(frozen=True)
class TextMutation:
    """One change to the document's text: a line written twice (duplicate keys), a line
    dropped, the text cut, an alias bomb or deep nesting put in front, a character changed."""

    op: TextOp
    at: int


@dataclass(frozen=True)
class Trial:
    """One fuzzed input: structure mutations, then text mutations; or ``raw`` bytes instead."""

    mutations: tuple[Mutation, ...] = ()
    text_mutations: tuple[TextMutation, ...] = ()
    raw: bytes | None = None


Loc = tuple[str | int, ...]


def paths(doc: Any) -> list[Loc]:
    """Every path into ``doc`` (the root first), depth first in document order."""
    out: list[Loc] = []
    stack: list[tuple[Any, Loc]] = [(doc, ())]
    while stack:
        node, loc = stack.pop()
        out.append(loc)
        if isinstance(node, dict):
            stack.extend((v, (*loc, k)) for k, v in reversed(list(node.items())))
        elif isinstance(node, list) and len(node) <= 200:
            stack.extend((v, (*loc, i)) for i, v in reversed(list(enumerate(node))))
    return out


def _parent(doc: Any, loc: Loc) -> Any:
    node = doc
    for part in loc[:-1]:
        node = node[part]
    return node


def _key(value: Any) -> str | int:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else str(value)


def apply(doc: Any, m: Mutation) -> Any:
    """``doc`` (copied) with one mutation applied."""
    doc = copy.deepcopy(doc)
    all_paths = paths(doc)
    loc = all_paths[m.at % len(all_paths)]
    if not loc:
        if m.op == "replace":
            return copy.deepcopy(m.value)
        if m.op == "nest":
            return _nest(doc)
        return None if m.op == "drop" else doc
    parent, last = _parent(doc, loc), loc[-1]
    if m.op == "replace":
        parent[last] = copy.deepcopy(m.value)
    elif m.op == "drop":
        del parent[last]
    elif m.op == "nest":
        parent[last] = _nest(parent[last])
    elif m.op == "duplicate":
        if isinstance(parent, list):
            parent.insert(int(last), copy.deepcopy(parent[int(last)]))
        else:
            parent[_key(m.value)] = copy.deepcopy(parent[last])
    elif m.op == "rename" and isinstance(parent, dict):
        parent[_key(m.value)] = parent.pop(last)
    return doc


def _nest(value: Any) -> Any:
    for _ in range(NEST_DEPTH):
        value = [value]
    return value


def apply_text(text: str, m: TextMutation) -> str:
    """``text`` with one text mutation applied."""
    lines = text.splitlines()
    if m.op in ("dup-line", "drop-line") and lines:
        i = m.at % len(lines)
        return (
            "\n".join(
                lines[: i + 1] + lines[i:] if m.op == "dup-line" else lines[:i] + lines[i + 1 :]
            )
            + "\n"
        )
    if m.op == "truncate":
        return text[: m.at % (len(text) + 1)]
    if m.op == "bomb":
        return alias_bomb(levels=3 + m.at % 7) + text
    if m.op == "deep":
        return (
            deep_list(1_000 + m.at % 100_000) if m.at % 2 else deep_map_json(1_000 + m.at % 5_000)
        ) + text
    if m.op == "swap-char" and text:
        i = m.at % len(text)
        return text[:i] + "\x00{[:&*'\"\\,#-!%|>"[m.at % 16] + text[i + 1 :]
    return text


# -- surfaces: every loader and parser the fuzzers call in-process -----------------------------


@dataclass(frozen=True)
class Surface:
    """One input surface: a valid base document, how it is written (``fmt``, ``filename``),
    and the library call the command line makes on such a file. The property: the call
    returns, or raises :class:`twin.errors.TwinError` with a one-line message, or (for the
    enforcer's metrics) one of ``allowed``, the exceptions its contract documents."""

    name: str
    fmt: Literal["yaml", "json", "jsonl", "csv", "text"]
    filename: str
    base: Callable[[], Any]
    call: Callable[[Path, Path], object]
    allowed: tuple[str, ...] = ()


def render(surface: Surface, trial: Trial) -> bytes:
    """The bytes of one fuzzed input for ``surface``."""
    if trial.raw is not None:
        return trial.raw
    doc = surface.base()
    for m in trial.mutations:
        doc = apply(doc, m)
    if surface.fmt == "yaml":
        try:
            text = to_yaml(doc)
        except (yaml.YAMLError, ValueError, TypeError):
            text = json.dumps(doc, default=str)
    elif surface.fmt in ("json", "jsonl"):
        text = json.dumps(doc, default=str)
    elif surface.fmt == "csv":
        text = (
            "\n".join(
                ",".join(str(c) for c in row) if isinstance(row, list) else str(row)
                for row in (doc if isinstance(doc, list) else [doc])
            )
            + "\n"
        )
    else:
        text = doc if isinstance(doc, str) else json.dumps(doc, default=str)
    for t in trial.text_mutations:
        text = apply_text(text, t)
    return text.encode("utf-8", "surrogatepass")


def _write_beside(folder: Path) -> tuple[Path, Path, Path]:
    t, s, p = (
        folder / "base-topology.yaml",
        folder / "base-scenario.yaml",
        folder / "base-policy.yaml",
    )
    if not t.exists():
        t.write_text(to_yaml(topology()), encoding="utf-8")
        s.write_text(to_yaml(scenario()), encoding="utf-8")
        p.write_text(to_yaml(policy()), encoding="utf-8")
    return t, s, p


def _check_documents(topo: Path, sc: Path | None, pol: Path | None) -> object:
    """What ``twin check`` does before it prints: load and cross-check the three documents,
    then the offered load per service."""
    from twin.cli.simulate import load_documents

    t, _, _ = load_documents(topo, sc, pol, {})
    g = t.service_graph()
    return max((d["utilization"] for _, d in g.nodes(data=True)), default=0.0)


def _call_topology(path: Path, folder: Path) -> object:
    _, s, p = _write_beside(folder)
    return _check_documents(path, s, p)


def _call_scenario(path: Path, folder: Path) -> object:
    t, _, p = _write_beside(folder)
    return _check_documents(t, path, p)


def _call_policy(path: Path, folder: Path) -> object:
    t, s, _ = _write_beside(folder)
    return _check_documents(t, s, path)


def _call_campaign(path: Path, folder: Path) -> object:
    from twin.campaign import load_campaign

    (folder / "topology.yaml").write_text(to_yaml(topology()), encoding="utf-8")
    return load_campaign(path)


def _call_override(path: Path, _: Path) -> object:
    from agents.runtime import read_override

    return read_override(path, enforce_services())


def _call_snapshot(path: Path, _: Path) -> object:
    from agents.runtime import FileMetrics

    return FileMetrics(path).read(100.0)  # the enforcer's clock at the base snapshot's time


def _call_policy_file(path: Path, _: Path) -> object:
    from agents.export.policy_file import PolicyFile

    return PolicyFile.load(path)


def _call_chaos(path: Path, _: Path) -> object:
    from twin.store.chaos import parse_chaos_file

    return parse_chaos_file(path)


def _call_traces(path: Path, _: Path) -> object:
    from twin.calibrate.traces import read_traces

    return read_traces([path])


def _call_prometheus(path: Path, _: Path) -> object:
    from twin.calibrate.metrics import load_dump, summarize

    return summarize(load_dump(path))


def _call_history(path: Path, _: Path) -> object:
    from twin.bayes.evidence import read_history

    return read_history(path)


def _call_yaml(path: Path, _: Path) -> object:
    from twin.safeload import read_yaml

    return read_yaml(path)


def _call_json(path: Path, _: Path) -> object:
    from twin.safeload import read_json

    return read_json(path, "telemetry")


def _call_mapping(path: Path, _: Path) -> object:
    from twin.calibrate.metrics import MetricMap

    return MetricMap.load(path)


def _call_mask(path: Path, _: Path) -> object:
    from twin.calibrate.mask import Masker

    return Masker.load(path)


def _call_queries(path: Path, _: Path) -> object:
    from agents.runtime import PrometheusQueries
    from twin.io import load_model

    return load_model(PrometheusQueries, path)


def _enforce_policy_doc() -> Any:
    return json.loads(ENFORCE_POLICY.read_text(encoding="utf-8"))


def _history_rows() -> list[list[str]]:
    return [line.split(",") for line in incident_log().strip().splitlines()]


SURFACES: dict[str, Surface] = {
    s.name: s
    for s in (
        Surface("topology", "yaml", "topology.yaml", topology, _call_topology),
        Surface("scenario", "yaml", "scenario.yaml", scenario, _call_scenario),
        Surface("policy", "yaml", "policy.yaml", policy, _call_policy),
        Surface("campaign", "yaml", "campaign.yaml", campaign, _call_campaign),
        Surface("override", "yaml", "override.yaml", override, _call_override),
        Surface(
            "metrics-snapshot",
            "jsonl",
            "metrics.jsonl",
            lambda: snapshot(100.0),
            _call_snapshot,
            allowed=("MetricsUnavailable", "EndOfMetrics"),
        ),
        Surface("policy-file", "json", "policy.json", _enforce_policy_doc, _call_policy_file),
        Surface("chaos-result", "json", "result.json", chaos_result, _call_chaos),
        Surface("chaos-journal", "json", "journal.json", chaos_journal, _call_chaos),
        Surface("traces-otlp", "json", "otlp.json", otlp_traces, _call_traces),
        Surface("traces-zipkin", "json", "zipkin.json", zipkin_traces, _call_traces),
        Surface("traces-jaeger", "json", "jaeger.json", jaeger_traces, _call_traces),
        Surface("prometheus-dump", "json", "metrics.json", prometheus_dump, _call_prometheus),
        Surface("risk-history", "csv", "history.csv", _history_rows, _call_history),
        Surface("safe-yaml", "yaml", "doc.yaml", topology, _call_yaml),
        Surface("safe-json", "json", "doc.json", otlp_traces, _call_json),
        Surface("metric-mapping", "yaml", "mapping.yaml", metric_map, _call_mapping),
        Surface("masking", "yaml", "mask.yaml", mask_config, _call_mask),
        Surface("enforce-queries", "yaml", "queries.yaml", queries, _call_queries),
    )
}
"""Every loader and parser a user's file reaches, by name."""


@dataclass(frozen=True)
class Outcome:
    """What one in-process trial did: ``ok`` (returned), ``refused`` (a one-line TwinError or
    an allowed exception), or ``failure`` with the exception type and its last line."""

    status: Literal["ok", "refused", "failure"]
    detail: str = ""


def run_trial(surface: Surface, data: bytes, folder: Path) -> Outcome:
    """Write ``data`` as the surface's file in ``folder`` and make the call; classify it."""
    from twin.errors import TwinError

    path = folder / surface.filename
    path.write_bytes(data)
    try:
        surface.call(path, folder)
    except TwinError as exc:
        msg = str(exc)
        if "\n" in msg or not msg.strip():
            return Outcome("failure", f"{type(exc).__name__} not one line: {msg[:300]!r}")
        return Outcome("refused", msg[:300])
    except Exception as exc:  # the property: nothing else escapes
        if type(exc).__name__ in surface.allowed:
            return Outcome("refused", str(exc)[:300])
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Outcome(
            "failure",
            f"{type(exc).__name__}: {str(exc)[:200]} "
            f"(at {Path(where.filename).name}:{where.lineno})",
        )
    return Outcome("ok")


def random_trial(rng: np.random.Generator) -> Trial:
    """A trial drawn with ``rng``: mostly structure mutations, some text mutations, some
    random bytes (the benchmark's counterpart of the hypothesis strategy in the tests)."""
    u = rng.random()
    if u < 0.1:
        n = int(rng.integers(0, 4096))
        return Trial(raw=rng.bytes(n))
    k = int(rng.integers(1, 4))
    muts = tuple(
        Mutation(
            OPS[int(rng.integers(len(OPS)))],
            int(rng.integers(0, 1_000_000)),
            _random_value(rng),
        )
        for _ in range(k)
    )
    texts: tuple[TextMutation, ...] = ()
    if u > 0.75:
        texts = (
            TextMutation(
                TEXT_OPS[int(rng.integers(len(TEXT_OPS)))], int(rng.integers(0, 1_000_000))
            ),
        )
    return Trial(mutations=muts, text_mutations=texts)


def _random_value(rng: np.random.Generator) -> Any:
    u = rng.random()
    if u < 0.7:
        return HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))]
    if u < 0.85:
        return float(rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(-320, 308))
    return int(rng.integers(-(2**62), 2**62))
