"""The base of every result record: frozen, strict, and readable as its JSON form.

Results are read two ways. Library code reads attributes, so a misspelt field is a type error.
Scripts written against ``summary.json`` read keys (``summary["latency"]["p99"]``); item access
gives exactly what the JSON file holds for that key (plain dicts, lists and numbers), so those
scripts keep working on the typed record.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Number = int | float
"""A figure that is an integer count in one run and a mean (a float) over replications; kept
as written, so a count serialises as ``3`` and a mean as ``3.0``."""


class Record(BaseModel):
    """A frozen result record; a key absent from the source stays absent in :meth:`to_json`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the keys this record was built with, in the order the file has."""
        return self.model_dump(mode="json", exclude_unset=True)

    def __getitem__(self, key: str) -> Any:
        """The JSON form of one key (``KeyError`` when the record does not hold it)."""
        if key not in self.model_fields_set:
            raise KeyError(key)
        return self.model_dump(mode="json", exclude_unset=True, include={key})[key]

    def get(self, key: str, default: Any = None) -> Any:
        """As ``dict.get`` on the JSON form."""
        return self[key] if key in self.model_fields_set else default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.model_fields_set

    def keys(self) -> list[str]:
        """The keys of the JSON form, in its order."""
        return list(self.to_json())

    def values(self) -> list[Any]:
        return list(self.to_json().values())

    def items(self) -> list[tuple[str, Any]]:
        return list(self.to_json().items())
