"""Fingerprints from the twin: what each fault kind looks like in windowed telemetry.

For each fault kind, target, intensity and load of a :class:`FingerprintSpec` the calibrated
twin runs a fault-free stretch (the baseline) and then the fault; its time series is read in
the live telemetry's vocabulary and windows (:mod:`twin.predict.windows`), given the noise
the live metrics show when nothing is wrong (:class:`NoiseModel`), and reduced to the
standardised changes the live side computes (:func:`twin.predict.localise.changes`). A case is
those changes and the truth (kind, target).

Targets. Service-level kinds target each service. ``latency`` and ``packet_loss`` hit the
network: their target is a service and the fault sits on every call *into* it (a delayed or
lossy pod: what chaos tools inject on a pod's interface); a service nothing calls has no
such calls and gets none (a delay *inside* it, the twin's service-level latency, holds a
worker just as a CPU slow-down does and would teach the models two names for one picture).
Intensities span each kind's own sampling range (:attr:`~twin.faults.FaultBase.intensity`),
geometric where the kind says so.

Noise. The twin's one-minute figures are smoother than production's: production adds
scrape jitter, other tenants and drift. For every metric the live spread in fault-free
windows (log scale; absolute for success shares) is measured, the twin's own spread in a
fault-free run is subtracted (in quadrature) and the rest is added to every simulated window,
so a standardised change means the same on both sides.

Cost. One run per (kind, target, intensity, load, seed) plus the fault-free ones; a run of
Online Boutique's ten services at ~9 requests/s over 10 simulated minutes takes about a
second. Results are cached under a content hash of everything that decides them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from twin.faults import KINDS, CpuExhaustionFault, ErrorRateFault, LatencyFault, PacketLossFault
from twin.io import parse_model
from twin.predict.localise import Changes, changes
from twin.predict.windows import Telemetry, from_series, uninformative
from twin.rng import generator
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

NETWORK_KINDS = frozenset({LatencyFault.name, PacketLossFault.name})
"""Kinds placed on the calls into the target service (on the service when nothing calls it)."""

ADDITIVE = frozenset({"success"})
"""Metrics whose noise is absolute (a share), not relative."""

CACHE_VERSION = 1


class FingerprintSpec(BaseModel):
    """Which simulated failures make the training set, and how they are windowed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kinds: tuple[str, ...] = Field(
        default=(LatencyFault.name, ErrorRateFault.name, CpuExhaustionFault.name),
        description="fault kinds to simulate (tags of the catalogue)",
    )
    targets: tuple[str, ...] | None = Field(
        default=None, description="services to put faults on (default: every service)"
    )
    levels: int = Field(default=3, ge=1, le=10, description="intensities per kind")
    loads: tuple[float, ...] = Field(
        default=(0.8, 1.25), description="load multipliers of the calibrated workload"
    )
    seeds: int = Field(default=1, ge=1, le=20, description="runs per combination")
    none_runs: int = Field(default=30, ge=0, le=200, description="fault-free runs")
    window_s: float = Field(default=60.0, gt=0, description="seconds per window")
    warmup_s: float = Field(default=60.0, ge=0, description="simulated seconds discarded first")
    before_s: float = Field(default=300.0, gt=0, description="baseline seconds before a fault")
    during_s: float = Field(default=180.0, gt=0, description="seconds a fault lasts")
    in_service: bool = Field(
        default=True,
        description=(
            "also simulate each network kind that has a form inside the target (latency) as "
            "a wait in its handler that holds no worker (an awaited call, a timer), which the "
            "target's own server-side latency includes, beside the delay on the wire, which "
            "only its callers see: production has both"
        ),
    )


@dataclass(frozen=True)
class Case:
    """One simulated failure: its standardised changes and the truth (``kind`` ``"none"``
    and ``target`` ``""`` for a fault-free run)."""

    changes: Changes
    kind: str
    target: str
    intensity: float
    load: float


# -- noise ------------------------------------------------------------------------------------


def _spread(v: np.ndarray, additive: bool) -> float:
    x = v[np.isfinite(v)]
    if not additive:
        x = np.log(x[x > 0])
    if x.size < 4:
        return math.nan
    q75, q25 = np.percentile(x, [75, 25])
    return float(q75 - q25) / 1.349


def _spreads(tel: Telemetry, keep: np.ndarray) -> dict[str, float]:
    """Per ``scope|name|metric`` the robust spread of the kept windows."""
    out: dict[str, float] = {}
    groups: list[tuple[str, dict[str, dict[str, np.ndarray]]]] = [
        ("service", tel.services),
        ("edge", tel.edges),
        ("entry", {"": tel.entry}),
    ]
    for scope, many in groups:
        for name, series in many.items():
            for m, v in series.items():
                s = _spread(v[keep], m in ADDITIVE)
                if math.isfinite(s):
                    out[f"{scope}|{name}|{m}"] = s
    return out


@dataclass(frozen=True)
class NoiseModel:
    """Production's spread per ``scope|name|metric`` in fault-free windows (log scale, or
    absolute for shares), with the median per ``scope|metric`` for names production lacks."""

    spread: dict[str, float]
    fallback: dict[str, float]

    @classmethod
    def from_quiet(cls, tel: Telemetry, quiet: np.ndarray) -> NoiseModel:
        """Estimated from the windows of ``tel`` selected by ``quiet`` (boolean mask)."""
        spread = _spreads(tel, quiet)
        by: dict[str, list[float]] = {}
        for key, s in spread.items():
            scope, _, metric = key.split("|")
            by.setdefault(f"{scope}|{metric}", []).append(s)
        return cls(spread, {k: float(np.median(v)) for k, v in by.items()})

    def get(self, scope: str, name: str, metric: str) -> float:
        key = f"{scope}|{name}|{metric}"
        if key in self.spread:
            return self.spread[key]
        return self.fallback.get(f"{scope}|{metric}", 0.0)

    def added(self, twin: dict[str, float]) -> NoiseModel:
        """The spread still to add to the twin's windows, given the twin's own (``twin``,
        from a fault-free run): sqrt(max(production^2 - twin^2, 0))."""
        keys = set(self.spread) | set(twin)
        out: dict[str, float] = {}
        for key in keys:
            scope, name, metric = key.split("|")
            live = self.get(scope, name, metric)
            own = twin.get(key, 0.0)
            out[key] = math.sqrt(max(live * live - own * own, 0.0))
        return NoiseModel(out, dict(self.fallback))

    def apply(self, tel: Telemetry, rng: np.random.Generator) -> Telemetry:
        """``tel`` with this noise added to every window (a new object)."""

        def noisy(scope: str, name: str, series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = {}
            for m, v in series.items():
                s = self.get(scope, name, m)
                e = rng.standard_normal(len(v)) * s
                if m in ADDITIVE:
                    out[m] = np.clip(v + e, 0.0, 1.0)
                else:
                    out[m] = v * np.exp(e)
            return out

        return Telemetry(
            times=tel.times,
            window=tel.window,
            services={n: noisy("service", n, v) for n, v in sorted(tel.services.items())},
            edges={n: noisy("edge", n, v) for n, v in sorted(tel.edges.items())},
            entry=noisy("entry", "", tel.entry),
            calls=tel.calls,
        )


# -- the runs ---------------------------------------------------------------------------------


def levels(kind: str, n: int) -> list[float]:
    """``n`` intensities across the kind's sampling range (geometric where the kind says)."""
    spec = KINDS[kind].intensity
    lo, hi = spec.sample
    if n == 1:
        return [float(spec.typical)]
    if spec.sample_log and lo > 0:
        return [float(x) for x in np.geomspace(lo, hi, n)]
    return [float(x) for x in np.linspace(lo, hi, n)]


def placeable(topology: Topology, kind: str, target: str) -> bool:
    """Whether ``kind`` can sit at service ``target`` (network kinds need calls into it)."""
    return kind not in NETWORK_KINDS or bool(list(topology.service_graph().in_edges(target)))


SERVED_KINDS = frozenset({LatencyFault.name})
"""Network kinds with a form inside the callee: the same delay spent in its handler without a
worker held, so its callers see what the wire form shows and the callee's own latency shows
it too (simulated on the wire, read on the callee's side)."""


def fault_documents(
    topology: Topology, kind: str, target: str, intensity: float, start: float, seconds: float
) -> list[dict[str, Any]]:
    """The twin's fault documents for ``kind`` at service ``target`` (a network kind on the
    calls into it)."""
    cls = KINDS[kind]
    where = [target]
    if kind in NETWORK_KINDS:
        into = [f"{a}->{b}" for a, b in topology.service_graph().in_edges(target)]
        if not into:
            return []
        where = into
    docs = []
    for w in where:
        d = cls.document(w, intensity, topology)
        d.update({"start": start, "duration": seconds})
        docs.append(d)
    return docs


def _edge_delay(
    docs: list[dict[str, Any]], times: np.ndarray, window: float
) -> dict[str, np.ndarray]:
    """Per edge, the injected network delay each window carries (mean delay x the share of
    the window the fault covers)."""
    out: dict[str, np.ndarray] = {}
    for d in docs:
        if d.get("kind") != LatencyFault.name or "->" not in d["target"]:
            continue
        delay = d["delay"]
        mean = float(delay["mean"]) if isinstance(delay, dict) else float(delay)
        lo, hi = float(d["start"]), float(d["start"]) + float(d["duration"])
        cover = np.clip(np.minimum(times, hi) - np.maximum(times - window, lo), 0, None) / window
        out[d["target"]] = out.get(d["target"], 0.0) + mean * cover
    return out


def _served(edges: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per callee, the delay of the calls into it (the largest, where several are delayed)."""
    out: dict[str, np.ndarray] = {}
    for key, v in edges.items():
        callee = key.split("->", 1)[1]
        out[callee] = np.maximum(out[callee], v) if callee in out else v
    return out


def simulate_window(
    topology: Topology,
    spec: FingerprintSpec,
    docs: list[dict[str, Any]],
    load: float,
    seed: int,
    duration: float,
    inside: bool = False,
) -> Telemetry:
    """One twin run with ``docs`` as its faults, as windowed telemetry; ``inside``: the
    delays on calls are read as waits inside their callee (:data:`SERVED_KINDS`)."""
    sc = parse_model(
        Scenario,
        {
            "duration": duration,
            "warmup": spec.warmup_s,
            "seed": seed,
            "window": spec.window_s,
            "load": {"multiplier": load},
            "faults": docs,
        },
    )
    res = Simulation(topology, sc, series="all").run()
    tel = from_series(res.timeseries.frame(), topology, spec.window_s)
    extra = _edge_delay(docs, tel.times, spec.window_s)
    if extra and inside:
        tel = from_series(res.timeseries.frame(), topology, spec.window_s, None, _served(extra))
    elif extra:
        tel = from_series(res.timeseries.frame(), topology, spec.window_s, extra)
    keep = tel.times > spec.warmup_s + 1e-9
    return _slice(tel, keep)


def _slice(tel: Telemetry, keep: np.ndarray) -> Telemetry:
    def cut(many: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
        return {n: {m: v[keep] for m, v in s.items()} for n, s in many.items()}

    return Telemetry(
        times=tel.times[keep],
        window=tel.window,
        services=cut(tel.services),
        edges=cut(tel.edges),
        entry={m: v[keep] for m, v in tel.entry.items()},
        calls=tel.calls,
    )


def _restrict(tel: Telemetry, like: Telemetry) -> Telemetry:
    """``tel`` with only the services, edges and entry metrics ``like`` has (what production
    measures); the call edges stay the twin's."""
    services = {
        n: {m: v for m, v in s.items() if m in like.services.get(n, {})}
        for n, s in tel.services.items()
        if n in like.services
    }
    edges = {
        n: {m: v for m, v in s.items() if m in like.edges.get(n, {})}
        for n, s in tel.edges.items()
        if n in like.edges
    }
    entry = {m: v for m, v in tel.entry.items() if m in like.entry}
    return Telemetry(tel.times, tel.window, services, edges, entry, tel.calls)


def cache_key(
    topology: Topology, spec: FingerprintSpec, noise: NoiseModel, seed: int, live: Telemetry
) -> str:
    shape = {
        "services": {n: sorted(s) for n, s in sorted(live.services.items())},
        "edges": {n: sorted(s) for n, s in sorted(live.edges.items())},
        "entry": sorted(live.entry),
    }
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "topology": topology.model_dump(mode="json"),
            "spec": spec.model_dump(mode="json"),
            "noise": asdict(noise),
            "seed": seed,
            "shape": shape,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _case_json(c: Case) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "target": c.target,
        "intensity": c.intensity,
        "load": c.load,
        "services": c.changes.services,
        "edges": c.changes.edges,
        "entry": c.changes.entry,
        "calls": [list(e) for e in c.changes.calls],
    }


def _case_from(d: dict[str, Any]) -> Case:
    def fl(m: dict[str, Any]) -> dict[str, float]:
        return {k: (math.nan if v is None else float(v)) for k, v in m.items()}

    ch = Changes(
        services={k: fl(v) for k, v in d["services"].items()},
        edges={k: fl(v) for k, v in d["edges"].items()},
        entry=fl(d["entry"]),
        calls=tuple((str(a), str(b)) for a, b in d["calls"]),
    )
    return Case(ch, str(d["kind"]), str(d["target"]), float(d["intensity"]), float(d["load"]))


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def _forms(kind: str, spec: FingerprintSpec) -> list[bool]:
    """The readings simulated for ``kind`` (``inside`` values): on the wire, and inside the
    callee too where the kind has that form and the spec asks for it."""
    return [False, True] if spec.in_service and kind in SERVED_KINDS else [False]


class Run(NamedTuple):
    """One simulated run of the training set (kind ``"none"``: fault-free)."""

    kind: str
    target: str
    intensity: float
    load: float
    replicate: int
    inside: bool = False
    """For a kind in :data:`SERVED_KINDS`: read as a wait inside the target."""


def plan(topology: Topology, spec: FingerprintSpec) -> list[Run]:
    """Every run the spec asks for, fault-free ones first (kind ``"none"``)."""
    targets = list(spec.targets) if spec.targets else list(topology.services)
    runs: list[Run] = []
    for i in range(spec.none_runs):
        runs.append(Run("none", "", 0.0, spec.loads[i % len(spec.loads)], i))
    for kind in spec.kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {list(KINDS)}")
        for target in targets:
            if not placeable(topology, kind, target):
                continue
            for inside in _forms(kind, spec):
                for x in levels(kind, spec.levels):
                    for load in spec.loads:
                        for r in range(spec.seeds):
                            runs.append(Run(kind, target, x, load, r, inside))
    return runs


def cache_file(
    topology: Topology, live: Telemetry, quiet: np.ndarray, spec: FingerprintSpec, seed: int
) -> str:
    """The name :func:`fingerprints` keeps this training set under in its cache folder."""
    noise = NoiseModel.from_quiet(live, quiet)
    return f"fingerprints-{cache_key(topology, spec, noise, seed, live)}.json"


def read_cases(path: Path) -> list[Case]:
    """A training set :func:`fingerprints` cached (a file it wrote)."""
    from twin.errors import InputError
    from twin.safeload import loads_json, read_text

    try:
        doc = loads_json(read_text(path, "telemetry"), str(path), "telemetry")
        return [_case_from(d) for d in doc]
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"not a cached training set ({e})", source=str(path)) from e


def fingerprints(
    topology: Topology,
    live: Telemetry,
    quiet: np.ndarray,
    spec: FingerprintSpec,
    seed: int,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Case]:
    """The training set: every run of :func:`plan`, read like ``live`` (same metrics, the
    noise of ``live``'s ``quiet`` windows added), as standardised changes. With
    ``cache_dir``, a finished set is kept there under its content hash and reused."""
    noise = NoiseModel.from_quiet(live, quiet)
    path = (
        None
        if cache_dir is None
        else Path(cache_dir) / cache_file(topology, live, quiet, spec, seed)
    )
    if path is not None and path.exists():
        return read_cases(path)
    drop = uninformative(live)
    duration = spec.warmup_s + spec.before_s + spec.during_s + 2 * spec.window_s
    # the twin's own spread, from one long fault-free run at the calibrated load
    long_spec = spec.model_copy(update={"during_s": spec.window_s})
    quiet_run = simulate_window(
        topology, long_spec, [], 1.0, seed, spec.warmup_s + 30 * spec.window_s
    )
    quiet_run = _restrict(quiet_run, live)
    add = noise.added(_spreads(quiet_run, np.ones(len(quiet_run.times), dtype=bool)))
    runs = plan(topology, spec)
    rng = generator(seed, "fingerprints")
    cases: list[Case] = []
    for n, (kind, target, x, load, _r, inside) in enumerate(runs):
        offset = float(rng.uniform(0.0, spec.window_s))
        start = spec.warmup_s + spec.before_s + offset
        docs = (
            []
            if kind == "none"
            else fault_documents(topology, kind, target, x, start, spec.during_s)
        )
        run_seed = int(rng.integers(1, 2**31 - 1))
        tel = simulate_window(topology, spec, docs, load, run_seed, duration, inside)
        tel = add.apply(_restrict(tel, live), rng)
        ch = changes(tel, start, spec.during_s, spec.before_s, drop)
        cases.append(Case(ch, kind, target, x, load))
        if progress is not None:
            progress(n + 1, len(runs))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(_nan_to_none([_case_json(c) for c in cases])), encoding="utf-8")
        tmp.replace(path)
    return cases
