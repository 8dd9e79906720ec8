"""Three-way comparison: production (as its clients see it through the mirror), the real
shadow (the mirrored, transformed copy) and the simulated twin, under the same traffic and
the same transformations.

Why it is built this way:

- **One accuracy.** The twin is judged against the real shadow in PerfSim's form,
  ``1 - |predicted - measured| / measured`` (:func:`twin.calibrate.accuracy.accuracy`), per
  metric: latency mean, p50 and p99 of successful requests, and the error rate, compared on
  the success ratio ``1 - error rate`` (PerfSim's form needs a measured value that is not 0,
  and a transformation that adds no errors measures an error rate of exactly 0) and also
  shown as a difference in percentage points.
- **No nan, ever.** A latency figure needs a successful request in both arms; an arm with
  none makes that metric a *counted miss*: no accuracy, counted as a disagreement, and
  reported as a miss in every average.
- **Disagreement has a tolerance**, the bars the twin is held to on the testbed
  (docs/calibration.md): mean and p50 within 90%, p99 within 80%, the error rate within 3
  percentage points. Beyond it, the comparison is a disagreement, and each one becomes
  calibration evidence in the failure-mode database (:func:`evidence`,
  :func:`twin.store.documents.add_calibration_evidence`).
- **Each transformation has a twin equivalent** (:func:`twin_equivalent`): a delay is a
  latency fault at the entry, a synthetic error an error-rate fault there, throttling the
  policy's rate limit, and a payload alteration or bandwidth limit no effect (said so, with
  the reason).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from twin.calibrate.accuracy import accuracy
from twin.faults import ErrorRateFault, LatencyFault
from twin.mirror.document import (
    Bandwidth,
    Delay,
    PayloadNudge,
    PayloadSwap,
    RateLimit,
    SyntheticError,
    Transformation,
)

LATENCY_METRICS = ("latency_mean", "latency_p50", "latency_p99")
METRICS = (*LATENCY_METRICS, "error_rate")
_EPS = 1e-9
"""Rounding slack: 1 - |0.09 - 0.1| / 0.1 is 0.8999999999999999 in floating point, and a
figure exactly at the tolerance agrees."""
LABELS = {
    "latency_mean": "latency mean",
    "latency_p50": "latency p50",
    "latency_p99": "latency p99",
    "error_rate": "error rate",
}


# -- arms -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """One arm's figures: requests, successes, and the latency (seconds) of the successful
    ones (None when none succeeded)."""

    requests: int
    succeeded: int
    latency_mean: float | None = None
    latency_p50: float | None = None
    latency_p99: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed share of the requests; None when there were none."""
        return None if self.requests == 0 else 1.0 - self.succeeded / self.requests

    def get(self, metric: str) -> float | None:
        value: float | None = getattr(self, metric)
        return value

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": self.error_rate}


def arm(latencies: Sequence[float], ok: Sequence[bool]) -> Arm:
    """An arm from per-request records: latency (seconds) and whether it succeeded."""
    lat = np.asarray(latencies, dtype=float)
    good = np.asarray(ok, dtype=bool)
    if lat.shape != good.shape:
        raise ValueError("latencies and outcomes differ in length")
    done = lat[good]
    if len(done) == 0:
        return Arm(len(lat), 0)
    p50, p99 = np.quantile(done, (0.5, 0.99))
    return Arm(len(lat), len(done), float(done.mean()), float(p50), float(p99))


def arm_from_outcomes(o: Any) -> Arm:
    """An arm from a twin summary's entry (or whole-run) outcomes; requests still in flight
    at the end have no outcome and are left out, as a measurement leaves them out."""
    lat = o.latency
    return Arm(
        int(o.succeeded) + int(o.failed),
        int(o.succeeded),
        None if lat.mean is None else float(lat.mean),
        None if lat.p50 is None else float(lat.p50),
        None if lat.p99 is None else float(lat.p99),
    )


# -- judging --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """Where the twin and the shadow are taken to disagree: a latency accuracy below these
    (fractions, PerfSim's form), or an error rate further apart than ``error_rate_pp``."""

    latency_mean: float = 0.90
    latency_p50: float = 0.90
    latency_p99: float = 0.80
    error_rate_pp: float = 3.0


@dataclass(frozen=True)
class Verdict:
    """One metric of one transformation: the three figures, the twin's accuracy against the
    shadow (None for a counted miss), the error-rate gap in percentage points, and whether
    they disagree beyond the tolerance."""

    metric: str
    production: float | None
    shadow: float | None
    twin: float | None
    accuracy: float | None
    diff_pp: float | None
    miss: bool
    disagrees: bool
    why: str


def judge(production: Arm, shadow: Arm, twin: Arm, tol: Tolerance | None = None) -> list[Verdict]:
    """The twin against the real shadow, metric by metric (see the module's notes)."""
    tol = tol or Tolerance()
    out: list[Verdict] = []
    for m in LATENCY_METRICS:
        p, s, t = production.get(m), shadow.get(m), twin.get(m)
        if s is None or t is None or s <= 0:
            empty = [n for n, a in (("shadow", shadow), ("twin", twin)) if a.succeeded == 0]
            why = f"no successful request in the {' and '.join(empty) or 'shadow'} arm"
            out.append(Verdict(m, p, s, t, None, None, True, True, why))
            continue
        acc = accuracy(t, s)
        bar = float(getattr(tol, m))
        dis = acc < bar - _EPS
        why = f"accuracy {acc:.1%} {'<' if dis else '>='} {bar:.0%}"
        out.append(Verdict(m, p, s, t, acc, None, False, dis, why))
    pe, se, te = production.error_rate, shadow.error_rate, twin.error_rate
    if se is None or te is None:
        empty = [n for n, a in (("shadow", shadow), ("twin", twin)) if a.requests == 0]
        why = f"no request in the {' and '.join(empty)} arm"
        out.append(Verdict("error_rate", pe, se, te, None, None, True, True, why))
        return out
    gap = 100.0 * (te - se)
    if se >= 1.0:  # every shadow request failed: the success ratio measured is 0
        acc_e: float | None = 1.0 if te >= 1.0 else None
    else:
        acc_e = accuracy(1.0 - te, 1.0 - se)
    dis = abs(gap) > tol.error_rate_pp + _EPS
    miss = acc_e is None
    why = f"{gap:+.1f} pp ({'beyond' if dis else 'within'} {tol.error_rate_pp:g} pp)"
    if miss:
        why = "every shadow request failed and the twin predicts successes"
    out.append(Verdict("error_rate", pe, se, te, acc_e, gap, miss, dis or miss, why))
    return out


# -- the twin's equivalent of a transformation ----------------------------------------------------


@dataclass(frozen=True)
class Equivalent:
    """What the twin runs for a transformation: scenario faults, a policy (as documents), the
    fault kind recorded with the evidence, and why it is this."""

    kind: str
    faults: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] | None = None
    note: str = ""


def _share_samples(value: float, share: float) -> dict[str, Any]:
    """A delay of ``value`` on a ``share`` of requests: an empirical distribution of 0s and
    ``value`` in that proportion (to 1/100)."""
    if share >= 1.0:
        return {"dist": "constant", "mean": value}
    f = Fraction(share).limit_denominator(100)
    hits = max(1, f.numerator)
    return {"dist": "empirical", "samples": [value] * hits + [0.0] * (f.denominator - hits)}


def twin_equivalent(t: Transformation, entry: str) -> Equivalent:
    """The twin's fault (or policy) for a mirror transformation applied in front of the
    shadow's ``entry`` service."""
    if isinstance(t, Delay):
        return Equivalent(
            LatencyFault.name,
            [
                {
                    "kind": LatencyFault.name,
                    "target": entry,
                    "delay": _share_samples(t.intensity, t.share),
                }
            ],
            note=f"Envoy holds {t.share:.0%} of requests {t.intensity:g} s before the shadow: "
            f"a latency fault at {entry}",
        )
    if isinstance(t, SyntheticError):
        return Equivalent(
            ErrorRateFault.name,
            [{"kind": ErrorRateFault.name, "target": entry, "probability": t.share}],
            note=f"Envoy answers {t.status} to {t.share:.0%} of requests: an error-rate fault "
            f"at {entry}",
        )
    if isinstance(t, RateLimit):
        rps = t.intensity / max(t.share, 1e-9)
        note = f"a token bucket of {t.intensity} requests/s, 1 s fill: the policy's rate limit"
        if t.share < 1.0:
            note += f" (enforced on {t.share:.0%}: approximated as {rps:g}/s on all requests)"
        return Equivalent(
            "rate_limit",
            policy={"services": {entry: {"rate_limit": {"rps": rps, "burst": rps}}}},
            note=note,
        )
    if isinstance(t, PayloadNudge | PayloadSwap):
        return Equivalent(
            "none",
            note="a payload change reaches only services that read the body; the twin models "
            "no body, so none (data_corruption is the equivalent for a service that reads it)",
        )
    if isinstance(t, Bandwidth):
        return Equivalent(
            "none",
            note=f"{t.intensity} KiB/s on bodies; the twin has no body sizes, so none",
        )
    raise TypeError(f"unknown transformation {type(t).__name__}")


def predict(
    topology: Any,
    eq: Equivalent,
    *,
    multiplier: float,
    seconds: float = 600.0,
    warmup: float = 30.0,
    seed: int = 1,
) -> Arm:
    """The twin's arm: ``topology`` at ``multiplier`` times its workload, with the
    equivalent's faults over the whole run and its policy, one long run (the expectation of
    a measurement, not one noisy window)."""
    from twin.io import parse_model
    from twin.policy import Policy
    from twin.scenario import Scenario
    from twin.sim import Simulation

    faults = [{**f, "start": 0.0, "duration": seconds + warmup} for f in eq.faults]
    scenario = parse_model(
        Scenario,
        {
            "duration": seconds + warmup,
            "warmup": warmup,
            "seed": seed,
            "load": {"multiplier": multiplier},
            "faults": faults,
        },
        source=f"twin equivalent ({eq.kind})",
    )
    policy = parse_model(Policy, eq.policy or {}, source=f"twin equivalent ({eq.kind})")
    s = Simulation(topology, scenario, policy).run().summary
    entries = list(s.entries.values())
    return arm_from_outcomes(entries[0] if len(entries) == 1 else s)


# -- one comparison, many -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One transformation's three arms and verdicts."""

    transformation: str
    kind: str
    twin_kind: str
    note: str
    production: Arm
    shadow: Arm
    twin: Arm
    verdicts: list[Verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "transformation": self.transformation,
            "kind": self.kind,
            "twin_kind": self.twin_kind,
            "note": self.note,
            "production": self.production.to_json(),
            "shadow": self.shadow.to_json(),
            "twin": self.twin.to_json(),
            "verdicts": [asdict(v) for v in self.verdicts],
        }


def rows_from_json(result: dict[str, Any]) -> list[Row]:
    """The rows of a written ``threeway.json`` (to render its report again)."""

    def arm_of(d: dict[str, Any]) -> Arm:
        return Arm(**{k: v for k, v in d.items() if k != "error_rate"})

    return [
        Row(
            r["transformation"],
            r["kind"],
            r["twin_kind"],
            r["note"],
            arm_of(r["production"]),
            arm_of(r["shadow"]),
            arm_of(r["twin"]),
            [Verdict(**v) for v in r["verdicts"]],
        )
        for r in result["rows"]
    ]


def summarise(rows: Sequence[Row]) -> dict[str, Any]:
    """Per metric: mean and minimum accuracy over the comparisons that are not misses, how
    many are misses, and how many disagree (misses included). Never nan: a metric whose
    every comparison missed has no average (None)."""
    out: dict[str, Any] = {}
    for m in METRICS:
        vs = [v for r in rows for v in r.verdicts if v.metric == m]
        accs = [v.accuracy for v in vs if v.accuracy is not None]
        out[m] = {
            "compared": len(vs),
            "misses": sum(v.miss for v in vs),
            "disagreements": sum(v.disagrees for v in vs),
            "accuracy_mean": float(np.mean(accs)) if accs else None,
            "accuracy_min": float(min(accs)) if accs else None,
        }
    return out


def evidence(
    rows: Sequence[Row], *, topology: str, observed_at: str, entry: str, source: str = "threeway"
) -> list[dict[str, Any]]:
    """Calibration evidence records (one per transformation and metric) for
    :func:`twin.store.documents.add_calibration_evidence`: the twin's figure, the shadow's,
    the accuracy and whether they disagree. Every comparison is recorded, agreeing ones
    too, so the database knows where the twin was right as well as where it was wrong."""
    out = []
    for r in rows:
        for v in r.verdicts:
            out.append(
                {
                    "observed_at": observed_at,
                    "source": source,
                    "topology": topology,
                    "scenario": r.transformation,
                    "fault_kind": r.twin_kind,
                    "target": entry,
                    "metric": v.metric,
                    "predicted": _finite(v.twin),
                    "measured": _finite(v.shadow),
                    "accuracy": _finite(v.accuracy),
                    "disagrees": bool(v.disagrees),
                    "miss": v.miss,
                    "why": v.why,
                    "transformation_kind": r.kind,
                }
            )
    return out


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# -- the report -----------------------------------------------------------------------------------


def _cell(metric: str, v: float | None) -> str:
    from twin.campaign.report import ms, pct

    if v is None:
        return "–"
    return pct(v) if metric == "error_rate" else (f"{v * 1000:.1f} ms" if v < 1 else ms(v))


def render_html(result: dict[str, Any], rows: Sequence[Row], tol: Tolerance) -> str:
    """The three-way report: one table per metric, the disagreements, and two plots."""
    from twin.report import image

    esc = html.escape
    sections = []
    for m in METRICS:
        lines = []
        for r in rows:
            v = next(x for x in r.verdicts if x.metric == m)
            acc = "miss" if v.accuracy is None else f"{v.accuracy:.1%}"
            flag = " style='background:#fde2e2'" if v.disagrees else ""
            gap = "" if v.diff_pp is None else f" ({v.diff_pp:+.1f} pp)"
            lines.append(
                f"<tr{flag}><td>{esc(r.transformation)}</td><td>{_cell(m, v.production)}</td>"
                f"<td>{_cell(m, v.shadow)}</td><td>{_cell(m, v.twin)}</td>"
                f"<td>{acc}{gap}</td><td>{esc(v.why)}</td></tr>"
            )
        sections.append(
            f"<h2>{esc(LABELS[m])}</h2><table><tr><th>transformation</th><th>production</th>"
            f"<th>real shadow</th><th>twin</th><th>accuracy (twin vs shadow)</th><th></th></tr>"
            + "".join(lines)
            + "</table>"
        )
    summ = result["summary"]
    head = "".join(
        f"<tr><td>{esc(LABELS[m])}</td><td>{_acc(s['accuracy_mean'])}</td>"
        f"<td>{_acc(s['accuracy_min'])}</td><td>{s['misses']}</td>"
        f"<td>{s['disagreements']} of {s['compared']}</td></tr>"
        for m, s in summ.items()
    )
    notes = "".join(
        f"<tr><td>{esc(r.transformation)}</td><td>{esc(r.kind)}</td><td>{esc(r.twin_kind)}</td>"
        f"<td>{esc(r.note)}</td></tr>"
        for r in rows
    )
    meta = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>"
        for k, v in result.get("conditions", {}).items()
    )
    figs = "".join(f"<h2>{esc(t)}</h2>{image(f)}" for t, f in _plots(rows, tol))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Three-way comparison</title><style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
text-align:left}}th{{background:#f4f4f4}}</style></head><body>
<h1>Three-way comparison: production, real shadow, twin</h1>
<p>Accuracy = 1 − |twin − shadow| / shadow (PerfSim's form); the error rate is compared on
the success ratio and shown in percentage points. Tolerance: mean {tol.latency_mean:.0%},
p50 {tol.latency_p50:.0%}, p99 {tol.latency_p99:.0%}, error rate {tol.error_rate_pp:g} pp;
rows beyond it are shaded. A metric with no successful request in an arm is a counted
miss.</p>
<table>{meta}</table>
<h2>Summary</h2><table><tr><th>metric</th><th>mean accuracy</th><th>minimum</th>
<th>misses</th><th>disagreements</th></tr>{head}</table>
{"".join(sections)}
<h2>Twin equivalents</h2><table><tr><th>transformation</th><th>kind</th><th>twin</th>
<th>why</th></tr>{notes}</table>
{figs}
</body></html>"""


def _acc(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _plots(rows: Sequence[Row], tol: Tolerance) -> list[tuple[str, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.transformation for r in rows]
    x = np.arange(len(rows))
    out = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, m in zip(axes, ("latency_mean", "latency_p99"), strict=True):
        for i, (arm_name, color) in enumerate(
            (("production", "#888"), ("shadow", "#1f77b4"), ("twin", "#ff7f0e"))
        ):
            vals = [
                1000 * (getattr(r, arm_name).get(m) or 0.0) for r in rows
            ]  # a missing figure is drawn as 0 and marked "miss" in the table
            ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=arm_name, color=color)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{LABELS[m]} (ms)")
        ax.legend(fontsize=8)
    out.append(("Latency: production, real shadow and twin", fig))
    fig, ax = plt.subplots(figsize=(11, 3.6))
    for i, m in enumerate(METRICS):
        vals = [100 * (next(v for v in r.verdicts if v.metric == m).accuracy or 0.0) for r in rows]
        ax.bar(x + (i - 1.5) * 0.2, vals, 0.2, label=LABELS[m])
    ax.axhline(100 * tol.latency_p99, color="#c00", lw=0.8, ls="--", label="p99 tolerance")
    ax.axhline(100 * tol.latency_mean, color="#600", lw=0.8, ls=":", label="mean tolerance")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy, twin vs shadow (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=3)
    out.append(("Twin accuracy against the real shadow (a miss is drawn at 0)", fig))
    return out


def render_markdown(rows: Sequence[Row]) -> str:
    """The per-transformation table for documents: each metric as production / shadow /
    twin, and the twin's accuracy against the shadow (``miss`` for a counted miss; the
    error rate with its gap in percentage points; ``*`` beyond the tolerance)."""
    head = "| transformation | twin equivalent | requests (prod / mirrored) | " + " | ".join(
        f"{LABELS[m]}: prod / shadow / twin | accuracy" for m in METRICS
    )
    lines = [head + " |", "|---" * (3 + 2 * len(METRICS)) + "|"]
    for r in rows:
        cells = [r.transformation, r.twin_kind, f"{r.production.requests} / {r.shadow.requests}"]
        for m in METRICS:
            v = next(x for x in r.verdicts if x.metric == m)
            cells.append(" / ".join(_cell(m, x) for x in (v.production, v.shadow, v.twin)))
            acc = "miss" if v.accuracy is None else f"{v.accuracy:.1%}"
            if v.diff_pp is not None:
                acc += f" ({v.diff_pp:+.1f} pp)"
            cells.append(acc + (" *" if v.disagrees else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(out: str | Path, result: dict[str, Any], rows: Sequence[Row], tol: Tolerance) -> Path:
    """``OUT/threeway.json`` (with the ``evidence`` list ``twin schedule`` ingests),
    ``OUT/threeway.html`` and ``OUT/threeway.md`` (the table); each written whole or not
    at all."""
    from twin.results import write_json

    d = Path(out)
    write_json(d / "threeway.json", result)
    for name, text in (
        ("threeway.html", render_html(result, rows, tol)),
        ("threeway.md", render_markdown(rows)),
    ):
        tmp = d / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(d / name)
    return d / "threeway.json"


__all__ = [
    "LATENCY_METRICS",
    "METRICS",
    "Arm",
    "Equivalent",
    "Row",
    "Tolerance",
    "Verdict",
    "arm",
    "arm_from_outcomes",
    "evidence",
    "judge",
    "predict",
    "render_html",
    "render_markdown",
    "rows_from_json",
    "summarise",
    "twin_equivalent",
    "write",
]
