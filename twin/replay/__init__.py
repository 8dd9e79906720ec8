"""``twin replay``: the twin's accuracy on anyone's recorded faults, one method for every
format.

A format is a reader (files found by pattern in a folder -> :class:`.document.Observed`) and
a fault mapping (an observed fault -> a :class:`.mapping.Plan` of twin faults, or why
not): :mod:`.nezha`, :mod:`.petshop`, :mod:`.generic`. :func:`.run.run_replay` runs the twin
beside every fault and fault-free stretch and scores it with the one accuracy measure
(:func:`twin.calibrate.accuracy`); :mod:`.outputs` writes ``accuracy.json``, ``accuracy.md``
and ``accuracy.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.errors import InputError
from twin.replay import generic, nezha, petshop
from twin.replay.document import Fault, Figures, Observed, Window
from twin.replay.mapping import Plan
from twin.replay.outputs import write_outputs
from twin.replay.run import ReplayConfig, run_replay
from twin.topology import Topology

Reader = Callable[[Path, Topology], Observed]
Planner = Callable[[Fault, Topology], "Plan | str"]

FORMATS: dict[str, tuple[Reader, Planner]] = {
    "nezha": (nezha.read, nezha.plan),
    "petshop": (petshop.read, petshop.plan),
    "generic": (generic.read, generic.plan),
}
"""Format name -> (reader, fault mapping)."""


def read(fmt: str, data: Path, topology: Topology) -> tuple[Observed, Planner]:
    """The observed windows and faults of ``data`` in format ``fmt``, and its mapping."""
    if fmt not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    reader, planner = FORMATS[fmt]
    return reader(Path(data), topology), planner


def replay(
    topology: Topology,
    data: Path,
    fmt: str,
    out: Path,
    config: ReplayConfig | None = None,
    *,
    base_faults: list[dict[str, Any]] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Read, replay, write ``out``/accuracy.{json,md,png}; the result document."""
    obs, planner = read(fmt, data, topology)
    res = run_replay(
        topology,
        obs,
        planner,
        config or ReplayConfig(),
        base_faults=base_faults or [],
        on_progress=on_progress,
    )
    write_outputs(res, out)
    return res


__all__ = [
    "FORMATS",
    "Fault",
    "Figures",
    "Observed",
    "Plan",
    "ReplayConfig",
    "Window",
    "read",
    "replay",
    "run_replay",
    "write_outputs",
]
