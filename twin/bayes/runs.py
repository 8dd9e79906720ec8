"""Campaign runs and chaos-test results -> binomial evidence of SLO breach given a fault.

Reads only by column name, so any producer works: ``DIR/runs.parquet`` (one row per run;
``docs/risk.md`` lists the columns used), ``DIR/summary.json`` for the SLO targets, and the
failure-mode database's ``chaos_results`` table through plain SQLAlchemy (no import of the
store's code). Every problem is one :class:`~twin.errors.InputError` naming file and column.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from twin.bayes.evidence import IMPACT_COLUMNS, KINDS, SLO_COLUMNS, _err
from twin.errors import InputError
from twin.safeload import check_size, read_json

# -- campaign runs and chaos results ----------------------------------------------------------


@dataclass(frozen=True)
class Impact:
    """Binomial evidence of SLO breach given a fault (``rows``) and what the risk needs besides:
    the SLO targets, the policies in campaign order, per-fault unavailability, intensities."""

    rows: pd.DataFrame
    slo: dict[str, float]
    policies: list[str]
    targets: list[str]
    unavailability: pd.DataFrame  # fault_kind, target, policy, unavailability (mean, breaching)
    intensities: pd.DataFrame  # fault_kind, intensity (the levels campaigns ran)
    source: str
    notes: list[str] = field(default_factory=list)


_RUN_NEEDS = ("fault_kind", "target", "intensity", "load", "policy")


def read_runs(campaign_dir: str | Path) -> tuple[pd.DataFrame, dict[str, float], str]:
    """``DIR/runs.parquet`` and the SLO targets from ``DIR/summary.json`` (when present)."""
    d = Path(campaign_dir)
    path = d / "runs.parquet" if d.is_dir() or not d.suffix else d
    if not path.exists():
        raise InputError("no runs.parquet here: run `twin campaign` first", source=str(d))
    check_size(path, "telemetry")
    try:
        runs = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None
    slo: dict[str, float] = {}
    summary = path.parent / "summary.json"
    if summary.exists():
        try:
            data = read_json(summary, "telemetry")[0]
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read: {exc}", source=str(summary)) from None
        for k, v in (data.get("slo") or {}).items():
            if isinstance(v, (int, float)):
                slo[str(k)] = float(v)
    return runs, slo, str(path)


def impact_rows(
    runs: pd.DataFrame, *, source: str, origin: str = "sim"
) -> tuple[pd.DataFrame, list[str]]:
    """Runs (one per row) -> binomial rows per SLO; ``origin`` is ``sim`` or ``real``."""
    notes: list[str] = []
    cols = set(runs.columns)
    for c in _RUN_NEEDS:
        if c not in cols:
            raise InputError(
                f"missing column {c!r} (expected one row per run with "
                f"{', '.join(_RUN_NEEDS)} and SLO outcome flags)",
                source=source,
            )
    if not any(c in cols for c in SLO_COLUMNS.values()):
        raise InputError(
            "missing SLO outcome columns (slo_breached, slo_availability_met, slo_latency_met)",
            source=source,
        )
    df = runs.reset_index(drop=True)
    kinds = df["fault_kind"].astype(str)
    single = ~kinds.str.contains(r"\+") & (kinds != "none")
    if (~single).any():
        notes.append(
            f"{source}: {int((~single).sum())} fault-free or multi-fault run(s) "
            "left out of the impact model"
        )
    df = df[single]
    if df.empty:
        raise InputError("no single-fault runs to learn impact from", source=source)
    for i, k in zip(df.index, df["fault_kind"], strict=True):
        if str(k) not in KINDS:
            raise _err(source, f"row {i}", "fault_kind", f"unknown fault kind {k!r}")
    for col in ("intensity", "load"):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = vals < 0
        if bad.any():
            i = int(vals[bad].index[0])
            raise _err(source, f"row {i}", col, f"must be >= 0, got {vals[i]!r}")
    df = df.assign(
        intensity=pd.to_numeric(df["intensity"], errors="coerce").fillna(1.0),
        load=pd.to_numeric(df["load"], errors="coerce").fillna(1.0),
        policy=df["policy"].astype(str),
        target=df["target"].astype(str),
        fault_kind=df["fault_kind"].astype(str),
    )
    parts = []
    for slo, col in SLO_COLUMNS.items():
        if col not in cols:
            continue
        flag = df[col]
        keep = flag.notna()
        if not keep.any():
            continue
        breach = flag[keep].astype(bool)
        if slo != "any":
            breach = ~breach
        sub = df.loc[keep, ["fault_kind", "target", "intensity", "load", "policy"]].copy()
        sub["breach"] = breach.astype(int).to_numpy()
        g = sub.groupby(
            ["fault_kind", "target", "intensity", "load", "policy"], as_index=False, sort=False
        )["breach"].agg(["count", "sum"])
        g = g.rename(columns={"count": "trials", "sum": "breaches"})
        g.insert(0, "slo", slo)
        g["source"] = origin
        parts.append(g)
    if not parts:
        raise InputError("every SLO outcome is empty (no SLO judged)", source=source)
    rows = pd.concat(parts, ignore_index=True)[IMPACT_COLUMNS]
    rows["trials"] = rows["trials"].astype(int)
    rows["breaches"] = rows["breaches"].astype(int)
    return rows, notes


def build_impact(
    runs: pd.DataFrame,
    *,
    source: str,
    slo: dict[str, float] | None = None,
    real: Sequence[tuple[pd.DataFrame, str]] = (),
) -> Impact:
    """Campaign runs plus any real chaos results -> :class:`Impact`."""
    rows, notes = impact_rows(runs, source=source, origin="sim")
    frames = [rows]
    first = (
        str(runs.sort_values("policy_index")["policy"].iloc[0])
        if ("policy_index" in runs and len(runs))
        else str(runs["policy"].iloc[0])
    )
    for frame, where in real:
        if "policy" in frame:
            frame = frame.assign(policy=frame["policy"].fillna("").astype(str).replace("", first))
        else:
            frame = frame.assign(policy=first)
        r, n = impact_rows(frame, source=where, origin="real")
        frames.append(r)
        notes += n
    allrows = pd.concat(frames, ignore_index=True)
    policies = list(
        dict.fromkeys(
            runs.sort_values("policy_index")["policy"].astype(str)
            if "policy_index" in runs
            else runs["policy"].astype(str)
        )
    )
    policies += [p for p in dict.fromkeys(allrows["policy"]) if p not in policies]
    single = runs[
        ~runs["fault_kind"].astype(str).str.contains(r"\+")
        & (runs["fault_kind"].astype(str) != "none")
    ]
    unav = _unavailability(single)
    inten = single[["fault_kind", "intensity"]].copy()
    inten["intensity"] = pd.to_numeric(inten["intensity"], errors="coerce").fillna(1.0)
    targets = list(dict.fromkeys(allrows["target"]))
    return Impact(
        allrows,
        dict(slo or {}),
        policies,
        targets,
        unav,
        inten.reset_index(drop=True),
        source,
        notes,
    )


def _unavailability(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean share of requests failed while the fault lasted, over runs that breached."""
    cols = ["fault_kind", "target", "policy", "unavailability"]
    if "availability_fault" not in runs or "slo_breached" not in runs:
        return pd.DataFrame(columns=cols)
    df = runs[runs["slo_breached"].fillna(False).astype(bool)]
    av = pd.to_numeric(df["availability_fault"], errors="coerce")
    if "availability" in df:
        av = av.fillna(pd.to_numeric(df["availability"], errors="coerce"))
    df = df.assign(unavailability=(1.0 - av).clip(0.0, 1.0))
    df = df[df["unavailability"].notna()]
    out = df.groupby(["fault_kind", "target", "policy"], as_index=False).agg(
        unavailability=("unavailability", "mean")
    )
    return out[cols]


def read_chaos(url: str) -> tuple[pd.DataFrame, str]:
    """Chaos-test results from the failure-mode database (SQLAlchemy URL) or a CSV/Parquet file.

    A result row carries the same fields as a campaign run: fault_kind, target, intensity,
    load, policy and SLO outcome flags.
    """
    p = Path(url)
    if "://" not in url:
        if not p.exists():
            raise InputError("file not found", source=url)
        check_size(p, "telemetry")
        if p.suffix.lower() == ".parquet":
            return pd.read_parquet(p), url
        try:
            return pd.read_csv(p), url
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"invalid CSV: {str(exc).splitlines()[0]}", source=url) from None
    return _chaos_from_db(url)


CHAOS_TABLES = ("chaos_results", "chaos_tests", "chaos_runs", "chaos")


def _chaos_from_db(url: str) -> tuple[pd.DataFrame, str]:
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InputError(f"not a database URL: {exc}", source=url) from None
    db_file = parsed.database
    on_disk = parsed.get_backend_name() == "sqlite" and db_file not in (None, "", ":memory:")
    if on_disk and not Path(str(db_file)).exists():  # connecting would create an empty file
        raise InputError("database file not found", source=url)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            table = next((t for t in CHAOS_TABLES if t in names), None)
            if table is None:
                raise InputError(
                    f"no chaos results table (looked for {', '.join(CHAOS_TABLES)})", source=url
                )
            frame = pd.read_sql_table(table, conn)
    except sa.exc.SQLAlchemyError as exc:
        raise InputError(
            f"cannot read the database: {str(exc).splitlines()[0]}", source=url
        ) from None
    finally:
        if "engine" in locals():
            engine.dispose()
    if "passed" in frame and "fault_kinds" in frame:
        return chaos_runs(frame), f"{url}#{table}"
    return frame, f"{url}#{table}"


def _as_json(v: Any) -> Any:
    if isinstance(v, (bytes, str)):
        try:
            return json.loads(v)
        except (json.JSONDecodeError, TypeError):
            return v
    return v


def _pick(sources: Sequence[Any], keys: Sequence[str]) -> Any:
    for src in sources:
        if isinstance(src, dict):
            for k in keys:
                if src.get(k) not in (None, ""):
                    return src[k]
    return None


def chaos_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The failure-mode database's chaos results (``chaos_results``: fault_kinds, faults,
    parameters, passed) as run-shaped rows: one fault kind, a target (``target`` or
    ``service`` of the fault, its arguments or the test parameters), intensity and load
    when recorded, the policy in force (``parameters.policy``; blank: the campaign's
    first), and ``slo_breached = not passed``. Results with several kinds or no target
    are left out (``note`` says which); results without a verdict (``passed`` empty, as for
    a Chaos Mesh experiment) are not evidence either way and are skipped."""
    rows = []
    for i, r in frame.reset_index(drop=True).iterrows():
        if pd.isna(r.get("passed")):  # no verdict: the tool recorded the injection only
            continue
        kinds = _as_json(r.get("fault_kinds")) or []
        faults = _as_json(r.get("faults")) or []
        params = _as_json(r.get("parameters")) or {}
        first = faults[0] if isinstance(faults, list) and faults else {}
        args = first.get("arguments") if isinstance(first, dict) else None
        srcs = [first, args, params]
        target = _pick(srcs, ("target", "service", "app", "deployment"))
        ok = isinstance(kinds, list) and len(kinds) == 1 and target is not None
        intensity = _pick(srcs, ("intensity",))
        rows.append(
            {
                "fault_kind": kinds[0] if ok else "+".join(map(str, kinds or [])) or "none",
                "target": str(target) if target is not None else "-",
                "intensity": float(intensity) if isinstance(intensity, (int, float)) else None,
                "load": float(params.get("load", 1.0)) if isinstance(params, dict) else 1.0,
                "policy": str(params.get("policy", "")) if isinstance(params, dict) else "",
                "slo_breached": not bool(r.get("passed")),
                "test_id": r.get("test_id", i),
            }
        )
    return pd.DataFrame(rows)
