"""Baselines, evaluation summaries and the CLI's bad-input path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        TrainConfig(run_dir=tmp_path, steps=10, algo="sac")
    with pytest.raises(ValidationError, match=r"teacher\n.*'adaptive' or 'reactive'"):
        TrainConfig(run_dir=tmp_path, steps=10, teacher="oracle")
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
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("model_*_steps.zip")) == [
        "model_128_steps.zip",
        "model_64_steps.zip",
    ]
    meta = json.loads(result.training_json.read_text())
    assert (meta["algo"], meta["steps"], meta["seed"], meta["n_envs"]) == ("ppo", 128, 0, 1)
    assert meta["config"]["load"] == 0.2 and meta["selection"] is None
    again = train(first.model_copy(update={"resume": True}))
    meta = json.loads(again.training_json.read_text())
    assert meta["resumed_from"] is not None and meta["steps"] >= 256
    assert again.resumed_from is not None and again.steps == meta["steps"]


# -- the committed evaluation: its content, not only its presence ---------------------------

COMMITTED = Path(__file__).resolve().parents[1] / "agents/policies/online-boutique/evaluation.json"


def committed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COMMITTED.read_text())
    return data


def test_evaluation_has_one_row_per_policy_and_held_out_scenario() -> None:
    from agents.scenarios import HELD_OUT_SIZE

    ev = committed()
    env = MitigationEnv()
    assert ev["held_out_scenarios"] == [f.__dict__ for f in env.catalogue.held_out]
    assert len(ev["held_out_scenarios"]) == HELD_OUT_SIZE
    baselines = {"no_mitigation", "best_practice", "threshold", "adaptive", "reactive"}
    assert set(ev["policies"]) == baselines | {"best_static", "learned"}
    for name, pol in ev["policies"].items():
        rows = pol["per_scenario"]
        assert len(rows) == HELD_OUT_SIZE, name
        assert all(
            set(r) == {"slo_violation_minutes", "replica_seconds", "goodput", "p99"} for r in rows
        )
        for metric in ("slo_violation_minutes", "replica_seconds", "goodput", "p99"):
            # the summary is the seeded bootstrap of exactly these rows
            assert pol[metric] == ci([r[metric] for r in rows]), (name, metric)
    search = ev["policies"]["best_static"]["search"]
    # the best static knobs are the first of the lowest-scoring candidates tried
    assert search["knobs"] == min(search["tried"], key=lambda t: t[1])[0]


def test_paired_figures_match_a_hand_computation_on_the_committed_rows() -> None:
    from agents.evaluate import paired

    ev = committed()
    pols = ev["policies"]
    learned = pols["learned"]["per_scenario"]
    assert set(ev["paired"]) == set(pols) - {"learned"}
    for name, got in ev["paired"].items():
        other = pols[name]["per_scenario"]
        lv = [r["slo_violation_minutes"] for r in learned]
        ov = [r["slo_violation_minutes"] for r in other]
        lc = sum(r["replica_seconds"] for r in learned)
        oc = sum(r["replica_seconds"] for r in other)
        saved = sum(o - v for o, v in zip(ov, lv, strict=True)) / len(lv)
        assert got["violation_minutes_saved"]["mean"] == pytest.approx(saved)
        assert got["violation_cut"]["mean"] == pytest.approx(1 - sum(lv) / sum(ov))
        assert got["replica_seconds_ratio"]["mean"] == pytest.approx(lc / oc)
        for fig in got.values():
            assert fig["lo"] <= fig["mean"] <= fig["hi"]
        assert got == paired(pols["learned"], pols[name])
        # the learned row beats (or loses to) the other policy as its means say
        learned_mean = pols["learned"]["slo_violation_minutes"]["mean"]
        other_mean = pols[name]["slo_violation_minutes"]["mean"]
        assert (got["violation_cut"]["mean"] > 0) == (learned_mean < other_mean)
    # the committed policy beats no mitigation on the held-out set, with its interval above 0
    assert ev["paired"]["no_mitigation"]["violation_minutes_saved"]["lo"] > 0


def test_paired_interval_of_a_constant_difference_is_that_difference() -> None:
    from agents.evaluate import paired

    def rows(viol: list[float], reps: list[float]) -> dict[str, Any]:
        return {
            "per_scenario": [
                {"slo_violation_minutes": v, "replica_seconds": r}
                for v, r in zip(viol, reps, strict=True)
            ]
        }

    got = paired(
        rows([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]), rows([2.0, 4.0, 6.0], [20.0, 40.0, 60.0])
    )
    # every bootstrap resample halves the violations and the replicas: a point interval
    assert got["violation_cut"] == {"mean": 0.5, "lo": 0.5, "hi": 0.5}
    assert got["replica_seconds_ratio"] == {"mean": 0.5, "lo": 0.5, "hi": 0.5}
    assert got["violation_minutes_saved"]["mean"] == pytest.approx(2.0)
    assert (
        1.0
        <= got["violation_minutes_saved"]["lo"]
        < 2.0
        < got["violation_minutes_saved"]["hi"]
        <= 3.0
    )
