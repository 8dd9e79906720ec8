"""Engine speed and memory, measured against two hand-written SimPy models and Ciw in one run.

The network: three M/M/3 stations in tandem (exponential service, mean 1 s per server),
Poisson arrivals at 2.4 per second. The two SimPy models are the same code drawing their
random numbers two ways: with the standard library's ``random`` (``random.Random(seed)``,
``expovariate``), as SimPy's own documentation does, and with a numpy ``Generator`` scalar
call per draw (slower: each call crosses into numpy). Contenders run in turn
(A B C A B C ...) so drift in the machine's speed hits them alike; the ratios are what to read.
On a machine shared with other jobs, wall-clock rates swing with their load; the rates per
second of this process's CPU time (also printed) hold steadier.

    python benchmarks/engine.py            # ~200k requests each, 3 rounds
    python benchmarks/engine.py --requests 100000 --repeats 5   # the README's figures
    python benchmarks/engine.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import simpy

LAMBDA, MU, SERVERS, STATIONS = 2.4, 1.0, 3, 3


def mmc_mean_sojourn(lam: float, mu: float, c: int) -> float:
    """Erlang C: mean time in an M/M/c station."""
    a = lam / mu
    top = a**c / math.factorial(c) * c / (c - a)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam) + 1 / mu


def simpy_random_tandem(horizon: float, seed: int) -> tuple[int, float, int]:
    """The idiomatic SimPy model, as SimPy's documentation writes one: a process per customer,
    a Resource per station, service and interarrival times from ``random.Random(seed)``."""
    env = simpy.Environment()
    rng = random.Random(seed)
    stations = [simpy.Resource(env, SERVERS) for _ in range(STATIONS)]
    done = [0, 0.0]

    def customer(env: simpy.Environment) -> simpy.events.ProcessGenerator:
        t0 = env.now
        for st in stations:
            with st.request() as req:
                yield req
                yield env.timeout(rng.expovariate(MU))
        done[0] += 1
        done[1] += env.now - t0

    def arrivals(env: simpy.Environment) -> simpy.events.ProcessGenerator:
        while True:
            yield env.timeout(rng.expovariate(LAMBDA))
            env.process(customer(env))

    env.process(arrivals(env))
    env.run(until=horizon)
    events = int(repr(env._eid)[6:-1])  # SimPy's event-id counter: events scheduled
    return int(done[0]), done[1] / max(1, int(done[0])), events


def simpy_tandem(horizon: float, seed: int) -> tuple[int, float, int]:
    """The same SimPy model drawing each time with a numpy ``Generator`` scalar call."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    stations = [simpy.Resource(env, SERVERS) for _ in range(STATIONS)]
    done = [0, 0.0]

    def customer(env: simpy.Environment) -> simpy.events.ProcessGenerator:
        t0 = env.now
        for st in stations:
            with st.request() as req:
                yield req
                yield env.timeout(rng.exponential(1 / MU))
        done[0] += 1
        done[1] += env.now - t0

    def arrivals(env: simpy.Environment) -> simpy.events.ProcessGenerator:
        while True:
            yield env.timeout(rng.exponential(1 / LAMBDA))
            env.process(customer(env))

    env.process(arrivals(env))
    env.run(until=horizon)
    events = int(repr(env._eid)[6:-1])  # SimPy's event-id counter: events scheduled
    return int(done[0]), done[1] / max(1, int(done[0])), events


def ciw_tandem(horizon: float, seed: int) -> tuple[int, float, int]:
    import ciw

    ciw.seed(seed)
    net = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(LAMBDA), None, None],
        service_distributions=[ciw.dists.Exponential(MU)] * STATIONS,
        routing=[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
        number_of_servers=[SERVERS] * STATIONS,
    )
    q = ciw.Simulation(net)
    q.simulate_until_max_time(horizon)
    done = q.nodes[-1].all_individuals
    sojourn = [ind.data_records[-1].exit_date - ind.data_records[0].arrival_date for ind in done]
    return len(done), float(np.mean(sojourn)) if sojourn else math.nan, -1


def twin_tandem(mitigated: bool) -> Callable[[float, int], tuple[int, float, int]]:
    from twin.policy import Policy
    from twin.scenario import Scenario
    from twin.sim import Simulation
    from twin.topology import Topology

    def svc(nxt: str | None) -> dict[str, object]:
        calls = [{"to": nxt}] if nxt else []
        op = {"service_time": {"dist": "exponential", "mean": 1 / MU}, "calls": calls}
        return {"workers": SERVERS, "operations": {"default": op}}

    topo = Topology.from_dict(
        {
            "name": "tandem",
            "services": {"s1": svc("s2"), "s2": svc("s3"), "s3": svc(None)},
            "workload": [{"entry": "s1", "rate": LAMBDA}],
        }
    )
    policy = (
        Policy.from_dict(
            {
                "clients": {
                    "*": {
                        "timeout": 1000.0,
                        "retries": {
                            "max": 2,
                            "backoff": "exponential",
                            "base": 0.05,
                            "cap": 1.0,
                            "jitter": "full",
                            "budget": 0.2,
                        },
                        "circuit_breaker": {
                            "failure_rate": 0.5,
                            "window": 20,
                            "min_requests": 10,
                            "open_for": 5.0,
                        },
                    }
                }
            }
        )
        if mitigated
        else None
    )

    def run(horizon: float, seed: int) -> tuple[int, float, int]:
        sim = Simulation(
            topo, Scenario(duration=horizon, seed=seed, window=60.0), policy, series="entries"
        )
        s = sim.run().summary
        mean = s.latency.mean
        return int(s.succeeded), math.nan if mean is None else float(mean), sim.events

    return run


PEAK = """
def peak_kib():
    # VmHWM: this process's own peak RSS. ru_maxrss would also count the parent's RSS at the
    # fork, which Linux carries across exec.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
"""

MEMORY_CHILD = (
    PEAK
    + """
import sys
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology
n = int(sys.argv[1])
op = lambda calls: {"service_time": {"dist": "exponential", "mean": 0.01}, "calls": calls}
topo = Topology.from_dict({"name": "two", "services": {
    "a": {"workers": 4, "operations": {"default": op([{"to": "b"}])}},
    "b": {"workers": 4, "operations": {"default": op([])}}},
    "workload": [{"entry": "a", "rate": 200.0}]})
s = Simulation(topo, Scenario(duration=n / 200.0, seed=1, window=10.0)).run().summary
print(s.requests, peak_kib())
"""
)

SIMPY_MEMORY_CHILD = (
    PEAK
    + """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("engine_benchmark", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
simpy_tandem = mod.simpy_tandem
n = int(sys.argv[1])
print(simpy_tandem(n / 2.4, 1)[0], peak_kib())
"""
)


def peak_rss_mb(code: str, *args: str) -> tuple[float, str]:
    """Peak RSS of a fresh process running ``code``, as it reports it (VmHWM, KiB)."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[1]) / 1024, out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-requests", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="20k requests, 1 round, 100k memory")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.repeats, args.memory_requests = 20_000, 1, 100_000
    horizon = args.requests / LAMBDA
    contenders: dict[str, tuple[Callable[[float, int], tuple[int, float, int]], float]] = {
        "simpy_random": (simpy_random_tandem, horizon),
        "simpy_numpy": (simpy_tandem, horizon),
        "ciw_3.2.7": (ciw_tandem, horizon / 10),  # Ciw is slow: a rate needs no long run
        "twin_bare": (twin_tandem(False), horizon),
        "twin_mitigated": (twin_tandem(True), horizon),
    }
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    cpu_rates: dict[str, list[float]] = {k: [] for k in contenders}
    info: dict[str, tuple[int, float, int]] = {}
    for rnd in range(args.repeats):
        for name, (fn, h) in contenders.items():
            t, c = time.perf_counter(), time.process_time()
            done, mean, events = fn(h, 100 + rnd)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            rates[name].append(done / wall)
            cpu_rates[name].append(done / cpu)
            info[name] = (done, mean, events)
    theory = STATIONS * mmc_mean_sojourn(LAMBDA, MU, SERVERS)
    print(
        f"3 x M/M/{SERVERS} tandem, lambda {LAMBDA}, mu {MU}; {args.repeats} round(s), "
        f"contenders alternated; Ciw ran a 10x shorter horizon (a rate needs no long run)"
    )
    print(
        f"{'contender':<20}{'requests/s (median)':>22}{'min-max':>22}{'per CPU-s':>12}"
        f"{'events/req':>12}{'mean sojourn':>14}"
    )
    for name, rs in rates.items():
        done, mean, events = info[name]
        epr = f"{events / done:.2f}" if events > 0 else "-"
        print(
            f"{name:<20}{statistics.median(rs):>22,.0f}{f'{min(rs):,.0f}-{max(rs):,.0f}':>22}"
            f"{statistics.median(cpu_rates[name]):>12,.0f}{epr:>12}{mean:>14.3f}"
        )
    print(f"{'theory (Erlang C)':<20}{'':>22}{'':>22}{'':>12}{'':>12}{theory:>14.3f}")

    def ratio(a: str, b: str, of: dict[str, list[float]] = rates) -> float:
        return statistics.median(x / y for x, y in zip(of[a], of[b], strict=True))

    twin_mb, twin_n = peak_rss_mb(MEMORY_CHILD, str(args.memory_requests))
    import os

    here = os.path.abspath(__file__)
    simpy_mb, simpy_n = peak_rss_mb(SIMPY_MEMORY_CHILD, str(args.memory_requests), here)
    print(
        f"peak RSS, {int(twin_n):,} requests through two services (twin): {twin_mb:.0f} MB"
        f" ({'under' if twin_mb < 300 else 'OVER'} 300 MB)"
    )
    print(
        f"peak RSS, {int(simpy_n):,} requests through the hand-written SimPy tandem (numpy): "
        f"{simpy_mb:.0f} MB"
    )
    for twin in ("twin_mitigated", "twin_bare"):
        for other in ("simpy_random", "simpy_numpy", "ciw_3.2.7"):
            print(
                f"ratio {twin}/{other}: {ratio(twin, other):.2f} (wall), "
                f"{ratio(twin, other, cpu_rates):.2f} (CPU time)"
            )
    print(f"peak_rss_mb twin_{args.memory_requests // 1000}k: {twin_mb:.0f}")


if __name__ == "__main__":
    main()
