"""The Discrete macro action space for DQN (agents/macro.py) and DQN end to end (issue 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from agents import macro
from agents import spaces as sp
from agents.env import EnvConfig, MitigationEnv

SMALL = EnvConfig(episode_seconds=20.0, interval=5.0, load=0.3)


def _obs(util: list[float]) -> np.ndarray:
    obs = np.zeros((len(util), sp.FEATURES), dtype=np.float32)
    obs[:, 2] = util
    return obs.reshape(-1)


def test_every_macro_action_decodes_to_a_distinct_valid_action() -> None:
    env = MitigationEnv(SMALL)
    obs, _ = env.reset(seed=0)
    replicas = [env.replicas[s] for s in env.services]
    seen = set()
    for a in range(macro.N_ACTIONS):
        mode, queue, knobs = macro.decode(a)
        seen.add((mode, queue, knobs))
        multi = macro.to_multi(a, obs, replicas, replicas)
        assert env.action_space.contains(multi)
        assert tuple(multi[-len(sp.GLOBAL) :]) == knobs
        assert set(multi[1 : 2 * env.n : 2]) == {queue}
    assert len(seen) == macro.N_ACTIONS == 486
    with pytest.raises(ValueError, match="outside"):
        macro.decode(macro.N_ACTIONS)


def test_up_scales_only_warm_services_and_down_only_those_that_stay_cool() -> None:
    util = [0.95, 0.8, 0.79, 0.3, 0.5]
    replicas, base = [1, 2, 1, 2, 2], [1, 1, 1, 1, 1]
    up = macro.to_multi(
        np.ravel_multi_index((1, 0, 0, 0, 0, 0), macro.SHAPE), _obs(util), replicas, base
    )
    assert [sp.REPLICA_DELTAS[d] for d in up[0:10:2]] == [1, 1, 0, 0, 0]
    down = macro.to_multi(
        np.ravel_multi_index((2, 0, 0, 0, 0, 0), macro.SHAPE), _obs(util), replicas, base
    )
    # service 3: 0.3 x 2 / 1 = 0.6 < 0.7 drops; service 4: 0.5 x 2 = 1.0 stays; at base: never
    assert [sp.REPLICA_DELTAS[d] for d in down[0:10:2]] == [0, 0, 0, -1, 0]
    hold = macro.to_multi(0, _obs(util), replicas, base)
    assert [sp.REPLICA_DELTAS[d] for d in hold[0:10:2]] == [0] * 5


def test_wrapped_env_passes_the_gymnasium_checker_and_acts_like_the_mapped_action() -> None:
    from gymnasium.utils.env_checker import check_env

    wrapped = macro.MacroActions(MitigationEnv(SMALL))
    check_env(wrapped, skip_render_check=True)
    plain = MitigationEnv(SMALL)
    o1, _ = wrapped.reset(seed=5)
    o2, _ = plain.reset(seed=5)
    a = int(np.ravel_multi_index((1, 1, 2, 1, 0, 0), macro.SHAPE))
    for _ in range(SMALL.max_steps):
        multi = macro.to_multi(
            a,
            o2,
            [plain.replicas[s] for s in plain.services],
            [plain.base_replicas[s] for s in plain.services],
        )
        o1, r1, *_ = wrapped.step(np.int64(a))
        o2, r2, *_ = plain.step(multi)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


def test_dqn_trains_evaluates_through_the_macro_space_and_export_refuses_it(
    tmp_path: Path,
) -> None:
    pytest.importorskip("stable_baselines3")
    from pydantic import ValidationError

    from agents.evaluate import learned_controller, run_episode
    from agents.export.build import export_policy
    from agents.models import algo_of
    from agents.scenarios import FaultSpec
    from agents.train import TrainConfig, train
    from twin.errors import InputError

    path = train(
        TrainConfig(
            run_dir=tmp_path,
            steps=64,
            algo="dqn",
            n_envs=1,
            env=SMALL,
            progress=False,
            validation=1,
        )
    ).model
    assert algo_of(path) == "dqn"
    ctrl = learned_controller(tmp_path)
    assert ctrl is not None
    env = MitigationEnv(SMALL)
    fault = FaultSpec("outage", "cartservice", 5.0, 10.0, 1.0)
    row = run_episode(env, ctrl, fault, seed=1)
    assert row["replica_seconds"] > 0
    (tmp_path / "evaluation.json").write_text(
        '{"policies": {"learned": {"slo_violation_minutes": {"mean": 0}},'
        ' "no_mitigation": {"slo_violation_minutes": {"mean": 1}}}}'
    )
    with pytest.raises(InputError, match="DQN"):
        export_policy(tmp_path, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with pytest.raises(ValidationError, match="algo dqn"):
        TrainConfig(run_dir=tmp_path / "bc", steps=64, algo="dqn", env=SMALL, bc_episodes=1)
