"""Analysis of runs: 95% intervals per scenario, failure modes, recommended mitigations."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from twin.faults import OutageFault
from twin.outcomes import REASONS
from twin.replicate import mean_ci
from twin.topology import SLO

if TYPE_CHECKING:
    pass

from twin.campaign.generate import (
    Plan,
)
from twin.campaign.spec import (
    LOWER_IS_WORSE,
)

# -- analysis -------------------------------------------------------------------------------

METRICS = (
    "availability",
    "error_rate",
    "availability_fault",
    "latency_p50",
    "latency_p99",
    "requests",
    "blast_radius",
)
_KEYS = [
    "scenario_index",
    "scenario",
    "policy_index",
    "policy",
    "origin",
    "fault_kind",
    "target",
    "intensity",
    "load",
    "fault_start",
    "fault_duration",
    "faults",
    "incidents",
]


def aggregate(runs: pd.DataFrame, plan: Plan | None = None) -> pd.DataFrame:
    """One row per (scenario, policy): mean and 95% interval of each figure over replications,
    the share of replications that breached an SLO, and the graph-only prediction when the
    scenario is a plain outage (for comparison with the simulation)."""
    rows = []
    for _, g in runs.groupby(["scenario_index", "policy_index"], sort=True):
        first = g.iloc[0]
        row: dict[str, Any] = {k: first[k] for k in _KEYS}
        row["replications"] = len(g)
        for m in METRICS:
            est = mean_ci([float(v) for v in g[m] if _f(v) is not None])
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = est["mean"], est["lo"], est["hi"]
        row["breach_share"] = float(g["slo_breached"].astype(float).mean())
        row["graph_availability"] = _graph_prediction(plan, int(first["scenario_index"]))
        rows.append(row)
    return pd.DataFrame(rows)


def _graph_prediction(plan: Plan | None, index: int) -> float | None:
    """Structural availability of a fault-free or single full-outage scenario."""
    if plan is None:
        return None
    from twin.availability import structural

    ps = plan.scenarios[index]
    faults = ps.scenario.faults
    whole = structural(plan.topology)
    if not faults:
        return whole
    if len(faults) != 1 or not isinstance(faults[0], OutageFault) or faults[0].replicas is not None:
        return None
    f = faults[0]
    lo, hi = ps.scenario.warmup, ps.scenario.duration
    end = hi if f.duration is None else f.start + f.duration
    frac = max(0.0, min(end, hi) - max(f.start, lo)) / (hi - lo)
    return (1.0 - frac) * whole + frac * structural(plan.topology, {f.target})


def _severity(avail: float | None, p99: float | None, slo: SLO) -> float:
    """How many times over its objective the worst figure is (1.0 = exactly at the SLO)."""
    out = 0.0
    if slo.availability is not None and avail is not None:
        budget = max(1e-9, 1.0 - slo.availability)
        out = max(out, (1.0 - avail) / budget)
    if slo.latency_p99 is not None and p99 is not None:
        out = max(out, p99 / slo.latency_p99)
    return out


def failure_modes(
    runs: pd.DataFrame, agg: pd.DataFrame, plan: Plan, campaign_key: str
) -> list[dict[str, Any]]:
    """Failure modes, worst first: per (policy, fault kind, target, load), the lowest intensity
    that breached an SLO in most replications, and what the worst such scenario did."""
    slo = plan.campaign.judged_slo(plan.topology)
    modes = []
    agg = agg.assign(load_key=agg["load"].round(3))
    for (policy, kind, target, load), g in agg.groupby(
        ["policy", "fault_kind", "target", "load_key"], sort=False
    ):
        bad = g[g["breach_share"] >= 0.5]
        if bad.empty:
            continue
        lower = kind in LOWER_IS_WORSE
        worst = bad.sort_values(["availability", "latency_p99"], ascending=[True, False]).iloc[0]
        xs = bad["intensity"].dropna()
        threshold = (xs.max() if lower else xs.min()) if len(xs) else None
        ok = g[(g["breach_share"] < 0.5) & g["intensity"].notna()]["intensity"]
        if threshold is not None:
            ok = ok[ok > threshold] if lower else ok[ok < threshold]
        held = (ok.min() if lower else ok.max()) if len(ok) else None
        wr = runs[(runs["scenario"] == worst["scenario"]) & (runs["policy"] == policy)]
        counts: dict[str, int] = {}
        for names in wr["affected_services"]:
            for n in json.loads(names):
                counts[n] = counts.get(n, 0) + 1
        services = sorted(n for n, c in counts.items() if c * 2 >= len(wr))
        reasons = {r: int(wr[f"failures_{r}"].sum()) for r in REASONS}
        breached = []
        if (wr["slo_availability_met"] == False).sum() * 2 >= len(wr):  # noqa: E712
            breached.append("availability")
        if (wr["slo_latency_met"] == False).sum() * 2 >= len(wr):  # noqa: E712
            breached.append("latency_p99")
        modes.append(
            {
                "topology": plan.topology.name,
                "policy": policy,
                "fault_kind": kind,
                "target": target,
                "load": float(load),  # type: ignore[arg-type]
                "intensity_threshold": None if threshold is None else float(threshold),
                "intensity_held": None if held is None else float(held),
                "direction": "below" if lower else "above",
                "slos_breached": breached,
                "services": services,
                "failure_reasons": {
                    k: v for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]) if v
                },
                "blast_radius": len(services),
                "availability": _f(worst["availability"]),
                "latency_p99": _f(worst["latency_p99"]),
                "severity": _severity(_f(worst["availability"]), _f(worst["latency_p99"]), slo),
                "scenario": worst["scenario"],
                "evidence": {"campaigns": [campaign_key], "runs": sorted(wr["run_id"])},
            }
        )
    modes.sort(key=lambda m: (-m["severity"], m["policy"], m["fault_kind"], m["target"]))
    return modes


def _f(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def mitigations(modes: list[dict[str, Any]], agg: pd.DataFrame, plan: Plan) -> list[dict[str, Any]]:
    """For each failure mode, the campaign's other policies that kept every SLO where the
    mode's policy broke one: everywhere (``holds_everywhere``), or at least at its threshold,
    raising it. Figures are from the most intense scenario the alternative survived."""
    out = []
    for m in modes:
        group = agg[
            (agg["fault_kind"] == m["fault_kind"])
            & (agg["target"] == m["target"])
            & (agg["load"].round(3) == round(m["load"], 3))
        ]
        mine = group[(group["policy"] == m["policy"]) & (group["breach_share"] >= 0.5)]
        for alt_name in dict.fromkeys(group["policy"]):
            if alt_name == m["policy"]:
                continue
            alt = group[(group["policy"] == alt_name) & group["scenario"].isin(mine["scenario"])]
            held = alt[alt["breach_share"] < 0.5]
            if held.empty:
                continue
            order = held["intensity"].fillna(0.0) * (-1 if m["direction"] == "below" else 1)
            best = held.loc[order.idxmax()]
            base = mine[mine["scenario"] == best["scenario"]].iloc[0]
            pol = plan.policies.get(str(alt_name))
            doc = pol.model_dump(mode="json", exclude_none=True) if pol is not None else None
            out.append(
                {
                    "mode": _mode_key(m),
                    "policy": alt_name,
                    "policy_document": doc,
                    "holds_everywhere": len(held) == len(alt) == len(mine),
                    "holds_up_to": _f(best["intensity"]),
                    "availability": _f(best["availability"]),
                    "latency_p99": _f(best["latency_p99"]),
                    "instead_of": {
                        "availability": _f(base["availability"]),
                        "latency_p99": _f(base["latency_p99"]),
                    },
                    "scenario": best["scenario"],
                }
            )
    out.sort(key=lambda r: (r["mode"], not r["holds_everywhere"], -(r["availability"] or 0.0)))
    return out


def _mode_key(m: dict[str, Any]) -> list[Any]:
    return [m["topology"], m["policy"], m["fault_kind"], m["target"], round(m["load"], 3)]
