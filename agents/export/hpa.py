"""Kubernetes HorizontalPodAutoscaler (autoscaling/v2) per autoscaled service, checked with
kubernetes-validate (the official OpenAPI schemas, strict: unknown fields fail) plus the
range rules the schema does not carry (the API server's own validation).

Mapping: autoscale min/max -> minReplicas/maxReplicas; target_utilization -> CPU
``averageUtilization`` (percent); cooldown -> ``behavior.scaleDown.stabilizationWindowSeconds``
(Kubernetes' default is 300 s, written explicitly). Boot time is the pod's readiness, not an
HPA field. An adaptive policy's per-interval replica moves are expressed here only as the
bounds they move within.
"""

from __future__ import annotations

from typing import Any

from twin.policy import Policy
from twin.topology import Topology

K8S_VERSION = "1.33"
"""The Kubernetes API version whose published schema the HPA is checked against."""


def render(policy: Policy, topology: Topology) -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {}
    for name, sp in sorted(policy.services.items()):
        a = sp.autoscale
        if a is None or name not in topology.services:
            continue
        files[f"{name}.yaml"] = [
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": a.min,
                    "maxReplicas": a.max,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": max(1, round(100 * a.target_utilization)),
                                },
                            },
                        }
                    ],
                    "behavior": {
                        "scaleDown": {"stabilizationWindowSeconds": min(3600, round(a.cooldown))}
                    },
                },
            }
        ]
    return files


def validate(doc: dict[str, Any]) -> list[str]:
    """Problems of one HPA ([] when valid)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in getattr(exc, "path", [])) or "<root>"
        return [f"{path}: {str(exc).splitlines()[0]}"]
    except Exception as exc:  # the validator raises its own types for unknown kinds/versions
        return [f"<root>: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"]
    spec = doc["spec"]
    errors = []
    if spec.get("minReplicas", 1) < 1:
        errors.append("spec.minReplicas: must be >= 1")
    if spec["maxReplicas"] < spec.get("minReplicas", 1):
        errors.append("spec.maxReplicas: must be >= minReplicas")
    for i, m in enumerate(spec.get("metrics", [])):
        u = m.get("resource", {}).get("target", {}).get("averageUtilization")
        if u is not None and u < 1:
            errors.append(f"spec.metrics[{i}].resource.target.averageUtilization: must be >= 1")
    w = spec.get("behavior", {}).get("scaleDown", {}).get("stabilizationWindowSeconds")
    if w is not None and not 0 <= w <= 3600:
        errors.append("spec.behavior.scaleDown.stabilizationWindowSeconds: must be in 0..3600")
    return errors
