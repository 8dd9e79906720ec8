"""Run controllers over fault scenarios and summarise with bootstrap confidence intervals.

Held-out scenarios are for this module's final comparison only; the static search scores
candidates on training draws (``training_faults``), never on held-out ones.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import (
    Controller,
    best_practice,
    no_mitigation,
    search_static,
    static,
    threshold,
)
from agents.env import EnvConfig, MitigationEnv
from agents.scenarios import FaultSpec
from twin.errors import InputError

METRICS = ("slo_violation_minutes", "replica_seconds", "goodput", "p99")


def run_episode(
    env: MitigationEnv, ctrl: Controller, fault: FaultSpec, seed: int
) -> dict[str, float]:
    """One episode's figures: violation minutes, replica-seconds, goodput (req/s), worst
    stretch p99 at the entries (seconds)."""
    obs, _ = env.reset(seed=seed, options={"fault": fault})
    viol = rs = ok = secs = 0.0
    worst = 0.0
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(ctrl(obs, env))
        done = term or trunc
        secs += info["seconds"]
        viol += info["seconds"] if info["violated"] else 0.0
        rs += info["replica_seconds"]
        for e in info["entries"].values():
            ok += e.get("succeeded", 0)
            p = e.get("latency", {}).get("p99")
            if p is not None and not math.isnan(p):
                worst = max(worst, float(p))
    return {
        "slo_violation_minutes": viol / 60.0,
        "replica_seconds": rs,
        "goodput": ok / secs if secs else 0.0,
        "p99": worst,
    }


def ci(values: list[float], seed: int = 0, n: int = 2000) -> dict[str, float]:
    """Mean with a 95% percentile-bootstrap interval (seeded: same input, same interval)."""
    a = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, len(a), size=(n, len(a)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(a.mean()), "lo": float(lo), "hi": float(hi)}


def evaluate(env: MitigationEnv, ctrl: Controller, faults: tuple[FaultSpec, ...]) -> dict[str, Any]:
    """Per-scenario figures and their summaries; scenario i runs with seed i for every
    controller (common random numbers make the comparison paired)."""
    rows = [run_episode(env, ctrl, f, seed=i) for i, f in enumerate(faults)]
    summary = {m: ci([r[m] for r in rows]) for m in METRICS}
    return {**summary, "per_scenario": rows}


def training_faults(env: MitigationEnv, n: int, seed: int) -> tuple[FaultSpec, ...]:
    rng = np.random.default_rng(seed)
    return tuple(env.catalogue.sample_training(rng) for _ in range(n))


def baselines(env: MitigationEnv, search: int = 12, search_faults: int = 6) -> dict[str, Any]:
    """The four baseline controllers; the static search is scored on training draws."""
    train = training_faults(env, search_faults, seed=1)

    def score(c: Controller) -> float:
        rows = [run_episode(env, c, f, seed=1000 + i) for i, f in enumerate(train)]
        return float(np.mean([r["slo_violation_minutes"] for r in rows]))

    best, tried = search_static(score, search, seed=2)
    return {
        "no_mitigation": (no_mitigation(), None),
        "best_practice": (best_practice(), None),
        "threshold": (threshold(), None),
        "best_static": (static(*best), {"knobs": list(best), "tried": [list(t) for t in tried]}),
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write via a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot(result: dict[str, Any], path: Path) -> None:
    """Bar chart of mean SLO-violation minutes and replica-seconds with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["policies"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("slo_violation_minutes", "replica_seconds"), strict=True):
        s = [result["policies"][n][metric] for n in names]
        means = [x["mean"] for x in s]
        err = [
            [m - x["lo"] for m, x in zip(means, s, strict=True)],
            [x["hi"] - m for m, x in zip(means, s, strict=True)],
        ]
        ax.bar(names, means, yerr=err, capsize=4)
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def learned_controller(policy_dir: Path) -> Controller | None:
    """The SB3 model in ``policy_dir/model.zip`` as a controller, if there is one."""
    model_path = policy_dir / "model.zip"
    if not model_path.exists():
        return None
    from stable_baselines3 import PPO

    model = PPO.load(str(model_path), device="cpu")

    def act(obs: np.ndarray, env: MitigationEnv) -> np.ndarray:
        action, _state = model.predict(obs, deterministic=True)
        return np.asarray(action, dtype=np.int64)

    return act


def run(
    policy_dir: Path, out: Path, config: EnvConfig | None = None, search: int = 12
) -> dict[str, Any]:
    """Evaluate baselines (and the learned policy if ``policy_dir`` has one) on the held-out
    scenarios; write ``out/evaluation.json`` and ``out/evaluation.png``."""
    if not policy_dir.is_dir():
        raise InputError(f"{policy_dir}: not a directory (expected a policy directory)")
    env = MitigationEnv(config)
    held = env.catalogue.held_out
    ctrls = baselines(env, search=search)
    learned = learned_controller(policy_dir)
    if learned is not None:
        ctrls["learned"] = (learned, None)
    result: dict[str, Any] = {
        "topology": env.topology.name,
        "config": {
            "interval": env.cfg.interval,
            "episode_seconds": env.cfg.episode_seconds,
            "load": env.cfg.load,
        },
        "held_out_scenarios": [f.__dict__ for f in held],
        "policies": {},
    }
    for name, (ctrl, extra) in ctrls.items():
        res = evaluate(env, ctrl, held)
        if extra is not None:
            res["search"] = extra
        result["policies"][name] = res
    write_json_atomic(out / "evaluation.json", result)
    plot(result, out / "evaluation.png")
    return result
