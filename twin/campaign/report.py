"""The campaign report: ``report.html`` beside PNG files a person can open on their own:
impact by fault and target, blast radius drawn on the topology graph, response curves (error
rate and p99 against intensity) and time curves of the worst scenarios. Usable without the
CLI (the explorer calls :func:`write_report`)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from twin.campaign.generate import Plan
    from twin.campaign.run import Outcome


def trigger_text(m: dict[str, Any]) -> str:
    x = m.get("intensity_threshold")
    sign = "<=" if m.get("direction") == "below" else ">="
    level = f" {sign} {x:.3g}" if x is not None else ""
    return f"{m['fault_kind']} at {m['target']}{level}, load x{m['load']:g}"


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.2f}%"


def ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1000:,.0f} ms"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    fig.savefig(path, dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return path.name


def plot_impact(agg: pd.DataFrame, path: Path) -> str | None:
    """Heatmaps per policy: worst mean error rate (and p99) of each fault kind x target."""
    faulted = agg[agg["fault_kind"] != "none"]
    if faulted.empty:
        return None
    plt = _plt()
    policies = list(dict.fromkeys(faulted["policy"]))
    fig, axes = plt.subplots(
        2, len(policies), figsize=(4.5 * len(policies) + 1, 7.5), squeeze=False
    )
    for j, pol in enumerate(policies):
        g = faulted[faulted["policy"] == pol]
        for i, (metric, label, cmap) in enumerate(
            (("error_rate", "worst error rate", "Reds"), ("latency_p99", "worst p99 (s)", "Blues"))
        ):
            piv = g.pivot_table(index="fault_kind", columns="target", values=metric, aggfunc="max")
            ax = axes[i][j]
            im = ax.imshow(piv.to_numpy(dtype=float), aspect="auto", cmap=cmap)
            ax.set_xticks(range(len(piv.columns)), [str(c) for c in piv.columns], rotation=70)
            ax.set_yticks(range(len(piv.index)), [str(r) for r in piv.index])
            ax.tick_params(labelsize=7)
            ax.set_title(f"{pol}: {label}", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return _save(fig, path)


def _layout(graph: Any) -> dict[str, tuple[float, float]]:
    """Callers above callees: layers by longest path from the entries (deterministic)."""
    import networkx as nx

    pos: dict[str, tuple[float, float]] = {}
    try:
        layers = list(nx.topological_generations(graph))
    except nx.NetworkXUnfeasible:  # pragma: no cover - topologies are acyclic
        layers = [list(graph.nodes)]
    for depth, layer in enumerate(layers):
        names = sorted(layer)
        for k, n in enumerate(names):
            pos[n] = ((k + 1) / (len(names) + 1), -float(depth))
    return pos


def plot_blast_radius(plan: Plan, modes: list[dict[str, Any]], path: Path) -> str | None:
    """The topology graph once per worst failure mode: the fault's target ringed, services
    in its blast radius filled red."""
    if not modes:
        return None
    import networkx as nx

    plt = _plt()
    graph = plan.topology.service_graph()
    big = graph.number_of_nodes() > 80
    pos = _layout(graph)
    shown = modes[:4]
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 5), squeeze=False)
    for ax, m in zip(axes[0], shown, strict=True):
        hit = set(m["services"])
        targets = {t.split("->")[-1] for t in str(m["target"]).split("+")}
        colors = ["#d62728" if n in hit else "#c7d7e8" for n in graph.nodes]
        edges = ["#d62728" if n in targets else "#555555" for n in graph.nodes]
        nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.4, arrows=not big, arrowsize=8)
        nx.draw_networkx_nodes(
            graph,
            pos,
            ax=ax,
            node_color=colors,
            edgecolors=edges,
            linewidths=[3.0 if n in targets else 0.5 for n in graph.nodes],
            node_size=30 if big else 380,
        )
        if not big:
            nx.draw_networkx_labels(graph, pos, ax=ax, font_size=6)
        ax.set_title(f"{trigger_text(m)}\n{m['policy']}: {len(hit)} services hit", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def plot_response(agg: pd.DataFrame, path: Path) -> str | None:
    """Error rate and p99 against intensity, per fault kind: where the system tips over."""
    g = agg[(agg["fault_kind"] != "none") & agg["intensity"].notna() & (agg["faults"] == 1)]
    kinds = [k for k, kg in g.groupby("fault_kind") if kg["intensity"].nunique() > 1]
    if not kinds:
        return None
    plt = _plt()
    fig, axes = plt.subplots(2, len(kinds), figsize=(4.2 * len(kinds), 6.5), squeeze=False)
    for j, kind in enumerate(kinds):
        kg = g[g["fault_kind"] == kind]
        worst = kg.groupby("target")["error_rate"].max().nlargest(4).index
        for (target, policy), lg in kg[kg["target"].isin(worst)].groupby(["target", "policy"]):
            lg = lg.groupby("intensity")[["error_rate", "latency_p99"]].max().sort_index()
            label = f"{target} / {policy}"
            axes[0][j].plot(lg.index, lg["error_rate"], marker="o", label=label)
            axes[1][j].plot(lg.index, lg["latency_p99"], marker="o", label=label)
        axes[0][j].set_title(kind, fontsize=9)
        axes[0][j].set_ylabel("error rate")
        axes[1][j].set_ylabel("p99 (s)")
        axes[1][j].set_xlabel("intensity")
        axes[1][j].set_yscale("log")
        axes[0][j].legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(runs: pd.DataFrame, modes: list[dict[str, Any]], path: Path) -> str | None:
    """Error share and p99 per window over time for the worst scenarios (replication 0),
    every policy, with the fault window shaded."""
    names = list(dict.fromkeys(m["scenario"] for m in modes))[:3]
    if not names:
        return None
    plt = _plt()
    fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 6), squeeze=False)
    for j, name in enumerate(names):
        sg = runs[(runs["scenario"] == name) & (runs["replication"] == 0)]
        for _, r in sg.iterrows():
            pts = json.loads(r["curve"])
            ts = [p[0] for p in pts]
            err = [p[3] / (p[2] + p[3]) if p[2] + p[3] else math.nan for p in pts]
            p99 = [p[4] or math.nan for p in pts]
            axes[0][j].plot(ts, err, label=str(r["policy"]))
            axes[1][j].plot(ts, p99, label=str(r["policy"]))
        first = sg.iloc[0]
        if first["fault_start"] is not None and not math.isnan(first["fault_start"]):
            end = first["fault_start"] + (first["fault_duration"] or 0.0)
            for ax in axes[:, j]:
                ax.axvspan(first["fault_start"], end, color="#f3c0c0", alpha=0.4)
        axes[0][j].set_title(name, fontsize=8)
        axes[0][j].set_ylabel("failed share of answered")
        axes[1][j].set_ylabel("worst entry p99 (s)")
        axes[1][j].set_xlabel("simulated time (s)")
        axes[0][j].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _cell(v: Any, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if unit == "%":
        return f"{v * 100:.2f}%"
    if unit == "s":
        return f"{v * 1000:,.1f} ms"
    if isinstance(v, float):
        return f"{v:.3g}"
    return html.escape(str(v))


def _holds(x: dict[str, Any]) -> str:
    return "yes" if x["holds_everywhere"] else f"up to intensity {_cell(x['holds_up_to'])}"


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in list(reasons.items())[:3])


def write_report(o: Outcome, plan: Plan) -> Path:
    """``report.html`` and its PNG plots in the campaign's output directory."""
    out = o.out
    figs = [
        ("Impact by fault and target", plot_impact(o.aggregated, out / "impact.png")),
        (
            "Blast radius of the worst failure modes",
            plot_blast_radius(plan, o.modes, out / "blast-radius.png"),
        ),
        ("Error rate and p99 against intensity", plot_response(o.aggregated, out / "response.png")),
        ("Worst scenarios over time", plot_curves(o.runs, o.modes, out / "curves.png")),
    ]
    s = o.summary
    mode_rows = (
        "".join(
            f"<tr><td>{m['severity']:.1f}x</td><td>{html.escape(m['policy'])}</td>"
            f"<td>{html.escape(trigger_text(m))}</td>"
            f"<td>{', '.join(m['slos_breached']) or '–'}</td>"
            f"<td>{_cell(m['availability'], '%')}</td><td>{_cell(m['latency_p99'], 's')}</td>"
            f"<td>{m['blast_radius']}: {html.escape(', '.join(m['services'][:8]))}</td>"
            f"<td>{html.escape(_reasons(m['failure_reasons']))}</td></tr>"
            for m in o.modes[:30]
        )
        or "<tr><td colspan=8>no scenario breached an SLO</td></tr>"
    )
    mit_rows = (
        "".join(
            f"<tr><td>{html.escape(str(x['mode'][1]))}: {html.escape(str(x['mode'][2]))} at "
            f"{html.escape(str(x['mode'][3]))}</td><td>{html.escape(str(x['policy']))}</td>"
            f"<td>{_holds(x)}</td>"
            f"<td>{_cell(x['availability'], '%')} "
            f"(was {_cell(x['instead_of']['availability'], '%')})</td>"
            f"<td>{_cell(x['latency_p99'], 's')} "
            f"(was {_cell(x['instead_of']['latency_p99'], 's')})</td></tr>"
            for x in o.mitigations[:30]
        )
        or "<tr><td colspan=5>none of the campaign's policies fixes a failure mode</td></tr>"
    )
    worst = o.aggregated.sort_values(["error_rate", "latency_p99"], ascending=False).head(30)
    scen_rows = "".join(
        f"<tr><td>{html.escape(str(r['scenario']))}</td><td>{html.escape(str(r['policy']))}</td>"
        f"<td>{_cell(r['availability'], '%')} [{_cell(r['availability_lo'], '%')}, "
        f"{_cell(r['availability_hi'], '%')}]</td><td>{_cell(r['latency_p99'], 's')} "
        f"[{_cell(r['latency_p99_lo'], 's')}, {_cell(r['latency_p99_hi'], 's')}]</td>"
        f"<td>{_cell(r['breach_share'], '%')}</td>"
        f"<td>{_cell(r['graph_availability'], '%')}</td></tr>"
        for _, r in worst.iterrows()
    )
    images = "".join(
        f'<h2>{html.escape(t)}</h2><img src="{name}" style="max-width:100%">'
        for t, name in figs
        if name
    )
    text = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Campaign {html.escape(s["campaign"])}</title><style>
body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:90%}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:left}}th{{background:#f4f4f4}}
</style></head><body><h1>Campaign {html.escape(s["campaign"])} on {html.escape(s["topology"])}</h1>
<p>{s["runs"]} runs: {s["scenarios"]} scenarios x {len(s["policies"])} policies
({html.escape(", ".join(s["policies"]))}) x {s["replications"]} replication(s);
{s["runs_breaching_slo"]} runs breached an SLO ({html.escape(json.dumps(s["slo"]))}).
Severity is how many times over its objective the worst figure is (error budget or p99 target).
Intervals are 95% over replications.</p>
<h2>Failure modes, worst first</h2><table><tr><th>severity</th><th>policy</th><th>trigger</th>
<th>SLOs breached</th><th>availability</th><th>p99</th><th>blast radius</th><th>reasons</th></tr>
{mode_rows}</table>
<h2>Recommended mitigations</h2><table><tr><th>failure mode</th><th>policy</th><th>holds at every
intensity seen</th><th>availability</th><th>p99</th></tr>{mit_rows}</table>
{images}
<h2>Worst scenarios</h2><table><tr><th>scenario</th><th>policy</th><th>availability</th>
<th>p99</th><th>runs breaching</th><th>graph-only availability</th></tr>{scen_rows}</table>
</body></html>"""
    path = out / "report.html"
    path.write_text(text, encoding="utf-8")
    return path
