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
      - id: v2
        kind: version           # a higher-level kind: reduces to a topology patch (+ a fault)
        service: cartservice
        latency_factor: 3.0
        error_rate: 0.02

Besides ``patch`` (the default kind), a change may be a ``version`` of a service (its
processing times scaled, plus an error probability) or a new ``dependency`` (one more call).
Each reduces (:func:`reduce_changes`) to merge patches on the documents, and ``version``'s
error probability, which the topology cannot express per service, to an ``error_rate`` fault
on the service for the whole simulated run.
"""

from __future__ import annotations

import copy
import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from twin.bounds import (
    MAX_CALL_COUNT,
    MAX_FACTOR,
    MAX_NAME_LENGTH,
    Finite,
    Int,
    Name,
    Probability,
    Reference,
)
from twin.errors import InputError
from twin.faults import ErrorRateFault
from twin.io import DocProblem, load_model, parse_model, register_union_tags
from twin.policy import Policy
from twin.safeload import Loc, format_loc, line_marks, read_yaml
from twin.topology import Call, Topology

MAX_CHANGES = 200
"""Most changes one change set may hold."""

Target = Literal["policy", "topology"]
"""The document a change patches."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _ChangeBase(_Doc):
    id: Name = Field(description="unique within the change set; `depends_on` refers to it")
    depends_on: list[Name] = Field(
        default_factory=list,
        max_length=MAX_CHANGES,
        description="ids of changes that must be applied before this one (and reverted after)",
    )
    description: str | None = Field(
        default=None, max_length=10 * MAX_NAME_LENGTH, description="what the change is for"
    )

    def reduce(self, topology: Topology, policy: Policy) -> Reduction:
        """The merge patches (and whole-run faults) this change amounts to, on the documents
        as they are when it applies. Problems are :class:`DocProblem` located in the change."""
        raise NotImplementedError  # pragma: no cover - every kind overrides it


class Change(_ChangeBase):
    """One change: a JSON merge patch (RFC 7386) on the topology or the policy."""

    kind: Literal["patch"] = Field(default="patch", description="the default kind")
    target: Target = Field(description="the document the patch applies to")
    patch: dict[str, Any] = Field(
        description="JSON merge patch: mappings merge key by key, null deletes, the rest replaces"
    )

    def reduce(self, topology: Topology, policy: Policy) -> Reduction:
        return Reduction(patches=((self.target, self.patch),))


class VersionChange(_ChangeBase):
    """A new version of a service, described by how it differs from the running one: its
    processing times scaled by ``latency_factor`` (every operation, or those named) and a
    share ``error_rate`` of its requests failing.

    The topology has no per-service error probability, so the error part runs as an
    ``error_rate`` fault on the service for the whole simulated run (the twin's own way of
    making a service fail a share of its requests); the latency part is a topology patch."""

    kind: Literal["version"]
    service: Name = Field(description="the service that gets the new version")
    latency_factor: Annotated[Finite, Field(gt=0.0, le=MAX_FACTOR)] = Field(
        default=1.0, description="times the current processing time (0.5: twice as fast)"
    )
    error_rate: Probability = Field(
        default=0.0, description="share of its requests the new version fails (ERROR)"
    )
    operations: list[Name] | None = Field(
        default=None, description="the operations that change (default: all of them)"
    )
    image: str | None = Field(
        default=None, max_length=10 * MAX_NAME_LENGTH, description="container image, for the record"
    )

    def reduce(self, topology: Topology, policy: Policy) -> Reduction:
        svc = topology.services.get(self.service)
        if svc is None:
            raise DocProblem(("service",), f"unknown service {self.service!r}")
        ops = self.operations if self.operations is not None else list(svc.operations)
        patch_ops: dict[str, Any] = {}
        for i, op in enumerate(ops):
            if op not in svc.operations:
                raise DocProblem(
                    ("operations", i), f"service {self.service!r} has no operation {op!r}"
                )
            if self.latency_factor != 1.0:
                scaled = svc.operations[op].service_time.scaled(self.latency_factor)
                patch_ops[op] = {"service_time": scaled.model_dump(mode="json", exclude_none=True)}
        patches: tuple[tuple[Target, dict[str, Any]], ...] = ()
        if patch_ops:
            patches = (("topology", {"services": {self.service: {"operations": patch_ops}}}),)
        faults: tuple[dict[str, Any], ...] = ()
        if self.error_rate > 0.0:
            fault = {"target": self.service, "probability": self.error_rate}
            faults = ({"kind": ErrorRateFault.name, **fault},)
        return Reduction(patches=patches, faults=faults)


class DependencyChange(_ChangeBase):
    """A new call: ``caller`` (``svc`` or ``svc:op``) calls ``to`` after its current calls."""

    kind: Literal["dependency"]
    caller: Reference = Field(description='"service" or "service:operation" that makes the call')
    to: Reference = Field(description='"service" or "service:operation" called')
    probability: Probability = Field(default=1.0, description="chance the call is made")
    count: Int = Field(default=1, ge=1, le=MAX_CALL_COUNT, description="calls when it is made")
    optional: bool = Field(default=False, description="a failure degrades, not fails, the caller")

    def reduce(self, topology: Topology, policy: Policy) -> Reduction:
        try:
            svc, op = topology.resolve(self.caller)
        except ValueError as exc:
            raise DocProblem(("caller",), str(exc)) from None
        try:
            topology.resolve(self.to)
        except ValueError as exc:
            raise DocProblem(("to",), str(exc)) from None
        calls = [
            c.model_dump(mode="json", exclude_unset=True)
            for c in topology.services[svc].operations[op].calls
        ]
        new = Call(
            to=self.to, probability=self.probability, count=self.count, optional=self.optional
        )
        calls.append(new.model_dump(mode="json", exclude_defaults=True) | {"to": self.to})
        patch = {"services": {svc: {"operations": {op: {"calls": calls}}}}}
        return Reduction(patches=(("topology", patch),))


def _kind_of(value: Any) -> str:
    kind = value.get("kind", "patch") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else "patch"


AnyChange = Annotated[
    Annotated[Change, Tag("patch")]
    | Annotated[VersionChange, Tag("version")]
    | Annotated[DependencyChange, Tag("dependency")],
    Discriminator(
        _kind_of,
        custom_error_type="change_kind",
        custom_error_message="unknown change kind; expected patch, version or dependency",
    ),
]
"""A change of any kind; ``kind`` defaults to ``patch``."""

KINDS = ("patch", "version", "dependency")
"""The change kinds."""

register_union_tags(*KINDS)


@dataclass(frozen=True)
class Reduction:
    """What a change amounts to in the twin's documents: merge patches in order, and faults
    (``kind``, ``target`` and the intensity field, without timing) that hold for a whole run."""

    patches: tuple[tuple[Target, dict[str, Any]], ...] = ()
    faults: tuple[dict[str, Any], ...] = ()


class ChangeSet(_Doc):
    """A named set of changes, applied in dependency order (document order among equals)."""

    name: Name = Field(description="the change set's name, as reports and the database show it")
    description: str | None = Field(default=None, max_length=10 * MAX_NAME_LENGTH)
    changes: list[AnyChange] = Field(min_length=1, max_length=MAX_CHANGES)

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

    def order(self) -> list[AnyChange]:
        """The changes in the order they apply: dependencies first, document order among
        changes that are free at the same time (Kahn's algorithm). A cycle leaves its
        members out, which :meth:`cross_check` reports."""
        index = {c.id: i for i, c in enumerate(self.changes)}
        waiting = {
            c.id: {d for d in c.depends_on if d in index and d != c.id} for c in self.changes
        }
        ready = [i for i, c in enumerate(self.changes) if not waiting[c.id]]
        heapq.heapify(ready)
        out: list[AnyChange] = []
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


@dataclass(frozen=True)
class Step:
    """One change reduced: its forward patches, the patches that revert it (in the order to
    apply them), and its whole-run faults."""

    change: AnyChange
    index: int
    """Its position in the change document."""
    patches: tuple[tuple[Target, dict[str, Any]], ...]
    inverses: tuple[tuple[Target, dict[str, Any]], ...]
    faults: tuple[dict[str, Any], ...]
    topology_before: Topology
    """The topology just before this change (what reverting it returns to)."""
    policy_before: Policy


@dataclass(frozen=True)
class Reduced:
    """A change set reduced to the documents: before and after, and each step."""

    before_topology: Topology
    before_policy: Policy
    topology: Topology
    policy: Policy
    steps: tuple[Step, ...]

    @property
    def faults(self) -> list[dict[str, Any]]:
        """Every step's whole-run faults, in order."""
        return [f for s in self.steps for f in s.faults]


def _where(marks: dict[Loc, int] | None, source: str, loc: Loc) -> str:
    line = None
    probe = loc
    while probe and line is None and marks:
        line = marks.get(probe)
        probe = probe[:-1]
    return f"{source}:{line}" if line else source


def reduce_changes(
    changes: ChangeSet,
    topology: Topology,
    policy: Policy | None = None,
    *,
    upto: int | None = None,
    source: str = "<change>",
    marks: dict[Loc, int] | None = None,
) -> Reduced:
    """Apply the set (or its first ``upto`` changes) in dependency order, validating both
    documents after every patch (the policy against the new topology).

    A problem is one line, located in the change document: ``file:line: changes[i].field:
    what is wrong`` (with ``marks`` from :func:`line_marks`), naming the patched document's
    own path when a patch makes it invalid."""
    pol0 = policy if policy is not None else Policy()
    topo, pol = topology, pol0
    index = {id(c): i for i, c in enumerate(changes.changes)}
    steps: list[Step] = []
    for change in changes.order()[:upto]:
        i = index[id(change)]
        base: Loc = ("changes", i)
        try:
            reduction = change.reduce(topo, pol)
        except DocProblem as exc:
            loc = (*base, *exc.loc)
            where = _where(marks, source, loc)
            raise InputError(exc.message, source=where, where=format_loc(loc)) from None
        inverses: list[tuple[Target, dict[str, Any]]] = []
        topo_before, pol_before = topo, pol
        for target, patch in reduction.patches:
            loc = (*base, "patch") if isinstance(change, Change) else base
            inner = f"change {change.id!r} makes the {target} invalid"
            try:
                if target == "topology":
                    inverses.append((target, inverse_patch(document_data(topo), patch)))
                    topo = parse_model(
                        Topology, merge_patch(document_data(topo), patch), source=inner
                    )
                else:
                    inverses.append((target, inverse_patch(document_data(pol), patch)))
                    pol = parse_model(Policy, merge_patch(document_data(pol), patch), source=inner)
                pol.check_against(topo)
            except DocProblem as exc:
                raise InputError(
                    f"change {change.id!r} makes the policy invalid: "
                    f"{format_loc(exc.loc)}: {exc.message}",
                    source=_where(marks, source, loc),
                    where=format_loc(loc),
                ) from None
            except InputError as exc:
                raise InputError(
                    f"{exc.source}: {exc.where + ': ' if exc.where else ''}{exc.detail}",
                    source=_where(marks, source, loc),
                    where=format_loc(loc),
                ) from None
        steps.append(
            Step(
                change=change,
                index=i,
                patches=reduction.patches,
                inverses=tuple(reversed(inverses)),
                faults=reduction.faults,
                topology_before=topo_before,
                policy_before=pol_before,
            )
        )
    return Reduced(topology, pol0, topo, pol, tuple(steps))


def apply_change(
    change: AnyChange, topology: Topology, policy: Policy, *, source: str = "<change>"
) -> tuple[Topology, Policy]:
    """``(topology, policy)`` with one change applied, both validated again (the policy
    against the new topology). A patch that makes a document invalid is a one-line error
    naming the change and the problem in the patched document."""
    one = ChangeSet(name="one", changes=[change])
    r = reduce_changes(one, topology, policy, source=source)
    return r.topology, r.policy


def apply_changes(
    changes: ChangeSet,
    topology: Topology,
    policy: Policy | None = None,
    *,
    upto: int | None = None,
    source: str = "<change>",
) -> tuple[Topology, Policy]:
    """The documents after the whole set (or its first ``upto`` changes in order)."""
    r = reduce_changes(changes, topology, policy, upto=upto, source=source)
    return r.topology, r.policy


@dataclass(frozen=True)
class ChangeFile:
    """A change document read from a file, with the line of every path (for errors)."""

    changes: ChangeSet
    source: str
    marks: dict[Loc, int]

    @classmethod
    def load(cls, path: str | Path) -> ChangeFile:
        """Read and validate; every problem is one located line."""
        _, text = read_yaml(path)
        return cls(ChangeSet.load_file(path), str(path), line_marks(text))

    def reduce(self, topology: Topology, policy: Policy | None = None) -> Reduced:
        """:func:`reduce_changes` with errors located in this file."""
        return reduce_changes(self.changes, topology, policy, source=self.source, marks=self.marks)


__all__ = [
    "KINDS",
    "MAX_CHANGES",
    "AnyChange",
    "Change",
    "ChangeFile",
    "ChangeSet",
    "DependencyChange",
    "Reduced",
    "Reduction",
    "Step",
    "Target",
    "VersionChange",
    "apply_change",
    "apply_changes",
    "document_data",
    "inverse_patch",
    "merge_patch",
    "reduce_changes",
]
