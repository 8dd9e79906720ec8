"""Saved SB3 models as controllers, whichever algorithm trained them.

PPO and A2C share SB3's actor-critic policy and act in the environment's MultiDiscrete space;
DQN acts in the macro action space of :mod:`agents.macro`, which is mapped back here, so
evaluation and validation run every learned policy through the same episodes.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.macro import env_action
from twin.errors import InputError

if TYPE_CHECKING:
    from agents.baselines import Controller
    from agents.env import MitigationEnv


def algo_of(path: Path | str) -> str:
    """``"dqn"`` for a DQN model, ``"actor_critic"`` for PPO or A2C, read from the zip's
    metadata (the module of its policy class) without loading torch."""
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
        module = str(data["policy_class"]["__module__"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a stable-baselines3 model ({exc})") from exc
    return "dqn" if ".dqn." in module else "actor_critic"


def load(path: Path | str) -> Any:
    """The SB3 model at ``path``, on the CPU."""
    from stable_baselines3 import DQN, PPO

    cls: Any = DQN if algo_of(path) == "dqn" else PPO
    return cls.load(str(path), device="cpu")


def controller(path: Path | str) -> Controller:
    """The deterministic action of the saved model at ``path``, as a controller."""
    from gymnasium import spaces

    model = load(path)
    macro = isinstance(model.action_space, spaces.Discrete)  # DQN: agents.macro's actions

    def act(obs: np.ndarray, env: MitigationEnv) -> np.ndarray:
        action = model.predict(obs, deterministic=True)[0]
        return env_action(int(action), obs, env) if macro else np.asarray(action, np.int64)

    return act
