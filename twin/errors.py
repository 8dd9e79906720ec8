"""One error root for everything the twin refuses, so callers catch one type."""

from __future__ import annotations

from typing import ClassVar


class TwinError(Exception):
    """Root of every error the twin raises on purpose.

    ``exit_code`` and ``label`` tell the command line how to end: a script tells a bad input
    (2) from a refusal on the merits (3) by the exit status alone, and a person reads
    ``twin: <label>: <message>`` on one line.
    """

    exit_code: ClassVar[int] = 2
    label: ClassVar[str] = "error"


class InputError(TwinError):
    """A user document or argument is wrong.

    The message is one line, ``file: path.in.doc: what was expected``, because users read it in
    a terminal and scripts grep it.
    """

    def __init__(
        self, message: str, *, source: str | None = None, where: str | None = None
    ) -> None:
        self.source = source
        self.where = where
        self.detail = message
        parts = [p for p in (source, where) if p]
        super().__init__(": ".join([*parts, message]))
