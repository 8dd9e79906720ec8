"""Asynchronous and conditional calls, found in traces.

A *call* here is as in :mod:`twin.calibrate.callgraph`: an operation instance whose parent
span is in another service; its caller is the instance that parent belongs to.

**Asynchronous** (``asynchronous: true``): a call counts as not awaited when any of these
holds, and a caller->callee relation is asynchronous when more than half of its calls are:

- messaging span kinds: the callee's span is a CONSUMER, or the parent span it hangs from
  is a PRODUCER (OpenTelemetry's span kinds, Jaeger's ``span.kind`` tag);
- the reference: the callee's span follows from its parent (Jaeger's ``FOLLOWS_FROM``
  reference type, or an OTLP span link taken as its parent when it has none); readers
  mark such spans with the attribute :data:`FOLLOWS_FROM`;
- timing: in a complete trace, the callee's span ends after its caller's instance ended
  (the caller answered without waiting). Clock skew between hosts can fake this, so the
  rule needs the margin :data:`twin.calibrate.spans.SKEW_TOLERANCE` and a majority.

**Conditional** (``when``): the call ``X`` and the call ``Y`` just before it (``Y``'s calls
end before ``X``'s first starts in at least :data:`ORDER_SHARE` of the instances making
both). ``X`` is made

- only when ``Y`` failed: ``when: previous_failed``, ``probability`` = the share of the
  instances where ``Y`` failed that make ``X`` (a fallback; ``Y`` becomes ``optional``);
- only when ``Y`` succeeded: ``when: previous_ok``, ``probability`` = the share of ``Y``'s
  successes that make ``X``. The evidence is instances where ``Y`` failed and the caller
  went on (a call started after ``Y`` ended) without making ``X``. That ``X`` is seen only
  beside ``Y`` is no evidence: request classes (pages that make both calls) do the same.

Each needs :data:`MIN_SUPPORT` instances on both sides (``X`` seen, and the instances the
condition excludes), so a subset that happened by chance among few instances is not taken
for a rule. What traces cannot tell: a cache miss going to the database, where the cache
never failed, looks like an independent call with the miss ratio as its probability, which
is what calibration then writes; the two differ only once the cache fails. The condition is
written only when ``Y`` is the call just before ``X`` in the calibrated operation and
neither is parallel; otherwise a note says why not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from twin.calibrate.spans import SKEW_TOLERANCE

OpKey = tuple[str, str]

FOLLOWS_FROM = "twin.follows_from"
"""Attribute a trace reader sets (``true``) on a span whose parent reference is not a
child-of one: Jaeger's ``FOLLOWS_FROM``, an OTLP link."""

ASYNC_SHARE = 0.5
"""A relation is asynchronous when more than this share of its calls show it."""
ORDER_SHARE = 0.9
"""``Y`` comes before ``X`` when it ends before ``X`` starts in at least this share of the
instances making both."""
MIN_SUPPORT = 10
"""Instances a conditional rule needs on each side (about a 1-in-1000 chance that two
independent calls made half of the time look conditional)."""


@dataclass
class CallForm:
    """How one caller operation makes its call to one callee operation."""

    asynchronous: bool = False
    evidence: str = ""  # why asynchronous: kinds, follows_from, timing
    when: str = "always"
    previous: OpKey | None = None  # the call the condition looks at
    probability: float = 1.0  # chance the call is made when the condition holds
    share: float = 1.0  # share of all the caller's instances that make it

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"asynchronous": self.asynchronous, "when": self.when}
        if self.asynchronous:
            out["evidence"] = self.evidence
        if self.previous is not None:
            out["previous"] = f"{self.previous[0]}:{self.previous[1]}"
            out["probability"] = self.probability
        return out


@dataclass
class _Made:
    start: float
    end: float
    failed: bool


def find_call_forms(
    spans: pd.DataFrame, parent: np.ndarray, entry: np.ndarray, is_call: np.ndarray
) -> dict[tuple[OpKey, OpKey], CallForm]:
    """Asynchronous and conditional relations (module docstring), keyed (caller, callee).

    ``parent``: each span's parent row (-1: none or missing); ``entry``: the row of the
    operation instance each span belongs to; ``is_call``: rows that are calls.
    """
    df = spans.reset_index(drop=True)
    if df.empty:
        return {}
    svc = df["service"].to_numpy(dtype=object)
    op = df["operation"].to_numpy(dtype=object)
    kind = df["kind"].to_numpy(dtype=object)
    start = df["start"].to_numpy(dtype=float)
    end = df["end"].to_numpy(dtype=float)
    err = df["error"].to_numpy(dtype=bool)
    partial = df["partial"].to_numpy(dtype=bool) if "partial" in df else np.zeros(len(df), bool)
    follows = df["attributes"].astype(str).str.contains(f'"{FOLLOWS_FROM}": true', regex=False)
    follows_arr = follows.to_numpy(dtype=bool)

    votes: dict[tuple[OpKey, OpKey], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    made: dict[int, dict[OpKey, _Made]] = defaultdict(dict)
    for i in np.where(is_call)[0]:
        p = int(parent[i])
        caller = int(entry[p])
        key = ((str(svc[caller]), str(op[caller])), (str(svc[i]), str(op[i])))
        v = votes[key]
        v[0] += 1
        if kind[i] == "consumer" or kind[p] == "producer":
            v[1] += 1
        elif follows_arr[i]:
            v[2] += 1
        elif not partial[i] and end[i] > end[caller] + SKEW_TOLERANCE:
            v[3] += 1
        s, e = (start[p], end[p]) if p != caller else (start[i], end[i])
        failed = bool(err[i] or (p != caller and err[p]))
        m = made[caller].get(key[1])
        if m is None:
            made[caller][key[1]] = _Made(float(s), float(e), failed)
        else:
            m.start, m.end, m.failed = min(m.start, s), max(m.end, e), m.failed or failed

    forms: dict[tuple[OpKey, OpKey], CallForm] = {}
    for key, (n, by_kind, by_ref, by_time) in votes.items():
        if by_kind + by_ref + by_time > ASYNC_SHARE * n:
            names = ("span kinds", "follows-from references", "timing")
            best = max(range(3), key=lambda k: (by_kind, by_ref, by_time)[k])
            forms[key] = CallForm(asynchronous=True, evidence=names[best])

    # conditional calls, per caller operation over all its instances
    rows = np.arange(len(df))
    instances: dict[OpKey, list[int]] = defaultdict(list)
    for i in rows[(entry == rows) & ~partial]:
        instances[(str(svc[i]), str(op[i]))].append(int(i))
    callees: dict[OpKey, set[OpKey]] = defaultdict(set)
    for caller_op, callee in votes:
        callees[caller_op].add(callee)
    for caller_op, members in instances.items():
        sync = sorted(c for c in callees.get(caller_op, ()) if (caller_op, c) not in forms)
        for x in sync:
            found = _condition(x, sync, [made.get(i, {}) for i in members])
            if found is not None:
                forms[(caller_op, x)] = found
    return forms


def _condition(
    x: OpKey, callees: list[OpKey], per_instance: list[dict[OpKey, _Made]]
) -> CallForm | None:
    """The condition ``x`` is made on, from the instances' calls; None: made independently."""
    with_x = [d for d in per_instance if x in d]
    if len(with_x) < MIN_SUPPORT:
        return None
    before: list[tuple[float, OpKey]] = []
    for y in callees:
        both = [d for d in with_x if y in d]
        if y == x or not both:
            continue
        first = sum(d[y].end <= d[x].start + SKEW_TOLERANCE for d in both)
        if first >= ORDER_SHARE * len(both):
            before.append((float(np.mean([d[x].start - d[y].end for d in both])), y))
    if not before:
        return None
    y = min(before)[1]  # the nearest call before x
    ok = [d for d in per_instance if y in d and not d[y].failed]
    failed = [d for d in per_instance if y in d and d[y].failed]
    share = len(with_x) / len(per_instance)
    if all(y in d and d[y].failed for d in with_x) and len(failed) >= MIN_SUPPORT:
        return CallForm(
            when="previous_failed", previous=y, probability=len(with_x) / len(failed), share=share
        )
    went_on = [
        d
        for d in failed
        if any(m.start >= d[y].end - SKEW_TOLERANCE for k, m in d.items() if k != y)
    ]
    excluded = sum(x not in d for d in went_on)
    if all(y in d and not d[y].failed for d in with_x) and excluded >= MIN_SUPPORT:
        return CallForm(
            when="previous_ok", previous=y, probability=len(with_x) / len(ok), share=share
        )
    return None


def apply_call_forms(
    ops: dict[str, dict[str, Any]],
    forms: dict[tuple[OpKey, OpKey], CallForm],
    safe: Callable[[str], str],
) -> list[str]:
    """Write the forms into calibrated calls (``ops[service][operation]["calls"]``, dicts
    with ``to`` written through ``safe``); returns a note per form written or refused."""
    notes: list[str] = []
    for (caller, callee), form in sorted(forms.items()):
        calls = ops.get(caller[0], {}).get(caller[1], {}).get("calls", [])
        to = f"{safe(callee[0])}:{safe(callee[1])}"
        idx = next((k for k, d in enumerate(calls) if d.get("to") == to), None)
        if idx is None:
            continue
        d = calls[idx]
        name = f"{caller[0]}:{caller[1]} -> {callee[0]}:{callee[1]}"
        if form.asynchronous:
            d["asynchronous"] = True
            notes.append(f"{name}: asynchronous ({form.evidence})")
            continue
        if form.previous is None:
            continue
        prev_to = f"{safe(form.previous[0])}:{safe(form.previous[1])}"
        prev = calls[idx - 1] if idx > 0 else None
        if prev is None or prev.get("to") != prev_to or prev.get("parallel") or d.get("parallel"):
            notes.append(
                f"{name}: made only when {form.previous[0]}:{form.previous[1]} "
                f"{'failed' if form.when == 'previous_failed' else 'succeeded'}, but that is "
                "not the sequential call just before it here: kept unconditional"
            )
            continue
        d["when"] = form.when
        # the written probability holds the count's rounding (probability x count = mean
        # calls): scale it from all instances to those meeting the condition (5 decimals:
        # the written one was rounded to 6)
        scale = form.probability / form.share if form.share > 0 else 1.0
        d["probability"] = round(min(1.0, float(d.get("probability", 1.0)) * scale), 5)
        if form.when == "previous_failed":
            prev["optional"] = True
        notes.append(
            f"{name}: {form.when} (probability {d['probability']:.3g} when the condition holds)"
        )
    return notes
