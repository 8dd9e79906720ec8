"""Train a mitigation policy with stable-baselines3 (PPO by default; A2C or DQN selectable).

PPO and A2C act in the environment's MultiDiscrete space; DQN, which needs a Discrete one,
acts through the macro actions of :mod:`agents.macro`.

Vectorised envs (one process each), seeded, periodic checkpoints, CSV and TensorBoard logs
(``logs/``) and a progress bar; ``resume`` continues from the newest checkpoint in the run
directory.

Recipe (``bc_episodes`` > 0): clone a teacher controller of :mod:`agents.baselines` on that
many training-draw episodes (actor and critic, :mod:`agents.imitation`), optionally refit on
the states the clone itself reaches (``dagger_rounds``), then fine-tune with PPO;
finally score the cloned start and every checkpoint on ``validation`` episodes drawn from the
training distribution with their own seed (never the held-out set) by the reward's own
price, violation minutes + cost x extra replica-minutes, and keep the best as ``model.zip``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from agents.env import EnvConfig, MitigationEnv
from agents.scenarios import weights_from_risk
from twin.errors import InputError
from twin.topology import Topology

ALGOS = ("ppo", "a2c", "dqn")
TEACHERS = ("adaptive", "reactive")
"""Controllers in agents.baselines a behaviour-cloning warm start can clone."""


def _make(cfg: EnvConfig, rank: int, seed: int, macro: bool = False) -> Any:
    def thunk() -> Any:
        from gymnasium.wrappers import TimeLimit

        from agents.macro import MacroActions

        env: Any = TimeLimit(MitigationEnv(cfg), max_episode_steps=cfg.max_steps)
        if macro:
            env = MacroActions(env)
        env.reset(seed=seed + rank)
        return env

    return thunk


def _latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted(
        (run_dir / "checkpoints").glob("model_*_steps.zip"),
        key=lambda p: int(p.stem.split("_")[1]),
    )
    return found[-1] if found else None


def _score_job(args: tuple[str, EnvConfig, int, int]) -> dict[str, float]:
    """Validation figures of one model on training-distribution episodes (own seeds)."""
    import numpy as np

    from agents.evaluate import run_episode, training_faults
    from agents.models import controller

    path, cfg, n, seed = args
    act = controller(path)
    env = MitigationEnv(cfg)
    faults = training_faults(env, n, seed=seed)
    rows = [run_episode(env, act, f, seed=20_000 + seed + i) for i, f in enumerate(faults)]
    viol = float(np.mean([r["slo_violation_minutes"] for r in rows]))
    rs = float(np.mean([r["replica_seconds"] for r in rows]))
    return {"violation_minutes": viol, "replica_seconds": rs}


def _select(run_dir: Path, cfg: EnvConfig, n: int, seed: int, procs: int) -> dict[str, Any]:
    """Score every checkpoint and the final model on ``n`` validation episodes (training
    draws, seed 99,000 + seed: not the held-out set, not the BC or PPO episodes) by
    violation minutes + cost x extra replica-minutes; the lowest wins."""
    from multiprocessing import get_context

    env = MitigationEnv(cfg)
    base = sum(env.base_replicas.values()) * cfg.max_steps * cfg.interval
    paths = [*sorted((run_dir / "checkpoints").glob("model_*_steps.zip")), run_dir / "model.zip"]
    jobs = [(str(p), cfg, n, 99_000 + seed) for p in paths]
    with get_context("spawn").Pool(max(1, procs)) as pool:
        scores = pool.map(_score_job, jobs, chunksize=1)
    table: list[dict[str, Any]] = []
    for p, sc in zip(paths, scores, strict=True):
        price = sc["violation_minutes"] + cfg.weights.cost * (sc["replica_seconds"] - base) / 60
        table.append({"path": str(p), **sc, "score": price})
    best = min(table, key=lambda r: r["score"])
    return {**best, "candidates": table, "episodes": n}


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
    bc_episodes: int = 0,
    bc_epochs: int = 200,
    validation: int = 0,
    learning_rate: float = 3e-4,
    teacher: str = "adaptive",
    dagger_rounds: int = 0,
    dagger_episodes: int = 48,
) -> Path:
    """Train for ``steps`` env steps; writes ``run_dir/model.zip`` and returns its path."""
    if algo not in ALGOS:
        raise InputError(f"--algo: expected one of {', '.join(ALGOS)}, got {algo!r}")
    if steps <= 0 or n_envs <= 0:
        raise InputError(f"--steps ({steps}) and --envs ({n_envs}) must be positive")
    if dagger_rounds < 0 or dagger_episodes <= 0:
        raise InputError(
            f"--dagger-rounds ({dagger_rounds}) must be >= 0 and --dagger-episodes "
            f"({dagger_episodes}) positive"
        )
    if dagger_rounds > 0 and bc_episodes <= 0:
        raise InputError("--dagger-rounds: needs a cloned start (--bc-episodes > 0)")
    if teacher not in TEACHERS:
        raise InputError(f"--teacher: expected one of {', '.join(TEACHERS)}, got {teacher!r}")
    if algo == "dqn" and bc_episodes > 0:
        raise InputError(
            "--algo dqn: the behaviour-cloning warm start fits an actor-critic policy; "
            "use ppo or a2c with --bc-episodes"
        )
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    cfg = config or EnvConfig()
    if cfg.faults_from is not None:  # refused here, not in a worker process
        weights_from_risk(Path(cfg.faults_from), Topology.load(cfg.topology))
    run_dir.mkdir(parents=True, exist_ok=True)
    fns = [_make(cfg, i, seed, macro=algo == "dqn") for i in range(n_envs)]
    venv = VecMonitor(SubprocVecEnv(fns) if n_envs > 1 else DummyVecEnv(fns))
    venv.seed(seed)
    cls: Any = {"ppo": PPO, "a2c": A2C, "dqn": DQN}[algo]
    ckpt = _latest_checkpoint(run_dir) if resume else None
    if ckpt is not None:
        model = cls.load(str(ckpt), env=venv, device="cpu")
    else:
        kw: dict[str, Any] = {"n_steps": 128, "batch_size": 64} if algo == "ppo" else {}
        if algo == "dqn":
            # episodes are 18 decisions: learn early, a replay buffer that fits in memory
            kw = {
                "buffer_size": 50_000,
                "learning_starts": 256,
                "train_freq": 4,
                "target_update_interval": 512,
                "exploration_fraction": 0.3,
            }
        if algo == "ppo" and bc_episodes > 0:
            # fine-tuning a cloned policy: small, clipped steps keep PPO near the teacher
            kw = {"n_steps": 256, "batch_size": 128, "n_epochs": 5, "clip_range": 0.1}
        model = cls(
            "MlpPolicy",
            venv,
            seed=seed,
            device="cpu",
            verbose=0,
            learning_rate=learning_rate,
            **kw,
        )
    t0 = time.perf_counter()
    bc: dict[str, Any] | None = None
    if ckpt is None and bc_episodes > 0:
        import numpy as np

        from agents import baselines
        from agents.imitation import clone, dagger, parallel_rollouts

        make_teacher = getattr(baselines, teacher)
        data = parallel_rollouts(cfg, make_teacher, bc_episodes, seed=10_000 + seed, procs=n_envs)
        agree = clone(model, data, bc_epochs, seed)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        data, rounds = dagger(
            model,
            cfg,
            make_teacher,
            data,
            dagger_rounds,
            dagger_episodes,
            bc_epochs,
            seed=30_000 + seed,
            procs=n_envs,
            scratch=run_dir / "checkpoints",
        )
        np.savez_compressed(
            run_dir / "bc_data.npz",
            obs=data["obs"],
            actions=data["actions"],
            returns=data["returns"],
        )
        model.save(str(run_dir / "checkpoints" / "model_0_steps.zip"))
        bc = {
            "teacher": teacher,
            "episodes": bc_episodes,
            "samples": len(data["obs"]),
            "epochs": bc_epochs,
            "agreement": rounds[-1]["fit_agreement"] if rounds else agree,
            "dagger": rounds,
            "seconds": time.perf_counter() - t0,
        }
    model.set_logger(configure(str(run_dir / "logs"), ["csv", "tensorboard", "stdout"]))
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
    venv.close()
    path = run_dir / "model.zip"
    model.save(str(path))
    chosen: dict[str, Any] | None = None
    if validation > 0:
        chosen = _select(run_dir, cfg, validation, seed, n_envs)
        if Path(chosen["path"]) != path:
            shutil.copyfile(chosen["path"], path)
    wall = time.perf_counter() - t0
    meta = {
        "algo": algo,
        "steps": int(model.num_timesteps),
        "n_envs": n_envs,
        "seed": seed,
        "wall_seconds": wall,
        "ppo_seconds": time.perf_counter() - t,
        "behaviour_cloning": bc,
        "selection": chosen,
        "learning_rate": learning_rate,
        "resumed_from": str(ckpt) if ckpt else None,
        "config": {
            "interval": cfg.interval,
            "episode_seconds": cfg.episode_seconds,
            "load": cfg.load,
            "fidelity": cfg.fidelity,
            # the fault model: None is the uniform catalogue; a risk file, with its digest
            "faults_from": None
            if cfg.faults_from is None
            else {
                "path": cfg.faults_from,
                "sha256": hashlib.sha256(Path(cfg.faults_from).read_bytes()).hexdigest(),
            },
        },
    }
    (run_dir / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
