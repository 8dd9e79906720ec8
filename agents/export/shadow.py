"""Validate in the shadow first: what each exported file will really do, re-simulated in the
twin before anything is written.

Each runtime keeps only part of a twin policy (``as_enforced``): Istio and Envoy turn the
breaker into outlier ejection after consecutive errors, Istio and Resilience4j have no retry
budget, the mesh files carry no rate limit, the HPA file only scaling. The twin runs that
reduced policy on seeded fault scenarios drawn from the training catalogue (never the
held-out set) against no mitigation on the same seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.env import EnvConfig, MitigationEnv
from agents.export.units import consecutive_errors
from agents.reward import violated
from agents.scenarios import FaultSpec, scenario_for
from twin.policy import ClientPolicy, Policy
from twin.sim.engine import Simulation

RUNTIMES = ("istio", "envoy", "resilience4j", "hpa")


def _outlier_breaker(cp: ClientPolicy) -> dict[str, Any] | None:
    cb = cp.circuit_breaker
    if cb is None:
        return None
    n = consecutive_errors(cb.failure_rate, cb.min_requests)
    return {"failure_rate": 1.0, "window": n, "min_requests": n, "open_for": cb.open_for}


def as_enforced(policy: Policy, runtime: str) -> Policy:
    """The part of ``policy`` the runtime's exported file enforces, as a twin policy."""
    doc = policy.model_dump(mode="json", exclude_none=True)
    if runtime == "hpa":
        services = {
            n: {"autoscale": s["autoscale"]}
            for n, s in doc.get("services", {}).items()
            if "autoscale" in s
        }
        return Policy.model_validate({"services": services})
    for key, cp in policy.clients.items():
        c = doc["clients"][key]
        if runtime in ("istio", "resilience4j") and "retries" in c:
            c["retries"].pop("budget", None)
        if runtime in ("istio", "envoy"):
            c.pop("circuit_breaker", None)
            ob = _outlier_breaker(cp)
            if ob is not None:
                c["circuit_breaker"] = ob
    for s in doc.get("services", {}).values():
        s.pop("autoscale", None)
        if runtime in ("istio", "envoy"):
            s.pop("rate_limit", None)
    return Policy.model_validate(doc)


def episode(env: MitigationEnv, policy: Policy, fault: FaultSpec, seed: int) -> dict[str, float]:
    """One fixed-policy episode in the twin, scored as agents.evaluate scores controllers."""
    cfg = env.cfg
    scen = scenario_for(fault, cfg.episode_seconds + cfg.interval, cfg.interval, cfg.load)
    sim = Simulation(env.topology, scen, policy, seed=seed, series="none")
    viol = rs = 0.0
    for _ in range(cfg.max_steps):
        st = sim.step(cfg.interval)
        secs = float(st.seconds)
        if violated(st.entries, env.p99_target, env.avail_target):
            viol += secs
        rs += sum(float(s.replicas) for s in st.services.values()) * secs
    return {"slo_violation_minutes": viol / 60.0, "replica_seconds": rs}


def validate_in_twin(
    policy: Policy,
    config: EnvConfig,
    scenarios: int,
    seed: int,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Mean violation minutes and replica-seconds of each runtime's enforced part and of
    no mitigation, on the same seeded training-catalogue scenarios (paired)."""
    env = MitigationEnv(config)
    rng = np.random.default_rng(seed)
    faults = [env.catalogue.sample_training(rng) for _ in range(scenarios)]
    candidates = {"no_mitigation": Policy(), **{r: as_enforced(policy, r) for r in RUNTIMES}}
    out: dict[str, Any] = {"scenarios": [f.__dict__ for f in faults], "seed": seed, "policies": {}}
    for name, pol in candidates.items():
        progress(f"re-simulating {name}")
        rows = [episode(env, pol, f, seed + i) for i, f in enumerate(faults)]
        out["policies"][name] = {
            m: float(np.mean([r[m] for r in rows]))
            for m in ("slo_violation_minutes", "replica_seconds")
        }
        out["policies"][name]["per_scenario_violation_minutes"] = [
            r["slo_violation_minutes"] for r in rows
        ]
    return out


def worse_than_baseline(checked: dict[str, Any]) -> list[str]:
    """Runtimes whose enforced part has more violation minutes than no mitigation."""
    base = checked["policies"]["no_mitigation"]["slo_violation_minutes"]
    return [
        f"{r}: {checked['policies'][r]['slo_violation_minutes']:.3f} violation minutes vs "
        f"{base:.3f} with no mitigation"
        for r in RUNTIMES
        if checked["policies"][r]["slo_violation_minutes"] > base + 1e-9
    ]
