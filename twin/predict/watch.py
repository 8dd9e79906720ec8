"""``twin watch``: the shadow beside production, one window at a time.

For each window a source yields (:mod:`twin.predict.sources`) the watch

1. reads what users saw at the entry (the SLI table's figures, else the topology's entry
   services' own): requests, success share, p99;
2. scores every service metric and the entry's against its forecast (a :class:`Forecaster`;
   anomalous = beyond its adaptive band), and the entry's failed requests over the windows
   its availability is judged on against the rate it fails at when normal
   (:mod:`twin.predict.failures`);
3. keeps the twin in step (:class:`twin.calibrate.follow.Follower`) and its twin-vs-reality
   error;
4. runs the two baselines SREs use on the same stream (:mod:`twin.predict.breach`: the
   workbook's multi-window burn-rate page and a ``predict_linear`` threshold rule), so their
   alert times sit beside the twin's;
5. when the entry or a service has been anomalous for ``persist`` windows in a row (the
   failure count once: it pools windows itself), the SLO
   is broken now, or the twin stopped following: names the failure mode and ranks root-cause
   services (a :class:`Recogniser`: the :class:`Classifier` trained on the twin's own
   failures when one is given, else the statistical :class:`LargestChange`), steps the twin
   forward from the current state with that fault applied to get P(breach) and the time to
   breach, looks up the mitigation (the
   learned policy's, or the campaign's best for that failure mode) and re-simulates it from
   the same state, and hands the condition to the :class:`~twin.predict.alerts.AlertBook`,
   which groups, de-duplicates and resolves.

Every window leaves one :class:`WindowRecord` (the timeline the report and the explorer
draw); every message one :class:`~twin.predict.alerts.Alert`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from twin.bounds import safe_name
from twin.calibrate.follow import FollowConfig, Follower, fluid_engine, scaled_topology
from twin.faults import KINDS, ErrorRateFault
from twin.policy import Policy
from twin.predict import sources as src
from twin.predict.alerts import (
    Alert,
    AlertBook,
    Condition,
    Evidence,
    Fingerprint,
    MetricEvidence,
    Mitigation,
    SimulatedEffect,
)
from twin.predict.breach import (
    BreachEstimate,
    BurnRateAlert,
    LinearAlert,
    stretch_breaches,
    time_to_breach,
)
from twin.predict.evidence import FLAT
from twin.predict.failures import FailureExcess, FailureTest
from twin.results import Stretch
from twin.scenario import Load, Scenario
from twin.sim.stepped import SteppedTwin
from twin.topology import Topology

if TYPE_CHECKING:
    from twin.predict.localise import Changes
    from twin.predict.recognise import Recognition as EngineRecognition
    from twin.predict.recognise import Trained

ENTRY = "entry"
"""The key the entry's own figures are scored under."""

FAILURES = "failures"
"""The entry's failed requests over the windows its availability is judged on, against the
normal rate (:class:`twin.predict.failures.FailureExcess`), scored as ``entry/failures``."""

REFERENCE_WINDOWS = 30
"""How many reference windows recognition is given (:meth:`Watch.reference`): more than any
recogniser's baseline reads."""

ENTRY_JUDGED: dict[str, frozenset[str]] = {
    "success": frozenset({f"{ENTRY}/{src.SUCCESS}", f"{ENTRY}/{FAILURES}"}),
    "p50": frozenset({f"{ENTRY}/{src.P99}"}),
    "p95": frozenset({f"{ENTRY}/{src.P99}"}),
    "p99": frozenset({f"{ENTRY}/{src.P99}"}),
}
"""The entry's figures (:class:`~twin.predict.sources.EntrySli` fields) and the keys whose
detectors judge them: its success share by the share's and the failure count's, its
latencies by the p99's (the one latency scored)."""

WATCHED = (src.RATE, src.SUCCESS, src.P90, src.P95, src.P99, src.MEAN, src.CPU, "client_p99")
"""Service metrics scored each window (others are read but not scored)."""

WATCHED_EDGES = ("client_p50", "server_p50")
"""Call-edge metrics scored each window (key ``caller->callee/metric``): a delay on a pod's
network shows only on the caller's side of the calls into it, never in the pod's own
figures, so a detector that reads services alone does not see it."""


# -- forecasting and anomaly scores ------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """A value against its forecast: ``expected`` with its band [``lo``, ``hi``], the
    anomaly ``score`` (how far outside, in the detector's unit) and the verdict."""

    expected: float | None
    lo: float | None
    hi: float | None
    score: float
    anomalous: bool


class Forecaster(Protocol):
    """Streaming forecast and anomaly score, one series per key; ``baseline``: the value is
    history, read to learn what normal is (:attr:`twin.predict.sources.Window.baseline`)."""

    def update(self, key: str, t: float, value: float, baseline: bool = False) -> Scored: ...


MAX_WARM = 1440
"""The most values a band starts from (a day of minutes): a bound on what a history holds."""


@dataclass
class _Ewm:
    n: int = 0
    mean: float = 0.0
    dev: float = 0.0
    first: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_WARM))
    history: bool = True
    """Every value so far was history: the warm-up lasts as long as the history."""
    recent: deque[tuple[float, bool]] = field(default_factory=deque)
    """The latest judged values, at most :attr:`EwmDetector.recheck` of them, each with
    whether it was beyond the band."""
    runs: int = 0
    """Separate runs of values beyond the band among :attr:`recent`."""


def start_band(values: np.ndarray) -> tuple[float, float]:
    """A band's level and deviation from many values: their median and mean absolute
    deviation, the quantity the deviation follows (a spiky series' MAD is far below it)."""
    level = float(np.median(values))
    return level, float(np.mean(np.abs(values - level)))


MAD_TO_MEAN_DEV = math.sqrt(2.0 / math.pi) / 0.6744897501960817
"""Mean absolute deviation over median absolute deviation for normal noise (about 1.18)."""


@dataclass
class EwmDetector:
    """A robust exponentially weighted baseline per series: the band is ``mean ± z x
    1.25 x mean absolute deviation`` (1.25 MAD ~ one standard deviation for normal noise),
    with a floor of ``rel_floor`` x |mean| so a series that never moves cannot page on a
    rounding change. The baseline is robust three ways, so a fault does not teach the
    detector that it is normal: the first ``warm`` values only learn, and the baseline
    starts from their median and median absolute deviation (a fault in the first minutes of
    a watch does not become its normal); a value moves the mean and the deviation by at
    most ``clip`` band widths (a Huber-style update: a fault too small to cross the band
    still does not widen it); and an anomalous value updates them at a tenth of the rate.

    A watch started with history (baseline values) starts each band from all of it, up to
    :data:`MAX_WARM` values: its median and its mean absolute deviation, the quantity the
    deviation follows. A few minutes can be far from a series' own spread (a call's median
    over a handful of calls sits in an upper mode one minute in four), and a band that
    starts too narrow learns its way out at a tenth of the rate, paging for hours.

    A band started cold can be that narrow for good: started in a series' lower mode, the
    upper one is anomalous, teaches at a tenth of the rate, and the lower one's full-rate
    updates keep the band where it began. The sign is flicker: a fault or a level shift
    crosses the band in one run, a band too narrow for the series' own modes is crossed
    again and again, every few values. So when the latest ``recheck`` judged values hold
    ``flicker`` or more separate runs beyond the band, the band restarts from those values
    as from a history (:func:`start_band`). Under a band that fits, ten separate crossings
    in sixty values do not happen by chance, and a fault, however long, is one run; 0 turns
    the check off."""

    z: float = 6.0
    alpha: float = 0.05
    warm: int = 5
    rel_floor: float = 0.1
    clip: float = 3.0
    recheck: int = 60
    flicker: int = 10
    state: dict[str, _Ewm] = field(default_factory=dict)

    def update(self, key: str, t: float, value: float, baseline: bool = False) -> Scored:
        s = self.state.setdefault(key, _Ewm())
        s.history = s.history and baseline
        if s.n < self.warm or s.history:
            s.first.append(value)
            s.n += 1
            return Scored(None, None, None, 0.0, False)
        if s.first:  # the warm-up is over: start from its median and spread
            first = np.asarray(s.first)
            if len(first) > self.warm:  # a history: what ``dev`` follows
                s.mean, s.dev = start_band(first)
            else:  # a few minutes: the MAD, which a fault among them does not move
                s.mean = float(np.median(first))
                s.dev = MAD_TO_MEAN_DEV * float(np.median(np.abs(first - s.mean)))
            s.first.clear()
        width = max(1.25 * s.dev, self.rel_floor * abs(s.mean), 1e-9)
        score = (value - s.mean) / width
        anomalous = abs(score) > self.z
        lo, hi = s.mean - self.z * width, s.mean + self.z * width
        expected = s.mean
        a = self.alpha * (0.1 if anomalous else 1.0)
        step = float(np.clip(value - s.mean, -self.clip * width, self.clip * width))
        s.dev += a * (abs(step) - s.dev)
        s.mean += a * step
        s.n += 1
        if self.flicker > 0:
            self._recheck(s, value, anomalous)
        return Scored(expected, lo, hi, float(score), anomalous)

    def _recheck(self, s: _Ewm, value: float, anomalous: bool) -> None:
        """Count the runs beyond the band among the latest ``recheck`` values; restart the
        band from them when they flicker (the class's docstring says why)."""
        if anomalous and not (s.recent and s.recent[-1][1]):
            s.runs += 1
        s.recent.append((value, anomalous))
        if len(s.recent) > self.recheck:
            _, gone = s.recent.popleft()
            if gone and not s.recent[0][1]:
                s.runs -= 1  # a run that began with the value let go is gone
        if s.runs >= self.flicker:
            s.mean, s.dev = start_band(np.array([v for v, _ in s.recent]))
            s.recent.clear()
            s.runs = 0


@dataclass
class SeasonalDetector:
    """:class:`twin.predict.detector.SeriesDetector` (seasonal Holt-Winters forecast with a
    prediction band, robust residual score with its adaptive tail threshold, CUSUM level
    shifts) behind the :class:`Forecaster` face: the score is the residual's robust z, the
    band the forecaster's, the verdict the detector's combined one."""

    options: dict[str, Any] = field(default_factory=lambda: {"bounded": True})
    """:class:`~twin.predict.detector.SeriesDetector`'s options: by default its forecast is
    held to the range the series has shown, so a season learnt from a run of incidents
    cannot forecast a negative latency on the quiet system after them."""
    series: dict[str, Any] = field(default_factory=dict)

    def update(self, key: str, t: float, value: float, baseline: bool = False) -> Scored:
        from twin.predict.detector import SeriesDetector

        d = self.series.get(key)
        if d is None:
            d = self.series[key] = SeriesDetector(**self.options)
        r = d.update(t, value)
        f = r.anomaly.forecast
        ready = r.anomaly.ready
        return Scored(
            expected=f.expected if ready else None,
            lo=f.expected - (f.upper - f.point) if ready else None,
            hi=f.expected + (f.upper - f.point) if ready else None,
            score=float(r.anomaly.z),
            anomalous=bool(r.is_alert),
        )


@dataclass
class Detectors:
    """The entry's SLIs through the seasonal detector, every service metric through the
    robust EWM band: the seasonal one costs about half a millisecond a point, a hundred
    service series a minute for a day would take a minute of CPU, the EWM band a second."""

    entry: Forecaster = field(default_factory=SeasonalDetector)
    services: Forecaster = field(default_factory=EwmDetector)

    def update(self, key: str, t: float, value: float, baseline: bool = False) -> Scored:
        which = self.entry if key.startswith(ENTRY + "/") else self.services
        return which.update(key, t, value, baseline)


# -- recognition -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recognition:
    """The failure mode named: fault ``kind``, root-cause services with probabilities (most
    likely first) and the fingerprint matched."""

    kind: str
    root_cause: tuple[str, ...]
    probabilities: tuple[float, ...]
    fingerprint: str | None = None
    similarity: float | None = None
    intensity: float | None = None
    baseline: tuple[str, ...] = ()
    """The statistical localiser's ranking on the same windows (most likely first)."""
    strength: float | None = None
    """How much the windows read had moved (:func:`twin.predict.evidence.strength`)."""


class Recogniser(Protocol):
    """Names the failure mode from the recent windows (the suspect ones: since the symptoms
    began) against normal ones before them (the watch gives :meth:`Watch.reference`: each
    series' own latest quiet values)."""

    def recognise(
        self, recent: Sequence[src.Window], normal: Sequence[src.Window]
    ) -> Recognition: ...


KIND_OF_METRIC = {
    src.CPU: "cpu_exhaustion",
    src.SUCCESS: "error_rate",
    FAILURES: "error_rate",
    src.RATE: "outage",
    src.MEAN: "latency",
    src.P50: "latency",
    src.P90: "latency",
    src.P95: "latency",
    src.P99: "latency",
    "client_p99": "latency",
    "in_client_p50": "latency",
    "in_server_p50": "latency",
}


def suspect_changes(
    recent: Sequence[src.Window],
    normal: Sequence[src.Window],
    calls: Iterable[tuple[str, str]],
    before: int,
    min_before: int,
    drop: frozenset[tuple[str, str]] = frozenset(),
) -> Changes | None:
    """The standardised changes of the suspect windows (``recent``) against the last
    ``before`` normal windows that end before them (:func:`twin.predict.localise.changes`,
    as the recogniser's training reads a simulated fault), or None with fewer than
    ``min_before`` of those. The windows are laid end to end on one clock: a normal window
    taken from before an earlier incident stands next to the suspect ones."""
    from twin.predict.localise import changes
    from twin.predict.windows import from_windows

    if not recent:
        return None
    step = recent[-1].seconds
    first = recent[0].time - recent[0].seconds
    ref = [w for w in normal if w.time <= first + 1e-9][-max(before, 1) :]
    if len(ref) < min_before:
        return None
    ws = [*ref, *recent]
    end = recent[-1].time
    laid = [replace(w, time=end - (len(ws) - 1 - i) * step) for i, w in enumerate(ws)]
    tel = from_windows(laid, calls)
    start = end - len(recent) * step
    return changes(tel, start, len(recent) * step, len(ref) * step, drop)


@dataclass
class LargestChange:
    """The statistical localiser (BARO / N-sigma style): each service's score is its largest
    absolute standardised change (:func:`twin.predict.localise.rank_services`: its own
    metrics and the calls into it, the suspect windows' median against the last ``before``
    normal windows' median over their interquartile spread); services rank by score, with
    the entry service among the first three when errors are seen at the entry only
    (:func:`twin.predict.evidence.place_entry`). The kind is the one the changes say plainly
    (:func:`twin.predict.evidence.evidence_kind`), else the one the moving metric stands for
    (CPU -> cpu_exhaustion, success -> error_rate, latency -> latency, rate -> outage).
    Probabilities are the log-scores' softmax."""

    calls: tuple[tuple[str, str], ...] = ()
    before: int = 5
    min_before: int = 2

    def recognise(self, recent: Sequence[src.Window], normal: Sequence[src.Window]) -> Recognition:
        from twin.predict import evidence as ev
        from twin.predict.localise import rank_services

        ch = suspect_changes(recent, normal, self.calls, self.before, self.min_before)
        ranked = [r for r in rank_services(ch) if r.score >= 0] if ch is not None else []
        if ch is None or not ranked:
            return Recognition("unknown", (), ())
        baseline = tuple(r.service for r in ranked)
        score = {r.service: r.score for r in ranked}
        names = tuple(ev.place_entry(baseline, ch))
        zs = np.array([max(score.get(s, 0.0), 0.0) for s in names])
        p = np.exp(np.log1p(zs) - np.log1p(zs).max())
        p = p / p.sum()
        top = ranked[0]
        said = ev.evidence_kind(ch, names[0])
        kind = said or KIND_OF_METRIC.get(top.metric, "latency")
        how = f"; kind from the evidence: {said}" if said else ""
        return Recognition(
            kind,
            names,
            tuple(float(x) for x in p),
            fingerprint=f"largest change: {top.service} {top.metric}{how}",
            similarity=None,
            baseline=baseline,
            strength=ev.strength(ch),
        )


@dataclass
class Classifier:
    """The correlation engine trained on the twin's own failures
    (:class:`twin.predict.recognise.Trained`) behind the :class:`Recogniser` face.

    The windows are read as the engine was trained (:func:`suspect_changes`): the suspect
    windows (``recent``) are the fault's, the last normal windows before them (as many as
    the training baseline held) its baseline, with the training's uninformative metrics left
    out; the answer is :func:`decide`'s (``fused``: the engine's ranking fused with the
    statistical one). With fewer than ``min_before`` normal windows there is no baseline to
    compare with, and ``fallback`` (the statistical ranking) answers."""

    trained: Trained
    calls: tuple[tuple[str, str], ...] = ()
    min_before: int = 2
    fallback: Recogniser | None = None
    fused: bool = True

    def recognise(self, recent: Sequence[src.Window], normal: Sequence[src.Window]) -> Recognition:
        spec = self.trained.spec
        step = recent[-1].seconds if recent else 60.0
        n_before = max(round(spec.before_s / step), 1)
        ch = suspect_changes(
            recent, normal, self.calls, n_before, self.min_before, self.trained.drop
        )
        if ch is None:
            fallback = self.fallback or LargestChange(self.calls)
            rec = fallback.recognise(recent, normal)
            name = f"{rec.fingerprint} (too few normal windows for the classifier)"
            return replace(rec, fingerprint=name)
        return decide(self.trained.model.recognise(ch), ch, fused=self.fused)


def decide(r: EngineRecognition, ch: Changes, fused: bool = True) -> Recognition:
    """The watch's answer from the engine's recognition ``r`` of the changes ``ch``.

    Root causes: with ``fused``, the engine's ranking and the statistical one
    (:func:`twin.predict.localise.rank_services`) combined by reciprocal rank fusion
    (:func:`twin.predict.evidence.fuse`; probabilities: the fused scores' shares), else the
    engine's alone; then the entry service among the first three when errors are seen at
    the entry only (:func:`twin.predict.evidence.place_entry`). Kind: the one the changes
    say plainly about the first candidate (:func:`twin.predict.evidence.evidence_kind`),
    else the engine's most likely fault kind (when its best guess is ``none``, the next one,
    and the fingerprint says so). The statistical ranking rides along as ``baseline``."""
    from twin.predict import evidence as ev
    from twin.predict.localise import rank_services

    baseline = tuple(x.service for x in rank_services(ch))
    engine = [c.service for c in r.root_cause]
    if fused:
        scored = ev.fuse([engine, baseline])
    else:
        scored = [(c.service, c.probability) for c in r.root_cause]
    names = ev.place_entry([s for s, _ in scored], ch)
    weight = dict(scored)
    total = sum(weight.get(s, 0.0) for s in names) or 1.0
    kinds = {k: p for k, p in r.kinds.items() if k != "none"}
    guess = max(kinds, key=lambda k: kinds[k]) if kinds else r.kind
    said = ev.evidence_kind(ch, names[0] if names else None)
    kind = said or guess
    none = r.kinds.get("none")
    note = f"; none {none:.2f}" if none is not None and r.kind == "none" else ""
    how = f"; kind from the evidence: {said}" if said else ""
    return Recognition(
        kind,
        tuple(names),
        tuple(weight.get(s, 0.0) / total for s in names),
        fingerprint=f"classifier: {guess} p={r.kinds.get(guess, 0.0):.2f}{note}{how}",
        similarity=r.kinds.get(kind),
        baseline=baseline,
        strength=ev.strength(ch),
    )


# -- mitigation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A mitigation to try: its name, origin and twin Policy document."""

    name: str
    source: str
    policy: dict[str, Any]


MitigationLookup = Callable[[str, str], Candidate | None]
"""(fault kind, target service) -> the best known mitigation, or None."""


def quiet(s: Scored) -> bool:
    """A value its detector saw no move in at all: inside its band and within
    :data:`~twin.predict.evidence.FLAT` widths of the forecast (what a quiet series does
    from one window to the next). Recognition's baseline is built of such values."""
    return not s.anomalous and abs(s.score) <= FLAT


Slot = tuple[str, str, str]
"""Where a figure sits in a window: ``services``, ``edges`` or the entry; name; metric."""


def _readings(w: src.Window) -> Iterator[tuple[Slot, float | None, frozenset[str]]]:
    """Every figure of a window: where it sits, its value, and the keys whose detectors
    judge it."""
    for scope, table in (("services", w.services), ("edges", w.edges)):
        for name, ms in table.items():
            for metric, v in ms.items():
                yield (scope, name, metric), v, frozenset({f"{name}/{metric}"})
    if w.entry is not None:
        for f, keys in ENTRY_JUDGED.items():
            yield (ENTRY, ENTRY, f), getattr(w.entry, f), keys


def quiet_readings(w: src.Window, moved: frozenset[str]) -> list[tuple[Slot, float]]:
    """The window's finite figures whose detectors saw no move (none of their keys in
    ``moved``): what :meth:`Watch.reference` may build a baseline of, read once per window."""
    return [
        (slot, float(v))
        for slot, v, keys in _readings(w)
        if v is not None and math.isfinite(v) and not moved & keys
    ]


# -- the watch ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchConfig:
    """How the watch decides. Times in seconds; ``persist``: consecutive anomalous windows
    of the entry before a condition is raised, ``persist_service`` of a service alone (a
    service's own metrics are many and noisier than what users see), and in either case
    for at least ``persist_s`` / ``persist_service_s`` seconds (a short window reads fewer
    requests and is noisier: a 5 s window's p99 is nearly the largest of a few dozen
    latencies); ``replications``,
    ``step_s``: the Monte Carlo's size;
    ``spread``: the log-normal sigma of the fault intensity and load each replication draws;
    ``reuse_windows``: an estimate for the same failure mode is reused this many windows;
    ``suspect_windows``: at most this many of the latest windows in a row where something
    moved the harmful way are what the recogniser reads as the fault's;
    ``failures_alpha``: the tail below which the entry's failed requests are more than its
    normal rate explains (:mod:`twin.predict.failures`; the test pools windows itself, so
    one window raises it);
    ``slo_*`` override the topology's SLO."""

    horizon_s: float = 1800.0
    persist: int = 2
    persist_service: int = 3
    persist_s: float = 30.0
    persist_service_s: float = 45.0
    resolve_after: int = 2
    normal_windows: int = 120
    replications: int = 4
    step_s: float = 60.0
    spread: float = 0.3
    seed: int = 1
    slo_latency_p99: float | None = None
    slo_availability: float | None = None
    follow: FollowConfig = field(default_factory=FollowConfig)
    linear_range_s: float = 1800.0
    reuse_windows: int = 5
    suspect_windows: int = 3
    failures_alpha: float = 1e-3


@dataclass
class WindowRecord:
    """One window of the timeline: what was observed, forecast, predicted and raised."""

    time: float
    requests: float
    success: float | None
    p99: float | None
    p99_expected: float | None
    p99_lo: float | None
    p99_hi: float | None
    score: float
    anomalous: list[str]
    breaching: bool
    twin_p99: float | None
    twin_error: float | None
    following: bool
    load_multiplier: float
    time_scale: float
    burn_rate: list[str]
    linear: bool
    probability: float | None
    time_to_breach_s: float | None
    alerts: int
    baseline: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Watch:
    """The loop's state for one production system (see the module's docstring)."""

    topology: Topology
    config: WatchConfig = field(default_factory=WatchConfig)
    forecaster: Forecaster = field(default_factory=Detectors)
    recogniser: Recogniser = field(default_factory=LargestChange)
    mitigation: MitigationLookup | None = None
    engine: Callable[[Topology, Scenario], SteppedTwin] = fluid_engine
    records: list[WindowRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    mc_runs: int = 0

    def __post_init__(self) -> None:
        c = self.config
        slo = self.topology.slo
        self.slo_p99 = c.slo_latency_p99 if c.slo_latency_p99 is not None else slo.latency_p99
        self.slo_avail = c.slo_availability if c.slo_availability is not None else slo.availability
        self.follower = Follower(self.topology, c.follow, engine=self.engine)
        self.book = AlertBook(c.horizon_s, resolve_after=c.resolve_after)
        self.burn_avail = BurnRateAlert(self.slo_avail) if self.slo_avail else None
        self.failures = (
            FailureExcess(self.slo_avail, alpha=c.failures_alpha) if self.slo_avail else None
        )
        self.failure_test: FailureTest | None = None
        self.burn_latency = BurnRateAlert(0.99) if self.slo_p99 else None
        self.linear = (
            LinearAlert(c.linear_range_s, c.horizon_s, self.slo_p99) if self.slo_p99 else None
        )
        self.rng = np.random.default_rng(c.seed)
        self.streak: dict[str, int] = {}
        self.normal: deque[src.Window] = deque(maxlen=c.normal_windows)
        self.recent: deque[src.Window] = deque(maxlen=max(c.suspect_windows, 1))
        self.past: deque[tuple[src.Window, list[tuple[Slot, float]]]] = deque(
            maxlen=c.normal_windows
        )
        self._names: dict[str, str | None] = {}
        self.calls: list[tuple[str, str]] = [
            (str(a), str(b))
            for a, b in (
                *self.topology.service_graph().edges,
                *getattr(self.recogniser, "calls", ()),
            )
        ]
        """Call edges, the topology's and the telemetry's (the recogniser's)."""
        self.entries = self._user_entries()
        self._estimates: dict[tuple[str, str | None], tuple[float, BreachEstimate, Mitigation]] = {}
        self._held: tuple[float, Recognition] | None = None

    # -- per window ----------------------------------------------------------------------------

    def named(self, service: str) -> str | None:
        """The topology's name for the telemetry's ``service``: the same name, or the one
        calibration makes of it (:func:`twin.bounds.safe_name`: a ``:`` in an X-Ray or
        CloudWatch node name becomes ``_``); None when the topology has neither."""
        if service not in self._names:
            name = service if service in self.topology.services else safe_name(service)
            self._names[service] = name if name in self.topology.services else None
        return self._names[service]

    def _user_entries(self) -> set[str]:
        """The topology's workload entries that users call: those no call goes into, in the
        topology or in the telemetry's call graph (the recogniser's calls). A twin may give a
        service arrivals of its own for calls it cannot wait on (an asynchronous call, a
        queue); the telemetry still shows that service being called, and what users see is
        at the services that call it. All entries when that would leave none."""
        entries = {w.service for w in self.topology.workload}
        called = {self.named(b) for a, b in self.calls if a != b}
        users = entries - called
        return users or entries

    def entry_sli(self, w: src.Window) -> src.EntrySli:
        """The window's entry figures: the SLI table's, else the entry services' own."""
        figs = [m for s, m in w.services.items() if self.named(s) in self.entries]
        if w.entry is not None:
            rates = [f[src.RATE] for f in figs if src.RATE in f]
            if rates:  # the topology's entries say which service's rate is the entry's
                return replace(w.entry, requests=sum(rates) * w.seconds)
            return w.entry
        if not figs:
            return src.EntrySli(0.0, None, None, None)
        reqs = sum(f.get(src.RATE, 0.0) for f in figs) * w.seconds
        succ = [f[src.SUCCESS] for f in figs if src.SUCCESS in f]
        p99s = [f[src.P99] for f in figs if src.P99 in f]
        p50s = [f[src.P50] for f in figs if src.P50 in f]
        return src.EntrySli(
            requests=reqs,
            success=min(succ) if succ else None,
            p50=max(p50s) if p50s else None,
            p99=max(p99s) if p99s else None,
        )

    def step(self, w: src.Window) -> tuple[WindowRecord, list[Alert]]:
        """Take one window; answer its timeline record and the alert messages it sends."""
        sli = self.entry_sli(w)
        scores: dict[str, Scored] = {}
        for key, v in ((f"{ENTRY}/{src.P99}", sli.p99), (f"{ENTRY}/{src.SUCCESS}", sli.success)):
            if v is not None:
                scores[key] = self.forecaster.update(key, w.time, v, w.baseline)
        for svc, ms in w.services.items():
            for m in WATCHED:
                if m in ms:
                    key = f"{svc}/{m}"
                    scores[key] = self.forecaster.update(key, w.time, ms[m], w.baseline)
        self.failure_test = self._failures(sli)
        breaching = self._breaching(sli, self.failure_test)
        if self.failure_test is not None:
            ft = self.failure_test
            scores[f"{ENTRY}/{FAILURES}"] = Scored(
                ft.expected, None, None, ft.surprise if ft.failed > ft.expected else 0.0, ft.excess
            )
        for edge, ms in w.edges.items():
            for m in WATCHED_EDGES:
                v = ms.get(m)
                if v is not None and math.isfinite(v):
                    key = f"{edge}/{m}"
                    scores[key] = self.forecaster.update(key, w.time, v, w.baseline)
        for key, s in scores.items():
            symptom = s.anomalous and _is_symptom(key, s)
            self.streak[key] = self.streak.get(key, 0) + 1 if symptom else 0
        persistent = sorted(k for k, n in self.streak.items() if n >= self._persist(k, w.seconds))
        rate = sli.requests / w.seconds if w.seconds > 0 else None
        follow = self.follower.update(w.time, rate, sli.p99)
        burn = self._burn(w, sli)
        linear = self.linear.update(w.time, sli.p99) if self.linear else False
        moved = breaching or any(self.streak.get(k, 0) > 0 for k in scores)
        if moved:
            self.recent.append(w)  # a suspect window: something moved the harmful way
        else:
            self.recent.clear()
            self._held = None
        estimate: BreachEstimate | None = None
        messages: list[Alert] = []
        conditions: list[Condition] = []
        if not w.baseline and (persistent or breaching or not follow.following):
            cond, estimate = self._condition(w, sli, scores, persistent, breaching, follow)
            conditions.append(cond)
        if not moved:
            self.normal.append(w)  # nothing moved the harmful way: a baseline for recognition
        if self.failures is not None and self.failure_test is not None:
            # the normal failure rate is learnt from every window whose failures were
            # normal, whatever else moved in it: a latency incident's windows say as much
            # about how often requests fail as quiet ones do
            failing = self.failure_test.broken or any(
                self.streak.get(f"{ENTRY}/{m}", 0) > 0 for m in (src.SUCCESS, FAILURES)
            )
            self.failures.settle(not failing)
        if not w.baseline:
            messages = self.book.update(w.time, conditions)
        self.alerts += messages
        p99s = scores.get(f"{ENTRY}/{src.P99}")
        rec = WindowRecord(
            time=w.time,
            requests=sli.requests,
            success=sli.success,
            p99=sli.p99,
            p99_expected=p99s.expected if p99s else None,
            p99_lo=p99s.lo if p99s else None,
            p99_hi=p99s.hi if p99s else None,
            score=max((abs(s.score) for s in scores.values()), default=0.0),
            anomalous=persistent,
            breaching=breaching,
            twin_p99=follow.predicted,
            twin_error=follow.error,
            following=follow.following,
            load_multiplier=follow.load_multiplier,
            time_scale=follow.time_scale,
            burn_rate=burn,
            linear=linear,
            probability=estimate.probability if estimate else None,
            time_to_breach_s=estimate.time_to_breach_s if estimate else None,
            alerts=sum(1 for a in messages if a.status == "firing"),
            baseline=w.baseline,
        )
        self.records.append(rec)
        stirred = frozenset(k for k, s in scores.items() if not quiet(s))
        self.past.append((w, quiet_readings(w, stirred)))
        return rec, messages

    def reference(self, end: float, n: int) -> list[src.Window]:
        """What recognition compares the suspect windows with: ``n`` windows ending at
        ``end``, oldest first, in which every figure is one of its own latest quiet values
        (:func:`quiet`; the newest window holds each figure's latest, the one before its
        one before, ...), and is absent when the figure has none in the windows kept.

        Each series is its own normal. With a hundred and more series some series moves in
        nearly every window of a busy hour, so windows where none did can lie an hour back,
        where the system may have been elsewhere: a service whose CPU crept up since would
        read as the fault. A figure is passed over only when its own detector saw it move
        (an anomalous value is the fault's, or the last one's, not the baseline's)."""
        kept: dict[Slot, list[float]] = {}
        frames: list[src.Window] = []
        for w, readings in reversed(self.past):
            if w.time > end + 1e-9:
                continue
            if len(frames) < n:
                frames.append(w)
            for slot, v in readings:
                values = kept.setdefault(slot, [])
                if len(values) < n:
                    values.append(v)
        out: list[src.Window] = []
        for i, w in enumerate(frames):
            tables: dict[str, dict[str, dict[str, float]]] = {"services": {}, "edges": {}}
            sli: dict[str, float] = {}
            for (scope, name, metric), values in kept.items():
                if i < len(values):
                    if scope == ENTRY:
                        sli[metric] = values[i]
                    else:
                        tables[scope].setdefault(name, {})[metric] = values[i]
            entry = (
                replace(
                    w.entry,
                    success=sli.get("success"),
                    p50=sli.get("p50"),
                    p95=sli.get("p95"),
                    p99=sli.get("p99"),
                )
                if w.entry is not None
                else None
            )
            out.append(replace(w, services=tables["services"], edges=tables["edges"], entry=entry))
        return out[::-1]

    def _breaching(self, sli: src.EntrySli, counted: FailureTest | None) -> bool:
        """The window's p99 above its target, or availability broken over the latest
        windows that hold enough requests to resolve the objective (the failure count's
        span, ``counted``)."""
        broken = False
        if counted is not None:
            broken = counted.broken
        elif self.slo_avail is not None and sli.success is not None:
            broken = sli.success < self.slo_avail  # a share without a count, as it reads
        if self.slo_p99 is not None and sli.p99 is not None and sli.p99 > self.slo_p99:
            return True
        return broken

    def _persist(self, key: str, window_s: float) -> int:
        """Windows in a row a key must be anomalous: ``persist`` (the entry's) or
        ``persist_service`` windows and at least ``persist_s`` / ``persist_service_s``
        seconds of them; the failure count pools windows itself, so one is enough."""
        if key == f"{ENTRY}/{FAILURES}":
            return 1
        c = self.config
        n, s = (
            (c.persist, c.persist_s)
            if key.startswith(ENTRY + "/")
            else (c.persist_service, c.persist_service_s)
        )
        return max(n, math.ceil(s / window_s - 1e-9)) if window_s > 0 else n

    def _failures(self, sli: src.EntrySli) -> FailureTest | None:
        """The count test over the windows the availability SLI reads (this one the last)."""
        if self.failures is None or sli.success is None or sli.requests <= 0:
            return None
        return self.failures.update(sli.requests * (1.0 - sli.success), sli.requests)

    def _burn(self, w: src.Window, sli: src.EntrySli) -> list[str]:
        out: list[str] = []
        n = max(sli.requests, 0.0)
        if self.burn_avail is not None and sli.success is not None:
            out += [
                f"availability {r}"
                for r in self.burn_avail.update(w.time, w.seconds, n * (1 - sli.success), n)
            ]
        if self.burn_latency is not None and sli.p99 is not None and self.slo_p99 is not None:
            bad = n if sli.p99 > self.slo_p99 else 0.0
            out += [f"latency {r}" for r in self.burn_latency.update(w.time, w.seconds, bad, n)]
        return out

    def _condition(
        self,
        w: src.Window,
        sli: src.EntrySli,
        scores: Mapping[str, Scored],
        persistent: list[str],
        breaching: bool,
        follow: Any,
    ) -> tuple[Condition, BreachEstimate | None]:
        rec = self._counted(self._recognise(w), sli, scores)
        target = next((t for t in map(self.named, rec.root_cause) if t is not None), None)
        key = (rec.kind, target)
        cached = self._estimates.get(key)
        if cached is not None and w.time - cached[0] < self.config.reuse_windows * w.seconds:
            estimate, mitigation = cached[1], cached[2]
        else:
            estimate = self._mc(rec.kind, target, rec.intensity, None)
            mitigation = self._mitigation(rec.kind, target, rec.intensity, estimate)
            self._estimates[key] = (w.time, estimate, mitigation)
        ttb = 0.0 if breaching else estimate.time_to_breach_s
        prob = 1.0 if breaching else estimate.probability
        moved = sorted(
            ((k, scores[k]) for k in persistent if k in scores), key=lambda kv: -abs(kv[1].score)
        )
        evidence = Evidence(
            reason="slo" if breaching else ("anomaly" if persistent else "twin-diverged"),
            metrics=[
                MetricEvidence(
                    service=k.split("/", 1)[0],
                    metric=k.split("/", 1)[1],
                    value=self.failure_test.failed
                    if k == f"{ENTRY}/{FAILURES}" and self.failure_test is not None
                    else _value(w, sli, k),
                    expected=s.expected,
                    score=s.score,
                )
                for k, s in moved[:10]
            ],
            fingerprint=Fingerprint(name=rec.fingerprint, similarity=rec.similarity)
            if rec.fingerprint
            else None,
            twin_error=follow.error,
            entry_p99_s=sli.p99,
            entry_success=sli.success,
            baseline_root_cause=list(rec.baseline[:10]),
        )
        where = ", ".join(rec.root_cause[:3]) or "unknown service"
        when = (
            "SLO broken now"
            if breaching
            else f"P(breach in {self.config.horizon_s:g} s) = {prob:.2f}"
            + (f", in ~{ttb:.0f} s" if ttb is not None else "")
        )
        name = "TwinDiverged" if evidence.reason == "twin-diverged" else "FailureMode"
        note = "; the twin no longer follows production" if not follow.following else ""
        cond = Condition(
            name=name,
            kind=rec.kind,
            root_cause=rec.root_cause,
            root_cause_probability=rec.probabilities,
            probability=prob,
            time_to_breach_s=ttb,
            mitigation=mitigation,
            evidence=evidence,
            summary=f"{rec.kind} at {where}: {when}{note}",
        )
        return cond, estimate

    def _counted(
        self, rec: Recognition, sli: src.EntrySli, scores: Mapping[str, Scored]
    ) -> Recognition:
        """The recognition with what the failure counts say. When the entry fails more than
        it normally does (its count test, an excess or the objective broken by failures) and
        its p99 is neither anomalous upwards nor above the target, the fault is an error
        fault, whatever the recogniser read: the count pools the windows a share compared
        window by window cannot, so it knows before the suspect windows' median success
        moves. For an error fault the services where the failures start (failing while none
        of the services they call fail, :func:`twin.predict.evidence.error_origins`) come
        first."""
        from twin.predict import evidence as ev
        from twin.predict.failures import service_failures

        ft = self.failure_test
        failing = ft is not None and ft.failed > ft.expected and (ft.excess or ft.broken)
        p99 = scores.get(f"{ENTRY}/{src.P99}")
        slow = (p99 is not None and p99.anomalous and p99.score > 0) or (
            self.slo_p99 is not None and sli.p99 is not None and sli.p99 > self.slo_p99
        )
        kind, note = rec.kind, ""
        if failing and not slow and kind != ErrorRateFault.name:
            kind, note = ErrorRateFault.name, "; kind from the failure count"
        if kind != ErrorRateFault.name:
            return rec
        origins = ev.error_origins(
            service_failures(list(self.recent), list(self.normal)), self.calls
        )
        names = tuple(ev.place_first(rec.root_cause, origins))
        if names[: len(rec.root_cause)] != rec.root_cause:
            note += f"; failures start at {', '.join(origins)}"
        # the places keep their probabilities (most likely first); a service placed ahead
        # takes the place's
        probs = sorted(rec.probabilities, reverse=True)
        probs += [0.0] * (len(names) - len(probs))
        return replace(
            rec,
            kind=kind,
            root_cause=names,
            probabilities=tuple(probs),
            fingerprint=(rec.fingerprint or "") + note if note else rec.fingerprint,
        )

    def _recognise(self, w: src.Window) -> Recognition:
        """The recogniser's answer on the suspect windows, held against a weaker one: an
        answer stands for as many windows as the recogniser reads (``suspect_windows``)
        unless a new one read at least as strong a change (its ``strength``). As a fault
        ends, the suspect windows fill with recovery and the changes fade; the answer read
        from the fault itself is kept rather than replaced by one read from its tail. A
        break in the suspect windows forgets the held answer."""
        suspect = list(self.recent) or [w]
        ref = self.reference(suspect[0].time - suspect[0].seconds, REFERENCE_WINDOWS)
        rec = self.recogniser.recognise(suspect, ref)
        held = self._held
        span = max(self.config.suspect_windows, 1) * w.seconds
        if (
            held is not None
            and w.time - held[0] < span - 1e-9
            and held[1].strength is not None
            and rec.strength is not None
            and held[1].strength > rec.strength
        ):
            return held[1]
        self._held = (w.time, rec)
        return rec

    # -- the twin forward ----------------------------------------------------------------------

    def _make_twin(
        self, kind: str, target: str | None, intensity: float | None, policy: Policy | None
    ) -> Callable[[np.random.Generator], SteppedTwin]:
        c = self.config
        topo = scaled_topology(self.topology, self.follower.time_scale)
        fault_cls = KINDS.get(kind)
        base = (
            intensity
            if intensity is not None
            else (fault_cls.intensity.typical if fault_cls else None)
        )

        def make(rng: np.random.Generator) -> SteppedTwin:
            load = self.follower.load_multiplier * float(rng.lognormal(0.0, c.spread))
            faults: list[dict[str, Any]] = []
            if fault_cls is not None and target is not None and base is not None:
                x = fault_cls.intensity.clamp(base * float(rng.lognormal(0.0, c.spread)))
                doc = fault_cls.document(target, x, topo)
                faults.append({**doc, "start": 0.0, "duration": c.horizon_s + c.step_s})
            scenario = Scenario.model_validate(
                {
                    "duration": c.horizon_s + c.step_s,
                    "load": Load(multiplier=max(load, 1e-6)).model_dump(),
                    "faults": faults,
                }
            )
            twin = self.engine(topo, scenario)
            if policy is not None:
                twin.apply(policy)
            return twin

        return make

    def _mc(
        self, kind: str, target: str | None, intensity: float | None, policy: Policy | None
    ) -> BreachEstimate:
        c = self.config
        self.mc_runs += 1
        return time_to_breach(
            self._make_twin(kind, target, intensity, policy),
            stretch_breaches(self.slo_p99, self.slo_avail),
            horizon_s=c.horizon_s,
            step_s=c.step_s,
            replications=c.replications,
            rng=self.rng,
        )

    def _mitigation(
        self, kind: str, target: str | None, intensity: float | None, without: BreachEstimate
    ) -> Mitigation:
        cand = self.mitigation(kind, target or "") if self.mitigation else None
        if cand is None:
            return Mitigation(
                source="none", description="no mitigation known for this failure mode"
            )
        try:
            policy = Policy.model_validate(cand.policy)
        except ValueError as e:
            return Mitigation(source="none", description=f"{cand.name}: not a valid policy ({e})")
        with_it = self._mc(kind, target, intensity, policy)
        effect = SimulatedEffect(
            breach_without=without.probability, breach_with=with_it.probability
        )
        return Mitigation(
            source="policy" if cand.source == "policy" else "campaign",
            description=(
                f"{cand.name} ({cand.source}): P(breach) {without.probability:.2f} -> "
                f"{with_it.probability:.2f} in the twin from now"
            ),
            policy=cand.policy,
            effect=effect,
        )

    # -- whole runs ----------------------------------------------------------------------------

    def run(
        self,
        windows: Iterable[src.Window],
        *,
        on_alerts: Callable[[list[Alert]], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Alert]:
        """Every window of ``windows``; ``on_alerts`` gets each window's messages as they
        are raised (to write, post or store them), ``progress`` the window count."""
        for i, w in enumerate(windows, 1):
            _, msgs = self.step(w)
            if msgs and on_alerts is not None:
                on_alerts(msgs)
            if progress is not None:
                progress(i)
        return self.alerts


def _is_symptom(key: str, s: Scored) -> bool:
    """Only the harmful direction is a symptom: latency and CPU up, success and rate down."""
    metric = key.split("/", 1)[1]
    if metric in (src.SUCCESS, src.RATE):
        return s.score < 0
    return s.score > 0


def _value(w: src.Window, sli: src.EntrySli, key: str) -> float | None:
    svc, metric = key.split("/", 1)
    if svc == ENTRY:
        return sli.p99 if metric == src.P99 else sli.success
    v = w.services.get(svc, {}).get(metric)
    if v is None and "->" in svc:
        v = w.edges.get(svc, {}).get(metric)
    return v if v is not None and math.isfinite(v) else None


def stretch_entry(s: Stretch) -> tuple[float | None, float | None]:
    """A twin stretch's entry p99 (seconds) and success share."""
    p99s = [float(e.latency.p99) for e in s.entries.values() if e.latency.p99 is not None]
    done = sum(float(e.succeeded) + float(e.failed) for e in s.entries.values())
    ok = sum(float(e.succeeded) for e in s.entries.values())
    return (max(p99s) if p99s else None, ok / done if done > 0 else None)


__all__ = [
    "Candidate",
    "Classifier",
    "Detectors",
    "EwmDetector",
    "Forecaster",
    "LargestChange",
    "MitigationLookup",
    "Recogniser",
    "Recognition",
    "Scored",
    "SeasonalDetector",
    "Watch",
    "WatchConfig",
    "WindowRecord",
    "decide",
    "suspect_changes",
]
