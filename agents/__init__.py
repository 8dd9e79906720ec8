"""RL over the twin: a Gymnasium environment whose episodes are fault scenarios.

Import ``agents.env`` for the environment (needs the ``rl`` extra: gymnasium).
"""
