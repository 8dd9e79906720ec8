"""Importing ``agents`` registers the environment the way Gymnasium users expect: checked
in fresh interpreters, exactly as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gymnasium")

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with warnings as errors, this checkout first."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_gym_make_works_after_importing_agents() -> None:
    done = python(
        "import gymnasium as gym, agents\n"
        "env = gym.make('ShadowTwin/Mitigation-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "assert env.observation_space.contains(obs)\n"
        "print(env.spec.max_episode_steps)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["18"]


def test_the_time_limit_is_the_default_episode_in_decisions() -> None:
    import gymnasium as gym

    import agents
    from agents.env import EnvConfig

    spec = gym.spec(agents.ENV_ID)
    assert spec.max_episode_steps == EnvConfig().max_steps
    assert spec.entry_point == "agents.env:MitigationEnv"


def test_importing_agents_does_not_load_the_environment_or_the_twin() -> None:
    done = python(
        "import sys, agents\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('agents.', 'twin', 'torch')))\n"
        "print(loaded)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_importing_agents_twice_registers_once_without_warnings() -> None:
    done = python(
        "import importlib, gymnasium as gym, agents\n"
        "importlib.reload(agents)\n"
        "agents.register()\n"
        "print(sum(1 for k in gym.registry if k.startswith('ShadowTwin/')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]


def test_importing_agents_without_gymnasium_succeeds() -> None:
    done = python(
        "import sys\n"
        "sys.modules['gymnasium'] = None  # as if the rl extra were not installed\n"
        "import agents\n"
        "print(agents.ENV_ID)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ShadowTwin/Mitigation-v0"]
