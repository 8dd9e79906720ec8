"""Reading what the other commands wrote (campaign and risk output folders) for the pages.

The pages read these folders by file and column name only, so they work on any folder
`twin campaign` or `twin risk` wrote, here or on another machine, without importing the
code that wrote them. Every problem is an :class:`InputError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from twin.errors import InputError
from twin.safeload import loads_json, read_text

CAMPAIGN_COLUMNS = ("scenario", "policy", "fault_kind", "target", "load", "replications")
"""Columns of ``aggregated.parquet`` the Campaigns page needs."""

CAMPAIGN_METRICS = {
    "error_rate": "error rate",
    "latency_p99": "p99 latency (s)",
    "availability": "availability",
    "blast_radius": "blast radius (services)",
}
"""Aggregated metric -> label; each has ``<m>_lo`` / ``<m>_hi`` 95% bounds beside it."""

RISK_ORDER = {
    "expected_breach_minutes": "expected breach minutes",
    "p_breach": "P(SLO breach within the horizon)",
    "rpn": "FMEA risk priority number",
}


@dataclass(frozen=True)
class CampaignOutput:
    """A campaign folder: the per-(scenario, policy) table and the summary."""

    folder: Path
    aggregated: pd.DataFrame
    summary: dict[str, Any]

    @property
    def policies(self) -> list[str]:
        return sorted(str(p) for p in self.aggregated["policy"].unique())

    @property
    def failure_modes(self) -> list[dict[str, Any]]:
        return list(self.summary.get("failure_modes", []))


@dataclass(frozen=True)
class RiskOutput:
    """A risk folder: ``risk.json`` as written by ``twin risk``."""

    folder: Path
    risk: dict[str, Any]

    @property
    def horizon_days(self) -> float:
        return float(self.risk.get("horizon_days", 0.0))


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("file not found", source=str(path))
    try:
        data = loads_json(read_text(path, "telemetry"), str(path), "telemetry")
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc})", source=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object at the top", source=str(path))
    return data


def load_campaign(folder: str | Path) -> CampaignOutput:
    """The campaign folder ``twin campaign --out`` wrote."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(
            "no such folder (run `twin campaign SPEC --out DIR` first)", source=str(folder)
        )
    table = folder / "aggregated.parquet"
    if not table.is_file():
        raise InputError("file not found: not a finished campaign folder", source=str(table))
    try:
        agg = pd.read_parquet(table)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"unreadable Parquet ({exc})", source=str(table)) from None
    for col in (*CAMPAIGN_COLUMNS, *CAMPAIGN_METRICS):
        if col not in agg.columns:
            raise InputError(f"column {col!r} missing", source=str(table))
    return CampaignOutput(folder, agg, _json(folder / "summary.json"))


def campaign_view(out: CampaignOutput, policy: str, metric: str) -> pd.DataFrame:
    """One policy's scenarios, worst first by ``metric`` (mean with its 95% bounds)."""
    if metric not in CAMPAIGN_METRICS:
        raise InputError(f"unknown metric {metric!r}; one of {', '.join(CAMPAIGN_METRICS)}")
    rows = out.aggregated[out.aggregated["policy"] == policy]
    cols = ["scenario", "fault_kind", "target", "load", "replications", metric]
    cols += [c for c in (f"{metric}_lo", f"{metric}_hi") if c in rows.columns]
    worse_is_lower = metric == "availability"
    return (
        rows[cols]
        .sort_values(metric, ascending=worse_is_lower, kind="stable")
        .reset_index(drop=True)
    )


def _interval(d: Any, where: str, source: str) -> tuple[float, float, float]:
    try:
        return float(d["mean"]), float(d["lo"]), float(d["hi"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where}: expected {{mean, lo, hi}}", source=source) from None


def load_risk(folder: str | Path) -> RiskOutput:
    """The risk folder ``twin risk --out`` wrote."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError("no such folder (run `twin risk ... --out DIR` first)", source=str(folder))
    path = folder / "risk.json"
    risk = _json(path)
    modes = risk.get("failure_modes")
    if not isinstance(modes, list):
        raise InputError("failure_modes: expected a list", source=str(path))
    for i, m in enumerate(modes):
        for key in ("service", "fault_kind", "rank"):
            if not isinstance(m, dict) or key not in m:
                raise InputError(f"failure_modes[{i}]: {key} missing", source=str(path))
        _interval(m.get("p_breach"), f"failure_modes[{i}].p_breach", str(path))
        _interval(
            m.get("expected_breach_minutes"),
            f"failure_modes[{i}].expected_breach_minutes",
            str(path),
        )
    return RiskOutput(folder, risk)


def risk_table(out: RiskOutput, order: str, top: int) -> pd.DataFrame:
    """The ``top`` failure modes by ``order`` (highest first), one row each."""
    if order not in RISK_ORDER:
        raise InputError(f"unknown order {order!r}; one of {', '.join(RISK_ORDER)}")
    rows = []
    for m in out.risk["failure_modes"]:
        pm, plo, phi = _interval(m["p_breach"], "p_breach", str(out.folder))
        em, elo, ehi = _interval(m["expected_breach_minutes"], "minutes", str(out.folder))
        mit = m.get("mitigation") or {}
        red = mit.get("breach_minutes_reduction") or {}
        rows.append(
            {
                "rank": int(m["rank"]),
                "service": m["service"],
                "fault_kind": m["fault_kind"],
                "p_breach": pm,
                "p_breach_lo": plo,
                "p_breach_hi": phi,
                "expected_breach_minutes": em,
                "minutes_lo": elo,
                "minutes_hi": ehi,
                "rpn": float((m.get("rpn") or {}).get("rpn", float("nan"))),
                "mitigation": mit.get("policy", ""),
                "minutes_saved": red.get("mean"),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values([order, "rank"], ascending=[False, True], kind="stable").head(top)


CALIBRATION_FIGURES = ("rate", "mean", "p95", "p99")


def calibration_table(text: str, source: str) -> pd.DataFrame:
    """The observed-vs-twin comparison in a ``calibration.json`` of ``twin calibrate``:
    one row per scope (entry operation or service), accuracy = 1 - |twin - obs| / obs."""
    try:
        record = loads_json(text, source, "telemetry")
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc})", source=source) from None
    if not isinstance(record, dict):
        raise InputError("expected a JSON object at the top", source=source)
    rows = record.get("comparison")
    if not isinstance(rows, list) or not rows:
        raise InputError(
            "comparison: missing or empty (was `twin calibrate` run with --predict 0?)",
            source=source,
        )
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "scope" not in r:
            raise InputError(f"comparison[{i}]: scope missing", source=source)
        row: dict[str, Any] = {"scope": r["scope"]}
        for k in CALIBRATION_FIGURES:
            row[f"{k} observed"] = r.get(f"{k}_observed")
            row[f"{k} twin"] = r.get(f"{k}_twin")
            row[f"{k} accuracy"] = r.get(f"{k}_accuracy")
        row["error rate diff (pp)"] = r.get("error_rate_diff_pp")
        out.append(row)
    return pd.DataFrame(out)


POLICY_METRICS = {
    "slo_violation_minutes": "SLO-violation minutes per episode",
    "replica_seconds": "replica-seconds per episode",
    "goodput": "goodput (entry successes/s)",
    "p99": "worst-stretch p99 at the entry (s)",
}
"""Per-policy figures of ``evaluation.json`` (each ``{mean, lo, hi}``) -> label."""

RENDERINGS = ("istio", "envoy", "resilience4j", "hpa")
"""Runtime folders ``twin export`` writes beside ``policy.json``."""


@dataclass(frozen=True)
class PolicyOutput:
    """A policy folder: ``evaluation.json`` of ``twin evaluate``, and the export of ``twin
    export`` (``policy.json`` and per-runtime files) when there is one."""

    folder: Path
    evaluation: dict[str, Any]
    policy_file: dict[str, Any] | None
    renderings: dict[str, list[Path]]

    @property
    def scenarios(self) -> int:
        return len(self.evaluation.get("held_out_scenarios", []))


def _export_dir(folder: Path) -> Path | None:
    for cand in (folder / "export", folder):
        if (cand / "policy.json").is_file():
            return cand
    return None


def load_policy_dir(folder: str | Path) -> PolicyOutput:
    """A folder holding ``evaluation.json`` (``twin evaluate --out``), with the export in
    ``export/`` or beside it."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(
            "no such folder (run `twin evaluate POLICY_DIR --out DIR` first)", source=str(folder)
        )
    path = folder / "evaluation.json"
    evaluation = _json(path)
    pols = evaluation.get("policies")
    if not isinstance(pols, dict) or not pols:
        raise InputError("policies: missing or empty", source=str(path))
    for name, figures in pols.items():
        for metric in POLICY_METRICS:
            if not isinstance(figures, dict):
                raise InputError(f"policies.{name}: expected an object", source=str(path))
            _interval(figures.get(metric), f"policies.{name}.{metric}", str(path))
    export = _export_dir(folder)
    policy_file = _json(export / "policy.json") if export is not None else None
    renderings: dict[str, list[Path]] = {}
    if export is not None:
        for runtime in RENDERINGS:
            files = sorted(p for p in (export / runtime).glob("*.y*ml") if p.is_file())
            if files:
                renderings[runtime] = files
    return PolicyOutput(folder, evaluation, policy_file, renderings)


def policy_table(out: PolicyOutput) -> pd.DataFrame:
    """One row per evaluated policy: each figure's mean and 95% bounds, best violations first."""
    rows = []
    for name, figures in out.evaluation["policies"].items():
        row: dict[str, Any] = {"policy": name}
        for metric in POLICY_METRICS:
            m, lo, hi = _interval(figures[metric], metric, str(out.folder))
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = m, lo, hi
        rows.append(row)
    return (
        pd.DataFrame(rows)
        .sort_values(["slo_violation_minutes", "policy"], kind="stable")
        .reset_index(drop=True)
    )


def tree_text(rules: dict[str, Any], max_lines: int = 200) -> str:
    """The distilled decision tree of a ``policy.json`` as nested if/else lines."""
    nodes = rules.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise InputError("rules.nodes: missing or empty")
    lines: list[str] = []

    def walk(i: int, depth: int) -> None:
        if len(lines) >= max_lines:
            return
        if not 0 <= i < len(nodes) or not isinstance(nodes[i], dict):
            raise InputError(f"rules.nodes[{i}]: missing")
        node = nodes[i]
        pad = "    " * depth
        if node.get("action") is not None:
            lines.append(f"{pad}-> action {list(node['action'])}")
            return
        name = node.get("feature_name") or f"obs[{node.get('feature')}]"
        lines.append(f"{pad}if {name} <= {float(node['threshold']):.3g}:")
        walk(int(node["left"]), depth + 1)
        lines.append(f"{pad}else:")
        walk(int(node["right"]), depth + 1)

    walk(0, 0)
    if len(lines) >= max_lines:
        lines.append("... (truncated)")
    return "\n".join(lines)
