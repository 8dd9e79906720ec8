"""Training faults from the Bayesian risk report: draws follow its posterior rates.

The held-out set must not move with the weights, training draws must never hit it, and a
risk file that cannot serve is refused in one line naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stats_helpers import binomial_tol

from agents.env import EnvConfig, MitigationEnv
from agents.scenarios import (
    DURATIONS,
    ENTRY_KINDS,
    KINDS,
    LEVELS,
    STARTS,
    FaultCatalogue,
    weights_from_risk,
)
from agents.train import TrainConfig, train
from twin.errors import InputError
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
OB = Topology.load(ROOT / "topologies" / "online-boutique.yaml")


def mode(service: str, kind: str, rate: Any) -> dict[str, Any]:
    return {
        "service": service,
        "fault_kind": kind,
        "rate_per_day": {"mean": rate, "lo": 0.0, "hi": 1.0},
    }


MODES = [
    mode("cartservice", "latency", 0.3),
    mode("frontend", "outage", 0.1),
    mode("adservice", "error_rate", 0.0),  # a rate of 0: never drawn
    mode("cartservice", "pool_exhaustion", 5.0),  # a kind the catalogue does not draw
    mode("billing", "outage", 5.0),  # a service the topology does not have
]


def write_risk(tmp_path: Path, modes: Any) -> Path:
    p = tmp_path / "risk.json"
    p.write_text(json.dumps({"horizon_days": 30, "failure_modes": modes}), encoding="utf-8")
    return p


def test_weights_keep_the_modes_of_known_kinds_and_services(tmp_path: Path) -> None:
    w = weights_from_risk(write_risk(tmp_path, MODES), OB)
    assert w == {
        ("latency", "cartservice"): 0.3,
        ("outage", "frontend"): 0.1,
        ("error_rate", "adservice"): 0.0,
    }


def test_training_draws_follow_the_posterior_rates(tmp_path: Path) -> None:
    cat = FaultCatalogue(OB, weights=weights_from_risk(write_risk(tmp_path, MODES), OB))
    assert cat.training is not None
    assert sum(cat.training.values()) == pytest.approx(1.0)
    rng = np.random.default_rng(11)
    n = 20_000
    seen = Counter((s.kind, s.target) for s in (cat.sample_training(rng) for _ in range(n)))
    kinds: Counter[str] = Counter()
    for (k, _), c in seen.items():
        kinds[k] += c
    # latency, outage and error_rate are named: they share 3/7 of the draws as 3 : 1 : 0
    # (a rate of 0 is never drawn); the four other kinds keep 1/7 each. A draw that lands on
    # a held-out point is redrawn: each (kind, target) keeps its share times the fraction of
    # its grid points that are not held out, renormalised.
    assert cat.training[("latency", "cartservice")] == pytest.approx(3 / 7 * 0.75)
    assert cat.training[("outage", "frontend")] == pytest.approx(3 / 7 * 0.25)
    held = Counter((h.kind, h.target) for h in cat.held_out)
    kept = {}
    for (k, t), p in cat.training.items():
        grid = len(STARTS) * len(DURATIONS) * len(LEVELS[k])
        kept[(k, t)] = p * (grid - held[(k, t)]) / grid
    norm = sum(kept.values())
    for k in KINDS:
        p = sum(v for (kk, _), v in kept.items() if kk == k) / norm
        assert abs(kinds[k] / n - p) <= binomial_tol(p, n), (k, kinds[k] / n, p)
    assert seen[("latency", "cartservice")] == kinds["latency"]  # the one target named
    assert seen[("outage", "frontend")] == kinds["outage"]
    assert kinds["error_rate"] == 0
    # kinds the report does not name keep every target (entry kinds: the entry)
    cpu_targets = {t for (k, t) in seen if k == "cpu_exhaustion"}
    assert cpu_targets == set(OB.services)
    assert {t for (k, t) in seen if k in ENTRY_KINDS} == {cat.entry}


def test_held_out_set_is_the_same_with_or_without_weights(tmp_path: Path) -> None:
    weighted = FaultCatalogue(OB, weights=weights_from_risk(write_risk(tmp_path, MODES), OB))
    assert weighted.held_out == FaultCatalogue(OB).held_out


def test_weighted_training_draws_never_hit_the_held_out_set(tmp_path: Path) -> None:
    # all weight on one (kind, target) that the held-out set also holds: every draw of it
    # that lands on a held-out point must be redrawn
    plain = FaultCatalogue(OB)
    held = plain.held_out[0]
    modes = [mode(held.target, held.kind, 1.0)] if held.kind not in ENTRY_KINDS else MODES
    cat = FaultCatalogue(OB, weights=weights_from_risk(write_risk(tmp_path, modes), OB))
    rng = np.random.default_rng(3)
    draws = [cat.sample_training(rng) for _ in range(5000)]
    assert not any(cat.is_held_out(d) for d in draws)


def test_env_draws_its_episodes_from_the_risk_report(tmp_path: Path) -> None:
    only = [mode("cartservice", "latency", 1.0)]
    for k in KINDS:  # name every kind, so the report alone decides
        if k != "latency" and k not in ENTRY_KINDS:
            only.append(mode("cartservice", k, 0.0))
    path = write_risk(tmp_path, only)
    env = MitigationEnv(EnvConfig(faults_from=str(path), fidelity="fluid"))
    kinds = set()
    for seed in range(40):
        env.reset(seed=seed)
        assert env.fault is not None
        kinds.add((env.fault.kind, env.fault.target))
    # 5 of 7 kinds named (latency alone with a rate): 5/7 latency, the entry kinds 1/7 each
    assert ("latency", "cartservice") in kinds
    assert {k for k, _ in kinds} <= {"latency", *ENTRY_KINDS}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{", "not a JSON document"),
        ('{"modes": []}', "failure_modes: expected the list of a risk.json"),
        ('{"failure_modes": [7]}', "failure_modes[0]: expected a failure mode"),
        (
            json.dumps({"failure_modes": [mode("cartservice", "latency", -1)]}),
            "failure_modes[0].rate_per_day.mean: expected a number >= 0",
        ),
        (json.dumps({"failure_modes": [mode("cartservice", "latency", "high")]}), "got 'high'"),
        (json.dumps({"failure_modes": [mode("billing", "outage", 1.0)]}), "no failure mode"),
    ],
)
def test_a_risk_file_that_cannot_serve_is_refused_naming_file_and_field(
    tmp_path: Path, content: str, says: str
) -> None:
    p = tmp_path / "risk.json"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=r"risk\.json") as err:
        weights_from_risk(p, OB)
    assert says in str(err.value)


def test_train_command_refuses_a_bad_risk_file_in_one_line_before_any_output(
    tmp_path: Path,
) -> None:
    bad = write_risk(tmp_path, [mode("billing", "outage", 1.0)])
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin.cli",
            "train",
            "--out",
            str(out),
            "--steps",
            "8",
            "--faults-from",
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "risk.json" in lines[0] and "no failure mode" in lines[0]
    assert not out.exists()


def test_training_records_the_risk_file_it_drew_faults_from(tmp_path: Path) -> None:
    risk = write_risk(tmp_path, MODES)
    cfg = EnvConfig(faults_from=str(risk), fidelity="fluid")
    train(
        TrainConfig(
            run_dir=tmp_path / "run",
            steps=64,
            n_envs=1,
            env=cfg,
            progress=False,
            checkpoint_every=64,
        )
    )
    meta = json.loads((tmp_path / "run" / "training.json").read_text())
    assert meta["config"]["faults_from"] == {
        "path": str(risk),
        "sha256": hashlib.sha256(risk.read_bytes()).hexdigest(),
    }


def test_weights_on_an_entry_kind_target_the_entry() -> None:
    cat = FaultCatalogue(OB, weights={("attack", "cartservice"): 1.0})
    rng = np.random.default_rng(5)
    draws = [cat.sample_training(rng) for _ in range(400)]
    assert {d.target for d in draws if d.kind == "attack"} == {cat.entry}


def test_weights_with_nothing_outside_the_held_out_set_are_refused() -> None:
    # every point of the grid held out (2 entry kinds x 27 + 11 services x 117 = 1,341)
    with pytest.raises(InputError, match="held-out"):
        FaultCatalogue(OB, held_out_size=1341, weights={("outage", "cartservice"): 1.0})
