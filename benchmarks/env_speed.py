"""Single-process steps/s of the mitigation env on Online Boutique (random actions), for
both fidelities: the request-level engine ("des") and the aggregated twin ("fluid").

Usage: python benchmarks/env_speed.py [--steps N] [--interval S] [--load X]
The last line is ``steps/s: N`` for the fluid twin (the one training uses); the line before
says so and gives the request-level figure and the ratio.
"""

from __future__ import annotations

import argparse
import time

from agents.env import MitigationEnv


def measure(fidelity: str, steps: int, interval: float, load: float) -> float:
    env = MitigationEnv(interval=interval, load=load, fidelity=fidelity)
    env.action_space.seed(0)
    env.reset(seed=0)
    t = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000, help="fluid steps (des runs a tenth)")
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--load", type=float, default=1.0)
    a = ap.parse_args()
    des = measure("des", max(20, a.steps // 10), a.interval, a.load)
    fluid = measure("fluid", a.steps, a.interval, a.load)
    print(f"interval {a.interval} s, load x{a.load}, Online Boutique, random actions")
    print(f"des (request-level engine): {des:.1f} steps/s")
    print(f"fluid (aggregated twin): {fluid / des:.1f}x the request-level engine; last line")
    print(f"steps/s: {fluid:.1f}")


if __name__ == "__main__":
    main()
