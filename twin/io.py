"""Safe YAML in, one-line errors out: ``file:line: path.in.doc: what was expected``.

Reading is bounded by :mod:`twin.safeload`; this module turns what was read into documents."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from twin.errors import InputError
from twin.safeload import Loc, format_loc, line_marks, read_yaml

M = TypeVar("M", bound=BaseModel)


def _explain(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = msg.removeprefix("Value error, ")
    return msg


def _real_path(data: Any, loc: Loc) -> Loc:
    """Drop the parts pydantic inserts (union tags, validator names) that are not in the data."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            out.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
        elif (
            isinstance(node, (dict, list))
            and isinstance(part, str)
            and ("[" in part or part in _TAG_LIKE or part.startswith("function-"))
        ):
            continue  # a union tag or validator name: not a place in the document
        elif isinstance(node, dict):
            out.append(part)  # a missing field: keep it, it is where the problem is
            node = None
        else:
            break  # below a scalar (a bare-number distribution): the scalar is the place
    return tuple(out)


_TAG_LIKE: set[str] = set()


def register_union_tags(*tags: str) -> None:
    """Discriminated-union tags that pydantic puts in error paths; hidden unless in the data."""
    _TAG_LIKE.update(tags)


def validation_error(
    exc: ValidationError, source: str, text: str | None = None, data: Any = None
) -> InputError:
    """Turn pydantic's multi-line report into our one line, naming the first problem."""
    errors = exc.errors()
    err = errors[0]
    loc: Loc = _real_path(data, tuple(err["loc"]))
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return _located(loc, _explain(dict(err)) + more, source, text)


def load_model(model: type[M], path: str | Path, *, context: dict[str, Any] | None = None) -> M:
    """Load and validate one document; every failure is a one-line :class:`InputError`."""
    data, text = read_yaml(path)
    if data is None:
        raise InputError("document is empty", source=str(path))
    return parse_model(model, data, source=str(path), text=text, context=context)


def parse_model(
    model: type[M],
    data: Any,
    *,
    source: str = "<document>",
    text: str | None = None,
    context: dict[str, Any] | None = None,
) -> M:
    """Validate already-parsed data, with the same one-line errors as :func:`load_model`."""
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping at the top, got {type(data).__name__}", source=source)
    try:
        doc = model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error(exc, source, text, data) from None
    check = getattr(doc, "cross_check", None)
    if check is not None:
        try:
            check()
        except DocProblem as exc:
            raise _located(exc.loc, exc.message, source, text) from None
    return doc


class DocProblem(InputError):
    """A cross-field problem found after schema validation, with its path in the document."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message, where=format_loc(loc))
        self.loc = loc
        self.message = message


def _located(loc: Loc, message: str, source: str, text: str | None) -> InputError:
    marks = line_marks(text) if text else {}
    line = None
    probe = loc
    while probe and line is None:
        line = marks.get(probe)
        probe = probe[:-1]
    src = f"{source}:{line}" if line else source
    return InputError(message, source=src, where=format_loc(loc) if loc else None)


def dump_yaml(data: Any) -> str:
    """Block-style YAML that keeps key order, for documents people read and diff."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def output_dir(path: str | Path, *, report_as: str | Path | None = None) -> Path:
    """Create the folder a command writes into (parents too); a folder that cannot be made
    is bad input, one line naming it (``report_as``: the folder the user gave, when the one
    made is inside it)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create output directory: {exc.strerror}",
            source=str(report_as if report_as is not None else p),
        ) from None
    return p


def http_url(url: str, what: str) -> str:
    """``url`` when it is an http(s) URL with a host, else a one-line InputError naming
    ``what`` (the option or field). Checked before anything connects, so a mistyped address
    is refused up front instead of failing at the first request."""
    problem = f"{what}: {url!r} is not an http:// or https:// URL with a host"
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise InputError(problem + " (it holds spaces or control characters)")
    try:
        parts = urllib.parse.urlsplit(url)
        host, _ = parts.hostname, parts.port  # a bad port or IPv6 literal raises here
    except ValueError:
        raise InputError(problem) from None
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(problem)
    return url


__all__ = [
    "DocProblem",
    "Loc",
    "dump_yaml",
    "format_loc",
    "http_url",
    "load_model",
    "output_dir",
    "parse_model",
    "read_yaml",
    "register_union_tags",
    "validation_error",
]
