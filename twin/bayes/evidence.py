"""Incident history in, tidy counts out (campaign runs and chaos results: :mod:`twin.bayes.runs`).

Every problem is a one-line :class:`~twin.errors.InputError` naming the file, the row (the
CSV line, or ``incidents[i]`` in JSON) and the column, e.g.
``history.csv:7: column exposure_days: must be >= 0, got -3``.

Two shapes of history are read:

- an **incident log** (CSV with a header, or JSON: a list, or ``{"window": {"start", "end"},
  "incidents": [...]}``), one row per incident with ``time``, ``service``, the fault kind
  (``fault_kind``/``kind``, or a ``symptom`` and ``cause`` to classify) and optionally
  ``duration`` (``"15m"``, ``"90s"``, ``"1h30m"``, ``"00:15:00"`` or seconds) and
  ``intensity``. Every known service is taken to have been exposed for the whole window
  (the JSON ``window``, else first to last incident), cut into periods;
- a **counts table** (CSV or Parquet): ``service, fault_kind, incidents, exposure_days`` and
  optionally ``period``, for services observed over different spans.

Campaign runs (``DIR/runs.parquet``, one row per run) and chaos-test results become binomial
rows ``slo, fault_kind, target, intensity, load, policy, source, trials, breaches``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import InputError
from twin.incidents import classify, parse_duration
from twin.safeload import check_size, loads_json, read_text
from twin.scenario import FAULT_KINDS

KINDS: tuple[str, ...] = tuple(sorted(FAULT_KINDS))
"""Every fault kind a scenario knows."""

COUNT_COLUMNS = ["service", "fault_kind", "period", "incidents", "exposure_days"]
INCIDENT_COLUMNS = ["service", "fault_kind", "time", "duration_minutes", "intensity"]
IMPACT_COLUMNS = [
    "slo",
    "fault_kind",
    "target",
    "intensity",
    "load",
    "policy",
    "source",
    "trials",
    "breaches",
]
SLO_COLUMNS = {
    "any": "slo_breached",
    "availability": "slo_availability_met",
    "latency_p99": "slo_latency_met",
}
"""Outcome per SLO: ``any`` reads a breach flag, the others an SLO-met flag."""


@dataclass(frozen=True)
class History:
    """Tidy incident history.

    ``counts``: one row per service, fault kind and period (zeros included) with
    ``incidents`` and ``exposure_days``. ``incidents``: one row per incident (empty for a
    counts table) with ``duration_minutes`` and ``intensity`` (NaN when unknown).
    """

    counts: pd.DataFrame
    incidents: pd.DataFrame
    source: str
    period_days: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(self.counts["service"]))

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(self.counts["fault_kind"]))


# -- helpers ----------------------------------------------------------------------------------


def _err(source: str, row: str | None, column: str | None, message: str) -> InputError:
    src = f"{source}:{row}" if row is not None and row.isdigit() else source
    where_parts = []
    if row is not None and not row.isdigit():
        where_parts.append(row)
    if column is not None:
        where_parts.append(f"column {column}")
    return InputError(message, source=src, where=" ".join(where_parts) or None)


def parse_horizon(text: str) -> float:
    """Days from ``"30d"``, ``"2w"``, ``"12h"``, ``"90m"`` or a bare number of days."""
    t = str(text).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(d|day|days|w|wk|weeks?|h|hr|hours?|m|min|minutes?)?", t)
    if not m:
        raise InputError(
            f"expected a span such as 30d, 2w or 12h, got {text!r}", source="--horizon"
        )
    value = float(m.group(1))
    unit = (m.group(2) or "d")[0]
    days = value * {"d": 1.0, "w": 7.0, "h": 1 / 24, "m": 1 / 1440}[unit]
    if days <= 0:
        raise InputError("must be longer than zero", source="--horizon")
    return days


def _read_table(path: Path) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """Rows (with their row label for errors), columns and, for JSON, the top-level object."""
    try:
        check_size(path, "telemetry")
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
            rows = df.to_dict(orient="records")
            return (
                [
                    {**{str(k).strip().lower(): v for k, v in r.items()}, "__row": str(i + 1)}
                    for i, r in enumerate(rows)
                ],
                [str(c).strip().lower() for c in df.columns],
                {},
            )
        text = read_text(path, "telemetry")
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith(("[", "{")):
        try:
            data = loads_json(text, str(path), "telemetry")
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from None
        top: dict[str, Any] = data if isinstance(data, dict) else {}
        items = data.get("incidents", data.get("rows")) if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
            raise InputError(
                'expected a list of incident objects (or {"incidents": [...]})', source=str(path)
            )
        cols: list[str] = []
        out = []
        for i, r in enumerate(items):
            norm = {str(k).strip().lower(): v for k, v in r.items()}
            cols += [c for c in norm if c not in cols]
            out.append({**norm, "__row": f"incidents[{i}]"})
        return out, cols, top
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        if isinstance(exc, pd.errors.EmptyDataError):
            raise InputError(
                "empty history: the file has no header and no rows", source=str(path)
            ) from None
        raise InputError(f"invalid CSV: {str(exc).splitlines()[0]}", source=str(path)) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    lines = _csv_lines(text)
    rows = df.to_dict(orient="records")
    return (
        [
            {
                **{str(k): v for k, v in r.items()},
                "__row": str(lines[i]) if i < len(lines) else str(i + 2),
            }
            for i, r in enumerate(rows)
        ],
        list(df.columns),
        {},
    )


def _csv_lines(text: str) -> list[int]:
    """1-based file line of each data row (blank lines skipped, header on the first)."""
    out = []
    seen_header = False
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if not seen_header:
            seen_header = True
            continue
        out.append(n)
    return out


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""


def _number(v: Any, source: str, row: str, column: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _err(source, row, column, f"expected a number, got {v!r}") from None
    if math.isnan(x) or math.isinf(x):
        raise _err(source, row, column, f"expected a finite number, got {v!r}")
    return x


def _check_service(
    name: str,
    known: set[str] | None,
    source: str,
    row: str,
    column: str,
    hint: str = "",
) -> None:
    if not name:
        raise _err(source, row, column, "service is empty")
    if known is not None and name not in known:
        listed = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
        raise _err(source, row, column, f"unknown service {name!r} (known: {listed}){hint}")


def _check_kind(kind: str, source: str, row: str, column: str) -> str:
    k = kind.strip().lower()
    if k not in KINDS:
        raise _err(
            source, row, column, f"unknown fault kind {kind!r} (expected one of {', '.join(KINDS)})"
        )
    return k


# -- history ----------------------------------------------------------------------------------


def read_history(
    path: str | Path,
    *,
    services: Iterable[str] | None = None,
    kinds: Iterable[str] = (),
    period_days: float = 30.0,
    services_hint: str = "",
) -> History:
    """Read an incident log or a counts table into a :class:`History`.

    ``services``: the known services (topology or campaign); every one gets rows, incidents
    naming any other are refused. ``kinds``: fault kinds to model besides those in the log.
    """
    p = Path(path)
    source = str(p)
    rows, cols, top = _read_table(p)
    known = set(services) if services is not None else None
    hint = f"; {services_hint}" if services_hint else ""
    if not rows:
        raise InputError(
            "empty history: no incidents (a model needs evidence: give at least "
            "one row, or a counts table with zero counts and the exposure)",
            source=source,
        )
    if "exposure_days" in cols or "exposure" in cols:
        return _counts_table(rows, cols, source, known, kinds, hint)
    return _incident_log(rows, cols, top, source, known, kinds, period_days, hint)


def _counts_table(
    rows: list[dict[str, Any]],
    cols: list[str],
    source: str,
    known: set[str] | None,
    kinds: Iterable[str],
    hint: str = "",
) -> History:
    exposure_col = "exposure_days" if "exposure_days" in cols else "exposure"
    kind_col = "fault_kind" if "fault_kind" in cols else "kind"
    count_col = "incidents" if "incidents" in cols else "count"
    for need in ("service", kind_col, count_col):
        if need not in cols:
            raise InputError(
                f"counts table: missing column {need!r} (expected service, "
                "fault_kind, incidents, exposure_days and optionally period)",
                source=source,
            )
    out = []
    for r in rows:
        row = r["__row"]
        svc = str(r.get("service", "")).strip()
        _check_service(svc, known, source, row, "service", hint)
        kind = _check_kind(str(r.get(kind_col, "")), source, row, kind_col)
        n = _number(r.get(count_col), source, row, count_col)
        if n < 0 or n != int(n):
            raise _err(source, row, count_col, f"must be a whole number >= 0, got {r[count_col]!r}")
        e = _number(r.get(exposure_col), source, row, exposure_col)
        if e < 0:
            raise _err(
                source,
                row,
                exposure_col,
                f"must be >= 0 (exposure cannot be negative), got {r[exposure_col]!r}",
            )
        if e == 0 and n > 0:
            raise _err(source, row, exposure_col, f"{int(n)} incident(s) with zero exposure")
        period = str(r.get("period", "")).strip() or "all"
        out.append((svc, kind, period, int(n), e))
    counts = pd.DataFrame(out, columns=COUNT_COLUMNS)
    counts = counts.groupby(["service", "fault_kind", "period"], as_index=False, sort=False).sum()
    extra = [k for k in kinds if k not in set(counts["fault_kind"])]
    notes = []
    if extra:
        notes.append(f"kinds without history rows get no exposure: {', '.join(extra)}")
    if float(counts["exposure_days"].sum()) <= 0:
        raise InputError("empty history: total exposure is zero", source=source)
    empty = pd.DataFrame(
        {
            c: pd.Series(dtype=t)  # type: ignore[call-overload]
            for c, t in zip(
                INCIDENT_COLUMNS, [str, str, "datetime64[ns, UTC]", float, float], strict=True
            )
        }
    )
    return History(counts, empty, source, None, notes)


def _incident_log(
    rows: list[dict[str, Any]],
    cols: list[str],
    top: dict[str, Any],
    source: str,
    known: set[str] | None,
    kinds: Iterable[str],
    period_days: float,
    hint: str = "",
) -> History:
    if "service" not in cols:
        raise InputError(
            "incident log: missing column 'service' (expected time, service, "
            "fault_kind or symptom, and optionally duration, intensity)",
            source=source,
        )
    if "time" not in cols:
        raise InputError("incident log: missing column 'time'", source=source)
    kind_col = next((c for c in ("fault_kind", "kind") if c in cols), None)
    if kind_col is None and "symptom" not in cols:
        raise InputError(
            "incident log: missing column 'fault_kind' (or 'symptom' to classify)", source=source
        )
    recs = []
    for r in rows:
        row = r["__row"]
        svc = str(r.get("service", "")).strip()
        _check_service(svc, known, source, row, "service", hint)
        if kind_col is not None and not _blank(r.get(kind_col)):
            kind = _check_kind(str(r[kind_col]), source, row, kind_col)
        else:
            text = f"{r.get('symptom', '')} {r.get('cause', '')}"
            found = classify(text)
            if found is None:
                col = "symptom" if kind_col is None else kind_col
                raise _err(
                    source,
                    row,
                    col,
                    f"cannot tell the fault kind from {text.strip()!r}: add a fault_kind column",
                )
            kind = found
        t = pd.to_datetime(str(r.get("time")), utc=True, errors="coerce")
        if _blank(r.get("time")) or pd.isna(t):
            raise _err(source, row, "time", f"expected a date or time, got {r.get('time')!r}")
        minutes = math.nan
        if "duration_minutes" in cols and not _blank(r.get("duration_minutes")):
            minutes = _number(r["duration_minutes"], source, row, "duration_minutes")
            dcol = "duration_minutes"
        else:
            dcol = "duration"
            try:
                secs = parse_duration(r.get("duration"))
            except ValueError as exc:
                raise _err(source, row, "duration", str(exc)) from None
            if secs is not None:
                minutes = secs / 60.0
        if not math.isnan(minutes) and minutes < 0:
            raise _err(source, row, dcol, f"must be >= 0, got {r.get(dcol)!r}")
        intensity = math.nan
        if not _blank(r.get("intensity")):
            intensity = _number(r["intensity"], source, row, "intensity")
            if intensity < 0:
                raise _err(source, row, "intensity", f"must be >= 0, got {r['intensity']!r}")
        recs.append((svc, kind, t, minutes, intensity))
    inc = pd.DataFrame(recs, columns=INCIDENT_COLUMNS)
    found_window = top.get("window")
    window: dict[str, Any] = found_window if isinstance(found_window, dict) else {}
    start = _window_end(window, "start", source) or inc["time"].min()
    end = _window_end(window, "end", source) or inc["time"].max()
    if (inc["time"] < start).any() or (inc["time"] > end).any():
        raise InputError(
            "incidents fall outside the declared window", source=source, where="window"
        )
    span = (end - start).total_seconds() / 86400.0
    if span <= 0:
        raise InputError(
            "the log covers no time (one instant): give a JSON "
            '{"window": {"start", "end"}} or a counts table with exposure_days',
            source=source,
        )
    if period_days <= 0:
        raise InputError("period must be longer than zero", source=source)
    n_periods = max(1, math.ceil(span / period_days - 1e-9))
    offs = ((inc["time"] - start).dt.total_seconds() / 86400.0).to_numpy()
    inc_period = np.minimum((offs // period_days).astype(int), n_periods - 1)
    svc_list = sorted(known) if known is not None else sorted(set(inc["service"]))
    kind_list = list(dict.fromkeys([*sorted(set(inc["fault_kind"])), *kinds]))
    exposure = [min(period_days, span - p * period_days) for p in range(n_periods)]
    tally: dict[tuple[str, str, int], int] = {}
    for s, k, per in zip(inc["service"], inc["fault_kind"], inc_period, strict=True):
        tally[(s, k, int(per))] = tally.get((s, k, int(per)), 0) + 1
    out = [
        (s, k, f"p{p:03d}", tally.get((s, k, p), 0), exposure[p])
        for s in svc_list
        for k in kind_list
        for p in range(n_periods)
    ]
    counts = pd.DataFrame(out, columns=COUNT_COLUMNS)
    notes = [
        f"{len(inc)} incidents over {span:.1f} days in {n_periods} period(s) of "
        f"{period_days:g} days; every service taken as exposed for the whole window"
    ]
    return History(counts, inc.sort_values("time", ignore_index=True), source, period_days, notes)


def _window_end(window: dict[str, Any], key: str, source: str) -> pd.Timestamp | None:
    if key not in window:
        return None
    t = pd.to_datetime(window[key], utc=True, errors="coerce")
    if pd.isna(t):
        raise InputError(
            f"expected a date or time, got {window[key]!r}", source=source, where=f"window.{key}"
        )
    return pd.Timestamp(t)


def history_from_counts(counts: pd.DataFrame, *, source: str = "<frame>") -> History:
    """A :class:`History` from a counts frame built in code (tests, benchmarks)."""
    df = counts.copy()
    if "period" not in df:
        df["period"] = "all"
    bad = df[df["exposure_days"] < 0]
    if len(bad):
        i = int(bad.index[0])
        raise _err(
            source, f"row {i}", "exposure_days", "must be >= 0 (exposure cannot be negative)"
        )
    if df.empty or float(df["exposure_days"].sum()) <= 0:
        raise InputError("empty history: no exposure", source=source)
    empty = pd.DataFrame(columns=INCIDENT_COLUMNS)
    return History(df[COUNT_COLUMNS].reset_index(drop=True), empty, source)
