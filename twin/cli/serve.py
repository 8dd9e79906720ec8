"""``twin serve`` (the HTTP API) and ``twin tokens create|list|revoke`` (its bearer tokens).

``twin tokens create`` prints only the new token on standard output, so a script can
capture it (``TOKEN=$(twin tokens create --tokens t.json)``); the rest goes to standard
error. The library is :mod:`twin.serve`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from twin.cli.errors import handles_errors

tokens_app = typer.Typer(
    no_args_is_help=True, help="Bearer tokens of `twin serve`: create, list, revoke."
)

TokensFile = Annotated[
    Path, typer.Option("--tokens", help="The tokens file (JSON; only hashes are kept).")
]


@handles_errors
def serve(
    db: Annotated[str | None, typer.Option(help="Database URL or SQLite file.")] = None,
    tokens: TokensFile = Path("tokens.json"),
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless told).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8787,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    max_body: Annotated[
        int, typer.Option(min=1024, help="Largest request body in bytes (after gzip).")
    ] = 5 * 1024 * 1024,
    max_keys: Annotated[int, typer.Option(min=1, help="Most keys in one JSON object.")] = 1000,
    rate_limit: Annotated[
        float, typer.Option(min=0.0, help="Requests per second per token (0: no limit).")
    ] = 100.0,
    burst: Annotated[float, typer.Option(min=1.0, help="Burst per token.")] = 200.0,
    max_batch: Annotated[
        int, typer.Option(min=1, max=10000, help="Most writes per transaction.")
    ] = 256,
    access_log: Annotated[bool, typer.Option(help="Log each request (never headers).")] = False,
) -> None:
    """Serve the ingest and query API (FastAPI under uvicorn)."""
    from twin.serve import ServeConfig
    from twin.serve.run import check, is_loopback
    from twin.serve.run import serve as run
    from twin.store import resolve_url

    if not is_loopback(host):
        typer.echo(f"twin serve: listening on {host}, beyond this machine", err=True)
    config = ServeConfig(
        db=resolve_url(db),
        tokens=tokens,
        max_body=max_body,
        max_keys=max_keys,
        rate=rate_limit,
        burst=burst,
        max_batch=max_batch,
    )
    check(config)  # a bad database or tokens file is one line, before any announcement
    typer.echo(f"twin serve: http://{host}:{port} (OpenAPI at /openapi.json)", err=True)
    run(config, host=host, port=port, workers=workers, access_log=access_log)


@tokens_app.command("create")
@handles_errors
def create(
    tokens: TokensFile,
    scope: Annotated[str, typer.Option(help="read or write (write implies read).")] = "read",
    expires: Annotated[
        float | None, typer.Option(help="Days until it expires (default: never).")
    ] = None,
    name: Annotated[str, typer.Option(help="A name to tell tokens apart.")] = "",
) -> None:
    """Make a token; prints only the token (shown once; the file keeps its hash)."""
    from twin.errors import InputError
    from twin.serve import auth

    if scope not in ("read", "write"):
        raise InputError(f"expected read or write, got {scope!r}", source="--scope")
    chosen: Literal["read", "write"] = "write" if scope == "write" else "read"
    token, entry = auth.create(tokens, chosen, expires_days=expires, name=name)
    typer.echo(f"twin tokens: created {entry.id} ({entry.scope})", err=True)
    typer.echo(token)


@tokens_app.command("list")
@handles_errors
def list_(
    tokens: TokensFile,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = (
        False
    ),
) -> None:
    """The tokens: id, name, scope, state, dates (never the token or its hash)."""
    from twin.serve import auth

    rows = [auth.describe(t) for t in auth.load(tokens).tokens]
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "scope", "state", "created", "expires", "revoked")
    for r in rows:
        table.add_row(*(str(r[k] or "") for k in r))
    Console().print(table)


@tokens_app.command("revoke")
@handles_errors
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `twin tokens list`).")],
    tokens: TokensFile,
) -> None:
    """Revoke a token; a running server refuses it within a second."""
    from twin.serve import auth

    entry = auth.revoke(tokens, token_id)
    typer.echo(f"twin tokens: revoked {entry.id}", err=True)
