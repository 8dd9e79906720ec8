"""Changes judged in the shadow: the change document (merge patches on the twin's
documents), and what is built on it.

- :mod:`twin.change.document`: the change set and its kinds (patch, version, dependency),
  RFC 7386 merge patches and their inverses, the reduction to the documents;
- :mod:`twin.change.check`: ``check-change``, paired runs under the horizon's faults, the
  risk score and the decision; :mod:`twin.change.statics`: the static checks;
- :mod:`twin.change.verdict` and :mod:`twin.change.rollback`: ``verdict.json`` and
  ``rollback.json`` (its JSON Schema ships beside it); :mod:`twin.change.report`: the files;
- :mod:`twin.change.history`: checks and rollouts in the failure-mode database
  (:func:`~twin.change.history.record_rollout` records what a rollout did);
- :mod:`twin.change.labelled`: a labelled set of changes, checked and scored;
- :mod:`twin.change.judge`: canary against baseline per metric (Kayenta-style, plus variance);
- :mod:`twin.change.forecast`: P(SLO breach) over the next minutes from recent windows;
- :mod:`twin.change.guard`: the rollout guard's loop, sources, executors and verification;
- :mod:`twin.change.synthetic`: the twin's prediction of a new version as a baseline;
- :mod:`twin.change.endpoint`: the decision over HTTP for Argo Rollouts and Flagger;
- :mod:`twin.change.rollout`: ``twin rollout`` put together.
"""

from twin.change.document import (
    AnyChange,
    Change,
    ChangeFile,
    ChangeSet,
    DependencyChange,
    VersionChange,
    apply_change,
    apply_changes,
    document_data,
    inverse_patch,
    merge_patch,
    reduce_changes,
)
from twin.change.judge import Judgement, MetricRule, judge

__all__ = [
    "AnyChange",
    "Change",
    "ChangeFile",
    "ChangeSet",
    "DependencyChange",
    "Judgement",
    "MetricRule",
    "VersionChange",
    "apply_change",
    "apply_changes",
    "document_data",
    "inverse_patch",
    "judge",
    "merge_patch",
    "reduce_changes",
]
