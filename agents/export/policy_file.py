"""The exported policy file: what production loads to enforce a learned policy.

One versioned JSON document (``policy.json``) beside ``policy.onnx``. It carries everything
an enforcer needs without the twin: how to build the observation from live metrics, what
each action index means, the hard bounds every decision is clamped to, the static fallback
to hold when metrics are missing, an interpretable distilled form, and where it all came
from (topology hash, training config, evaluation figures). The JSON Schema shipped beside
this module (``policy.schema.json``) is generated from these models; a test keeps the two
equal. The observation and action parts are the agent codec's own documents
(:mod:`agents.spaces`), so the enforcer decodes exactly as the environment does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from agents.spaces import ActionSpec, Document, Fraction, ObservationSpec
from twin.errors import InputError
from twin.io import parse_model
from twin.policy import Policy
from twin.safeload import loads_json, read_text

SCHEMA_PATH = Path(__file__).with_name("policy.schema.json")


class ReplicaBounds(Document):
    """Replica limits of one service (inclusive)."""

    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaBounds:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class Bounds(Document):
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


class ModelRef(Document):
    """The network: an ONNX file (path relative to the policy file) and its digest."""

    onnx: str = "policy.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: str = "obs"
    output: str = Field(default="action", description="int64 action indices, one per component")
    agreement_with_torch: Fraction = Field(
        description="share of sampled observations where onnxruntime and torch pick the same action"
    )
    agreement_samples: int = Field(ge=1)


class TreeNode(Document):
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


class DistilledRules(Document):
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


class Figure(Document):
    """A mean with its 95% interval."""

    mean: float
    lo: float
    hi: float


class Provenance(Document):
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


class PolicyFile(Document):
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
            data = loads_json(read_text(p), str(p))
        except json.JSONDecodeError as exc:
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
