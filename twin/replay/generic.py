"""The generic format: anyone's windows and faults, in two plain files (docs/replay.md).

- windows: every ``*.csv`` in the folder, one row per window: ``time`` (end of the window,
  Unix seconds), ``p50`` and ``p99`` (entry latency, seconds), ``success`` (share of
  requests that succeeded, 0-1), ``rate`` (entry requests per second); optional ``mean``
  (seconds), ``seconds`` (the window's length; default the median gap between times) and
  ``segment`` (separate captures). Empty cells are "not measured".
- faults: one ``*.json`` in the folder, a list of ``{start, end, target, kind}`` (Unix
  seconds, a service or ``a->b`` edge, a twin fault kind) with an optional ``magnitude`` (the
  kind's intensity: seconds of delay, a probability, a factor; without one, ``--fit first``
  fits it on the first fault of its kind) and ``label``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.bounds import Finite
from twin.errors import InputError
from twin.io import parse_model
from twin.replay.document import Fault, Observed, Window
from twin.replay.mapping import Plan, by_kind
from twin.safeload import check_size, loads_json, read_text
from twin.topology import Topology

COLUMNS = ("time", "p50", "p99", "success", "rate")
OPTIONAL = ("mean", "seconds", "segment")


class GenericFault(BaseModel):
    """One fault of the generic fault list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: Finite = Field(description="Unix seconds")
    end: Finite = Field(description="Unix seconds, after start")
    target: str = Field(min_length=1, description="a service or an 'a->b' call edge")
    kind: str = Field(min_length=1, description="a twin fault kind (twin.faults)")
    magnitude: Finite | None = Field(default=None, description="the kind's intensity")
    label: str | None = Field(default=None, description="how tables name the fault")
    segment: str = Field(default="", description="the capture its windows are in")

    @model_validator(mode="after")
    def _ordered(self) -> GenericFault:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class GenericFaults(BaseModel):
    """The fault list (the file holds the list itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    faults: list[GenericFault]


def _windows(path: Path) -> list[Window]:
    check_size(path, "telemetry")
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read CSV ({e})", source=str(path)) from e
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})",
            source=str(path),
        )
    extra = [c for c in df.columns if c not in COLUMNS + OPTIONAL]
    if extra:
        raise InputError(f"unknown column(s) {', '.join(map(str, extra))}", source=str(path))
    num = {c: pd.to_numeric(df[c], errors="coerce") for c in df.columns if c != "segment"}
    for c, values in num.items():
        bad = df[c].notna() & values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise InputError(f"{c}: not a number", source=f"{path}:{row}")
    if num["time"].isna().any():
        row = int(np.flatnonzero(num["time"].isna().to_numpy())[0]) + 2
        raise InputError("time: empty", source=f"{path}:{row}")
    t = num["time"].to_numpy(dtype=float)
    gap = float(np.median(np.diff(np.sort(t)))) if len(t) > 1 else 60.0
    out = []
    for i in range(len(df)):
        vals = {
            c: (float(num[c].iloc[i]) if math.isfinite(float(num[c].iloc[i])) else None)
            for c in ("p50", "p99", "success", "rate", "mean")
            if c in num
        }
        seconds = float(num["seconds"].iloc[i]) if "seconds" in num else gap
        seg = str(df["segment"].iloc[i]) if "segment" in df.columns else ""
        try:
            out.append(
                Window(
                    time=float(t[i]),
                    seconds=seconds if math.isfinite(seconds) else gap,
                    segment=seg if seg != "nan" else "",
                    **vals,
                )
            )
        except ValueError as e:
            first = str(e).splitlines()
            raise InputError(
                f"out of range ({first[1].strip() if len(first) > 1 else e})",
                source=f"{path}:{i + 2}",
            ) from None
    return out


def read(folder: Path, topology: Topology) -> Observed:
    """The windows (``*.csv``) and the fault list (``*.json``) in ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(
            "expected a folder with windows (*.csv) and faults (*.json)", source=str(root)
        )
    tables = sorted(p for p in root.glob("*.csv") if p.is_file())
    lists = sorted(p for p in root.glob("*.json") if p.is_file())
    if not tables:
        raise InputError("no windows table (*.csv)", source=str(root))
    if len(lists) > 1:
        raise InputError(
            f"more than one fault list ({', '.join(p.name for p in lists)}): expected one",
            source=str(root),
        )
    windows = sorted((w for p in tables for w in _windows(p)), key=lambda w: w.time)
    faults: list[Fault] = []
    if lists:
        path = lists[0]
        text = read_text(path, "telemetry")
        try:
            data = loads_json(text, str(path), "telemetry")
        except ValueError as e:
            raise InputError(f"cannot read the fault list ({e})", source=str(path)) from e
        doc = parse_model(GenericFaults, {"faults": data}, source=str(path))
        faults = [
            Fault(
                start=f.start,
                end=f.end,
                target=f.target,
                type=f.kind,
                label=f.label or f"{f.start:.0f} {f.target} {f.kind}",
                segment=f.segment,
                kind=f.kind,
                magnitude=f.magnitude,
            )
            for f in doc.faults
        ]
    return Observed(
        format="generic",
        windows=windows,
        faults=sorted(faults, key=lambda f: f.start),
        files=[str(p) for p in (*tables, *lists)],
    )


def plan(fault: Fault, topology: Topology) -> Plan | str:
    """One fault of the given kind at the given target, at the given magnitude (if any)."""
    return by_kind(fault.kind or fault.type, fault.target, topology, fault.magnitude)
