"""Reading a request body within bounds: size counted while it streams in (and after gzip,
so a small compressed bomb is refused too), JSON parsed by the twin's bounded reader, then
a walk that refuses what the database or the documents could not hold.

Why each rule:

- **Size while streaming**: a declared ``Content-Length`` over the limit is refused before a
  byte is read, and an undeclared (chunked) body is counted chunk by chunk and refused as
  soon as it passes the limit, so memory never holds more than the limit.
- **Depth** through :func:`twin.safeload.loads_json` (``TWIN_MAX_NESTING``), like every JSON
  input of the twin.
- **Keys per object**: a document with 100,000 keys in one object is hostile or broken; no
  document of the API needs more than :data:`MAX_KEYS` (lists of records are unlimited
  within the size).
- **Strings without NUL and finite numbers**: PostgreSQL refuses NUL in text and NaN in
  JSON, SQLite accepts both; refusing them here makes both backends store the same things.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

from fastapi import Request

from twin.errors import InputError
from twin.safeload import loads_json
from twin.serve.problems import Problem

MAX_BODY_BYTES = 5 * 1024 * 1024
"""Default largest request body, after decompression (``twin serve --max-body``)."""

MAX_KEYS = 1000
"""Default largest number of keys in one JSON object (``twin serve --max-keys``)."""

_JSON_TYPES = ("application/json",)


def _too_large(limit: int) -> Problem:
    return Problem(413, "too-large", f"the request body is larger than {limit} bytes")


def check_media_type(request: Request) -> None:
    """JSON only: ``application/json`` or a ``+json`` type; a body without a type is read as
    JSON (what ``curl --data`` scripts send is still checked by the parser)."""
    value = request.headers.get("content-type")
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json"):
        return
    if media == "application/x-protobuf":
        detail = "OTLP over HTTP is accepted in its JSON encoding only (application/json)"
    else:
        detail = f"expected application/json, got {media or 'an empty type'!r}"
    raise Problem(415, "unsupported-media-type", detail)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, decompressed if ``Content-Encoding: gzip``; 413 as soon as it passes
    ``limit`` bytes (the compressed size and the decompressed size alike)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise Problem(400, "bad-request", "Content-Length is not a number") from None
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise Problem(
            415, "unsupported-media-type", f"Content-Encoding {encoding!r}: use gzip or none"
        )
    inflate = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    parts: list[bytes] = []
    size = 0
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, limit + 1 - size)
            except zlib.error:
                raise Problem(400, "bad-request", "the body is not valid gzip") from None
            if inflate.unconsumed_tail:
                raise _too_large(limit)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    if inflate is not None and not inflate.eof:
        raise Problem(400, "bad-request", "the gzip body ends early")
    return b"".join(parts)


def parse_json(body: bytes, max_keys: int) -> Any:
    """The body's JSON within the twin's limits; 400 naming what is wrong."""
    if not body.strip():
        raise Problem(400, "malformed-json", "the body is empty: expected a JSON document")
    try:
        data = loads_json(body, "body", "telemetry")
    except json.JSONDecodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        ) from None
    except UnicodeDecodeError:
        raise Problem(400, "malformed-json", "the body is not UTF-8 text") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise Problem(400, "malformed-json", f"invalid JSON: {exc}") from None
    except InputError as exc:
        raise Problem(400, "too-complex", exc.detail) from None
    _check_values(data, max_keys)
    return data


def _check_values(data: Any, max_keys: int) -> None:
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if len(v) > max_keys:
                raise Problem(
                    400, "too-complex", f"an object has {len(v)} keys; at most {max_keys} allowed"
                )
            for k in v:
                if "\x00" in k:
                    raise Problem(400, "bad-value", "a key contains a NUL character")
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            if "\x00" in v:
                raise Problem(400, "bad-value", "a string contains a NUL character")
        elif isinstance(v, float) and not math.isfinite(v):
            raise Problem(400, "bad-value", "NaN and Infinity are not JSON numbers")


__all__ = ["MAX_BODY_BYTES", "MAX_KEYS", "check_media_type", "parse_json", "read_body"]
