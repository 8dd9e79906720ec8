"""Flat span tables (CSV or Parquet, as tracing datasets publish them) -> span rows.

Column names are matched loosely (aliases below); time units are guessed from magnitudes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from twin.calibrate.mask import Masker
from twin.calibrate.spans import (
    _KINDS,
    ReadReport,
    Row,
    _row,
    normalize_id,
    service_from_pod,
)
from twin.errors import InputError
from twin.safeload import check_size

# -- flat tables -------------------------------------------------------------------------------

_ALIASES: dict[str, tuple[str, ...]] = {
    "trace_id": ("traceid", "trace"),
    "span_id": ("spanid", "id", "span"),
    "parent_id": ("parentid", "parentspanid", "parent", "pspanid"),
    "service": ("servicename", "service", "svc"),
    "pod": ("podname", "pod", "k8spodname", "instance", "instancename", "host"),
    "operation": ("operationname", "operation", "spanname", "name", "endpoint"),
    "start": ("starttimeunixnano", "starttime", "start", "timestamp", "startts"),
    "end": ("endtimeunixnano", "endtime", "end", "endts"),
    "duration": ("duration", "durationus", "durationms", "durationns", "elapsed", "rt"),
    "error": ("error", "iserror", "statuscode", "status", "httpstatuscode"),
    "kind": ("kind", "spankind"),
}

_ROOT_PARENTS = {"", "root", "0", "-1", "none", "null", "nan", "0000000000000000"}


def _seconds_factor(values: np.ndarray) -> float:
    """Unit of epoch timestamps from their size: ns, µs, ms or s."""
    med = float(np.nanmedian(np.abs(values))) if len(values) else 0.0
    if med > 1e17:
        return 1e-9
    if med > 1e14:
        return 1e-6
    if med > 1e11:
        return 1e-3
    return 1.0


def _duration_factor(name: str, start_factor: float) -> float:
    n = name.lower()
    if n.endswith("ns"):
        return 1e-9
    if n.endswith("us") or "micro" in n:
        return 1e-6
    if n.endswith("ms") or "milli" in n:
        return 1e-3
    return start_factor


CHUNK_ROWS = 100_000
"""Rows of a span table parsed at a time: a large table is read in chunks, never whole."""

_NAN_WORDS = {"nan", "+nan", "-nan"}


def _chunks(path: Path) -> Iterator[pd.DataFrame]:
    """The table in chunks of CHUNK_ROWS rows; an unreadable file is one InputError."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
                yield batch.to_pandas()
        else:
            with pd.read_csv(
                path,
                sep="\t" if path.suffix.lower() == ".tsv" else ",",
                dtype=str,
                on_bad_lines="skip",
                keep_default_na=False,
                chunksize=CHUNK_ROWS,
            ) as reader:
                yield from reader
    except InputError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
        raise InputError(f"cannot read span table: {exc}", source=str(path)) from None


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers of a column, and which cells are not numbers at all (empty, garbage); a NaN
    or an infinity written as such is a number that is not finite, counted apart."""
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    unreadable = np.isnan(num)
    if unreadable.any():
        words = values[unreadable].astype(str).str.strip().str.lower()
        unreadable[unreadable] = ~words.isin(_NAN_WORDS).to_numpy()
    return num, unreadable


def _read_table(path: Path, masker: Masker, report: ReadReport) -> Iterator[Row]:
    """The span rows of a table, chunk by chunk. Columns are matched on the first chunk, and
    the unit of its timestamps (ns, µs, ms or s) is guessed from it and kept for the file."""
    check_size(path, "telemetry")
    col: dict[str, str] = {}
    sf = 1.0
    bad = 0
    for n, raw in enumerate(_chunks(path)):
        if n == 0:
            col = _columns(raw, path)
            first = pd.to_numeric(raw[col["start"]], errors="coerce").to_numpy(dtype=float)
            sf = _seconds_factor(first[np.isfinite(first)])
            if "service" not in col:
                report.notes.append(
                    f"{path.name}: services from pod names (replica-set suffixes stripped)"
                )
        for row in _table_rows(raw, col, sf, masker):
            if row is None:
                bad += 1
            else:
                yield row
    report.add("malformed spans (skipped)", bad)


def _columns(raw: pd.DataFrame, path: Path) -> dict[str, str]:
    """Which column holds each field (aliases above), or an InputError naming what lacks."""
    norm = {re.sub(r"[^a-z0-9]", "", str(c).lower()): c for c in raw.columns}
    col: dict[str, str] = {}
    for field_, names in _ALIASES.items():
        for n in names:
            if n in norm:
                col[field_] = norm[n]
                break
    missing = [
        f for f in ("trace_id", "span_id", "parent_id", "operation", "start") if f not in col
    ]
    if "service" not in col and "pod" not in col:
        missing.append("service (or pod name)")
    if "end" not in col and "duration" not in col:
        missing.append("end (or duration)")
    if missing:
        raise InputError(
            f"span table lacks column(s) {', '.join(missing)}; "
            f"has {', '.join(map(str, raw.columns))}",
            source=str(path),
        )
    return col


def _table_rows(
    raw: pd.DataFrame, col: dict[str, str], sf: float, masker: Masker
) -> Iterator[Row | None]:
    """One chunk's rows; None for a row that is not a span (no ids, a time that is not a
    number). A time that is a number but not finite is passed on, to be counted as such."""
    n0 = len(raw)
    start, bad = _numbers(raw[col["start"]])
    start = start * sf
    if "end" in col:
        end, bad_end = _numbers(raw[col["end"]])
        end = end * sf
    else:
        dur, bad_end = _numbers(raw[col["duration"]])
        end = start + dur * _duration_factor(str(col["duration"]), sf)
    bad = bad | bad_end
    pods = raw[col["pod"]].astype(str) if "pod" in col else None
    if "service" in col:
        services = raw[col["service"]].astype(str)
    else:
        assert pods is not None
        services = pods.map(service_from_pod)
    instances = pods if pods is not None else services
    errors = (
        raw[col["error"]].astype(str).map(_table_error)
        if "error" in col
        else pd.Series(False, index=raw.index)
    )
    kinds = raw[col["kind"]].astype(str).str.lower() if "kind" in col else None
    trace = raw[col["trace_id"]].astype(str).map(normalize_id)
    span = raw[col["span_id"]].astype(str).map(normalize_id)
    parent = raw[col["parent_id"]].astype(str).str.strip()
    parent = parent.where(~parent.str.lower().isin(_ROOT_PARENTS), "").map(normalize_id)
    ops = raw[col["operation"]].astype(str).tolist()
    tl, sl, pl = trace.tolist(), span.tolist(), parent.tolist()
    svl, inl, erl = services.tolist(), instances.tolist(), errors.tolist()
    kl = kinds.tolist() if kinds is not None else [""] * n0
    for i in range(n0):
        if bad[i] or not tl[i] or not sl[i]:
            yield None
            continue
        kind = kl[i]
        yield _row(
            masker,
            tl[i],
            sl[i],
            pl[i],
            svl[i],
            inl[i],
            ops[i],
            kind if kind in _KINDS.values() else "",
            float(start[i]),
            float(end[i]),
            bool(erl[i]),
            {},
        )


def _table_error(v: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "1", "error", "status_code_error", "fail", "failed"):
        return True
    try:
        return float(s) >= 500
    except ValueError:
        return False


# -- checks ------------------------------------------------------------------------------------
