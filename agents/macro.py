"""A Discrete action space over the mitigation environment, for value-based agents (DQN).

SB3's DQN needs a Discrete space; the environment's MultiDiscrete product (three replica
deltas and three queue levels per service, then the global knobs) has 3^22 x 54 joint
actions on Online Boutique, far too many to enumerate. A macro action keeps every global
knob exact and turns scaling into a rule the agent switches on:

- ``hold``: no replica changes;
- ``up``: one more replica for every service at ``WARM`` utilisation or above;
- ``down``: one fewer for every service above its topology's count whose load would stay
  under ``DOWN`` on one replica less (utilisation x r / (r - 1));

times the queue-limit level (the same for every service), timeout, retries, breaker and rate
limit levels: 3 x 3 x 3 x 3 x 2 x 3 = 486 actions whatever the topology's size. The rule reads
the last observation, so the agent decides *when* to scale and which knobs to hold, and the
rule decides *which* services.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents import spaces as sp
from agents.baselines import scale_deltas

if TYPE_CHECKING:
    from agents.env import MitigationEnv

SCALE_MODES = ("hold", "up", "down")
WARM = 0.8
"""Utilisation at or above which ``up`` adds a replica."""
DOWN = 0.7
"""``down`` removes a replica when the rest would stay under this utilisation."""
SHAPE = (len(SCALE_MODES), len(sp.QUEUE_LIMITS), *sp.GLOBAL)
N_ACTIONS = int(np.prod(SHAPE))


def decode(action: int) -> tuple[int, int, tuple[int, ...]]:
    """(scale mode, queue level, global knob levels) of a macro action index."""
    if not 0 <= int(action) < N_ACTIONS:
        raise ValueError(f"macro action {action} outside [0, {N_ACTIONS})")
    mode, queue, *knobs = (int(x) for x in np.unravel_index(int(action), SHAPE))
    return mode, queue, tuple(knobs)


def to_multi(
    action: int, obs: np.ndarray, replicas: Sequence[int], base: Sequence[int]
) -> np.ndarray:
    """The environment's MultiDiscrete action for a macro action in the state ``obs``
    (services in the environment's order, with their current and topology replica counts)."""
    mode, queue, knobs = decode(action)
    util = sp.per_service(obs, len(replicas))[:, sp.Feature.UTILIZATION]
    deltas = scale_deltas(
        util,
        replicas,
        base,
        up=SCALE_MODES[mode] == "up",
        down=SCALE_MODES[mode] == "down",
        warm=WARM,
        cool=DOWN,
    )
    return sp.compose(deltas, queue, knobs)


def env_action(action: int, obs: np.ndarray, env: MitigationEnv) -> np.ndarray:
    """:func:`to_multi` with the replica counts of ``env``'s current state."""
    return to_multi(
        action,
        obs,
        [env.replicas[s] for s in env.services],
        [env.base_replicas[s] for s in env.services],
    )


class MacroActions(gym.ActionWrapper[np.ndarray, np.int64, np.ndarray]):
    """The environment seen through :data:`N_ACTIONS` macro actions (module docstring)."""

    def __init__(self, env: gym.Env[np.ndarray, np.ndarray]) -> None:
        super().__init__(env)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, r, term, trunc, info = super().step(action)
        self._obs = obs
        return obs, float(r), term, trunc, info

    def action(self, action: np.int64) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("macro actions: step() called before reset()")
        return env_action(int(action), self._obs, cast("MitigationEnv", self.env.unwrapped))
