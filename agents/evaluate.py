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
    adaptive,
    best_practice,
    no_mitigation,
    reactive,
    static,
    static_candidates,
    threshold,
)
from agents.env import EnvConfig, MitigationEnv
from agents.scenarios import FaultSpec
from twin.errors import InputError
from twin.results import EntryStretch

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
        entries: dict[str, EntryStretch] = info["entries"]
        for e in entries.values():
            ok += e.succeeded
            p = e.latency.p99
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


def paired(learned: dict[str, Any], other: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Learned vs another policy on the same scenarios (same seeds): the relative cut in
    violation minutes, 1 - sum(learned)/sum(other), and the replica-seconds ratio, each with
    a 95% paired percentile-bootstrap interval over scenarios (seeded)."""
    lv = np.array([r["slo_violation_minutes"] for r in learned["per_scenario"]])
    ov = np.array([r["slo_violation_minutes"] for r in other["per_scenario"]])
    lc = np.array([r["replica_seconds"] for r in learned["per_scenario"]])
    oc = np.array([r["replica_seconds"] for r in other["per_scenario"]])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(lv), size=(2000, len(lv)))
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = 1.0 - lv[idx].sum(axis=1) / ov[idx].sum(axis=1)
    cut = cut[np.isfinite(cut)]
    ratio = lc[idx].sum(axis=1) / oc[idx].sum(axis=1)
    diff = (ov - lv)[idx].mean(axis=1)

    def summary(point: float, boot: np.ndarray) -> dict[str, float]:
        lo, hi = np.percentile(boot, [2.5, 97.5]) if len(boot) else (math.nan, math.nan)
        return {"mean": float(point), "lo": float(lo), "hi": float(hi)}

    total = ov.sum()
    return {
        "violation_cut": summary(1.0 - lv.sum() / total if total else math.nan, cut),
        "violation_minutes_saved": summary(float((ov - lv).mean()), diff),
        "replica_seconds_ratio": summary(float(lc.sum() / oc.sum()), ratio),
    }


def training_faults(env: MitigationEnv, n: int, seed: int) -> tuple[FaultSpec, ...]:
    rng = np.random.default_rng(seed)
    return tuple(env.catalogue.sample_training(rng) for _ in range(n))


def _controller(spec: tuple[Any, ...]) -> Controller:
    """A controller from a picklable spec: ("no_mitigation",), ("best_practice",),
    ("threshold",), ("adaptive",), ("reactive",), ("static", knobs) or
    ("learned", policy_dir)."""
    kind = spec[0]
    if kind == "static":
        return static(*spec[1])
    if kind == "learned":
        ctrl = learned_controller(Path(spec[1]))
        if ctrl is None:
            raise InputError(f"{spec[1]}: no model.zip")
        return ctrl
    return {
        "no_mitigation": no_mitigation,
        "best_practice": best_practice,
        "threshold": threshold,
        "adaptive": adaptive,
        "reactive": reactive,
    }[kind]()


def _evaluate_job(
    args: tuple[EnvConfig | None, tuple[Any, ...], tuple[FaultSpec, ...], int],
) -> list[dict[str, float]]:
    cfg, spec, faults, seed0 = args
    env = MitigationEnv(cfg)
    ctrl = _controller(spec)
    return [run_episode(env, ctrl, f, seed=seed0 + i) for i, f in enumerate(faults)]


def _map(jobs: list[Any], procs: int) -> list[list[dict[str, float]]]:
    """Run evaluation jobs, in ``procs`` spawned processes when > 1 (the figures do not
    depend on it: every episode's seed is fixed by its scenario)."""
    if procs <= 1:
        return [_evaluate_job(j) for j in jobs]
    from multiprocessing import get_context

    with get_context("spawn").Pool(procs) as pool:
        return pool.map(_evaluate_job, jobs, chunksize=1)


def baselines(
    env: MitigationEnv, search: int = 12, search_faults: int = 14, procs: int = 1
) -> dict[str, Any]:
    """The baseline controllers as specs; the static search is scored on training draws."""
    train = training_faults(env, search_faults, seed=1)
    cands = static_candidates(search, seed=2)
    rows = _map([(env.cfg, ("static", c), train, 1000) for c in cands], procs)
    tried = [
        (c, float(np.mean([r["slo_violation_minutes"] for r in rr])))
        for c, rr in zip(cands, rows, strict=True)
    ]
    best = min(tried, key=lambda t: t[1])[0]  # first of the lowest, as search_static picks
    return {
        "no_mitigation": (("no_mitigation",), None),
        "best_practice": (("best_practice",), None),
        "threshold": (("threshold",), None),
        "adaptive": (("adaptive",), None),
        # the committed policy's teacher: how much of the teacher the clone keeps
        "reactive": (("reactive",), None),
        "best_static": (("static", best), {"knobs": list(best), "tried": [list(t) for t in tried]}),
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
    """The SB3 model in ``policy_dir/model.zip`` as a controller, if there is one (PPO, A2C
    or DQN, :mod:`agents.models`)."""
    model_path = policy_dir / "model.zip"
    if not model_path.exists():
        return None
    from agents.models import controller

    return controller(model_path)


def run(
    policy_dir: Path,
    out: Path,
    config: EnvConfig | None = None,
    search: int = 12,
    procs: int = 2,
) -> dict[str, Any]:
    """Evaluate baselines (and the learned policy if ``policy_dir`` has one) on the held-out
    scenarios; write ``out/evaluation.json`` and ``out/evaluation.png``."""
    if not policy_dir.is_dir():
        raise InputError(f"{policy_dir}: not a directory (expected a policy directory)")
    env = MitigationEnv(config)
    held = env.catalogue.held_out
    ctrls = baselines(env, search=search, procs=procs)
    if (policy_dir / "model.zip").exists():
        ctrls["learned"] = (("learned", str(policy_dir)), None)
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
    names = list(ctrls)
    rows_all = _map([(env.cfg, ctrls[n][0], held, 0) for n in names], procs)
    for name, rows in zip(names, rows_all, strict=True):
        res: dict[str, Any] = {m: ci([r[m] for r in rows]) for m in METRICS}
        res["per_scenario"] = rows
        extra = ctrls[name][1]
        if extra is not None:
            res["search"] = extra
        result["policies"][name] = res
    if "learned" in result["policies"]:
        result["paired"] = {
            name: paired(result["policies"]["learned"], result["policies"][name])
            for name in names
            if name != "learned"
        }
    write_json_atomic(out / "evaluation.json", result)
    plot(result, out / "evaluation.png")
    return result
