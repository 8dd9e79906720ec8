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
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.env import EnvConfig, MitigationEnv
from agents.scenarios import weights_from_risk
from twin.topology import Topology

Algo = Literal["ppo", "a2c", "dqn"]
Teacher = Literal["adaptive", "reactive"]
ALGOS: tuple[str, ...] = get_args(Algo)
TEACHERS: tuple[str, ...] = get_args(Teacher)
"""Controllers in agents.baselines a behaviour-cloning warm start can clone."""


class TrainConfig(BaseModel):
    """One training run, checked before anything starts so a bad value costs no compute.

    The defaults are the library's; the committed policy's recipe (docs/agents.md) sets
    ``steps=8192, teacher="reactive", bc_episodes=96, dagger_rounds=4, validation=16,
    learning_rate=1e-4, checkpoint_every=4096``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_dir: Path = Field(description="folder for model.zip, training.json, checkpoints, logs")
    steps: int = Field(gt=0, description="environment steps of the RL phase (all envs)")
    algo: Algo = Field(default="ppo", description="dqn acts through agents.macro's actions")
    n_envs: int = Field(default=2, ge=1, description="vectorised environments, one process each")
    seed: int = Field(default=0, ge=0, description="seeds the envs, the network and every draw")
    env: EnvConfig = Field(default_factory=EnvConfig, description="the episodes trained on")
    resume: bool = Field(default=False, description="continue from the newest checkpoint")
    progress: bool = Field(default=True, description="show a progress bar")
    checkpoint_every: int = Field(default=2048, ge=1, description="environment steps")
    bc_episodes: int = Field(
        default=0, ge=0, description="training-draw episodes of the teacher to clone (0: none)"
    )
    bc_epochs: int = Field(default=200, ge=1, description="behaviour-cloning epochs")
    validation: int = Field(
        default=0,
        ge=0,
        description="validation episodes that pick the best of the clone, the checkpoints and "
        "the final model (0: keep the final model)",
    )
    learning_rate: float = Field(default=3e-4, gt=0.0, description="optimiser step size")
    teacher: Teacher = Field(default="adaptive", description="the controller cloned")
    dagger_rounds: int = Field(
        default=0, ge=0, description="dataset-aggregation rounds after cloning (0: none)"
    )
    dagger_episodes: int = Field(default=48, ge=1, description="episodes per aggregation round")

    @model_validator(mode="after")
    def _coherent(self) -> TrainConfig:
        if self.dagger_rounds > 0 and self.bc_episodes <= 0:
            raise ValueError("dagger_rounds needs a cloned start (bc_episodes > 0)")
        if self.algo == "dqn" and self.bc_episodes > 0:
            raise ValueError(
                "algo dqn: the behaviour-cloning warm start fits an actor-critic policy; "
                "use ppo or a2c with bc_episodes"
            )
        return self


class TrainResult(BaseModel):
    """What a training run produced (also written to ``training.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Path = Field(description="the chosen model, run_dir/model.zip")
    training_json: Path = Field(description="the run's record, run_dir/training.json")
    steps: int = Field(description="environment steps the model has seen, resumed runs included")
    wall_seconds: float = Field(description="cloning, RL and selection")
    learn_seconds: float = Field(description="the RL phase and the selection after it")
    behaviour_cloning: dict[str, Any] | None = Field(
        description="teacher, samples, agreement and aggregation rounds; None without cloning"
    )
    selection: dict[str, Any] | None = Field(
        description="the validation table (score per candidate) and the pick; None without"
    )
    resumed_from: Path | None = Field(description="the checkpoint a resumed run started from")


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


def train(config: TrainConfig) -> TrainResult:
    """Train as ``config`` says; writes ``run_dir/model.zip`` and ``training.json``."""
    c = config
    run_dir, steps, algo, n_envs, seed = c.run_dir, c.steps, c.algo, c.n_envs, c.seed
    bc_episodes, bc_epochs, teacher = c.bc_episodes, c.bc_epochs, c.teacher
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    cfg = c.env
    if cfg.faults_from is not None:  # refused here, not in a worker process
        weights_from_risk(Path(cfg.faults_from), Topology.load(cfg.topology))
    run_dir.mkdir(parents=True, exist_ok=True)
    fns = [_make(cfg, i, seed, macro=algo == "dqn") for i in range(n_envs)]
    venv = VecMonitor(SubprocVecEnv(fns) if n_envs > 1 else DummyVecEnv(fns))
    venv.seed(seed)
    cls: Any = {"ppo": PPO, "a2c": A2C, "dqn": DQN}[algo]
    ckpt = _latest_checkpoint(run_dir) if c.resume else None
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
            learning_rate=c.learning_rate,
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
            c.dagger_rounds,
            c.dagger_episodes,
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
        max(1, c.checkpoint_every // n_envs), str(run_dir / "checkpoints"), name_prefix="model"
    )
    t = time.perf_counter()
    model.learn(
        total_timesteps=steps,
        callback=cb,
        progress_bar=c.progress,
        reset_num_timesteps=ckpt is None,
    )
    venv.close()
    path = run_dir / "model.zip"
    model.save(str(path))
    chosen: dict[str, Any] | None = None
    if c.validation > 0:
        chosen = _select(run_dir, cfg, c.validation, seed, n_envs)
        if Path(chosen["path"]) != path:
            shutil.copyfile(chosen["path"], path)
    wall = time.perf_counter() - t0
    learn = time.perf_counter() - t
    meta = {
        "algo": algo,
        "steps": int(model.num_timesteps),
        "n_envs": n_envs,
        "seed": seed,
        "wall_seconds": wall,
        "ppo_seconds": learn,
        "behaviour_cloning": bc,
        "selection": chosen,
        "learning_rate": c.learning_rate,
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
    record = run_dir / "training.json"
    record.write_text(json.dumps(meta, indent=2) + "\n")
    return TrainResult(
        model=path,
        training_json=record,
        steps=int(model.num_timesteps),
        wall_seconds=wall,
        learn_seconds=learn,
        behaviour_cloning=bc,
        selection=chosen,
        resumed_from=ckpt,
    )
