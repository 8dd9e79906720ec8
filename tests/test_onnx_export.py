"""ONNX export agrees with SB3's deterministic predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("onnxruntime")

from agents.env import MitigationEnv
from agents.export.onnx_export import agreement, export_onnx
from twin.errors import InputError


def test_onnx_matches_torch_on_1000_observations(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    env = MitigationEnv(episode_seconds=10.0, interval=5.0, load=0.2)
    model = PPO("MlpPolicy", env, seed=3, device="cpu", n_steps=16, batch_size=16)
    model.learn(16)  # one update, so the weights are not the initial ones
    zip_path = tmp_path / "model.zip"
    model.save(str(zip_path))
    onnx_path = export_onnx(zip_path, tmp_path / "policy.onnx")
    assert onnx_path.exists()
    assert agreement(zip_path, onnx_path, n=1000) >= 0.999
    # the check is not vacuous: the policy's actions vary with the observation
    obs = np.random.default_rng(0).uniform(0, 1, (200, *env.observation_space.shape))
    acts, _ = model.predict(obs.astype(np.float32), deterministic=True)
    assert len({tuple(a) for a in acts}) > 1


def test_missing_model_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such model"):
        export_onnx(tmp_path / "nope.zip", tmp_path / "p.onnx")
