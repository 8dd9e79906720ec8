"""Just enough HTTP/1.1 (Content-Length bodies, keep-alive) over asyncio streams.

The services must be real HTTP servers but must not depend on a web framework the project
does not install; this is ~100 lines and does exactly what the testbed needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, str, bytes]]]

REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    line = await reader.readline()
    if not line:
        return None
    headers: dict[str, str] = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return line.decode("latin-1").strip(), headers


def serve(
    handler: Handler,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A connection callback for ``asyncio.start_server`` that calls ``handler`` per request."""

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    break
                first, headers = head
                method, target, *_ = first.split(" ")
                n = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(n) if n else b""
                status, ctype, payload = await handler(method, target, headers, body)
                writer.write(
                    f"HTTP/1.1 {status} {REASONS.get(status, 'X')}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    return on_conn


class Pool:
    """Keep-alive connections to one server; a new one whenever none is idle (open loop)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET ``path``; a failure on a reused connection (the server restarted) drops the idle
        connections and retries once on a fresh one, as HTTP clients do."""
        for attempt in (0, 1):
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await self._open()
            try:
                status, body = await asyncio.wait_for(
                    self._exchange(conn, path, headers), self.timeout
                )
            except (ConnectionError, asyncio.IncompleteReadError, OSError, ValueError):
                conn[1].close()
                if reused and attempt == 0:
                    self.close()  # the server went away: every idle connection is stale
                    continue
                raise
            except TimeoutError:
                conn[1].close()
                raise
            self.idle.append(conn)
            return status, body
        raise ConnectionError("unreachable")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def _exchange(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        path: str,
        headers: dict[str, str] | None,
    ) -> tuple[int, bytes]:
        reader, writer = conn
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{extra}\r\n".encode())
        await writer.drain()
        head = await _read_head(reader)
        if head is None:
            raise ConnectionError("closed")
        status = int(head[0].split(" ")[1])
        n = int(head[1].get("content-length", "0") or 0)
        body = await reader.readexactly(n) if n else b""
        return status, body

    def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()
