"""Campaign throughput (2 local cores vs 1) and per-request cost at 1,000 services vs a chain.

1. The 200-run Online Boutique campaign (experiments/boutique-campaign.yaml) on one local
   process, then on two; the rows must be identical (wall time aside). Target: >= 1.8x.
2. One 10-minute campaign scenario (a 50 ms latency fault on a busy inner service, through
   the campaign machinery) on a 1,000-service synthetic topology and on a 3-service chain
   a -> b -> c at the same entry rate; cost = wall seconds per entry request (fastest of 3).
   Target: <= 3x.
   A synthetic request visits several times more services than a chain request, so the cost
   per service visit (job) and per engine event are printed too.
3. Chains of 1, 3 and 9 services (no fault): what a request of 9 visits costs against one of
   3 when nothing else differs, and the engine's cost per visit; with 2, the synthetic
   topology against the 9-service chain: requests of the same size (9.06 and 9 visits).

Benchmarks print ratios; nothing asserts on wall time. The machine's load average is printed
first: other work on the same cores lowers the speed-up.

    python benchmarks/campaign.py [--runs-only | --cost-only | --chains-only | --no-runs]

The last lines are machine-readable (``name: value``).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from twin.campaign import VOLATILE, load_campaign, run_campaign
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "boutique-campaign.yaml"
REPEAT = 3  # cost runs per topology; the fastest counts
RATE = 200.0  # entry requests per second in both cost runs (the synthetic default)


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the pool's workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def campaign_speedup(results: dict[str, float]) -> None:
    plan = load_campaign(SPEC)
    walls: dict[int, float] = {}
    frames: dict[int, pd.DataFrame] = {}
    cpus: dict[int, float] = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as d:
            c0 = _cpu()
            t0 = time.perf_counter()
            o = run_campaign(plan, Path(d) / "out", workers=workers)
            walls[workers] = time.perf_counter() - t0
            cpus[workers] = _cpu() - c0
            frames[workers] = o.runs.drop(columns=list(VOLATILE))
        print(
            f"boutique campaign, {len(o.runs)} runs on {workers} process(es): "
            f"{walls[workers]:.1f} s wall, {cpus[workers]:.1f} s CPU (parent + workers), "
            f"{o.runs['requests'].sum():,} simulated requests"
        )
    same = frames[1].equals(frames[2])
    print(f"rows identical on 1 and 2 processes: {same}")
    results["runs"] = float(len(frames[1]))
    results["wall_1_core_s"] = walls[1]
    results["wall_2_cores_s"] = walls[2]
    results["identical_rows"] = float(same)
    results["cpu_2_vs_1"] = cpus[2] / cpus[1]  # > 1: what parallelism itself costs
    results["speedup_2_vs_1"] = walls[1] / walls[2]


def chain_doc(n: int) -> dict[str, Any]:
    """Services s0 -> s1 -> ... -> s{n-1}: 8 workers, 5 ms exponential, no network latency."""
    names = ["a", "b", "c"] if n == 3 else [f"s{i}" for i in range(n)]
    return {
        "name": f"chain{n}",
        "services": {
            name: {
                "workers": 8,
                "operations": {
                    "default": {
                        "service_time": {"dist": "exponential", "mean": 0.005},
                        "calls": [{"to": names[i + 1]}] if i + 1 < n else [],
                    }
                },
            }
            for i, name in enumerate(names)
        },
        "workload": [{"entry": names[0], "rate": RATE}],
        "slo": {"latency_p99": 1.0, "availability": 0.99},
    }


CHAIN = chain_doc(3)


def _one_scenario(topo: Topology, target: str, d: Path) -> dict[str, Any]:
    """Run one 10-minute scenario as a one-run campaign; returns its row."""
    topo.to_yaml(d / "topology.yaml")
    (d / "campaign.yaml").write_text(
        "name: cost\ntopology: topology.yaml\nduration: 600\nwarmup: 60\nseed: 1\n"
        "baseline: false\nscenarios:\n"
        f"  - name: slow-{target}\n"
        f"    faults: [{{kind: latency, target: {target}, start: 200, duration: 120, "
        "delay: 0.05}]\n"
    )
    o = run_campaign(load_campaign(d / "campaign.yaml"), d / "out")
    row: dict[str, Any] = {str(k): v for k, v in o.runs.iloc[0].to_dict().items()}
    rates = topo.operation_rates()
    entry = sum(w.rate for w in topo.workload)
    row["visits_per_request"] = sum(rates.values()) / entry
    return row


def request_cost(results: dict[str, float]) -> None:
    from twin.synthetic import generate

    big = generate(1000, seed=1, total_rate=RATE)
    g = big.service_graph()
    inner = [n for n in g.nodes if g.in_degree(n) and g.out_degree(n)]
    target = max(inner, key=lambda n: g.nodes[n]["rate"])
    chain = Topology.from_dict(CHAIN)
    cases = (("chain", chain, "b"), ("synthetic-1000", big, target))
    tries: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in cases}
    # the fastest of a few, taken in turn (chain, synthetic, chain, ...): other work on the
    # machine only slows a run, and drift in the machine's speed touches both alike
    for _ in range(REPEAT):
        for name, topo, tgt in cases:
            with tempfile.TemporaryDirectory() as d:
                tries[name].append(_one_scenario(topo, tgt, Path(d)))
    rows = {}
    for name, topo, _ in cases:
        r = min(tries[name], key=lambda t: float(t["wall_seconds"]))
        rows[name] = r
        per_req = r["wall_seconds"] / r["requests"]
        per_visit = per_req / r["visits_per_request"]
        per_event = r["wall_seconds"] / r["events"]
        print(
            f"{name}: {len(topo.services)} services, {r['requests']:,} requests "
            f"({r['visits_per_request']:.2f} service visits each), {r['events']:,} events, "
            f"{r['wall_seconds']:.1f} s wall: {per_req * 1e6:.0f} us/request, "
            f"{per_visit * 1e6:.1f} us/visit, {per_event * 1e6:.2f} us/event"
        )
    c, s = rows["chain"], rows["synthetic-1000"]

    def cost(r: dict[str, Any], per: str) -> float:
        n = {"request": r["requests"], "event": r["events"]}.get(per)
        if per == "visit":
            n = r["requests"] * r["visits_per_request"]
        return float(r["wall_seconds"] / n)

    results["synthetic_us_per_request"] = cost(s, "request") * 1e6
    results["per_request_cost_ratio_1000_vs_chain"] = cost(s, "request") / cost(c, "request")
    results["per_visit_cost_ratio_1000_vs_chain"] = cost(s, "visit") / cost(c, "visit")
    results["per_event_cost_ratio_1000_vs_chain"] = cost(s, "event") / cost(c, "event")


def chain_lengths(results: dict[str, float]) -> None:
    """Per-request cost of chains of 1, 3 and 9 services (no fault, 10 minutes, the fastest
    of 3 taken in turn): the engine's cost per visit and per request, and what a request of
    9 visits costs against one of 3 when nothing else differs."""
    from twin.scenario import Scenario
    from twin.sim import Simulation

    sc = Scenario.model_validate({"duration": 600, "warmup": 60, "seed": 1})
    best: dict[int, float] = {}
    for _ in range(REPEAT):
        for n in (1, 3, 9):
            sim = Simulation(Topology.from_dict(chain_doc(n)), sc, series="entries")
            r = sim.run().summary
            best[n] = min(best.get(n, math.inf), sim.wall / r.requests)
    per_visit = (best[9] - best[1]) / 8
    for n in (1, 3, 9):
        print(f"chain of {n}: {best[n] * 1e6:.1f} us/request")
    print(
        f"per visit {per_visit * 1e6:.2f} us, per request beside its visits "
        f"{(best[1] - per_visit) * 1e6:.2f} us"
    )
    results["per_request_cost_ratio_chain9_vs_chain3"] = best[9] / best[3]
    if "synthetic_us_per_request" in results:
        # requests of the same size (9.06 and 9 visits): what the topology's size costs
        synth = results["synthetic_us_per_request"] / 1e6
        results["per_request_cost_ratio_1000_vs_chain9"] = synth / best[9]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--runs-only", action="store_true", help="only the 2-vs-1 core speed-up")
    group.add_argument("--cost-only", action="store_true", help="only the per-request cost")
    group.add_argument(
        "--chains-only", action="store_true", help="only chains of 1, 3 and 9 services"
    )
    group.add_argument(
        "--no-runs", action="store_true", help="the costs and the chains, not the speed-up"
    )
    a = ap.parse_args()
    load = os.getloadavg()
    print(f"cores: {os.cpu_count()}, load average before: {load[0]:.2f} {load[1]:.2f}")
    # request_cost runs before chain_lengths: the latter compares with the former's figure
    only = {
        "runs_only": (campaign_speedup,),
        "cost_only": (request_cost,),
        "chains_only": (chain_lengths,),
        "no_runs": (request_cost, chain_lengths),
    }
    parts = next(
        (v for flag, v in only.items() if getattr(a, flag)),
        (campaign_speedup, request_cost, chain_lengths),
    )
    results: dict[str, float] = {}
    for part in parts:
        part(results)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for k, v in results.items():
        print(f"{k}: {v:.3g}" if abs(v) < 1000 else f"{k}: {v:.0f}")


if __name__ == "__main__":
    main()
