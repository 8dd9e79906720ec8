"""The training recipe of agents/policies/online-boutique, in one command.

Behaviour-cloning warm start from a baseline controller (``--teacher``, default
``reactive``) on 96 training-draw episodes, 4 rounds of dataset aggregation (48 episodes each:
the clone drives, the teacher labels), PPO fine-tuning for 8,192 steps in the DES twin on
2 SubprocVecEnv envs, checkpoints at half-way, and the final pick by 16 validation episodes
from the training distribution (never the held-out set). Prints the wall time and the load
average before and after.

Usage: python experiments/rl_train_boutique.py --out runs/ob [--steps N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from agents.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/online-boutique"))
    ap.add_argument("--steps", type=int, default=8_192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bc-episodes", type=int, default=96)
    ap.add_argument("--validation", type=int, default=16)
    ap.add_argument("--teacher", default="reactive", help="adaptive or reactive (agents.baselines)")
    ap.add_argument("--dagger-rounds", type=int, default=4)
    ap.add_argument("--dagger-episodes", type=int, default=48)
    a = ap.parse_args()
    print("load average before:", os.getloadavg(), flush=True)
    t = time.perf_counter()
    result = train(
        TrainConfig(
            run_dir=a.out,
            steps=a.steps,
            n_envs=2,
            seed=a.seed,
            bc_episodes=a.bc_episodes,
            validation=a.validation,
            checkpoint_every=max(1, a.steps // 2),
            learning_rate=1e-4,
            progress=False,
            teacher=a.teacher,
            dagger_rounds=a.dagger_rounds,
            dagger_episodes=a.dagger_episodes,
        )
    )
    print(f"wrote {result.model} in {time.perf_counter() - t:.0f} s wall", flush=True)
    print("load average after:", os.getloadavg(), flush=True)


if __name__ == "__main__":
    main()
