"""The outputs of a check: ``verdict.json``, ``rollback.json`` and ``report.html``.

Every file is built in memory first and written through a temporary name, so a check that
fails leaves no half-written output behind.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from twin.change.check import CheckResult
from twin.change.rollback import RollbackSignature
from twin.report import _png, plots
from twin.results import write_json


def _paired_plot(result: CheckResult) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = [b.breach_share * 100 for b in result.before]
    after = [a.breach_share * 100 for a in result.after]
    labels = ["fault-free"] + [
        f"{(r.fault or {}).get('kind')} @ {(r.fault or {}).get('target')}" for r in result.plan[1:]
    ]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(labels) + 1.2))
    ys = list(range(len(labels)))
    for y, b, a in zip(ys, before, after, strict=True):
        ax.plot([b, a], [y, y], color="#999", zorder=1)
    ax.scatter(before, ys, label="before", zorder=2)
    ax.scatter(after, ys, label="after", marker="x", zorder=3)
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_xlabel("time out of SLO (% of the measured run)")
    ax.legend(fontsize=8)
    return [("Paired runs: time out of SLO before and after", _png(fig))]


def render(result: CheckResult, rollback: RollbackSignature) -> str:
    """The readable report: decision, reasons, risk, SLOs, paired runs, rollback."""
    v = result.verdict
    esc = html.escape
    reasons = "".join(f"<li>{esc(r)}</li>" for r in v.reasons) or "<li>none</li>"
    notes = "".join(f"<li>{esc(n)}</li>" for n in v.notes) or "<li>none</li>"
    slo_rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{s.target:g}</td><td>{_n(s.before)}</td><td>{_n(s.after)}</td>"
        f"<td>{_n(s.met_before)}</td><td>{_n(s.met_after)}</td></tr>"
        for k, s in v.slo.items()
    )
    reverts = "".join(
        f"<tr><td>{r.order}</td><td>{esc(r.change)}</td><td>{esc(r.kind)}</td>"
        f"<td>{esc(', '.join(r.depends_on)) or '–'}</td>"
        f"<td><pre>{esc(chr(10).join(r.commands)) or '–'}</pre></td></tr>"
        for r in rollback.reverts
    )
    checks = "".join(
        f"<tr><td>{esc(c.name)}</td><td><code>{esc(c.promql)}</code></td>"
        f"<td>{esc(c.comparison)} {c.threshold:g}</td></tr>"
        for c in rollback.verification
    )
    figs = _paired_plot(result)
    b, a = result.calm_series
    for label, frame in (("before", b), ("after", a)):
        if frame is not None:
            figs += [(f"Fault-free run {label}: {t}", img) for t, img in plots(frame)[:1]]
    fig_html = "".join(f"<h2>{esc(t)}</h2>{img}" for t, img in figs)
    m = v.method
    colour = "#1a7f37" if v.decision == "go" else "#cf222e"
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>check-change: {esc(v.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}}th{{background:#f4f4f4}}pre{{margin:0;white-space:pre-wrap}}
</style></head><body>
<h1>{esc(v.name)}: <span style="color:{colour}">{esc(v.decision)}</span></h1>
<p>{m.replications} paired runs (one fault-free, the rest under one fault each from the
{esc(m.faults_from)}), {m.duration:g} s each at load x{m.load:g}, seed {m.seed}; wall time
{v.wall_seconds:.1f} s.</p>
<h2>Reasons</h2><ul>{reasons}</ul>
<h2>Risk</h2><table>
<tr><th></th><th>mean</th><th>90% interval</th></tr>
<tr><td>change in P(SLO breach)</td><td>{v.risk.mean:+.3f}</td>
<td>[{v.risk.lo:+.3f}, {v.risk.hi:+.3f}]</td></tr>
<tr><td>change in breach minutes per run</td><td>{v.breach_minutes.mean:+.3f}</td>
<td>[{v.breach_minutes.lo:+.3f}, {v.breach_minutes.hi:+.3f}]</td></tr></table>
<p>P(SLO breach): {v.p_breach_before:.2f} before, {v.p_breach_after:.2f} after. No-go when the
interval's lower end passes {m.risk_threshold:g} (risk) or {m.breach_share_threshold:.0%} of
the time (breach time).</p>
<h2>SLOs</h2><table><tr><th>SLO</th><th>target</th><th>before</th><th>after</th>
<th>runs met, before</th><th>runs met, after</th></tr>{slo_rows}</table>
<h2>Notes</h2><ul>{notes}</ul>
{fig_html}
<h2>Rollback</h2><table><tr><th>order</th><th>change</th><th>kind</th><th>depends on</th>
<th>commands</th></tr>{reverts}</table>
<h2>Verification after a rollback</h2><table><tr><th>check</th><th>PromQL ({
        esc(rollback.verification[0].window if rollback.verification else "5m")
    } window)</th><th>holds when</th></tr>{checks}</table>
</body></html>"""


def _n(x: float | None) -> str:
    return "–" if x is None else f"{x:.4g}"


def write_outputs(result: CheckResult, rollback: RollbackSignature, out: Path) -> dict[str, Any]:
    """Write the three files into ``out`` (which exists); returns the verdict's JSON."""
    page = render(result, rollback)
    verdict = result.verdict.to_json()
    write_json(out / "verdict.json", verdict)
    write_json(out / "rollback.json", rollback.to_json())
    tmp = out / "report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out / "report.html")
    return verdict


__all__ = ["render", "write_outputs"]
