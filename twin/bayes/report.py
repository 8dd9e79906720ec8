"""The risk report: one self-contained HTML file (PNG plots inline) beside risk.json."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from twin.bayes.checks import Diagnostics
from twin.bayes.risk import risk_frame


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return '<img src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'


def _iv(d: dict[str, float] | None, fmt: str = "{:.3g}") -> str:
    if not d:
        return "–"
    return f"{fmt.format(d['mean'])} <small>[{fmt.format(d['lo'])}, {fmt.format(d['hi'])}]</small>"


def plots(risk: dict[str, Any]) -> list[tuple[str, str]]:
    """Posterior intervals per service, and the risk matrix of failure modes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    svcs = risk["services"][:30]
    if svcs:
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.28 * len(svcs) + 1.2), sharey=True)
        names = [s["service"] for s in svcs][::-1]
        for ax, key, label in (
            (axes[0], "expected_breach_minutes", "expected breach minutes"),
            (axes[1], "p_breach", "P(at least one SLO breach)"),
        ):
            mean = [s[key]["mean"] for s in svcs][::-1]
            lo = [s[key]["lo"] for s in svcs][::-1]
            hi = [s[key]["hi"] for s in svcs][::-1]
            y = list(range(len(svcs)))
            ax.hlines(y, lo, hi, color="#4477aa", lw=2)
            ax.plot(mean, y, "o", color="#223355", ms=4)
            ax.set_xlabel(f"{label} in {risk['horizon_days']:g} days")
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(range(len(svcs)), names, fontsize=7)
        out.append((f"Posterior {risk['interval']:.0%} intervals per service", _png(fig)))
    df = risk_frame(risk)
    if not df.empty:
        fig, ax = plt.subplots(figsize=(8, 5))
        size = 20 + 400 * df["minutes"] / max(float(df["minutes"].max()), 1e-9)
        sc = ax.scatter(
            df["p_fault"].clip(lower=1e-4),
            df["p_breach_given_fault"],
            s=size,
            c=df["minutes"],
            cmap="viridis_r",
            alpha=0.75,
            edgecolors="k",
            linewidths=0.3,
        )
        for i, (_, r) in enumerate(df.head(6).iterrows()):
            ax.annotate(
                f"{r['rank']}. {r['service']}/{r['fault_kind']}",
                (max(r["p_fault"], 1e-4), r["p_breach_given_fault"]),
                fontsize=7,
                xytext=(-8, 10 + 9 * (i % 3)) if i % 2 else (6, -12 - 9 * (i % 3)),
                textcoords="offset points",
                ha="right" if i % 2 else "left",
                arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "#555"},
            )
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"likelihood: P(fault within {risk['horizon_days']:g} days)")
        ax.set_ylabel("impact: P(SLO breach | fault)")
        fig.colorbar(sc, ax=ax, label="expected breach minutes")
        ax.grid(alpha=0.3)
        out.append(("Risk matrix (bubble: expected breach minutes)", _png(fig)))
    return out


def _diag_table(diags: list[Diagnostics]) -> str:
    def f(v: float | None, spec: str) -> str:
        return "–" if v is None else format(v, spec)

    rows = "".join(
        f"<tr><td>{html.escape(d.model)}</td><td>{html.escape(d.method)}</td>"
        f"<td>{d.chains} x {d.draws}</td><td>{f(d.rhat_max, '.3f')}</td>"
        f"<td>{f(d.ess_bulk_min, '.0f')}</td><td>{f(d.ess_tail_min, '.0f')}</td>"
        f"<td>{d.divergences}</td><td>{d.seconds:.1f} s (+{d.compile_seconds:.1f} s compile)</td>"
        f"<td>{'ok' if d.ok else '<b>FAILED</b>: ' + html.escape('; '.join(d.problems))}</td></tr>"
        for d in diags
    )
    return (
        "<table><tr><th>model</th><th>sampler</th><th>chains x draws</th><th>max r-hat</th>"
        "<th>min bulk ESS</th><th>min tail ESS</th><th>divergences</th><th>time</th>"
        f"<th>verdict</th></tr>{rows}</table>"
    )


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
    "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
    "small{color:#666}"
)


def render(
    risk: dict[str, Any] | None,
    diags: list[Diagnostics],
    notes: list[str],
    *,
    title: str,
    refused: str | None = None,
) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    if refused:
        parts.append(f"<p><b>No risk reported.</b> {html.escape(refused)}</p>")
    parts.append("<h2>Sampling diagnostics</h2>" + _diag_table(diags))
    if risk is not None:
        parts.append(
            f"<p>Horizon {risk['horizon_days']:g} days, policy in force "
            f"<b>{html.escape(str(risk['policy']))}</b>, load x{risk['load']:g}; "
            f"{risk['interval']:.0%} credible intervals over {risk['draws']} posterior draws. "
            f"Error budget: {risk['error_budget_minutes']:.1f} minutes per SLO.</p>"
        )
        parts.append(
            "<h2>Remediation priorities</h2><table><tr><th>rank</th><th>service</th>"
            "<th>fault</th><th>expected breach minutes</th><th>P(breach)</th>"
            "<th>P(breach | fault)</th><th>RPN (S x O x D)</th><th>best mitigation</th>"
            "<th>minutes it saves</th></tr>"
        )
        for m in risk["failure_modes"][:25]:
            mit = m["mitigation"]
            r = m["rpn"]
            parts.append(
                f"<tr><td>{m['rank']}</td><td>{html.escape(m['service'])}</td>"
                f"<td>{html.escape(m['fault_kind'])}</td>"
                f"<td>{_iv(m['expected_breach_minutes'])}</td><td>{_iv(m['p_breach'])}</td>"
                f"<td>{_iv(m['p_breach_given_fault'])}</td>"
                f"<td>{r['rpn']} <small>({r['severity']} x {r['occurrence']} x "
                f"{r['detection']})</small></td>"
                f"<td>{html.escape(mit['policy']) if mit else '–'}</td>"
                f"<td>{_iv(mit['breach_minutes_reduction']) if mit else '–'}</td></tr>"
            )
        parts.append(
            "</table><h2>Services</h2><table><tr><th>rank</th><th>service</th>"
            "<th>expected breach minutes</th><th>P(breach)</th>"
            + "".join(f"<th>budget burn: {html.escape(s)}</th>" for s in risk["slos"] if s != "any")
            + "</tr>"
        )
        for s in risk["services"]:
            burns = "".join(
                f"<td>{_iv(s['error_budget_burn'].get(k), '{:.2%}')}</td>"
                for k in risk["slos"]
                if k != "any"
            )
            parts.append(
                f"<tr><td>{s['rank']}</td><td>{html.escape(s['service'])}</td>"
                f"<td>{_iv(s['expected_breach_minutes'])}</td>"
                f"<td>{_iv(s['p_breach'])}</td>{burns}</tr>"
            )
        parts.append("</table>")
        for name, img in plots(risk):
            parts.append(f"<h2>{html.escape(name)}</h2>{img}")
    if notes:
        parts.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    path: str | Path,
    risk: dict[str, Any] | None,
    diags: list[Diagnostics],
    notes: list[str],
    *,
    title: str = "Shadow Twin: risk",
    refused: str | None = None,
) -> None:
    Path(path).write_text(
        render(risk, diags, notes, title=title, refused=refused), encoding="utf-8"
    )
