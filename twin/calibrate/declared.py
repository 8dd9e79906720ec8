"""Facts the telemetry cannot show and the user knows: calls whose failure the caller survives.

A recording in which nothing failed cannot tell a call the caller needs from one it
degrades without (a page rendered without its ad, a list without its recommendations):
both look the same until the callee fails. Traces with error statuses can show it, and
:mod:`twin.calibrate.asynchrony` finds such fallbacks there; without them the calibration
keeps every call required, and ``twin calibrate --optional CALLER->CALLEE`` states it.
Every call from any operation of ``CALLER`` to any operation of ``CALLEE`` becomes
``optional``. An edge the topology does not have is an error, never ignored: a misspelt
name would otherwise leave the twin failing pages the user said survive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from twin.errors import InputError
from twin.topology import Topology

EDGE = re.compile(r"^\s*([^\s:>-][^\s:>]*?)\s*->\s*([^\s:>-][^\s:>]*?)\s*$")
"""``CALLER->CALLEE``: two service names (no operation), spaces around the arrow allowed."""

SHOWN = 20
"""Call edges an error lists at most: enough to spot a misspelling, one line in any system."""


def parse_edge(text: str) -> tuple[str, str]:
    """``(caller, callee)`` of ``CALLER->CALLEE``; an InputError naming the text otherwise."""
    m = EDGE.match(text)
    if not m:
        raise InputError(f"--optional: expected CALLER->CALLEE (two service names), got {text!r}")
    return m.group(1), m.group(2)


def with_optional_calls(
    topology: Topology, edges: Sequence[str]
) -> tuple[Topology, dict[str, int]]:
    """The topology with every call along each ``CALLER->CALLEE`` edge made ``optional``, and
    how many calls each edge marked. An edge with no call in the topology raises an
    InputError that lists the edges it has."""
    data = topology.to_dict()
    marked: dict[str, int] = {}
    for text in edges:
        caller, callee = parse_edge(text)
        n = 0
        svc = topology.services.get(caller)
        for op_name, op in (svc.operations if svc else {}).items():
            for i, call in enumerate(op.calls):
                if topology.resolve(call.to)[0] == callee:
                    data["services"][caller]["operations"][op_name]["calls"][i]["optional"] = True
                    n += 1
        if not n:
            have = sorted(f"{a}->{b}" for a, b in topology.service_graph().edges)
            more = len(have) - SHOWN
            shown = ", ".join(have[:SHOWN]) + (f" and {more} more" if more > 0 else "")
            raise InputError(
                f"--optional {caller}->{callee}: the topology has no call from {caller!r} to "
                f"{callee!r} (its call edges: {shown or 'none'})"
            )
        marked[f"{caller}->{callee}"] = n
    if not marked:
        return topology, marked
    return Topology.from_dict(data, source=f"<{topology.name} with optional calls>"), marked


__all__ = ["EDGE", "SHOWN", "parse_edge", "with_optional_calls"]
