"""The one error handler of every ``twin`` command.

A :class:`~twin.errors.TwinError` ends the command with one line on stderr,
``twin: error: file:line: path.in.doc: what was expected``, and the error's exit code (2 for
bad input, 3 for a refusal on the merits). The global ``--traceback`` option re-raises
instead, so the curious see where it came from. Anything that is not a ``TwinError`` is a
bug and always shows its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

from twin.errors import TwinError

P = ParamSpec("P")
R = TypeVar("R")


_options = {"traceback": False}


def request_traceback(flag: bool) -> None:
    """Set by the app's callback on every invocation, before the command runs."""
    _options["traceback"] = flag


def traceback_requested() -> bool:
    """Whether this invocation was given the global ``--traceback``."""
    return _options["traceback"]


def fail(exc: TwinError) -> NoReturn:
    """End the command for ``exc``: one line and its exit code, or the traceback if asked."""
    if traceback_requested():
        raise exc
    prefix = f"twin: {exc.label}: " if exc.label else "twin: "
    typer.echo(prefix + str(exc), err=True)
    raise typer.Exit(exc.exit_code) from None


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so every ``TwinError`` it raises goes through :func:`fail`.

    ``functools.wraps`` keeps the signature, so typer still reads the options from it.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TwinError as exc:
            fail(exc)

    return wrapper
