"""The twin kept in step with production, window by window, and how far it is off: one
global service-time scale by a moving average (what ``twin watch`` runs). The per-service
method, a Kalman filter behind :func:`twin.calibrate.follow`, is
:mod:`twin.calibrate.recalibrate`; docs/follow.md compares the two on the same stream.

Each window the :class:`Follower`

1. predicts the entry latency the window will show, with the twin at the load and
   service-time scale estimated so far (a one-step-ahead forecast: the window's own figures
   are not used for it);
2. scores the prediction with calibration's accuracy measure
   (:func:`twin.calibrate.accuracy.accuracy`, PerfSim's 1 - |twin - observed| / observed),
   and keeps the error, 1 - accuracy;
3. re-estimates from the window: the **arrival rate** (the load multiplier is the observed
   entry rate over the topology's, taken as is: arrivals are measured, not inferred) and the
   **service-time scale** (a geometric moving average of observed / predicted latency, so
   one noisy window moves it by ``alpha`` of its log-ratio; the first windows average
   equally, so the scale starts where production is);
4. says the twin **no longer follows** when the error stays beyond ``bound`` for ``k``
   windows in a row (after its first ``k`` windows, which set the scale from scratch):
   then production does something the twin, re-estimated as above, does not reproduce
   (a fault, a change of mix or code the topology lacks), and what the twin predicts
   should not be trusted until it follows again.

Predictions come from a stepped engine (the fluid one by default: a steady state costs two
dozen of its 5-second steps, about 10 ms) at the window's load and scale, cached on a 10% grid
of both, so a day of one-minute windows costs a few dozen engine runs, not a thousand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from twin.calibrate.accuracy import accuracy
from twin.results import Stretch
from twin.scenario import Load, Scenario
from twin.sim.stepped import SteppedTwin
from twin.topology import Topology

Engine = Callable[[Topology, Scenario], SteppedTwin]

GRID = 0.1
"""Relative step of the prediction cache's grid (load multiplier and service-time scale)."""


FLUID_DT = 5.0
"""Seconds per fluid step when following and looking ahead: windows are a minute or more,
and the fluid engine's queues settle within a few steps, so finer steps buy nothing here."""


def fluid_engine(topology: Topology, scenario: Scenario) -> SteppedTwin:
    """The aggregated engine (deterministic, fast) at :data:`FLUID_DT`: the default for
    following and for the look-ahead."""
    from twin.sim.fluid import FluidSimulation

    return FluidSimulation(topology, scenario, dt=FLUID_DT)


def scaled_topology(topology: Topology, scale: float) -> Topology:
    """The topology with every operation's service time multiplied by ``scale``."""
    if scale == 1.0:
        return topology
    services = {
        name: svc.model_copy(
            update={
                "operations": {
                    o: op.model_copy(update={"service_time": op.service_time.scaled(scale)})
                    for o, op in svc.operations.items()
                }
            }
        )
        for name, svc in topology.services.items()
    }
    return topology.model_copy(update={"services": services})


def entry_rate(topology: Topology) -> float:
    """Requests per second arriving at the topology's entries (its nominal load)."""
    return sum(w.rate for w in topology.workload)


@dataclass(frozen=True)
class FollowConfig:
    """How the twin is kept in step. ``metric``: the entry latency compared (``p99`` or
    ``mean``, what both engines model); ``bound``: the largest error (1 - accuracy) still
    counted as following; ``k``: windows beyond it before the twin is said not to follow."""

    metric: str = "p99"
    alpha: float = 0.1
    bound: float = 0.6
    k: int = 5
    warm_s: float = 60.0
    measure_s: float = 60.0
    scale_limits: tuple[float, float] = (0.01, 100.0)


@dataclass(frozen=True)
class FollowStep:
    """One window: the state used for the prediction, the prediction, and the verdict."""

    time: float
    load_multiplier: float
    time_scale: float
    predicted: float | None
    observed: float | None
    error: float | None
    following: bool
    off_for: int


@dataclass
class Follower:
    """Keeps a twin in step with one production system; :meth:`update` once per window."""

    topology: Topology
    config: FollowConfig = field(default_factory=FollowConfig)
    engine: Engine = fluid_engine
    load_multiplier: float = 1.0
    time_scale: float = 1.0
    off_for: int = 0
    seen: int = 0
    runs: int = 0
    _cache: dict[tuple[int, int], float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.config.metric not in ("p99", "mean"):
            raise ValueError(f"metric must be p99 or mean, got {self.config.metric!r}")

    def _grid(self, x: float) -> int:
        return round(math.log(max(x, 1e-12)) / math.log1p(GRID))

    def scenario(self, multiplier: float, seconds: float) -> Scenario:
        """A fault-free scenario at ``multiplier`` x the topology's load."""
        return Scenario(duration=seconds, load=Load(multiplier=max(multiplier, 1e-6)))

    def twin(self, seconds: float) -> tuple[Topology, Scenario]:
        """The twin as followed now: scaled topology and a scenario at the current load."""
        return scaled_topology(self.topology, self.time_scale), self.scenario(
            self.load_multiplier, seconds
        )

    def predict(self, multiplier: float, scale: float) -> float | None:
        """Entry latency (the configured metric, seconds) at this load and scale."""
        key = (self._grid(multiplier), self._grid(scale))
        if key in self._cache:
            return self._cache[key]
        m, s = (1 + GRID) ** key[0], (1 + GRID) ** key[1]
        c = self.config
        sim = self.engine(
            scaled_topology(self.topology, s), self.scenario(m, c.warm_s + c.measure_s)
        )
        sim.step(c.warm_s)
        value = _entry_latency(sim.step(c.measure_s), c.metric)
        self.runs += 1
        self._cache[key] = value
        return value

    def update(self, time: float, rate_rps: float | None, observed: float | None) -> FollowStep:
        """One window: ``rate_rps`` arrivals per second at the entries and the ``observed``
        entry latency (the configured metric, seconds); either may be missing."""
        c = self.config
        nominal = entry_rate(self.topology)
        if rate_rps is not None and rate_rps > 0 and nominal > 0:
            self.load_multiplier = rate_rps / nominal
        predicted = self.predict(self.load_multiplier, self.time_scale)
        error: float | None = None
        if predicted is not None and observed is not None and observed > 0 and predicted > 0:
            error = 1.0 - accuracy(predicted, observed)
            ratio = observed / predicted
            lo, hi = c.scale_limits
            self.seen += 1
            # the first windows set the scale (a running mean of log-ratios), later ones
            # move it by alpha: a twin starts in step, then follows slowly
            a = max(c.alpha, 1.0 / self.seen)
            self.time_scale = min(max(self.time_scale * ratio**a, lo), hi)
        if error is not None and self.seen > c.k:
            self.off_for = self.off_for + 1 if error > c.bound else 0
        return FollowStep(
            time=time,
            load_multiplier=self.load_multiplier,
            time_scale=self.time_scale,
            predicted=predicted,
            observed=observed,
            error=error,
            following=self.off_for < c.k,
            off_for=self.off_for,
        )


def _entry_latency(s: Stretch, metric: str) -> float | None:
    """Arrival-weighted entry latency of a stretch (None when nothing succeeded)."""
    num = den = 0.0
    for e in s.entries.values():
        v = e.latency.p99 if metric == "p99" else e.latency.mean
        if v is not None and float(e.succeeded) > 0:
            num += float(v) * float(e.succeeded)
            den += float(e.succeeded)
    return num / den if den > 0 else None


__all__ = [
    "FollowConfig",
    "FollowStep",
    "Follower",
    "entry_rate",
    "fluid_engine",
    "scaled_topology",
]
