"""Synthetic evidence from known truths: incident histories, campaign runs, chaos results.

Used by the tests, the calibration and speed benchmarks, and to write the example incident
log (``python -m twin.bayes.synthetic --seed 7 --out incidents.csv``). Nothing here is
real data, and every file written says so.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.faults import (
    KINDS,
    CpuExhaustionFault,
    ErrorRateFault,
    LatencyFault,
    MemoryLeakFault,
    OutageFault,
    PoolExhaustionFault,
)
from twin.rng import generator

ONLINE_BOUTIQUE = (
    "frontend",
    "cartservice",
    "productcatalogservice",
    "currencyservice",
    "paymentservice",
    "shippingservice",
    "emailservice",
    "checkoutservice",
    "recommendationservice",
    "adservice",
    "redis-cart",
)
"""Service names of Google's Online Boutique demo (the example log uses them)."""

KIND_RATES: dict[str, float] = {
    LatencyFault.name: 1 / 60,
    ErrorRateFault.name: 1 / 90,
    OutageFault.name: 1 / 240,
    MemoryLeakFault.name: 1 / 180,
    CpuExhaustionFault.name: 1 / 200,
    PoolExhaustionFault.name: 1 / 300,
}
"""Typical incident rates per service and day, by kind (the synthetic truth's kind level)."""

_DURATION_MIN = {
    LatencyFault.name: 25.0,
    ErrorRateFault.name: 15.0,
    OutageFault.name: 35.0,
    MemoryLeakFault.name: 60.0,
    CpuExhaustionFault.name: 20.0,
    PoolExhaustionFault.name: 30.0,
}


@dataclass(frozen=True)
class Truth:
    """True rates per (service, kind), per day."""

    rates: pd.DataFrame  # service, fault_kind, rate


def true_rates(
    services: Sequence[str],
    kinds: Sequence[str],
    seed: int,
    *,
    shape: float = 2.0,
    service_sd: float = 0.7,
    kind_rates: dict[str, float] | None = None,
) -> Truth:
    """Rates drawn from the occurrence model's own generative story (kind level x service
    frailty x Gamma scatter), so the model is well specified for them."""
    rng = generator(seed, "bayes-synthetic-rates")
    kr = kind_rates or KIND_RATES
    frail = np.exp(rng.normal(0.0, service_sd, len(services)))
    rows = []
    for i, s in enumerate(services):
        for k in kinds:
            mu = kr.get(k, 1 / 200) * frail[i]
            rows.append((s, k, float(rng.gamma(shape, mu / shape))))
    return Truth(pd.DataFrame(rows, columns=["service", "fault_kind", "rate"]))


def counts_from_truth(
    truth: Truth,
    seed: int,
    *,
    periods: int = 6,
    period_days: float = 30.0,
    sparse_share: float = 0.0,
    sparse_periods: int = 1,
) -> pd.DataFrame:
    """Poisson counts per service, kind and period. A ``sparse_share`` of services is new:
    observed only in the last ``sparse_periods`` periods (earlier periods have no rows)."""
    rng = generator(seed, "bayes-synthetic-counts")
    services = list(dict.fromkeys(truth.rates["service"]))
    n_sparse = round(sparse_share * len(services))
    sparse = set(services[len(services) - n_sparse :]) if n_sparse else set()
    rows = []
    for s, k, r in truth.rates.itertuples(index=False):
        first = max(0, periods - sparse_periods) if s in sparse else 0
        for p in range(first, periods):
            rows.append((s, k, f"p{p:03d}", int(rng.poisson(r * period_days)), period_days))
    return pd.DataFrame(
        rows, columns=["service", "fault_kind", "period", "incidents", "exposure_days"]
    )


def incident_log(
    services: Sequence[str] = ONLINE_BOUTIQUE,
    kinds: Sequence[str] = tuple(KIND_RATES),
    *,
    seed: int = 7,
    days: float = 365.0,
    start: str = "2024-01-01T00:00:00Z",
) -> pd.DataFrame:
    """An incident log (time, service, fault_kind, symptom, duration, cause, note) drawn from
    :func:`true_rates`; durations are lognormal around a typical length per kind."""
    truth = true_rates(services, kinds, seed)
    rng = generator(seed, "bayes-synthetic-log")
    t0 = pd.Timestamp(start)
    rows = []
    for s, k, r in truth.rates.itertuples(index=False):
        n = int(rng.poisson(r * days))
        for _ in range(n):
            at = t0 + pd.Timedelta(days=float(rng.uniform(0.0, days)))
            minutes = float(rng.lognormal(math.log(_DURATION_MIN.get(k, 20.0)), 0.6))
            rows.append(
                (
                    at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    s,
                    k,
                    KINDS[k].incident_example or k,
                    f"{max(1, round(minutes))}m",
                    "synthetic",
                )
            )
    df = pd.DataFrame(
        rows, columns=["time", "service", "fault_kind", "symptom", "duration", "cause"]
    )
    df = df.sort_values("time", ignore_index=True)
    df["note"] = f"SYNTHETIC: python -m twin.bayes.synthetic --seed {seed}"
    return df


# -- campaign runs with a known impact truth ----------------------------------------------------


def impact_runs(
    targets: Sequence[str],
    kinds: Sequence[str],
    policies: Sequence[str] = ("none", "retries", "breaker"),
    *,
    seed: int = 3,
    replications: int = 3,
    intensities: int = 3,
    loads: Sequence[float] = (1.0, 2.0),
    real_bias: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows shaped like a campaign's ``runs.parquet`` (one per run) and a handful of "real"
    chaos results whose log-odds of breach are shifted by ``real_bias``."""
    rng = generator(seed, "bayes-synthetic-runs")
    base = {k: rng.normal(0.0, 1.0) for k in kinds}
    crit = {t: rng.normal(0.0, 0.7) for t in targets}
    pol = {p: (0.0 if i == 0 else -1.0 * i) for i, p in enumerate(policies)}
    levels = {k: np.geomspace(0.1, 1.0, intensities) for k in kinds}

    def p_breach(k: str, t: str, x: float, load: float, p: str, bias: float) -> float:
        z = math.log(x / 0.3)
        eta = base[k] + crit[t] + 1.5 * z + 1.0 * math.log(load) + pol[p] + bias
        return 1.0 / (1.0 + math.exp(-eta))

    rows = []
    si = 0
    for k in kinds:
        for t in targets:
            for x in levels[k]:
                for load in loads:
                    for pi, p in enumerate(policies):
                        pb = p_breach(k, t, float(x), load, p, 0.0)
                        for r in range(replications):
                            lat = bool(rng.random() < pb)
                            av = bool(rng.random() < pb * 0.8)
                            rows.append(_run_row(si, k, t, float(x), load, p, pi, r, lat, av, rng))
                    si += 1
    runs = pd.DataFrame(rows)
    real = []
    for _ in range(max(2, len(kinds))):
        k = kinds[int(rng.integers(len(kinds)))]
        t = targets[int(rng.integers(len(targets)))]
        x = float(levels[k][len(levels[k]) // 2])
        pb = p_breach(k, t, x, 1.0, policies[0], real_bias)
        for r in range(3):
            lat = bool(rng.random() < pb)
            av = bool(rng.random() < pb * 0.8)
            real.append(_run_row(-1, k, t, x, 1.0, policies[0], 0, r, lat, av, rng))
    return runs, pd.DataFrame(real)


def _run_row(
    si: int,
    k: str,
    t: str,
    x: float,
    load: float,
    p: str,
    pi: int,
    r: int,
    lat_breach: bool,
    av_breach: bool,
    rng: np.random.Generator,
) -> dict[str, object]:
    fail = float(rng.uniform(0.05, 0.5)) if av_breach else float(rng.uniform(0.0, 0.0005))
    return {
        "scenario": f"grid/{k}/{t}/{x:.3g}/x{load:g}",
        "scenario_index": si,
        "policy": p,
        "policy_index": pi,
        "replication": r,
        "seed": 1000 + r,
        "origin": "grid",
        "fault_kind": k,
        "target": t,
        "intensity": x,
        "load": load,
        "requests": 10_000,
        "succeeded": int(10_000 * (1 - fail)),
        "failed": int(10_000 * fail),
        "availability": 1 - fail,
        "availability_fault": 1 - 2 * fail if 2 * fail < 1 else 0.0,
        "latency_p99": 0.8 if lat_breach else 0.2,
        "slo_latency_met": not lat_breach,
        "slo_availability_met": not av_breach,
        "slo_breached": lat_breach or av_breach,
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write a synthetic incident log (CSV).")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    df = incident_log(seed=a.seed, days=a.days)
    df.to_csv(a.out, index=False)
    print(f"wrote {a.out}: {len(df)} synthetic incidents over {a.days:g} days")


if __name__ == "__main__":
    main()
