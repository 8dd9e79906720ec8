"""The CPU quota model against theory, and the fluid engine against the request-level one.

    python experiments/cpu_quota_engines.py

One service, one replica, a CPU limit L with the kernel's period P = 0.1 s:

1. a lone request's mean response time at very low load (0.01 requests/s) against the
   phase average of the throttled time (:func:`twin.sim.fluid.throttle_delay` plus the
   work), for constant work;
2. the throughput under overload against L / c;
3. the mean response time of the request-level engine and of the fluid engine at quota
   utilisations 0.2, 0.5 and 0.7 (rate = u L / c), for a few limits, worker counts and
   works, exponential and constant.

Prints Markdown tables; figures depend on the seed only (the request-level runs) or on
nothing (the fluid engine).
"""

from __future__ import annotations

from typing import Any

from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.fluid import FluidSimulation, throttle_delay
from twin.topology import Topology

PERIOD = 0.1


def topo(
    limit: float, rate: float, workers: int, dist: str, work: float, ql: Any = None
) -> Topology:
    svc: dict[str, Any] = {
        "workers": workers,
        "cpu_limit": limit,
        "operations": {"default": {"service_time": {"dist": dist, "mean": work}}},
    }
    if ql is not None:
        svc["queue_limit"] = ql
    return Topology.from_dict(
        {"name": "quota", "services": {"a": svc}, "workload": [{"entry": "a", "rate": rate}]}
    )


def main() -> int:
    print("| limit | work c (s) | lone response, theory (s) | twin (s) |\n|---|---|---|---|")
    for limit, work in ((0.25, 0.05), (0.25, 0.02), (0.2, 0.0837), (0.5, 0.2)):
        theory = work + throttle_delay(work, limit * PERIOD, PERIOD)
        sc = Scenario(duration=200_000, warmup=0, seed=5, window=1000)
        s = Simulation(topo(limit, 0.01, 1, "constant", work), sc).run().summary
        print(f"| {limit} | {work} | {theory:.4f} | {s.latency.mean or float('nan'):.4f} |")
    print("\n| limit | workers | work c (s) | L / c (rps) | twin throughput (rps) |")
    print("|---|---|---|---|---|")
    for limit, workers, work in ((0.25, 1, 0.05), (0.25, 4, 0.05), (1.5, 4, 0.05)):
        cap = limit / work
        t = topo(limit, 2 * cap, workers, "exponential", work, ql=20)
        s = Simulation(t, Scenario(duration=2000, warmup=100, seed=1)).run().summary
        print(f"| {limit} | {workers} | {work} | {cap:.2f} | {s.throughput or float('nan'):.2f} |")
    print(
        "\n| work | limit | workers | c (s) | u | request-level mean (s) | fluid mean (s) "
        "| fluid / request-level |\n|---|---|---|---|---|---|---|---|"
    )
    for dist in ("exponential", "constant"):
        for limit, workers, work in (
            (0.25, 1, 0.05),
            (0.25, 4, 0.05),
            (0.5, 2, 0.01),
            (1.5, 4, 0.05),
        ):
            for u in (0.2, 0.5, 0.7):
                t = topo(limit, u * limit / work, workers, dist, work)
                s = Simulation(t, Scenario(duration=6000, warmup=200, seed=2)).run().summary
                f = FluidSimulation(t, Scenario(duration=600)).step(600).entries["a"]
                fm = f.latency.mean or float("nan")
                sm = s.latency.mean or float("nan")
                print(
                    f"| {dist} | {limit} | {workers} | {work} | {u} | {sm:.4f} "
                    f"| {fm:.4f} | {fm / sm:.2f} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
