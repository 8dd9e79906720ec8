"""RL over the twin: a Gymnasium environment whose episodes are fault scenarios.

Importing ``agents`` registers the environment with Gymnasium (when the ``rl`` extra is
installed), so ``gym.make("ShadowTwin/Mitigation-v0")`` works as for any Gymnasium
environment; the entry point is a string, so the environment's module (and the twin behind
it) loads only when an environment is made.
"""

from __future__ import annotations

ENV_ID = "ShadowTwin/Mitigation-v0"
INTERVAL_SECONDS = 5.0
"""Simulated seconds between decisions, by default."""
EPISODE_SECONDS = 90.0
"""Simulated seconds of an episode, by default: the time limit at registration."""


def register() -> None:
    """Register :data:`ENV_ID` with its time limit, as CartPole does (idempotent; nothing
    to do without gymnasium)."""
    try:
        import gymnasium as gym
    except ImportError:
        return
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="agents.env:MitigationEnv",
            max_episode_steps=round(EPISODE_SECONDS / INTERVAL_SECONDS),
        )


register()
