"""Masking of sensitive span data before anything is stored or written.

Traces carry what applications put in them: e-mail addresses, bearer tokens, session and
user ids. Calibration needs none of it, so every attribute value and operation name passes
through a :class:`Masker` as it is read; the tidy table never holds the original text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.errors import InputError

DEFAULT_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "jwt": r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
    "token": r"(?i)\b(?:bearer|basic|token|api[_-]?key|secret|password|passwd)\b[\s:=]+[^\s&,;]+",
    "uuid": r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    "hex_id": r"\b[0-9a-fA-F]{16,}\b",
    "number_id": r"\b\d{6,}\b",
}
"""Name -> regular expression; a match is replaced by ``{name}``."""

DEFAULT_KEYS: tuple[str, ...] = (
    r"(?i)(pass(word|wd)?|secret|token|authorization|cookie|api[._-]?key|session|credential)",
    r"(?i)(e-?mail|user[._-]?id|customer[._-]?id|account[._-]?id|card|ssn|phone)",
)
"""Attribute keys whose whole value is masked, whatever it looks like."""


@dataclass
class Masker:
    """Replaces sensitive text: whole values under sensitive keys, patterns everywhere else."""

    patterns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PATTERNS))
    keys: tuple[str, ...] = DEFAULT_KEYS
    masked: int = 0

    def __post_init__(self) -> None:
        try:
            self._res = [(n, re.compile(p)) for n, p in self.patterns.items()]
            self._keys = [re.compile(k) for k in self.keys]
            self._cache: dict[str, tuple[str, int]] = {}
        except re.error as exc:
            raise InputError(f"masking pattern is not a regular expression: {exc}") from None

    def text(self, value: str) -> str:
        """``value`` with every pattern match replaced by ``{pattern-name}``."""
        hit = self._cache.get(value)
        if hit is None:
            out = value
            total = 0
            for name, rx in self._res:
                out, n = rx.subn("{" + name + "}", out)
                total += n
            hit = (out, total)
            if len(self._cache) < 100_000:  # operation names repeat; free text rarely does
                self._cache[value] = hit
        self.masked += hit[1]
        return hit[0]

    def value(self, key: str, value: Any) -> Any:
        """An attribute value made safe to store: strings masked, sensitive keys blanked."""
        if any(k.search(key) for k in self._keys):
            self.masked += 1
            return "{masked}"
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(key, v) for v in value]
        return value

    def attributes(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.value(k, v) for k, v in attrs.items()}

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, source: str = "<masking>") -> Masker:
        """``{patterns: {name: regex}, keys: [regex], replace_defaults: false}``.

        By default the given patterns and keys are added to the defaults; with
        ``replace_defaults: true`` they replace them (an empty list masks nothing).
        """
        unknown = set(data) - {"patterns", "keys", "replace_defaults"}
        if unknown:
            raise InputError(f"unknown field {sorted(unknown)[0]!r}", source=source)
        patterns = data.get("patterns") or {}
        keys = data.get("keys") or []
        if not isinstance(patterns, dict) or not isinstance(keys, list):
            raise InputError("expected `patterns` as a mapping and `keys` as a list", source=source)
        if data.get("replace_defaults"):
            return cls(patterns={str(k): str(v) for k, v in patterns.items()}, keys=tuple(keys))
        merged = dict(DEFAULT_PATTERNS)
        merged.update({str(k): str(v) for k, v in patterns.items()})
        return cls(patterns=merged, keys=(*DEFAULT_KEYS, *map(str, keys)))

    @classmethod
    def load(cls, path: str | Path) -> Masker:
        from twin.io import read_yaml

        data, _ = read_yaml(path)
        if not isinstance(data, dict):
            raise InputError("expected a mapping at the top", source=str(path))
        return cls.from_config(data, source=str(path))
