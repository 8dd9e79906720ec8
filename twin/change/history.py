"""Checks and rollouts in the failure-mode database, and how well the checks predicted.

Both live in the store's ``changes`` table (:func:`twin.store.documents.add_changes`), one
row per document, keyed by the hash of its content:

- a **check** (``record: check``) is a ``twin check-change`` verdict: the change set's name,
  the decision (``go`` / ``no-go``), the predicted risk and the reasons. Its id is the
  content hash of the stored document (:func:`record_check` returns it);
- a **rollout** (``record: rollout``) is what happened when the change shipped: rolled back
  or not, after how many seconds, and whether an SLO breach was observed. It names the check
  it follows by that id (``check_id``), or none when the change shipped unchecked.

A stored row is never rewritten (content-addressed rows are immutable), so the outcome of a
rollout is a row of its own that points at its check, not an update of the check.

Accuracy (:func:`accuracy`) counts a rollout as *bad* when it was rolled back or breached an
SLO, and compares that with the check's decision: a ``no-go`` that shipped anyway and went
bad is a true positive, a ``go`` that went bad a miss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.errors import InputError
from twin.store import Store
from twin.store.documents import add_changes, content_hash, page

CHECK = "check"
ROLLOUT = "rollout"
ROLLED_BACK = "rolled-back"
KEPT = "kept"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_document(
    verdict: Mapping[str, Any], *, submitted_at: str | None = None
) -> dict[str, Any]:
    """The stored form of a verdict (``verdict.json``): the fields the table indexes plus
    the verdict itself."""
    return {
        "record": CHECK,
        "submitted_at": submitted_at or _now(),
        "name": str(verdict.get("name", "")),
        "verdict": str(verdict["decision"]),
        "risk": verdict.get("risk"),
        "reasons": list(verdict.get("reasons", [])),
        "detail": dict(verdict),
    }


def record_check(
    store: Store, verdict: Mapping[str, Any], *, submitted_at: str | None = None
) -> str:
    """Store one check (a ``verdict.json`` mapping with at least ``name`` and ``decision``);
    returns its id, which a rollout's ``check_id`` names. The same check twice is one row."""
    doc = check_document(verdict, submitted_at=submitted_at)
    add_changes(store, [doc])
    return content_hash(doc)


def record_rollout(
    store: Store,
    *,
    name: str,
    rolled_back: bool,
    observed_breach: bool,
    check_id: str | None = None,
    time_to_rollback: float | None = None,
    started_at: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> str:
    """Store the observed outcome of one rollout of the change set ``name``.

    ``rolled_back``: the rollout was reverted; ``time_to_rollback``: seconds from the start
    of the rollout to the revert (None when it was not rolled back); ``observed_breach``: an
    SLO was breached in production during the rollout; ``check_id``: the id
    :func:`record_check` returned for the check this rollout followed; ``detail``: anything
    else worth keeping (scores, verification results). Returns the rollout's id."""
    if time_to_rollback is not None and not time_to_rollback >= 0.0:
        raise InputError(f"time_to_rollback must be >= 0 seconds, got {time_to_rollback!r}")
    if time_to_rollback is not None and not rolled_back:
        raise InputError("time_to_rollback given for a rollout that was not rolled back")
    doc = {
        "record": ROLLOUT,
        "submitted_at": started_at or _now(),
        "name": name,
        "verdict": ROLLED_BACK if rolled_back else KEPT,
        "check_id": check_id,
        "rolled_back": bool(rolled_back),
        "time_to_rollback": time_to_rollback,
        "observed_breach": bool(observed_breach),
        "detail": dict(detail or {}),
    }
    add_changes(store, [doc])
    return content_hash(doc)


@dataclass(frozen=True)
class Entry:
    """One check with the rollouts that followed it (or a rollout with no check)."""

    id: str
    name: str
    submitted_at: str
    decision: str | None
    """``go`` / ``no-go``; None for a rollout that was never checked."""
    risk: dict[str, Any] | None
    reasons: list[str]
    rollouts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def observed_bad(self) -> bool | None:
        """Whether any rollout went bad (rolled back or breached); None before any rollout."""
        if not self.rollouts:
            return None
        return any(r["rolled_back"] or r["observed_breach"] for r in self.rollouts)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "submitted_at": self.submitted_at,
            "decision": self.decision,
            "risk": self.risk,
            "reasons": self.reasons,
            "rollouts": self.rollouts,
            "observed_bad": self.observed_bad,
        }


def history(store: Store, *, limit: int = 10_000) -> list[Entry]:
    """Every check, oldest first, with its rollouts; then the rollouts of no known check."""
    rows: list[dict[str, Any]] = []
    cursor = 0
    while len(rows) < limit:
        items, nxt = page(store, "changes", limit=min(500, limit - len(rows)), cursor=cursor)
        rows += items
        if nxt is None:
            break
        cursor = nxt
    checks: dict[str, Entry] = {}
    orphans: list[Entry] = []
    for r in rows:
        doc = r["document"] or {}
        if doc.get("record", CHECK) == CHECK:
            checks[r["content_hash"]] = Entry(
                id=r["content_hash"],
                name=r["name"],
                submitted_at=r["submitted_at"],
                decision=r["verdict"],
                risk=doc.get("risk"),
                reasons=list(doc.get("reasons", [])),
            )
    for r in rows:
        doc = r["document"] or {}
        if doc.get("record") != ROLLOUT:
            continue
        rollout = {
            "id": r["content_hash"],
            "started_at": r["submitted_at"],
            "rolled_back": bool(doc.get("rolled_back")),
            "time_to_rollback": doc.get("time_to_rollback"),
            "observed_breach": bool(doc.get("observed_breach")),
        }
        owner = checks.get(doc.get("check_id") or "")
        if owner is not None:
            owner.rollouts.append(rollout)
        else:
            orphans.append(
                Entry(r["content_hash"], r["name"], r["submitted_at"], None, None, [], [rollout])
            )
    return sorted(checks.values(), key=lambda e: e.submitted_at) + orphans


def accuracy(entries: Sequence[Entry]) -> dict[str, Any]:
    """Predicted no-go against the observed outcome, over the checks that have one.

    ``tp``: no-go and went bad; ``fp``: no-go and went fine; ``fn``: go and went bad;
    ``tn``: go and went fine. ``accuracy`` is None until a checked change has rolled out.
    Rollbacks: how many, and their median time."""
    n = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for e in entries:
        bad = e.observed_bad
        if e.decision is None or bad is None:
            continue
        key = ("t" if bad else "f") + "p" if e.decision == "no-go" else ("f" if bad else "t") + "n"
        n[key] += 1
    judged = sum(n.values())
    times = sorted(
        r["time_to_rollback"]
        for e in entries
        for r in e.rollouts
        if r["rolled_back"] and r["time_to_rollback"] is not None
    )
    rollbacks = sum(r["rolled_back"] for e in entries for r in e.rollouts)
    return {
        **n,
        "judged": judged,
        "accuracy": (n["tp"] + n["tn"]) / judged if judged else None,
        "checks": sum(e.decision is not None for e in entries),
        "rollouts": sum(len(e.rollouts) for e in entries),
        "rollbacks": rollbacks,
        "median_time_to_rollback": times[len(times) // 2] if times else None,
    }


def accuracy_by_month(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """:func:`accuracy` of the checks of each calendar month (by ``submitted_at``), oldest
    first: how the prediction's accuracy moves over time."""
    months: dict[str, list[Entry]] = {}
    for e in entries:
        if e.decision is not None:
            months.setdefault(e.submitted_at[:7], []).append(e)
    return [{"month": m, **accuracy(group)} for m, group in sorted(months.items())]


__all__ = [
    "CHECK",
    "KEPT",
    "ROLLED_BACK",
    "ROLLOUT",
    "Entry",
    "accuracy",
    "accuracy_by_month",
    "check_document",
    "history",
    "record_check",
    "record_rollout",
]
