"""Kubernetes resource quantities (``500m``, ``0.5``, ``1Gi``, ``1024Mi``, ``1e3``) as exact
decimals, so two spellings of one amount compare equal.

The grammar is the API server's (``k8s.io/apimachinery/pkg/api/resource``): a signed decimal
number, an optional decimal exponent (``e3``) or suffix, binary (``Ki`` .. ``Ei``, powers of
1024) or decimal (``n u m k M G T P E``). A value that does not parse is kept as text and
compared as text: unreadable input is reported as a difference, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
BINARY_SUFFIXES = frozenset(_BINARY)
"""Suffixes of powers of 1024 (memory's; a CPU amount is never written with them)."""
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_RE = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def parse_quantity(value: object) -> Decimal | None:
    """The exact amount of a quantity (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824), or None
    when ``value`` is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, str):
        return None
    m = _RE.match(value.strip())
    if m is None:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2) or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(suffix[1:]))


@dataclass(frozen=True, eq=False)
class Quantity:
    """A quantity as written (``text``) with its exact amount; equal when the amounts are."""

    text: str
    amount: Decimal | None

    @classmethod
    def of(cls, value: object) -> Quantity:
        return cls(str(value), parse_quantity(value))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        if self.amount is None or other.amount is None:
            return self.text == other.text
        return self.amount == other.amount

    def __hash__(self) -> int:
        return hash(self.amount.normalize() if self.amount is not None else self.text)

    def __repr__(self) -> str:
        return f"Quantity({self.text!r})"


def format_quantity(amount: Decimal) -> str:
    """A plain decimal spelling of an amount (``0.5``, ``1073741824``) without exponent."""
    text = format(amount.normalize(), "f")
    return text


__all__ = ["BINARY_SUFFIXES", "Quantity", "format_quantity", "parse_quantity"]
