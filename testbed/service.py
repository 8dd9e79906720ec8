"""One testbed service process: ``python -m testbed.service CONFIG.json``.

Serves ``GET /api`` (wait for a worker slot, do the work, release it, then make the calls),
``GET /metrics`` (Prometheus text: the OTel semantic-convention histogram
``http_server_request_duration_seconds``, ``process_cpu_seconds_total``, and
``worker_busy_seconds_total``, the time its worker slots were held, as thread-pool servers
export it), and ``GET /admin/fault?latency=S&error=P`` (injected latency before the calls,
as an awaited sleep that holds no worker, and an injected error rate after the work; no
parameters clears them). Spans go to an OTLP/JSON file, one export request per line.

When the config names an ``access_log``, every request gets one JSON line there: time,
method, path, status, and the ``x-shadow-transformed`` header (null when absent), which
marks requests that came through the mirror's transformation path; production's logs must
never hold one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

from testbed.http import Pool, serve

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time (wall time stretches under contention)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Service:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.name: str = cfg["name"]
        self.rng = random.Random(f"{cfg['seed']}:{self.name}:{os.getpid()}")
        self.pools = {n: Pool("127.0.0.1", p, timeout=30.0) for n, p in cfg["ports"].items()}
        self.redis: RedisClient | None = (
            RedisClient("127.0.0.1", cfg["redis_port"]) if cfg["redis"] else None
        )
        self.slots = asyncio.Semaphore(int(cfg.get("workers", 1)))
        self.busy = 0.0  # seconds workers were held, summed over workers
        self.latency = 0.0
        self.error = 0.0
        self.counts: dict[str, list[float]] = {}  # status -> [count, sum, *buckets]
        self.spans: list[dict[str, Any]] = []
        self.access: list[str] = []
        self.mu = self.sigma = 0.0
        m, cv = cfg["work_mean"], cfg["work_cv"]
        import math

        self.sigma = math.sqrt(math.log1p(cv * cv))
        self.mu = math.log(m) - self.sigma**2 / 2

    # -- tracing -----------------------------------------------------------------------------

    def _span(
        self, trace: str, span: str, parent: str, name: str, kind: int, t0: int, t1: int, err: bool
    ) -> None:
        self.spans.append(
            {
                "traceId": trace,
                "spanId": span,
                "parentSpanId": parent,
                "name": name,
                "kind": kind,
                "startTimeUnixNano": str(t0),
                "endTimeUnixNano": str(t1),
                "status": {"code": 2 if err else 0},
            }
        )

    def resource(self) -> dict[str, Any]:
        return {
            "attributes": [
                {"key": "service.name", "value": {"stringValue": self.name}},
                {
                    "key": "service.instance.id",
                    "value": {"stringValue": f"{self.name}-{os.getpid()}"},
                },
            ]
        }

    async def flush_spans(self) -> None:
        res = self.resource()
        while True:
            await asyncio.sleep(1.0)
            self.write_spans(res)
            self.write_access()

    def write_access(self) -> None:
        if not self.access or not self.cfg.get("access_log"):
            return
        batch, self.access = self.access, []
        with open(self.cfg["access_log"], "a", encoding="utf-8") as f:
            f.write("".join(batch))

    def write_spans(self, res: dict[str, Any]) -> None:
        if not self.spans:
            return
        batch, self.spans = self.spans, []
        doc = {
            "resourceSpans": [
                {"resource": res, "scopeSpans": [{"scope": {"name": "testbed"}, "spans": batch}]}
            ]
        }
        with open(self.cfg["spans"], "a", encoding="utf-8") as f:
            f.write(json.dumps(doc, separators=(",", ":")) + "\n")

    # -- requests ----------------------------------------------------------------------------

    async def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        answer = await self.route(method, target, headers)
        if self.cfg.get("access_log"):
            row = {
                "time": round(time.time(), 6),
                "method": method,
                "path": target,
                "status": answer[0],
                "x-shadow-transformed": headers.get("x-shadow-transformed"),
            }
            self.access.append(json.dumps(row, separators=(",", ":")) + "\n")
        return answer

    async def route(
        self, method: str, target: str, headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        url = urlparse(target)
        if url.path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.metrics().encode()
        if url.path == "/admin/fault":
            q = parse_qs(url.query)
            self.latency = float(q.get("latency", ["0"])[0])
            self.error = float(q.get("error", ["0"])[0])
            return (
                200,
                "application/json",
                json.dumps({"latency": self.latency, "error": self.error}).encode(),
            )
        if url.path != "/api":
            return 404, "text/plain", b"not found"
        return await self.api(headers)

    async def api(self, headers: dict[str, str]) -> tuple[int, str, bytes]:
        t0 = time.time_ns()
        start = time.perf_counter()
        tp = headers.get("traceparent", "")
        parts = tp.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            trace, parent = parts[1], parts[2]
        else:
            trace, parent = f"{self.rng.getrandbits(128):032x}", ""
        span = f"{self.rng.getrandbits(64):016x}"
        async with self.slots:  # wait for a worker; the server span starts when one is free
            t0 = time.time_ns()
            held = time.perf_counter()
            if self.cfg.get("cpu"):
                burn(self.cfg["cpu"])
            await asyncio.sleep(self.rng.lognormvariate(self.mu, self.sigma))
            self.busy += time.perf_counter() - held
        failed = False
        if self.error and self.rng.random() < self.error:
            failed = True
        else:
            if self.latency:
                await asyncio.sleep(self.latency)
            for stage in self.cfg["stages"]:
                jobs = []
                for call in stage:
                    if self.rng.random() < call["probability"]:
                        jobs += [self.call(call["to"], trace, span) for _ in range(call["count"])]
                if jobs:
                    results = await asyncio.gather(*jobs)
                    if not all(results):
                        failed = True
                        break
            if not failed and self.redis is not None:
                c0 = time.time_ns()
                ok = await self.redis.roundtrip(f"cart:{self.rng.randrange(1000)}")
                self._span(
                    trace,
                    f"{self.rng.getrandbits(64):016x}",
                    span,
                    "redis GET+SET",
                    3,
                    c0,
                    time.time_ns(),
                    not ok,
                )
                failed = not ok
        status = 500 if failed else 200
        self._span(trace, span, parent, f"GET /{self.name}", 2, t0, time.time_ns(), failed)
        self.observe(str(status), time.perf_counter() - start)
        return status, "application/json", b'{"ok":true}' if not failed else b'{"ok":false}'

    async def call(self, to: str, trace: str, parent: str) -> bool:
        cid = f"{self.rng.getrandbits(64):016x}"
        t0 = time.time_ns()
        try:
            status, _ = await self.pools[to].get("/api", {"traceparent": f"00-{trace}-{cid}-01"})
            ok = status < 500
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            ok = False
        self._span(trace, cid, parent, f"GET {to}", 3, t0, time.time_ns(), not ok)
        return ok

    # -- metrics -----------------------------------------------------------------------------

    def observe(self, status: str, seconds: float) -> None:
        row = self.counts.setdefault(status, [0.0, 0.0] + [0.0] * len(BUCKETS))
        row[0] += 1
        row[1] += seconds
        for i, le in enumerate(BUCKETS):
            if seconds <= le:
                row[2 + i] += 1

    def metrics(self) -> str:
        name = "http_server_request_duration_seconds"
        out = [f"# TYPE {name} histogram"]
        for status, row in sorted(self.counts.items()):
            lab = f'http_request_method="GET",http_response_status_code="{status}"'
            for i, le in enumerate(BUCKETS):
                out.append(f'{name}_bucket{{{lab},le="{le}"}} {row[2 + i]:.0f}')
            out.append(f'{name}_bucket{{{lab},le="+Inf"}} {row[0]:.0f}')
            out.append(f"{name}_count{{{lab}}} {row[0]:.0f}")
            out.append(f"{name}_sum{{{lab}}} {row[1]:.6f}")
        out += [
            "# TYPE process_cpu_seconds_total counter",
            f"process_cpu_seconds_total {time.process_time():.6f}",
            "# HELP worker_busy_seconds_total Seconds a worker slot was held, over all slots.",
            "# TYPE worker_busy_seconds_total counter",
            f"worker_busy_seconds_total {self.busy:.6f}",
        ]
        return "\n".join(out) + "\n"


class RedisClient:
    """RESP over one keep-alive connection per concurrent request (a small pool)."""

    def __init__(self, host: str, port: int) -> None:
        self.pool = Pool(host, port)

    async def roundtrip(self, key: str) -> bool:
        try:
            if self.pool.idle:
                reader, writer = self.pool.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.pool.host, self.pool.port)
            k = key.encode()
            writer.write(
                b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
                % (len(k), k, len(k), k)
            )
            await writer.drain()
            a = await reader.readline()  # +OK
            b = await reader.readline()  # $1
            c = await reader.readline()  # 1
            if not (a.startswith(b"+") and b.startswith(b"$") and c):
                writer.close()
                return False
            self.pool.idle.append((reader, writer))
            return True
        except (OSError, ConnectionError):
            return False


async def main(cfg: dict[str, Any]) -> None:
    if cfg.get("core") is not None and hasattr(os, "sched_setaffinity"):
        ncpu = os.cpu_count() or 1
        os.sched_setaffinity(0, {int(cfg["core"]) % ncpu})
    svc = Service(cfg)
    server = await asyncio.start_server(serve(svc.handle), "127.0.0.1", cfg["port"], backlog=1024)
    flusher = asyncio.create_task(svc.flush_spans())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    flusher.cancel()
    svc.write_spans(svc.resource())
    svc.write_access()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        config = json.load(f)
    asyncio.run(main(config))
