"""Configuration drift: the expected state's shadow, a diff that shows only real drift,
drift prediction, impact on the SLOs and remediation plans.

- :mod:`twin.drift.manifests`: manifests, dumps, Lists, folders, a cluster URL -> objects.
- :mod:`twin.drift.normalise`: API-server defaults, merge-key lists, quantities, types.
- :mod:`twin.drift.diff`: the diff, managedFields attribution, ignore rules.
- :mod:`twin.drift.generate`: detection cases from real manifests (drifts plus noise).
- :mod:`twin.drift.history`: snapshots or managedFields -> a tidy table of changes.
- :mod:`twin.drift.rollout`: a simulated rolling update (maxSurge, maxUnavailable).
- :mod:`twin.drift.plans`: impact, remediation plans, security rules, patches.
- :mod:`twin.drift.documents`: the typed records ``drift.json`` and ``plans.json`` hold.
"""

from twin.drift.diff import diff_states
from twin.drift.documents import Drift, IgnoreRule, Plan, PlansDocument
from twin.drift.manifests import K8sObject, read_objects, read_observed

__all__ = [
    "Drift",
    "IgnoreRule",
    "K8sObject",
    "Plan",
    "PlansDocument",
    "diff_states",
    "read_objects",
    "read_observed",
]
