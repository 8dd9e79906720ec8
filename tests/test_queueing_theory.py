"""Fidelity: the twin, run through ``twin simulate``, reproduces queueing theory.

DESIGN.md's bar: means within 2% and p99 within 5% of the analytic values, for M/M/1, M/M/c,
Jackson tandems and the Erlang-B loss system. Every run is long, warmed up and replicated
(``--replications 4 --workers 2``), with fixed seeds: the same seed gives the same bytes, so a
passing test keeps passing. The run lengths were chosen so that the standard error of each
checked figure is about a fifth of its tolerance.

Each model is simulated once per test session, whichever pytest-xdist worker asks first; the
others wait on a file lock and read the same ``summary.json``.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.optimize import brentq

pytestmark = pytest.mark.slow

MEAN_TOLERANCE = 0.02
P99_TOLERANCE = 0.05
REPLICATIONS = 4

# -- theory ---------------------------------------------------------------------------------


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``a = lambda / mu``."""
    assert a < c, "unstable"
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c (stable recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def mmc_mean_sojourn(lam: float, mu: float, c: int) -> float:
    return erlang_c(c, lam / mu) / (c * mu - lam) + 1.0 / mu


def mmc_sojourn_sf(t: float, lam: float, mu: float, c: int) -> float:
    """P(T > t) for M/M/c FCFS: wait is 0 w.p. 1 - C, else Exp(c mu - lambda); plus Exp(mu)."""
    wait = erlang_c(c, lam / mu)
    r = c * mu - lam
    if math.isclose(r, mu):
        both = (1.0 + mu * t) * math.exp(-mu * t)  # Erlang(2, mu)
    else:
        both = (r * math.exp(-mu * t) - mu * math.exp(-r * t)) / (r - mu)
    return (1.0 - wait) * math.exp(-mu * t) + wait * both


def mmc_sojourn_quantile(q: float, lam: float, mu: float, c: int) -> float:
    hi = 100.0 / (c * mu - lam) + 100.0 / mu
    return float(brentq(lambda t: mmc_sojourn_sf(t, lam, mu, c) - (1.0 - q), 0.0, hi))


def hypoexponential_sf(t: float, rates: list[float]) -> float:
    """P(sum of independent Exp(rate_i) > t), rates pairwise distinct."""
    total = 0.0
    for i, ri in enumerate(rates):
        weight = 1.0
        for j, rj in enumerate(rates):
            if j != i:
                weight *= rj / (rj - ri)
        total += weight * math.exp(-ri * t)
    return total


def hypoexponential_quantile(q: float, rates: list[float]) -> float:
    hi = 100.0 * sum(1.0 / r for r in rates)
    return float(brentq(lambda t: hypoexponential_sf(t, rates) - (1.0 - q), 0.0, hi))


# -- models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Station:
    name: str
    mu: float
    workers: int = 1
    queue_limit: int | None = None


@dataclass(frozen=True)
class Model:
    """A tandem of stations (each calls the next, non-blocking) fed by Poisson arrivals."""

    key: str
    stations: tuple[Station, ...]
    lam: float
    duration: float  # simulated seconds per replication
    seed: int

    @property
    def warmup(self) -> float:
        return self.duration * 0.05

    def topology(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for i, st in enumerate(self.stations):
            op: dict[str, Any] = {"service_time": {"dist": "exponential", "mean": 1.0 / st.mu}}
            if i + 1 < len(self.stations):
                op["calls"] = [{"to": self.stations[i + 1].name}]
            svc: dict[str, Any] = {
                "workers": st.workers,
                "blocking": False,
                "operations": {"default": op},
            }
            if st.queue_limit is not None:
                svc["queue_limit"] = st.queue_limit
            services[st.name] = svc
        return {
            "name": self.key,
            "services": services,
            "workload": [{"entry": self.stations[0].name, "rate": self.lam}],
        }


MM1 = Model("mm1", (Station("s", mu=1.0),), lam=0.6, duration=700_000, seed=11)
MMC = Model("mmc", (Station("s", mu=1.0, workers=4),), lam=2.4, duration=125_000, seed=12)
JACKSON = Model(
    "jackson-mm3",
    (Station("a", 1.0, 3), Station("b", 1.0, 3), Station("c", 1.0, 3)),
    lam=2.4,
    duration=125_000,
    seed=13,
)
TANDEM = Model(
    "tandem-mm1",
    (Station("a", 1.0), Station("b", 1.5), Station("c", 2.0)),
    lam=0.6,
    duration=300_000,
    seed=14,
)
ERLANG_B = Model(
    "erlang-b",
    (Station("s", mu=1.0, workers=3, queue_limit=0),),
    lam=2.0,
    duration=200_000,
    seed=15,
)


# -- running through the CLI, once per session ----------------------------------------------


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by every xdist worker of this session
    d = base / "queueing-theory"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class Run:
    summary: dict[str, Any]
    model: Model


@pytest.fixture(scope="session")
def simulate(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Model], Run]:
    shared = _shared_dir(tmp_path_factory)

    def run(model: Model) -> Run:
        workdir = shared / model.key
        out = workdir / "out"
        with (shared / f"{model.key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = workdir / "done"
            if not done.exists():
                workdir.mkdir(exist_ok=True)
                topo = workdir / "topology.yaml"
                topo.write_text(yaml.safe_dump(model.topology(), sort_keys=False))
                scenario = workdir / "scenario.yaml"
                # one time-series window per 0.5% of the run keeps the parquet small
                scenario.write_text(yaml.safe_dump({"window": model.duration / 200}))
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "twin.cli",
                        "simulate",
                        str(topo),
                        "--scenario",
                        str(scenario),
                        "--duration",
                        str(model.duration),
                        "--warmup",
                        str(model.warmup),
                        "--seed",
                        str(model.seed),
                        "--replications",
                        str(REPLICATIONS),
                        "--workers",
                        "2",
                        "--out",
                        str(out),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert proc.returncode == 0, proc.stderr
                done.touch()
            summary = json.loads((out / "summary.json").read_text())
        assert summary["replications"] == REPLICATIONS
        # the whole measured stretch of every replication was simulated
        expected = model.lam * (model.duration - model.warmup)
        assert summary["requests"] == pytest.approx(expected, rel=0.01)
        return Run(summary, model)

    return run


def _check(name: str, simulated: float, theory: float, tol: float, ci: dict[str, Any]) -> None:
    err = simulated / theory - 1.0
    print(f"{name}: theory {theory:.6g}, simulated {simulated:.6g} ({err:+.2%}), ci {ci}")
    assert abs(err) <= tol, (
        f"{name}: simulated {simulated:.6g} vs theory {theory:.6g} ({err:+.2%}, "
        f"tolerance {tol:.0%}); 95% CI over replications [{ci.get('lo')}, {ci.get('hi')}]"
    )


def _latency(run: Run, stat: str) -> tuple[float, dict[str, Any]]:
    return run.summary["latency"][stat], run.summary["ci"]["latency"][stat]


# -- the oracle itself ----------------------------------------------------------------------


def test_theory_helpers_reduce_to_known_closed_forms() -> None:
    lam, mu = 0.6, 1.0
    # M/M/c with one server is M/M/1: C = rho, T ~ Exp(mu - lambda)
    assert erlang_c(1, lam / mu) == pytest.approx(lam / mu)
    assert mmc_mean_sojourn(lam, mu, 1) == pytest.approx(1 / (mu - lam))
    assert mmc_sojourn_quantile(0.99, lam, mu, 1) == pytest.approx(math.log(100) / (mu - lam))
    # Erlang B for one server: a / (1 + a); and Erlang C from Erlang B
    assert erlang_b(1, 2.0) == pytest.approx(2 / 3)
    b = erlang_b(4, 2.4)
    assert erlang_c(4, 2.4) == pytest.approx(4 * b / (4 - 2.4 * (1 - b)))
    # a hypoexponential with one rate is that exponential; its mean is the sum of means
    assert hypoexponential_quantile(0.99, [0.4]) == pytest.approx(math.log(100) / 0.4)
    rates = [0.4, 0.9, 1.4]
    mean = sum(1 / r for r in rates)
    dt = 0.001
    numeric_mean = sum(hypoexponential_sf(k * dt, rates) * dt for k in range(200_000))
    assert numeric_mean == pytest.approx(mean, rel=1e-3)


# -- M/M/1 -----------------------------------------------------------------------------------


def test_mm1_mean_sojourn_matches_theory_within_2_percent(simulate: Callable[[Model], Run]) -> None:
    run = simulate(MM1)
    mu = MM1.stations[0].mu
    mean, ci = _latency(run, "mean")
    _check("M/M/1 mean sojourn", mean, 1 / (mu - MM1.lam), MEAN_TOLERANCE, ci)


def test_mm1_p99_sojourn_matches_theory_within_5_percent(simulate: Callable[[Model], Run]) -> None:
    run = simulate(MM1)
    mu = MM1.stations[0].mu
    p99, ci = _latency(run, "p99")
    _check("M/M/1 p99 sojourn", p99, math.log(100) / (mu - MM1.lam), P99_TOLERANCE, ci)


def test_mm1_utilization_equals_rho_within_2_percent(simulate: Callable[[Model], Run]) -> None:
    run = simulate(MM1)
    rho = MM1.lam / MM1.stations[0].mu
    util = run.summary["services"]["s"]["utilization"]
    _check(
        "M/M/1 utilization",
        util,
        rho,
        MEAN_TOLERANCE,
        run.summary["ci"]["services"]["s"]["utilization"],
    )


# -- M/M/c -----------------------------------------------------------------------------------


def test_mmc_mean_sojourn_matches_erlang_c_within_2_percent(
    simulate: Callable[[Model], Run],
) -> None:
    run = simulate(MMC)
    st = MMC.stations[0]
    mean, ci = _latency(run, "mean")
    _check(
        "M/M/4 mean sojourn", mean, mmc_mean_sojourn(MMC.lam, st.mu, st.workers), MEAN_TOLERANCE, ci
    )


def test_mmc_p99_sojourn_matches_exact_sojourn_cdf_within_5_percent(
    simulate: Callable[[Model], Run],
) -> None:
    run = simulate(MMC)
    st = MMC.stations[0]
    p99, ci = _latency(run, "p99")
    theory = mmc_sojourn_quantile(0.99, MMC.lam, st.mu, st.workers)
    _check("M/M/4 p99 sojourn", p99, theory, P99_TOLERANCE, ci)


def test_mmc_utilization_equals_rho_within_2_percent(simulate: Callable[[Model], Run]) -> None:
    run = simulate(MMC)
    st = MMC.stations[0]
    util = run.summary["services"]["s"]["utilization"]
    rho = MMC.lam / (st.workers * st.mu)
    _check(
        "M/M/4 utilization",
        util,
        rho,
        MEAN_TOLERANCE,
        run.summary["ci"]["services"]["s"]["utilization"],
    )


# -- Jackson tandems -------------------------------------------------------------------------


def test_jackson_tandem_of_three_mm3_mean_end_to_end_is_sum_of_station_means_within_2_percent(
    simulate: Callable[[Model], Run],
) -> None:
    run = simulate(JACKSON)
    theory = sum(mmc_mean_sojourn(JACKSON.lam, st.mu, st.workers) for st in JACKSON.stations)
    mean, ci = _latency(run, "mean")
    _check("Jackson 3 x M/M/3 mean end-to-end", mean, theory, MEAN_TOLERANCE, ci)


def test_mm1_tandem_mean_end_to_end_is_sum_of_station_means_within_2_percent(
    simulate: Callable[[Model], Run],
) -> None:
    run = simulate(TANDEM)
    theory = sum(1 / (st.mu - TANDEM.lam) for st in TANDEM.stations)
    mean, ci = _latency(run, "mean")
    _check("M/M/1 tandem mean end-to-end", mean, theory, MEAN_TOLERANCE, ci)


def test_mm1_tandem_p99_end_to_end_matches_hypoexponential_within_5_percent(
    simulate: Callable[[Model], Run],
) -> None:
    """Reich: sojourn times of one customer at successive M/M/1 stations are independent
    exponentials with rates mu_i - lambda, so the end-to-end time is hypoexponential."""
    run = simulate(TANDEM)
    rates = [st.mu - TANDEM.lam for st in TANDEM.stations]
    assert len(set(rates)) == len(rates)
    p99, ci = _latency(run, "p99")
    _check(
        "M/M/1 tandem p99 end-to-end", p99, hypoexponential_quantile(0.99, rates), P99_TOLERANCE, ci
    )


# -- Erlang B ----------------------------------------------------------------------------------


def test_erlang_b_rejected_fraction_of_mmcc_matches_within_2_percent_relative(
    simulate: Callable[[Model], Run],
) -> None:
    run = simulate(ERLANG_B)
    st = ERLANG_B.stations[0]
    s = run.summary
    rejected = s["failures"]["REJECTED"] / s["requests"]
    assert set(s["failures"]) == {"REJECTED"}  # a loss system loses by rejection only
    theory = erlang_b(st.workers, ERLANG_B.lam / st.mu)
    ci = s["ci"]["failures"]["REJECTED"]
    ci_fraction = {k: ci[k] / s["requests"] for k in ("lo", "hi")}
    _check("M/M/3/3 blocking", rejected, theory, MEAN_TOLERANCE, ci_fraction)
