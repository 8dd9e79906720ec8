"""The agent's codec is one: the environment, the enforcer and the exported policy file read
observations and actions the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gymnasium")

from agents import spaces as sp
from agents.env import MitigationEnv
from agents.export.policy_file import PolicyFile
from agents.runtime import decode, policy_document
from twin.mitigations import CircuitState

EXPORT = Path(__file__).resolve().parents[1] / "agents/policies/online-boutique/export"


def test_an_action_decodes_to_the_levels_its_indices_name() -> None:
    env = MitigationEnv()
    env.action_space.seed(0)
    for _ in range(50):
        a = env.action_space.sample()
        k = env.action_spec.decode(a, env.services, env.base_replicas)
        glob = a[2 * env.n :]
        assert k.timeout_seconds == sp.TIMEOUTS[glob[sp.Knob.TIMEOUT]]
        assert k.retries == sp.RETRIES[glob[sp.Knob.RETRIES]]
        assert k.circuit_breaker == sp.BREAKER[glob[sp.Knob.BREAKER]]
        assert k.rate_limit_x == sp.RATE_LIMITS[glob[sp.Knob.RATE_LIMIT]]
        for i, s in enumerate(env.services):
            assert k.replicas[s] == env.base_replicas[s] + sp.REPLICA_DELTAS[a[2 * i]]
            assert k.queue_limits[s] == sp.QUEUE_LIMITS[a[2 * i + 1]]


def test_the_enforcer_applies_the_policy_the_environment_applies_for_an_action() -> None:
    pf = PolicyFile.load(EXPORT / "policy.json")
    env = MitigationEnv()
    assert pf.observation.services == env.services
    for seed in range(30):
        env.action_space.seed(seed)
        a = env.action_space.sample()
        ours = sp.action_to_policy(a, env.services, env.topology)
        theirs = policy_document(decode(a, pf, dict(env.base_replicas)), pf)
        assert ours.model_dump(mode="json", exclude_none=True) == theirs


def test_the_neutral_action_is_no_mitigation_at_the_loosest_timeout() -> None:
    env = MitigationEnv()
    k = env.action_spec.decode(sp.neutral_action(env.n), env.services, env.base_replicas)
    assert k.replicas == env.base_replicas
    assert set(k.queue_limits.values()) == {None}
    assert (k.timeout_seconds, k.retries, k.circuit_breaker, k.rate_limit_x) == (
        max(sp.TIMEOUTS),
        0,
        False,
        None,
    )
    doc = env.action_spec.policy(k).model_dump(exclude_none=True)
    assert doc["services"] == {} and set(doc["clients"]["*"]) == {"timeout"}


def test_breaker_codes_and_names_observe_alike_and_half_open_sits_between() -> None:
    for state in CircuitState:
        assert sp.breaker_observation([state]) == sp.breaker_label_value(state.label)
        assert sp.breaker_observation([int(state)]) == sp.BREAKER_OBSERVATION[state]
    assert sp.breaker_label_value("ajar") is None
    closed, half, opened = (
        sp.breaker_observation([s])
        for s in (CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN)
    )
    assert closed < half < opened
    assert sp.breaker_observation([]) == closed
    assert sp.breaker_observation([CircuitState.HALF_OPEN, CircuitState.OPEN]) == opened


def test_feature_names_are_the_policy_files_and_the_distilled_trees() -> None:
    pf = PolicyFile.load(EXPORT / "policy.json")
    assert pf.observation.features == sp.FEATURE_LABELS
    assert [f.label for f in sp.Feature] == list(sp.FEATURE_LABELS)
    assert pf.rules is not None
    services = pf.observation.services
    for node in pf.rules.nodes:
        if node.feature is not None:
            service, feature = divmod(node.feature, sp.FEATURES)
            assert node.feature_name == f"{services[service]}.{sp.Feature(feature).label}"


def test_encode_reads_each_feature_into_its_named_column() -> None:
    spec = sp.ObservationSpec(
        services=("a", "b"), slo_p99_seconds=0.5, slo_availability=0.99, max_replicas=5
    )
    obs = spec.encode(
        {
            "a": sp.ServiceReading(0.5, 0.25, 2.0, 4, queue=10.0, breaker=0.5),
            "b": sp.ServiceReading(None, 0.0, float("nan"), 1),
        }
    )
    rows = sp.per_service(obs, 2)
    assert rows[0].tolist() == pytest.approx([0.5, 0.25, 1.0, 0.5, 0.8, 0.5])
    assert rows[1].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.2, 0.0])
    assert rows[0, sp.Feature.UTILIZATION] == 1.0  # capped
