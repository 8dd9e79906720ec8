"""Every refusal as an RFC 9457 problem (``application/problem+json``), through one handler.

A refusal is raised as :class:`Problem` anywhere below a route; the framework's own errors
(an unknown path, a bad query parameter) are turned into the same shape; anything else is a
bug and answers 500 with no detail (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from twin.errors import InputError

log = logging.getLogger("twin.serve")

MEDIA_TYPE = "application/problem+json"
BASE = "/problems/"
"""Problem types are relative URIs under this path, one per kind of refusal (RFC 9457 allows
relative references; docs/serve.md lists the kinds)."""

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """A refusal: status, a problem type name, one line of detail, optional extra headers and
    (for schema errors) each field's path and message."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


def from_input_error(exc: InputError, status: int = 422) -> Problem:
    """A twin :class:`InputError` (one line, ``where: what``) as a schema problem."""
    where = exc.where or ""
    return Problem(
        status,
        "invalid-document",
        str(exc.detail if not where else f"{where}: {exc.detail}"),
        errors=[{"path": where or "(document)", "message": str(exc.detail)}],
    )


def render(problem: Problem, instance: str | None = None) -> JSONResponse:
    """The problem as its HTTP response."""
    body: dict[str, Any] = {
        "type": BASE + problem.kind,
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
    }
    if instance:
        body["instance"] = instance
    if problem.errors is not None:
        body["errors"] = problem.errors
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=MEDIA_TYPE
    )


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(request)"


def validation_problem(errors: list[Any], status: int = 422) -> Problem:
    """pydantic's errors as one problem naming the first field, with every field listed."""
    listed = [
        {"path": _loc(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
        for e in errors[:50]
    ]
    first = listed[0] if listed else {"path": "(request)", "message": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Problem(
        status, "invalid-document", f"{first['path']}: {first['message']}{more}", errors=listed
    )


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    """The one handler: every error a route or the framework raises ends here."""
    if isinstance(exc, Problem):
        problem = exc
    elif isinstance(exc, RequestValidationError):
        problem = validation_problem(list(exc.errors()))
    elif isinstance(exc, HTTPException):
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        problem = Problem(
            exc.status_code,
            kind,
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
    else:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        problem = Problem(500, "internal", "the server failed; the request was not stored")
    return render(problem, request.url.path)


def install(app: FastAPI) -> None:
    """Route every error of ``app`` through the one handler."""
    for kind in (Problem, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, _handle)


__all__ = [
    "BASE",
    "MEDIA_TYPE",
    "Problem",
    "from_input_error",
    "install",
    "render",
    "validation_problem",
]
