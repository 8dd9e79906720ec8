"""A rolling restart of a service with several replicas, measured under open-loop load.

``python -m testbed.rolling --replicas 3 --max-surge 0 --max-unavailable 1 --out F.json``

The testbed's services have one process each; replicas are the smallest honest addition:
``replicas`` processes of one service (``testbed.service``, each on its own free port on
127.0.0.1) behind a client-side round-robin load balancer, as kube-proxy spreads a Service's
traffic over its endpoints. The load balancer learns of endpoint changes
``propagation_seconds`` late (the endpoints controller and kube-proxy delay).

The controller replaces every replica as a Deployment rolling update does: at most
``max_surge`` pods above the desired count, at most ``max_unavailable`` ready pods below
it; a new pod is ready when its port accepts connections (a readiness probe polled every
50 ms); an old pod is stopped with SIGTERM (the service exits at once, in-flight requests
fail). Requests arrive as a seeded Poisson stream; each records its send time and status
(0: the connection failed). The downtime is in error-seconds: failed requests during the
run divided by the request rate. Everything started here is stopped before it returns, and
the run is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.config import ServiceDef, TestbedConfig
from testbed.http import Pool

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _accepts(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    return True


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]
    created: float
    ready: float | None = None
    deleted: float | None = None


@dataclass
class Run:
    """One measured run: the records, the replicas' timelines and the settings."""

    settings: dict[str, Any]
    records: list[tuple[float, int]] = field(default_factory=list)  # (sent, status)
    replicas: list[Replica] = field(default_factory=list)
    rollouts: list[tuple[float, float]] = field(default_factory=list)


class RollingBed:
    def __init__(self, run_dir: Path, service: ServiceDef, seed: int) -> None:
        self.dir = run_dir
        self.service = service
        self.seed = seed
        self.procs: list[subprocess.Popen[bytes]] = []
        (run_dir / "config").mkdir(parents=True, exist_ok=True)
        (run_dir / "spans").mkdir(parents=True, exist_ok=True)

    def spawn(self) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        cfg = TestbedConfig(services=[self.service], seed=self.seed).service_json(
            self.service.name, str(self.dir / "spans")
        )
        cfg["port"] = port
        cfg["ports"] = {}
        cfg["spans"] = os.devnull
        path = self.dir / "config" / f"{self.service.name}-{port}.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.Popen(
            [sys.executable, "-m", "testbed.service", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.procs.append(p)
        return port, p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def _bound(value: int | str, n: int, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = float(value[:-1]) / 100 * n
        return math.ceil(x - 1e-9) if up else math.floor(x + 1e-9)
    return int(value)


async def _run(a: argparse.Namespace, bed: RollingBed, run: Run) -> None:
    n = a.replicas
    surge = _bound(a.max_surge, n, True)
    unavailable = _bound(a.max_unavailable, n, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    view: list[int] = []  # the load balancer's endpoints (ports)
    pools: dict[int, Pool] = {}
    probes: set[asyncio.Task[None]] = set()  # kept so they are not collected mid-run

    def now() -> float:
        return time.perf_counter() - t0

    def publish(port: int, add: bool) -> None:
        def apply() -> None:
            if add and port not in view:
                view.append(port)
            elif not add and port in view:
                view.remove(port)

        loop.call_later(a.propagation_seconds, apply)

    async def start_pod() -> Replica:
        port, proc = bed.spawn()
        r = Replica(port, proc, now())
        run.replicas.append(r)

        async def probe() -> None:
            deadline = time.perf_counter() + 30
            while time.perf_counter() < deadline:
                if await _accepts(port):
                    r.ready = now()
                    publish(port, True)
                    return
                await asyncio.sleep(0.05)

        probes.add(loop.create_task(probe()))
        return r

    # the initial replicas, all in the view before the load starts
    first = [await start_pod() for _ in range(n)]
    while any(r.ready is None for r in first):
        await asyncio.sleep(0.05)
    await asyncio.sleep(a.propagation_seconds + 0.2)
    rng = random.Random(a.seed)
    rr = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(sent: float) -> None:
        nonlocal rr
        if not view:
            run.records.append((sent, 0))
            return
        port = view[rr % len(view)]
        rr += 1
        pool = pools.setdefault(port, Pool("127.0.0.1", port, timeout=5.0))
        try:
            status, _ = await pool.get("/api")
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            status = 0
        run.records.append((sent, status))

    async def load(until: float) -> None:
        nxt = now()
        while True:
            nxt += rng.expovariate(a.rate)
            if nxt >= until:
                return
            delay = nxt - now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(nxt))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def rollout(current: list[Replica]) -> list[Replica]:
        start = now()
        old = list(current)
        new: list[Replica] = []
        while old or len(new) < n or any(r.ready is None for r in new):
            ready_new = sum(1 for r in new if r.ready is not None)
            progressed = False
            room = min(n + surge - (len(old) + len(new)), n - len(new))
            for _ in range(max(0, room)):
                new.append(await start_pod())
                progressed = True
            available = len(old) + ready_new
            removable = min(len(old), available - (n - unavailable))
            for _ in range(max(0, removable)):
                r = old.pop(0)
                r.deleted = now()
                publish(r.port, False)
                if a.drain_seconds:
                    await asyncio.sleep(a.drain_seconds)
                r.proc.send_signal(signal.SIGTERM)
                progressed = True
            if progressed:
                continue
            # nothing to do until another new pod becomes ready
            while sum(1 for r in new if r.ready is not None) == ready_new:
                await asyncio.sleep(0.01)
        run.rollouts.append((start, now()))
        return new

    began_load = now()
    horizon = began_load + a.warmup + a.rollouts * a.spacing + a.tail
    run.settings["load_seconds"] = horizon - began_load
    driver = loop.create_task(load(horizon))
    await asyncio.sleep(a.warmup)
    current = first
    for _ in range(a.rollouts):
        began = now()
        current = await rollout(current)
        await asyncio.sleep(max(0.0, a.spacing - (now() - began)))
    await driver
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    for p in pools.values():
        p.close()
    run.settings["horizon_seconds"] = horizon


def measure(a: argparse.Namespace) -> dict[str, Any]:
    """Run the bed once; the record the benchmark compares with the twin."""
    service = ServiceDef("backend", a.work_mean, 0.3, workers=a.workers)
    with tempfile.TemporaryDirectory(prefix="rolling-") as tmp:
        bed = RollingBed(Path(tmp), service, a.seed)
        run = Run(settings={k: v for k, v in vars(a).items() if k != "out"})
        try:
            asyncio.run(asyncio.wait_for(_run(a, bed, run), a.timeout))
        finally:
            bed.stop_all()
    sent = [t for t, _ in run.records]
    failed = [t for t, s in run.records if s != 200]
    span = run.settings.get("load_seconds", 0.0)
    rate = len(sent) / span if span else 0.0
    ready_delays = [r.ready - r.created for r in run.replicas if r.ready is not None]
    initial = [r.ready - r.created for r in run.replicas[: a.replicas] if r.ready is not None]
    first = run.rollouts[0][0] if run.rollouts else math.inf
    warm = [t for t in failed if t < first]
    return {
        "settings": run.settings,
        "requests": len(sent),
        "failed": len(failed),
        "failed_before_rollouts": len(warm),
        "rate": rate,
        "error_seconds": len(failed) / rate if rate else 0.0,
        "error_seconds_per_rollout": len(failed) / rate / max(1, a.rollouts) if rate else 0.0,
        "ready_seconds_mean": sum(ready_delays) / len(ready_delays) if ready_delays else None,
        "ready_seconds_before_rollouts": sum(initial) / len(initial) if initial else None,
        "rollouts": run.rollouts,
        "pods": [(r.created, r.ready, r.deleted) for r in run.replicas],
        "failed_at": [round(t, 3) for t in failed],
    }


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m testbed.rolling", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--max-surge", default="0")
    ap.add_argument("--max-unavailable", default="1")
    ap.add_argument("--propagation-seconds", type=float, default=1.0)
    ap.add_argument("--drain-seconds", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=60.0)
    ap.add_argument("--work-mean", type=float, default=0.005)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rollouts", type=int, default=3)
    ap.add_argument(
        "--spacing", type=float, default=6.0, help="seconds from one rollout to the next"
    )
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--tail", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--out", type=Path)
    return ap


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))  # unwind, so the replicas are stopped
    a = parser().parse_args()
    for name in ("max_surge", "max_unavailable"):
        v = getattr(a, name)
        setattr(a, name, v if str(v).endswith("%") else int(v))
    result = measure(a)
    text = json.dumps(result, indent=2)
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
