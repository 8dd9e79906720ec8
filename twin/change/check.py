"""``check-change``: a change judged in the twin before it ships.

The method, in order:

1. **Reduce** the change set to the documents (:func:`twin.change.document.reduce_changes`):
   the topology and policy before and after, and the faults a new version brings.
2. **Plan the runs.** One fault-free run at the checked load, and ``replications`` runs
   under one fault each, drawn with the seed from the faults likely in the horizon: from a
   ``twin risk`` output (``risk.json``), each failure mode (service, kind) drawn in
   proportion to its expected occurrences in the horizon (``rate_per_day``); without one,
   from the fault catalogue (every kind of the campaigns' default sample on every service,
   at its typical intensity), drawn without replacement while they last. A fault holds
   for the middle third of the measured time. The run length comes from the work budget:
   as long as :data:`REQUESTS_PER_RUN` requests (calls included) allow at that load, within
   [:data:`MIN_DURATION`, :data:`MAX_DURATION`] seconds.
3. **Paired replications.** Every planned run is simulated twice, before and after the
   change, with the same seed and the same fault: common random numbers, so the difference
   of a pair is the change's effect, not the noise of two draws.
4. **Score.** For each run: whether it breached an SLO (the run's p99 or availability
   missed its objective, or the run could not serve the load) and its breach minutes (the
   measured windows whose worst entry p99 or whose availability missed the objective; a run
   stopped as unstable is in breach for the rest of its time). The risk is the mean paired
   difference after - before over the runs (the fault-free one included), with a 90%
   paired-bootstrap interval (:data:`BOOTSTRAP` resamples of the pairs): no model to
   trust, an interval that is exactly ``[0, 0]`` when the change has no effect, and pairs
   that keep their correlation.
5. **Static checks** (:mod:`twin.change.statics`) on the documents after the change, the
   timeout check against the callees' p99 in the fault-free run after it.
6. **Decide.** ``no-go`` when a static check finds a problem the documents did not have
   before, or when the change credibly adds risk: the 90% interval's lower end of the
   change in P(SLO breach) is above :data:`RISK_THRESHOLD` (0: more breaching runs, with
   90% confidence), or that of the change in breach time, as a share of the measured time,
   is above :data:`BREACH_SHARE_THRESHOLD`. Otherwise ``go``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from twin.campaign.generate import make_fault
from twin.change.document import ChangeFile, ChangeSet, Reduced, reduce_changes
from twin.change.statics import (
    AT_RISK,
    breakers_removed,
    new_findings,
    static_findings,
)
from twin.change.verdict import Figure, SloFigures, Verdict, VerdictFinding, VerdictMethod
from twin.errors import InputError
from twin.faults import KINDS, Fault
from twin.policy import Policy
from twin.results import Results
from twin.rng import generator, replication_seeds
from twin.safeload import read_json
from twin.scenario import Scenario
from twin.sim.budget import Budget, estimate
from twin.topology import Topology

RISK_THRESHOLD = 0.0
"""No-go when the 90% interval of the change in P(SLO breach) lies above this."""
BREACH_SHARE_THRESHOLD = 0.01
"""No-go when the 90% interval of the change in breach time, as a share of the measured
time, lies above this: one minute in a hundred more out of its objective is ten times the
error budget of a 99.9% SLO."""
INTERVAL = 0.9
"""Width of the reported intervals."""
BOOTSTRAP = 4000
"""Paired-bootstrap resamples."""
REQUESTS_PER_RUN = 40_000.0
"""Requests (calls included) one run may serve in a healthy system: the work budget that
sets the run's length."""
MIN_DURATION = 30.0
MAX_DURATION = 600.0
WINDOWS = 60
"""Measurement windows per run (breach minutes are counted per window)."""

_FAULT: TypeAdapter[Any] = TypeAdapter(Fault)


@dataclass(frozen=True)
class CheckOptions:
    """How to check: the load, how many paired runs, the seed, and the horizon's faults."""

    load: float | None = None
    """Load multiplier to check at (default 1: the topology's workload is the peak)."""
    replications: int = 8
    """Runs under a fault (one fault-free run is added)."""
    seed: int = 1
    risk: Mapping[str, Any] | None = None
    """A ``twin risk`` output (``risk.json``), or None for the fault catalogue."""
    requests_per_run: float = REQUESTS_PER_RUN
    budget: Budget | None = None


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: its seed and its fault (None: fault-free)."""

    seed: int
    fault: dict[str, Any] | None


@dataclass
class RunScore:
    """What one simulated run says about the SLOs."""

    breached: bool
    breach_share: float
    """Share of the measured windows in breach."""
    latency_p99: float | None
    availability: float | None
    latency_met: bool | None
    availability_met: bool | None
    verdict: str | None


@dataclass
class CheckResult:
    """The verdict, the reduced change, and what the report plots."""

    verdict: Verdict
    reduced: Reduced
    before: list[RunScore]
    after: list[RunScore]
    plan: list[PlannedRun]
    calm_series: tuple[Any, Any] = field(default=(None, None))
    """The fault-free pair's time series (frames), before and after."""
    calm_p99: dict[str, float | None] = field(default_factory=dict)
    """Each service's p99 in the fault-free run before the change (seconds)."""


def load_risk(path: str | Path) -> dict[str, Any]:
    """A ``twin risk`` output (``risk.json``); one located line when it is not one."""
    data, _ = read_json(path, "telemetry")
    modes = data.get("failure_modes") if isinstance(data, dict) else None
    if not isinstance(modes, list):
        raise InputError(
            "expected a `twin risk` output (risk.json) with failure_modes", source=str(path)
        )
    for i, m in enumerate(modes):
        if not isinstance(m, dict) or not isinstance(m.get("service"), str):
            raise InputError(
                "expected a failure mode with a service",
                source=str(path),
                where=f"failure_modes[{i}]",
            )
    out: dict[str, Any] = data
    return out


# -- the plan ---------------------------------------------------------------------------------


def at_risk_services(risk: Mapping[str, Any], topology: Topology) -> set[str]:
    """Services the risk file gives a probability of at least :data:`AT_RISK` of failing in
    its horizon (any kind; kinds combined as independent)."""
    survive: dict[str, float] = {}
    for m in risk.get("failure_modes", []):
        svc = m.get("service")
        p = (m.get("p_fault") or {}).get("mean")
        if svc in topology.services and isinstance(p, (int, float)) and 0.0 <= p <= 1.0:
            survive[svc] = survive.get(svc, 1.0) * (1.0 - float(p))
    return {s for s, q in survive.items() if 1.0 - q >= AT_RISK}


def _runs_on(kind: str, topology: Topology) -> bool:
    """Whether a fault of ``kind`` can target a service of this topology."""
    cls = KINDS[kind]
    return bool(cls.targets.service) and (not cls.needs_disk or topology.has_disk())


def _candidates(
    topology: Topology, services: Sequence[str], risk: Mapping[str, Any] | None
) -> tuple[list[tuple[str, str]], np.ndarray | None, str]:
    if risk is not None:
        modes, weights = [], []
        for m in risk.get("failure_modes", []):
            kind, svc = m.get("fault_kind"), m.get("service")
            w = (m.get("rate_per_day") or {}).get("mean")
            usable = kind in KINDS and _runs_on(str(kind), topology) and svc in services
            if usable and isinstance(w, (int, float)) and math.isfinite(w) and w > 0:
                modes.append((str(kind), str(svc)))
                weights.append(float(w))
        if modes:
            p = np.asarray(weights) / sum(weights)
            return modes, p, "risk"
    kinds = [k for k, c in KINDS.items() if c.in_default_sample and _runs_on(k, topology)]
    return [(k, s) for k in kinds for s in services], None, "catalogue"


def plan_runs(
    topology: Topology,
    services: Sequence[str],
    *,
    replications: int,
    seed: int,
    start: float,
    duration: float,
    risk: Mapping[str, Any] | None,
) -> tuple[list[PlannedRun], str]:
    """The fault-free run and ``replications`` runs under one sampled fault each; returns
    them and where the faults came from (``risk`` or ``catalogue``)."""
    seeds = replication_seeds(seed, replications + 1)
    rng = generator(seed, "check-change-faults")
    cands, weights, origin = _candidates(topology, services, risk)
    if weights is None:
        picks = rng.permutation(len(cands))
        order = [cands[int(picks[i % len(cands)])] for i in range(replications)]
    else:
        idx = rng.choice(len(cands), size=replications, p=weights)
        order = [cands[int(i)] for i in idx]
    runs = [PlannedRun(seeds[0], None)]
    for s, (kind, svc) in zip(seeds[1:], order, strict=True):
        f = make_fault(kind, svc, KINDS[kind].intensity.typical, start, duration, topology)
        runs.append(PlannedRun(s, f.model_dump(mode="json", exclude_none=True)))
    return runs, origin


def run_length(topology: Topology, policy: Policy, load: float, requests_per_run: float) -> float:
    """Seconds one run may last within the work budget, in [MIN_DURATION, MAX_DURATION]."""
    probe = Scenario.model_validate({"duration": 100.0, "load": {"multiplier": load}})
    est = estimate(topology, probe, policy, series="entries")
    per_second = est.requests / 100.0
    if per_second <= 0 or not math.isfinite(per_second):
        return MIN_DURATION
    d = requests_per_run / per_second
    return float(min(MAX_DURATION, max(MIN_DURATION, round(d / 10.0) * 10.0)))


# -- scoring ----------------------------------------------------------------------------------


def score_run(res: Results, topology: Topology, scenario: Scenario) -> RunScore:
    """Breach and breach share of one run (see the module's docstring)."""
    s = res.summary
    slo = topology.slo
    lat_target, av_target = slo.latency_p99, slo.availability
    cells: dict[float, list[float]] = {}
    for t, _w, scope, _name, family, metric, value in res.timeseries.rows:
        if scope != "entry" or t < scenario.warmup:
            continue
        c = cells.setdefault(float(t), [0.0, 0.0, 0.0, 0.0])  # arrivals, ok, failed, p99
        if family == "requests" and metric == "arrivals":
            c[0] += value
        elif family == "requests" and metric == "succeeded":
            c[1] += value
        elif family == "requests" and metric == "failed":
            c[2] += value
        elif family == "latency" and metric == "p99" and not math.isnan(value):
            c[3] = max(c[3], float(value))
    total = max(1, round((scenario.duration - scenario.warmup) / scenario.window))
    bad = 0
    for arrivals, ok, failed, p99 in cells.values():
        answered = ok + failed
        if answered == 0:
            bad += arrivals > 0
            continue
        if (lat_target is not None and p99 > lat_target) or (
            av_target is not None and ok / answered < av_target
        ):
            bad += 1
    if s.verdict is not None:  # stopped: the rest of the run is in breach
        bad += max(0, total - len(cells))
    share = min(1.0, bad / total)
    lat = s.slo.latency_p99
    av = s.slo.availability
    breached = (
        s.verdict is not None
        or (lat is not None and not lat.met)
        or (av is not None and not av.met)
    )
    return RunScore(
        breached=bool(breached),
        breach_share=share,
        latency_p99=None if lat is None else lat.value,
        availability=None if av is None else av.value,
        latency_met=None if lat is None else lat.met,
        availability_met=None if av is None else av.met,
        verdict=None if s.verdict is None else s.verdict.verdict,
    )


def paired_bootstrap(
    before: Sequence[float], after: Sequence[float], *, seed: int, n: int = BOOTSTRAP
) -> Figure:
    """Mean of after - before over pairs, with an equal-tailed :data:`INTERVAL` interval
    from resampling the pairs. Identical pairs give exactly ``{0, 0, 0}``."""
    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if d.size == 0:
        return Figure(mean=0.0, lo=0.0, hi=0.0)
    rng = generator(seed, "check-change-bootstrap")
    idx = rng.integers(0, d.size, size=(n, d.size))
    means = d[idx].mean(axis=1)
    a = (1.0 - INTERVAL) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return Figure(mean=float(d.mean()), lo=float(lo), hi=float(hi))


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(vals) / len(vals) if vals else None


def _share(xs: Sequence[bool | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


# -- the check --------------------------------------------------------------------------------


def _simulate(
    topology: Topology, scenario: Scenario, policy: Policy, budget: Budget | None
) -> Results:
    from twin.sim import Simulation

    return Simulation(topology, scenario, policy, series="entries", budget=budget).run()


def check_change(
    topology: Topology,
    changes: ChangeSet | ChangeFile,
    policy: Policy | None = None,
    options: CheckOptions | None = None,
    *,
    on_run: Callable[[int, int], None] | None = None,
) -> CheckResult:
    """Judge ``changes`` on ``topology`` (with ``policy`` in force); see the module's
    docstring for the method. ``on_run(done, total)`` reports progress."""
    o = options or CheckOptions()
    if o.replications < 1:
        raise InputError(f"expected at least 1 replication, got {o.replications}")
    started = time.perf_counter()
    pol = policy if policy is not None else Policy()
    if isinstance(changes, ChangeFile):
        reduced = changes.reduce(topology, pol)
        name = changes.changes.name
    else:
        reduced = reduce_changes(changes, topology, pol)
        name = changes.name
    load = 1.0 if o.load is None else o.load
    t0, p0, t1, p1 = topology, pol, reduced.topology, reduced.policy
    duration = run_length(t0, p0, load, o.requests_per_run)
    warmup = max(5.0, round(duration * 0.1))
    measured = duration - warmup
    window = measured / WINDOWS
    services = [s for s in t0.services if s in t1.services]
    plan, origin = plan_runs(
        t0,
        services,
        replications=o.replications,
        seed=o.seed,
        start=warmup + measured / 3.0,
        duration=measured / 3.0,
        risk=o.risk,
    )
    version_faults = [{**f, "start": 0.0, "duration": duration} for f in reduced.faults]
    before: list[RunScore] = []
    after: list[RunScore] = []
    calm: list[Any] = []
    p99_before: dict[str, float | None] = {}
    p99_after: dict[str, float | None] = {}
    total = 2 * len(plan)
    for i, run in enumerate(plan):
        base = {
            "duration": duration,
            "warmup": warmup,
            "window": window,
            "seed": run.seed,
            "load": {"multiplier": load},
        }
        faults = [run.fault] if run.fault is not None else []
        sc0 = Scenario.model_validate({**base, "faults": faults})
        sc1 = Scenario.model_validate({**base, "faults": faults + version_faults})
        r0 = _simulate(t0, sc0, p0, o.budget)
        if on_run:
            on_run(2 * i + 1, total)
        r1 = _simulate(t1, sc1, p1, o.budget)
        if on_run:
            on_run(2 * i + 2, total)
        before.append(score_run(r0, t0, sc0))
        after.append(score_run(r1, t1, sc1))
        if run.fault is None:
            p99_before = {n: s.latency.p99 for n, s in r0.summary.services.items()}
            p99_after = {n: s.latency.p99 for n, s in r1.summary.services.items()}
            calm = [r0.timeseries.frame(), r1.timeseries.frame()]

    # static checks: what the change introduces
    found_before = static_findings(t0, p0, load=load, callee_p99=p99_before)
    found_after = static_findings(t1, p1, load=load, callee_p99=p99_after)
    at_risk = None if origin != "risk" or o.risk is None else at_risk_services(o.risk, t0)
    removed = breakers_removed(t1, p0, p1, at_risk)
    fresh = [*new_findings(found_before, found_after), *removed]
    fresh_keys = {f.key for f in fresh}

    risk = paired_bootstrap(
        [float(b.breached) for b in before], [float(a.breached) for a in after], seed=o.seed
    )
    share = paired_bootstrap(
        [b.breach_share for b in before], [a.breach_share for a in after], seed=o.seed + 1
    )
    minutes = measured / 60.0
    breach_minutes = Figure(mean=share.mean * minutes, lo=share.lo * minutes, hi=share.hi * minutes)
    reasons = [f.reason for f in fresh]
    pb0 = _share([b.breached for b in before]) or 0.0
    pb1 = _share([a.breached for a in after]) or 0.0
    if risk.lo > RISK_THRESHOLD:
        reasons.append(
            f"risk: P(SLO breach) rises from {pb0:.2f} to {pb1:.2f} over {len(plan)} paired "
            f"runs (change {risk.mean:+.2f}, 90% interval [{risk.lo:+.2f}, {risk.hi:+.2f}], "
            f"above {RISK_THRESHOLD:g})"
        )
    if share.lo > BREACH_SHARE_THRESHOLD:
        reasons.append(
            f"breach-minutes: time out of SLO rises by {share.mean:.1%} of the time "
            f"({breach_minutes.mean:+.2f} min per {minutes:.3g}-minute run, 90% interval of "
            f"the share [{share.lo:+.1%}, {share.hi:+.1%}], above "
            f"{BREACH_SHARE_THRESHOLD:.0%})"
        )
    notes = [
        f"{f.reason} (already so before the change)" for f in found_after if f.key not in fresh_keys
    ]
    if reduced.faults:
        notes.append(
            "a new version's error rate runs as an error_rate fault on its service for the "
            "whole run (the topology has no per-service error probability)"
        )
    slo = t1.slo
    figures = {}
    if slo.latency_p99 is not None:
        figures["latency_p99"] = SloFigures(
            target=slo.latency_p99,
            before=_mean([b.latency_p99 for b in before]),
            after=_mean([a.latency_p99 for a in after]),
            met_before=_share([b.latency_met for b in before]),
            met_after=_share([a.latency_met for a in after]),
        )
    if slo.availability is not None:
        figures["availability"] = SloFigures(
            target=slo.availability,
            before=_mean([b.availability for b in before]),
            after=_mean([a.availability for a in after]),
            met_before=_share([b.availability_met for b in before]),
            met_after=_share([a.availability_met for a in after]),
        )
    verdict = Verdict(
        name=name,
        decision="no-go" if reasons else "go",
        risk=risk,
        breach_minutes=breach_minutes,
        p_breach_before=pb0,
        p_breach_after=pb1,
        reasons=reasons,
        notes=notes,
        slo=figures,
        findings=[
            VerdictFinding(check=f.check, subject=f.subject, reason=f.reason, new=True)
            for f in fresh
        ]
        + [
            VerdictFinding(check=f.check, subject=f.subject, reason=f.reason, new=False)
            for f in found_after
            if f.key not in fresh_keys
        ],
        method=VerdictMethod(
            load=load,
            replications=len(plan),
            seed=o.seed,
            duration=duration,
            warmup=warmup,
            window=window,
            faults_from=origin,
            faults=[run.fault for run in plan if run.fault is not None],
            risk_threshold=RISK_THRESHOLD,
            breach_share_threshold=BREACH_SHARE_THRESHOLD,
            interval=INTERVAL,
        ),
        wall_seconds=time.perf_counter() - started,
    )
    return CheckResult(verdict, reduced, before, after, plan, (calm[0], calm[1]), p99_before)


__all__ = [
    "BREACH_SHARE_THRESHOLD",
    "INTERVAL",
    "MAX_DURATION",
    "MIN_DURATION",
    "REQUESTS_PER_RUN",
    "RISK_THRESHOLD",
    "CheckOptions",
    "CheckResult",
    "PlannedRun",
    "RunScore",
    "at_risk_services",
    "check_change",
    "load_risk",
    "paired_bootstrap",
    "plan_runs",
    "run_length",
    "score_run",
]
