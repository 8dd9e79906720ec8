"""``report.html`` of a watch: the timeline drawn, and the alerts listed.

Plots (PNG inline, through :mod:`twin.report`'s figure encoder): the entry's p99 latency
with the forecast band and the twin's prediction, the SLO line and alert times (the twin's,
the burn-rate page's and ``predict_linear``'s); the twin-vs-reality error; the estimated
load and service-time scale.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

from twin.predict.alerts import Alert
from twin.report import _fmt, _png


def _first_times(windows: list[dict[str, Any]], test: Any) -> list[float]:
    """Start times of the runs of consecutive windows where ``test`` holds."""
    out, prev = [], False
    for w in windows:
        now = bool(test(w))
        if now and not prev:
            out.append(float(w["time"]))
        prev = now
    return out


def plots(timeline: dict[str, Any], alerts: list[Alert]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = [w for w in timeline["windows"] if not w.get("baseline")]
    if not ws:
        return []
    t0 = ws[0]["time"]
    h = [(w["time"] - t0) / 3600 for w in ws]
    out: list[tuple[str, str]] = []

    def col(k: str) -> list[float]:
        return [float("nan") if w.get(k) is None else float(w[k]) for w in ws]

    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.plot(h, col("p99"), lw=0.8, label="observed p99")
    ax.fill_between(h, col("p99_lo"), col("p99_hi"), alpha=0.2, label="forecast band")
    ax.plot(h, col("twin_p99"), lw=0.8, ls="--", label="twin p99")
    slo = timeline.get("slo", {}).get("latency_p99")
    if slo:
        ax.axhline(slo, color="red", lw=0.6, label="SLO")
    fired = [(a.time - t0) / 3600 for a in alerts if a.status == "firing"]
    for i, x in enumerate(fired):
        ax.axvline(x, color="purple", lw=0.6, alpha=0.7, label="twin alert" if i == 0 else None)
    burn = [(t - t0) / 3600 for t in _first_times(ws, lambda w: w["burn_rate"])]
    lin = [(t - t0) / 3600 for t in _first_times(ws, lambda w: w["linear"])]
    ymax = max([v for v in col("p99") if math.isfinite(v)] or [1.0])
    ax.plot(burn, [ymax * 1.5] * len(burn), "v", color="orange", label="burn-rate page")
    ax.plot(lin, [ymax * 1.2] * len(lin), "v", color="green", label="predict_linear")
    ax.set_yscale("log")
    ax.set_xlabel("hours")
    ax.set_ylabel("entry p99 (s)")
    ax.legend(fontsize=7, ncol=4)
    out.append(("Entry latency, forecast band, twin and alerts", _png(fig)))

    fig, ax = plt.subplots(figsize=(10, 2.6))
    ax.plot(h, col("twin_error"), lw=0.8)
    ax.set_xlabel("hours")
    ax.set_ylabel("twin error (1 - accuracy)")
    off = [(w["time"] - t0) / 3600 for w in ws if not w["following"]]
    ax.plot(off, [0] * len(off), "|", color="red", label="not following")
    if off:
        ax.legend(fontsize=7)
    out.append(("Twin-vs-reality error", _png(fig)))

    fig, ax = plt.subplots(figsize=(10, 2.6))
    ax.plot(h, col("load_multiplier"), lw=0.8, label="load x topology")
    ax.plot(h, col("time_scale"), lw=0.8, label="service-time scale")
    ax.set_xlabel("hours")
    ax.legend(fontsize=7)
    out.append(("The twin in step: estimated load and service-time scale", _png(fig)))
    return out


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def render(timeline: dict[str, Any], alerts: list[Alert]) -> str:
    """The HTML report of a watch's timeline and alerts."""
    figs = "".join(f"<h2>{html.escape(t)}</h2>{img}" for t, img in plots(timeline, alerts))
    rows = (
        "".join(
            f"<tr><td>{_when(a.time)}</td><td>{a.status}</td><td>{html.escape(a.kind)}</td>"
            f"<td>{html.escape(', '.join(a.root_cause[:3]))}</td><td>{_fmt(a.probability)}</td>"
            f"<td>{_fmt(a.time_to_breach_s)}</td><td>{html.escape(a.mitigation.description)}</td></tr>"
            for a in alerts[:500]
        )
        or "<tr><td colspan=7>none</td></tr>"
    )
    f = timeline.get("figures", {})
    src = timeline.get("source", {})
    unmapped = ", ".join(f"{k} ({v})" for k, v in src.get("unmapped", {}).items()) or "none"
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in src.get("problems", []))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(timeline.get("title", "twin watch"))}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
th{{background:#f4f4f4}}</style></head><body>
<h1>{html.escape(timeline.get("title", "twin watch"))}:
{html.escape(str(timeline.get("topology")))}</h1>
<p>{_fmt(f.get("windows"))} windows in {_fmt(f.get("wall_seconds"))} s;
{_fmt(f.get("alerts_firing"))} alerts fired, {_fmt(f.get("alerts_resolved"))} resolved;
{_fmt(f.get("twin_runs"))} twin runs to follow, {_fmt(f.get("monte_carlo_runs"))} Monte Carlo
estimates. Horizon {_fmt(timeline.get("horizon_s"))} s.
Unmapped metrics: {html.escape(unmapped)}.</p>
<ul>{problems}</ul>
{figs}
<h2>Alerts</h2><table><tr><th>time (UTC)</th><th>status</th><th>kind</th><th>root cause</th>
<th>P(breach)</th><th>time to breach (s)</th><th>mitigation</th></tr>{rows}</table>
</body></html>"""


__all__ = ["plots", "render"]
