"""Changes judged in the shadow: the change document (merge patches on the twin's
documents), and what is built on it.

- :mod:`twin.change.document`: the change set, RFC 7386 merge patches and their inverses.
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

__all__ = [
    "Change",
    "ChangeSet",
    "apply_change",
    "apply_changes",
    "document_data",
    "inverse_patch",
    "merge_patch",
]
