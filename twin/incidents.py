"""Reading incident logs' free text: the fault kind a symptom names, and durations.

Campaigns (``history:``) and ``twin risk`` read the same incident logs, so they share one
vocabulary and one duration reader: a log one of them accepts, the other reads alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from twin.faults import by_symptom_rank

SYMPTOM_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (c.name, c.symptoms) for c in by_symptom_rank() if c.symptoms
)
"""Fault kind -> keywords that name it in a symptom or cause (each kind's ``symptoms``); the
first kind that matches wins (specific kinds first: "timeout errors after OOM" is a memory
leak)."""


def classify(text: str, extra: Mapping[str, str] | None = None) -> str | None:
    """The fault kind a free-text symptom (and cause) describes, or None.

    ``extra`` maps a user's own keywords to kinds and is tried first (substring match)."""
    low = text.lower()
    for key, kind in (extra or {}).items():
        if key.lower() in low:
            return kind
    for kind, words in SYMPTOM_KINDS:
        if any(re.search(rf"\b{re.escape(w)}", low) for w in words):
            return kind
    return None


_DURATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*(ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)?(?![a-z])"
)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float | None:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2 hours"``, ``"PT15M"`` or
    ``"00:15:00"``; None for a blank (None, NaN, empty); ValueError for anything else.

    A bare number (``"-3"`` too) is returned as it is, so callers can say why a negative
    duration is wrong."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    if not text:
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"\d+:\d{2}(:\d{2})?", text):
        parts = [float(p) for p in text.split(":")]
        return float(sum(p * 60 ** (len(parts) - 1 - i) for i, p in enumerate(parts)))
    text = text.removeprefix("pt")
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if text[pos : m.start()].strip():
            break
        unit = m.group(2) or "s"
        total += float(m.group(1)) * _UNIT["ms" if unit == "ms" else unit[0]]
        pos = m.end()
    if pos and not text[pos:].strip():
        return total
    raise ValueError(f"not a duration: {value!r}")


__all__ = ["SYMPTOM_KINDS", "classify", "parse_duration"]
