"""Fault model, scaling actions, reward alignment and the paired comparison of issue 7."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from agents import spaces as sp
from agents.baselines import adaptive, no_mitigation, reactive
from agents.env import MitigationEnv
from agents.evaluate import paired, run_episode
from agents.reward import RewardWeights, reward
from agents.scenarios import ENTRY_KINDS, KINDS, FaultSpec, scenario_for

FAST = {"episode_seconds": 30.0, "interval": 5.0, "load": 0.3}


def test_held_out_spans_demand_and_resource_faults_at_valid_targets() -> None:
    env = MitigationEnv(**FAST)
    held = env.catalogue.held_out
    kinds = {f.kind for f in held}
    assert kinds <= set(KINDS) and len(kinds) >= 5
    assert kinds & ENTRY_KINDS and kinds & {"cpu_exhaustion", "memory_leak"}
    for f in held:
        scen = scenario_for(f, 60.0, 5.0, 1.0, 60.0)
        scen.check_against(env.topology)  # every held-out fault is a valid twin fault
        if f.kind in ENTRY_KINDS:
            assert f.target == env.topology.workload[0].entry


def test_surge_rate_is_a_multiple_of_the_loaded_entry_rate() -> None:
    spec = FaultSpec("traffic_surge", "frontend", 10.0, 20.0, 1.5)
    for load in (0.3, 1.0):
        fault = scenario_for(spec, 60.0, 5.0, load, 60.0).faults[0]
        assert fault.rate == pytest.approx(1.5 * 60.0 * load)


def _ready(env: MitigationEnv, name: str) -> int:
    assert env.sim is not None
    return len(env.sim.services[name].routable)


def test_scale_out_serves_after_boot_and_return_to_base_drains() -> None:
    env = MitigationEnv(**FAST)
    env.reset(seed=0, options={"fault": None})
    i = env.services.index("frontend")
    up = sp.neutral_action(env.n)
    up[2 * i] = 2
    hold = sp.neutral_action(env.n)
    down = sp.neutral_action(env.n)
    down[2 * i] = 0
    env.step(up)
    env.step(hold)
    env.step(hold)  # 15 s > 10 s boot + the 1 s pinned-HPA period
    assert _ready(env, "frontend") == 2
    env.step(down)
    assert env.replicas["frontend"] == 1 and _ready(env, "frontend") == 1
    _, _, _, _, info = env.step(hold)
    assert info["replica_seconds"] == pytest.approx(env.n * 5.0)  # back to the base cost


def test_pure_violation_weights_make_the_return_minus_violation_minutes() -> None:
    w = RewardWeights(violation=1.0, cost=0.0, slo=0.0, churn=0.0)
    assert reward(w, 0.3, True, 50.0, 6.0, 3, 10) == pytest.approx(-0.1)
    assert reward(w, 0.3, False, 50.0, 6.0, 3, 10) == 0.0
    env = MitigationEnv(**FAST, weights=w)
    fault = FaultSpec("outage", "cartservice", 5.0, 20.0, 1.0)
    env.reset(seed=1, options={"fault": fault})
    total, done = 0.0, False
    while not done:
        _, r, term, trunc, _ = env.step(sp.neutral_action(env.n))
        total += r
        done = term or trunc
    figures = run_episode(env, no_mitigation(), fault, seed=1)
    assert figures["slo_violation_minutes"] > 0
    assert total == pytest.approx(-figures["slo_violation_minutes"])


def test_adaptive_scales_hot_service_once_per_boot_and_back_down() -> None:
    env = MitigationEnv(**FAST)
    env.reset(seed=0)
    ctrl = adaptive(target=0.6)
    hot = np.zeros(env.observation_space.shape, dtype=np.float32)
    hot[2] = 0.95  # first service's utilisation
    a = ctrl(hot, env)
    assert a[0] == 2 and all(a[2 * k] == 1 for k in range(1, env.n))
    env.replicas[env.services[0]] += 1
    env.steps = 1
    assert ctrl(hot, env)[0] == 1  # the new replica is still booting: wait
    env.steps = 3
    cold = np.zeros_like(hot)
    assert ctrl(cold, env)[0] == 0  # load gone: back towards the topology's count


def test_reactive_scales_only_while_something_saturates_and_drains_at_once() -> None:
    env = MitigationEnv(**FAST)
    env.reset(seed=0)
    ctrl = reactive()
    obs = np.zeros(env.observation_space.shape, dtype=np.float32).reshape(env.n, sp.FEATURES)
    obs[0, 2], obs[1, 2] = 0.9, 0.85  # busy, but nothing saturates: buying replicas is waste
    assert all(ctrl(obs.reshape(-1), env)[2 * k] == 1 for k in range(env.n))
    obs[0, 2] = 0.98  # now the first saturates: it and the warm second both get one more
    a = ctrl(obs.reshape(-1), env)
    assert a[0] == 2 and a[2] == 2 and all(a[2 * k] == 1 for k in range(2, env.n))
    env.replicas[env.services[0]] = 3
    obs[:] = 0.0
    obs[0, 2] = 0.4  # 3 replicas at 40% would be 2 at 60%: under 70%, drop one
    assert ctrl(obs.reshape(-1), env)[0] == 0
    obs[0, 2] = 0.5  # 2 at 75%: keep
    assert ctrl(obs.reshape(-1), env)[0] == 1


def test_paired_cut_is_zero_for_self_and_half_for_half() -> None:
    rows = [{"slo_violation_minutes": v, "replica_seconds": 100.0} for v in (1.0, 0.5, 0.0, 2.0)]
    a = {"per_scenario": rows}
    half = {
        "per_scenario": [
            {**r, "slo_violation_minutes": r["slo_violation_minutes"] / 2} for r in rows
        ]
    }
    same = paired(a, a)
    assert same["violation_cut"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    res = paired(half, a)
    assert res["violation_cut"]["mean"] == pytest.approx(0.5)
    assert res["violation_cut"]["lo"] == pytest.approx(0.5)
    assert res["replica_seconds_ratio"]["mean"] == pytest.approx(1.0)


def test_warm_start_clones_the_teacher_and_picks_on_validation(tmp_path: object) -> None:
    pytest.importorskip("stable_baselines3")
    import json
    from pathlib import Path

    from agents.env import EnvConfig
    from agents.train import TrainConfig, train

    run = Path(str(tmp_path))
    cfg = EnvConfig(episode_seconds=10.0, interval=5.0, load=0.2)
    train(
        TrainConfig(
            run_dir=run,
            steps=128,
            n_envs=1,
            env=cfg,
            progress=False,
            checkpoint_every=64,
            bc_episodes=3,
            bc_epochs=60,
            validation=1,
        )
    )
    meta = json.loads((run / "training.json").read_text())
    bc = meta["behaviour_cloning"]
    assert bc["samples"] == 3 * cfg.max_steps and bc["agreement"] > 0.5
    cands = meta["selection"]["candidates"]
    assert any(c["path"].endswith("model_0_steps.zip") for c in cands)  # the cloned start
    assert meta["selection"]["score"] == min(c["score"] for c in cands)
