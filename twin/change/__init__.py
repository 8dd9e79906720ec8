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
- :mod:`twin.change.labelled`: a labelled set of changes, checked and scored.
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

__all__ = [
    "AnyChange",
    "Change",
    "ChangeFile",
    "ChangeSet",
    "DependencyChange",
    "VersionChange",
    "apply_change",
    "apply_changes",
    "document_data",
    "inverse_patch",
    "merge_patch",
    "reduce_changes",
]
