"""Open-loop Poisson load: ``python -m testbed.load URL --rate R --duration D --out F.json``.

Arrivals follow a seeded Poisson process whatever the system does (a closed loop would slow
down with the system and hide its queueing). Every request is recorded: when it was sent,
how long it took (client side), and its status (0 when the connection failed). Requests
still open at the end are given up after ``--grace`` seconds and recorded as timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from testbed.http import Pool


async def run(
    url: str, rate: float, duration: float, seed: int, grace: float
) -> list[tuple[float, float, int]]:
    u = urlparse(url)
    pool = Pool(u.hostname or "127.0.0.1", u.port or 80, timeout=duration + grace)
    rng = random.Random(seed)
    records: list[tuple[float, float, int]] = []
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.perf_counter()

    async def one(sent: float) -> None:
        try:
            status, _ = await pool.get(u.path or "/")
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            status = 0
        records.append((sent - t0, time.perf_counter() - sent, status))

    next_at = t0
    while True:
        next_at += rng.expovariate(rate)
        if next_at - t0 >= duration:
            break
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(next_at))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for t in pending:
            t.cancel()
        for _ in pending:
            records.append((0.0, grace, -1))
    pool.close()
    return records


ROOT = Path(__file__).resolve().parents[1]


def command(url: str, rate: float, duration: float, seed: int, out: Path) -> list[str]:
    """The generator as a command line, for a process of its own (so its CPU is not the
    system's): callers that run it beside other work start it with this."""
    return [
        sys.executable,
        "-m",
        "testbed.load",
        url,
        *("--rate", str(rate), "--duration", str(duration), "--seed", str(seed)),
        *("--out", str(out)),
    ]


def environment() -> dict[str, str]:
    """The environment a generator process needs: this checkout on the path."""
    return dict(os.environ, PYTHONPATH=str(ROOT))


def run_load(
    url: str, rate: float, duration: float, seed: int, out: Path, *, nice: int = 0
) -> dict[str, Any]:
    """Run the generator in its own process to the end (bounded: ``duration`` + 60 s) and
    return what it wrote (``records``: send time, latency, status per request)."""
    prefix = ["nice", "-n", str(nice)] if nice else []
    subprocess.run(
        [*prefix, *command(url, rate, duration, seed, out)],
        check=True,
        timeout=duration + 60,
        cwd=ROOT,
        env=environment(),
    )
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--grace", type=float, default=10.0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    recs = asyncio.run(run(a.url, a.rate, a.duration, a.seed, a.grace))
    a.out.write_text(json.dumps({"rate": a.rate, "duration": a.duration, "records": recs}))


if __name__ == "__main__":
    main()
