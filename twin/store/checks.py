"""What a chaos result must be before it is stored, checked the same way for every backend.

SQLite stores almost anything (a NaN in a JSON column, a NUL byte, a 10 MB name) while
PostgreSQL refuses some of it mid-transaction with a driver error. So the store decides
first, in Python, and both backends see only values both accept:

- every string is valid Unicode without NUL bytes (PostgreSQL text cannot hold NUL; a lone
  surrogate cannot be encoded as UTF-8 for either);
- every number in a JSON value is finite (``NaN`` and ``Infinity`` are not JSON, and
  PostgreSQL's ``json`` type refuses them);
- names and outcomes fit their columns (:data:`~twin.store.schema.TEST_ID_CHARS`,
  :data:`~twin.store.schema.OUTCOME_CHARS`), refused with the limit named rather than cut;
- a start time is an ISO 8601 instant, stored as one UTC form so that the same instant
  written in another zone or precision is the same key.

Each problem is a :class:`~twin.io.DocProblem` with its path in the document, which
:func:`twin.store.chaos.parse_chaos` turns into one located line.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from twin.io import DocProblem
from twin.safeload import Loc

_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def kind_of(value: Any) -> str:
    """How a JSON value is named in messages: ``an object``, ``a list``, ``a string``..."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL byte, which the database cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (an unpaired surrogate escape)"
    return None


def check_json(value: Any, at: Loc = ()) -> None:
    """Refuse what either backend would refuse in a JSON value, naming the first place:
    a non-finite number, a NUL byte or an unpaired surrogate in a string or a key. Walked
    with an explicit stack, so depth costs no recursion."""
    stack: list[tuple[Any, Loc]] = [(value, at)]
    while stack:
        v, loc = stack.pop()
        if isinstance(v, str):
            problem = _string_problem(v)
            if problem:
                raise DocProblem(loc, f"text {problem}")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise DocProblem(loc, f"expected a finite number, got {v!r} (not JSON)")
        elif isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise DocProblem(loc, f"expected text keys, got {kind_of(k)}")
                problem = _string_problem(k)
                if problem:
                    raise DocProblem((*loc, k), f"the key {problem}")
                stack.append((item, (*loc, k)))
        elif isinstance(v, list):
            stack.extend((item, (*loc, i)) for i, item in enumerate(v))
        elif v is not None and not isinstance(v, (bool, int)):
            raise DocProblem(loc, f"expected a JSON value, got {kind_of(v)}")


def text(value: Any, loc: Loc, max_chars: int, *, what: str = "a string") -> str:
    """A non-empty string no longer than ``max_chars``, else a located problem naming the
    limit (a long value is refused, never cut: a cut name would merge different tests)."""
    if not isinstance(value, str) or not value.strip():
        raise DocProblem(loc, f"expected {what} (non-empty), got {kind_of(value)}")
    if len(value) > max_chars:
        raise DocProblem(loc, f"{len(value)} characters, longer than the {max_chars} allowed")
    problem = _string_problem(value)
    if problem:
        raise DocProblem(loc, f"text {problem}")
    return value


def outcome(value: Any, loc: Loc, max_chars: int) -> str | None:
    """An expected or actual outcome: a string, number or boolean kept as text (``true``,
    ``200``), or null; an object or list is refused (an outcome is one word or phrase)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        check_json(value, loc)
        return str(value)
    return text(value, loc, max_chars, what="a string, number or boolean")


def utc_instant(value: Any, loc: Loc) -> str:
    """The instant an ISO 8601 timestamp names, as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    ``Z``, ``+00:00``, ``+01:00`` (converted), ``.000`` and ``.000000`` all give one text for
    one instant. A timestamp without a zone is read as UTC: the tools that write them (Chaos
    Toolkit journals) write UTC.
    """
    if not isinstance(value, str) or not value.strip():
        got = "an empty string" if isinstance(value, str) else kind_of(value)
        raise DocProblem(
            loc, f"expected an ISO 8601 timestamp string, e.g. 2024-10-27T10:00:00Z, got {got}"
        )
    raw = value.strip()
    shown = raw if len(raw) <= 60 else raw[:57] + "..."
    try:
        stamp = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "Zz" else raw)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
    except ValueError:
        raise DocProblem(
            loc, f"expected an ISO 8601 timestamp, e.g. 2024-10-27T10:00:00Z, got {shown!r}"
        ) from None
    try:
        utc = stamp.astimezone(UTC)
    except OverflowError:
        raise DocProblem(loc, f"{shown!r} is outside the years 1 to 9999 in UTC") from None
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"
