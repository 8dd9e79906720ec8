"""Posterior simulation: occurrence x impact x duration -> risk, priorities, scenario files.

For every posterior draw d, failure mode (service s, fault kind k) and SLO:

- breaching occurrences per day ``r = rate[d, s, k] x P(breach | fault)[d]``, where the
  breach probability is averaged over the kind's intensity distribution and includes the
  twin-to-reality discrepancy term (a fault in production, not in the twin);
- ``P(at least one breach within H days) = 1 - exp(-r H)`` (a thinned Poisson process);
- expected breach minutes ``r H x E[duration]`` (a breach lasts while its fault does);
- error-budget burn: availability, bad minutes weighted by the share of requests failed
  during the fault, over ``(1 - target) x H`` minutes; latency, minutes over the p99
  objective over the same share of the horizon.

Summaries are posterior means with equal-tailed 90% intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.bayes.evidence import History
from twin.bayes.failure import ImpactDesign, occurrence_coords
from twin.bayes.runs import Impact
from twin.errors import InputError
from twin.faults import KINDS

DETECTION: dict[str, int] = {k: c.fmea_detection for k, c in KINDS.items()}
"""FMEA detection score by fault kind (1: alarms at once, 10: goes unseen; each kind's
``fmea_detection``): loud failures (outages, 5xx) page within minutes; slow burns and silent
corruption do not."""

DEFAULT_DURATION_MINUTES = 30.0
DEFAULT_BUDGET_SHARE = 0.001


@dataclass(frozen=True)
class RiskOptions:
    """What to predict: the horizon, the policy in force, the load, the interval."""

    horizon_days: float = 30.0
    policy: str | None = None  # default: the campaign's first policy
    load: float = 1.0
    interval: float = 0.9
    intensity_points: int = 16
    max_draws: int = 1000
    seed: int = 1


@dataclass
class RiskInputs:
    """Posterior draws and evidence the risk needs (all numpy: no PyMC objects)."""

    services: list[str]
    kinds: list[str]
    rates: np.ndarray  # (D, S, K) per day
    impact: dict[str, np.ndarray]  # variable -> (D, ...) draws of the impact model
    design: ImpactDesign
    evidence: Impact
    history: History
    notes: list[str] = field(default_factory=list)


def summarize(x: np.ndarray, interval: float = 0.9) -> dict[str, float]:
    """Posterior mean and equal-tailed interval of draws."""
    a = (1.0 - interval) / 2.0
    lo, hi = np.quantile(x, [a, 1.0 - a])
    return {"mean": float(np.mean(x)), "lo": float(lo), "hi": float(hi)}


def _thin(n: int, limit: int) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, limit)).round().astype(int)


def impact_draws(idata: Any) -> dict[str, np.ndarray]:
    """Every impact-model variable as (draws, ...) arrays."""
    out = {}
    for name, da in idata.posterior.data_vars.items():
        arr = np.asarray(da.values)
        out[str(name)] = arr.reshape((-1, *arr.shape[2:]))
    return out


def risk_inputs(
    occ_idata: Any,
    history: History,
    imp_idata: Any,
    design: ImpactDesign,
    evidence: Impact,
    *,
    seed: int = 1,
    max_draws: int = 1000,
) -> RiskInputs:
    """Gather the draws of both models (thinned to a common number)."""
    from twin.bayes.failure import occurrence_rates

    rates = occurrence_rates(occ_idata, history.counts, seed=seed)
    imp = impact_draws(imp_idata)
    n = min(rates.shape[0], next(iter(imp.values())).shape[0], max_draws)
    rates = rates[_thin(rates.shape[0], n)]
    imp = {k: v[_thin(v.shape[0], n)] for k, v in imp.items()}
    coords = occurrence_coords(history.counts)
    return RiskInputs(
        coords["service"], coords["fault_kind"], rates, imp, design, evidence, history
    )


# -- pieces -----------------------------------------------------------------------------------


def intensity_points(kind: str, inp: RiskInputs, n: int) -> tuple[np.ndarray, str]:
    """Intensities a future fault of ``kind`` may have: quantiles of the history's recorded
    intensities (at least 3), else of the levels the campaigns ran."""
    qs = (np.arange(n) + 0.5) / n
    hist = inp.history.incidents
    vals = hist.loc[hist["fault_kind"] == kind, "intensity"].dropna().to_numpy(float)
    if len(vals) >= 3:
        return np.quantile(vals, qs), "history"
    camp = inp.evidence.intensities
    vals = camp.loc[camp["fault_kind"] == kind, "intensity"].dropna().to_numpy(float)
    if len(vals):
        return np.quantile(vals, qs), "campaign"
    return np.ones(1), "none"


def duration_draws(
    kind: str, inp: RiskInputs, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """Posterior draws of the mean fault duration (minutes) of ``kind``: Bayesian bootstrap
    (Rubin 1981) of the kind's recorded durations, or of all durations when the kind has
    fewer than 3; a fixed 30 minutes when the history records none."""
    inc = inp.history.incidents
    d = inc.loc[inc["fault_kind"] == kind, "duration_minutes"].dropna().to_numpy(float)
    how = "kind"
    if len(d) < 3:
        d = inc["duration_minutes"].dropna().to_numpy(float)
        how = "pooled"
    if len(d) == 0:
        return np.full(n, DEFAULT_DURATION_MINUTES), "default"
    w = rng.dirichlet(np.ones(len(d)), size=n)
    return np.asarray(w @ d), how


def _targets_for(service: str, kind: str, design: ImpactDesign, impact: Impact) -> list[str]:
    """Campaign targets that stand for a fault of ``kind`` at ``service``."""
    rows = impact.rows
    ran = set(rows.loc[rows["fault_kind"] == kind, "target"])
    if service in ran:
        return [service]
    near = [t for t in ran if t.endswith(f"->{service}") or t.split(":")[0] == service]
    return sorted(near)


def breach_probability(
    inp: RiskInputs,
    slo: str,
    kind: str,
    service: str,
    policy: str,
    load: float,
    xs: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    """Draws of P(SLO breach | a fault of ``kind`` at ``service``) for the real system,
    averaged over the intensities ``xs``; and where the evidence came from."""
    d = inp.design
    v = inp.impact
    n = next(iter(v.values())).shape[0]
    si = d.slos.index(slo)
    how = "campaign"
    if kind in d.kinds:
        ki = d.kinds.index(kind)
        ak = v["kind_effect"][:, si, ki]
        slope = v["slope"][:, ki]
        disc = v["discrepancy"][:, ki]
        z = d.z_intensity(kind, xs)
    else:  # a kind no campaign ran: a new member of the population of kinds
        how = "population"
        ak = v["kind_sd"] * rng.standard_normal(n)
        slope = v["slope_mean"] + v["slope_sd"] * rng.standard_normal(n)
        disc = v["discrepancy_mean"] + v["discrepancy_sd"] * rng.standard_normal(n)
        z = np.zeros_like(xs, dtype=float)
    targets = _targets_for(service, kind, d, inp.evidence)
    if targets:
        at = np.mean([v["target_effect"][:, d.targets.index(t)] for t in targets], axis=0)
    else:
        at = v["target_sd"] * rng.standard_normal(n)
        how = "population" if how == "population" else "campaign (other targets)"
    eta = v["intercept"][:, si] + ak + at + v["load_slope"][:, si] * math.log(max(load, 1e-9))
    eta = eta + disc
    if len(d.policies) > 1:
        pi = d.policies.index(policy)
        eta = eta + v["policy_effect"][:, pi]
        if kind in d.kinds:
            eta = eta + v["policy_kind_effect"][:, pi, d.kinds.index(kind)]
        elif pi > 0:
            spread = np.std(v["policy_kind_effect"][:, pi, :], axis=1)
            eta = eta + spread * rng.standard_normal(n)
    full = eta[:, None] + slope[:, None] * z[None, :]
    p = 1.0 / (1.0 + np.exp(-full))
    return p.mean(axis=1), how


def _unavailability(inp: RiskInputs, kind: str, service: str, policy: str) -> float:
    u = inp.evidence.unavailability
    if u.empty:
        return 1.0
    for mask in (
        (u["fault_kind"] == kind) & (u["target"] == service) & (u["policy"] == policy),
        (u["fault_kind"] == kind) & (u["policy"] == policy),
        (u["fault_kind"] == kind),
    ):
        vals = u.loc[mask, "unavailability"]
        if len(vals):
            return float(vals.mean())
    return 1.0


def rpn(p_fault_breach: float, expected_faults: float, kind: str) -> dict[str, int]:
    """FMEA risk priority number: severity x occurrence x detection, each 1-10."""
    sev = int(min(10, max(1, round(1 + 9 * p_fault_breach))))
    occ = (
        1
        if expected_faults <= 0
        else int(min(10, max(1, round(5 + 2 * math.log10(expected_faults)))))
    )
    det = DETECTION.get(kind, 5)
    return {"rpn": sev * occ * det, "severity": sev, "occurrence": occ, "detection": det}


# -- the risk ---------------------------------------------------------------------------------


def compute_risk(inp: RiskInputs, options: RiskOptions | None = None) -> dict[str, Any]:
    """Risk per failure mode and per service, ranked, with mitigations and RPN."""
    o = options or RiskOptions()
    rng = np.random.default_rng(o.seed)
    d = inp.design
    policy = o.policy if o.policy is not None else d.policies[0]
    if policy not in d.policies:
        raise InputError(
            f"unknown policy {policy!r} (campaign policies: {', '.join(d.policies)})",
            source="--policy",
        )
    h = o.horizon_days
    n = inp.rates.shape[0]
    slo_targets = dict(inp.evidence.slo)
    share = 1.0 - slo_targets.get("availability", 1.0 - DEFAULT_BUDGET_SHARE)
    share = share if share > 0 else DEFAULT_BUDGET_SHARE
    budget_minutes = share * h * 1440.0
    specific = [s for s in d.slos if s != "any"]
    headline = "any" if "any" in d.slos else d.slos[0]
    modes: list[dict[str, Any]] = []
    svc_rate = {s: np.zeros(n) for s in inp.services}
    svc_minutes = {s: np.zeros(n) for s in inp.services}
    svc_burn = {s: {slo: np.zeros(n) for slo in specific} for s in inp.services}
    for ki, kind in enumerate(inp.kinds):
        xs, xs_from = intensity_points(kind, inp, o.intensity_points)
        dur, dur_from = duration_draws(kind, inp, n, rng)
        for si, svc in enumerate(inp.services):
            rate = inp.rates[:, si, ki]
            p, how = breach_probability(inp, headline, kind, svc, policy, o.load, xs, rng)
            r = rate * p
            minutes = r * h * dur
            svc_rate[svc] += r
            svc_minutes[svc] += minutes
            burns = {}
            for slo in specific:
                ps, _ = breach_probability(inp, slo, kind, svc, policy, o.load, xs, rng)
                m_slo = rate * ps * h * dur
                weight = _unavailability(inp, kind, svc, policy) if slo == "availability" else 1.0
                b = m_slo * weight / budget_minutes
                svc_burn[svc][slo] += b
                burns[slo] = summarize(b, o.interval)
            mitigation = None
            best = -math.inf
            for alt in d.policies:
                if alt == policy:
                    continue
                pa, _ = breach_probability(inp, headline, kind, svc, alt, o.load, xs, rng)
                red = minutes - rate * pa * h * dur
                if float(red.mean()) > max(best, 0.0):  # only a policy that helps
                    best = float(red.mean())
                    base = float(minutes.mean())
                    mitigation = {
                        "policy": alt,
                        "breach_minutes_reduction": summarize(red, o.interval),
                        "p_breach_after": summarize(1.0 - np.exp(-rate * pa * h), o.interval),
                        "relative_reduction": (best / base) if base > 0 else 0.0,
                    }
            expected_faults = float(rate.mean() * h)
            modes.append(
                {
                    "service": svc,
                    "fault_kind": kind,
                    "rate_per_day": summarize(rate, o.interval),
                    "p_fault": summarize(1.0 - np.exp(-rate * h), o.interval),
                    "p_breach_given_fault": summarize(p, o.interval),
                    "p_breach": summarize(1.0 - np.exp(-r * h), o.interval),
                    "expected_breach_minutes": summarize(minutes, o.interval),
                    "error_budget_burn": burns,
                    "rpn": rpn(float(p.mean()), expected_faults, kind),
                    "mitigation": mitigation,
                    "evidence": {"impact": how, "intensity": xs_from, "duration": dur_from},
                }
            )
    modes.sort(key=lambda m: (-m["expected_breach_minutes"]["mean"], m["service"], m["fault_kind"]))
    for i, m in enumerate(modes, start=1):
        m["rank"] = i
    services: list[dict[str, Any]] = []
    for svc in inp.services:
        services.append(
            {
                "service": svc,
                "p_breach": summarize(1.0 - np.exp(-svc_rate[svc] * h), o.interval),
                "expected_breach_minutes": summarize(svc_minutes[svc], o.interval),
                "error_budget_burn": {
                    slo: summarize(b, o.interval) for slo, b in svc_burn[svc].items()
                },
            }
        )
    services.sort(key=lambda s: (-s["expected_breach_minutes"]["mean"], s["service"]))
    for i, s in enumerate(services, start=1):
        s["rank"] = i
    disc = {
        k: summarize(inp.impact["discrepancy"][:, i], o.interval) for i, k in enumerate(d.kinds)
    }
    return {
        "horizon_days": h,
        "interval": o.interval,
        "policy": policy,
        "policies": d.policies,
        "load": o.load,
        "slo": slo_targets,
        "slos": d.slos,
        "error_budget_minutes": budget_minutes,
        "draws": n,
        "services": services,
        "failure_modes": modes,
        "twin_vs_real": disc,
    }


def priorities(risk: dict[str, Any], top: int | None = None) -> list[dict[str, Any]]:
    """The remediation list: failure modes by expected breach minutes, RPN beside, with the
    campaigns' most effective mitigation and the risk it removes."""
    out = []
    for m in risk["failure_modes"][:top]:
        out.append(
            {
                "rank": m["rank"],
                "service": m["service"],
                "fault_kind": m["fault_kind"],
                "expected_breach_minutes": m["expected_breach_minutes"],
                "rpn": m["rpn"]["rpn"],
                "mitigation": None if m["mitigation"] is None else m["mitigation"]["policy"],
                "breach_minutes_reduction": None
                if m["mitigation"] is None
                else m["mitigation"]["breach_minutes_reduction"],
            }
        )
    return out


# -- posterior -> scenario files ----------------------------------------------------------------

_FIELD: dict[str, str | None] = {
    k: c.intensity.field for k, c in KINDS.items() if c.targets.service
}
"""Scenario field that carries a campaign intensity, per service-level kind (None: the kind
has no field the intensity scales, e.g. an outage)."""


def posterior_scenarios(
    inp: RiskInputs,
    n: int,
    *,
    seed: int = 1,
    horizon_days: float = 30.0,
    duration: float = 1800.0,
    warmup: float = 60.0,
    modes: int = 8,
    topology: Any = None,
) -> list[dict[str, Any]]:
    """``n`` scenario documents, each from one posterior draw: the ``modes`` most likely
    failure modes of that draw as sampled faults. Gaps are compressed so the measured window
    sees as many occurrences as the horizon would (exponential, mean window / (rate x
    horizon)); durations are the history's (lognormal around the kind's mean, capped by the
    window); intensity multipliers are drawn from the kind's intensity distribution.
    Every document validates as a :class:`twin.scenario.Scenario` (and against
    ``topology`` when given); kinds that target edges or entries are left out."""
    from twin.io import parse_model
    from twin.scenario import Scenario

    if n < 1:
        return []
    if warmup >= duration:
        raise InputError("warmup must be shorter than duration", source="scenarios")
    rng = np.random.default_rng(seed)
    window = duration - warmup
    disk = topology is None or topology.has_disk()
    usable = [k for k in inp.kinds if k in _FIELD and (disk or not KINDS[k].needs_disk)]
    docs = []
    for i in range(n):
        d = int(rng.integers(inp.rates.shape[0]))
        cells = []
        for k in usable:
            ki = inp.kinds.index(k)
            for si, s in enumerate(inp.services):
                if topology is not None and s not in topology.services:
                    continue
                cells.append((float(inp.rates[d, si, ki]), s, k))
        cells.sort(key=lambda c: -c[0])
        faults = []
        for j, (rate, svc, kind) in enumerate(cells[:modes]):
            expected = rate * horizon_days
            if expected <= 0:
                continue
            xs, _ = intensity_points(kind, inp, 16)
            base = float(np.median(xs))
            dur, _ = duration_draws(kind, inp, 1, rng)
            sample: dict[str, Any] = {
                "interval": {"dist": "exponential", "mean": window / expected},
                "duration": {
                    "dist": "lognormal",
                    "mean": float(min(window, dur[0] * 60.0)),
                    "cv": 0.6,
                },
                "seed": seed * 1000 + i * 37 + j,
            }
            fault: dict[str, Any] = {
                "kind": kind,
                "target": svc,
                "start": warmup,
                "duration": window,
            }
            cls = KINDS[kind]
            name = _FIELD[kind]
            if name is not None:
                doc = cls.document(svc, cls.intensity.clamp(base))
                fault.update({k: v for k, v in doc.items() if k not in ("kind", "target")})
                if base > 0 and len(xs) > 1:
                    sample["intensity"] = {
                        "dist": "empirical",
                        "samples": [float(f"{x / base:.6g}") for x in xs],
                    }
            fault["sample"] = sample
            faults.append(fault)
        doc = {"duration": duration, "warmup": warmup, "seed": seed + i, "faults": faults}
        sc = parse_model(Scenario, doc, source=f"posterior scenario {i}")
        if topology is not None:
            sc.check_against(topology)
        docs.append(doc)
    return docs


def risk_frame(risk: dict[str, Any]) -> pd.DataFrame:
    """Failure modes as a flat table (for plots and the app)."""
    rows = []
    for m in risk["failure_modes"]:
        rows.append(
            {
                "rank": m["rank"],
                "service": m["service"],
                "fault_kind": m["fault_kind"],
                "p_fault": m["p_fault"]["mean"],
                "p_breach_given_fault": m["p_breach_given_fault"]["mean"],
                "p_breach": m["p_breach"]["mean"],
                "p_breach_lo": m["p_breach"]["lo"],
                "p_breach_hi": m["p_breach"]["hi"],
                "minutes": m["expected_breach_minutes"]["mean"],
                "minutes_lo": m["expected_breach_minutes"]["lo"],
                "minutes_hi": m["expected_breach_minutes"]["hi"],
                "rpn": m["rpn"]["rpn"],
            }
        )
    return pd.DataFrame(rows)


def check_services(history: History, impact: Impact, known: Sequence[str] | None) -> list[str]:
    """Notes about services with history but no campaign evidence (their impact is the
    population's)."""
    ran = set(impact.rows["target"])
    missing = [
        s for s in history.services if s not in ran and not any(t.endswith(f"->{s}") for t in ran)
    ]
    if not missing:
        return []
    shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
    return [
        f"no campaign runs hit {len(missing)} service(s) ({shown}): their impact is "
        "predicted from the population of services"
    ]
