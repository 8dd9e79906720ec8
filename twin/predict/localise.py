"""Standardised changes around a suspected fault, and the statistical localiser baseline.

Both the classifier and the baseline start from the same numbers: for every service, edge and
entry metric, how far the windows *during* a fault moved from the windows *before* it, in
units of the metric's own spread before it (robust: median and interquartile range, as BARO
and the N-sigma rule of thumb do, so one spike before the fault does not hide the change).

The baseline (:func:`rank_services`) ranks services by the largest absolute standardised
change among the metrics that describe them: their own metrics and the latency of the calls
into them (a call into a slow service is slow on both sides; a slow network shows on the
caller's side only). It needs no training and knows nothing of the twin, which is why it is
the reference the classifier has to beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.predict.windows import Telemetry

Z_CAP = 1e4
"""Standardised changes are capped here: beyond it the size says nothing more, and an
unbounded number would let one metric with a near-zero spread dominate every sum."""

REL_FLOOR = 0.05
"""The spread is never taken below this share of the level before the fault: a metric that
happened to be flat for five minutes is not infinitely sensitive."""


SHARE_FLOOR = 1e-3
"""For shares (success): the spread is never below one request in a thousand. A share has
no relative floor: 95% after 100% is a large change, not 5% of the level."""

SHARES = frozenset({"success"})


def standardised_change(
    before: np.ndarray, during: np.ndarray, floor: float = 1e-9, relative: float = REL_FLOOR
) -> float:
    """(median during - median before) / robust spread before; NaN when either side has no
    finite value. Spread = max(IQR / 1.349, ``relative`` x |median before|, ``floor``)."""
    b = before[np.isfinite(before)]
    d = during[np.isfinite(during)]
    if not b.size or not d.size:
        return math.nan
    med = float(np.median(b))
    q75, q25 = np.percentile(b, [75, 25])
    scale = max(float(q75 - q25) / 1.349, relative * abs(med), floor)
    z = (float(np.median(d)) - med) / scale
    return float(np.clip(z, -Z_CAP, Z_CAP))


@dataclass(frozen=True)
class Changes:
    """Standardised changes of one suspected fault: per service, edge (``"a->b"``) and the
    entry, metric -> z (NaN where a side has no value)."""

    services: dict[str, dict[str, float]]
    edges: dict[str, dict[str, float]]
    entry: dict[str, float]
    calls: tuple[tuple[str, str], ...]

    def service_names(self) -> list[str]:
        """The candidates: services with a measured metric of their own or on a call into
        them (a name only seen at the end of a call edge, a database's address say, has
        nothing to rank it by)."""
        return sorted(set(self.services) | {e.split("->", 1)[1] for e in self.edges})


def changes(
    tel: Telemetry,
    start: float,
    during_s: float,
    before_s: float,
    drop: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> Changes:
    """The standardised changes of every metric of ``tel`` between the ``before_s`` seconds
    before ``start`` and the windows overlapping ``[start, start + during_s)``; metrics in
    ``drop`` ((scope, metric) pairs) are left out."""
    b = tel.before(start, before_s)
    d = tel.mask(start, start + during_s)

    def z(series: dict[str, np.ndarray], scope: str) -> dict[str, float]:
        return {
            m: (
                standardised_change(v[b], v[d], SHARE_FLOOR, 0.0)
                if m in SHARES
                else standardised_change(v[b], v[d])
            )
            for m, v in series.items()
            if (scope, m) not in drop
        }

    return Changes(
        services={s: z(v, "service") for s, v in tel.services.items()},
        edges={e: z(v, "edge") for e, v in tel.edges.items()},
        entry=z(tel.entry, "entry"),
        calls=tel.calls,
    )


def service_evidence(ch: Changes) -> dict[str, dict[str, float]]:
    """Per service, every standardised change that describes it: its own metrics, and for the
    calls into it the largest change on the callee's side (``in_server_p50``) and on the
    callers' side (``in_client_p50``)."""
    out: dict[str, dict[str, float]] = {s: dict(ch.services.get(s, {})) for s in ch.service_names()}
    for key, m in ch.edges.items():
        callee = key.split("->", 1)[1]
        if callee not in out:
            continue
        for metric, z in m.items():
            name = f"in_{metric}"
            if math.isfinite(z):
                prev = out[callee].get(name, math.nan)
                out[callee][name] = z if not math.isfinite(prev) or abs(z) > abs(prev) else prev
    return out


@dataclass(frozen=True)
class Ranked:
    """A service and its score (for the baseline: its largest absolute standardised change;
    ``metric`` says which)."""

    service: str
    score: float
    metric: str


def rank_services(ch: Changes) -> list[Ranked]:
    """The baseline: services ranked by their largest absolute standardised change (ties and
    services with no finite change last, by name)."""
    ranked: list[Ranked] = []
    for s, ev in service_evidence(ch).items():
        finite = {m: abs(z) for m, z in ev.items() if math.isfinite(z)}
        if finite:
            m = max(finite, key=lambda k: finite[k])
            ranked.append(Ranked(s, finite[m], m))
        else:
            ranked.append(Ranked(s, -1.0, "-"))
    return sorted(ranked, key=lambda r: (-r.score, r.service))
