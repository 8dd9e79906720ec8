"""Load on `twin serve`: small chaos results at a fixed rate from many clients, then the
database is checked against what was acknowledged. Optionally the server is killed
(SIGKILL, all its processes) in the middle and restarted.

The generator is open-loop and does not coordinate-omit: request i is due at
``start + i / rate`` whatever happened before it; a free client sends it, and its latency is
measured from when it was DUE, not from when a client got to send it. So a server that
stalls shows the stall in the latency of every request that was due meanwhile, as wrk2
reports it. Clients speak HTTP/1.1 with keep-alive over raw asyncio streams, to leave the
cores to the server.

Every request carries a unique test id; at the end, the rows with this run's ids are read
back: acknowledged (a 2xx answer) must equal stored, with 0 lost (acknowledged, not stored)
and 0 duplicated. With ``--kill-after``, requests in flight at the kill may be stored without
an answer (the client never heard): those are counted, not errors.

    python benchmarks/serve_load.py                     # PostgreSQL started here, 1,000 req/s, 60 s
    python benchmarks/serve_load.py --duration 15       # a short trial
    python benchmarks/serve_load.py --db sqlite:///tmp/x.db --rate 200 --kill-after 3

PostgreSQL comes from tests/pg_server.py (initdb in a temporary folder, a free loopback
port); ``--db URL`` uses a server of your own instead. The last lines are machine-readable
(``name: value``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_server import running_postgres

    with running_postgres() as pg:
        yield pg


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def _twin(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    return out.stdout.strip()


class Server:
    """``twin serve`` in its own process group, so a kill takes every worker with it."""

    def __init__(self, db: str, tokens: Path, port: int, workers: int, batch: int) -> None:
        self.args = [
            sys.executable,
            "-m",
            "twin.cli",
            "serve",
            "--db",
            db,
            "--tokens",
            str(tokens),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--rate-limit",
            "0",
            "--max-batch",
            str(batch),
        ]
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            self.args, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"twin serve exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("twin serve did not answer /healthz in time")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's processes (user + system)."""
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        total = 0.0
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(self.proc.pid)
            for p in [top, *top.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
        return total

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _body(run: str, i: int) -> bytes:
    return json.dumps(
        {
            "test_id": f"load-{run}-{i}",
            "timestamp": "2024-10-27T10:00:00Z",
            "parameters": {"rate": 5, "n": i},
            "injected_faults": [{"type": "latency", "target": "b", "delay": 0.2}],
            "expected_outcome": "ok",
            "actual_outcome": "ok",
        },
        separators=(",", ":"),
    ).encode()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _client(
    queue: asyncio.Queue[tuple[int, float] | None],
    port: int,
    token: str,
    run: str,
    out: list[tuple[int, int, float]],
    errors: Counter[str],
) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    head = (
        "POST /v1/chaos-results HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    ).encode()
    while True:
        item = await queue.get()
        if item is None:
            break
        i, due = item
        body = _body(run, i)
        request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            status = await asyncio.wait_for(_exchange(*conn, request), 30)
            out.append((i, status, time.perf_counter() - due))
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as e:
            errors[type(e).__name__] += 1
            if conn is not None:
                conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def _load(
    port: int,
    token: str,
    run: str,
    rate: float,
    duration: float,
    clients: int,
    kill: tuple[float, Server] | None,
) -> tuple[list[tuple[int, int, float]], Counter[str], float, int]:
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    out: list[tuple[int, int, float]] = []
    errors: Counter[str] = Counter()
    tasks = [
        asyncio.create_task(_client(queue, port, token, run, out, errors)) for _ in range(clients)
    ]
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    total = int(rate * duration)
    killed = False
    i = 0
    while i < total:
        now = time.perf_counter()
        while i < total and start + i / rate <= now:
            queue.put_nowait((i, start + i / rate))
            i += 1
        if kill is not None and not killed and now - start >= kill[0]:
            killed = True
            await loop.run_in_executor(None, kill[1].kill)
            await loop.run_in_executor(None, kill[1].start)
        if i < total:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.wait(tasks, timeout=60)
    return out, errors, time.perf_counter() - start, total


def _stored(db: str, run: str) -> tuple[list[str], int]:
    """This run's stored test ids (one per row) and the rows without their raw document."""
    from sqlalchemy import select

    from twin.store import Store
    from twin.store.documents import RawDocumentRow
    from twin.store.schema import ChaosResultRow

    with Store(db) as st, st.transaction() as s:
        rows = s.execute(
            select(ChaosResultRow.test_id, ChaosResultRow.source).where(
                ChaosResultRow.test_id.like(f"load-{run}-%")
            )
        ).all()
        raws = {
            f"sha256:{h}"
            for (h,) in s.execute(
                select(RawDocumentRow.content_hash).where(RawDocumentRow.kind == "chaos-result")
            )
        }
    return [r[0] for r in rows], sum(1 for r in rows if r[1] not in raws)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", help="database URL (default: a throwaway PostgreSQL)")
    ap.add_argument("--rate", type=float, default=1000.0, help="offered requests per second")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--clients", type=int, default=200, help="concurrent connections")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--batch", type=int, default=256, help="most writes per transaction")
    ap.add_argument("--kill-after", type=float, help="SIGKILL the server after this many s")
    a = ap.parse_args()
    run = uuid.uuid4().hex[:10]
    print(f"load average: {os.getloadavg()}, cores: {os.cpu_count()}")
    with _database(a.db) as db, tempfile.TemporaryDirectory(prefix="twin-load-") as tmp:
        tokens = Path(tmp) / "tokens.json"
        token = _twin("tokens", "create", "--tokens", str(tokens), "--scope", "write")
        server = Server(db, tokens, _free_port(), a.workers, a.batch)
        server.start()
        cpu0 = server.cpu_seconds()
        gen0 = time.process_time()
        try:
            kill = (a.kill_after, server) if a.kill_after is not None else None
            out, errors, wall, offered = asyncio.run(
                _load(server.port, token, run, a.rate, a.duration, a.clients, kill)
            )
            cpu = server.cpu_seconds() - cpu0
            gen = time.process_time() - gen0
        finally:
            server.stop()
        stored, orphans = _stored(db, run)
    acked = [i for i, status, _ in out if 200 <= status < 300]
    codes = Counter(status for _, status, _ in out)
    lat = [t for _, status, t in out if 200 <= status < 300]
    ids = Counter(stored)
    acked_ids = {f"load-{run}-{i}" for i in acked}
    lost = len(acked_ids - set(ids))
    duplicated = sum(n - 1 for n in ids.values() if n > 1)
    unanswered = len(set(ids) - acked_ids)
    print(f"status codes: {dict(codes)}; client errors: {dict(errors)}")
    figures: dict[str, Any] = {
        "offered_rate": round(offered / a.duration, 1),
        "achieved_rate": round(len(acked) / wall, 1),
        "clients": a.clients,
        "workers": a.workers,
        "seconds": round(wall, 1),
        "requests": offered,
        "acknowledged": len(acked),
        "rows": len(stored),
        "lost": lost,
        "duplicated": duplicated,
        "stored_unanswered": unanswered,
        "rows_without_raw_document": orphans,
        "p50_ms": round(_pct(lat, 0.50) * 1000, 1),
        "p99_ms": round(_pct(lat, 0.99) * 1000, 1),
        "max_ms": round(max(lat, default=float("nan")) * 1000, 1),
        "server_cpu_ms_per_request": round(cpu / max(1, len(out)) * 1000, 3),
        "generator_cpu_ms_per_request": round(gen / max(1, len(out)) * 1000, 3),
        "killed": a.kill_after is not None,
    }
    for k, v in figures.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
