"""Expanding a campaign document into scenarios and runs (the plan)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from twin.errors import InputError
from twin.faults import KINDS
from twin.faults import kind as fault_kind
from twin.incidents import classify
from twin.incidents import parse_duration as _parse_duration
from twin.io import DocProblem, _located, parse_model, read_yaml
from twin.policy import Policy
from twin.rng import generator, replication_seeds
from twin.safeload import loads_json, read_text
from twin.scenario import Load, Scenario
from twin.topology import SLO, Topology

if TYPE_CHECKING:
    pass

from twin.campaign.spec import (
    _FAULT,
    DEFAULT_INTENSITY,
    DEFAULT_RANGE,
    ROW_VERSION,
    Campaign,
    Grid,
    History,
    RandomSample,
)

# -- scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedScenario:
    """One scenario of the campaign with the parameters that go into every row."""

    name: str
    scenario: Scenario
    params: dict[str, Any]


def fault_intensity(fault: Any, topology: Topology) -> float | None:
    """The number a row reports as ``intensity``: the fault's intensity in its kind's unit."""
    return KINDS[fault.kind].intensity_of(fault, topology)


def make_fault(
    kind: str,
    target: str,
    intensity: float,
    start: float,
    duration: float | None,
    topology: Topology,
    params: dict[str, Any] | None = None,
) -> Any:
    """A scenario fault of ``kind`` at ``target`` whose intensity is in the kind's unit;
    ``params`` add or override fault fields."""
    data = fault_kind(kind).document(target, intensity, topology)
    data["start"] = start
    if duration is not None:
        data["duration"] = duration
    data.update(params or {})
    return _FAULT.validate_python(data)


def expand_targets(kind: str, targets: Sequence[str], topology: Topology) -> list[str]:
    """``"*"`` and ``"edges"`` become concrete names, in topology order."""
    edges = [f"{a}->{b}" for a, b in topology.service_graph().edges]
    accepts = KINDS[kind].targets
    out: list[str] = []
    for t in targets:
        if t == "*":
            if accepts.entry:
                out += list(dict.fromkeys(w.entry for w in topology.workload))
            elif not accepts.service:
                out += edges
            else:
                out += list(topology.services)
        elif t == "edges":
            out += edges
        else:
            out.append(t)
    return list(dict.fromkeys(out))


def _params(
    origin: str, faults: Sequence[Any], load: float, topology: Topology, incidents: int = 0
) -> dict[str, Any]:
    one = faults[0] if len(faults) == 1 else None
    return {
        "origin": origin,
        "fault_kind": "+".join(f.kind for f in faults) or "none",
        "target": "+".join(f.target for f in faults) or "-",
        "intensity": fault_intensity(one, topology) if one is not None else None,
        "load": float(load),
        "fault_start": float(min(f.start for f in faults)) if faults else None,
        "fault_duration": (
            float(one.duration) if one is not None and one.duration is not None else None
        ),
        "faults": len(faults),
        "incidents": incidents,
    }


def _num(x: float) -> str:
    return f"{x:.6g}"


class _Builder:
    """Collects scenarios in order, names them, and checks each against the topology."""

    def __init__(self, campaign: Campaign, topology: Topology) -> None:
        self.c = campaign
        self.topology = topology
        self.items: dict[str, PlannedScenario] = {}
        self.notes: list[str] = []

    def add(
        self,
        name: str,
        faults: list[Any],
        load: float | Load,
        origin: str,
        loc: tuple[str | int, ...],
        incidents: int = 0,
    ) -> None:
        if name in self.items:
            if origin == "list":
                raise DocProblem(loc, f"two scenarios are named {name!r}")
            return  # a generator produced the same scenario twice: keep the first
        ld = load if isinstance(load, Load) else Load(multiplier=load)
        mult = max([ld.multiplier] + [s.multiplier for s in ld.profile or []])
        sc = Scenario(
            duration=self.c.duration,
            warmup=self.c.warmup,
            seed=self.c.seed,
            window=self.c.window,
            load=ld,
            faults=faults,
        )
        try:
            sc.check_against(self.topology)
        except DocProblem as exc:
            raise DocProblem(loc, f"scenario {name!r}: {exc.message}") from None
        self.items[name] = PlannedScenario(
            name, sc, _params(origin, faults, mult, self.topology, incidents)
        )

    def fault(
        self,
        loc: tuple[str | int, ...],
        kind: str,
        target: str,
        intensity: float,
        duration: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        start, dur = self.c.fault_window()
        try:
            return make_fault(
                kind, target, intensity, start, duration or dur, self.topology, params
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            raise DocProblem(loc, f"{kind} at {target}: {err['msg']}") from None


def _grid(b: _Builder, grid: Grid) -> None:
    for i, sweep in enumerate(grid.faults):
        loc: tuple[str | int, ...] = ("grid", "faults", i)
        targets = expand_targets(sweep.kind, sweep.targets, b.topology)
        levels = sweep.intensities or [DEFAULT_INTENSITY[sweep.kind]]
        for target in targets:
            for x in levels:
                f = b.fault((*loc, "targets"), sweep.kind, target, x, params=dict(sweep.params))
                for load in grid.loads:
                    name = f"grid/{sweep.kind}/{target}/{_num(x)}/x{_num(load)}"
                    b.add(name, [f], load, "grid", (*loc, "targets"))


def _sample(b: _Builder, s: RandomSample, seed: int) -> None:
    rng = generator(seed if s.seed is None else s.seed, "campaign-sample")
    pools = {k: expand_targets(k, s.targets, b.topology) for k in s.kinds}
    for kind, pool in pools.items():
        if not pool:
            raise DocProblem(("sample", "targets"), f"no target suits {kind}")
    for n in range(s.count):
        faults = []
        for _ in range(s.faults):
            kind = s.kinds[int(rng.integers(len(s.kinds)))]
            pool = pools[kind]
            target = pool[int(rng.integers(len(pool)))]
            x = s.intensity.get(kind, DEFAULT_RANGE[kind]).draw(rng)
            faults.append(b.fault(("sample",), kind, target, x))
        load = s.load.draw(rng)
        desc = "+".join(f"{f.kind}:{f.target}" for f in faults)
        b.add(f"sample/{n:04d}/{desc}", faults, round(load, 6), "sample", ("sample",))


# -- incident history -----------------------------------------------------------------------


def parse_duration(value: Any) -> float | None:
    """Seconds of an incident's duration (:func:`twin.incidents.parse_duration`); None for a
    blank and also for an unreadable or negative one, which the caller reports with its row."""
    try:
        d = _parse_duration(value)
    except ValueError:
        return None
    return None if d is not None and d < 0 else d


def read_incidents(path: Path) -> list[dict[str, Any]]:
    """Rows of an incident log (CSV with a header, or JSON: a list or ``{"incidents": [...]}``),
    each with ``line`` for error messages."""
    text = read_text(path, "telemetry")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = loads_json(text, str(path), "telemetry")
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from None
        rows = data.get("incidents") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError("expected a list of incident objects", source=str(path))
        return [{**r, "line": None, "index": i} for i, r in enumerate(rows)]
    reader = csv.DictReader(text.splitlines())
    header = {(k or "").strip().lower() for k in reader.fieldnames or []}
    if not {"service", "symptom"} <= header:
        raise InputError(
            "incident log needs a header with at least service and symptom columns "
            "(time, service, symptom, duration, cause)",
            source=f"{path}:1",
        )
    out = []
    for i, r in enumerate(reader):
        out.append({**{k.strip().lower(): v for k, v in r.items() if k}, "line": i + 2, "index": i})
    return out


def _history(b: _Builder, h: History, base: Path) -> dict[str, Any]:
    path = (base / h.path).resolve()
    incidents = read_incidents(path)
    topo = b.topology
    graph = topo.service_graph()
    entries = {w.service: w.entry for w in topo.workload}
    groups: dict[tuple[str, str], list[float]] = {}
    skipped = 0
    for r in incidents:
        where = f"{path}:{r['line']}" if r["line"] else f"{path}: incidents[{r['index']}]"
        service = str(r.get("service") or "").strip()
        kind = classify(f"{r.get('symptom') or ''} {r.get('cause') or ''}", dict(h.symptoms))
        if service not in topo.services or kind is None:
            why = "unknown service" if service not in topo.services else "unrecognised symptom"
            b.notes.append(f"{where}: skipped ({why}: {service!r})")
            skipped += 1
            continue
        target = service
        accepts = KINDS[kind].targets
        if accepts.entry:
            target = entries.get(service, topo.workload[0].entry)
        elif not accepts.service:
            callers = sorted(graph.predecessors(service))
            if not callers:
                b.notes.append(f"{where}: skipped ({kind} needs a caller of {service!r})")
                skipped += 1
                continue
            target = f"{callers[0]}->{service}"
        raw = r.get("duration")
        d = parse_duration(raw)
        if d is None and raw not in (None, ""):
            raise InputError(
                f"duration: cannot read {raw!r} (e.g. 90, 90s, 15m, 1h30m, PT15M, 00:15:00)",
                source=where,
            )
        groups.setdefault((kind, target), []).append(d if d is not None else math.nan)
    _, window = b.c.fault_window()
    seen = set(groups)
    loc = ("history",)
    for (kind, target), durations in groups.items():
        known = [d for d in durations if not math.isnan(d)]
        dur = min(window, float(np.median(known))) if known else window
        x = {str(k): v for k, v in h.intensities.items()}.get(kind, DEFAULT_INTENSITY[kind])
        f = b.fault(loc, kind, target, x, duration=dur)
        b.add(f"history/{kind}/{target}", [f], 1.0, "history", loc, len(durations))
        for k in h.severities:
            g = b.fault(loc, kind, target, x * k, duration=dur)
            b.add(f"neighbour/{kind}/{target}/x{_num(k)}", [g], 1.0, "neighbour", loc)
        if "->" in target or KINDS[kind].targets.entry:
            continue
        near = set(graph.predecessors(target)) | set(graph.successors(target))
        ranked = sorted(near, key=lambda s: (-graph.nodes[s]["rate"], s))
        fresh = [s for s in ranked if (kind, s) not in seen][: h.neighbours]
        for s in fresh:
            g = b.fault(loc, kind, s, x, duration=dur)
            b.add(f"neighbour/{kind}/{s}", [g], 1.0, "neighbour", loc)
    return {"log": str(path), "incidents": len(incidents), "skipped": skipped}


# -- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTask:
    """One run: everything but the topology (shipped once per worker) that decides its row."""

    run_id: str
    campaign: str
    scenario: str
    scenario_index: int
    policy: str
    policy_index: int
    replication: int
    seed: int
    params: dict[str, Any]
    doc: Scenario
    policy_doc: Policy | None
    slo: SLO


@dataclass
class Plan:
    """A loaded campaign: the topology, policies and scenarios it expands to."""

    campaign: Campaign
    source: str
    topology: Topology
    policies: dict[str, Policy | None]
    scenarios: list[PlannedScenario]
    notes: list[str] = field(default_factory=list)
    history: dict[str, Any] | None = None

    @property
    def seeds(self) -> list[int]:
        c = self.campaign
        return [c.seed] if c.replications == 1 else replication_seeds(c.seed, c.replications)

    def tasks(self) -> list[RunTask]:
        """Every run, scenario by scenario, policy by policy, replication by replication."""
        topo_hash = _digest(self.topology.to_dict())
        slo = self.campaign.judged_slo(self.topology)
        out = []
        for si, ps in enumerate(self.scenarios):
            for pi, (pname, pol) in enumerate(self.policies.items()):
                pol_dump = pol.model_dump(mode="json") if pol is not None else None
                for r, seed in enumerate(self.seeds):
                    doc = ps.scenario.model_copy(update={"seed": seed})
                    run_id = _digest(
                        {
                            "v": ROW_VERSION,
                            "topology": topo_hash,
                            "scenario": [ps.name, doc.model_dump(mode="json")],
                            "policy": [pname, pol_dump],
                            "slo": slo.model_dump(mode="json"),
                            "replication": r,
                        }
                    )[:24]
                    out.append(
                        RunTask(
                            run_id,
                            self.campaign.name,
                            ps.name,
                            si,
                            pname,
                            pi,
                            r,
                            seed,
                            ps.params,
                            doc,
                            pol,
                            slo,
                        )
                    )
        return out

    @property
    def key(self) -> str:
        """Identifies this exact campaign (same spec, same runs) in the store."""
        return _digest([self.campaign.name, [t.run_id for t in self.tasks()]])[:24]


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_campaign(path: str | Path) -> Plan:
    """Read a campaign file and expand it; every problem is a one-line :class:`InputError`."""
    p = Path(path)
    data, text = read_yaml(p)
    if data is None:
        raise InputError("document is empty", source=str(p))
    campaign = parse_model(Campaign, data, source=str(p), text=text)
    try:
        return build_plan(campaign, p.parent, source=str(p))
    except DocProblem as exc:
        raise _located(exc.loc, exc.message, str(p), text) from None


def build_plan(campaign: Campaign, base: Path, *, source: str = "<campaign>") -> Plan:
    """Expand a campaign (paths relative to ``base``) into scenarios; raises DocProblem."""
    topology = Topology.load(base / campaign.topology)
    policies: dict[str, Policy | None] = {}
    for name, ref in campaign.policies.items():
        pol = Policy.load_file(base / ref) if isinstance(ref, str) else ref
        if pol is not None:
            try:
                pol.check_against(topology)
            except DocProblem as exc:
                raise DocProblem(("policies", name, *exc.loc), exc.message) from None
        policies[name] = pol
    b = _Builder(campaign, topology)
    if campaign.baseline:
        loads = campaign.grid.loads if campaign.grid else [1.0]
        for load in loads:
            b.add(f"baseline/x{_num(load)}", [], load, "baseline", ("baseline",))
    for i, item in enumerate(campaign.scenarios):
        b.add(item.name, list(item.faults), item.load, "list", ("scenarios", i, "name"))
    if campaign.grid is not None:
        _grid(b, campaign.grid)
    if campaign.sample is not None:
        _sample(b, campaign.sample, campaign.seed)
    hist = _history(b, campaign.history, base) if campaign.history is not None else None
    return Plan(campaign, source, topology, policies, list(b.items.values()), b.notes, hist)
