"""``twin watch`` live on the real testbed, with real faults, scored against what users saw.

    python -m testbed.watch_check --out out/watch-check                # every phase in turn
    python -m testbed.watch_check --out DIR --phase prepare|faults|quiet|score

1. **prepare**: start the testbed on free ports, calibrate the twin from it (the topology the
   watch uses), record a few minutes of fault-free load from its Prometheus (a
   ``query_range`` dump), and replay that dump once through ``twin watch --recogniser auto``,
   which trains the recogniser on the calibrated topology's *simulated* failures (with the
   recorded noise) and keeps it (``DIR/cache``). The testbed is then stopped.
2. **faults**: a fresh testbed, open-loop load, and ``twin watch --prometheus URL
   --recogniser auto`` (the recogniser kept in step 1; nothing of the real faults is seen in
   training). After a fault-free warm-up, real faults are injected one at a time, each
   ramping up in six steps 20 s apart from a first step below the objective (real
   degradations rarely arrive at full size, and a step fault leaves nothing to anticipate),
   held, cleared, and followed by a recovery period:
   latency and errors through the services' ``/admin/fault``, CPU contention by ``stress-ng``
   on the core the CPU-bound service is pinned to (its hog session's autogroup weight raised
   step by step).
3. **quiet**: a fresh testbed, the same load and the same live watch for ``--quiet-seconds``
   without any fault: every firing alert is a false alarm.
4. **score**: each injection is matched with the first firing alert raised from its start to
   its end plus ``--grace`` seconds: kind right, root cause first and in the first three.
   The SLO breach is read from the load generator's own records (client side): the first
   second at which the requests completed in the trailing ``--slo-window`` seconds (15 by
   default, whatever the watch's ``--window``, 5 s by default; at least ``MIN_REQUESTS``)
   have a p99 above the objective, or the latest completed
   requests, at least enough to resolve the availability objective (200 at 99%, as the
   watch judges it), have more failed than it allows. The twin's lead is breach time minus
   the alert's window time; the burn-rate page's (the SRE workbook's pair, evaluated by
   the watch on the same windows: ``timeline.json`` ``burn_rate``) is read the same way
   from the first window it starts firing in.

Everything is bounded: each load run by its duration plus a grace, each watch by its number
of polls, each testbed stopped whatever happens. Results: ``DIR/results.json`` and
``DIR/results.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from testbed.config import TestbedConfig, default_services
from testbed.load import command, environment
from testbed.run import ROOT, Testbed, free_base_port
from twin.faults import CpuExhaustionFault, ErrorRateFault, LatencyFault
from twin.predict.breach import availability_broken, resolving_requests
from twin.predict.sources import query_step

MIN_REQUESTS = 20
"""A trailing window with fewer completed requests says nothing about a p99 or a share."""

CPU_CORE = 1
"""The core the CPU-bound service (catalog in the default system) is pinned to by default,
and the CPU hog runs on (``--core``)."""


# -- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    """One real fault: ``kind`` (a twin fault kind), ``target`` service, full ``intensity``
    (latency: seconds added; error_rate: share failed; cpu_exhaustion: the hog session's
    autogroup nice at full size, -20..0), reached in ``steps`` equal steps ``step_s`` apart,
    held to ``duration_s`` from the start."""

    kind: str
    target: str
    intensity: float
    duration_s: float = 180.0
    steps: int = 6
    step_s: float = 20.0


def default_plan() -> list[Injection]:
    """Every kind at several services: latency and errors at four services each, CPU
    contention at the one service that does CPU work (catalog, pinned to its core; the
    others' work is a sleep, which a CPU hog does not slow).

    Each ramp's first step (a sixth of the full size) stays below the entry's objective, so
    there is a breach to anticipate: latency adds 0.1-0.25 s to requests whose quiet p99 is
    about 0.5 s; errors are sized for about 3% of the entry's requests at full size and 0.5%
    (half the 1% budget) at the first step, through the calls per request each service
    takes (cart 1, pricing 3: catalog calls it twice and is reached 1.5 times; recommend
    0.5; catalog 1.5)."""
    return [
        Injection(LatencyFault.name, "pricing", 0.6),
        Injection(ErrorRateFault.name, "cart", 0.03),
        Injection(CpuExhaustionFault.name, "catalog", -10.0),
        Injection(LatencyFault.name, "cart", 1.2),
        Injection(ErrorRateFault.name, "pricing", 0.01),
        Injection(LatencyFault.name, "recommend", 1.5),
        Injection(ErrorRateFault.name, "recommend", 0.06),
        Injection(CpuExhaustionFault.name, "catalog", -15.0),
        Injection(LatencyFault.name, "catalog", 0.9),
        Injection(ErrorRateFault.name, "catalog", 0.02),
    ]


@dataclass
class Injected:
    """What was done, in unix seconds: the fault's start and end (cleared)."""

    kind: str
    target: str
    intensity: float
    start: float
    end: float


# -- scoring (pure functions: tested without a testbed) ---------------------------------------


def breach_time(
    records: Sequence[Sequence[float]],
    origin: float,
    start: float,
    end: float,
    *,
    window_s: float,
    slo_p99: float,
    availability: float,
) -> float | None:
    """The first whole second in [start, end] at which the requests completed in the trailing
    ``window_s`` (at least :data:`MIN_REQUESTS`) had a p99 above ``slo_p99``, or the latest
    completed requests (the trailing window's, and at least enough to resolve the objective:
    ``twin.predict.breach.resolving_requests``, as the watch judges it) broke
    ``availability``. ``records`` are the load generator's (sent, latency, status) with send
    times relative to ``origin`` (unix seconds); a request that never completed (status -1)
    is counted as failed when it was sent. None when the SLO held throughout."""
    if not records:
        return None
    r = np.asarray(records, dtype=float)
    done = np.where(r[:, 2] < 0, origin + r[:, 0], origin + r[:, 0] + r[:, 1])
    order = np.argsort(done)
    done, lat, bad = done[order], r[order, 1], (r[order, 2] != 200)
    need = math.ceil(resolving_requests(availability))
    t = float(np.ceil(start))
    while t <= end:
        a, b = np.searchsorted(done, [t - window_s, t], side="right")
        if b - a >= MIN_REQUESTS:
            p99 = float(np.quantile(lat[a:b], 0.99))
            pooled = min(int(a), max(int(b) - need, 0))
            failed = float(np.sum(bad[pooled:b]))
            if p99 > slo_p99 or availability_broken(failed, float(b - pooled), availability):
                return t
        t += 1.0
    return None


def first_alert(
    alerts: Sequence[dict[str, Any]], start: float, end: float
) -> dict[str, Any] | None:
    """The first firing alert raised on a window ending in [start, end]."""
    firing = [a for a in alerts if a.get("status") == "firing" and start <= a["time"] <= end]
    return min(firing, key=lambda a: a["time"]) if firing else None


def burn_start(timeline: Sequence[dict[str, Any]], start: float, end: float) -> float | None:
    """The first window ending in [start, end] at which the burn-rate page *starts* firing
    (it did not fire on the window before): a page still firing from earlier is no news."""
    prev = False
    for rec in sorted(timeline, key=lambda r: r["time"]):
        now = bool(rec.get("burn_rate"))
        if start <= rec["time"] <= end and now and not prev:
            return float(rec["time"])
        prev = now
    return None


@dataclass
class Scored:
    """One injection judged: what the first alert said, and the times around the breach."""

    kind: str
    target: str
    intensity: float
    start: float
    detected: bool
    alert_time: float | None = None
    said_kind: str | None = None
    root_cause: list[str] = field(default_factory=list)
    kind_right: bool = False
    rank: int | None = None  # 1-based position of the target in root_cause
    breach: float | None = None
    burn: float | None = None
    lead_s: float | None = None  # breach - alert (positive: the alert came first)
    burn_lead_s: float | None = None


def score_injection(
    inj: Injected,
    alerts: Sequence[dict[str, Any]],
    timeline: Sequence[dict[str, Any]],
    breach: float | None,
    grace_s: float,
) -> Scored:
    """Match one injection with the watch's first alert and the burn-rate page."""
    a = first_alert(alerts, inj.start, inj.end + grace_s)
    b = burn_start(timeline, inj.start, inj.end + grace_s)
    s = Scored(inj.kind, inj.target, inj.intensity, inj.start, a is not None, breach=breach)
    s.burn = b
    if a is not None:
        s.alert_time = float(a["time"])
        s.said_kind = str(a.get("kind"))
        s.root_cause = [str(x) for x in a.get("root_cause", [])]
        s.kind_right = s.said_kind == inj.kind
        s.rank = s.root_cause.index(inj.target) + 1 if inj.target in s.root_cause else None
        if breach is not None:
            s.lead_s = breach - s.alert_time
    if breach is not None and b is not None:
        s.burn_lead_s = breach - b
    return s


def false_alarms(
    alerts: Sequence[dict[str, Any]], injected: Sequence[Injected], grace_s: float
) -> list[dict[str, Any]]:
    """Firing alerts raised outside every injection's [start, end + grace]."""
    return [
        a
        for a in alerts
        if a.get("status") == "firing"
        and not any(i.start <= a["time"] <= i.end + grace_s for i in injected)
    ]


def _since(start: float) -> Any:
    """Seconds after ``start`` as a table cell ("-" for none)."""
    return lambda t: f"{t - start:.0f}" if t is not None else "-"


def _share(n: int, d: int) -> str:
    return f"{n}/{d} ({100.0 * n / d:.0f}%)" if d else "0/0 (none to judge)"


def summarise(scored: Sequence[Scored]) -> dict[str, Any]:
    """The bars' figures over the injections: kind right, root cause first / in the first
    three (over all injections: an undetected one is a miss), alert before the breach (over
    the injections that breach) with the median lead, and the burn-rate page's."""
    n = len(scored)
    breaching = [s for s in scored if s.breach is not None]
    ahead = [s for s in breaching if s.lead_s is not None and s.lead_s > 0]
    at_or_ahead = [s for s in breaching if s.lead_s is not None and s.lead_s >= 0]
    burn_ahead = [s for s in breaching if s.burn_lead_s is not None and s.burn_lead_s > 0]
    twin_leads = [s.lead_s for s in breaching if s.lead_s is not None]
    burn_leads = [s.burn_lead_s for s in breaching if s.burn_lead_s is not None]
    both = [
        (s.lead_s, s.burn_lead_s)
        for s in breaching
        if s.lead_s is not None and s.burn_lead_s is not None
    ]
    return {
        "injections": n,
        "detected": sum(s.detected for s in scored),
        "kind_right": sum(s.kind_right for s in scored),
        "top1": sum(s.rank == 1 for s in scored),
        "top3": sum(s.rank is not None and s.rank <= 3 for s in scored),
        "breaching": len(breaching),
        "alert_before_breach": len(ahead),
        "alert_at_or_before_breach": len(at_or_ahead),
        "burn_before_breach": len(burn_ahead),
        "burn_fired": len(burn_leads),
        "median_lead_s": statistics.median(twin_leads) if twin_leads else None,
        "median_burn_lead_s": statistics.median(burn_leads) if burn_leads else None,
        "median_lead_advantage_s": (statistics.median(t - b for t, b in both) if both else None),
        "both_fired": len(both),
    }


# -- running ---------------------------------------------------------------------------------


def _env(out: Path) -> dict[str, str]:
    env = environment()
    env["XDG_CACHE_HOME"] = str(out / "cache")
    env.setdefault("OMP_NUM_THREADS", "1")  # model fits: no spinning threads on a busy machine
    return env


def _watch_cmd(out: Path, extra: list[str], a: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "twin.cli",
        "watch",
        str(out / "calibration" / "topology.yaml"),
        "--mapping",
        str(out / "mapping.yaml"),
        "--window",
        str(a.window),
        "--slo-p99",
        str(a.slo_p99),
        "--slo-availability",
        str(a.availability),
        "--horizon",
        str(a.horizon),
        "--recogniser",
        "auto",
        "--seed",
        str(a.seed),
        # the testbed's Prometheus starts with it: there is no history before the warm-up
        "--history",
        "0",
        *extra,
    ]


def _config(base: int, core: int = CPU_CORE) -> TestbedConfig:
    """The default system on ports from ``base``, its pinned service on ``core``."""
    services = [replace(sv, core=core) if sv.core is not None else sv for sv in default_services()]
    return TestbedConfig(base_port=base, services=services, nice=0)  # the caller runs it nice'd


def prepare(out: Path, a: argparse.Namespace) -> None:
    """Calibrate, record fault-free telemetry, train and keep the recogniser."""
    from twin.calibrate import MetricMap, PrometheusClient

    out.mkdir(parents=True, exist_ok=True)
    with Testbed(out / "prepare-run", _config(free_base_port(), a.core)) as tb:
        print(f"prepare: calibrating at {a.rate:g} req/s for {a.cal_seconds:g} s", flush=True)
        tb.calibrate(out, a.rate, a.cal_seconds, demand="cpu", predict_seconds=60.0)
        print(f"prepare: recording {a.record_seconds:g} s of fault-free load", flush=True)
        t0 = time.time()
        tb.load(a.rate, a.record_seconds, seed=2, out=out / "prepare-load.json")
        t1 = t0 + a.window * int((time.time() - t0) // a.window)
        mm = MetricMap.load(out / "mapping.yaml")
        # at the live source's step, so training sees the live noise
        dump = PrometheusClient(tb.prometheus_url).fetch(mm, t0, t1, query_step(a.window))
    rec = out / "recorded"
    rec.mkdir(exist_ok=True)
    (rec / "metrics.json").write_text(json.dumps(dump), encoding="utf-8")
    print("prepare: training the recogniser on the twin's simulated failures", flush=True)
    cmd = _watch_cmd(
        out,
        ["--replay", str(rec), "--format", "prometheus-dump", "--out", str(out / "train-watch")],
        a,
    )
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env(out), timeout=a.train_timeout)


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


def _apply(
    tb: Testbed, inj: Injection, share: float, hog: subprocess.Popen[bytes] | None, core: int
) -> Any:
    """Set ``inj`` at ``share`` of its full intensity (0 clears it); answers the hog."""
    if inj.kind == LatencyFault.name:
        tb.inject(inj.target, latency=inj.intensity * share)
    elif inj.kind == ErrorRateFault.name:
        tb.inject(inj.target, error=inj.intensity * share)
    elif inj.kind == CpuExhaustionFault.name:
        if share <= 0:
            if hog is not None and hog.poll() is None:
                hog.terminate()
                hog.wait(timeout=10)
            return None
        if hog is None:
            hog = tb.cpu_hog(inj.duration_s + 10, core=core, hogs=1)
        with contextlib.suppress(OSError):
            nice = round(inj.intensity * share)
            Path(f"/proc/{hog.pid}/autogroup").write_text(str(nice), encoding="utf-8")
    else:
        raise ValueError(f"no real injection for kind {inj.kind!r}")
    return hog


def live(out: Path, a: argparse.Namespace, plan: Sequence[Injection], name: str) -> None:
    """A fresh testbed, load and the live watch; inject ``plan`` after the warm-up."""
    run = out / name
    run.mkdir(parents=True, exist_ok=True)
    per = [i.duration_s + a.recovery for i in plan]
    seconds = a.warmup + (sum(per) if plan else a.quiet_seconds)
    polls = int(seconds // a.window)
    seconds = polls * a.window
    injected: list[Injected] = []
    with Testbed(run / "testbed", _config(free_base_port(), a.core)) as tb:
        tb.load(a.rate, 5, seed=99, out=run / "warm.json")
        watch = subprocess.Popen(
            _watch_cmd(
                out,
                ["--prometheus", tb.prometheus_url, "--polls", str(polls), "--out", str(run)],
                a,
            ),
            cwd=ROOT,
            env=_env(out),
            stdout=(run / "watch.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        load: subprocess.Popen[bytes] | None = None
        try:
            _wait_polling(run, watch, a.train_timeout)
            origin = time.time()
            load = subprocess.Popen(
                command(tb.url(), a.rate, seconds, a.seed, run / "load.json"),
                cwd=ROOT,
                env=environment(),
                start_new_session=True,
            )
            args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
            meta = {"origin": origin, "seconds": seconds, "polls": polls, "args": args}
            (run / "injections.json").write_text(json.dumps({**meta, "injections": []}))
            time.sleep(a.warmup)
            for inj in plan:
                t0 = time.time()
                print(f"{name}: {inj.kind} at {inj.target} ({inj.intensity:g})", flush=True)
                hog: subprocess.Popen[bytes] | None = None
                for k in range(1, inj.steps + 1):
                    hog = _apply(tb, inj, k / inj.steps, hog, a.core)
                    time.sleep(inj.step_s if k < inj.steps else 0.0)
                time.sleep(max(0.0, t0 + inj.duration_s - time.time()))
                _apply(tb, inj, 0.0, hog, a.core)
                injected.append(Injected(inj.kind, inj.target, inj.intensity, t0, time.time()))
                (run / "injections.json").write_text(
                    json.dumps({**meta, "injections": [asdict(i) for i in injected]}, indent=1)
                )
                time.sleep(a.recovery)
            (run / "injections.json").write_text(
                json.dumps({**meta, "injections": [asdict(i) for i in injected]}, indent=1)
            )
            load.wait(timeout=seconds + 120)
            watch.wait(timeout=max(60.0, origin + seconds + 300 - time.time()))
        finally:
            if load is not None:
                _stop(load)
            _stop(watch)


def _wait_polling(run: Path, watch: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the watch has its recogniser and polls (its staging folder exists): loading a
    recogniser refits it, which takes minutes on a busy machine."""
    deadline = time.monotonic() + timeout
    while not any(run.glob(".watch-*")):
        if watch.poll() is not None:
            raise RuntimeError(f"twin watch exited ({watch.returncode}): see {run / 'watch.log'}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"twin watch not polling after {timeout:g} s")
        time.sleep(1.0)


def _read_run(run: Path) -> tuple[dict[str, Any], list[Injected], list[Any], list[Any], Any]:
    meta = json.loads((run / "injections.json").read_text())
    injected = [Injected(**i) for i in meta["injections"]]
    alerts_path = run / "alerts.jsonl"
    alerts = [json.loads(x) for x in alerts_path.read_text().splitlines() if x.strip()]
    timeline = json.loads((run / "timeline.json").read_text())
    records = json.loads((run / "load.json").read_text())["records"]
    return meta, injected, alerts, timeline.get("windows", timeline), records


def score(out: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Score the faults and quiet runs that exist; write results.json and results.md."""
    res: dict[str, Any] = {"args": vars(a)}
    lines = ["# twin watch on the testbed", ""]
    faults = out / "faults"
    if (faults / "timeline.json").exists():
        meta, injected, alerts, timeline, records = _read_run(faults)
        scored = []
        for inj in injected:
            b = breach_time(
                records,
                meta["origin"],
                inj.start,
                inj.end + a.grace,
                window_s=a.slo_window,
                slo_p99=a.slo_p99,
                availability=a.availability,
            )
            scored.append(score_injection(inj, alerts, timeline, b, a.grace))
        summary = summarise(scored)
        fa = false_alarms(alerts, injected, a.grace)
        hours = meta["seconds"] / 3600.0
        res["faults"] = {
            "summary": summary,
            "injections": [asdict(s) for s in scored],
            "false_alarms_between": len(fa),
            "hours": hours,
        }
        n = summary["injections"]
        lines += [
            "| # | kind | target | intensity | alert after start (s) | said kind | root cause"
            " (first 3) | rank | breach after start (s) | twin lead (s) | burn-rate lead (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, s in enumerate(scored, 1):
            rel = _since(s.start)
            lines.append(
                f"| {i} | {s.kind} | {s.target} | {s.intensity:g} | {rel(s.alert_time)} | "
                f"{s.said_kind or '-'} | {', '.join(s.root_cause[:3]) or '-'} | "
                f"{s.rank or '-'} | {rel(s.breach)} | "
                f"{'-' if s.lead_s is None else f'{s.lead_s:.0f}'} | "
                f"{'-' if s.burn_lead_s is None else f'{s.burn_lead_s:.0f}'} |"
            )
        lines += [
            "",
            f"- detected: {_share(summary['detected'], n)}",
            f"- kind right: {_share(summary['kind_right'], n)}",
            f"- root cause first: {_share(summary['top1'], n)}; "
            f"in the first three: {_share(summary['top3'], n)}",
            f"- injections that breach the SLO: {summary['breaching']}; twin alert strictly "
            f"before the breach: {_share(summary['alert_before_breach'], summary['breaching'])}"
            f" (at or before: {summary['alert_at_or_before_breach']}); median twin lead "
            f"{summary['median_lead_s']} s",
            f"- burn-rate page starting to fire: {summary['burn_fired']} of the breaching; "
            f"before the breach: {summary['burn_before_breach']}; median lead "
            f"{summary['median_burn_lead_s']} s; twin minus page where both fired "
            f"({summary['both_fired']}): median {summary['median_lead_advantage_s']} s",
            f"- firing alerts outside every injection (+{a.grace:g} s): {len(fa)} over "
            f"{hours:.2f} h",
            "",
        ]
    quiet = out / "quiet"
    if (quiet / "timeline.json").exists():
        meta, _, alerts, timeline, records = _read_run(quiet)
        firing = [x for x in alerts if x.get("status") == "firing"]
        hours = meta["seconds"] / 3600.0
        r = np.asarray(records, dtype=float)
        # alerts raised while users did see the objective broken (the machine's own load)
        seen = [
            x
            for x in firing
            if breach_time(
                records,
                meta["origin"],
                x["time"] - a.window,
                x["time"],
                window_s=a.slo_window,
                slo_p99=a.slo_p99,
                availability=a.availability,
            )
            is not None
        ]
        res["quiet"] = {
            "hours": hours,
            "windows": len(timeline),
            "false_alarms": len(firing),
            "per_hour": len(firing) / hours if hours else None,
            "requests": len(r),
            "failed": int(np.sum(r[:, 2] != 200)) if len(r) else 0,
            "alerts_on_a_breach_users_saw": len(seen),
            "alerts": [
                {k: x.get(k) for k in ("time", "kind", "root_cause", "summary")} for x in firing
            ],
        }
        lines += [
            f"- fault-free load: {hours:.2f} h, {len(timeline)} windows, "
            f"{len(firing)} false alarm(s) = {len(firing) / hours:.2f} per hour; "
            f"{len(seen)} of them on a window where the load generator saw the SLO broken",
            "",
        ]
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    (out / "results.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "watch-check")
    ap.add_argument(
        "--phase", choices=["all", "prepare", "faults", "quiet", "score"], default="all"
    )
    ap.add_argument("--rate", type=float, default=5.0, help="load, requests per second")
    ap.add_argument("--window", type=float, default=5.0, help="watch window, seconds")
    ap.add_argument("--slo-p99", type=float, default=1.0, help="entry p99 objective, seconds")
    ap.add_argument(
        "--slo-window",
        type=float,
        default=15.0,
        help="the trailing seconds the users' p99 is read over when scoring (the yardstick, "
        "whatever the watch's --window)",
    )
    ap.add_argument("--availability", type=float, default=0.99)
    ap.add_argument("--horizon", type=float, default=600.0, help="watch look-ahead, seconds")
    ap.add_argument("--cal-seconds", type=float, default=120.0)
    ap.add_argument("--record-seconds", type=float, default=300.0)
    ap.add_argument("--train-timeout", type=float, default=1800.0)
    ap.add_argument("--warmup", type=float, default=300.0, help="fault-free start, seconds")
    ap.add_argument("--recovery", type=float, default=120.0, help="after each fault, seconds")
    ap.add_argument("--grace", type=float, default=60.0, help="alert matching after a fault")
    ap.add_argument("--quiet-seconds", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--core",
        type=int,
        default=CPU_CORE,
        help="core the CPU-bound service is pinned to and the CPU hog runs on (a quiet run "
        "beside a faults run needs another one)",
    )
    a = ap.parse_args()
    # a stop signal unwinds (the testbed, the load and the watch are stopped on the way out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out: Path = a.out.resolve()
    if a.phase in ("all", "prepare"):
        prepare(out, a)
    if a.phase in ("all", "faults"):
        live(out, a, default_plan(), "faults")
    if a.phase in ("all", "quiet"):
        live(out, a, [], "quiet")
    if a.phase in ("all", "score", "faults", "quiet"):
        score(out, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
