"""Trace files -> one tidy span table, whatever the format; problems counted, never fatal.

Reads OpenTelemetry OTLP/JSON (``resourceSpans -> scopeSpans -> spans``, one document or the
collector file exporter's one-per-line), Jaeger JSON (query API / UI download, ``data[].spans``
with ``references`` and ``processes``), Zipkin v2 JSON (a list of spans) and flat span tables
(CSV or Parquet, as tracing datasets publish them). The result has one row per span:

``trace_id, span_id, parent_id, service, instance, operation, kind, start, end, error,
attributes``

with times in seconds since the epoch, ``parent_id`` empty for roots, ``kind`` one of
``server client producer consumer internal`` or empty, and ``attributes`` a JSON text that
has already been masked (:mod:`twin.calibrate.mask`).

Format traps handled here: OTLP/JSON ids are hex (protobuf's JSON mapping would read them as
base64; ids that *are* base64 are converted to hex); Jaeger's UI download nests whole parent
spans inside each reference (only ``spanID`` is read); Zipkin's shared client/server spans
reuse one id (the server half gets its own); Kubernetes pod names carry two replica-set
suffixes. A truncated JSON file is cut back to its last complete value and read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.calibrate.json_formats import (
    _PARSERS,
    _json_documents,
    detect_format,
    repair_truncated_json,
)
from twin.calibrate.mask import Masker
from twin.calibrate.spans import (
    COLUMNS,
    SKEW_TOLERANCE,
    ReadReport,
    Row,
    normalize_id,
    service_from_pod,
)
from twin.calibrate.table_format import _read_table
from twin.calibrate.timeline import far_in_time, time_fences
from twin.errors import InputError
from twin.safeload import check_size, loads_json, read_text

__all__ = [
    "COLUMNS",
    "ReadReport",
    "detect_format",
    "normalize_id",
    "read_traces",
    "repair_truncated_json",
    "service_from_pod",
]


CHUNK_ROWS = 100_000
"""Spans gathered before they become a table; files are read as they are parsed (see
:func:`_read_file`), so a large file costs its table, not its text and its parsed objects."""


def read_traces(
    paths: Iterable[str | Path], *, masker: Masker | None = None
) -> tuple[pd.DataFrame, ReadReport]:
    """Read every file into one tidy table (see the module docstring) and a report.

    A file that cannot be read at all raises :class:`InputError`; anything less (a bad span,
    a truncated tail, a missing parent, a time that is not finite or far from the rest) is
    counted in the report and skipped.
    """
    masker = masker or Masker()
    report = ReadReport()
    frames: list[pd.DataFrame] = []
    rows: list[Row] = []
    for p in paths:
        path = Path(p)
        report.files.append(str(path))
        if not path.is_file():
            raise InputError("trace file not found", source=str(path))
        for row in _read_file(path, masker, report):
            rows.append(row)
            if len(rows) >= CHUNK_ROWS:
                frames.append(pd.DataFrame(rows, columns=COLUMNS))
                rows = []
    if rows or not frames:
        frames.append(pd.DataFrame(rows, columns=COLUMNS))
    report.masked = masker.masked
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    df = _check(df, report)
    return df, report


def _read_file(path: Path, masker: Masker, report: ReadReport) -> Iterator[Row]:
    """The rows of one file, produced as the file is read: span tables chunk by chunk, JSON
    lines line by line; one JSON document (which has to be parsed whole) at once."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".parquet", ".pq") or path.name.endswith(".csv.gz"):
        yield from _read_table(path, masker, report)
        return
    found = False
    for doc in _json_file_documents(path, report):
        found = True
        fmt = detect_format(doc)
        if fmt is None:
            raise InputError(
                "not a trace format we know (expected OTLP/JSON resourceSpans, Jaeger "
                "data[].spans, Zipkin v2 span list, or a CSV/Parquet span table)",
                source=str(path),
            )
        yield from _PARSERS[fmt](doc, masker, report)
    if not found:
        raise InputError("no JSON trace document found", source=str(path))


def _json_file_documents(path: Path, report: ReadReport) -> Iterator[Any]:
    """The JSON documents of a trace file. One value per line (the OpenTelemetry collector's
    file exporter) is streamed: a line is parsed, its spans read, and it is let go. Anything
    else is one document (or a truncated one), read whole within the byte limit."""
    check_size(path, "telemetry")
    src = str(path)
    try:
        with path.open(encoding="utf-8") as fh:
            lines = (ln for ln in fh if ln.strip())
            first = next(lines, None)
            if first is None:
                return
            try:
                doc = loads_json(first, src, "telemetry")
            except ValueError:  # not JSON, or a number too long to read
                doc = _NOT_ONE_LINE
            if doc is not _NOT_ONE_LINE:
                yield doc
                total = bad = 0
                for line in lines:
                    total += 1
                    try:
                        yield loads_json(line, src, "telemetry")
                    except ValueError:
                        bad += 1
                if bad > max(1, (total + 1) // 10):
                    raise InputError(
                        f"{bad} of {total + 1} lines are not JSON (one document per line was "
                        "expected after the first)",
                        source=src,
                    )
                report.add("unreadable JSON lines", bad)
                return
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read: not UTF-8 text ({exc.reason})", source=src) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=src) from None
    yield from _json_documents(read_text(path, "telemetry"), path, report)


_NOT_ONE_LINE = object()


def _check(df: pd.DataFrame, report: ReadReport) -> pd.DataFrame:
    """Drop what cannot be used, count it, and mark traces that are only partly usable.

    Adds ``partial`` (bool): the span's trace has a span whose parent is missing, or a remote
    child that starts before its parent (clock skew). Partial traces still witness call edges.
    """
    if df.empty:
        df["partial"] = pd.Series(dtype=bool)
        return df
    start = df["start"].to_numpy(dtype=float)
    end = df["end"].to_numpy(dtype=float)
    nonfinite = ~(np.isfinite(start) & np.isfinite(end))
    report.skipped_nonfinite += int(nonfinite.sum())
    report.time_fences = time_fences(start)  # every finite start, whatever its end
    far = far_in_time(start, report.time_fences) | far_in_time(end, report.time_fences)
    far &= ~nonfinite  # each skipped span is counted once
    report.skipped_outlier_time += int(far.sum())
    if nonfinite.any() or far.any():
        df = df[~(nonfinite | far)].reset_index(drop=True)
    if df.empty:
        df["partial"] = pd.Series(dtype=bool)
        return df
    unnamed = df["service"] == ""
    report.add("spans without a service name (kept as unknown-service)", int(unnamed.sum()))
    df.loc[unnamed, "service"] = "unknown-service"
    neg = df["end"] < df["start"]
    report.add("spans ending before they start (skipped)", int(neg.sum()))
    df = df[~neg]
    dup = df.duplicated(["trace_id", "span_id"], keep="first")
    report.add("duplicate span ids (later copies skipped)", int(dup.sum()))
    df = df[~dup].reset_index(drop=True)
    self_parent = df["parent_id"] == df["span_id"]
    df.loc[self_parent, "parent_id"] = ""
    report.add("spans naming themselves as parent (taken as roots)", int(self_parent.sum()))
    key = df["trace_id"] + "/" + df["span_id"]
    pkey = df["trace_id"] + "/" + df["parent_id"]
    has_parent = df["parent_id"] != ""
    present = pkey.isin(set(key))
    orphan = has_parent & ~present
    report.add("spans whose parent is missing", int(orphan.sum()))
    # clock skew: a child in another service starting well before its parent
    idx = pd.Series(np.arange(len(df)), index=key)
    pidx = idx.reindex(pkey).to_numpy()
    ok = has_parent.to_numpy() & ~np.isnan(pidx)
    pi = np.where(ok, np.nan_to_num(pidx), 0).astype(int)
    pstart = df["start"].to_numpy()[pi]
    psvc = df["service"].to_numpy()[pi]
    skew = (
        ok & (df["start"].to_numpy() < pstart - SKEW_TOLERANCE) & (df["service"].to_numpy() != psvc)
    )
    report.add("spans starting before their parent (clock skew)", int(skew.sum()))
    bad_traces = set(df.loc[orphan.to_numpy() | skew, "trace_id"])
    df["partial"] = df["trace_id"].isin(bad_traces)
    report.partial_traces = len(bad_traces)
    report.spans = len(df)
    report.traces = int(df["trace_id"].nunique())
    return df
