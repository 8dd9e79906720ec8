"""A long fuzzing run over every input surface: trials, failures, tracebacks, hangs, peak RSS.

Trial ``i`` goes to surface ``i mod S`` (the loaders and parsers of
``tests/hostile_corpus.SURFACES``) and its input is drawn from ``numpy.random.default_rng((seed,
i))``: structure-aware mutations of a valid document (hostile numbers, wrong types, names
that collide with the policy's syntax, keys dropped, duplicated or renamed, values nested past
the limit), text mutations (a line written twice, the text cut, an alias bomb or deep nesting
in front) or random bytes. The same seed gives the same inputs.

In-process trials run in a worker process, each under a CPU-time limit (an alarm inside the
worker; CPU, not wall, so a busy machine does not make a trial look hung), a wall backstop of
six times that watched from outside for code that never returns to Python, and an RSS bound
watched from outside; a worker that hangs or grows past the bound is killed, the trial is
counted, and a new worker carries on. Every ``--cli-every``-th trial also runs through the
real command line (``twin check``/``ingest``/``calibrate``/``enforce``) under the same
bounds, where the contract is exit 0, or exit 2 with one line, and never a traceback.

A failing input is saved to ``--out`` with what happened; when one of its mutations alone
fails the same way, that smaller input is saved instead (the minimal reproducer).

    python -m benchmarks.fuzz                      # 10,000 trials, seed 1
    python -m benchmarks.fuzz --trials 1000 --cli-every 0 --seed 7 --out /tmp/fuzz-out

Run it from the repository's root (``python -m`` puts the root on the path, so the generator
in ``tests/`` is importable). Exit status: 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import resource
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def _load_corpus() -> ModuleType:
    """The input generator shared with the test suite (``tests/hostile_corpus.py``), loaded
    from its file: ``tests`` is not a package, and a third-party one may own that name."""
    path = Path(__file__).resolve().parents[1] / "tests" / "hostile_corpus.py"
    spec = importlib.util.spec_from_file_location("hostile_corpus", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_corpus"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


hc = _load_corpus()
SURFACES: dict[str, Any] = hc.SURFACES
SURFACE_NAMES = sorted(SURFACES)


class TrialTimeout(BaseException):
    """Raised by the worker's alarm: a trial ran past its CPU limit (a BaseException, so the
    trial's own ``except Exception`` cannot swallow it)."""


def trial_for(seed: int, i: int) -> tuple[Any, Any]:
    """The surface and input of trial ``i`` under ``seed``."""
    surface = SURFACES[SURFACE_NAMES[i % len(SURFACE_NAMES)]]
    return surface, hc.random_trial(np.random.default_rng((seed, i)))


# -- the in-process worker ------------------------------------------------------------------------


def _on_alarm(signum: int, frame: object) -> None:
    raise TrialTimeout


def _timed(surface: Any, data: bytes, folder: Path, timeout: float) -> Any:
    signal.setitimer(signal.ITIMER_PROF, timeout)
    try:
        return hc.run_trial(surface, data, folder)
    except TrialTimeout:
        return hc.Outcome("failure", f"hang: over {timeout:g} CPU seconds")
    except RecursionError as exc:
        return hc.Outcome("failure", f"RecursionError: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def _minimal(surface: Any, trial: Any, outcome: Any, folder: Path, timeout: float) -> bytes:
    """The smallest input among the trial's single mutations (and the trial without its text
    mutations) that fails with the same exception type; else the trial's own input."""
    kind = outcome.detail.split(":", 1)[0]
    candidates = [replace(trial, text_mutations=())] if trial.text_mutations else []
    candidates += [hc.Trial(mutations=(m,)) for m in trial.mutations]
    candidates += [hc.Trial(text_mutations=(t,)) for t in trial.text_mutations]
    best = hc.render(surface, trial)
    for c in candidates:
        data = hc.render(surface, c)
        got = _timed(surface, data, folder, timeout)
        if (
            got.status == "failure"
            and got.detail.split(":", 1)[0] == kind
            and len(data) <= len(best)
        ):
            best = data
    return bytes(best)


def worker(conn: Connection, seed: int, indices: list[int], timeout: float) -> None:
    """Run the trials ``indices`` in turn, sending one message per trial."""
    signal.signal(signal.SIGPROF, _on_alarm)
    with tempfile.TemporaryDirectory(prefix="twin-fuzz-") as tmp:
        # warm up untimed: the first call of a surface imports its libraries
        for name in SURFACE_NAMES:
            warm = Path(tmp) / f"warm-{name}"
            warm.mkdir()
            hc.run_trial(SURFACES[name], hc.render(SURFACES[name], hc.Trial()), warm)
        conn.send(None)  # ready: the parent's watchdog starts now
        for i in indices:
            surface, trial = trial_for(seed, i)
            folder = Path(tmp) / str(i)
            folder.mkdir()
            data = hc.render(surface, trial)
            outcome = _timed(surface, data, folder, timeout)
            reproducer = b""
            if outcome.status == "failure":
                reproducer = _minimal(surface, trial, outcome, folder, timeout)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            conn.send((i, outcome.status, outcome.detail, rss, reproducer))
            for p in folder.iterdir():
                if p.is_file():
                    p.unlink()
            folder.rmdir()
    conn.close()


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts per surface and status; failures with their details; the peak RSS seen."""

    counts: dict[str, Counter[str]]
    failures: list[dict[str, Any]]
    peak_rss_mb: float = 0.0

    def add(self, surface: str, status: str, detail: str = "", index: int = -1) -> None:
        self.counts[surface][status] += 1
        if status in ("failure", "hang", "rss"):
            self.failures.append(
                {"surface": surface, "trial": index, "status": status, "detail": detail}
            )


def _proc_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return 0.0


def _save(out: Path, surface: Any, index: int, data: bytes, what: dict[str, Any]) -> None:
    folder = out / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{surface.name}-{index}"
    (folder / f"{stem}-{surface.filename}").write_bytes(data)
    (folder / f"{stem}.json").write_text(json.dumps(what, indent=2) + "\n", encoding="utf-8")


def run_in_process(
    seed: int, indices: list[int], timeout: float, rss_mb: float, out: Path, tally: Tally
) -> None:
    """Every trial in ``indices``, in workers that are replaced when one hangs or grows."""
    ctx = mp.get_context("fork")
    wall = 6 * timeout  # a backstop for code that never returns to Python (the alarm is CPU)
    pending = list(indices)
    while pending:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=worker, args=(child, seed, pending, timeout), daemon=True)
        proc.start()
        child.close()
        last = time.monotonic()
        ready = False
        broken: str | None = None
        while pending:
            if parent.poll(0.05):
                try:
                    message = parent.recv()
                except EOFError:
                    broken = "worker died"
                    break
                last = time.monotonic()
                if message is None:
                    ready = True
                    continue
                i, status, detail, rss, reproducer = message
                surface = SURFACES[SURFACE_NAMES[i % len(SURFACE_NAMES)]]
                tally.peak_rss_mb = max(tally.peak_rss_mb, rss)
                tally.add(surface.name, status, detail, i)
                if status == "failure":
                    _save(
                        out,
                        surface,
                        i,
                        reproducer,
                        {"status": status, "detail": detail, "seed": seed, "trial": i},
                    )
                pending.remove(i)
                last = time.monotonic()
                continue
            if not proc.is_alive() and not parent.poll(0):
                broken = f"worker died (exit {proc.exitcode})"
                break
            rss_now = _proc_rss_mb(proc.pid or 0)
            tally.peak_rss_mb = max(tally.peak_rss_mb, rss_now)
            if rss_now > rss_mb:
                broken = f"rss: over {rss_mb:g} MB"
                break
            if ready and time.monotonic() - last > wall:
                broken = f"hang: no answer in {wall:g} s of wall time"
                break
        if broken is not None and pending:
            i = pending.pop(0)
            surface, trial = trial_for(seed, i)
            status = (
                "rss"
                if broken.startswith("rss")
                else "hang"
                if broken.startswith("hang")
                else "failure"
            )
            tally.add(surface.name, status, broken, i)
            _save(
                out,
                surface,
                i,
                hc.render(surface, trial),
                {"status": status, "detail": broken, "seed": seed, "trial": i},
            )
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()


# -- the command-line sample --------------------------------------------------------------------


CLI_SURFACES = frozenset(
    {"topology", "scenario", "policy", "chaos-result", "chaos-journal", "traces-otlp"}
    | {"traces-zipkin", "traces-jaeger", "prometheus-dump", "metrics-snapshot", "override"}
)
"""Surfaces whose file one ``twin`` command reads on its own."""


def _cli_args(surface: Any, path: Path, folder: Path) -> list[str] | None:
    """The ``twin`` command that reads a file of this surface, or None (no single command)."""
    docs = {"topology": hc.topology, "scenario": hc.scenario, "policy": hc.policy}
    if surface.name in docs:
        files = {}
        for name, make in docs.items():
            f = path if name == surface.name else folder / f"base-{name}.yaml"
            if name != surface.name:
                f.write_text(hc.to_yaml(make()), encoding="utf-8")
            files[name] = str(f)
        return [
            "check",
            files["topology"],
            "--scenario",
            files["scenario"],
            "--policy",
            files["policy"],
        ]
    if surface.name.startswith("chaos"):
        return ["ingest", str(path), "--db", str(folder / "fuzz.db")]
    if surface.name.startswith("traces"):
        return ["calibrate", "--traces", str(path), "--out", str(folder / "out"), "--predict", "0"]
    if surface.name == "prometheus-dump":
        return ["calibrate", "--metrics", str(path), "--out", str(folder / "out"), "--predict", "0"]
    enforce = ["enforce", str(hc.ENFORCE_POLICY), "--rules", "--emit", "json", "--interval", "0.01"]
    if surface.name == "metrics-snapshot":
        return [*enforce, "--metrics", str(path)]
    if surface.name == "override":
        metrics = folder / "healthy.jsonl"
        services = hc.enforce_services()
        metrics.write_text(
            "\n".join(json.dumps(hc.snapshot(100.0 + 5 * k, services)) for k in range(2)) + "\n"
        )
        return [*enforce, "--metrics", str(metrics), "--override", str(path)]
    return None


def cli_problem(args: list[str], r: Any) -> str | None:
    """None when the command kept its contract: exit 0, or exit 2 with one line; no
    traceback; an enforcer's output strict JSON."""
    if r.killed:
        return f"killed: {r.killed}"
    if "Traceback" in r.stderr:
        return "traceback: " + " ".join(r.stderr.strip().splitlines()[-1:])[:300]
    if r.returncode == 2:
        lines = r.stderr.strip("\n").splitlines()
        return None if len(lines) == 1 else f"exit 2 with {len(lines)} lines on stderr"
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()[-200:]!r}"
    if args[0] == "enforce":
        for line in r.stdout.splitlines():
            try:
                json.loads(line, parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
            except ValueError:
                return f"enforce printed a line that is not strict JSON: {line[:120]!r}"
    return None


def run_cli(
    seed: int, indices: list[int], timeout: float, rss_mb: float, out: Path, tally: Tally
) -> int:
    """The command-line sample; returns how many trials ran through ``twin``."""
    ran = 0
    for i in indices:
        surface, trial = trial_for(seed, i)
        with tempfile.TemporaryDirectory(prefix="twin-fuzz-cli-") as tmp:
            folder = Path(tmp)
            path = folder / surface.filename
            data = hc.render(surface, trial)
            path.write_bytes(data)
            args = _cli_args(surface, path, folder)
            if args is None:
                continue
            r = hc.run_bounded(
                hc.twin_argv(*args),
                cwd=folder,
                env=hc.child_env(folder),
                timeout=timeout,
                rss_limit_mb=rss_mb,
            )
            ran += 1
            tally.peak_rss_mb = max(tally.peak_rss_mb, r.peak_rss_mb)
            problem = cli_problem(args, r)
            name = f"cli:{surface.name}"
            if problem is None:
                tally.add(name, "ok" if r.returncode == 0 else "refused")
            else:
                status = (
                    "rss" if r.killed and "RSS" in r.killed else "hang" if r.killed else "failure"
                )
                tally.add(name, status, problem, i)
                _save(
                    out,
                    surface,
                    i,
                    data,
                    {"status": status, "detail": problem, "argv": args, "seed": seed, "trial": i},
                )
    return ran


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=10_000, help="in-process trials (all surfaces)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--cli-every", type=int, default=200, help="every Nth trial also through twin (0: none)"
    )
    ap.add_argument("--timeout", type=float, default=10.0, help="CPU seconds per trial")
    ap.add_argument("--rss-mb", type=float, default=500.0, help="peak RSS bound per process")
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"), help="failing inputs go here")
    ap.add_argument("--surfaces", default="", help="comma-separated subset (default: all)")
    a = ap.parse_args()
    wanted = set(a.surfaces.split(",")) if a.surfaces else set(SURFACE_NAMES)
    unknown = wanted - set(SURFACE_NAMES)
    if unknown:
        ap.error(f"unknown surfaces {sorted(unknown)}; known: {', '.join(SURFACE_NAMES)}")
    indices = [i for i in range(a.trials) if SURFACE_NAMES[i % len(SURFACE_NAMES)] in wanted]
    tally = Tally(defaultdict(Counter), [])
    started = time.monotonic()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run_in_process(a.seed, indices, a.timeout, a.rss_mb, a.out, tally)
    in_process = time.monotonic() - started
    # the command-line sample: trials of surfaces that one twin command reads, drawn with
    # the seed, about one in --cli-every of all trials
    has_cli = [i for i in indices if SURFACE_NAMES[i % len(SURFACE_NAMES)] in CLI_SURFACES]
    n_cli = min(len(has_cli), len(indices) // a.cli_every) if a.cli_every else 0
    pick = np.random.default_rng((a.seed, 1 << 20)).choice(len(has_cli), n_cli, replace=False)
    cli = sorted(has_cli[int(k)] for k in pick)
    cli_ran = run_cli(a.seed, cli, a.timeout, a.rss_mb, a.out, tally)
    wall = time.monotonic() - started

    print(
        f"fuzz: seed {a.seed}, {len(indices)} in-process trials over {len(wanted)} surfaces "
        f"({in_process:.0f} s), {cli_ran} through the command line; {wall:.0f} s wall"
    )
    columns = ("trials", "ok", "refused", "failure", "hang", "rss")
    print(f"{'surface':28s}" + "".join(f"{c:>9s}" for c in columns))
    for name in sorted(tally.counts):
        c = tally.counts[name]
        row = [sum(c.values()), *(c[k] for k in columns[1:])]
        print(f"{name:28s}" + "".join(f"{n:9d}" for n in row))
    totals: Counter[str] = Counter()
    for c in tally.counts.values():
        totals.update(c)
    tracebacks = sum(1 for f in tally.failures if f["status"] == "failure")
    print(
        f"total: {sum(totals.values())} trials, {tracebacks} tracebacks, {totals['hang']} hangs, "
        f"{totals['rss']} over {a.rss_mb:g} MB; peak RSS {tally.peak_rss_mb:.0f} MB"
    )
    kinds = Counter((f["surface"], f["detail"].split(" (at ")[0][:120]) for f in tally.failures)
    for (surface, detail), n in kinds.most_common(40):
        print(f"  {n:5d} x {surface}: {detail}")
    if tally.failures:
        print(f"reproducers in {a.out}/failures/")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
