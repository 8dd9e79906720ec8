"""The rollout guard: while a canary runs, judge it, forecast P(SLO breach), roll back in time.

Every ``interval`` seconds the guard

1. reads each metric of the canary and of its baseline over the last ``lookback`` seconds
   (a PromQL ``query_range``, or a recorded metrics file) and judges them
   (:mod:`twin.change.judge`); the baseline is a concurrent deployment's query, the canary's
   own query over the window before the rollout began (``baseline: before``), or the twin's
   prediction for the new version (``baseline: twin``, :mod:`twin.change.synthetic`);
2. reads the entry's request and good-request counters over the SLO window and forecasts
   P(breach) over the next ``horizon`` seconds (:mod:`twin.change.forecast`);
3. decides: ``rollback`` when P(breach) reaches ``threshold`` (or the SLO is already
   breached), ``no-go`` when the judge fails the canary, ``go`` when it passes, ``hold``
   otherwise (marginal, or not enough data yet).

On ``rollback`` it executes the rollback plan through an :class:`Executor` (with ``act``) or
only emits it, waits each verification check's window and evaluates the checks (PromQL
against a threshold). Decisions are JSON lines; the run ends with a summary.
"""

from __future__ import annotations

import math
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from twin.bounds import Finite, Int, Name, Probability, Seed
from twin.change.forecast import breach_probability, increments, window_ratio
from twin.change.judge import Judgement, JudgeSettings, MetricRule, judge
from twin.errors import InputError
from twin.io import load_model

Decision = Literal["go", "hold", "no-go", "rollback"]
"""What the guard says at one interval (``go`` lets a progressive delivery tool continue)."""

MAX_COMMANDS = 100


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GuardMetric(MetricRule):
    """A judged metric: how to judge it, and the PromQL that gives its value per step."""

    canary: str = Field(min_length=1, max_length=10_000, description="PromQL for the canary")
    baseline: str = Field(
        default="before",
        min_length=1,
        max_length=10_000,
        description="PromQL for a concurrent baseline; `before`: the canary query over the "
        "`lookback` before the rollout began; `twin`: the twin's prediction",
    )
    twin_stat: str | None = Field(
        default=None,
        description="with `baseline: twin`, the twin's figure this metric is (latency_mean, "
        "latency_p50/p95/p99, error_ratio); default: the metric's name",
    )


class SloSpec(_Doc):
    """The entry's SLO as two cumulative counters: requests, and good requests (succeeded
    within the latency objective)."""

    total: str = Field(min_length=1, max_length=10_000, description="PromQL: requests (counter)")
    good: str = Field(min_length=1, max_length=10_000, description="PromQL: good (counter)")
    objective: Probability = Field(default=0.99, gt=0.0, lt=1.0, description="good share")
    window_seconds: Finite = Field(default=300.0, gt=0.0, le=1e7, description="trailing window")
    min_events: Int = Field(default=100, ge=1, description="fewer requests: no breach")


class Check(_Doc):
    """A verification check: after ``window_seconds``, ``query`` must compare to
    ``threshold`` as ``op`` says. ``${window}`` in the query becomes the window (``15s``)."""

    name: Name
    query: str = Field(min_length=1, max_length=10_000)
    op: Literal["<", "<=", ">", ">=", "=="] = "<="
    threshold: Finite
    window_seconds: Finite = Field(default=30.0, gt=0.0, le=86_400.0)


class RollbackPlan(_Doc):
    """What rolling back runs (argv lists, no shell) and how to know it worked."""

    commands: list[list[str]] = Field(default_factory=list, max_length=MAX_COMMANDS)
    checks: list[Check] = Field(default_factory=list, max_length=MAX_COMMANDS)


class GuardSpec(_Doc):
    """What the guard reads, how it judges and forecasts, and what it does."""

    service: Name = Field(description="the service the canary runs")
    interval_seconds: Finite = Field(default=5.0, gt=0.0, le=3600.0)
    step_seconds: Finite = Field(default=2.0, gt=0.0, le=3600.0, description="query step")
    lookback_seconds: Finite = Field(default=30.0, gt=0.0, le=86_400.0, description="judged")
    warmup_seconds: Finite = Field(
        default=10.0, ge=0.0, le=86_400.0, description="no judgement before the canary ran this"
    )
    recent_seconds: Finite = Field(
        default=60.0,
        gt=0.0,
        le=86_400.0,
        description="the forecast reads the canary's behaviour since it began, at most this long",
    )
    recent_min_seconds: Finite = Field(
        default=10.0,
        gt=0.0,
        le=86_400.0,
        description="and at least this long (so a few "
        "requests in the first seconds are not the whole evidence)",
    )
    horizon_seconds: Finite = Field(default=60.0, gt=0.0, le=86_400.0)
    threshold: Probability = Field(default=0.5, description="roll back at this P(breach)")
    max_seconds: Finite = Field(default=600.0, gt=0.0, le=1e7, description="then stop: done")
    draws: Int = Field(default=4000, ge=100, le=1_000_000)
    seed: Seed = 1
    metrics: list[GuardMetric] = Field(default_factory=list, max_length=100)
    slo: SloSpec
    rollback: RollbackPlan = Field(default_factory=RollbackPlan)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)

    @classmethod
    def load_file(cls, path: str | Path) -> GuardSpec:
        return load_model(cls, path)


class DecisionRecord(_Doc):
    """One interval's outcome (a JSON line of ``decisions.jsonl``)."""

    t: float = Field(description="unix seconds")
    elapsed_seconds: float = Field(description="since the canary began")
    decision: Decision
    reason: str
    p_breach: float
    window_bad_ratio: float | None = Field(description="bad share of the SLO window now")
    recent_bad_ratio: float | None = Field(description="bad share of the recent window")
    budget: float = Field(description="1 - objective")
    score: float | None
    classification: str
    judgement: Judgement | None = None


class CheckResult(_Doc):
    name: str
    query: str
    value: float | None
    op: str
    threshold: float
    passed: bool
    at: float


class Execution(_Doc):
    """What rolling back did: each command's exit code (or that it was only emitted)."""

    acted: bool
    steps: list[dict[str, Any]] = Field(default_factory=list)
    seconds: float = 0.0


# -- sources --------------------------------------------------------------------------------


class MetricSource(Protocol):
    """Where metric series come from: live Prometheus, or a recording."""

    def now(self) -> float: ...

    def series(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[float, float]]:
        """``(t, value)`` points in ``[start, end]`` (NaN for missing values)."""
        ...

    def wait_until(self, t: float) -> None: ...


def _one_series(query: str, result: list[dict[str, Any]]) -> list[tuple[float, float]]:
    if not result:
        return []
    if len(result) > 1:
        raise InputError(
            f"query {query!r} returns {len(result)} series: aggregate it to one (sum(...))"
        )
    out = []
    for t, v in result[0].get("values", []):
        try:
            out.append((float(t), float(v)))
        except (TypeError, ValueError):
            out.append((float(t), math.nan))
    return out


class PrometheusSource:
    """Live: the HTTP API's ``query_range``; every answer is kept for :meth:`recording`."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        from twin.calibrate.metrics import PrometheusClient

        self.client = PrometheusClient(url, timeout=timeout)
        self.seen: dict[str, dict[float, float]] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time()

    def wait_until(self, t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            time.sleep(delay)

    def series(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[float, float]]:
        pts = _one_series(query, self.client.query_range(query, start, end, step))
        with self._lock:
            self.seen.setdefault(query, {}).update(pts)
        return pts

    def recording(self) -> dict[str, Any]:
        """Every point fetched, per query: a ``--metrics`` file that replays this run."""
        with self._lock:
            return {q: sorted(v.items()) for q, v in self.seen.items()}


class RecordedSource:
    """Offline: a metrics file ``{"started_at": T, "series": {query: [[t, v], ...]}}``; time
    runs from ``started_at`` without waiting."""

    def __init__(self, data: Mapping[str, Any], source: str = "<metrics>") -> None:
        series = data.get("series")
        if not isinstance(series, dict):
            raise InputError(
                "expected a mapping `series: {query: [[t, value], ...]}`", source=source
            )
        self.data: dict[str, np.ndarray] = {}
        for q, pts in series.items():
            try:
                arr = np.asarray(pts, dtype=float).reshape(-1, 2)
            except (TypeError, ValueError):
                raise InputError(
                    "expected a list of [t, value] pairs", source=source, where=f"series.{q}"
                ) from None
            self.data[str(q)] = arr[np.argsort(arr[:, 0], kind="stable")]
        start = data.get("started_at")
        if not isinstance(start, (int, float)) or not math.isfinite(start):
            raise InputError("expected `started_at`: unix seconds", source=source)
        self.started_at = float(start)
        self.clock = self.started_at

    @classmethod
    def load(cls, path: str | Path) -> RecordedSource:
        from twin.safeload import loads_json, read_text

        text = read_text(Path(path), "telemetry")
        return cls(loads_json(text, str(path), "telemetry"), str(path))

    def now(self) -> float:
        return self.clock

    def wait_until(self, t: float) -> None:
        self.clock = max(self.clock, t)

    def series(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[float, float]]:
        arr = self.data.get(query)
        if arr is None:
            return []
        # Prometheus stamps points in whole milliseconds: a point "at end" may be 0.5 ms after
        sel = arr[(arr[:, 0] >= start - 1e-3) & (arr[:, 0] <= end + 1e-3)]
        return [(float(t), float(v)) for t, v in sel]

    @property
    def end(self) -> float:
        return max((float(a[-1, 0]) for a in self.data.values() if len(a)), default=self.started_at)


# -- executors ------------------------------------------------------------------------------


class Executor(Protocol):
    """What rolling back does: run the plan, say what happened."""

    def execute(self, plan: RollbackPlan) -> Execution: ...


class CommandExecutor:
    """Runs the plan's commands in order (argv lists, no shell, each bounded by ``timeout``);
    stops at the first that fails."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    def execute(self, plan: RollbackPlan) -> Execution:
        t0 = time.monotonic()
        steps: list[dict[str, Any]] = []
        for argv in plan.commands:
            try:
                p = subprocess.run(
                    argv, capture_output=True, text=True, timeout=self.timeout, check=False
                )
                steps.append(
                    {"command": argv, "exit_code": p.returncode, "stderr": p.stderr[-500:]}
                )
                if p.returncode != 0:
                    break
            except (OSError, subprocess.TimeoutExpired) as exc:
                steps.append({"command": argv, "exit_code": None, "error": str(exc)[:500]})
                break
        return Execution(acted=True, steps=steps, seconds=time.monotonic() - t0)


class EmitOnly:
    """Without ``--act``: the plan is written out, nothing runs."""

    def execute(self, plan: RollbackPlan) -> Execution:
        return Execution(
            acted=False, steps=[{"command": c, "emitted": True} for c in plan.commands]
        )


# -- the guard ------------------------------------------------------------------------------


def _values(points: Sequence[tuple[float, float]]) -> np.ndarray:
    return np.asarray([v for _, v in points], dtype=float)


def _counter_window(points: Sequence[tuple[float, float]], start: float) -> float:
    """Events counted in ``[start, last point]`` from a cumulative counter's points."""
    sel = [(t, v) for t, v in points if t >= start - 1e-9 and math.isfinite(v)]
    return float(increments([v for _, v in sel]).sum())


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
}


class Guard:
    """One canary's guard. :meth:`evaluate` is one interval; :meth:`run` is the loop."""

    def __init__(
        self,
        spec: GuardSpec,
        source: MetricSource,
        *,
        started_at: float | None = None,
        synthetic: Mapping[str, Sequence[float]] | None = None,
        threshold: float | None = None,
    ) -> None:
        self.spec = spec
        self.source = source
        self.started_at = source.now() if started_at is None else started_at
        self.synthetic = dict(synthetic or {})
        self.threshold = spec.threshold if threshold is None else threshold
        self.rng = np.random.default_rng(np.random.SeedSequence(spec.seed))
        self.latest: DecisionRecord | None = None
        self._lock = threading.Lock()
        for m in spec.metrics:
            if m.baseline == "twin" and m.name not in self.synthetic:
                raise InputError(
                    f"metric {m.name!r} compares with the twin's prediction: give a topology "
                    "(--topology) so the twin can predict the new version"
                )

    # one interval --------------------------------------------------------------------------

    def samples(self, t: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        s = self.spec
        start = max(self.started_at, t - s.lookback_seconds)
        canary: dict[str, np.ndarray] = {}
        base: dict[str, np.ndarray] = {}
        for m in s.metrics:
            canary[m.name] = _values(self.source.series(m.canary, start, t, s.step_seconds))
            if m.baseline == "twin":
                base[m.name] = np.asarray(self.synthetic[m.name], dtype=float)
            elif m.baseline == "before":
                b0 = self.started_at - s.lookback_seconds
                base[m.name] = _values(
                    self.source.series(m.canary, b0, self.started_at, s.step_seconds)
                )
            else:
                base[m.name] = _values(self.source.series(m.baseline, start, t, s.step_seconds))
        return canary, base

    def forecast(self, t: float) -> tuple[float, float | None, float | None]:
        """(P(breach), the SLO window's bad share now, the recent window's bad share)."""
        slo = self.spec.slo
        w = slo.window_seconds
        step = self.spec.step_seconds
        total = self.source.series(slo.total, t - w, t, step)
        good = self.source.series(slo.good, t - w, t, step)
        if len(total) < 2:
            return 0.0, None, None
        n_now = _counter_window(total, t - w)
        b_now = max(n_now - _counter_window(good, t - w), 0.0)
        now_ratio = window_ratio(b_now, n_now, slo.min_events)
        rs = min(max(t - self.started_at, self.spec.recent_min_seconds), self.spec.recent_seconds)
        n_rec = _counter_window(total, t - rs)
        b_rec = max(n_rec - _counter_window(good, t - rs), 0.0)
        rec_ratio = b_rec / n_rec if n_rec > 0 else None
        if now_ratio is not None and now_ratio > 1 - slo.objective:
            return 1.0, now_ratio, rec_ratio
        h = self.spec.horizon_seconds
        offsets = np.linspace(h / 6, h, 6)
        kt, kb = [], []
        for off in offsets:
            n_k = _counter_window(total, t + off - w)
            kt.append(n_k)
            kb.append(max(n_k - _counter_window(good, t + off - w), 0.0))
        span = min(rs, max(t - total[0][0], step))
        p = breach_probability(
            known_bad=kb,
            known_total=kt,
            offsets=offsets.tolist(),
            recent_bad=b_rec,
            recent_total=n_rec,
            recent_seconds=span,
            objective=slo.objective,
            min_events=slo.min_events,
            rng=self.rng,
            draws=self.spec.draws,
        )
        return p, now_ratio, rec_ratio

    def evaluate(self, t: float) -> DecisionRecord:
        s = self.spec
        elapsed = t - self.started_at
        judgement: Judgement | None = None
        if s.metrics and elapsed >= s.warmup_seconds:
            c, b = self.samples(t)
            judgement = judge(c, b, s.metrics, s.judge)
        p, now_ratio, rec_ratio = self.forecast(t)
        budget = 1 - s.slo.objective
        cls = judgement.classification if judgement else "nodata"
        decision: Decision
        if now_ratio is not None and now_ratio > budget:
            decision, reason = "rollback", f"SLO breached: bad share {now_ratio:.4f} > {budget:g}"
        elif p >= self.threshold:
            decision = "rollback"
            reason = f"P(breach within {s.horizon_seconds:g} s) = {p:.2f} >= {self.threshold:g}" + (
                f"; recent bad share {rec_ratio:.4f}" if rec_ratio is not None else ""
            )
        elif judgement is not None and cls == "fail":
            decision, reason = "no-go", f"judge: {judgement.reason}"
        elif cls == "pass":
            decision, reason = "go", f"judge: {judgement.reason if judgement else ''}; P={p:.2f}"
        else:
            decision = "hold"
            reason = f"judge {cls}" + (f": {judgement.reason}" if judgement else " (warm-up)")
        rec = DecisionRecord(
            t=t,
            elapsed_seconds=elapsed,
            decision=decision,
            reason=reason,
            p_breach=p,
            window_bad_ratio=now_ratio,
            recent_bad_ratio=rec_ratio,
            budget=budget,
            score=judgement.score if judgement else None,
            classification=cls,
            judgement=judgement,
        )
        with self._lock:
            self.latest = rec
        return rec

    # verification ------------------------------------------------------------------------

    def verify(self, checks: Sequence[Check], executed_at: float) -> list[CheckResult]:
        out = []
        for c in sorted(checks, key=lambda c: c.window_seconds):
            at = executed_at + c.window_seconds
            self.source.wait_until(at)
            q = c.query.replace("${window}", f"{c.window_seconds:g}s")
            pts = [
                (tt, v)
                for tt, v in self.source.series(q, at - self.spec.step_seconds * 2, at, 1.0)
                if math.isfinite(v)
            ]
            value = pts[-1][1] if pts else None
            ok = value is not None and _OPS[c.op](value, c.threshold)
            out.append(
                CheckResult(
                    name=c.name,
                    query=q,
                    value=value,
                    op=c.op,
                    threshold=c.threshold,
                    passed=ok,
                    at=at,
                )
            )
        return out

    # the loop ------------------------------------------------------------------------------

    def run(
        self,
        executor: Executor,
        *,
        on_decision: Callable[[DecisionRecord], None] | None = None,
        until: float | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Evaluate every interval until a rollback, ``max_seconds`` or ``until``; returns the
        summary (decisions are passed to ``on_decision`` as they come)."""
        s = self.spec
        end = self.started_at + s.max_seconds
        if until is not None:
            end = min(end, until)
        t = self.started_at + s.interval_seconds
        decisions: list[DecisionRecord] = []
        rollback: DecisionRecord | None = None
        execution: Execution | None = None
        checks: list[CheckResult] = []
        while t <= end + 1e-9 and not (stop is not None and stop.is_set()):
            self.source.wait_until(t)
            rec = self.evaluate(t)
            decisions.append(rec)
            if on_decision is not None:
                on_decision(rec)
            if rec.decision == "rollback":
                rollback = rec
                execution = executor.execute(s.rollback)
                checks = self.verify(s.rollback.checks, t + execution.seconds)
                break
            t += s.interval_seconds
        final = decisions[-1] if decisions else None
        return {
            "service": s.service,
            "started_at": self.started_at,
            "intervals": len(decisions),
            "rolled_back": rollback is not None,
            "acted": bool(execution and execution.acted),
            "decided_at": rollback.t if rollback else None,
            "seconds_to_decision": rollback.elapsed_seconds if rollback else None,
            "seconds_to_rollback": (
                rollback.elapsed_seconds + execution.seconds if rollback and execution else None
            ),
            "reason": rollback.reason if rollback else (final.reason if final else "no interval"),
            "max_p_breach": max((d.p_breach for d in decisions), default=0.0),
            "final_decision": final.decision if final else None,
            "final_score": final.score if final else None,
            "final_classification": final.classification if final else None,
            "decisions": {
                k: sum(d.decision == k for d in decisions)
                for k in ("go", "hold", "no-go", "rollback")
            },
            "execution": execution.model_dump() if execution else None,
            "checks": [c.model_dump() for c in checks],
            "verified": bool(checks) and all(c.passed for c in checks),
            "threshold": self.threshold,
        }


def write_jsonl(path: Path, record: BaseModel) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(record.model_dump_json() + "\n")


__all__ = [
    "Check",
    "CommandExecutor",
    "Decision",
    "DecisionRecord",
    "EmitOnly",
    "Execution",
    "Executor",
    "Guard",
    "GuardMetric",
    "GuardSpec",
    "MetricSource",
    "PrometheusSource",
    "RecordedSource",
    "RollbackPlan",
    "SloSpec",
    "write_jsonl",
]
