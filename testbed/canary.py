"""Real canary rollouts on the testbed, guarded by ``twin.change.guard``.

    python -m testbed.canary --runs 5 --out DIR      # 5 bad + 5 good rollouts, a table

The canary is a second process of one service (``cart`` by default) started with a new
profile, behind a weighted splitter that the service's callers reach instead of the
service: the stable process keeps its port, the canary gets ``weight`` of the calls
(``/admin/weight?canary=W`` on the splitter sets it), as a mesh's weighted route or Argo
Rollouts' canary step does. Prometheus scrapes the stable process as job ``cart`` and the
canary as ``cart-canary``: the guard compares the two concurrently.

- **Bad** rollouts alternate a latency profile (the new version's own work takes 50x as
  long, 0.5 s, with a heavy tail: cv 0.8) and an error profile (12% of its requests fail).
- **Good** rollouts start the same version again (a harmless restart).

**The SLO and its breach.** The entry's SLO: 99% of gateway requests succeed within 1 s
(``latency_p99: 1.0`` with ``availability: 0.99``), over a trailing 5-minute window. A run
breaches it at the first second at which, among the requests that completed by then within
the last 5 minutes (at least 100 of them), more than 1% failed or took longer than 1 s.
That truth comes from the load generator's own records (client side), not from Prometheus,
which is what the guard reads.

The guard acts through its generic command executor: the rollback plan is one command
(``curl`` setting the canary's weight to 0), and its verification checks are PromQL
queries (the canary gets no traffic; the entry's bad share over the 20 s after the rollback
is within the SLO; the stable process has no errors). Each run starts a fresh testbed on
free ports, runs the open-loop load for ``warmup + canary + tail`` seconds, and stops
everything, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from testbed.config import TestbedConfig
from testbed.http import Pool, serve
from testbed.load import command, environment
from testbed.run import ROOT, Testbed, _wait_port, free_base_port

HIST = "http_server_request_duration_seconds"
LATENCY_OBJECTIVE = 1.0
OBJECTIVE = 0.99
WINDOW = 300.0
MIN_EVENTS = 100


@dataclass
class CanaryConfig(TestbedConfig):
    """The testbed with a splitter in front of ``target``: callers reach the splitter
    (base + 10), the canary listens on base + 11."""

    target: str = "cart"

    @property
    def splitter_port(self) -> int:
        return self.base_port + 10

    @property
    def canary_port(self) -> int:
        return self.base_port + 11

    def service_json(
        self, name: str, spans_dir: str, access_log: str | None = None
    ) -> dict[str, Any]:
        cfg = super().service_json(name, spans_dir, access_log)
        cfg["ports"] = {**cfg["ports"], self.target: self.splitter_port}
        return cfg


@dataclass
class Profile:
    """A version of the target service: its own work and an injected error rate."""

    name: str
    bad: bool
    work_mean: float | None = None  # None: the stable version's
    error: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def profiles(run: int) -> tuple[Profile, Profile]:
    """(bad, good) for run ``run``: bad alternates a latency and an error profile."""
    bad = (
        Profile("latency-50x", True, work_mean=0.5, extra={"work_cv": 0.8})
        if run % 2 == 0
        else Profile("errors-12pct", True, error=0.12)
    )
    return bad, Profile("same-version", False)


class CanaryBed(Testbed):
    """The testbed plus the splitter, and a canary started on demand."""

    config: CanaryConfig

    def __init__(self, run_dir: str | Path, config: CanaryConfig) -> None:
        super().__init__(run_dir, config)

    def _write_prometheus_config(self) -> None:
        super()._write_prometheus_config()
        c = self.config
        with (self.dir / "prometheus.yml").open("a", encoding="utf-8") as f:
            f.write(
                f"  - job_name: {c.target}-canary\n"
                "    static_configs:\n"
                f"      - targets: ['127.0.0.1:{c.canary_port}']\n"
            )

    def start(self, timeout: float = 30.0) -> CanaryBed:
        super().start(timeout)
        c = self.config
        try:
            self._spawn(
                "splitter",
                [
                    sys.executable,
                    "-m",
                    "testbed.canary",
                    "splitter",
                    str(c.splitter_port),
                    str(c.port(c.target)),
                    str(c.canary_port),
                ],
            )
            if not _wait_port(c.splitter_port, timeout):
                raise RuntimeError(f"the splitter is not listening on {c.splitter_port}")
        except BaseException:
            self.stop()
            raise
        return self

    def set_weight(self, weight: float) -> None:
        import urllib.request

        url = f"http://127.0.0.1:{self.config.splitter_port}/admin/weight?canary={weight}"
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()

    def start_canary(self, profile: Profile, weight: float) -> None:
        """Start the new version, apply its profile, then send it ``weight`` of the calls."""
        c = self.config
        name = f"{c.target}-canary"
        cfg = c.service_json(c.target, str(self.spans_dir))
        cfg.update(port=c.canary_port, spans=f"{self.spans_dir}/{name}.jsonl", **profile.extra)
        if profile.work_mean is not None:
            cfg["work_mean"] = profile.work_mean
        path = self.dir / "config" / f"{name}.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        self._spawn(name, [sys.executable, "-m", "testbed.service", str(path)])
        if not _wait_port(c.canary_port, 20):
            raise RuntimeError("the canary did not start")
        if profile.error:
            import urllib.request

            url = f"http://127.0.0.1:{c.canary_port}/admin/fault?error={profile.error}"
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
        self.set_weight(weight)


# -- the splitter ---------------------------------------------------------------------------


async def _splitter(port: int, stable: int, canary: int) -> None:
    pools = {"stable": Pool("127.0.0.1", stable), "canary": Pool("127.0.0.1", canary)}
    state = {"weight": 0.0}
    rng = random.Random(port)

    async def handle(
        method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        url = urlparse(target)
        if url.path == "/admin/weight":
            w = float(parse_qs(url.query).get("canary", ["0"])[0])
            state["weight"] = min(max(w, 0.0), 1.0)
            return 200, "application/json", json.dumps(state).encode()
        side = "canary" if rng.random() < state["weight"] else "stable"
        fwd = {k: v for k, v in headers.items() if k == "traceparent"}
        try:
            status, payload = await pools[side].get(target, fwd)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            return 503, "text/plain", b"upstream unavailable"
        return status, "application/json", payload

    server = await asyncio.start_server(serve(handle), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


# -- the guard's view of the testbed ----------------------------------------------------------


def guard_spec(c: CanaryConfig, *, interval: float = 2.0, threshold: float = 0.5) -> dict[str, Any]:
    """The guard document for the testbed (also written to each run's folder)."""
    t = c.target
    rate = "[4s]"

    def mean(job: str) -> str:
        sel = f'{{job="{job}"}}'
        return f"sum(rate({HIST}_sum{sel}{rate})) / sum(rate({HIST}_count{sel}{rate}))"

    def errors(job: str) -> str:
        return (
            f'(sum(rate({HIST}_count{{job="{job}",http_response_status_code!="200"}}{rate})) '
            f'or vector(0)) / sum(rate({HIST}_count{{job="{job}"}}{rate}))'
        )

    def p90(job: str) -> str:
        return f'histogram_quantile(0.9, sum by (le) (rate({HIST}_bucket{{job="{job}"}}[8s])))'

    entry_total = f'sum({HIST}_count{{job="gateway"}})'
    entry_good = (
        f'sum({HIST}_bucket{{job="gateway",http_response_status_code="200",'
        f'le="{LATENCY_OBJECTIVE}"}})'
    )
    w = "${window}"
    return {
        "service": t,
        "interval_seconds": interval,
        "step_seconds": 2.0,
        "lookback_seconds": 30.0,
        "warmup_seconds": 10.0,
        "recent_seconds": 60.0,
        "recent_min_seconds": 20.0,
        "horizon_seconds": 60.0,
        "threshold": threshold,
        "metrics": [
            {
                "name": "latency_mean",
                "canary": mean(f"{t}-canary"),
                "baseline": mean(t),
                "allowed_increase": 1.5,
                "min_shift": 0.005,
                "variance_check": False,
            },
            {
                "name": "latency_p90",
                "canary": p90(f"{t}-canary"),
                "baseline": p90(t),
                "allowed_increase": 1.5,
                "min_shift": 0.005,
                "variance_check": False,
            },
            {
                "name": "error_ratio",
                "canary": errors(f"{t}-canary"),
                "baseline": errors(t),
                "nan_strategy": "replace",
                "critical": True,
                "min_shift": 0.02,
            },
        ],
        "slo": {
            "total": entry_total,
            "good": entry_good,
            "objective": OBJECTIVE,
            "window_seconds": WINDOW,
            "min_events": MIN_EVENTS,
        },
        "rollback": {
            "commands": [
                [
                    "curl",
                    "-fsS",
                    "-m",
                    "5",
                    f"http://127.0.0.1:{c.splitter_port}/admin/weight?canary=0",
                ]
            ],
            "checks": [
                {
                    "name": "canary-drained",
                    "query": f'sum(rate({HIST}_count{{job="{t}-canary"}}[5s])) or vector(0)',
                    "op": "<=",
                    "threshold": 0.05,
                    "window_seconds": 15.0,
                },
                {
                    "name": "entry-within-slo",
                    # the 20 s after a 10 s drain: requests the canary already held
                    # finish (slowly) just after the rollback, and are not the recovery
                    "query": f'1 - sum(increase({HIST}_bucket{{job="gateway",'
                    f'http_response_status_code="200",le="{LATENCY_OBJECTIVE}"}}[20s])) / '
                    f'sum(increase({HIST}_count{{job="gateway"}}[20s]))',
                    "op": "<=",
                    "threshold": 1 - OBJECTIVE,
                    "window_seconds": 30.0,
                },
                {
                    "name": "stable-no-errors",
                    "query": f'(sum(increase({HIST}_count{{job="{t}",'
                    f'http_response_status_code!="200"}}[{w}])) or vector(0))',
                    "op": "<=",
                    "threshold": 0.0,
                    "window_seconds": 20.0,
                },
            ],
        },
    }


def slo_truth(records: list[list[float]], load_start: float, canary_at: float) -> dict[str, Any]:
    """The SLO as the clients saw it: the first second (from the canary's start) at which
    the trailing window's bad share of completed requests exceeds the budget."""
    done = sorted(
        (load_start + s + lat, s >= 0 and (st != 200 or lat > LATENCY_OBJECTIVE))
        for s, lat, st in records
        if st != -1
    )
    lost = sum(1 for _, _, st in records if st == -1)
    first = None
    worst = 0.0
    end = done[-1][0] if done else load_start
    t = load_start + 1.0
    j = 0
    window: list[tuple[float, bool]] = []
    while t <= end + 1.0:
        while j < len(done) and done[j][0] <= t:
            window.append(done[j])
            j += 1
        window = [x for x in window if x[0] > t - WINDOW]
        if len(window) >= MIN_EVENTS:
            ratio = sum(b for _, b in window) / len(window)
            worst = max(worst, ratio)
            if ratio > 1 - OBJECTIVE and first is None:
                first = t - canary_at
        t += 1.0
    bad = sum(b for _, b in done)
    return {
        "requests": len(records),
        "bad": int(bad) + lost,
        "lost": lost,
        "breached": first is not None or lost > 0,
        "breach_after_canary_seconds": first,
        "worst_window_bad_ratio": worst,
    }


def one_run(
    profile: Profile,
    out: Path,
    *,
    rate: float,
    warmup: float,
    canary_seconds: float,
    tail: float,
    weight: float,
    act: bool,
    seed: int,
    threshold: float,
) -> dict[str, Any]:
    """One rollout under load, guarded (bounded: load + 30 s at most past the canary)."""
    from twin.change.guard import CommandExecutor, EmitOnly, Guard, GuardSpec, PrometheusSource

    out.mkdir(parents=True, exist_ok=True)
    cfg = CanaryConfig(base_port=free_base_port(), seed=seed)
    spec_data = guard_spec(cfg, threshold=threshold)
    (out / "guard.json").write_text(json.dumps(spec_data, indent=1), encoding="utf-8")
    spec = GuardSpec.model_validate(spec_data)
    duration = warmup + canary_seconds + tail
    bed = CanaryBed(out / "bed", cfg)
    load_out = out / "load.json"
    with bed:
        load_start = time.time()
        load = subprocess.Popen(
            command(bed.url(), rate, duration, seed, load_out),
            cwd=ROOT,
            env=environment(),
            start_new_session=True,
        )
        try:
            time.sleep(warmup)
            bed.start_canary(profile, weight)
            canary_at = time.time()
            source = PrometheusSource(bed.prometheus_url)
            guard = Guard(spec, source, started_at=canary_at)
            decisions = (out / "decisions.jsonl").open("w", encoding="utf-8")
            with decisions:
                summary = guard.run(
                    CommandExecutor(timeout=10) if act else EmitOnly(),
                    on_decision=lambda d: print(d.model_dump_json(), file=decisions),
                    until=canary_at + canary_seconds,
                )
            (out / "metrics.json").write_text(
                json.dumps({"started_at": canary_at, "series": source.recording()}),
                encoding="utf-8",
            )
            load.wait(timeout=duration + 60)
        finally:
            if load.poll() is None:
                os.killpg(load.pid, signal.SIGTERM)
                load.wait(timeout=10)
        recs = json.loads(load_out.read_text())["records"]
    truth = slo_truth(recs, load_start, canary_at)
    row = {
        "profile": profile.name,
        "bad": profile.bad,
        "rolled_back": summary["rolled_back"],
        "acted": summary["acted"],
        "seconds_to_rollback": summary["seconds_to_rollback"],
        "max_p_breach": summary["max_p_breach"],
        "final_decision": summary["final_decision"],
        "final_classification": summary["final_classification"],
        "verified": summary["verified"],
        "checks": {c["name"]: [c["value"], c["passed"]] for c in summary["checks"]},
        "slo": truth,
        "rolled_back_before_breach": (summary["rolled_back"] and not truth["breached"])
        or (
            summary["rolled_back"]
            and truth["breach_after_canary_seconds"] is not None
            and summary["seconds_to_rollback"] is not None
            and summary["seconds_to_rollback"] < truth["breach_after_canary_seconds"]
        ),
        "load_average": os.getloadavg(),
    }
    (out / "summary.json").write_text(json.dumps({**summary, "run": row}, indent=1))
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| run | profile | rolled back | s to rollback | max P | SLO breached | checks | load avg |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        s = r["slo"]
        after = s["breach_after_canary_seconds"]
        br = "no" if not s["breached"] else f"yes (+{after:.0f} s)" if after else "yes"
        ttr = f"{r['seconds_to_rollback']:.1f}" if r["seconds_to_rollback"] is not None else "-"
        checks = "pass" if r["verified"] else ("-" if not r["checks"] else "FAIL")
        done = "no" if not r["rolled_back"] else "yes" if r.get("acted", True) else "decided only"
        la = "/".join(f"{x:.2f}" for x in r["load_average"])
        lines.append(
            f"| {r['run']} | {r['profile']} | {done} | {ttr} | "
            f"{r['max_p_breach']:.2f} | {br} | {checks} | {la} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["splitter"]:
        port, stable, canary = (int(x) for x in args[1:4])
        asyncio.run(_splitter(port, stable, canary))
        return 0
    ap = argparse.ArgumentParser(
        prog="python -m testbed.canary", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--runs", type=int, default=5, help="bad rollouts, and as many good ones")
    ap.add_argument("--rate", type=float, default=8.0, help="gateway requests per second")
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--canary-seconds", type=float, default=90.0)
    ap.add_argument("--tail", type=float, default=5.0)
    ap.add_argument("--weight", type=float, default=0.2, help="the canary's share of calls")
    ap.add_argument("--threshold", type=float, default=0.5, help="roll back at this P(breach)")
    ap.add_argument("--no-act", action="store_true", help="emit only (a control run)")
    ap.add_argument("--only", choices=["bad", "good", "both"], default="both")
    ap.add_argument(
        "--controls",
        type=int,
        default=0,
        help="then this many bad rollouts the guard only watches: when would the SLO break?",
    )
    ap.add_argument("--db", default=None, help="failure-mode database URL: record each rollout")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(args)
    out = a.out or Path(tempfile.mkdtemp(prefix="canary-"))
    rows: list[dict[str, Any]] = []
    plan = []
    for i in range(a.runs):
        bad, good = profiles(i)
        if a.only in ("bad", "both"):
            plan.append((f"bad-{i + 1}", bad, i))
        if a.only in ("good", "both"):
            plan.append((f"good-{i + 1}", good, i))
    for i in range(a.controls):
        plan.append((f"control-{i + 1}", profiles(i)[0], i))
    for name, prof, i in plan:
        row = one_run(
            prof,
            out / name,
            rate=a.rate,
            warmup=a.warmup,
            canary_seconds=a.canary_seconds,
            tail=a.tail,
            weight=a.weight,
            act=not a.no_act and not name.startswith("control"),
            seed=i + 1,
            threshold=a.threshold,
        )
        row = {"run": name, **row}
        rows.append(row)
        if a.db is not None:
            from twin.change.rollout import record

            summary = json.loads((out / name / "summary.json").read_text())
            summary["name"] = f"testbed-canary-{prof.name}"
            record(a.db, summary, observed_breach=row["slo"]["breached"])
        print(json.dumps(row), flush=True)
    table = _table(rows)
    (out / "runs.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


__all__ = ["CanaryBed", "CanaryConfig", "Profile", "guard_spec", "one_run", "profiles", "slo_truth"]


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))  # unwind, so the testbed stops
    threading.current_thread().name = "canary"
    sys.exit(main())
