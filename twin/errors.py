"""One error root for everything the twin refuses, so callers catch one type."""

from __future__ import annotations


class TwinError(Exception):
    """Root of every error the twin raises on purpose."""


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
