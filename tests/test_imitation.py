"""Behaviour cloning and dataset aggregation (DAgger) of the RL warm start (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from agents.baselines import no_mitigation, reactive
from agents.env import EnvConfig, MitigationEnv
from agents.imitation import rollouts

SMALL = EnvConfig(episode_seconds=20.0, interval=5.0, load=0.3)


def test_student_rollouts_follow_the_student_and_carry_the_teachers_labels() -> None:
    data = rollouts(SMALL, reactive(), 2, seed=7, student=no_mitigation())
    env = MitigationEnv(SMALL)
    teacher, student = reactive(), no_mitigation()
    seen, labels, agree = [], [], []
    for ep in range(2):
        obs, _ = env.reset(seed=7 + ep)
        done = False
        while not done:
            seen.append(obs)
            labels.append(teacher(obs, env))
            taken = student(obs, env)
            agree.append(bool(np.array_equal(labels[-1], taken)))
            obs, _, term, trunc, _ = env.step(taken)
            done = term or trunc
    np.testing.assert_array_equal(data["obs"], np.asarray(seen, dtype=np.float32))
    np.testing.assert_array_equal(data["actions"], np.asarray(labels))
    np.testing.assert_array_equal(data["agree"], np.asarray(agree))
    # the reactive teacher's knobs differ from no mitigation's, so it never agrees
    assert not data["agree"].any()


def test_teacher_rollouts_agree_with_themselves() -> None:
    data = rollouts(SMALL, reactive(), 1, seed=3)
    assert data["agree"].all() and len(data["obs"]) == SMALL.max_steps


def test_dagger_rounds_add_the_clones_states_and_record_its_agreement(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from agents.train import TrainConfig, train

    train(
        TrainConfig(
            run_dir=tmp_path,
            steps=64,
            n_envs=1,
            env=SMALL,
            progress=False,
            checkpoint_every=64,
            bc_episodes=2,
            bc_epochs=30,
            dagger_rounds=2,
            dagger_episodes=2,
        )
    )
    bc = json.loads((tmp_path / "training.json").read_text())["behaviour_cloning"]
    steps = SMALL.max_steps
    assert [r["samples"] for r in bc["dagger"]] == [2 * steps, 2 * steps]
    assert bc["samples"] == 6 * steps
    assert all(0.0 <= r["agreement"] <= 1.0 for r in bc["dagger"])
    assert len(np.load(tmp_path / "bc_data.npz")["obs"]) == 6 * steps
    assert not list((tmp_path / "checkpoints").glob("dagger_*.zip"))  # scratch models removed


def test_dagger_without_a_cloned_start_is_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from agents.train import TrainConfig

    with pytest.raises(ValidationError, match="dagger_rounds needs a cloned start"):
        TrainConfig(run_dir=tmp_path, steps=64, n_envs=1, env=SMALL, dagger_rounds=1)
    assert not (tmp_path / "training.json").exists()
