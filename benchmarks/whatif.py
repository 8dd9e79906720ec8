"""How long the What-if page takes to answer, against its 5-second budget.

Times the very function the page calls (:func:`explorer.whatif.compute_whatif`, uncached)
on Online Boutique at its bundled load for a 60-second simulated window: the page's default
fault (the first fault of the bundled scenario, moved into the window), the unmitigated run
and the mitigated run (the bundled policy file; ``--mitigation controls`` uses the page's
default controls instead), plus building the page's figures from the results.

    python benchmarks/whatif.py                 # 3 repeats, prints the median
    python benchmarks/whatif.py --repeats 1     # a smoke run

The last line reads ``whatif_seconds: 1.23 (budget 5.0, ratio 0.25)``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from explorer import catalog, charts
from explorer.whatif import (
    Mitigations,
    WhatIfInputs,
    WhatIfResult,
    build_policy,
    build_scenario,
    busiest,
    compute_whatif,
    default_fault,
    documents_json,
    headline,
    reasons,
)
from twin.bundled import bundled_topology_path

BUDGET = 5.0


def figures(result: WhatIfResult) -> int:
    """Build (and serialise, as Streamlit does) every figure the page shows."""
    runs = {"unmitigated": result.baseline, "mitigated": result.mitigated}
    series = {k: v.series for k, v in runs.items()}
    figs = [
        charts.quantiles({k: headline(v.summary) for k, v in runs.items()}),
        charts.reasons({k: reasons(v.summary) for k, v in runs.items()}),
        charts.over_time(series, "error_rate", "Failed requests", result.faults),
        charts.over_time(series, "p99", "p99", result.faults),
        charts.utilisation_pair(series, busiest(result.baseline.series, 6), result.faults),
    ]
    return sum(len(f.to_json()) for f in figs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", default=str(bundled_topology_path("online-boutique")))
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mitigation", choices=["policy", "controls"], default="policy")
    args = parser.parse_args()

    system = catalog.load_bundled(Path(args.topology))
    topo = system.topology
    fault = default_fault(topo, system.scenario, args.duration)
    inputs = WhatIfInputs(load=1.0, duration=args.duration, seed=1, fault=fault)
    scenario = build_scenario(topo, inputs)
    if args.mitigation == "policy" and system.policy is not None:
        policy, used = system.policy, f"{Path(args.topology).stem}.policy.yaml"
    else:
        policy, used = build_policy(topo, Mitigations()), "the page's default controls"
    key = documents_json(topo, scenario, policy)
    rate = sum(w.rate for w in topo.workload)
    print(
        f"{topo.name}: {len(topo.services)} services at {rate:g} req/s, "
        f"{args.duration:g} simulated s, fault {fault.kind} on {fault.target} "
        f"({fault.start:g}-{fault.start + fault.duration:g} s), mitigated with {used}"
    )

    compute: list[float] = []
    total: list[float] = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        result = compute_whatif(*key)
        t1 = time.perf_counter()
        size = figures(result)
        t2 = time.perf_counter()
        compute.append(t1 - t0)
        total.append(t2 - t0)
        base, mit = headline(result.baseline.summary), headline(result.mitigated.summary)
        print(
            f"  repeat {i + 1}: twin {t1 - t0:.2f} s (unmitigated "
            f"{result.baseline.wall_seconds:.2f} s, mitigated "
            f"{result.mitigated.wall_seconds:.2f} s, {int(base['requests'] or 0):,} requests "
            f"each), figures {t2 - t1:.2f} s ({size / 1e6:.1f} MB of JSON); "
            f"p99 {base['p99'] or 0:.3f} s -> {mit['p99'] or 0:.3f} s, errors "
            f"{100 * (base['error_rate'] or 0):.2f}% -> {100 * (mit['error_rate'] or 0):.2f}%"
        )
    median = statistics.median(total)
    print(f"compute_seconds: {statistics.median(compute):.2f} (median of {args.repeats})")
    print(f"whatif_seconds: {median:.2f} (budget {BUDGET}, ratio {median / BUDGET:.2f})")


if __name__ == "__main__":
    main()
