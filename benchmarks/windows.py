"""What monitor windows cost: the same run with 1 s windows (the CLI's default) and with 60 s.

The network: three M/M/3 stations in tandem (exponential service, mean 1 s per server),
Poisson arrivals at 2.4 per second, per-service series kept. Each run writes what
``twin simulate`` writes (summary.json and timeseries.parquet). The two window lengths run in
turn (A B A B ...) so drift in the machine's speed hits them alike; the ratio of wall times
(1 s over 60 s windows) is what to read: it is what the per-window bookkeeping costs.

    python benchmarks/windows.py            # 20,000 simulated seconds, 3 rounds
    python benchmarks/windows.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

LAMBDA, MU, SERVERS = 2.4, 1.0, 3


def tandem() -> Topology:
    def svc(nxt: str | None) -> dict[str, object]:
        calls = [{"to": nxt}] if nxt else []
        op = {"service_time": {"dist": "exponential", "mean": 1 / MU}, "calls": calls}
        return {"workers": SERVERS, "operations": {"default": op}}

    return Topology.from_dict(
        {
            "name": "tandem",
            "services": {"s1": svc("s2"), "s2": svc("s3"), "s3": svc(None)},
            "workload": [{"entry": "s1", "rate": LAMBDA}],
        }
    )


def timed_run(topo: Topology, duration: float, window: float, seed: int, out: Path) -> float:
    """Wall seconds to simulate and write the results, as the CLI does."""
    t = time.perf_counter()
    sim = Simulation(topo, Scenario(duration=duration, seed=seed, window=window))
    sim.run().write(out)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20_000.0, help="simulated seconds")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2,000 simulated seconds, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.repeats = 2_000.0, 1
    topo = tandem()
    walls: dict[float, list[float]] = {1.0: [], 60.0: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.repeats):
            for window, ws in walls.items():
                out = Path(tmp) / f"w{window:g}-{rnd}"
                ws.append(timed_run(topo, args.duration, window, 100 + rnd, out))
    ratios = [a / b for a, b in zip(walls[1.0], walls[60.0], strict=True)]
    print(
        f"3 x M/M/{SERVERS} tandem, lambda {LAMBDA}/s, {args.duration:,.0f} simulated s, "
        f"{args.repeats} round(s), window lengths alternated"
    )
    for window, ws in walls.items():
        print(
            f"window {window:>4g} s: wall {statistics.median(ws):6.2f} s (median), "
            f"{min(ws):.2f}-{max(ws):.2f}"
        )
    print(
        f"ratio window_1s/window_60s: {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
