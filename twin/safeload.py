"""Bounded reading of every YAML and JSON input: documents, telemetry, uploads.

A document or a telemetry file may come from anyone, so reading it must cost bounded time and
memory whatever its bytes are. Every reader of the twin goes through here, and every limit
refuses with one line naming the file, the limit and the environment variable that raises it:

==============================  ===========  ==================================================
environment variable            default      what it bounds
==============================  ===========  ==================================================
``TWIN_MAX_DOCUMENT_BYTES``     8 MiB        size of a YAML/JSON document (checked before
                                             reading)
``TWIN_MAX_TELEMETRY_BYTES``    256 MiB      size of a trace file, metrics dump, chaos result
                                             or incident log (checked before reading)
``TWIN_MAX_NESTING``            64           nesting depth of lists and mappings, with YAML
                                             aliases followed
``TWIN_MAX_NODES``              200,000      values in a document once YAML aliases are
                                             expanded (documents only: JSON telemetry is
                                             bounded by its bytes)
``TWIN_MAX_ALIASES``            1,000        YAML aliases (``*name``) in one document
``TWIN_MAX_REQUESTS``           100,000,000  requests one simulation run may serve, calls
                                             between services included (estimated before the
                                             run; :mod:`twin.sim.budget`)
``TWIN_MAX_MEMORY``             256 MiB      memory one simulation run may hold for its model:
                                             objects, windows, faults and requests in flight
                                             (:mod:`twin.sim.budget`)
==============================  ===========  ==================================================

A limit's value is an integer, written plainly (``1000000``, ``1_000_000``), in scientific
notation (``1e6``) or with a unit: ``k``/``M``/``G``/``T`` (powers of 1000) or ``Ki``/``Mi``/
``Gi``/``Ti`` (powers of 1024), with an optional ``B`` (``2GiB``, ``512MB``).

YAML is read with the safe loader plus three rules: numbers are read as YAML 1.2 does
(``5e-3`` and ``1e6`` are floats, not strings); YAML 1.1 booleans (``yes``/``no``/``on``/
``off``) are kept, since documents written for earlier versions rely on them; a mapping that
names a key twice is refused, naming both lines. Line numbers for error messages come from
the composed graph walked once per node, so an alias is never expanded to find a line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml

from twin.errors import InputError

Loc = tuple[str | int, ...]
Kind = Literal["document", "telemetry"]

_DEFAULTS: dict[str, int] = {
    "TWIN_MAX_DOCUMENT_BYTES": 8 * 1024 * 1024,
    "TWIN_MAX_TELEMETRY_BYTES": 256 * 1024 * 1024,
    "TWIN_MAX_NESTING": 64,
    "TWIN_MAX_NODES": 200_000,
    "TWIN_MAX_ALIASES": 1_000,
    "TWIN_MAX_REQUESTS": 100_000_000,
    "TWIN_MAX_MEMORY": 256 * 1024 * 1024,
}

_AMOUNT = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][+]?[0-9]+)?)\s*([kKMGT]i?)?B?\s*$")
_UNITS = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def amount(raw: str, name: str) -> int:
    """A positive integer limit as people write it: ``1000000``, ``1_000_000``, ``1e6``,
    ``100M``, ``2GiB`` (see the module's table); anything else is one InputError line
    naming ``name`` (an option or an environment variable)."""
    match = _AMOUNT.match(raw)
    if match is not None:
        number, unit = match.groups()
        scale = 1.0
        if unit:
            scale = _UNITS[unit[0]]
            if unit.endswith("i"):
                scale = 1024.0 ** {"k": 1, "K": 1, "M": 2, "G": 3, "T": 4}[unit[0]]
        value = float(number.replace("_", "")) * scale
        if 1.0 <= value < 2.0**63:
            return int(value)
    raise InputError(
        f"{name}={raw!r}: expected a positive integer, such as 1000000, 1e6, 100M or 2GiB"
    )


def limit(name: str) -> int:
    """The current value of one limit: its environment variable if set to a positive integer,
    else the default (read on every call, so a test or a long-lived process can change it)."""
    raw = os.environ.get(name)
    if raw is not None:
        return amount(raw, name)
    return _DEFAULTS[name]


def _refuse(source: str, what: str, name: str) -> InputError:
    return InputError(f"{what} (limit {limit(name)}; raise it with {name})", source=source)


def _bytes_limit(kind: Kind) -> str:
    return "TWIN_MAX_DOCUMENT_BYTES" if kind == "document" else "TWIN_MAX_TELEMETRY_BYTES"


def check_size(path: str | Path, kind: Kind = "telemetry") -> Path:
    """Refuse a file larger than the byte limit of its kind, before anything reads it (for
    readers that hand the file to a table parser)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise InputError("file not found", source=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(p)) from None
    name = _bytes_limit(kind)
    if size > limit(name):
        raise _refuse(str(p), f"file is {size} bytes, larger than allowed", name)
    return p


def read_text(path: str | Path, kind: Kind = "document") -> str:
    """The UTF-8 text of a file no larger than its kind's limit; unreadable is an InputError."""
    p = check_size(path, kind)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", source=str(p)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read: not UTF-8 text ({exc.reason})", source=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(p)) from None


# -- YAML -------------------------------------------------------------------------------------

# YAML 1.2 core schema floats: an exponent needs no dot and no sign (``5e-3``, ``1e6``).
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 floats and bounded composition (depth, nodes, aliases)."""

    yaml_implicit_resolvers = {  # noqa: RUF012 (a copy, so the safe loader stays as it is)
        k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0
        self.nodes = 0
        self.aliases = 0
        self.max_depth = limit("TWIN_MAX_NESTING")
        self.max_nodes = limit("TWIN_MAX_NODES")
        self.max_aliases = limit("TWIN_MAX_ALIASES")

    def _where(self) -> str:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = getattr(event, "start_mark", None)
        return f"{self.source}:{mark.line + 1}" if mark is not None else self.source

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > self.max_aliases:
                raise _refuse(self._where(), "too many YAML aliases", "TWIN_MAX_ALIASES")
        else:
            self.nodes += 1
            if self.nodes > self.max_nodes:
                raise _refuse(self._where(), "too many values", "TWIN_MAX_NODES")
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise _refuse(self._where(), "nested too deeply", "TWIN_MAX_NESTING")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


for _first in "-+0123456789.":
    _Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, [_first])


def _yaml_error(exc: yaml.YAMLError, source: str) -> InputError:
    mark = getattr(exc, "problem_mark", None)
    src = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return InputError(f"invalid YAML: {problem}", source=src)


def _open_loader(text: str, source: str) -> _Loader:
    """The bounded loader over ``text``; a character YAML cannot hold (a NUL byte) is
    refused here, since the reader checks the whole text on construction."""
    try:
        return _Loader(text, source)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


def compose_yaml(text: str, source: str) -> yaml.Node | None:
    """The node graph of one YAML document, refused past the limits (aliases not expanded)."""
    loader = _open_loader(text, source)
    try:
        root: yaml.Node | None = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    if root is not None:
        _check_expanded(root, source)
        _check_duplicates(root, source)
    return root


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded(root: yaml.Node, source: str) -> None:
    """Size and depth the document would have once every alias is expanded, computed once per
    distinct node (so an alias bomb costs its own size, not its expansion)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    max_nodes = limit("TWIN_MAX_NODES")
    max_depth = limit("TWIN_MAX_NESTING")
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_.discard(key)
            where = f"{source}:{node.start_mark.line + 1}"
            if size[key] > max_nodes:
                raise _refuse(where, "too many values once aliases are expanded", "TWIN_MAX_NODES")
            if depth[key] > max_depth:
                raise _refuse(
                    where, "nested too deeply once aliases are expanded", "TWIN_MAX_NESTING"
                )
            continue
        if key in size:
            continue
        if key in open_:
            raise InputError(
                "a YAML alias refers to a node that contains it",
                source=f"{source}:{node.start_mark.line + 1}",
            )
        open_.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def walk_once(root: yaml.Node) -> Iterator[tuple[yaml.Node, Loc]]:
    """Every distinct node with the first path that reaches it; a node reached again through
    an alias is not descended into, so the walk costs the document's size, not its expansion.
    A mapping key yields its key node with the path of its value."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node, loc
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                if isinstance(key, yaml.ScalarNode):
                    yield key, (*loc, key.value)
                    stack.append((value, (*loc, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in reversed(list(enumerate(node.value))))


def format_loc(loc: Loc) -> str:
    """``("services", "a", "calls", 0, "to")`` -> ``services.a.calls[0].to``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(document)"


def _check_duplicates(root: yaml.Node, source: str) -> None:
    """Refuse a mapping that names a key twice: the last value would silently win."""
    for node, loc in walk_once(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first:
                raise InputError(
                    f"duplicate key {key.value!r} (first at line {first[(key.tag, key.value)]})",
                    source=f"{source}:{line}",
                    where=format_loc(loc) if loc else None,
                )
            first[(key.tag, key.value)] = line


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document within the limits; every problem is a one-line InputError."""
    name = "TWIN_MAX_DOCUMENT_BYTES"
    if len(text) > limit(name):
        raise _refuse(source, f"document is {len(text)} characters, larger than allowed", name)
    root = compose_yaml(text, source)
    if root is None:
        return None
    return _construct(root, source)


def _construct(root: yaml.Node, source: str) -> Any:
    """The Python value of a composed (and already checked) YAML document."""
    loader = _Loader("", source)
    try:
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except (ValueError, OverflowError) as exc:
        raise InputError(f"invalid YAML value: {exc}", source=source) from None
    finally:
        loader.dispose()


def load_yaml_all(text: str, source: str) -> list[Any]:
    """Every document of a multi-document YAML text (``---`` separated), within the limits
    (counted over the whole text)."""
    name = "TWIN_MAX_DOCUMENT_BYTES"
    if len(text) > limit(name):
        raise _refuse(source, f"text is {len(text)} characters, larger than allowed", name)
    loader = _open_loader(text, source)
    roots: list[yaml.Node] = []
    try:
        while loader.check_node():
            root = loader.get_node()
            if root is not None:
                roots.append(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    out: list[Any] = []
    for root in roots:
        _check_expanded(root, source)
        _check_duplicates(root, source)
        out.append(_construct(root, source))
    return out


def line_marks(text: str, source: str = "<document>") -> dict[Loc, int]:
    """Each path in a YAML document with its 1-based line (a key's own line), for error
    messages; {} if the text does not parse within the limits, or is larger than a
    document may be (a telemetry file: its error names the path without a line, rather than
    spend seconds re-reading megabytes to find one)."""
    if len(text) > limit("TWIN_MAX_DOCUMENT_BYTES"):
        return {}
    try:
        root = compose_yaml(text, source)
    except InputError:
        return {}
    marks: dict[Loc, int] = {}
    if root is not None:
        for node, loc in walk_once(root):
            if isinstance(node, yaml.ScalarNode) and loc and loc not in marks:
                marks[loc] = node.start_mark.line + 1
            marks.setdefault(loc, node.start_mark.line + 1)
    return marks


def read_yaml(path: str | Path) -> tuple[Any, str]:
    """A YAML document file parsed within the limits; returns the data and the text."""
    text = read_text(path, "document")
    return load_yaml(text, str(path)), text


# -- JSON -------------------------------------------------------------------------------------


def _check_json_shape(data: Any, source: str, kind: Kind) -> None:
    """Depth and (for documents) value count of parsed JSON, walked without recursion."""
    max_depth = limit("TWIN_MAX_NESTING")
    max_nodes = limit("TWIN_MAX_NODES") if kind == "document" else None
    count = 1
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        items = value.values() if isinstance(value, dict) else value
        if not isinstance(value, (dict, list)) or not items:
            continue
        if depth >= max_depth:
            raise _refuse(source, "nested too deeply", "TWIN_MAX_NESTING")
        count += len(items)
        if max_nodes is not None and count > max_nodes:
            raise _refuse(source, "too many values", "TWIN_MAX_NODES")
        stack.extend((v, depth + 1) for v in items if isinstance(v, (dict, list)))


def loads_json(text: str | bytes, source: str, kind: Kind = "document") -> Any:
    """Parse one JSON text within the limits. A syntax error raises
    :class:`json.JSONDecodeError` as usual (callers word it); a limit is a one-line InputError.
    """
    name = _bytes_limit(kind)
    if len(text) > limit(name):
        raise _refuse(source, f"JSON text is {len(text)} bytes, larger than allowed", name)
    try:
        data = json.loads(text)
    except RecursionError:
        raise _refuse(source, "nested too deeply", "TWIN_MAX_NESTING") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # a number past Python's digit limit; undecodable bytes
        # a syntax error like any other, so every caller words it (with its line) as one
        reason = str(exc).split(":")[0].split(" for ")[0]
        raise json.JSONDecodeError(
            f"unreadable value ({reason})", text if isinstance(text, str) else "", 0
        ) from None
    _check_json_shape(data, source, kind)
    return data


def read_json(path: str | Path, kind: Kind = "document") -> tuple[Any, str]:
    """A JSON file parsed within the limits; a syntax error is a one-line InputError with its
    line. Returns the data and the text."""
    text = read_text(path, kind)
    try:
        return loads_json(text, str(path), kind), text
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from None


__all__ = [
    "Loc",
    "amount",
    "check_size",
    "compose_yaml",
    "format_loc",
    "limit",
    "line_marks",
    "load_yaml",
    "load_yaml_all",
    "loads_json",
    "read_json",
    "read_text",
    "read_yaml",
    "walk_once",
]
