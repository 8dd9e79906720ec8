"""The Istio equivalent of the mirror: a VirtualService that routes every request to
production and mirrors ``share`` of them to the shadow (``mirror`` and
``mirrorPercentage``; Istio, like Envoy, discards the mirror's answers).

Istio has no transformation on the mirrored copy only: its ``fault`` field acts on the
route production serves. The transformations therefore stay Envoy-only; the exported
VirtualService covers the mirroring. Checking it against Istio's published CRD schema is
the command line's job (the schemas live with the exporters).
"""

from __future__ import annotations

from typing import Any

from twin.mirror.envoy import MirrorPlan


def virtual_service(
    plan: MirrorPlan, *, name: str = "shadow-mirror", namespace: str = "default"
) -> dict[str, Any]:
    """The VirtualService for ``plan``; the hosts are the production and shadow hosts."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [plan.production.host],
            "http": [
                {
                    "name": "mirror",
                    "route": [
                        {
                            "destination": {
                                "host": plan.production.host,
                                "port": {"number": plan.production.port},
                            }
                        }
                    ],
                    "mirror": {
                        "host": plan.shadow.host,
                        "port": {"number": plan.shadow.port},
                    },
                    "mirrorPercentage": {"value": round(100.0 * plan.share, 6)},
                }
            ],
        },
    }


__all__ = ["virtual_service"]
