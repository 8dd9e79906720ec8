"""The replay: the twin beside every observed fault and every fault-free stretch, scored.

For each fault the format can map, the twin runs at the load observed just before it
(:attr:`ReplayConfig.lookback`), with the fault active for the fault's duration after a
warm-up, seeds pooled; its figures are compared with every observed window that overlaps
the fault by at least :attr:`ReplayConfig.overlap` of a window. Windows farther than
:attr:`ReplayConfig.margin` from every fault are fault-free; they are cut into blocks
(:attr:`Observed.block_seconds`) and each block is compared with the twin at that block's
load (medians of its windows). Accuracy is PerfSim's, :func:`twin.calibrate.accuracy`.
Each fault is also scored against two predictions that need no twin (:func:`references`:
nothing changes from the lookback, and the best constant for the fault's own windows), and
with :attr:`ReplayConfig.anchor` the twin is put in step with the lookback first
(:class:`Anchor`).

Degenerate cases are counted, never a ``nan``: a twin prediction with no successful request
is a *miss* (accuracy 0 for its latency figures), a window with no measured figure is not
scored, and a summary over nothing is ``null``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from twin.calibrate.accuracy import accuracy
from twin.io import parse_model
from twin.replay.document import Fault, Figures, Observed, Window
from twin.replay.mapping import Plan
from twin.replay.workload import Choice, choose, closed_at, latency_of
from twin.rng import replication_seeds
from twin.scenario import Scenario
from twin.stats import LogHistogram
from twin.topology import Topology

Fit = Literal["none", "first"]
AnchorMode = Literal["none", "before"]
MIN_REQUESTS = 10.0
"""A service expected to see fewer requests than this in a block's run is not scored there
(its figures would be a handful of draws)."""
LATENCY = ("p50", "p99", "mean")
SKILL_SPAN = 0.01
"""Skill is not computed for a fault whose persistence is within one point of accuracy of
its ceiling: the ratio would divide by the noise."""
Planner = Callable[[Fault, Topology], "Plan | str"]


class ReplayConfig(BaseModel):
    """How a replay runs the twin and matches it with the data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fit: Fit = Field(
        default="none",
        description="'first': fit each fault type's magnitude on its first mapped fault, and "
        "never score that one; 'none': magnitudes as the data (or the format) give them",
    )
    seeds: int = Field(default=3, ge=1, le=100, description="runs pooled per fault")
    seed: int = Field(default=1, ge=0, description="first seed")
    warmup: float = Field(default=60.0, ge=0, description="simulated seconds before a fault")
    lookback: float = Field(
        default=300.0, gt=0, description="seconds before a fault whose load the twin runs at"
    )
    margin: float = Field(
        default=600.0, ge=0, description="seconds around a fault no fault-free window is taken"
    )
    overlap: float = Field(
        default=2 / 3, gt=0, le=1, description="share of a window a fault must cover to count"
    )
    block_seconds: float | None = Field(
        default=None, gt=0, description="fault-free block length (default: the format's)"
    )
    min_block_seconds: float = Field(
        default=900.0, gt=0, description="shorter fault-free stretches are left out"
    )
    twin_seconds: float | None = Field(
        default=None, gt=0, description="simulated seconds per block (default: the format's)"
    )
    anchor: AnchorMode = Field(
        default="none",
        description="'before': put the twin in step with the state production showed in the "
        "lookback before each fault (the observed figures' offset from the twin's own, "
        "fault-free, at that load, carried into the fault; twin.replay.run.Anchor); "
        "'none': the calibrated twin at that load as it is",
    )
    workload: Choice = Field(
        default="auto",
        description="the workload model: 'auto' keeps the topology's closed loop or lets the "
        "windows outside the held-out faults decide (twin.replay.workload); 'open' or "
        "'closed' forces one",
    )


@dataclass(frozen=True)
class Prediction:
    """The twin's figures over a run (seeds pooled); latency None when nothing succeeded."""

    p50: float | None
    p99: float | None
    mean: float | None
    success: float | None
    requests: int
    services: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def get(self, key: str) -> float | None:
        return getattr(self, key)  # type: ignore[no-any-return]


def _figures(hist: LogHistogram, counts: Sequence[int]) -> dict[str, float | None]:
    n = int(sum(counts))
    if not hist.n:
        return {"p50": None, "p99": None, "mean": None, "success": counts[0] / n if n else None}
    p50, p99 = hist.quantiles((0.5, 0.99))
    return {
        "p50": float(p50),
        "p99": float(p99),
        "mean": float(hist.mean),
        "success": counts[0] / n if n else None,
        "requests": float(n),
    }


def predict(
    topology: Topology,
    faults: list[dict[str, Any]],
    *,
    seconds: float,
    warmup: float,
    seeds: Sequence[int],
    observed: str | None,
    services: bool = False,
) -> Prediction:
    """The twin's figures at ``observed`` (None: every entry pooled) over ``seconds`` after
    ``warmup``, ``faults`` as given (their windows are the caller's), seeds pooled."""
    from twin.sim import Simulation

    hist = LogHistogram()
    counts = np.zeros(0, dtype=np.int64)
    per: dict[str, tuple[LogHistogram, np.ndarray]] = {}
    for seed in seeds:
        sc = parse_model(
            Scenario,
            {"duration": warmup + seconds, "warmup": warmup, "seed": seed, "faults": faults},
            source="replay scenario",
        )
        sim = Simulation(topology, sc, series="entries")
        sim.run()
        stats = (
            [sim.services[observed].stats]
            if observed is not None
            else [e.stats for e in sim.entries.values()]
        )
        for st in stats:
            hist.merge(st.hist)
            c = np.asarray(st.counts, dtype=np.int64)
            counts = c if not len(counts) else counts + c
        if services:
            for name, svc in sim.services.items():
                h, c0 = per.setdefault(
                    name, (LogHistogram(), np.zeros(len(svc.stats.counts), np.int64))
                )
                h.merge(svc.stats.hist)
                c0 += np.asarray(svc.stats.counts, dtype=np.int64)
    figs = _figures(hist, counts.tolist() if len(counts) else [0])
    n = int(counts.sum()) if len(counts) else 0
    return Prediction(
        p50=figs["p50"],
        p99=figs["p99"],
        mean=figs["mean"],
        success=figs["success"],
        requests=n,
        services={k: _figures(h, c.tolist()) for k, (h, c) in per.items()},
    )


# -- the state before a fault ----------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """The twin put in step with production just before a fault.

    ``observed``: production's figures over the lookback windows (medians of their
    quantiles, request-weighted mean and success, as a fault-free block is summarised);
    ``twin``: the twin's own at the same load without the fault (same seeds). Their offset
    is a state the calibrated twin does not hold (a slow hour, the tail of an earlier
    fault's queue, a neighbour) and is taken to last through the fault: each figure the twin
    predicts under the fault is shifted by it. The shift is additive because the
    unexplained time adds to a request's own; where the twin runs slower than production and
    the fault makes it faster still (an error path that returns early), the figure is scaled
    by ``observed / twin`` instead, so it stays positive. Success is shifted and clipped
    to [0, 1]."""

    observed: Figures
    twin: Prediction

    def apply(self, pred: Prediction) -> Prediction:
        out: dict[str, float | None] = {}
        for k in LATENCY:
            t, o, b = pred.get(k), getattr(self.observed, k), self.twin.get(k)
            if t is None or o is None or b is None or o <= 0 or b <= 0:
                out[k] = t
                continue
            out[k] = max(t + (o - b), t * min(1.0, o / b))
        t, o, b = pred.success, self.observed.success, self.twin.success
        out["success"] = (
            t if t is None or o is None or b is None else min(1.0, max(0.0, t + (o - b)))
        )
        return Prediction(
            p50=out["p50"],
            p99=out["p99"],
            mean=out["mean"],
            success=out["success"],
            requests=pred.requests,
            services=pred.services,
        )


def best_figure(values: Sequence[float]) -> float | None:
    """The single figure closest to these measurements on average accuracy (the mean of
    ``1 - |c - v| / v`` is concave and piecewise linear in ``c``, so its maximum is at one of
    them); None without a positive one."""
    v = [x for x in values if x > 0]
    if not v:
        return None
    return max(v, key=lambda c: float(np.mean([accuracy(c, x) for x in v])))


def best_constant(values: Sequence[float]) -> float | None:
    """The accuracy of :func:`best_figure` for these measurements: what a prediction that is
    constant over a fault can reach at most when the measurements move within it."""
    c = best_figure(values)
    if c is None:
        return None
    return float(np.mean([accuracy(c, x) for x in values if x > 0]))


def references(
    ws: Sequence[Window], before: Sequence[Window]
) -> dict[str, dict[str, float | None]]:
    """Two yardsticks for a fault's accuracy, from the data alone: ``persistence``, the
    lookback windows' figures as the prediction (nothing changes), and ``ceiling``, the
    best constant (:func:`best_constant`)."""
    prev = _summarise(before, [w.seconds for w in before]) if before else None
    rows = [compare(prev, w) for w in ws] if prev is not None else []
    return {
        "persistence": {k: _mean([r[k] for r in rows]) for k in LATENCY},
        "ceiling": {
            k: best_constant([v for w in ws if (v := getattr(w, k)) is not None]) for k in LATENCY
        },
    }


def block_references(
    blocks: Sequence[dict[str, Any]], block_seconds: float
) -> list[dict[str, Any]]:
    """The fault-free blocks' rows with two yardsticks of a quiet stretch added, each scored as
    the twin is (``references``): ``persistence``, the block just before as the prediction
    (same capture, ending within one block length of this one's start: the shadow in step
    with the last block), and ``constant``, the best single figure for all the capture's
    blocks (:func:`best_figure`), chosen knowing them: the most a twin whose quiet figures
    do not follow the load can reach. Null where there is no block just before, or the
    capture has a single block (its best figure is itself)."""
    by_segment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in blocks:
        by_segment[b["segment"]].append(b)
    best: dict[tuple[str, str], float | None] = {}
    for seg, bs in by_segment.items():
        for k in LATENCY:
            values = [v for b in bs if (v := b["measured"][k]) is not None]
            best[seg, k] = best_figure(values) if len(bs) > 1 else None
    out = []
    for b in blocks:
        prev = [
            p
            for p in by_segment[b["segment"]]
            if p["end"] <= b["start"] and b["start"] - p["end"] <= block_seconds
        ]
        meas = Figures(**b["measured"])
        pers = (
            compare(Figures(**max(prev, key=lambda p: p["end"])["measured"]), meas) if prev else {}
        )
        const = compare(Figures(**{k: best[b["segment"], k] for k in LATENCY}), meas)
        refs = {
            "persistence": {k: pers.get(k) for k in LATENCY},
            "constant": {k: None if best[b["segment"], k] is None else const[k] for k in LATENCY},
        }
        out.append({**b, "references": refs})
    return out


def skill(twin: float | None, persistence: float | None, ceiling: float | None) -> float | None:
    """Where the twin's accuracy sits between the two yardsticks: 0 at persistence, 1 at the
    ceiling, negative below persistence (unbounded: read medians, not means); None where
    either is missing or they are within :data:`SKILL_SPAN` of each other (a fault that
    hardly moved the figure leaves nothing to judge)."""
    if twin is None or persistence is None or ceiling is None or ceiling - persistence < SKILL_SPAN:
        return None
    return (twin - persistence) / (ceiling - persistence)


# -- load ------------------------------------------------------------------------------------


def at_load(
    topology: Topology,
    rate: float | None,
    service_rates: dict[str, float],
    latency: float | None = None,
) -> Topology:
    """The topology with its workload at an observed load.

    With a rate for every entry service (``service_rates``), an entry's rate is its
    service's observed rate minus what the topology's own callers send it (their observed
    rates times their calls per request, averaged over their operations); with only the
    entry rate (``rate``), every entry is scaled by its ratio to the topology's total; with
    neither, the topology is unchanged. A closed entry gets the users that send its rate at
    the observed mean ``latency`` (:func:`twin.replay.workload.closed_at`)."""
    work = list(topology.workload)
    if not work:
        return topology
    svc_of = [w.entry.split(":")[0] for w in work]
    if service_rates and all(s in service_rates for s in svc_of):
        sent: dict[str, float] = defaultdict(float)
        for name, svc in topology.services.items():
            r = service_rates.get(name)
            if not r or not svc.operations:
                continue
            for op in svc.operations.values():
                for c in op.calls:
                    sent[c.to.split(":")[0]] += r * c.probability * c.count / len(svc.operations)
        totals: dict[str, float] = defaultdict(float)
        for w, s in zip(work, svc_of, strict=True):
            totals[s] += w.rate
        new = []
        for w, s in zip(work, svc_of, strict=True):
            want = max(service_rates[s] - sent[s], 0.0)
            r = w.rate * want / totals[s]
            if r > 0:
                new.append(closed_at(w, r, latency))
        return topology.model_copy(update={"workload": new}) if new else topology
    if rate is not None and rate > 0:
        k = rate / sum(w.rate for w in work)
        return topology.model_copy(
            update={"workload": [closed_at(w, w.rate * k, latency) for w in work]}
        )
    return topology


def _load_of(windows: Sequence[Window]) -> tuple[float | None, dict[str, float], float | None]:
    """The windows' mean entry rate, mean rate per service and mean entry latency."""
    rates = [w.rate for w in windows if w.rate is not None]
    per: dict[str, list[float]] = defaultdict(list)
    for w in windows:
        for n, f in w.services.items():
            if f.rate is not None:
                per[n].append(f.rate)
    return (
        (float(np.mean(rates)) if rates else None),
        {n: float(np.mean(v)) for n, v in per.items()},
        latency_of(windows),
    )


def _load_key(
    rate: float | None, services: dict[str, float], latency: float | None
) -> tuple[Any, ...]:
    def r(x: float | None) -> float | None:
        return None if x is None else float(f"{x:.3g}")

    return (r(rate), tuple(sorted((k, r(v)) for k, v in services.items())), r(latency))


# -- matching --------------------------------------------------------------------------------


def windows_in(fault: Fault, windows: Sequence[Window], overlap: float) -> list[Window]:
    """The windows of the fault's capture it covers by at least ``overlap`` of a window."""
    out = []
    for w in windows:
        if w.segment != fault.segment:
            continue
        cover = min(w.time, fault.end) - max(w.time - w.seconds, fault.start)
        if cover >= overlap * w.seconds:
            out.append(w)
    return out


def windows_before(fault: Fault, windows: Sequence[Window], lookback: float) -> list[Window]:
    return [
        w
        for w in windows
        if w.segment == fault.segment and fault.start - lookback < w.time <= fault.start
    ]


def fault_free_windows(obs: Observed, cfg: ReplayConfig) -> list[Window]:
    """Windows farther than the margin from every fault of their capture."""
    return [
        w
        for w in obs.windows
        if not any(
            f.segment == w.segment
            and w.time > f.start - cfg.margin
            and w.time - w.seconds < f.end + cfg.margin
            for f in obs.faults
        )
    ]


def fault_free_blocks(obs: Observed, cfg: ReplayConfig) -> list[list[Window]]:
    """Windows farther than the margin from every fault of their capture, in blocks."""
    block = cfg.block_seconds or obs.block_seconds
    shortest = min(cfg.min_block_seconds, block)
    free = fault_free_windows(obs, cfg)
    blocks: list[list[Window]] = []
    cur: list[Window] = []
    for w in sorted(free, key=lambda w: (w.segment, w.time)):
        if cur and (
            w.segment != cur[0].segment
            or w.time - w.seconds - cur[-1].time > 0.5 * w.seconds
            or w.time - (cur[0].time - cur[0].seconds) > block
        ):
            blocks.append(cur)
            cur = []
        cur.append(w)
    if cur:
        blocks.append(cur)
    return [b for b in blocks if b[-1].time - (b[0].time - b[0].seconds) >= shortest]


# -- scoring ---------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.median(v)) if v else None


def _mean(values: Sequence[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def stats(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean, median, minimum, maximum and count of the values that exist (null when none)."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"mean": None, "median": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(np.mean(v)),
        "median": float(np.median(v)),
        "min": float(np.min(v)),
        "max": float(np.max(v)),
        "n": len(v),
    }


def compare(pred: Figures | Prediction, meas: Figures) -> dict[str, float | None]:
    """Accuracy of each latency figure (0 where the twin has none: a miss) and the success
    difference in percentage points; None where the data have no (or a zero) figure."""
    out: dict[str, float | None] = {}
    for k in LATENCY:
        m = getattr(meas, k)
        if m is None or m <= 0:
            out[k] = None
            continue
        p = pred.get(k) if isinstance(pred, Prediction) else getattr(pred, k)
        out[k] = 0.0 if p is None else accuracy(p, m)
    ps = pred.get("success") if isinstance(pred, Prediction) else pred.success
    out["success_pp"] = None if meas.success is None or ps is None else 100.0 * (ps - meas.success)
    return out


def _fit_error(pred: Prediction, windows: Sequence[Window], on: str) -> float:
    errs: list[float] = []
    for w in windows:
        if on == "success":
            if w.success is not None:
                errs.append(math.inf if pred.success is None else abs(pred.success - w.success))
            continue
        for k in LATENCY:
            m = getattr(w, k)
            if m is None or m <= 0:
                continue
            p = pred.get(k)
            errs.append(math.inf if p is None or p <= 0 else abs(math.log(p / m)))
    return float(np.mean(errs)) if errs else math.inf


def _summarise(w: Sequence[Figures], seconds: Sequence[float]) -> Figures:
    """A block's figures: the mean latency and success weighted by each window's requests
    (exact for the block as a whole), the medians of the windows' quantiles, the mean rate."""
    weights = [(x.rate or 0.0) * s for x, s in zip(w, seconds, strict=True)]

    def weighted(k: str) -> float | None:
        pairs = [(getattr(x, k), q) for x, q in zip(w, weights, strict=True)]
        pairs = [(v, q) for v, q in pairs if v is not None]
        if not pairs:
            return None
        total = sum(q for _, q in pairs)
        if total <= 0:
            return float(np.mean([v for v, _ in pairs]))
        return float(sum(v * q for v, q in pairs) / total)

    return Figures(
        rate=_mean([x.rate for x in w]),
        mean=weighted("mean"),
        success=weighted("success"),
        p50=_median([x.p50 for x in w]),
        p99=_median([x.p99 for x in w]),
    )


# -- the run ---------------------------------------------------------------------------------


def run_replay(
    topology: Topology,
    obs: Observed,
    planner: Planner,
    cfg: ReplayConfig,
    *,
    base_faults: Sequence[dict[str, Any]] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Replay every fault and fault-free block of ``obs`` in the twin; the result document
    (what ``accuracy.json`` holds)."""
    seeds = (
        [cfg.seed] if cfg.seeds == 1 else [int(s) for s in replication_seeds(cfg.seed, cfg.seeds)]
    )
    plans: list[tuple[Fault, Plan | str]] = [(f, planner(f, topology)) for f in obs.faults]
    matched = {id(f): windows_in(f, obs.windows, cfg.overlap) for f in obs.faults}
    fit_on: dict[str, Fault] = {}
    keys = _fit_keys(plans)
    if cfg.fit == "first":
        for f, p in plans:
            if isinstance(p, Plan) and not p.fixed and p.grid and matched[id(f)]:
                fit_on.setdefault(keys[id(f)], f)
    topology, workload = _workload(topology, obs, cfg, list(fit_on.values()), matched)
    closed = any(w.closed for w in topology.workload)
    blocks = fault_free_blocks(obs, cfg)
    total = (
        len(plans)
        + len(blocks)
        + sum(len(p.grid) for f, p in plans if isinstance(p, Plan) and fit_on.get(keys[id(f)]) is f)
    )
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, total)

    base = list(base_faults)
    magnitudes: dict[str, float] = {}
    fitted: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for f, p in plans:
        ws = matched[id(f)]
        row: dict[str, Any] = {
            "fault": f.label,
            "type": f.type,
            "target": f.target,
            "segment": f.segment,
            "start": f.start,
            "end": f.end,
        }
        if isinstance(p, str):
            rows.append({**row, "role": "unmapped", "reason": p})
            tick()
            continue
        row["twin_fault"] = p.what
        if not ws:
            rows.append({**row, "role": "no data", "reason": "no observed window in the fault"})
            tick()
            continue
        before = windows_before(f, obs.windows, cfg.lookback)
        # without windows before the fault, an open loop runs at the fault's own rate; a
        # closed one keeps its fitted users (the fault's rate is what the users' wait made it)
        rate, per, lat = _load_of(before or ([] if closed else ws))
        topo = at_load(topology, rate, per, lat)
        if p.adjust is not None:
            topo = p.adjust(topo)
        row["load"] = {"rate": rate, "services": per} if per else {"rate": rate}
        users = {w.entry: w.users for w in topo.workload if w.users is not None}
        if users:
            row["load"] |= {"latency": lat, "users": users}
        win = {"start": cfg.warmup, "duration": f.end - f.start}
        anchor: Anchor | None = None
        if cfg.anchor == "before" and before:
            anchor = Anchor(
                observed=_summarise(before, [w.seconds for w in before]),
                twin=predict(
                    topo,
                    base,
                    seconds=cfg.lookback,
                    warmup=cfg.warmup,
                    seeds=seeds,
                    observed=obs.observed,
                ),
            )
            row["anchor"] = {
                "observed": anchor.observed.model_dump(include={*LATENCY, "success"}),
                "twin": {k: anchor.twin.get(k) for k in (*LATENCY, "success")},
            }
        raw: dict[float, Prediction] = {}

        def run(
            x: float,
            p: Plan = p,
            topo: Topology = topo,
            win: dict[str, float] = win,
            anchor: Anchor | None = anchor,
            raw: dict[float, Prediction] = raw,
        ) -> Prediction:
            docs = [{**d, **win} for d in p.build(x)]
            raw[x] = predict(
                topo,
                base + docs,
                seconds=float(win["duration"]),
                warmup=cfg.warmup,
                seeds=seeds,
                observed=obs.observed,
            )
            return raw[x] if anchor is None else anchor.apply(raw[x])

        role = "held out"
        tried: dict[float, Prediction] = {}
        key = keys.get(id(f), f.type)
        if fit_on.get(key) is f:
            trials = {}
            for g in p.grid:
                tried[g] = run(g)
                trials[g] = _fit_error(tried[g], ws, p.fit_on)
                tick()
            best = min(trials, key=lambda g: trials[g])
            magnitudes[key] = best
            fitted[key] = {"magnitude": best, "on": f.label, "grid": trials}
            role = "fit"
        x: float | None = p.value if p.fixed else magnitudes.get(key, p.value)
        if x is None:
            rows.append(
                {
                    **row,
                    "role": "unmapped",
                    "reason": "no magnitude in the data: fit one with --fit first",
                }
            )
            tick()
            continue
        pred = tried[x] if x in tried else run(x)
        per_window = [compare(pred, w) for w in ws]
        miss = pred.p50 is None
        acc = {k: _mean([a[k] for a in per_window]) for k in LATENCY}
        refs = references(ws, before)
        rows.append(
            {
                **row,
                "role": role,
                "magnitude": x,
                "measured": [w.model_dump(exclude={"services"}) for w in ws],
                "twin": {k: pred.get(k) for k in (*LATENCY, "success")}
                | {"requests": pred.requests},
                "twin_alone": {k: raw[x].get(k) for k in (*LATENCY, "success")},
                "windows": per_window,
                "references": refs,
                "skill": {
                    k: skill(acc[k], refs["persistence"][k], refs["ceiling"][k]) for k in LATENCY
                },
                "accuracy": acc,
                "success_pp": _mean(
                    [
                        abs(a["success_pp"]) if a["success_pp"] is not None else None
                        for a in per_window
                    ]
                ),
                "miss": miss,
            }
        )
        tick()

    block_rows = block_references(
        _blocks(topology, obs, cfg, blocks, base, tick), cfg.block_seconds or obs.block_seconds
    )
    return _result(obs, cfg, rows, block_rows, fitted) | {"workload": workload}


def _fit_keys(plans: Sequence[tuple[Fault, Plan | str]]) -> dict[int, str]:
    """What a fitted magnitude is shared by: the fault type, and the twin fault kind where one
    type maps to several (a CPU fault is a hog where the pod's CPU figures exist, a delay
    where they do not: a number of threads and a delay in seconds are not one magnitude).
    The kind the type maps to first keeps the bare type's name."""
    first: dict[str, str] = {}
    out: dict[int, str] = {}
    for f, p in plans:
        if not isinstance(p, Plan):
            continue
        kind = first.setdefault(f.type, p.kind)
        out[id(f)] = f.type if p.kind == kind else f"{f.type} ({p.kind})"
    return out


def _workload(
    topology: Topology,
    obs: Observed,
    cfg: ReplayConfig,
    fit_faults: Sequence[Fault],
    matched: dict[int, list[Window]],
) -> tuple[Topology, dict[str, Any]]:
    """The workload model from the fault-free windows and the fitted faults' windows (the
    held-out faults' windows are never read)."""
    free = fault_free_windows(obs, cfg)
    seen = {(w.segment, w.time) for w in free}
    windows = list(free)
    for f in fit_faults:
        for w in matched[id(f)]:
            if (w.segment, w.time) not in seen:
                seen.add((w.segment, w.time))
                windows.append(w)
    sources = {"fault_free": len(free), "fitted_faults": len(windows) - len(free)}
    return choose(topology, cfg.workload, windows, sources)


def _blocks(
    topology: Topology,
    obs: Observed,
    cfg: ReplayConfig,
    blocks: list[list[Window]],
    base: list[dict[str, Any]],
    tick: Callable[[], None],
) -> list[dict[str, Any]]:
    seconds = cfg.twin_seconds or obs.twin_seconds
    closed = any(w.closed for w in topology.workload)
    cache: dict[tuple[Any, ...], Prediction] = {}
    out = []
    for b in blocks:
        rate, per, lat = _load_of(b)
        key = _load_key(rate, per, lat if closed else None)
        with_services = any(w.services for w in b)
        if key not in cache:
            cache[key] = predict(
                at_load(topology, rate, per, lat),
                base,
                seconds=seconds,
                warmup=cfg.warmup,
                seeds=[cfg.seed],
                observed=obs.observed,
                services=with_services,
            )
        pred = cache[key]
        meas = _summarise(b, [w.seconds for w in b])
        row: dict[str, Any] = {
            "segment": b[0].segment,
            "start": b[0].time - b[0].seconds,
            "end": b[-1].time,
            "windows": len(b),
            "measured": meas.model_dump(),
            "twin": {k: pred.get(k) for k in (*LATENCY, "success")},
            "accuracy": compare(pred, meas),
            "miss": pred.p50 is None,
        }
        if with_services:
            names = sorted({n for w in b for n in w.services})
            svc_rows = {}
            for n in names:
                ws = [w for w in b if n in w.services]
                m = _summarise([w.services[n] for w in ws], [w.seconds for w in ws])
                t = pred.services.get(n)
                if t is None or (m.rate or 0.0) * seconds < MIN_REQUESTS:
                    continue
                tw = Figures(**{k: v for k, v in t.items() if k in Figures.model_fields})
                svc_rows[n] = {
                    "measured": m.model_dump(),
                    "twin": tw.model_dump(),
                    "accuracy": compare(Prediction(**_pred_fields(t)), m),
                }
            row["services"] = svc_rows
        out.append(row)
        tick()
    return out


def _pred_fields(t: dict[str, float | None]) -> dict[str, Any]:
    return {
        "p50": t.get("p50"),
        "p99": t.get("p99"),
        "mean": t.get("mean"),
        "success": t.get("success"),
        "requests": int(t.get("requests") or 0),
    }


def _result(
    obs: Observed,
    cfg: ReplayConfig,
    rows: list[dict[str, Any]],
    blocks: list[dict[str, Any]],
    fitted: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    held = [r for r in rows if r["role"] == "held out"]
    per_window = [a for r in held for a in r["windows"]]

    def over(rs: list[dict[str, Any]], k: str) -> dict[str, Any]:
        return stats([r["accuracy"][k] for r in rs])

    segments: dict[str, Any] = {}
    for b in blocks:
        if "services" not in b:
            continue
        seg = segments.setdefault(b["segment"], {"blocks": 0, "services": defaultdict(list)})
        seg["blocks"] += 1
        for svc in b["services"].values():
            for k, v in svc["accuracy"].items():
                seg["services"][k].append(abs(v) if k == "success_pp" and v is not None else v)
    return {
        "format": obs.format,
        "observed": obs.observed or "entries",
        "config": cfg.model_dump(),
        "n_held_out": len(held),
        "n_fitted": sum(r["role"] == "fit" for r in rows),
        "misses": sum(bool(r.get("miss")) for r in [*held, *blocks]),
        "unmapped": [
            {"fault": r["fault"], "type": r["type"], "reason": r["reason"]}
            for r in rows
            if r["role"] == "unmapped"
        ],
        "no_data": [r["fault"] for r in rows if r["role"] == "no data"],
        "fitted": {k: {"magnitude": v["magnitude"], "on": v["on"]} for k, v in fitted.items()},
        "held_out": {
            **{k: over(held, k) for k in LATENCY},
            "success_pp": stats([r["success_pp"] for r in held]),
            "references": {
                ref: {k: stats([r["references"][ref][k] for r in held]) for k in LATENCY}
                for ref in ("persistence", "ceiling")
            },
            "skill": {k: stats([r["skill"][k] for r in held]) for k in LATENCY},
            "windows": {
                **{k: stats([a[k] for a in per_window]) for k in LATENCY},
                "n": len(per_window),
            },
        },
        "fault_free": {
            **{k: stats([b["accuracy"][k] for b in blocks]) for k in LATENCY},
            "success_pp": stats(
                [
                    abs(b["accuracy"]["success_pp"])
                    if b["accuracy"]["success_pp"] is not None
                    else None
                    for b in blocks
                ]
            ),
            "references": {
                ref: {k: stats([b["references"][ref][k] for b in blocks]) for k in LATENCY}
                for ref in ("persistence", "constant")
            },
            "skill": {k: _block_skill(blocks, k) for k in LATENCY},
            "n_blocks": len(blocks),
            "segments": {
                s: {
                    "blocks": v["blocks"],
                    "services": {k: stats(x) for k, x in v["services"].items()},
                }
                for s, v in segments.items()
            },
        },
        "faults": rows,
        "blocks": blocks,
        "files": obs.files,
        "notes": obs.notes,
        "fit_grids": {
            k: {str(g): (e if math.isfinite(e) else None) for g, e in v["grid"].items()}
            for k, v in fitted.items()
        },
    }


def _block_skill(blocks: Sequence[dict[str, Any]], k: str) -> float | None:
    """:func:`skill` of the fault-free means, over the blocks that have both yardsticks (a
    block's own skill divides by the noise of one half hour)."""
    both = [
        b
        for b in blocks
        if b["accuracy"][k] is not None
        and all(b["references"][r][k] is not None for r in ("persistence", "constant"))
    ]
    if not both:
        return None

    def mean(of: Callable[[dict[str, Any]], float]) -> float:
        return float(np.mean([of(b) for b in both]))

    return skill(
        mean(lambda b: b["accuracy"][k]),
        mean(lambda b: b["references"]["persistence"][k]),
        mean(lambda b: b["references"]["constant"][k]),
    )
