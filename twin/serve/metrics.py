"""The server's own request counts and latencies in the Prometheus text exposition format.

Labelled by method, route template (``/v1/chaos-results``, never the raw path, so label
values stay few) and status code; latency is a histogram with fixed buckets in seconds. The
figures are this process's (a multi-worker server answers ``/metrics`` from the worker that
took the scrape; each worker says which with its ``pid`` label).
"""

from __future__ import annotations

import bisect
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the latency histogram, in seconds."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """Counters and latency histograms per (method, route, status)."""

    def __init__(self) -> None:
        self.count: dict[tuple[str, str, str], int] = defaultdict(int)
        self.total: dict[tuple[str, str], float] = defaultdict(float)
        self.n: dict[tuple[str, str], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.written: dict[str, int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.count[(method, route, str(status))] += 1
        key = (method, route)
        self.total[key] += seconds
        self.n[key] += 1
        counts = self.buckets.setdefault(key, [0] * len(BUCKETS))
        i = bisect.bisect_left(BUCKETS, seconds)
        if i < len(counts):
            counts[i] += 1

    def rows_written(self, table: str, n: int) -> None:
        self.written[table] += n

    def exposition(self) -> str:
        """The text format (version 0.0.4)."""
        pid = os.getpid()
        out = [
            "# HELP twin_http_requests_total HTTP requests answered, by route and status.",
            "# TYPE twin_http_requests_total counter",
        ]
        for (m, r, s), v in sorted(self.count.items()):
            out.append(
                f'twin_http_requests_total{{method="{m}",route="{r}",status="{s}",pid="{pid}"}} {v}'
            )
        out += [
            "# HELP twin_http_request_duration_seconds Time to answer, by route.",
            "# TYPE twin_http_request_duration_seconds histogram",
        ]
        for (m, r), counts in sorted(self.buckets.items()):
            labels = f'method="{m}",route="{r}",pid="{pid}"'
            acc = 0
            for le, c in zip(BUCKETS, counts, strict=True):
                acc += c
                out.append(f'twin_http_request_duration_seconds_bucket{{{labels},le="{le}"}} {acc}')
            n = self.n[(m, r)]
            out.append(f'twin_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {n}')
            out.append(f"twin_http_request_duration_seconds_sum{{{labels}}} {self.total[(m, r)]}")
            out.append(f"twin_http_request_duration_seconds_count{{{labels}}} {n}")
        out += [
            "# HELP twin_rows_written_total Records stored (created or updated), by table.",
            "# TYPE twin_rows_written_total counter",
        ]
        for t, v in sorted(self.written.items()):
            out.append(f'twin_rows_written_total{{table="{t}",pid="{pid}"}} {v}')
        return "\n".join(out) + "\n"


class MetricsMiddleware:
    """Times every HTTP request and counts it under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                str(scope.get("method", "")), path, status[0], time.perf_counter() - start
            )


__all__ = ["BUCKETS", "Metrics", "MetricsMiddleware"]
