"""The change document: what a change does, as JSON merge patches on the twin's documents.

A change set names one or more changes; each patches the topology or the policy with an
RFC 7386 JSON merge patch (a mapping is merged key by key, ``null`` deletes a key, anything
else replaces the value) and may depend on other changes of the set. Every change reduces
to the documents, so the twin simulates exactly what ships, and the inverse of each patch
(:func:`inverse_patch`) is the twin's own rollback of it.

    name: cart-timeout-tightening
    changes:
      - id: c1
        target: policy
        patch: {clients: {"frontend->cartservice": {timeout: 0.05}}}
      - id: c2
        target: topology
        patch: {services: {cartservice: {replicas: 1}}}
        depends_on: [c1]
"""

from __future__ import annotations

import copy
import heapq
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.bounds import MAX_NAME_LENGTH, Name
from twin.errors import InputError
from twin.io import DocProblem, load_model, parse_model
from twin.policy import Policy
from twin.topology import Topology

MAX_CHANGES = 200
"""Most changes one change set may hold."""

Target = Literal["policy", "topology"]
"""The document a change patches."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Change(_Doc):
    """One change: a JSON merge patch (RFC 7386) on the topology or the policy."""

    id: Name = Field(description="unique within the change set; `depends_on` refers to it")
    target: Target = Field(description="the document the patch applies to")
    patch: dict[str, Any] = Field(
        description="JSON merge patch: mappings merge key by key, null deletes, the rest replaces"
    )
    depends_on: list[Name] = Field(
        default_factory=list,
        max_length=MAX_CHANGES,
        description="ids of changes that must be applied before this one (and reverted after)",
    )
    description: str | None = Field(
        default=None, max_length=10 * MAX_NAME_LENGTH, description="what the change is for"
    )


class ChangeSet(_Doc):
    """A named set of changes, applied in dependency order (document order among equals)."""

    name: Name = Field(description="the change set's name, as reports and the database show it")
    description: str | None = Field(default=None, max_length=10 * MAX_NAME_LENGTH)
    changes: list[Change] = Field(min_length=1, max_length=MAX_CHANGES)

    def cross_check(self) -> None:
        """Ids are unique, every dependency names a change of the set, and none is circular."""
        seen: dict[str, int] = {}
        for i, c in enumerate(self.changes):
            if c.id in seen:
                raise DocProblem(("changes", i, "id"), f"duplicate change id {c.id!r}")
            seen[c.id] = i
        for i, c in enumerate(self.changes):
            for j, dep in enumerate(c.depends_on):
                if dep not in seen:
                    raise DocProblem(
                        ("changes", i, "depends_on", j), f"no change {dep!r} in the set"
                    )
                if dep == c.id:
                    raise DocProblem(
                        ("changes", i, "depends_on", j), "a change cannot depend on itself"
                    )
        if len(self.order()) < len(self.changes):
            stuck = sorted(set(seen) - {c.id for c in self.order()})
            raise DocProblem(("changes",), f"circular depends_on among {', '.join(stuck)}")

    def order(self) -> list[Change]:
        """The changes in the order they apply: dependencies first, document order among
        changes that are free at the same time (Kahn's algorithm). A cycle leaves its
        members out, which :meth:`cross_check` reports."""
        index = {c.id: i for i, c in enumerate(self.changes)}
        waiting = {
            c.id: {d for d in c.depends_on if d in index and d != c.id} for c in self.changes
        }
        ready = [i for i, c in enumerate(self.changes) if not waiting[c.id]]
        heapq.heapify(ready)
        out: list[Change] = []
        while ready:
            c = self.changes[heapq.heappop(ready)]
            out.append(c)
            for other in self.changes:
                deps = waiting[other.id]
                if c.id in deps:
                    deps.discard(c.id)
                    if not deps:
                        heapq.heappush(ready, index[other.id])
        return out

    def dependents(self, change_id: str) -> list[str]:
        """Ids of the changes that depend on ``change_id`` directly."""
        return [c.id for c in self.changes if change_id in c.depends_on]

    @classmethod
    def load_file(cls, path: str | Path) -> ChangeSet:
        """Load and validate a change document (one-line, located errors)."""
        return load_model(cls, path)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` applied to ``target``, neither modified. A non-mapping patch
    replaces the target; in a mapping, ``None`` deletes the key and mappings merge."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def inverse_patch(before: Any, patch: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that takes ``merge_patch(before, patch)`` back to ``before`` on every
    key ``patch`` touched: a key the patch added is deleted (``null``), a replaced value is
    restored, and merged mappings are inverted key by key."""
    base = before if isinstance(before, dict) else {}
    out: dict[str, Any] = {}
    for key, value in patch.items():
        if key not in base:
            if value is not None:
                out[key] = None
        elif isinstance(value, dict) and isinstance(base[key], dict):
            inner = inverse_patch(base[key], value)
            if inner:
                out[key] = inner
        elif value is None or value != base[key]:
            out[key] = copy.deepcopy(base[key])
    return out


def document_data(doc: Topology | Policy) -> dict[str, Any]:
    """A document as the plain mapping a user would write (only the fields that were set),
    which is what a merge patch applies to."""
    return doc.model_dump(mode="json", exclude_unset=True)


def apply_change(
    change: Change, topology: Topology, policy: Policy, *, source: str = "<change>"
) -> tuple[Topology, Policy]:
    """``(topology, policy)`` with one change applied, both validated again (the policy
    against the new topology). A patch that makes a document invalid is a one-line error
    naming the change and the problem in the patched document."""
    where = f"{source}: change {change.id!r} ({change.target})"
    if change.target == "topology":
        data = merge_patch(document_data(topology), change.patch)
        topology = parse_model(Topology, data, source=where)
    else:
        data = merge_patch(document_data(policy), change.patch)
        policy = parse_model(Policy, data, source=where)
    try:
        policy.check_against(topology)
    except DocProblem as exc:
        raise InputError(
            exc.message, source=where, where=f"policy: {'.'.join(map(str, exc.loc))}"
        ) from None
    return topology, policy


def apply_changes(
    changes: ChangeSet,
    topology: Topology,
    policy: Policy | None = None,
    *,
    upto: int | None = None,
    source: str = "<change>",
) -> tuple[Topology, Policy]:
    """The documents after the whole set (or its first ``upto`` changes in order)."""
    pol = policy if policy is not None else Policy()
    for change in changes.order()[:upto]:
        topology, pol = apply_change(change, topology, pol, source=source)
    return topology, pol


__all__ = [
    "MAX_CHANGES",
    "Change",
    "ChangeSet",
    "Target",
    "apply_change",
    "apply_changes",
    "document_data",
    "inverse_patch",
    "merge_patch",
]
