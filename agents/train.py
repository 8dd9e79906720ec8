"""Train a mitigation policy with stable-baselines3 (PPO by default; A2C or DQN selectable).

Vectorised envs (one process each), seeded, periodic checkpoints, CSV logs and a progress
bar; ``resume`` continues from the newest checkpoint in the run directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agents.env import EnvConfig, MitigationEnv
from twin.errors import InputError

ALGOS = ("ppo", "a2c", "dqn")


def _make(cfg: EnvConfig, rank: int, seed: int) -> Any:
    def thunk() -> Any:
        from gymnasium.wrappers import TimeLimit

        env = TimeLimit(MitigationEnv(cfg), max_episode_steps=cfg.max_steps)
        env.reset(seed=seed + rank)
        return env

    return thunk


def _latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted(
        (run_dir / "checkpoints").glob("model_*_steps.zip"),
        key=lambda p: int(p.stem.split("_")[1]),
    )
    return found[-1] if found else None


def train(
    run_dir: Path,
    steps: int,
    *,
    algo: str = "ppo",
    n_envs: int = 2,
    seed: int = 0,
    config: EnvConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    checkpoint_every: int = 2048,
) -> Path:
    """Train for ``steps`` env steps; writes ``run_dir/model.zip`` and returns its path."""
    if algo not in ALGOS:
        raise InputError(f"--algo: expected one of {', '.join(ALGOS)}, got {algo!r}")
    if steps <= 0 or n_envs <= 0:
        raise InputError(f"--steps ({steps}) and --envs ({n_envs}) must be positive")
    if algo == "dqn":
        raise InputError(
            "--algo dqn: DQN needs a Discrete action space; this env's is MultiDiscrete"
        )
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    cfg = config or EnvConfig()
    run_dir.mkdir(parents=True, exist_ok=True)
    fns = [_make(cfg, i, seed) for i in range(n_envs)]
    venv = VecMonitor(SubprocVecEnv(fns) if n_envs > 1 else DummyVecEnv(fns))
    venv.seed(seed)
    cls: Any = PPO if algo == "ppo" else A2C
    ckpt = _latest_checkpoint(run_dir) if resume else None
    if ckpt is not None:
        model = cls.load(str(ckpt), env=venv, device="cpu")
    else:
        kw: dict[str, Any] = {"n_steps": 128, "batch_size": 64} if algo == "ppo" else {}
        model = cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **kw)
    model.set_logger(configure(str(run_dir / "logs"), ["csv", "stdout"]))
    cb = CheckpointCallback(
        max(1, checkpoint_every // n_envs), str(run_dir / "checkpoints"), name_prefix="model"
    )
    t = time.perf_counter()
    model.learn(
        total_timesteps=steps,
        callback=cb,
        progress_bar=progress,
        reset_num_timesteps=ckpt is None,
    )
    wall = time.perf_counter() - t
    venv.close()
    path = run_dir / "model.zip"
    model.save(str(path))
    meta = {
        "algo": algo,
        "steps": int(model.num_timesteps),
        "n_envs": n_envs,
        "seed": seed,
        "wall_seconds": wall,
        "resumed_from": str(ckpt) if ckpt else None,
        "config": {
            "interval": cfg.interval,
            "episode_seconds": cfg.episode_seconds,
            "load": cfg.load,
        },
    }
    (run_dir / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
