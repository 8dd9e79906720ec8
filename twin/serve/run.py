"""Starting the API under uvicorn: one process, or several workers sharing the port.

Workers are separate processes (uvicorn re-imports the app in each), so the configuration
travels in an environment variable, and each worker opens its own connections, its own
group-commit writer and its own rate-limit buckets.
"""

from __future__ import annotations

import dataclasses
import gc
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from twin.errors import InputError
from twin.serve import auth
from twin.serve.app import ServeConfig, create_app
from twin.store import Store

_ENV = "TWIN_SERVE_CONFIG"


def check(config: ServeConfig) -> None:
    """Open the database (making its tables) and read the tokens file before serving, so a
    bad URL or file is one line and exit 2, not a worker crash loop."""
    Store(config.db).close()
    if not auth.load(config.tokens).tokens:
        raise InputError(
            "no tokens: make one with `twin tokens create --tokens FILE`",
            source=str(config.tokens),
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running server: what exists at start
    (modules, the app, the ORM's tables) is frozen out of every collection, and the
    youngest generation is collected every 50,000 allocations instead of 700. Measured
    under load, collections took a third of the server's CPU before (docs/serve.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def app_from_env() -> FastAPI:
    """The app of one worker, from the configuration its parent put in the environment."""
    raw: dict[str, Any] = json.loads(os.environ[_ENV])
    raw["tokens"] = Path(raw["tokens"])
    app = create_app(ServeConfig(**raw))
    tune_gc()
    return app


def serve(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    workers: int = 1,
    access_log: bool = False,
) -> None:
    """Serve until stopped. The access log (off by default) shows method, path and status,
    never headers, so never a token."""
    import uvicorn

    check(config)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "log_level": "info" if access_log else "warning",
        "proxy_headers": False,
        "server_header": False,
    }
    if workers <= 1:
        app = create_app(config)
        tune_gc()
        uvicorn.run(app, **common)
        return
    os.environ[_ENV] = json.dumps({**dataclasses.asdict(config), "tokens": str(config.tokens)})
    uvicorn.run("twin.serve.run:app_from_env", factory=True, workers=workers, **common)


__all__ = ["app_from_env", "check", "is_loopback", "serve", "tune_gc"]
