"""Decisions read straight from the standardised changes, beside the recognisers' own.

The classifier learns its pictures from the twin, and the twin's pictures differ from
production's in size and detail (docs/recognise.md); the statistical ranking compares
changes of different metrics as if one spread meant the same everywhere. A few facts hold
whatever the sizes, and these functions read them:

- **Two rankings agree more often than either is right alone.** :func:`fuse` combines the
  classifier's ranking and the statistical one by reciprocal rank fusion (Cormack et al.,
  SIGIR 2009): every service scores ``sum 1 / (k + rank)`` over the rankings. It reads
  ranks only, so neither side's scale (calibrated probabilities, spreads in the thousands)
  can drown the other.
- **Errors seen only at the entry.** When the entry's success share fell clearly and no
  service's own success share did (or the telemetry has none), the failing requests may
  have failed anywhere on their path, the entry service included; it is the one service
  sure to be on that path. :func:`place_entry` gives it a place in the first three.
- **How much an answer read** (:func:`strength`): the watch re-recognises every window of
  a condition, and as a fault ends its suspect windows fill with recovery; an answer read
  from fading changes should not replace one read from the fault itself.
- **The kind from what moved** (:func:`evidence_kind`): errors at the entry without its
  latency rising are an error fault; the first candidate's own CPU rising clearly is a CPU
  fault; its latency (own, or on the calls into it) rising with its CPU flat is a latency
  fault. Anything else is left to the recogniser.
- **Where failures start** (:func:`error_origins`, :func:`place_first`): a caller whose
  call failed fails too, so failures travel up the call graph, never down. Of the services
  failing more than they normally do (counted, :func:`twin.predict.failures.service_failures`),
  the ones none of whose callees fail are where the failures start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from twin.faults import CpuExhaustionFault, ErrorRateFault, LatencyFault
from twin.predict.localise import Changes, rank_services, service_evidence

CLEAR = 6.0
"""A standardised change at least this large is a clear move (the watch's anomaly band is
6 spreads wide)."""

FLAT = 2.0
"""A standardised change below this is no move at all (two spreads: what a quiet metric
does between one window and the next)."""

RRF_K = 60.0
"""Reciprocal rank fusion's constant, as published (k = 60): a candidate's rank counts
less the further down it is, and no single first place decides alone."""

ENTRY_PLACE = 3
"""Where :func:`place_entry` puts the entry service when it stands lower: the last of the
first three, so the recogniser's first two candidates keep their places."""

FAILING = 1e-2
"""A service fails more than it normally does when its failed requests over the suspect
windows have a tail below this at its normal rate. Looser than the watch's own count test
(10⁻³), which raises alerts: this one only orders the candidates of a condition already
raised."""

LATENCY_METRICS = ("latency_p95", "latency_p99", "in_client_p50", "in_server_p50")


def fuse(rankings: Sequence[Sequence[str]], k: float = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: every service named by any ranking, with score
    ``sum over rankings of 1 / (k + rank)`` (rank from 1; a ranking that does not name a
    service adds nothing), highest first; ties keep the first ranking's order, then the
    next's."""
    score: dict[str, float] = {}
    order: dict[str, int] = {}
    for ranking in rankings:
        for r, s in enumerate(ranking):
            score[s] = score.get(s, 0.0) + 1.0 / (k + r + 1)
            order.setdefault(s, len(order))
    return sorted(score.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def strength(ch: Changes) -> float:
    """How much moved: the sum over services of log(1 + their largest absolute standardised
    change) (:func:`twin.predict.localise.rank_services`' scores). Logarithms, so one metric
    at the cap does not outweigh everything else; a sum, so a picture where fewer services
    moved, or moved less, reads weaker."""
    return float(sum(math.log1p(r.score) for r in rank_services(ch) if r.score > 0))


def entry_services(ch: Changes) -> list[str]:
    """Services that call others and that no call goes into: where requests come in."""
    callees = {b for _, b in ch.calls}
    callers = {a for a, _ in ch.calls}
    return sorted(s for s in ch.service_names() if s in callers and s not in callees)


def _z(m: dict[str, float], key: str) -> float:
    v = m.get(key, math.nan)
    return v if math.isfinite(v) else math.nan


def errors_at_entry_only(ch: Changes) -> bool:
    """The entry's success share fell clearly (by :data:`CLEAR` spreads or more) and no
    service other than an entry shows its own success share falling clearly."""
    if not _z(ch.entry, "success") <= -CLEAR:
        return False
    entries = set(entry_services(ch))
    return not any(_z(m, "success") <= -CLEAR for s, m in ch.services.items() if s not in entries)


def place_entry(ranking: Sequence[str], ch: Changes, at: int = ENTRY_PLACE) -> list[str]:
    """``ranking`` with the entry service moved up to place ``at`` (1-based) when the
    errors are seen at the entry only (:func:`errors_at_entry_only`) and it stands lower
    or is absent; otherwise ``ranking`` unchanged. With several entries, the one ranked
    highest moves."""
    out = list(ranking)
    entries = entry_services(ch)
    if not entries or not errors_at_entry_only(ch):
        return out
    entry = min(entries, key=lambda s: out.index(s) if s in out else len(out))
    if entry in out[:at]:
        return out
    if entry in out:
        out.remove(entry)
    out.insert(min(at, len(out) + 1) - 1, entry)
    return out


def evidence_kind(ch: Changes, service: str | None) -> str | None:
    """The fault kind when the changes say it plainly, else None:

    - the entry's success fell clearly and its p99 did not rise clearly: ``error_rate``;
    - ``service``'s own CPU rose clearly: ``cpu_exhaustion``;
    - ``service``'s latency (its own p95/p99, or either side of the calls into it) rose
      clearly while its CPU stayed flat (below :data:`FLAT`): ``latency``.

    A service without a CPU reading decides neither of the last two."""
    if _z(ch.entry, "success") <= -CLEAR and not _z(ch.entry, "latency_p99") >= CLEAR:
        return ErrorRateFault.name
    if service is None:
        return None
    ev = service_evidence(ch).get(service, {})
    cpu = _z(ev, "cpu")
    if not math.isfinite(cpu):
        return None
    if cpu >= CLEAR:
        return CpuExhaustionFault.name
    lat = [z for z in (_z(ev, m) for m in LATENCY_METRICS) if math.isfinite(z)]
    if lat and max(lat) >= CLEAR and cpu < FLAT:
        return LatencyFault.name
    return None


def error_origins(
    tails: Mapping[str, float], calls: Sequence[tuple[str, str]], alpha: float = FAILING
) -> list[str]:
    """The services failing (their count tail below ``alpha``) while none of the services
    they call is, most improbable first."""
    failing = {s for s, t in tails.items() if t < alpha}
    callees: dict[str, set[str]] = {}
    for a, b in calls:
        callees.setdefault(a, set()).add(b)
    origins = [s for s in failing if not (callees.get(s, set()) - {s}) & failing]
    return sorted(origins, key=lambda s: (tails[s], s))


def place_first(ranking: Sequence[str], first: Sequence[str]) -> list[str]:
    """``first`` (the error origins, :func:`error_origins`), then the rest of ``ranking`` in
    its order."""
    return [*first, *(s for s in ranking if s not in first)]


__all__ = [
    "CLEAR",
    "ENTRY_PLACE",
    "FAILING",
    "FLAT",
    "RRF_K",
    "entry_services",
    "error_origins",
    "errors_at_entry_only",
    "evidence_kind",
    "fuse",
    "place_entry",
    "place_first",
    "strength",
]
