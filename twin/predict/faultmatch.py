"""How well a watch's alerts named labelled faults: the matching rule and the figures.

The rule, one place for the benchmark, the experiment, the tests and the docs:

- **Matching.** A firing message raised on the window ending at ``t`` belongs to a fault that
  started at ``s`` and lasted ``fault_s`` when ``s - window_s <= t <= s + fault_s +
  2 window_s``: from one window before the fault's start (a window of slack for the
  label's clock) to two windows after its end (the detectors' persistence rules need
  consecutive windows). A message whose group began before that span but that is updated inside it
  counts too: the group is then describing this fault.
- **The answer.** A watch re-recognises a firing alert as the fault goes on, and re-sends it
  when its kind or its first three root-cause candidates change. The answer scored is
  ``final`` (default): the last firing message in the span (the recognition that read the
  most of the fault); ``first`` (the first message, what a pager shows first) is reported
  beside it.
- **A miss.** A fault with no firing message in its span is a miss: it counts in every
  denominator (AS@1, AS@3, kind) and is wrong in each, never dropped.
- **Kind.** Right when the answer's kind equals the fault type's kind (``kind_of``); faults
  whose type has no kind are left out of the kind figure and counted as unmapped.
- **The baseline** (the statistical localiser on the same windows) is read from the same
  message's ``evidence.baseline_root_cause``; it has no kind.
- **False alarms.** The fault-free span runs from ``quiet_after_s`` after the last fault's
  end to the last window; a false alarm is a group that *starts* firing in it (a firing
  message whose ``time`` is its group's ``starts_at``; updates of a group already firing do
  not count again). Per hour of that span.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from twin.predict.alerts import Alert
from twin.predict.windows import LabelledFault

Answer = Literal["final", "first"]


@dataclass(frozen=True)
class FaultResult:
    """One labelled fault against the alerts: whether an alert matched it, and the answer's
    kind, root-cause ranking and the baseline's ranking on the same windows."""

    fault: LabelledFault
    kind_truth: str | None
    alerted: bool
    kind: str | None
    root_cause: tuple[str, ...]
    baseline: tuple[str, ...]
    messages: int
    first_alert_s: float | None
    """Seconds from the fault's start to the end of the first matching window."""

    def rank(self, ranking: Sequence[str]) -> int | None:
        """1-based place of the faulted service in ``ranking`` (None: absent)."""
        return ranking.index(self.fault.service) + 1 if self.fault.service in ranking else None

    @property
    def as1(self) -> bool:
        return self.root_cause[:1] == (self.fault.service,)

    @property
    def as3(self) -> bool:
        return self.fault.service in self.root_cause[:3]

    @property
    def base_as1(self) -> bool:
        return self.baseline[:1] == (self.fault.service,)

    @property
    def base_as3(self) -> bool:
        return self.fault.service in self.baseline[:3]

    @property
    def kind_right(self) -> bool:
        return self.kind_truth is not None and self.kind == self.kind_truth


@dataclass(frozen=True)
class WatchScore:
    """The figures over all labelled faults (misses included) and the fault-free span."""

    faults: tuple[FaultResult, ...]
    answer: str
    quiet_hours: float
    false_alarms: int

    @property
    def n(self) -> int:
        return len(self.faults)

    def count(self, what: str) -> int:
        return sum(bool(getattr(f, what)) for f in self.faults)

    @property
    def mapped(self) -> int:
        return sum(f.kind_truth is not None for f in self.faults)

    @property
    def false_alarms_per_hour(self) -> float | None:
        return self.false_alarms / self.quiet_hours if self.quiet_hours > 0 else None

    def summary(self) -> dict[str, object]:
        """The figures as plain numbers (counts and shares; None where undefined)."""
        n, m = self.n, self.mapped

        def share(k: int, d: int) -> float | None:
            return k / d if d else None

        return {
            "answer": self.answer,
            "faults": n,
            "alerted": self.count("alerted"),
            "AS@1": self.count("as1"),
            "AS@3": self.count("as3"),
            "kind_right": self.count("kind_right"),
            "kinds_mapped": m,
            "AS@1_share": share(self.count("as1"), n),
            "AS@3_share": share(self.count("as3"), n),
            "kind_share": share(self.count("kind_right"), m),
            "baseline_AS@1": self.count("base_as1"),
            "baseline_AS@3": self.count("base_as3"),
            "baseline_AS@1_share": share(self.count("base_as1"), n),
            "baseline_AS@3_share": share(self.count("base_as3"), n),
            "quiet_hours": self.quiet_hours,
            "false_alarms": self.false_alarms,
            "false_alarms_per_hour": self.false_alarms_per_hour,
        }


def score(
    alerts: Sequence[Alert],
    faults: Sequence[LabelledFault],
    *,
    kind_of: Callable[[str], str | None],
    fault_s: float,
    window_s: float,
    last_window: float,
    answer: Answer = "final",
    quiet_after_s: float = 300.0,
) -> WatchScore:
    """Score ``alerts`` (every message a watch sent, in order) against labelled ``faults``
    by the module's rule; ``last_window`` is the end of the replay's last window."""
    firing = [a for a in alerts if a.status == "firing"]
    rows: list[FaultResult] = []
    for f in sorted(faults, key=lambda x: x.time):
        lo, hi = f.time - window_s, f.time + fault_s + 2 * window_s
        hits = [a for a in firing if lo - 1e-9 <= a.time <= hi + 1e-9]
        pick = (hits[-1] if answer == "final" else hits[0]) if hits else None
        rows.append(
            FaultResult(
                fault=f,
                kind_truth=kind_of(f.type),
                alerted=pick is not None,
                kind=pick.kind if pick else None,
                root_cause=tuple(pick.root_cause) if pick else (),
                baseline=tuple(pick.evidence.baseline_root_cause) if pick else (),
                messages=len(hits),
                first_alert_s=hits[0].time - f.time if hits else None,
            )
        )
    start = max((f.time for f in faults), default=last_window) + fault_s + quiet_after_s
    quiet = [a for a in firing if a.time > start and abs(a.time - a.starts_at) < 1e-9]
    hours = max(last_window - start, 0.0) / 3600.0
    return WatchScore(tuple(rows), answer, hours, len(quiet))


def table(s: WatchScore) -> str:
    """The per-fault table (markdown): fault, alerted, kind (truth / said), the answer's top
    three root causes with the faulted service's rank, and the baseline's."""

    def top(xs: Sequence[str]) -> str:
        return ", ".join(xs[:3]) or "-"

    lines = [
        "| fault | alerted (min after start) | kind: truth / said | root_cause top 3 | rank "
        "| baseline top 3 | rank |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in s.faults:
        when = f"yes ({r.first_alert_s / 60:+.0f})" if r.first_alert_s is not None else "**no**"
        lines.append(
            f"| {r.fault.label or r.fault.service} | {when} | {r.kind_truth or 'unmapped'} / "
            f"{r.kind or '-'} | {top(r.root_cause)} | {r.rank(r.root_cause) or '-'} "
            f"| {top(r.baseline)} | {r.rank(r.baseline) or '-'} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["Answer", "FaultResult", "WatchScore", "score", "table"]
