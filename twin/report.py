"""The human report: one self-contained HTML file with tables and plots (PNG inline)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from twin.outcomes import REASONS
from twin.results import Summary


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return '<img src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'


def image(fig: Any) -> str:
    """A matplotlib figure as an inline ``<img>`` (the figure is closed), for any report."""
    return _png(fig)


def _fmt(v: Any, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        if unit == "s":
            return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.3f} s"
        if unit == "%":
            return f"{v * 100:.2f}%"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else html.escape(str(v))


def _with_ci(summary: dict[str, Any], path: tuple[str, ...], unit: str = "") -> str:
    d: Any = summary
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    ci: Any = summary.get("ci", {})
    for p in path:
        ci = ci.get(p) if isinstance(ci, dict) else None
    text = _fmt(d, unit)
    if isinstance(ci, dict) and ci.get("lo") is not None:
        text += f" <small>[{_fmt(ci['lo'], unit)}, {_fmt(ci['hi'], unit)}]</small>"
    return text


def plots(series: pd.DataFrame) -> list[tuple[str, str]]:
    """(title, <img>) for latency, failures by reason and utilisation over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    if series.empty:
        return out
    ent = series[series["scope"] == "entry"]
    lat = ent[ent["family"] == "latency"]
    if not lat.empty:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        for (name, metric), g in lat.groupby(["name", "metric"], observed=True):
            if metric in ("p50", "p99"):
                ax.plot(g["time"], g["value"], label=f"{name} {metric}")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("latency (s)")
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2)
        out.append(("End-to-end latency per window", _png(fig)))
    fails = ent[ent["family"].isin(["failures", "requests"])]
    if not fails.empty:
        piv = fails.pivot_table(
            index="time", columns="metric", values="value", aggfunc="sum", observed=True
        ).fillna(0.0)
        zero = pd.Series(0.0, index=piv.index)
        answered = piv.get("succeeded", zero) + piv.get("failed", zero)
        fig, ax = plt.subplots(figsize=(9, 3.2))
        drawn = False
        for reason in REASONS:
            if reason in piv:
                ax.plot(piv.index, piv[reason] / answered.clip(lower=1), label=reason)
                drawn = True
        if drawn:
            ax.set_xlabel("simulated time (s)")
            ax.set_ylabel("share of answered requests")
            ax.legend(fontsize=7)
            out.append(("Failures by reason per window", _png(fig)))
        else:
            plt.close(fig)
    svc = series[(series["scope"] == "service") & (series["metric"] == "utilization")]
    if not svc.empty:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        busiest = svc.groupby("name", observed=True)["value"].mean().nlargest(8).index
        for name in busiest:
            g = svc[svc["name"] == name]
            ax.plot(g["time"], g["value"], label=str(name))
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("utilisation")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7, ncol=2)
        out.append(("Utilisation of the busiest services", _png(fig)))
    return out


def render(record: Summary, series: pd.DataFrame, *, title: str) -> str:
    summary = record.to_json()  # figures and their intervals are looked up by path
    rows = [
        ("Requests (after warm-up)", _with_ci(summary, ("requests",))),
        ("Succeeded", _with_ci(summary, ("succeeded",))),
        ("Failed", _with_ci(summary, ("failed",))),
        ("Availability", _with_ci(summary, ("availability",), "%")),
        ("Latency mean", _with_ci(summary, ("latency", "mean"), "s")),
        ("Latency p50", _with_ci(summary, ("latency", "p50"), "s")),
        ("Latency p95", _with_ci(summary, ("latency", "p95"), "s")),
        ("Latency p99", _with_ci(summary, ("latency", "p99"), "s")),
        ("Corrupted successes", _with_ci(summary, ("corrupted",))),
        ("Replica-seconds", _with_ci(summary, ("replica_seconds",))),
    ]
    head = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    fail = (
        "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_with_ci(summary, ('failures', k))}</td></tr>"
            for k in summary.get("failures", {})
        )
        or "<tr><td colspan=2>none</td></tr>"
    )
    slo = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v.get('target'))}</td>"
        f"<td>{_fmt(v.get('value'))}</td><td>{'met' if v.get('met') else 'MISSED'}</td></tr>"
        for k, v in summary.get("slo", {}).items()
    )
    svc_rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_fmt(s['arrivals'])}</td><td>{_fmt(s['failed'])}</td>"
        f"<td>{_fmt(s['utilization'], '%')}</td><td>{_fmt(s['latency'].get('mean'), 's')}</td>"
        f"<td>{_fmt(s['latency'].get('p99'), 's')}</td></tr>"
        for n, s in sorted(
            summary.get("services", {}).items(), key=lambda kv: -(kv[1].get("utilization") or 0)
        )[:50]
    )
    faults = (
        "".join(
            f"<tr><td>{html.escape(str(f.get('kind')))}</td><td>{html.escape(str(f.get('target')))}</td>"
            f"<td>{_fmt(f.get('start'))}</td><td>{_fmt(f.get('end'))}</td></tr>"
            for f in summary.get("faults", [])[:200]
        )
        or "<tr><td colspan=4>none</td></tr>"
    )
    figs = "".join(f"<h2>{html.escape(t)}</h2>{img}" for t, img in plots(series))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
th{{background:#f4f4f4}}small{{color:#666}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Simulated {_fmt(summary.get("simulated_seconds"))} s, measured {_fmt(summary.get("measured_seconds"))} s
after warm-up; seed {_fmt(summary.get("seed"))}; {_fmt(summary.get("replications", 1))} replication(s);
wall time {_fmt(summary.get("wall_seconds"))} s. Intervals in brackets are 95% confidence intervals over
replications.</p>
<h2>Summary</h2><table>{head}</table>
<h2>Service-level objectives</h2><table><tr><th>SLO</th><th>target</th><th>value</th><th></th></tr>{slo}</table>
<h2>Failures by reason</h2><table><tr><th>reason</th><th>requests</th></tr>{fail}</table>
<h2>Faults</h2><table><tr><th>kind</th><th>target</th><th>start (s)</th><th>end (s)</th></tr>{faults}</table>
{figs}
<h2>Services (busiest first)</h2><table><tr><th>service</th><th>arrivals</th><th>failed</th>
<th>utilisation</th><th>mean latency</th><th>p99 latency</th></tr>{svc_rows}</table>
</body></html>"""


def write_report(path: str | Path, summary: Summary, series: pd.DataFrame, *, title: str) -> Path:
    p = Path(path)
    p.write_text(render(summary, series, title=title), encoding="utf-8")
    return p
