"""The exported policy file: what production loads to enforce a learned policy.

One versioned JSON document (``policy.json``) beside ``policy.onnx``. It carries everything
an enforcer needs without the twin: how to build the observation from live metrics, what
each action index means, the hard bounds every decision is clamped to, the static fallback
to hold when metrics are missing, an interpretable distilled form, and where it all came
from (topology hash, training config, evaluation figures). The JSON Schema shipped beside
this module (``policy.schema.json``) is generated from these models; a test keeps the two
equal.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.errors import InputError
from twin.io import parse_model
from twin.policy import Policy

API_VERSION = "shadow-twin.dev/policy/v1"
SCHEMA_PATH = Path(__file__).with_name("policy.schema.json")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObservationSpec(_Doc):
    """How the enforcer builds the network's input from live metrics.

    The vector is ``services`` (in this order) x ``features`` (in this order), each in
    [0, 1]: p99 / ``slo_p99_seconds`` squashed x/(1+x); error rate; utilisation (busy /
    capacity, capped at 1); queue length squashed q/(q + ``queue_scale``); replicas /
    ``max_replicas``; worst circuit-breaker state on calls into the service (closed 0,
    half-open 0.5, open 1).
    """

    services: tuple[str, ...] = Field(min_length=1)
    features: tuple[str, ...] = (
        "p99_over_slo",
        "error_rate",
        "utilization",
        "queue",
        "replicas",
        "breaker",
    )
    slo_p99_seconds: float = Field(gt=0.0, description="seconds")
    slo_availability: Fraction
    queue_scale: float = Field(default=10.0, gt=0.0, description="requests")
    max_replicas: int = Field(ge=1)


class ActionSpec(_Doc):
    """What each component of the MultiDiscrete action means.

    Per service (in ``ObservationSpec.services`` order): [index into ``replica_deltas``,
    index into ``queue_limits``]; then the global components: [index into
    ``timeouts_seconds``, ``retries``, ``circuit_breaker``, ``rate_limits_x``]. A rate-limit
    level multiplies the nominal entry rate in ``entry_rates_rps``.
    """

    replica_deltas: tuple[int, ...]
    queue_limits: tuple[int | None, ...] = Field(description="per replica; null: no limit")
    timeouts_seconds: tuple[float, ...]
    retries: tuple[int, ...]
    retry_budget: Fraction = Field(description="extra attempts / requests, per edge")
    circuit_breaker: tuple[bool, ...]
    rate_limits_x: tuple[float | None, ...] = Field(description="x nominal entry rate; null: none")
    entry_rates_rps: dict[str, float] = Field(description="nominal rate per entry service, rps")

    def components(self, n_services: int) -> tuple[int, ...]:
        """The MultiDiscrete sizes of the whole action."""
        glob = (
            len(self.timeouts_seconds),
            len(self.retries),
            len(self.circuit_breaker),
            len(self.rate_limits_x),
        )
        return (len(self.replica_deltas), len(self.queue_limits)) * n_services + glob


class ReplicaBounds(_Doc):
    """Replica limits of one service (inclusive)."""

    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaBounds:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class Bounds(_Doc):
    """Hard limits: the enforcer clamps every decision into them, whatever the model says."""

    replicas: dict[str, ReplicaBounds]
    timeout_seconds_min: float = Field(gt=0.0, description="seconds")
    timeout_seconds_max: float = Field(gt=0.0, description="seconds")
    max_retries: int = Field(ge=0)
    rate_limit_x_min: float = Field(
        gt=0.0, description="never limit the entry below this x nominal rate"
    )
    max_changes_per_decision: int = Field(
        ge=1, description="action components allowed to change in one decision"
    )
    min_seconds_between_changes: float = Field(ge=0.0, description="seconds")

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.timeout_seconds_max < self.timeout_seconds_min:
            raise ValueError("timeout_seconds_max must be >= timeout_seconds_min")
        return self


class ModelRef(_Doc):
    """The network: an ONNX file (path relative to the policy file) and its digest."""

    onnx: str = "policy.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: str = "obs"
    output: str = Field(default="action", description="int64 action indices, one per component")
    agreement_with_torch: Fraction = Field(
        description="share of sampled observations where onnxruntime and torch pick the same action"
    )
    agreement_samples: int = Field(ge=1)


class TreeNode(_Doc):
    """A node of the distilled tree: split ``obs[feature] <= threshold`` -> ``left`` else
    ``right``; a leaf (``feature`` null) holds the action."""

    feature: int | None = Field(default=None, ge=0)
    feature_name: str | None = None
    threshold: float | None = None
    left: int | None = Field(default=None, ge=0)
    right: int | None = Field(default=None, ge=0)
    action: tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _leaf_or_split(self) -> TreeNode:
        split = (self.feature, self.threshold, self.left, self.right)
        if self.action is None and any(v is None for v in split):
            raise ValueError("a split needs feature, threshold, left and right")
        if self.action is not None and any(v is not None for v in split):
            raise ValueError("a leaf holds only an action")
        return self


class DistilledRules(_Doc):
    """An interpretable stand-in for the network: a decision tree (node 0 is the root)."""

    kind: Literal["decision_tree"] = "decision_tree"
    max_depth: int = Field(ge=1)
    agreement: Fraction = Field(
        description="share of held-aside observations where it equals the network"
    )
    agreement_samples: int = Field(ge=1)
    component_agreement: Fraction | None = Field(
        default=None, description="mean share of action components equal, same observations"
    )
    nodes: tuple[TreeNode, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _links(self) -> DistilledRules:
        n = len(self.nodes)
        for i, node in enumerate(self.nodes):
            for child in (node.left, node.right):
                if child is not None and not i < child < n:
                    raise ValueError(f"nodes[{i}]: child {child} must be after it and < {n}")
        return self


class Figure(_Doc):
    """A mean with its 95% interval."""

    mean: float
    lo: float
    hi: float


class Provenance(_Doc):
    """Where the policy came from, so a reviewer can reproduce and judge it."""

    created: str = Field(description="ISO 8601 UTC time of export")
    shadow_twin_version: str
    topology_name: str
    topology_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    training: dict[str, Any] = Field(description="algorithm, steps, seed, env config")
    evaluation: dict[str, dict[str, Figure]] = Field(
        description="per policy: slo_violation_minutes, replica_seconds, goodput, p99"
    )
    validated_in_twin: dict[str, Any] = Field(
        default_factory=dict,
        description="re-simulation of every exported static configuration before writing",
    )


class PolicyFile(_Doc):
    """A learned mitigation policy, ready for ``twin enforce`` and for review."""

    api_version: Literal["shadow-twin.dev/policy/v1"] = "shadow-twin.dev/policy/v1"
    name: str = Field(min_length=1)
    interval_seconds: float = Field(gt=0.0, description="seconds between decisions")
    observation: ObservationSpec
    action: ActionSpec
    bounds: Bounds
    model: ModelRef
    rules: DistilledRules | None = None
    fallback: Policy = Field(
        description="the static policy to hold when metrics are missing or bad"
    )
    provenance: Provenance

    @model_validator(mode="after")
    def _consistent(self) -> PolicyFile:
        missing = set(self.observation.services) - set(self.bounds.replicas)
        if missing:
            raise ValueError(f"bounds.replicas misses services {sorted(missing)}")
        if self.rules is not None:
            size = len(self.action.components(len(self.observation.services)))
            for i, node in enumerate(self.rules.nodes):
                if node.action is not None and len(node.action) != size:
                    raise ValueError(
                        f"rules.nodes[{i}]: action has {len(node.action)} components, "
                        f"expected {size}"
                    )
        return self

    @classmethod
    def load(cls, path: str | Path) -> PolicyFile:
        """Read and check a policy file; problems raise a one-line InputError."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"{p}: no such policy file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{p}: not a readable JSON policy file ({exc})") from None
        return parse_model(cls, data, source=str(p))

    def model_path(self, policy_path: str | Path) -> Path:
        """The ONNX file, checked against its digest (a swapped network is refused)."""
        onnx = Path(policy_path).parent / self.model.onnx
        if not onnx.exists():
            raise InputError(f"{policy_path}: model.onnx: {onnx} does not exist")
        digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
        if digest != self.model.sha256:
            raise InputError(
                f"{policy_path}: model.sha256: {onnx.name} has digest {digest[:12]}..., "
                f"expected {self.model.sha256[:12]}... (the network was changed)"
            )
        return onnx


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the policy file (draft 2020-12), as shipped in policy.schema.json."""
    schema = PolicyFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://shadow-twin.dev/schemas/policy/v1.json"
    return schema


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
