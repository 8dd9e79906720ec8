"""Behaviour-cloning warm start: fit an SB3 actor-critic to a teacher controller's episodes.

Why: PPO from scratch needs far more DES episodes than 30 minutes on 2 cores give (the
request-level twin runs ~20 decisions/s). Cloning a reactive teacher (``baselines.reactive``
or ``adaptive``) gives PPO a sensible start; the critic is fitted to the teacher's discounted
returns too, so the first PPO updates see meaningful advantages instead of tearing the actor
down.
Teacher episodes are drawn from the training distribution only.

A clone trained on the teacher's states alone drifts: one wrong step (dropping a replica the
teacher would keep) leads to states the teacher never visited, where it has no example.
:func:`dagger` (dataset aggregation, Ross, Gordon & Bagnell 2011) rolls the clone out, asks
the teacher what it would have done in every state the clone reached, and refits on all of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import Controller
from agents.env import EnvConfig, MitigationEnv
from agents.models import controller


def rollouts(
    cfg: EnvConfig,
    teacher: Controller,
    episodes: int,
    seed: int,
    student: Controller | None = None,
) -> dict[str, np.ndarray]:
    """``episodes`` episodes on training draws: observations, the teacher's action in each,
    and the discounted return-to-go (gamma 0.99, as PPO's default) of every step. The
    ``student``, if given, chooses the actions taken (the teacher only labels), and
    ``agree`` says per step whether the two chose the same action vector."""
    env = MitigationEnv(cfg)
    obs_l: list[np.ndarray] = []
    act_l: list[np.ndarray] = []
    ret_l: list[float] = []
    agree_l: list[bool] = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        rewards: list[float] = []
        done = False
        while not done:
            a = teacher(obs, env)
            taken = a if student is None else student(obs, env)
            obs_l.append(obs)
            act_l.append(a)
            agree_l.append(bool(np.array_equal(a, taken)))
            obs, r, term, trunc, _ = env.step(taken)
            rewards.append(float(r))
            done = term or trunc
        g = 0.0
        out = []
        for r in reversed(rewards):
            g = r + 0.99 * g
            out.append(g)
        ret_l += out[::-1]
    return {
        "obs": np.asarray(obs_l, dtype=np.float32),
        "actions": np.asarray(act_l, dtype=np.int64),
        "returns": np.asarray(ret_l, dtype=np.float32),
        "agree": np.asarray(agree_l, dtype=bool),
    }


def _rollouts_job(
    args: tuple[EnvConfig, Callable[[], Controller], int, int, str | None],
) -> dict[str, np.ndarray]:
    cfg, make, episodes, seed, student = args
    return rollouts(cfg, make(), episodes, seed, None if student is None else controller(student))


def parallel_rollouts(
    cfg: EnvConfig,
    teacher: Callable[[], Controller],
    episodes: int,
    seed: int,
    procs: int,
    student: str | None = None,
) -> dict[str, np.ndarray]:
    """:func:`rollouts` split over ``procs`` processes (disjoint episode seeds); ``teacher``
    builds the controller (a module-level factory, so it pickles); ``student`` is the path of
    a saved model that chooses the actions."""
    if procs <= 1:
        return _rollouts_job((cfg, teacher, episodes, seed, student))
    from multiprocessing import get_context

    share = [episodes // procs + (1 if i < episodes % procs else 0) for i in range(procs)]
    starts = np.cumsum([0, *share[:-1]])
    jobs = [
        (cfg, teacher, n, seed + int(s), student) for n, s in zip(share, starts, strict=True) if n
    ]
    with get_context("spawn").Pool(len(jobs)) as pool:
        parts = pool.map(_rollouts_job, jobs)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def clone(
    model: Any,
    data: dict[str, np.ndarray],
    epochs: int,
    seed: int,
    lr: float = 1e-3,
    balance: float = 0.5,
) -> float:
    """Fit the actor (class-balanced cross-entropy on the teacher's actions) and the critic
    (squared error on the returns) of an SB3 ActorCriticPolicy with a MultiDiscrete action
    space; returns the final agreement rate (whole action vectors).

    Balanced because the teacher's decisive actions are rare (it scales a service in a few
    steps of a few episodes, and holds otherwise): plain cross-entropy clones "always hold".
    Each action dimension's value is weighted by its inverse frequency to the power
    ``balance`` (0: plain cross-entropy; 0.5: inverse square root).
    """
    import torch

    policy = model.policy
    gen = torch.Generator().manual_seed(seed)
    obs = torch.as_tensor(data["obs"])
    acts = torch.as_tensor(data["actions"])
    rets = torch.as_tensor(data["returns"])
    dims = [int(k) for k in model.action_space.nvec]
    weights = torch.ones(acts.shape, dtype=torch.float32)
    for d, k in enumerate(dims):
        counts = torch.bincount(acts[:, d], minlength=k).float()
        w = torch.where(counts > 0, (len(acts) / (k * counts.clamp(min=1))) ** balance, 0.0)
        weights[:, d] = w[acts[:, d]]
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    n = len(obs)
    policy.set_training_mode(True)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, 256):
            idx = perm[i : i + 256]
            dist = policy.get_distribution(obs[idx])
            logp = torch.stack(
                [cat.log_prob(acts[idx, d]) for d, cat in enumerate(dist.distribution)],
                dim=1,
            )
            values = policy.predict_values(obs[idx]).flatten()
            loss = -(weights[idx] * logp).sum(dim=1).mean() + 0.5 * torch.mean(
                (values - rets[idx]) ** 2
            )
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        pred, _ = policy.predict(data["obs"], deterministic=True)
    return float(np.mean(np.all(pred == data["actions"], axis=1)))


def dagger(
    model: Any,
    cfg: EnvConfig,
    teacher: Callable[[], Controller],
    data: dict[str, np.ndarray],
    rounds: int,
    episodes: int,
    epochs: int,
    seed: int,
    procs: int,
    scratch: Path,
) -> tuple[dict[str, np.ndarray], list[dict[str, float]]]:
    """``rounds`` of dataset aggregation after :func:`clone`: roll the current model out on
    ``episodes`` fresh training draws per round (seeds ``seed + round x 1,000``), label every
    state it reached with the teacher's action, and refit on the union. Returns the
    aggregated data and, per round, the share of the clone's own steps on which it chose
    what the teacher would have (measured before that round's refit)."""
    history: list[dict[str, float]] = []
    for k in range(rounds):
        path = scratch / f"dagger_{k}.zip"
        model.save(str(path))
        new = parallel_rollouts(cfg, teacher, episodes, seed + 1_000 * k, procs, str(path))
        history.append(
            {"round": k, "samples": len(new["obs"]), "agreement": float(new["agree"].mean())}
        )
        data = {key: np.concatenate([data[key], new[key]]) for key in data}
        history[-1]["fit_agreement"] = clone(model, data, epochs, seed + k + 1)
        path.unlink()
    return data, history
