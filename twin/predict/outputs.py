"""One ``twin watch`` run: a source, the loop, and what it leaves behind.

:func:`run_watch` builds the source, runs :class:`~twin.predict.watch.Watch` over it, and
writes into the output folder as it goes: ``alerts.jsonl`` (each message appended the
window it was raised, so a live watch is tailed like a log), then ``timeline.json`` (one
record per window, the source's report and the run's figures, what the explorer reads) and
``report.html`` (the timeline drawn: entry latency with the forecast band, the twin's
prediction and its error, alerts and the baselines' alert times). Messages also go to the
Alertmanager webhook and the failure-mode database when asked.

A run that fails on bad input leaves nothing half-written: the files are written in a
hidden folder beside the outputs and moved into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.calibrate.metrics import MetricMap
from twin.errors import InputError
from twin.io import http_url, output_dir
from twin.predict import sources as src
from twin.predict.alerts import Alert, alertmanager_payload, database_rows, post_webhook
from twin.predict.watch import (
    Candidate,
    Classifier,
    LargestChange,
    MitigationLookup,
    Recogniser,
    Watch,
    WatchConfig,
)
from twin.topology import Topology


@dataclass(frozen=True)
class WatchRun:
    """Everything one run needs (the CLI fills it from its options)."""

    topology: Topology
    out: Path
    prometheus: str | None = None
    replay: Path | None = None
    format: str | None = None
    mapping: MetricMap | None = None
    window_s: float | None = None
    db: str | None = None
    webhook: str | None = None
    config: WatchConfig = field(default_factory=WatchConfig)
    polls: int | None = None
    history_s: float | None = None
    """Seconds of telemetry read only to learn normal before judging: a live watch's
    history (default :data:`~twin.predict.sources.LIVE_HISTORY_S`), a replay's first ones
    (default 0)."""
    title: str = "twin watch"
    recogniser: str | None = None
    seed: int = 1


@dataclass
class RunResult:
    """What a run did, in figures."""

    windows: int
    alerts_firing: int
    alerts_resolved: int
    wall_seconds: float
    source: dict[str, Any]
    problems: list[str]
    out: Path
    recogniser: str = ""


def make_source(run: WatchRun) -> src.Source:
    """The run's source; bad options are one-line input errors."""
    if (run.prometheus is None) == (run.replay is None):
        raise InputError("watch: give exactly one of --prometheus URL or --replay DIR")
    if run.replay is not None:
        if run.format is None:
            raise InputError(f"watch: --replay needs --format ({'|'.join(src.FORMATS)})")
        rec = src.replay(run.replay, run.format, mapping=run.mapping, window=run.window_s)
        return src.learn_first(rec, run.history_s or 0.0)
    assert run.prometheus is not None
    http_url(run.prometheus, "watch: --prometheus")
    return src.PrometheusSource(
        run.prometheus,
        run.mapping or MetricMap(),
        window=run.window_s or 60.0,
        polls=run.polls,
        history=src.LIVE_HISTORY_S if run.history_s is None else run.history_s,
    )


def recogniser_cache(topology: Topology) -> Path:
    """Where ``--recogniser auto`` keeps the recogniser trained for ``topology``:
    ``$XDG_CACHE_HOME/twin/recogniser/<hash of the topology>`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    blob = json.dumps(topology.model_dump(mode="json"), sort_keys=True, default=str)
    return Path(base) / "twin" / "recogniser" / hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_recogniser(
    run: WatchRun, source: src.Source, progress: Callable[[int, int], None] | None = None
) -> tuple[Recogniser, str]:
    """The run's recogniser and a line saying which it is. ``--recogniser DIR`` loads the
    one kept in DIR; ``auto`` trains one for the topology on the replayed telemetry (its
    noise and metric set; the simulated training set is cached under its content hash, so
    the same inputs simulate once) and keeps it in :func:`recogniser_cache`, or, live, loads
    the one kept there. Without one, the statistical ranking answers, and the line says so."""
    from twin.predict import recognise as rc
    from twin.predict.fingerprints import FingerprintSpec
    from twin.predict.windows import from_windows

    statistical = "root cause and kind from the statistical ranking (largest change)"
    calls = tuple(run.topology.service_graph().edges) + tuple(getattr(source, "calls", ()))
    calls = tuple(dict.fromkeys((str(a), str(b)) for a, b in calls))
    if run.recogniser is None:
        return LargestChange(calls), f"{statistical}: no --recogniser given"
    items: list[src.Window] | None = getattr(source, "items", None)
    if run.recogniser != "auto":
        folder = Path(run.recogniser)
        trained = rc.load(folder)
        if trained is None:
            return LargestChange(calls), f"{statistical}: no recogniser kept in {folder}"
    else:
        folder = recogniser_cache(run.topology)
        if items:
            live = from_windows(items, calls)
            base = np.array([w.baseline for w in items], dtype=bool)
            quiet = base if base.any() else np.ones(len(items), dtype=bool)
            w = live.window
            spec = FingerprintSpec(
                loads=(1.0,), none_runs=20, window_s=w, before_s=5 * w, during_s=3 * w
            )
            try:
                trained = rc.train(run.topology, live, quiet, spec, run.seed, folder, progress)
            except ValueError as e:
                return LargestChange(
                    calls
                ), f"{statistical}: the recogniser cannot be trained ({e})"
        else:
            trained = rc.load(folder)
            if trained is None:
                return LargestChange(calls), (
                    f"{statistical}: no recogniser kept for this topology and no recorded "
                    "telemetry to train one on (run once with --replay and --recogniser auto)"
                )
    window = _window_s(source)
    if window is not None and abs(window - trained.spec.window_s) > 1e-6:
        # the classifier's pictures are changes over windows of its training's length:
        # read over other windows, every spread and size means something else
        return LargestChange(calls), (
            f"{statistical}: the recogniser kept in {trained.folder} was trained on "
            f"{trained.spec.window_s:g} s windows, these are {window:g} s (train one at "
            "this window: --replay with --recogniser auto)"
        )
    note = (
        f"root cause and kind from the classifier trained on {trained.cases} simulated "
        f"failures (kept in {trained.folder})"
    )
    return Classifier(trained, calls), note


def _window_s(source: src.Source) -> float | None:
    """The length of the source's windows, seconds: a live source's own, a recording's
    median; None when it has none to say."""
    from twin.predict.windows import window_length

    items: list[src.Window] | None = getattr(source, "items", None)
    if items:
        return window_length(items)
    live = getattr(source, "window_s", None)
    return float(live) if isinstance(live, int | float) else None


def campaign_mitigations(db: str) -> MitigationLookup:
    """The failure-mode database's best mitigation per (fault kind, target), as the
    database ranks them (holds everywhere, then highest availability); a mode of the same
    kind at another target stands in when the target has none."""
    from sqlalchemy import select

    from twin.store import Store
    from twin.store.schema import FailureModeRow, MitigationRow

    store = Store(db)
    table: dict[tuple[str, str], list[tuple[bool, float, str, dict[str, Any]]]] = {}
    try:
        with store.transaction(write=False) as s:
            modes = {m.id: m for m in s.scalars(select(FailureModeRow))}
            for x in s.scalars(select(MitigationRow)):
                m = modes.get(x.failure_mode_id)
                if m is None or not isinstance(x.policy_document, dict):
                    continue
                key = (m.fault_kind, m.target)
                table.setdefault(key, []).append(
                    (not x.holds_everywhere, -(x.availability or 0.0), x.policy, x.policy_document)
                )
    finally:
        store.close()

    def lookup(kind: str, target: str) -> Candidate | None:
        rows = table.get((kind, target)) or [
            r for (k, _), v in table.items() if k == kind for r in v
        ]
        if not rows:
            return None
        best = min(rows, key=lambda r: (r[0], r[1], r[2]))
        return Candidate(name=best[2], source="campaign", policy=best[3])

    return lookup


def _clean(v: Any) -> Any:
    """JSON-safe: non-finite floats become None (strict JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _seen(
    windows: Iterable[src.Window], hook: Callable[[src.Window], None] | None
) -> Iterator[src.Window]:
    for w in windows:
        if hook is not None:
            hook(w)
        yield w


def run_watch(
    run: WatchRun,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    on_alerts: Callable[[list[Alert]], None] | None = None,
    on_window: Callable[[src.Window], None] | None = None,
    mitigation: MitigationLookup | None = None,
    training: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run the watch over the run's source and write its outputs (see the module).
    ``on_window`` sees each window before it is judged (the enforcer reads it as its
    snapshot), ``on_alerts`` each window's alert messages after, ``training`` the progress
    of training a recogniser (runs done, runs in all)."""
    t0 = time.perf_counter()
    if run.webhook is not None:
        http_url(run.webhook, "watch: --webhook")
    source = make_source(run)
    recogniser, which = make_recogniser(run, source, training)
    store = None
    if run.db is not None:
        from twin.store import Store

        store = Store(run.db)
        if mitigation is None:
            mitigation = campaign_mitigations(run.db)
    out = output_dir(run.out)
    stage = Path(tempfile.mkdtemp(prefix=".watch-", dir=out))
    problems: list[str] = []
    try:
        watch = Watch(run.topology, run.config, recogniser=recogniser, mitigation=mitigation)
        jsonl = (stage / "alerts.jsonl").open("w", encoding="utf-8")

        def emit(msgs: list[Alert]) -> None:
            for a in msgs:
                jsonl.write(json.dumps(_clean(a.model_dump(mode="json")), allow_nan=False) + "\n")
            jsonl.flush()
            if run.webhook is not None:
                by_group: dict[str, list[Alert]] = {}
                for a in msgs:
                    by_group.setdefault(a.group_key, []).append(a)
                for group in by_group.values():
                    problem = post_webhook(run.webhook, alertmanager_payload(group))
                    if problem:
                        problems.append(problem)
            if store is not None:
                from twin.store.documents import add_alerts

                add_alerts(store, [_clean(r) for r in database_rows(msgs)])
            if on_alerts is not None:
                on_alerts(msgs)

        total = source.total
        with jsonl:
            watch.run(
                _seen(source.windows(), on_window),
                on_alerts=emit,
                progress=(lambda i: progress(i, total)) if progress else None,
            )
        wall = time.perf_counter() - t0
        firing = sum(a.status == "firing" for a in watch.alerts)
        result = RunResult(
            windows=len(watch.records),
            alerts_firing=firing,
            alerts_resolved=len(watch.alerts) - firing,
            wall_seconds=wall,
            source=source.report.to_dict(),
            problems=problems + source.report.problems,
            out=out,
            recogniser=which,
        )
        timeline = {
            "title": run.title,
            "topology": run.topology.name,
            "slo": {"latency_p99": watch.slo_p99, "availability": watch.slo_avail},
            "horizon_s": run.config.horizon_s,
            "windows": [r.to_dict() for r in watch.records],
            "source": result.source,
            "recogniser": which,
            "figures": {
                "windows": result.windows,
                "alerts_firing": firing,
                "alerts_resolved": result.alerts_resolved,
                "wall_seconds": wall,
                "twin_runs": watch.follower.runs,
                "monte_carlo_runs": watch.mc_runs,
            },
        }
        (stage / "timeline.json").write_text(
            json.dumps(_clean(timeline), allow_nan=False), encoding="utf-8"
        )
        from twin.predict.watchreport import render

        (stage / "report.html").write_text(render(timeline, watch.alerts), encoding="utf-8")
        for name in ("alerts.jsonl", "timeline.json", "report.html"):
            (stage / name).replace(out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if store is not None:
            store.close()
    return result


__all__ = [
    "RunResult",
    "WatchRun",
    "campaign_mitigations",
    "make_recogniser",
    "make_source",
    "recogniser_cache",
    "run_watch",
]
