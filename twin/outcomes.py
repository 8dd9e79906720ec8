"""Request outcomes: success, or one failure reason from a fixed set."""

from __future__ import annotations

OK = 0
TIMEOUT = 1
REJECTED = 2
RATE_LIMITED = 3
SERVICE_DOWN = 4
ERROR = 5
NETWORK_LOSS = 6
CIRCUIT_OPEN = 7
RETRIES_EXHAUSTED = 8
CORRUPTED = 9

REASONS: tuple[str, ...] = (
    "TIMEOUT",
    "REJECTED",
    "RATE_LIMITED",
    "SERVICE_DOWN",
    "ERROR",
    "NETWORK_LOSS",
    "CIRCUIT_OPEN",
    "RETRIES_EXHAUSTED",
    "CORRUPTED",
)
"""Failure reasons by code - 1; codes are small ints so the hot path compares ints."""

CODE = {name: i + 1 for i, name in enumerate(REASONS)}


def reason_name(code: int) -> str:
    return "OK" if code == OK else REASONS[code - 1]
