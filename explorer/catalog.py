"""Which systems the explorer offers: bundled topologies and uploaded documents.

A *system* is a topology with its optional companion scenario and policy (for bundled ones,
``NAME.scenario.yaml`` and ``NAME.policy.yaml`` beside ``NAME.yaml``). Everything that goes
wrong while reading one is a :class:`twin.errors.InputError` whose one-line message names
the file, the line and the path inside the document.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from twin.bundled import COMPANIONS, bundled_dir
from twin.errors import InputError
from twin.io import DocProblem, format_loc, parse_model
from twin.policy import Policy
from twin.safeload import compose_yaml, load_yaml
from twin.scenario import Scenario
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY_DIR_ENV = "SHADOW_TWIN_TOPOLOGIES"
"""Environment variable naming another folder of topologies (the tests use a small one)."""

M = TypeVar("M", bound=BaseModel)


def topology_dir() -> Path:
    """The folder of topologies: ``$SHADOW_TWIN_TOPOLOGIES`` or the bundled ones."""
    override = os.environ.get(TOPOLOGY_DIR_ENV)
    return Path(override) if override else bundled_dir()


def discover(folder: Path | None = None) -> list[Path]:
    """Every ``*.yaml`` topology in the folder, by name; companion files are not topologies."""
    folder = folder or topology_dir()
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.glob("*.yaml") if p.is_file() and not p.name.endswith(COMPANIONS)
    )


def companion(path: Path, suffix: str) -> Path:
    """``NAME.yaml`` -> ``NAME<suffix>`` beside it (``.scenario.yaml`` or ``.policy.yaml``)."""
    return path.with_name(path.name.removesuffix(".yaml") + suffix)


@dataclass(frozen=True)
class System:
    """A topology the explorer can show, with its companion documents when it has them."""

    name: str
    topology: Topology
    scenario: Scenario | None = None
    policy: Policy | None = None
    origin: str = "bundled"  # "bundled" or "uploaded"
    notes: tuple[str, ...] = field(default=())  # problems with companion files, one line each


# -- parsing text ---------------------------------------------------------------------------


def _line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of a path in a YAML text (or of its nearest enclosing path)."""
    try:
        node: Any = compose_yaml(text, "<upload>")
    except InputError:
        return None
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line = key.start_mark.line + 1
                    nxt = value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def parse_text(model: type[M], text: str, source: str) -> M:
    """Read one document from YAML text (an upload) with the twin's one-line errors."""
    data = load_yaml(text, source)
    if data is None:
        raise InputError("document is empty", source=source)
    return parse_model(model, data, source=source, text=text)


def check_companions(
    topology: Topology,
    scenario: Scenario | None,
    policy: Policy | None,
    texts: dict[str, tuple[str, str]],
) -> None:
    """Fault targets and policy edges must exist in the topology; a problem names its file.

    ``texts`` maps "scenario"/"policy" to (source name, YAML text) for line numbers.
    """
    for kind, doc in (("scenario", scenario), ("policy", policy)):
        if doc is None:
            continue
        try:
            doc.check_against(topology)
        except DocProblem as exc:
            source, text = texts.get(kind, (f"<{kind}>", ""))
            line = _line_of(text, exc.loc) if text else None
            where = f"{source}:{line}" if line else source
            raise InputError(exc.message, source=where, where=format_loc(exc.loc)) from None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None


def load_bundled(path: Path) -> System:
    """A bundled topology and its companions. A broken topology raises; a broken companion is
    left out and noted (the topology is still worth showing)."""
    rel = display_path(path)
    topology = parse_text(Topology, read_text(path), rel)
    notes: list[str] = []
    docs: dict[str, Any] = {"scenario": None, "policy": None}
    texts: dict[str, tuple[str, str]] = {}
    for kind, suffix, model in (
        ("scenario", ".scenario.yaml", Scenario),
        ("policy", ".policy.yaml", Policy),
    ):
        p = companion(path, suffix)
        if not p.is_file():
            continue
        try:
            text = read_text(p)
            docs[kind] = parse_text(model, text, display_path(p))
            texts[kind] = (display_path(p), text)
            check_companions(
                topology,
                docs["scenario"] if kind == "scenario" else None,
                docs["policy"] if kind == "policy" else None,
                texts,
            )
        except InputError as exc:
            docs[kind] = None
            notes.append(str(exc))
    return System(
        name=topology.name if topology.name else path.stem,
        topology=topology,
        scenario=docs["scenario"],
        policy=docs["policy"],
        origin="bundled",
        notes=tuple(notes),
    )


def load_uploaded(
    topology: tuple[str, str],
    scenario: tuple[str, str] | None = None,
    policy: tuple[str, str] | None = None,
) -> System:
    """Uploaded documents as (file name, text); any problem raises a one-line InputError."""
    topo = parse_text(Topology, topology[1], topology[0])
    scen = parse_text(Scenario, scenario[1], scenario[0]) if scenario else None
    pol = parse_text(Policy, policy[1], policy[0]) if policy else None
    texts = {k: v for k, v in (("scenario", scenario), ("policy", policy)) if v is not None}
    check_companions(topo, scen, pol, texts)
    return System(name=topo.name, topology=topo, scenario=scen, policy=pol, origin="uploaded")


def display_path(path: Path) -> str:
    """A path as users know it: relative to the repository when it lies inside."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
