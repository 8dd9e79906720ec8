"""Single-process steps/s of the mitigation env on Online Boutique (random actions).

Usage: python benchmarks/env_speed.py [--steps N] [--interval S] [--load X]
The last line is ``steps/s: N``.
"""

from __future__ import annotations

import argparse
import time

from agents.env import MitigationEnv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--load", type=float, default=1.0)
    a = ap.parse_args()
    env = MitigationEnv(interval=a.interval, load=a.load)
    env.action_space.seed(0)
    env.reset(seed=0)
    t = time.perf_counter()
    for _ in range(a.steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t
    print(f"interval {a.interval} s, load x{a.load}, {a.steps} steps in {dt:.2f} s")
    print(f"steps/s: {a.steps / dt:.1f}")


if __name__ == "__main__":
    main()
