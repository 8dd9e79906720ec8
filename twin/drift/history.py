"""A history of configuration changes, for the drift-rate model.

Three sources, one tidy table (resource, field_class, manager, changes, exposure_days):

- **A folder of snapshots**: one sub-folder or file per snapshot, named so that its name
  starts with an ISO-8601 date or time (``2026-11-01``, ``2026-11-01T06:00:00Z``); each
  consecutive pair is diffed (the earlier one as expected) and every drift is a change at the
  later snapshot's time.
- **A change log** (CSV with columns ``time, resource, field_class, manager``), as exported
  from an audit log.
- **managedFields** of observed objects: each manager's last write is one change of the
  field classes it owns, since the object was created (a lower bound on the changes).

Every resource is exposed for the whole span of the history, for every field class and
manager seen in it (a cell with no change is information too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from twin.drift.diff import diff_states
from twin.drift.manifests import K8sObject, read_objects
from twin.errors import InputError
from twin.safeload import check_size

_CLASSES = (
    (re.compile(r"^$"), "resource"),
    (re.compile(r"/replicas$|/minReplicas$|/maxReplicas$"), "replicas"),
    (re.compile(r"/resources(/|$)"), "resources"),
    (re.compile(r"/image$|/imagePullPolicy$"), "image"),
    (re.compile(r"/env(From)?(/|$)"), "env"),
    (
        re.compile(r"/securityContext(/|$)|/hostNetwork$|/hostPID$|/hostIPC$|/hostPath(/|$)"),
        "security",
    ),
    (re.compile(r"[Pp]robe(/|$)"), "probes"),
    (re.compile(r"/ports(/|$)|/targetPort$"), "ports"),
    (re.compile(r"^/metadata/"), "metadata"),
)

UNKNOWN_MANAGER = "unknown"


def field_class(path: str) -> str:
    """The class of a drifted field, from its JSON pointer (``/spec/replicas`` ->
    ``replicas``; ``""`` -> ``resource``; anything unlisted -> ``other``)."""
    for pattern, name in _CLASSES:
        if pattern.search(path):
            return name
    return "other"


_STAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2}(?:[T_ ]\d{2}[:\-]?\d{2}(?:[:\-]?\d{2})?)?(?:Z|[+-]\d{2}:?\d{2})?)"
)


def parse_time(text: str) -> datetime | None:
    """The leading ISO-8601 date or time of ``text`` (UTC when no zone), or None."""
    m = _STAMP.match(text)
    if m is None:
        return None
    raw = m.group(1).replace("_", "T")
    raw = re.sub(
        r"T(\d{2})-(\d{2})(?:-(\d{2}))?",
        lambda g: f"T{g[1]}:{g[2]}" + (f":{g[3]}" if g[3] else ""),
        raw,
    )
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _tidy(events: pd.DataFrame, resources: Iterable[str], span_days: float) -> pd.DataFrame:
    """Counts per resource x class x manager over the full grid, each exposed ``span_days``."""
    res = sorted(set(resources) | set(events["resource"]))
    classes = sorted(set(events["field_class"])) or ["other"]
    managers = sorted(set(events["manager"])) or [UNKNOWN_MANAGER]
    counts = events.groupby(["resource", "field_class", "manager"]).size()
    rows = [
        {
            "resource": r,
            "field_class": c,
            "manager": m,
            "changes": int(counts.get((r, c, m), 0)),
            "exposure_days": span_days,
        }
        for r in res
        for c in classes
        for m in managers
    ]
    return pd.DataFrame(rows)


def from_snapshots(folder: Path, *, namespace: str = "default") -> pd.DataFrame:
    """The tidy table of a folder of timestamped snapshots (see the module docstring)."""
    snaps: list[tuple[datetime, Path]] = []
    for p in sorted(folder.iterdir()):
        t = parse_time(p.name)
        if t is not None:
            snaps.append((t, p))
    if len(snaps) < 2:
        raise InputError(
            "a history needs at least two snapshots whose names start with an ISO-8601 date",
            source=str(folder),
        )
    snaps.sort()
    states: list[dict[str, K8sObject]] = [read_objects([p], namespace=namespace) for _, p in snaps]
    events = []
    for (t, _), before, after in zip(snaps[1:], states, states[1:], strict=False):
        for d in diff_states(before, after):
            events.append(
                {
                    "time": t,
                    "resource": d.resource,
                    "field_class": field_class(d.path),
                    "manager": d.manager or UNKNOWN_MANAGER,
                }
            )
    span = (snaps[-1][0] - snaps[0][0]).total_seconds() / 86400.0
    frame = pd.DataFrame(events, columns=["time", "resource", "field_class", "manager"])
    names = {rid for s in states for rid in s}
    return _tidy(frame, names, max(span, 1e-6))


def from_changelog(path: Path) -> pd.DataFrame:
    """The tidy table of a CSV change log (``time, resource, field_class, manager``)."""
    check_size(path, "telemetry")
    try:
        df = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read the change log: {exc}", source=str(path)) from None
    need = ["time", "resource", "field_class", "manager"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; expected {need}", source=str(path))
    times = [parse_time(str(t)) for t in df["time"]]
    bad = [i for i, t in enumerate(times) if t is None]
    if bad:
        raise InputError(
            f"row {bad[0] + 2}: time {df['time'].iloc[bad[0]]!r} is not ISO-8601", source=str(path)
        )
    df = df.assign(time=pd.Series(times, index=df.index)).fillna(
        {"manager": UNKNOWN_MANAGER, "field_class": "other"}
    )
    span = (max(times) - min(times)).total_seconds() / 86400.0  # type: ignore[type-var,operator]
    return _tidy(df, df["resource"], max(span, 1e-6))


def _classes_of(tree: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if not isinstance(tree, dict):
        return out
    for k, v in tree.items():
        if k == ".":
            continue
        step = k[2:] if k.startswith("f:") else "0"
        path = f"{prefix}/{step}"
        if not v or v == {".": {}}:
            out.add(field_class(path))
        else:
            out |= _classes_of(v, path)
    return out


def from_managed_fields(objects: dict[str, K8sObject], now: datetime) -> pd.DataFrame:
    """The tidy table from the observed objects' managedFields: each manager's last write is
    one change of every field class it owns, over the time since the oldest object was
    created. Writes at creation (the first manager of an object) are not changes."""
    events = []
    start = now
    for obj in objects.values():
        meta = obj.raw.get("metadata") or {}
        created = parse_time(str(meta.get("creationTimestamp") or ""))
        if created is not None:
            start = min(start, created)
        for entry in meta.get("managedFields") or []:
            if not isinstance(entry, dict) or entry.get("subresource") == "status":
                continue
            t = parse_time(str(entry.get("time") or ""))
            if t is None or (created is not None and t <= created):
                continue
            for cls in _classes_of(entry.get("fieldsV1")) - {"metadata"}:
                events.append(
                    {
                        "time": t,
                        "resource": obj.id,
                        "field_class": cls,
                        "manager": str(entry.get("manager") or UNKNOWN_MANAGER),
                    }
                )
    span = (now - start).total_seconds() / 86400.0
    frame = pd.DataFrame(events, columns=["time", "resource", "field_class", "manager"])
    return _tidy(frame, objects, max(span, 1e-6))


def read_history(path: Path, *, namespace: str = "default") -> pd.DataFrame:
    """A folder of snapshots or a CSV change log, as the model's tidy table."""
    if path.is_dir():
        return from_snapshots(path, namespace=namespace)
    if not path.exists():
        raise InputError("file not found", source=str(path))
    return from_changelog(path)


__all__ = [
    "field_class",
    "from_changelog",
    "from_managed_fields",
    "from_snapshots",
    "parse_time",
    "read_history",
]
