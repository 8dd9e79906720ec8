"""The bundled topologies, found as package data rather than by a path into the repository.

They ship in the ``topologies`` package (``NAME.yaml`` beside ``NAME.scenario.yaml`` and
``NAME.policy.yaml``), so an installed twin finds them wherever it was installed, and a
checkout finds the very same files.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from twin.errors import InputError

PACKAGE = "topologies"
COMPANIONS = (".scenario.yaml", ".policy.yaml")
"""Suffixes of the documents that accompany a topology; they are not topologies."""


def bundled_dir() -> Path:
    """The folder of the bundled topologies (setuptools installs packages unzipped)."""
    return Path(str(files(PACKAGE)))


def bundled_names() -> list[str]:
    """Names of the bundled topologies, sorted (``online-boutique``, ...)."""
    return sorted(
        p.name.removesuffix(".yaml")
        for p in bundled_dir().glob("*.yaml")
        if not p.name.endswith(COMPANIONS)
    )


def bundled_topology_path(name: str, companion: str = "") -> Path:
    """``NAME.yaml``, or with ``companion`` "scenario" or "policy" its companion document."""
    if name not in bundled_names():
        raise InputError(
            f"no bundled topology {name!r}; expected one of {', '.join(bundled_names())}"
        )
    if companion not in ("", "scenario", "policy"):
        raise InputError(f"companion: expected scenario or policy, got {companion!r}")
    suffix = f".{companion}.yaml" if companion else ".yaml"
    return bundled_dir() / f"{name}{suffix}"
