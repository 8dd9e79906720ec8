"""Static checks of a change: what is wrong with the documents after it, before any run.

Each check returns :class:`Finding` objects, one per offending edge or service, with a
reason string a person reads in the verdict. A check judges the documents *after* the
change; :func:`new_findings` keeps the findings the documents before it did not already
have, so a change is blamed only for what it introduces (a pre-existing problem is
reported as a note, not as a reason to stop the change).

The checks and their thresholds:

- ``timeout``: an edge's timeout is below the callee's simulated p99 (the callee's own
  latency, calls included, in the twin's fault-free run at the checked load): at least 1% of
  calls time out while the callee keeps working on them.
- ``retry-budget``: an edge retries (``max`` > 0) with no ``budget``: under an error burst
  every failed call is retried ``max`` times, and the retries themselves add load.
- ``retry-amplification``: along a call path from an entry, the product of the attempts
  each edge allows (1 + ``max``) exceeds :data:`MAX_AMPLIFICATION`: retries at several
  layers multiply (client x mesh x client ...), and the deepest service sees that many
  times its load when it fails.
- ``hpa-max``: an autoscaled service's ``max`` replicas is below the need at the checked
  load: ``ceil(offered work / (workers x target_utilization))``.
- ``breaker-removed``: an edge had a circuit breaker and no longer has one, and its callee
  is at risk: the risk file gives it a probability of failing within the horizon of at
  least :data:`AT_RISK`, or (no risk file) the fault catalogue, under which every service
  can fail.
- ``capacity``: a service is offered a utilisation of 1 or more at the checked load
  (``rate x visits x mean service time / (replicas x workers)``, with an autoscaler's
  ``max`` replicas): its queue grows without bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from twin.policy import Policy
from twin.sim.budget import CallGraph
from twin.topology import Topology

MAX_AMPLIFICATION = 10.0
"""Most attempts a path's retries may multiply to: one order of magnitude of extra load on
the deepest service when it fails (3 attempts at two layers, 9, passes; three layers, 27,
does not)."""

AT_RISK = 0.05
"""A service the risk file gives at least this probability of failing (any kind) within its
horizon is one whose callers should keep their breakers."""

CHECKS = (
    "timeout",
    "retry-budget",
    "retry-amplification",
    "hpa-max",
    "breaker-removed",
    "capacity",
)
"""The static checks, by the family name a finding carries."""


@dataclass(frozen=True)
class Finding:
    """One problem: which check, on what (an edge ``a->b`` or a service), and why."""

    check: str
    subject: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return self.check, self.subject


def _edges(topology: Topology) -> list[tuple[str, str]]:
    return sorted(topology.service_graph().edges)


def timeouts(
    topology: Topology, policy: Policy, callee_p99: Mapping[str, float | None]
) -> list[Finding]:
    """Edges whose timeout is below the callee's simulated p99."""
    out = []
    for a, b in _edges(topology):
        t = policy.client(a, b).timeout
        p99 = callee_p99.get(b)
        if t is not None and p99 is not None and t < p99:
            out.append(
                Finding(
                    "timeout",
                    f"{a}->{b}",
                    f"timeout: {a}->{b} times out at {t:g} s, below {b}'s simulated p99 of "
                    f"{p99:.3g} s (more than 1% of calls time out while {b} keeps working)",
                )
            )
    return out


def retry_budgets(topology: Topology, policy: Policy) -> list[Finding]:
    """Edges that retry without a retry budget."""
    out = []
    for a, b in _edges(topology):
        r = policy.client(a, b).retries
        if r is not None and r.max > 0 and r.budget is None:
            out.append(
                Finding(
                    "retry-budget",
                    f"{a}->{b}",
                    f"retry-budget: {a}->{b} retries up to {r.max} times with no retry budget "
                    f"(an error burst at {b} becomes up to {r.max + 1}x its load)",
                )
            )
    return out


def amplification(topology: Topology, policy: Policy) -> list[Finding]:
    """Call paths from an entry whose attempts multiply past :data:`MAX_AMPLIFICATION`;
    one finding per deepest service reached that way, naming the worst path."""
    graph = CallGraph(topology, policy)
    best: dict[str, tuple[float, list[str]]] = {}
    for w in topology.workload:
        for node, _ in graph.classes(w.entry):
            if node not in best or best[node][0] < 1.0:
                best[node] = (1.0, [graph.service_of[node]])
    for node in graph.order:
        if node not in best:
            continue
        product, path = best[node]
        for dst, _mult, attempts, _lat in graph.calls[node]:
            cand = product * attempts
            if dst not in best or cand > best[dst][0]:
                best[dst] = (cand, [*path, graph.service_of[dst]])
    out: dict[str, Finding] = {}
    for node in graph.order:
        if node not in best:
            continue
        product, path = best[node]
        svc = graph.service_of[node]
        if product > MAX_AMPLIFICATION and (svc not in out):
            out[svc] = Finding(
                "retry-amplification",
                svc,
                f"retry-amplification: retries multiply to {product:g} attempts along "
                f"{' -> '.join(path)} (more than {MAX_AMPLIFICATION:g})",
            )
    return list(out.values())


def utilisation(topology: Topology, policy: Policy, load: float) -> dict[str, float]:
    """Offered utilisation of every service at ``load`` times the workload, an autoscaled
    service counted at its ``max`` replicas (:meth:`twin.sim.budget.CallGraph.utilisation`)."""
    graph = CallGraph(topology, policy)
    rates = graph.at_entries({w.entry: w.rate * load for w in topology.workload})
    rho = graph.utilisation(rates)
    for name, sp in policy.services.items():
        if sp.autoscale is not None and name in rho:
            replicas = topology.services[name].replicas
            rho[name] *= replicas / max(replicas, sp.autoscale.max)
    return rho


def capacity(topology: Topology, policy: Policy, load: float) -> list[Finding]:
    """Services offered a utilisation of 1 or more at ``load``."""
    out = []
    for name, rho in utilisation(topology, policy, load).items():
        if rho >= 1.0:
            svc = topology.services[name]
            out.append(
                Finding(
                    "capacity",
                    name,
                    f"capacity: {name} is offered {rho:.2f} of its capacity at load x{load:g} "
                    f"({svc.replicas} replica(s) x {svc.workers} worker(s)): its queue grows "
                    "without bound",
                )
            )
    return out


def hpa_max(topology: Topology, policy: Policy, load: float) -> list[Finding]:
    """Autoscaled services whose ``max`` is below the replicas the load needs."""
    graph = CallGraph(topology, policy)
    rates = graph.at_entries({w.entry: w.rate * load for w in topology.workload})
    rho = graph.utilisation(rates)
    out = []
    for name, sp in policy.services.items():
        a = sp.autoscale
        if a is None or name not in topology.services:
            continue
        work = rho[name] * topology.services[name].replicas  # in replicas at 100% busy
        need = math.ceil(work / a.target_utilization) if math.isfinite(work) else math.inf
        if a.max < need:
            out.append(
                Finding(
                    "hpa-max",
                    name,
                    f"hpa-max: {name}'s autoscaler stops at {a.max} replicas, below the "
                    f"{need} the load x{load:g} needs at {a.target_utilization:g} utilisation",
                )
            )
    return out


def breakers_removed(
    topology: Topology, before: Policy, after: Policy, at_risk: Iterable[str] | None
) -> list[Finding]:
    """Edges that lose their circuit breaker while their callee is at risk (``at_risk``:
    the services the risk file says may fail; None: every service, as the catalogue has
    it)."""
    risky = None if at_risk is None else set(at_risk)
    out = []
    for a, b in _edges(topology):
        if before.client(a, b).circuit_breaker is None:
            continue
        if after.client(a, b).circuit_breaker is not None:
            continue
        if risky is not None and b not in risky:
            continue
        why = (
            f"the risk file gives it a failure probability of at least {AT_RISK:g} in the horizon"
            if risky is not None
            else "every service of the fault catalogue can fail"
        )
        out.append(
            Finding(
                "breaker-removed",
                f"{a}->{b}",
                f"breaker-removed: {a}->{b} loses its circuit breaker while {b} is at risk ({why})",
            )
        )
    return out


def static_findings(
    topology: Topology,
    policy: Policy,
    *,
    load: float,
    callee_p99: Mapping[str, float | None],
) -> list[Finding]:
    """Every check that judges one pair of documents (all but ``breaker-removed``)."""
    return [
        *capacity(topology, policy, load),
        *hpa_max(topology, policy, load),
        *timeouts(topology, policy, callee_p99),
        *retry_budgets(topology, policy),
        *amplification(topology, policy),
    ]


def new_findings(before: Iterable[Finding], after: Iterable[Finding]) -> list[Finding]:
    """The findings of ``after`` whose (check, subject) ``before`` did not have."""
    known = {f.key for f in before}
    return [f for f in after if f.key not in known]


__all__ = [
    "AT_RISK",
    "CHECKS",
    "MAX_AMPLIFICATION",
    "Finding",
    "amplification",
    "breakers_removed",
    "capacity",
    "hpa_max",
    "new_findings",
    "retry_budgets",
    "static_findings",
    "timeouts",
    "utilisation",
]
