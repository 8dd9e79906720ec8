"""Baselines, evaluation summaries and the CLI's bad-input path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from agents.baselines import STATIC_GRID, best_practice, no_mitigation, search_static, threshold
from agents.env import MitigationEnv
from agents.evaluate import ci, evaluate, training_faults
from agents.scenarios import FaultSpec

FAST = {"episode_seconds": 30.0, "interval": 5.0, "load": 0.3}


def test_ci_brackets_mean_and_is_seeded() -> None:
    vals = [1.0, 2.0, 3.0, 10.0]
    a, b = ci(vals), ci(vals)
    assert a == b
    assert a["lo"] <= a["mean"] <= a["hi"]
    assert a["mean"] == pytest.approx(4.0)
    assert ci([5.0] * 6) == {"mean": 5.0, "lo": 5.0, "hi": 5.0}


def test_outage_counts_violation_minutes_and_mitigations_change_figures() -> None:
    env = MitigationEnv(**FAST)
    out = FaultSpec("outage", "cartservice", 10.0, 20.0, 1.0)
    none = evaluate(env, no_mitigation(), (out,))
    assert none["slo_violation_minutes"]["mean"] > 0.0
    quiet = evaluate(env, no_mitigation(), (FaultSpec("latency", "emailservice", 10, 20, 0.1),))
    assert quiet["slo_violation_minutes"]["mean"] < none["slo_violation_minutes"]["mean"]
    slow_ads = (FaultSpec("latency", "adservice", 5.0, 30.0, 1.0),)
    bp = evaluate(env, best_practice(), slow_ads)
    # a 0.5 s timeout (best practice) caps the 1 s ad delay the 1 s timeout lets through
    assert bp["p99"]["mean"] < evaluate(env, no_mitigation(), slow_ads)["p99"]["mean"]


def test_threshold_scales_up_hot_services_only() -> None:
    env = MitigationEnv(**FAST)
    env.reset(seed=0)
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    obs[2] = 0.95  # utilisation of the first service
    act = threshold()(obs, env)
    assert act[0] == 2 and all(act[2 * i] == 1 for i in range(1, env.n))
    assert env.action_space.contains(act)


def test_static_search_picks_lowest_score_and_training_draws_avoid_held_out() -> None:
    calls: list[int] = []

    def score(c: object) -> float:
        calls.append(1)
        return 10.0 - len(calls)  # later candidates score lower (better)

    best, tried = search_static(score, 5, seed=0)
    assert best == tried[-1][0] and len(tried) == 5 and best in STATIC_GRID
    env = MitigationEnv(**FAST)
    assert not any(env.catalogue.is_held_out(f) for f in training_faults(env, 200, seed=1))


def test_evaluate_cli_rejects_missing_dir(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a directory" in res.output
    assert not (tmp_path / "evaluation.json").exists()


def test_train_config_refuses_an_unknown_algo_or_teacher_naming_the_field(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from agents.train import TrainConfig

    with pytest.raises(ValidationError, match=r"algo\n.*'ppo', 'a2c' or 'dqn'"):
        TrainConfig(run_dir=tmp_path, steps=10, algo="sac")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"teacher\n.*'adaptive' or 'reactive'"):
        TrainConfig(run_dir=tmp_path, steps=10, teacher="oracle")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"steps\n.*greater than 0"):
        TrainConfig(run_dir=tmp_path, steps=0)
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_tiny_training_checkpoints_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from agents.env import EnvConfig
    from agents.train import TrainConfig, train

    cfg = EnvConfig(episode_seconds=10.0, interval=5.0, load=0.2)
    first = TrainConfig(
        run_dir=tmp_path, steps=128, n_envs=1, env=cfg, progress=False, checkpoint_every=64
    )
    result = train(first)
    path = result.model
    assert result.steps == 128 and result.resumed_from is None
    assert path.exists() and (tmp_path / "logs" / "progress.csv").exists()
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))  # TensorBoard
    assert list((tmp_path / "checkpoints").glob("model_*_steps.zip"))
    again = train(first.model_copy(update={"resume": True}))
    meta = json.loads(again.training_json.read_text())
    assert meta["resumed_from"] is not None and meta["steps"] >= 256
    assert again.resumed_from is not None and again.steps == meta["steps"]
