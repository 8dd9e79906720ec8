"""Bare SimPy events: objects that sit in SimPy's queue and call back, no generator per hop.

SimPy's ``Environment.step`` needs only ``callbacks`` and ``_ok`` on what it pops. Jobs and
call attempts are such events themselves (one scheduled wake-up at a time each), so a
request costs no process, no generator and no extra event object per hop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simpy.events import NORMAL

__all__ = ["NORMAL", "Bare", "Wake"]


class Bare:
    """Base of everything the engine schedules; subclasses add their own slots."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] | None = None
        self._ok = True
        self._value: Any = None


class Wake(Bare):
    """A one-off wake-up carrying a payload, for rare events (faults, ticks, boots)."""

    __slots__ = ("payload",)

    def __init__(self, fn: Callable[[Any], None], payload: Any = None) -> None:
        self.callbacks = [fn]
        self._ok = True
        self._value = None
        self.payload = payload
