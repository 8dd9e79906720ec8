"""The runtime enforcer: a learned policy deciding mitigations from live metrics, behind a
safety net.

Each interval: read metrics, build the observation exactly as the training environment
did, let the network (or the distilled rules) pick an action, turn it into concrete knob
values, then apply the safety net in this order:

1. bounds: every knob clamped into ``policy.bounds`` (replicas, timeout range, retries,
   rate-limit floor), whatever the network said;
2. change rate limit: at most ``bounds.max_changes_per_decision`` knobs change per
   decision, and none within ``bounds.min_seconds_between_changes`` of the last change;
   the rest are deferred and reported;
3. operator override file: re-read every interval; its values always win (even over the
   change limit) and are reported; a malformed file, or one whose values make no valid
   configuration, holds the last safe configuration and says why;
4. missing, stale, future or bad metrics: hold the last safe configuration (at first the
   policy's fallback) and say why; resume when metrics return.

Whatever it reads, the enforcer keeps running: a decision it cannot make or emit as strict
JSON (no NaN, no Infinity) is a hold with the reason, never an exception out of the loop.

Metric sources, emitters and the clock are small objects passed in, so tests drive the
loop without sleeping.
"""

from __future__ import annotations

import http.client
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.export.policy_file import PolicyFile
from agents.spaces import Knobs, ServiceReading, breaker_label_value
from twin.errors import InputError
from twin.io import http_url
from twin.safeload import check_size, limit, load_yaml, loads_json, read_text

METRICS = ("p99_seconds", "error_rate", "utilization", "queue", "replicas", "breaker")
"""The fields of a :class:`ServiceReading`, one metric (and one Prometheus query) each."""

FUTURE_TOLERANCE_SECONDS = 60.0
"""How far ahead of the enforcer's clock a snapshot may be dated and still be read. Clocks
kept by NTP agree to well under a second; a minute allows a badly kept one. A snapshot dated
further ahead is refused: accepted, it would make every later, correctly dated snapshot look
stale until the clock caught up (forever, for ``time: 1e18``); within the tolerance, that
can last at most this long."""


def to_json(rec: dict[str, Any]) -> str:
    """A decision as strict JSON (NaN and infinities refused, not written as ``NaN``), the
    one encoding of every decision the enforcer prints, logs or posts."""
    return json.dumps(rec, allow_nan=False)


# -- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One reading of every service, at ``time`` (unix seconds)."""

    time: float
    services: dict[str, ServiceReading]


class MetricsUnavailable(Exception):
    """Metrics are missing, stale or bad now: the enforcer holds and says this reason."""


class MetricSource(Protocol):
    def read(self, now: float) -> Snapshot:
        """The current snapshot, or raise MetricsUnavailable (never anything else)."""


def _number(d: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    v = d.get(key, default)
    if isinstance(v, str) and key == "breaker":
        value = breaker_label_value(v)
        if value is not None:
            return value
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        raise MetricsUnavailable(f"{where}.{key}: missing or not a number ({str(v)[:40]!r})")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f) or f < 0:
        raise MetricsUnavailable(
            f"{where}.{key}: {str(v)[:40]} is not a finite non-negative number"
        )
    return f


def check_not_future(snap: Snapshot, now: float, where: str) -> Snapshot:
    """``snap`` if it is not dated more than FUTURE_TOLERANCE_SECONDS after ``now``."""
    ahead = snap.time - now
    if ahead > FUTURE_TOLERANCE_SECONDS:
        raise MetricsUnavailable(
            f"{where}: time {snap.time:.17g} is {ahead:.3g} s ahead of the enforcer's clock "
            f"(more than {FUTURE_TOLERANCE_SECONDS:g} s): refused"
        )
    return snap


def parse_snapshot(data: Any, where: str) -> Snapshot:
    """A metrics-file record (see docs/enforce.md) -> Snapshot; problems -> MetricsUnavailable."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise MetricsUnavailable(f"{where}: expected an object with 'time' and 'services'")
    t = _number(data, "time", where)
    services = {}
    for name, d in data["services"].items():
        w = f"{where}: services.{name}"
        if not isinstance(d, dict):
            raise MetricsUnavailable(f"{w}: expected an object")
        services[str(name)] = ServiceReading(
            p99_seconds=_number(d, "p99_seconds", w),
            error_rate=min(1.0, _number(d, "error_rate", w)),
            utilization=_number(d, "utilization", w),
            replicas=max(1, round(_number(d, "replicas", w))),
            queue=_number(d, "queue", w, 0.0),
            breaker=min(1.0, _number(d, "breaker", w, 0.0)),
        )
    return Snapshot(t, services)


class FileMetrics:
    """Replays a JSON-lines file: decision ``i`` reads line ``i``. A bad line is a bad
    reading (hold), a time that does not move forward is stale (hold), a time too far ahead
    of the clock is refused (hold, and not taken as the latest time), the end of the file
    ends the run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such metrics file")
        check_size(self.path, "telemetry")
        self._lines: Iterator[tuple[int, str]] = enumerate(
            self.path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        self._last_time = -math.inf

    def read(self, now: float) -> Snapshot:
        try:
            lineno, line = next(self._lines)
        except StopIteration:
            raise EndOfMetrics(f"{self.path}: end of file") from None
        where = f"{self.path}:{lineno}"
        try:
            data = loads_json(line, where, "telemetry")
        except json.JSONDecodeError as exc:
            raise MetricsUnavailable(f"{where}: not JSON ({exc.msg})") from None
        except ValueError as exc:  # an integer too long to convert, among others
            raise MetricsUnavailable(f"{where}: not JSON ({str(exc)[:80]})") from None
        except InputError as exc:
            raise MetricsUnavailable(str(exc)) from None
        snap = check_not_future(parse_snapshot(data, where), now, where)
        if snap.time <= self._last_time:
            raise MetricsUnavailable(
                f"{where}: stale (time {snap.time} not after {self._last_time})"
            )
        self._last_time = snap.time
        return snap


class EndOfMetrics(Exception):
    """A replayed metrics file is exhausted: the run ends."""


class PrometheusQueries(BaseModel):
    """PromQL per feature, each returning one series per service (``by (<label>)``). Defaults:
    OpenTelemetry HTTP server metrics and the process collector (see docs/enforce.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_label: str = "job"
    window: str = Field(default="1m", description="rate window, a Prometheus duration")
    p99_seconds: str = (
        "histogram_quantile(0.99, sum by (le, job) "
        "(rate(http_server_request_duration_seconds_bucket[{window}])))"
    )
    error_rate: str = (
        "sum by (job) (rate(http_server_request_duration_seconds_count"
        '{{http_response_status_code=~"5.."}}[{window}]))'
        " / sum by (job) (rate(http_server_request_duration_seconds_count[{window}]))"
    )
    utilization: str = (
        "sum by (job) (rate(process_cpu_seconds_total[{window}])) / count by (job) (up == 1)"
    )
    replicas: str = "count by (job) (up == 1)"
    queue: str | None = None
    breaker: str | None = None
    max_age_seconds: float = Field(default=60.0, gt=0.0, description="older samples are stale")


class PrometheusMetrics:
    """Instant queries to ``/api/v1/query``; a service missing from any configured query, a
    NaN, or a sample older than ``max_age_seconds`` makes the reading unusable."""

    def __init__(self, url: str, services: tuple[str, ...], queries: PrometheusQueries) -> None:
        self.url = http_url(url, "--prometheus").rstrip("/")
        self.services = services
        self.q = queries

    def _instant(self, promql: str, now: float) -> dict[str, tuple[float, float]]:
        qs = urllib.parse.urlencode({"query": promql, "time": now})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as resp:
                cap = limit("TWIN_MAX_TELEMETRY_BYTES")
                body = loads_json(resp.read(cap + 1), f"Prometheus at {self.url}", "telemetry")
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise MetricsUnavailable(f"Prometheus at {self.url}: {str(exc)[:200]}") from None
        except InputError as exc:
            raise MetricsUnavailable(str(exc)) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise MetricsUnavailable(f"Prometheus refused {promql!r}: {str(error)[:200]}")
        out = {}
        try:
            for s in body["data"]["result"]:
                name = str(s.get("metric", {}).get(self.q.service_label, ""))
                ts, val = s.get("value", [0, "NaN"])
                out[name] = (float(ts), float(val))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise MetricsUnavailable(
                f"Prometheus at {self.url}: malformed answer to {promql!r} ({str(exc)[:80]})"
            ) from None
        return out

    def read(self, now: float) -> Snapshot:
        fields: dict[str, dict[str, tuple[float, float]]] = {}
        for feat in METRICS:
            promql = getattr(self.q, feat)
            if promql is not None:
                fields[feat] = self._instant(promql.format(window=self.q.window), now)
        readings = {}
        for svc in self.services:
            d: dict[str, Any] = {}
            for feat, series in fields.items():
                if svc not in series:
                    raise MetricsUnavailable(f"Prometheus: no {feat} series for service {svc!r}")
                ts, val = series[svc]
                if not now - ts <= self.q.max_age_seconds:
                    raise MetricsUnavailable(f"Prometheus: {feat} of {svc!r} is stale")
                if ts - now > FUTURE_TOLERANCE_SECONDS:
                    raise MetricsUnavailable(
                        f"Prometheus: {feat} of {svc!r} is dated {ts - now:.3g} s ahead of the "
                        f"enforcer's clock (more than {FUTURE_TOLERANCE_SECONDS:g} s)"
                    )
                d[feat] = val
            readings[svc] = parse_snapshot(
                {"time": now, "services": {svc: d}}, "Prometheus"
            ).services[svc]
        return Snapshot(now, readings)


# -- knobs -------------------------------------------------------------------------------------


def policy_document(knobs: Knobs, pf: PolicyFile) -> dict[str, Any]:
    """The twin Policy document the knobs stand for (validated), as the env maps actions."""
    return pf.action.policy(knobs).model_dump(mode="json", exclude_none=True)


def fallback_knobs(pf: PolicyFile, replicas: dict[str, int]) -> Knobs:
    """The policy's fallback as knobs (replicas: as observed, else the lower bound)."""
    star = pf.fallback.clients.get("*")
    timeout = star.timeout if star is not None and star.timeout is not None else None
    retries = star.retries.max if star is not None and star.retries is not None else 0
    breaker = star is not None and star.circuit_breaker is not None
    rate_x: float | None = None
    for entry, rps in pf.action.entry_rates_rps.items():
        sp = pf.fallback.services.get(entry)
        if sp is not None and sp.rate_limit is not None and rps > 0:
            rate_x = sp.rate_limit.rps / rps
    services = pf.observation.services
    return Knobs(
        replicas={s: replicas.get(s, pf.bounds.replicas[s].min) for s in services},
        queue_limits={
            s: (pf.fallback.services[s].queue_limit if s in pf.fallback.services else None)
            for s in services
        },
        timeout_seconds=timeout if timeout is not None else max(pf.action.timeouts_seconds),
        retries=retries,
        circuit_breaker=breaker,
        rate_limit_x=rate_x,
    )


def decode(action: np.ndarray, pf: PolicyFile, replicas: dict[str, int]) -> Knobs:
    """Action indices -> knobs; replica deltas move from the observed counts."""
    services = pf.observation.services
    expected = len(pf.action.components(len(services)))
    if len(action) != expected:
        raise InputError(
            f"policy: the model gave {len(action)} action components, expected {expected}"
        )
    return pf.action.decode(action, services, replicas)


def clamp(knobs: Knobs, pf: PolicyFile) -> tuple[Knobs, list[str]]:
    """Knobs forced into the policy's bounds, and what was clamped."""
    b = pf.bounds
    notes: list[str] = []
    reps = {}
    for s, n in knobs.replicas.items():
        lo, hi = b.replicas[s].min, b.replicas[s].max
        reps[s] = min(max(n, lo), hi)
        if reps[s] != n:
            notes.append(f"replicas.{s} {n} -> {reps[s]} (bounds {lo}..{hi})")
    t = min(max(knobs.timeout_seconds, b.timeout_seconds_min), b.timeout_seconds_max)
    if t != knobs.timeout_seconds:
        notes.append(f"timeout_seconds {knobs.timeout_seconds} -> {t}")
    r = min(knobs.retries, b.max_retries)
    if r != knobs.retries:
        notes.append(f"retries {knobs.retries} -> {r}")
    x = knobs.rate_limit_x
    if x is not None and x < b.rate_limit_x_min:
        notes.append(f"rate_limit_x {x} -> {b.rate_limit_x_min}")
        x = b.rate_limit_x_min
    return replace(knobs, replicas=reps, timeout_seconds=t, retries=r, rate_limit_x=x), notes


class Override(BaseModel):
    """An operator's override file: any knob given here wins over the model (and its bounds:
    the operator is in charge), so each must be a setting that can be enforced. Types are
    strict (``retries: "2"`` or ``circuit_breaker: 1`` are refused, not guessed) and numbers
    finite, so ``timeout_seconds: .inf`` holds instead of being emitted as ``Infinity``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    timeout_seconds: float | None = Field(default=None, gt=0.0, description="seconds")
    retries: int | None = Field(default=None, ge=0)
    circuit_breaker: bool | None = None
    rate_limit_x: float | None = Field(default=None, gt=0.0, description="x nominal entry rate")
    replicas: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    queue_limits: dict[str, Annotated[int, Field(ge=1)] | None] = Field(
        default_factory=dict, description="requests waiting per replica; null: no limit"
    )


def read_override(path: Path, services: tuple[str, ...]) -> dict[str, Any]:
    """The flat knobs an override file sets ({} if the file does not exist); a malformed
    file raises InputError naming it."""
    if not path.exists():
        return {}
    data = load_yaml(read_text(path), str(path)) or {}
    try:
        ov = Override.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{path}: {loc}: {err['msg']}") from None
    flat: dict[str, Any] = {}
    for s, n in ov.replicas.items():
        if s not in services:
            raise InputError(f"{path}: replicas.{s}: unknown service")
        flat[f"replicas.{s}"] = n
    for s, q in ov.queue_limits.items():
        if s not in services:
            raise InputError(f"{path}: queue_limits.{s}: unknown service")
        flat[f"queue_limit.{s}"] = q
    for key in ("timeout_seconds", "retries", "circuit_breaker", "rate_limit_x"):
        if key in ov.model_fields_set:
            flat[key] = getattr(ov, key)
    return flat


# -- the decision loop -------------------------------------------------------------------------


class Decider(Protocol):
    def __call__(self, obs: np.ndarray) -> np.ndarray: ...


def onnx_decider(pf: PolicyFile, policy_path: Path) -> Decider:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(pf.model_path(policy_path)), providers=["CPUExecutionProvider"])

    def decide(obs: np.ndarray) -> np.ndarray:
        out = sess.run([pf.model.output], {pf.model.input: obs[None, :].astype(np.float32)})[0]
        return np.asarray(out[0], dtype=np.int64)

    return decide


def rules_decider(pf: PolicyFile) -> Decider:
    if pf.rules is None:
        raise InputError("policy: rules: this policy file has no distilled rules (use the model)")
    nodes = pf.rules.nodes

    def decide(obs: np.ndarray) -> np.ndarray:
        node = nodes[0]
        while node.action is None:
            # a split has feature, threshold, left and right (checked when the file loads)
            go_left = float(obs[node.feature or 0]) <= float(node.threshold or 0.0)
            node = nodes[int((node.left if go_left else node.right) or 0)]
        return np.asarray(node.action, dtype=np.int64)

    return decide


def observation(snap: Snapshot, pf: PolicyFile) -> np.ndarray:
    """The network's input, exactly as agents.env builds it from a simulated stretch."""
    for name in pf.observation.services:
        if name not in snap.services:
            raise MetricsUnavailable(f"no metrics for service {name!r}")
    return pf.observation.encode(snap.services)


@dataclass
class Enforcer:
    """One policy, its metric source and its safety state.

    ``last`` is the last safe configuration: the last one that was decided, validated as a
    twin policy and encoded as strict JSON. Nothing replaces it until its successor has
    passed the same checks, so a bad reading, a bad override or a model that fails only
    ever produce a hold that says why."""

    pf: PolicyFile
    source: MetricSource
    decide: Decider
    override_path: Path | None = None
    decisions: int = 0
    last: Knobs | None = None
    last_change: float = -math.inf
    held_reason: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    last_config: dict[str, Any] | None = None

    def _applied(self, observed: dict[str, int]) -> Knobs:
        return self.last or fallback_knobs(self.pf, observed)

    def step(self, now: float) -> dict[str, Any]:
        """One decision at ``now`` (unix seconds): a JSON-able record of what and why."""
        self.decisions += 1
        rec: dict[str, Any] = {"decision": self.decisions, "time": now, "notes": []}
        try:
            snap = check_not_future(self.source.read(now), now, "snapshot")
            obs = observation(snap, self.pf)
        except MetricsUnavailable as exc:
            return self._hold(rec, f"metrics: {exc}")
        observed = {s: snap.services[s].replicas for s in self.pf.observation.services}
        try:
            action = self.decide(obs)
            wanted, notes = clamp(decode(action, self.pf, observed), self.pf)
        except Exception as exc:  # the model is outside our code: whatever it raises, hold
            return self._hold(rec, f"model: no decision ({type(exc).__name__}: {_short(exc)})")
        rec["action"] = [int(a) for a in action]
        rec["notes"] += [f"clamped {n}" for n in notes]
        current = self._applied(observed)
        cur, new = current.flat(), wanted.flat()
        changed = [k for k in new if new[k] != cur.get(k)]
        allowed: list[str] = []
        deferred: list[str] = []
        since = now - self.last_change
        if changed and since < self.pf.bounds.min_seconds_between_changes:
            deferred = changed
            rec["notes"].append(
                f"change rate limit: last change {since:.0f} s ago "
                f"(< {self.pf.bounds.min_seconds_between_changes:g} s)"
            )
        else:
            # replica increases first: adding capacity is the least risky change
            changed.sort(key=lambda k: not (k.startswith("replicas.") and new[k] > cur.get(k, 0)))
            k = self.pf.bounds.max_changes_per_decision
            allowed, deferred = changed[:k], changed[k:]
            if deferred:
                rec["notes"].append(f"change rate limit: {len(changed)} changes, {k} allowed")
        result = {**cur, **{key: new[key] for key in allowed}}
        source, ov = "model", {}
        if self.override_path is not None:
            try:
                ov = read_override(self.override_path, self.pf.observation.services)
            except InputError as exc:
                return self._hold(rec, f"override: {exc}")
            if ov:
                source = "override"
                rec["notes"].append(f"override wins: {sorted(ov)}")
                result.update(ov)
                deferred = [d for d in deferred if d not in ov]
        try:
            knobs = Knobs.from_flat(result)
            config = self._config(knobs)
        except (ValueError, TypeError, InputError) as exc:
            who = f"override: {self.override_path}: {', '.join(sorted(ov))}" if ov else "model"
            return self._hold(rec, f"{who}: not a valid configuration ({_short(exc)})")
        if knobs != current:
            self.last_change = now
        self.last, self.last_config = knobs, config
        if self.held_reason is not None:
            rec["notes"].append(f"resumed after: {self.held_reason}")
            self.held_reason = None
        rec |= {
            "source": source,
            "held": False,
            "changes": {k: result[k] for k in allowed if result[k] != cur.get(k)},
            "deferred": deferred,
        }
        return self._finish(rec, knobs, config)

    def _config(self, knobs: Knobs) -> dict[str, Any]:
        """What the knobs enforce (replicas and a validated twin policy), checked to encode
        as strict JSON; raises ValueError (or the policy's InputError) when they cannot."""
        config = {"replicas": dict(knobs.replicas), "policy": policy_document(knobs, self.pf)}
        try:
            to_json({"knobs": knobs.flat(), "config": config})
        except ValueError:
            raise ValueError("a setting it gives is not a finite number") from None
        return config

    def _hold(self, rec: dict[str, Any], reason: str) -> dict[str, Any]:
        self.held_reason = reason
        rec |= {"source": "hold", "held": True, "reason": reason, "changes": {}, "deferred": []}
        if self.last is None or self.last_config is None:
            rec["notes"].append("holding the policy's fallback (no decision yet)")
            rec["knobs"] = None
            rec["config"] = {
                "replicas": {},
                "policy": self.pf.fallback.model_dump(mode="json", exclude_none=True),
            }
            self.log.append(rec)
            return rec
        return self._finish(rec, self.last, self.last_config)

    def _finish(self, rec: dict[str, Any], knobs: Knobs, config: dict[str, Any]) -> dict[str, Any]:
        rec["knobs"] = knobs.flat()
        rec["config"] = config
        self.log.append(rec)
        return rec


def _short(exc: BaseException) -> str:
    """An exception as one short line (pydantic's reports span several)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines[:3])[:300] or type(exc).__name__


# -- emitters ----------------------------------------------------------------------------------


def describe(rec: dict[str, Any]) -> str:
    """One readable log line for a decision."""
    head = f"enforce #{rec['decision']} [{rec['source']}]"
    if rec["held"]:
        return f"{head} HOLD last safe configuration: {rec['reason']}"
    k = rec["knobs"]
    rl = k["rate_limit_x"]
    body = (
        f"timeout {k['timeout_seconds']:g}s, retries {k['retries']}, "
        f"breaker {'on' if k['circuit_breaker'] else 'off'}, "
        f"rate limit {'none' if rl is None else f'{rl:g}x'}"
    )
    ch = ", ".join(f"{a}={b}" for a, b in rec["changes"].items()) or "no change"
    tail = f"; deferred {rec['deferred']}" if rec["deferred"] else ""
    notes = f"; {'; '.join(rec['notes'])}" if rec["notes"] else ""
    return f"{head} {body} | {ch}{tail}{notes}"


class Webhook:
    """POSTs each decision as JSON; a failed POST is reported and retried with the next one.
    At most MAX_PENDING decisions wait for a dead hook (the oldest go first: each decision
    carries the whole configuration, so the newest supersedes them)."""

    MAX_PENDING = 1_000

    def __init__(self, url: str, timeout: float = 5.0, attempts: int = 2) -> None:
        self.url = http_url(url, "--url")
        self.timeout = timeout
        self.attempts = attempts
        self.pending: list[bytes] = []
        self.dropped = 0

    def __call__(self, rec: dict[str, Any]) -> str | None:
        self.pending.append(to_json(rec).encode("utf-8"))
        if len(self.pending) > self.MAX_PENDING:
            self.dropped += len(self.pending) - self.MAX_PENDING
            del self.pending[: -self.MAX_PENDING]
        err = ""
        for i in range(self.attempts):
            try:
                while self.pending:
                    req = urllib.request.Request(
                        self.url, data=self.pending[0], headers={"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(req, timeout=self.timeout):
                        pass
                    self.pending.pop(0)
                return None
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
                err = str(exc)
                if i + 1 < self.attempts:
                    time.sleep(0.2 * (i + 1))
        dropped = f", {self.dropped} oldest dropped" if self.dropped else ""
        return f"webhook {self.url}: {err}; {len(self.pending)} decision(s) pending{dropped}"


def run(
    enforcer: Enforcer,
    emit: Callable[[dict[str, Any]], str | None],
    *,
    interval: float,
    max_decisions: int | None = None,
    duration: float | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    log_path: Path | None = None,
    on_problem: Callable[[str], None] = lambda _: None,
) -> int:
    """The loop: decide every ``interval`` seconds until a bound is reached; returns the
    number of decisions. A replayed metrics file ends the loop at its last line. A decision
    that cannot be emitted or logged is reported through ``on_problem``; the loop goes on."""
    start = clock()
    while True:
        now = clock()
        try:
            rec = enforcer.step(now)
        except EndOfMetrics:
            break
        problem = emit(rec)
        if problem:
            on_problem(problem)
        if log_path is not None:
            try:
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(to_json(rec) + "\n")
            except OSError as exc:
                on_problem(f"log {log_path}: {exc.strerror or exc}")
        if max_decisions is not None and enforcer.decisions >= max_decisions:
            break
        if duration is not None and clock() - start + interval > duration:
            break
        sleep(max(0.0, now + interval - clock()))
    return enforcer.decisions
