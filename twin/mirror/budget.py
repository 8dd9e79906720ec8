"""The chaos budget: transformations follow production's SLO burn rate.

Every evaluation the controller is given production's requests and 5xx answers since the
previous one (Envoy's own counters for the production listener,
``http.production.downstream_rq_completed`` and ``downstream_rq_5xx``: what clients
actually got) and computes the burn rate, ``(errors / requests) / (1 - slo_target)``: 1
spends the error budget exactly as fast as the objective allows.

- burn < ``raise_below``: the level rises by ``step`` (up to ``max_level``);
- ``raise_below`` <= burn < ``shrink_above``: it holds;
- ``shrink_above`` <= burn < ``stop_at``: it falls by ``step``;
- burn >= ``stop_at``: production is breaching; the level drops to 0 at once and stays 0
  until the burn is back below ``raise_below`` (then it resumes at one ``step``);
- fewer than ``min_requests`` requests: no evidence, the level holds (0 stays 0).

Between full evaluations, ``checks_per_interval - 1`` stop checks look at the trailing
interval and may only stop (:meth:`Controller.check_stop`): a breach that begins just after
an evaluation is caught a fraction of an interval later, not one whole interval later.

The level scales every transformation (see :func:`twin.mirror.envoy.runtime_values`).
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.mirror.document import Budget


@dataclass(frozen=True)
class Decision:
    """One evaluation: the level before and after, and why."""

    level_from: float
    level_to: float
    reason: str
    burn: float | None
    requests: int
    errors: int
    stopped: bool

    @property
    def changed(self) -> bool:
        return abs(self.level_to - self.level_from) > 1e-12


class Controller:
    """The level (0..1) as a function of the burn rates seen so far."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.level = budget.start_level
        self.stopped = False
        self.requests_total = 0
        self.errors_total = 0
        self.last_burn: float | None = None
        self.changes = 0

    @property
    def spent(self) -> float:
        """Share of the error budget production has spent since the start (errors over the
        errors the objective allows for the requests seen)."""
        allowed = self.requests_total * (1.0 - self.budget.slo_target)
        return self.errors_total / allowed if allowed > 0 else 0.0

    def step(self, requests: int, errors: int) -> Decision:
        """Evaluate one interval with ``requests`` answered and ``errors`` of them 5xx."""
        b = self.budget
        requests, errors = max(0, requests), max(0, min(errors, requests))
        self.requests_total += requests
        self.errors_total += errors
        before = self.level
        if requests < b.min_requests:
            return self._decide(
                before,
                before,
                f"{requests} requests < min_requests {b.min_requests}: hold",
                None,
                requests,
                errors,
            )
        burn = (errors / requests) / (1.0 - b.slo_target)
        self.last_burn = burn
        if burn >= b.stop_at:
            self.stopped = True
            return self._decide(
                before,
                0.0,
                f"burn {burn:.3g} >= stop_at {b.stop_at:g}: stop",
                burn,
                requests,
                errors,
            )
        if self.stopped:
            if burn < b.raise_below:
                self.stopped = False
                to = min(b.max_level, b.step)
                why = f"burn {burn:.3g} < raise_below {b.raise_below:g} after a stop: resume"
                return self._decide(before, to, why, burn, requests, errors)
            why = f"burn {burn:.3g} not yet below raise_below {b.raise_below:g}: stay stopped"
            return self._decide(before, 0.0, why, burn, requests, errors)
        if burn >= b.shrink_above:
            to = max(0.0, before - b.step)
            why = f"burn {burn:.3g} >= shrink_above {b.shrink_above:g}: shrink"
            return self._decide(before, to, why, burn, requests, errors)
        if burn < b.raise_below:
            to = min(b.max_level, before + b.step)
            why = f"burn {burn:.3g} < raise_below {b.raise_below:g}: raise"
            return self._decide(before, to, why, burn, requests, errors)
        why = f"burn {burn:.3g} between raise_below and shrink_above: hold"
        return self._decide(before, before, why, burn, requests, errors)

    def check_stop(self, requests: int, errors: int) -> Decision | None:
        """A stop check over the trailing interval: stops on a breach, else changes nothing
        (the counts are not added to the totals; the full evaluations tile time)."""
        b = self.budget
        if self.stopped or requests < b.min_requests or requests <= 0:
            return None
        burn = (max(0, min(errors, requests)) / requests) / (1.0 - b.slo_target)
        if burn < b.stop_at:
            return None
        self.last_burn = burn
        self.stopped = True
        why = f"burn {burn:.3g} >= stop_at {b.stop_at:g} (check between evaluations): stop"
        return self._decide(self.level, 0.0, why, burn, requests, errors)

    def _decide(
        self,
        before: float,
        to: float,
        reason: str,
        burn: float | None,
        requests: int,
        errors: int,
    ) -> Decision:
        to = round(to, 9)
        self.level = to
        d = Decision(before, to, reason, burn, requests, errors, self.stopped)
        if d.changed:
            self.changes += 1
        return d


__all__ = ["Controller", "Decision"]
