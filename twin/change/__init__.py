"""Changes judged in the shadow: the change document (merge patches on the twin's
documents), and what is built on it.

- :mod:`twin.change.document`: the change set, RFC 7386 merge patches and their inverses.
- :mod:`twin.change.judge`: canary against baseline per metric (Kayenta-style, plus variance).
- :mod:`twin.change.forecast`: P(SLO breach) over the next minutes from recent windows.
- :mod:`twin.change.guard`: the rollout guard's loop, sources, executors and verification.
- :mod:`twin.change.synthetic`: the twin's prediction of a new version as a baseline.
- :mod:`twin.change.endpoint`: the decision over HTTP for Argo Rollouts and Flagger.
- :mod:`twin.change.rollout`: ``twin rollout`` put together.
"""

from twin.change.document import (
    Change,
    ChangeSet,
    apply_change,
    apply_changes,
    document_data,
    inverse_patch,
    merge_patch,
)
from twin.change.judge import Judgement, MetricRule, judge

__all__ = [
    "Change",
    "ChangeSet",
    "Judgement",
    "MetricRule",
    "apply_change",
    "apply_changes",
    "document_data",
    "inverse_patch",
    "judge",
    "merge_patch",
]
