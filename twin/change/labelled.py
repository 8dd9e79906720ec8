"""A labelled set of changes, checked and scored: how often ``check-change`` is right.

A set is a folder with change files and ``labels.yaml``:

    changes:
      - {file: a.yaml, topology: online-boutique, expected: no-go, reasons: [timeout]}
      - {file: b.yaml, topology: sock-shop, load: 1.2, expected: go}

``topology`` names a bundled topology (its ``.policy.yaml`` is the policy in force) or a
path to a topology file (``policy`` then names its policy file, if any); ``load`` is the
forecast peak to check at; ``reasons`` are the reason families (the text before the colon
of a verdict's reason) any one of which names the problem. A bad change is *caught* when
the decision is ``no-go`` and one of its reasons is of a labelled family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.bundled import bundled_names, bundled_topology_path
from twin.change.check import CheckOptions, CheckResult, check_change
from twin.change.document import ChangeFile
from twin.change.statics import CHECKS
from twin.io import load_model
from twin.policy import Policy
from twin.topology import Topology

FAMILIES = (*CHECKS, "risk", "breach-minutes")
"""Reason families a verdict may name."""


class Label(BaseModel):
    """One labelled change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str = Field(description="the change file, relative to the set's folder")
    topology: str = Field(description="a bundled topology's name, or a topology file")
    policy: str | None = Field(default=None, description="policy file (default: bundled's)")
    load: float = Field(default=1.0, gt=0.0, description="load multiplier checked at")
    expected: Literal["go", "no-go"]
    reasons: list[Literal[FAMILIES]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="families any one of which names a bad change"
    )


class Labels(BaseModel):
    """``labels.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    changes: list[Label] = Field(min_length=1)


def family(reason: str) -> str:
    """The family of a verdict's reason: the text before its first colon."""
    return reason.partition(":")[0].strip()


def _documents(label: Label, root: Path) -> tuple[Topology, Policy | None]:
    if label.topology in bundled_names():
        topo = Topology.load(bundled_topology_path(label.topology))
        pol_path: Path | None = bundled_topology_path(label.topology, "policy")
        if label.policy is not None:
            pol_path = root / label.policy
    else:
        topo = Topology.load(root / label.topology)
        pol_path = root / label.policy if label.policy is not None else None
    pol = Policy.load_file(pol_path) if pol_path is not None and pol_path.exists() else None
    return topo, pol


def check_one(
    label: Label, root: Path, *, replications: int, seed: int
) -> tuple[CheckResult, dict[str, Any]]:
    """Check one labelled change; returns the result and its scored row."""
    topo, pol = _documents(label, root)
    changes = ChangeFile.load(root / label.file)
    options = CheckOptions(load=label.load, replications=replications, seed=seed)
    result = check_change(topo, changes, pol, options)
    v = result.verdict
    families = sorted({family(r) for r in v.reasons})
    named = label.expected == "no-go" and any(f in label.reasons for f in families)
    row = {
        "file": label.file,
        "topology": label.topology,
        "expected": label.expected,
        "decision": v.decision,
        "correct": v.decision == label.expected and (label.expected == "go" or named),
        "named": named,
        "families": families,
        "labelled_families": list(label.reasons),
        "risk": v.risk.model_dump(),
        "breach_minutes": v.breach_minutes.model_dump(),
        "wall_seconds": v.wall_seconds,
        "reasons": v.reasons,
    }
    return result, row


def run_set(
    folder: Path,
    *,
    replications: int = 8,
    seed: int = 1,
    on_row: Callable[[dict[str, Any], CheckResult], None] | None = None,
) -> dict[str, Any]:
    """Check every labelled change of the set in ``folder``; returns the rows and the
    confusion table (``bad_caught``: no-go naming a labelled reason)."""
    labels = load_model(Labels, folder / "labels.yaml")
    rows = []
    for label in labels.changes:
        result, row = check_one(label, folder, replications=replications, seed=seed)
        rows.append(row)
        if on_row is not None:
            on_row(row, result)
    bad = [r for r in rows if r["expected"] == "no-go"]
    good = [r for r in rows if r["expected"] == "go"]
    table = {
        "bad": len(bad),
        "bad_no_go": sum(r["decision"] == "no-go" for r in bad),
        "bad_caught": sum(r["correct"] for r in bad),
        "good": len(good),
        "good_go": sum(r["decision"] == "go" for r in good),
    }
    table["bad_caught_share"] = table["bad_caught"] / len(bad) if bad else None
    table["good_go_share"] = table["good_go"] / len(good) if good else None
    return {"rows": rows, "confusion": table, "replications": replications, "seed": seed}


__all__ = ["FAMILIES", "Label", "Labels", "check_one", "family", "run_set"]
