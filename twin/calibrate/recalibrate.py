"""Continuous recalibration: the twin follows production, window by window.

:func:`follow` reads a stream of observed :class:`~twin.calibrate.window.Window` documents and
yields, per window, the topology as re-estimated so far and the twin-vs-reality error of the
prediction made *before* the window was read (one step ahead). What drifts is re-estimated:

- the **arrival rate** (each entry's rate times one load factor) and the **class mix** of
  each entry (``WorkloadEntry.mix``, where the topology has classes and the window their
  shares): measured, not inferred, so each is a scalar Kalman filter whose measurement
  noise is the counting noise of the window's arrivals;
- the **service-time scale of every service** (log scale, one state vector): an extended
  Kalman filter whose measurements are the entry's P99 and P50 and, where the telemetry has
  them, each service's server-side P99 and its CPU per request;
- the **residual network and queueing time of every call edge** (seconds): the caller's
  median call time minus the callee's median serving time, a scalar Kalman filter per edge.

Why a Kalman filter on log parameters. Drift in production is a random walk (a deploy, a
noisy neighbour, a cache warming) seen through noisy minute figures; the Kalman filter is
the least-squares estimate of exactly that model, and its gain weighs each figure by how
noisy it has been and how uncertain the parameter is, which a moving average with one fixed
``alpha`` cannot: a fresh twin (large prior variance) takes its scales from the first
windows, a settled one moves by what the noise allows, and a service whose own P99 is
observed is pinned by it while one seen only through the entry shares the entry's error with
the others in proportion to its weight in the entry's latency (the Jacobian). A service's
own telemetry is read through a bias of its own, a slow state beside the scales (see
:meth:`Recalibrator._rows`). Log scale because scales are positive and latency noise is
multiplicative. Process noise is a per-window random walk
(:attr:`RecalibrateConfig.scale_q`); measurement noise is estimated from the data, per
figure, as the robust variance of its window-to-window changes (1.4826 MAD of first
differences over the last :attr:`RecalibrateConfig.noise_window` values, halved for the
difference of two noises), floored. A window far off (normalised innovation beyond
:attr:`RecalibrateConfig.huber`) is down-weighted (Huber), so a one-minute spike moves the
twin little while a lasting change is followed within a few windows. The alternative kept
for comparison, :class:`twin.calibrate.follow.Follower`, moves one global scale by a
geometric moving average of the entry's observed / predicted P99 (docs/follow.md compares
both on the same stream).

The twin has **stopped following** when, after its first ``k`` windows, its error stays beyond
``bound`` for ``k`` windows in a row, or a scale is pinned at its limit: production then does
something the re-estimated parameters cannot reproduce (a fault, a saturated queue the
topology lacks, a change of code) and the twin's predictions should not be trusted until it
follows again.

Cost: predictions come from the fluid engine (a dozen 5-second steps per run). It runs again
only when the state has moved by :attr:`RecalibrateConfig.relinearise` since its last run (in
between, that run's figures are moved along the Jacobian), and the Jacobian (one run per
service and one for the load) only after a move of :attr:`RecalibrateConfig.jacobian_refresh`:
on a day of one-minute Nezha windows, about 0.3 runs per window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import gammaincinv

from twin.bounds import MAX_CV_LOGNORMAL, MAX_RATE, MIN_CV
from twin.calibrate.accuracy import accuracy
from twin.calibrate.follow import Engine, fluid_engine
from twin.calibrate.window import Window
from twin.distributions import Constant, Empirical, LogNormal
from twin.results import Stretch
from twin.scenario import Scenario
from twin.topology import Link, Topology


@dataclass(frozen=True)
class RecalibrateConfig:
    """How the twin follows. Noise figures are standard deviations per window, in log units
    (0.05 = 5%) unless said."""

    bound: float = 0.5
    """Largest error (1 - accuracy of the entry P99) still counted as in step."""
    k: int = 5
    """Windows beyond ``bound`` in a row before the twin is said not to follow (and windows of
    warm-up before the rule applies)."""
    scale_q: float = 0.03
    """Random-walk step of a log service-time scale per window (process noise)."""
    load_q: float = 0.3
    """Random-walk step of the log arrival rate per window: arrivals move fast and are
    measured, so the filter trusts the window."""
    mix_q: float = 0.05
    """Random-walk step of a class share per window (absolute)."""
    net_q: float = 0.1
    """Random-walk step of an edge's network time per window, relative (at least 0.1 ms)."""
    initial_sd: float = 1.0
    """Prior spread of a log scale: a factor e either way, so the first windows set it."""
    noise_floor: float = 0.05
    """Least measurement noise of a latency figure (log): none is trusted beyond 5%."""
    noise_default: float = 0.3
    """Measurement noise of a figure before it has 5 values to estimate its own."""
    noise_window: int = 30
    """Values of a figure its measurement noise is estimated over."""
    huber: float = 2.5
    """Normalised innovations beyond this are down-weighted (Huber's threshold)."""
    jacobian_step: float = 0.2
    """Log step of the finite differences of the Jacobian."""
    relinearise: float = 0.25
    """Log move of the load or a scale (or total move of the edges' network seconds, over the
    entry median) before the engine is run again at the current state; in between, the
    twin's figures are the last run's moved along the Jacobian."""
    jacobian_refresh: float = 1.0
    """Log move since the last Jacobian before it is recomputed (one run per service)."""
    moment_match: bool = True
    """Give the engine each empirical service time as a lognormal of the same mean and
    variance: the fluid engine reads a distribution's mean and cv, and an empirical one has no
    cv there (its spread would be lost). The followed topology keeps the empirical ones."""
    bias_sd: float = 0.1
    """Spread of a service figure's bias when it is first taken (log; see
    :meth:`Recalibrator._rows`): one window's gap, so about one window's noise."""
    bias_q: float = 0.005
    """Random-walk step of a bias per window: a tenth of a scale's, so a lasting change in a
    service is read as its service time moving, not its telemetry."""
    scale_limits: tuple[float, float] = (0.01, 100.0)
    warm_s: float = 30.0
    """Seconds each prediction runs before it is read (the fluid queues settle in a few
    steps below saturation)."""
    measure_s: float = 30.0
    """Seconds each prediction is read over."""


@dataclass(frozen=True)
class FollowError:
    """The twin-vs-reality error of one window, from the prediction made before it was read.

    ``value`` is the headline: 1 - accuracy (:func:`twin.calibrate.accuracy.accuracy`) of the
    entry P99; ``p50`` the same for the median; ``success_pp`` the success gap in percentage
    points. Each is ``None`` when the window or the twin has no such figure (never ``nan``).
    ``skipped``: windows skipped so far, this one included when it was (``reason`` says why).
    ``following``: the twin is in step (see :mod:`twin.calibrate.recalibrate`)."""

    time: float
    value: float | None
    p50: float | None
    success_pp: float | None
    predicted_p99: float | None
    observed_p99: float | None
    predicted_p50: float | None
    following: bool
    off_for: int
    skipped: int
    reason: str = ""


@dataclass(frozen=True)
class Prediction:
    """What the twin predicts for a window: entry P99, P50, success, per-service P99."""

    p99: float | None
    p50: float | None
    success: float | None
    services: dict[str, float]


def gamma_median(mean: float, p99: float) -> float | None:
    """The median of the gamma distribution with this mean and 99th percentile: the fluid
    engine models a latency by its mean and variance as a gamma, so this is its P50."""
    if not (mean > 0 and p99 > mean):
        return None
    ratio = p99 / mean

    def f(log_k: float) -> float:
        k = math.exp(log_k)
        return float(gammaincinv(k, 0.99)) / k - ratio

    # P99 / mean of a gamma rises as its shape falls to about 0.0158 (a ratio of about
    # 28.3), then falls again: the ratio is one-to-one on shapes above that
    lo, hi = math.log(0.0158), math.log(1e6)
    if f(lo) < 0 or f(hi) > 0:
        return None
    k = math.exp(brentq(f, lo, hi, xtol=1e-6))
    return mean * float(gammaincinv(k, 0.5)) / k


def read_prediction(s: Stretch) -> Prediction:
    """Entry figures weighted by each entry's successes (its arrivals for success)."""
    n99 = n50 = w99 = w50 = ok = arrivals = 0.0
    for e in s.entries.values():
        succ, arr = float(e.succeeded), float(e.arrivals)
        ok += succ
        arrivals += arr
        lat = e.latency
        if succ <= 0 or lat.p99 is None:
            continue
        n99, w99 = n99 + float(lat.p99) * succ, w99 + succ
        p50 = float(lat.p50) if lat.p50 is not None else None
        if p50 is None and lat.mean is not None:
            p50 = gamma_median(float(lat.mean), float(lat.p99))
        if p50 is not None:
            n50, w50 = n50 + p50 * succ, w50 + succ
    services = {
        name: float(v.latency.p99)
        for name, v in s.services.items()
        if v.latency.p99 is not None and float(v.latency.p99) > 0
    }
    return Prediction(
        p99=n99 / w99 if w99 > 0 else None,
        p50=n50 / w50 if w50 > 0 else None,
        success=ok / arrivals if arrivals > 0 else None,
        services=services,
    )


def empirical_cv(d: Empirical) -> float:
    """Coefficient of variation of an empirical distribution (its samples, or its quantile
    function interpolated linearly, integrated exactly)."""
    if d.samples is not None:
        x = np.asarray(d.samples, dtype=float)
        m, sd = float(x.mean()), float(x.std())
    else:
        assert d.quantiles is not None
        ps = np.array(sorted(d.quantiles))
        vs = np.array([d.quantiles[p] for p in ps])
        h, a, b = np.diff(ps), vs[:-1], vs[1:]
        m = float(np.sum(h * (a + b) / 2))
        sd = math.sqrt(max(float(np.sum(h * (a * a + a * b + b * b) / 3)) - m * m, 0.0))
    return sd / m if m > 0 else 0.0


def moment_matched(topology: Topology) -> Topology:
    """The topology with every empirical service time replaced by the lognormal of its mean
    and variance (what an engine that reads only the two moments should be given)."""
    services = {}
    for name, svc in topology.services.items():
        ops = {}
        for o, op in svc.operations.items():
            d = op.service_time
            if isinstance(d, Empirical) and d.expected() > 0:
                cv = min(max(empirical_cv(d), MIN_CV), MAX_CV_LOGNORMAL)
                op = op.model_copy(update={"service_time": LogNormal(mean=d.expected(), cv=cv)})
            ops[o] = op
        services[name] = svc.model_copy(update={"operations": ops})
    return topology.model_copy(update={"services": services})


def _edge_seconds(topology: Topology) -> dict[str, float]:
    """Mean network seconds of each call edge as calibrated: over its calls, each its own
    latency or else its link's."""
    seen: dict[str, list[float]] = {}
    for name, svc in topology.services.items():
        for op in svc.operations.values():
            for c in op.calls:
                callee = topology.resolve(c.to)[0]
                lat = c.latency or topology.link(name, callee).latency
                seen.setdefault(f"{name}->{callee}", []).append(lat.expected() if lat else 0.0)
    return {e: float(np.mean(v)) for e, v in seen.items()}


def _edges(topology: Topology) -> list[str]:
    out = set()
    for name, svc in topology.services.items():
        for op in svc.operations.values():
            for c in op.calls:
                out.add(f"{name}->{topology.resolve(c.to)[0]}")
    return sorted(out)


class _Noise:
    """A figure's measurement variance, from its own window-to-window changes."""

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def add(self, x: float) -> None:
        self.values.append(x)

    def var(self, default: float, floor: float) -> float:
        if len(self.values) < 5:
            return default**2
        d = np.diff(np.asarray(self.values))
        mad = 1.4826 * float(np.median(np.abs(d - np.median(d))))
        return max(mad**2 / 2.0, floor**2)


class Recalibrator:
    """Keeps one twin in step with production; :meth:`update` once per window."""

    def __init__(
        self,
        topology: Topology,
        config: RecalibrateConfig | None = None,
        engine: Engine = fluid_engine,
    ) -> None:
        self.base = topology
        self.config = c = config or RecalibrateConfig()
        self.engine = engine
        self.services = sorted(topology.services)
        n = len(self.services)
        self.index = {s: i for i, s in enumerate(self.services)}
        self.theta = np.zeros(n)
        self.cov = np.eye(n) * c.initial_sd**2
        self.load, self.load_var = 0.0, c.initial_sd**2
        self.nominal = sum(w.rate for w in topology.workload)
        self.edges = _edges(topology)
        self.net: dict[str, float] = {}  # only edges observed; the rest keep their calibration
        self.net_var: dict[str, float] = {}
        self.edge_base = _edge_seconds(topology)
        self.mix = {w.service: dict(w.mix) for w in topology.workload if w.mix}
        self.mix_var = {s: dict.fromkeys(m, c.mix_q**2) for s, m in self.mix.items()}
        self.noise: dict[str, _Noise] = {}
        self.bias: dict[str, int] = {}  # a service figure -> its bias's place in the state
        self.b = np.zeros(0)
        self.unknown: set[str] = set()
        self.windows = self.used = self.skipped = self.off_for = self.runs = 0
        self._anchor: _Anchor | None = None
        self.topology = topology
        self.engine_base = moment_matched(topology) if c.moment_match else topology

    # -- the twin at a state -------------------------------------------------------------

    def scales(self) -> dict[str, float]:
        """Service-time scale per service (x the calibrated times)."""
        return {s: math.exp(float(self.theta[i])) for s, i in self.index.items()}

    def load_multiplier(self) -> float:
        """Arrivals now over the topology's."""
        return math.exp(self.load)

    def topology_at(
        self,
        theta: np.ndarray,
        load: float,
        net: dict[str, float],
        mix: dict[str, dict[str, float]],
        engine_view: bool = False,
    ) -> Topology:
        """The calibrated topology with these parameters in place: service times scaled,
        entry rates times the load, the observed edges' network times (their link's latency,
        and the calls' own latencies on them, scaled to the edge's estimate; a constant where
        the calibration had none) and the entries' class mixes. ``engine_view``: as the engine
        is given it (:attr:`RecalibrateConfig.moment_match`)."""
        t = self.engine_base if engine_view else self.base
        factor: dict[str, float | None] = {}  # edge -> times its calibrated network seconds
        for edge, seconds in net.items():
            base = self.edge_base.get(edge, 0.0)
            factor[edge] = seconds / base if base > 0 else None
        services = {}
        for name, svc in t.services.items():
            k = math.exp(float(theta[self.index[name]]))
            ops = {}
            for o, op in svc.operations.items():
                update: dict[str, object] = {}
                if k != 1.0:
                    update["service_time"] = op.service_time.scaled(k)
                calls = list(op.calls)
                for j, call in enumerate(calls):
                    edge = f"{name}->{t.resolve(call.to)[0]}"
                    if call.latency is None or edge not in net:
                        continue
                    f = factor[edge]
                    lat = call.latency.scaled(f) if f is not None else Constant(mean=net[edge])
                    calls[j] = call.model_copy(update={"latency": lat})
                if calls != list(op.calls):
                    update["calls"] = calls
                ops[o] = op.model_copy(update=update) if update else op
            services[name] = svc.model_copy(update={"operations": ops})
        m = math.exp(load)
        workload = []
        for w in t.workload:
            entry: dict[str, object] = {"rate": min(max(w.rate * m, 1e-9), MAX_RATE)}
            if w.service in mix and w.mix:
                entry["mix"] = dict(mix[w.service])
            workload.append(w.model_copy(update=entry))
        links = dict(t.network.links)
        for edge, seconds in net.items():
            a, _, b = edge.partition("->")
            old = t.link(a, b)
            f = factor[edge]
            was = old.latency
            new = was.scaled(f) if was is not None and f is not None else Constant(mean=seconds)
            links[edge] = Link(latency=new, loss=old.loss)
        network = t.network.model_copy(update={"links": links})
        return t.model_copy(update={"services": services, "workload": workload, "network": network})

    def run(self, theta: np.ndarray, load: float) -> Prediction:
        """The twin's figures at these scales and load (the current network and mix): one
        engine run of ``warm_s`` + ``measure_s`` seconds."""
        topo = self.topology_at(theta, load, self.net, self.mix, engine_view=True)
        c = self.config
        sim = self.engine(topo, Scenario(duration=c.warm_s + c.measure_s))
        sim.step(c.warm_s)
        pred = read_prediction(sim.step(c.measure_s))
        self.runs += 1
        return pred

    def _moved(self, a: _Anchor | None, jac: bool = False) -> float:
        """How far the state is from an anchor (its Jacobian's state with ``jac``): the
        largest log move of the load or a scale, or the total move of the edges' network
        seconds over the anchor's entry median."""
        if a is None:
            return math.inf
        theta, load, net = (a.jac_theta, a.jac_load, a.jac_net) if jac else (a.theta, a.load, a.net)
        moved = max(float(np.max(np.abs(self.theta - theta), initial=0.0)), abs(self.load - load))
        if not jac and self.net:
            dnet = sum(abs(v - net.get(e, v)) for e, v in self.net.items())
            p50 = a.pred.p50 or a.pred.p99
            moved = max(moved, dnet / p50 if p50 else 0.0)
        if not jac:  # the share of arrivals that changed class
            for svc, shares in self.mix.items():
                old = a.mix.get(svc, {})
                moved = max(moved, sum(abs(v - old.get(o, v)) for o, v in shares.items()))
        return moved

    def predict(self) -> tuple[Prediction, dict[str, float], dict[str, np.ndarray]]:
        """The twin's figures now (log values by figure) and their Jacobian in the log scales
        (the load's column last). The engine runs again only when the state has moved by
        ``relinearise`` since its last run; in between the last run's figures are moved along
        the Jacobian (first order), which covers the minute-to-minute wobble of the load and
        the scales at no engine cost."""
        c = self.config
        a = self._anchor
        if a is None or self._moved(a) >= c.relinearise:
            pred = self.run(self.theta, self.load)
            if a is None or self._moved(a, jac=True) >= c.jacobian_refresh:
                jac = self._jacobian(pred)
                jt, jl, jn = self.theta.copy(), self.load, dict(self.net)
            else:
                jac, jt, jl, jn = a.jac, a.jac_theta, a.jac_load, a.jac_net
            a = self._anchor = _Anchor(
                self.theta.copy(),
                self.load,
                dict(self.net),
                {k: dict(v) for k, v in self.mix.items()},
                pred,
                _figures(pred),
                jac,
                jt,
                jl,
                jn,
            )
        d = np.append(self.theta - a.theta, self.load - a.load)
        now = {k: v + float(a.jac[k] @ d) if k in a.jac else v for k, v in a.figures.items()}
        return a.pred, now, {k: v[:-1] for k, v in a.jac.items()}

    def _jacobian(self, pred: Prediction) -> dict[str, np.ndarray]:
        """d log(figure) / d log(scale) per predicted figure, and d log(figure) / d log(load)
        last, by forward finite differences (one engine run per column)."""
        c = self.config
        figs = _figures(pred)
        n = len(self.services)
        jac = {k: np.zeros(n + 1) for k in figs}
        for i in range(n + 1):
            th, load = self.theta.copy(), self.load
            if i < n:
                th[i] += c.jacobian_step
            else:
                load += c.jacobian_step
            up = _figures(self.run(th, load))
            for k, v in figs.items():
                if k in up:
                    jac[k][i] = (up[k] - v) / c.jacobian_step
        return jac

    # -- one window ------------------------------------------------------------------------

    def _var(self, key: str, x: float) -> float:
        c = self.config
        noise = self.noise.setdefault(key, _Noise(c.noise_window))
        noise.add(x)
        return noise.var(c.noise_default, c.noise_floor)

    def _update_load(self, w: Window) -> None:
        if w.rate is None or w.rate <= 0 or self.nominal <= 0:
            return
        c = self.config
        y = math.log(w.rate / self.nominal)
        r = 1.0 / max(w.rate * w.seconds, 1.0)  # Poisson counting noise of log(rate)
        p = self.load_var + c.load_q**2
        k = p / (p + r)
        self.load += k * (y - self.load)
        self.load_var = (1 - k) * p

    def _update_mix(self, w: Window) -> None:
        """Each class share a scalar Kalman filter (random walk ``mix_q``), its measurement
        noise the binomial counting noise of the window's arrivals; then renormalised.
        Classes the topology lacks are counted in :attr:`unknown`."""
        c = self.config
        arrivals = max((w.rate or self.nominal * math.exp(self.load)) * w.seconds, 1.0)
        for svc, observed in w.mix.items():
            shares = self.mix.get(svc)
            if shares is None:
                self.unknown.add(svc)
                continue
            for op in observed:
                if op not in shares:
                    self.unknown.add(f"{svc}:{op}")
            total = sum(v for o, v in observed.items() if o in shares)
            if total <= 0:
                continue
            n = arrivals * len(self.mix) / max(len(self.base.workload), 1)
            for op, x in shares.items():
                y = observed.get(op, 0.0) / total
                r = max(y * (1 - y), 1.0 / n) / n
                p = self.mix_var[svc][op] + c.mix_q**2
                k = p / (p + r)
                shares[op] = min(max(x + k * (y - x), 0.0), 1.0)
                self.mix_var[svc][op] = (1 - k) * p
            s = sum(shares.values())
            if s > 0:
                for op in shares:
                    shares[op] /= s

    def _update_net(self, w: Window) -> None:
        c = self.config
        for edge, fig in w.edges.items():
            if edge not in self.edges or fig.client_p50 is None or fig.server_p50 is None:
                continue
            y = max(fig.client_p50 - fig.server_p50, 0.0)
            noise = self.noise.setdefault("net:" + edge, _Noise(c.noise_window))
            noise.add(y)
            r = noise.var(max(y, 1e-3), 1e-4)
            if edge not in self.net:
                self.net[edge], self.net_var[edge] = y, r
                continue
            x = self.net[edge]
            p = self.net_var[edge] + (c.net_q * max(x, 1e-4)) ** 2
            k = p / (p + r)
            self.net[edge] = max(x + k * (y - x), 0.0)
            self.net_var[edge] = (1 - k) * p

    def _rows(
        self, w: Window, figs: dict[str, float], jac: dict[str, np.ndarray]
    ) -> tuple[list[float], list[np.ndarray], list[float]]:
        """Innovations, Jacobian rows and measurement variances of the window's figures.

        The entry's P50 and P99 are what the twin must match, so they are read as they are.
        A service's own figures (its server P99 as the telemetry measures it, its CPU per
        request) are not defined as the twin's are (a pod's latency seen by a mesh, CPU in
        the limit's share), so each carries a bias of its own, a state of the filter beside the
        scales (started at the figure's first gap, with spread ``bias_sd``, drifting ten times
        slower than a scale).
        The entry pins where the whole twin stands; a service's figure then says how that
        service moved. Where the twin is right the biases stay at 0."""
        nu: list[float] = []
        rows: list[np.ndarray] = []
        var: list[float] = []
        n = len(self.services)
        found: list[tuple[str, float, float, np.ndarray]] = []  # key, observed, predicted, row
        for key in ("entry:p99", "entry:p50"):
            y = w.p99 if key == "entry:p99" else w.p50
            if y is not None and y > 0 and key in figs and key in jac:
                found.append((key, math.log(y), figs[key], jac[key]))
        for name, f in w.services.items():
            i = self.index.get(name)
            if i is None:
                self.unknown.add(name)
                continue
            key = f"svc:{name}"
            if f.latency_p99 is not None and f.latency_p99 > 0 and key in figs and key in jac:
                found.append((key, math.log(f.latency_p99), figs[key], jac[key]))
            if f.cpu is not None and f.cpu > 0 and f.rate is not None and f.rate > 0:
                row = np.zeros(n)
                row[i] = 1.0  # utilisation law: demand = U / X moves with the scale
                found.append((f"cpu:{name}", math.log(f.cpu / f.rate), float(self.theta[i]), row))
        for key, y, h, row in found:
            if not key.startswith("entry:") and key not in self.bias:
                self._add_bias(key, y - h)
            full = np.zeros(n + len(self.b))
            full[:n] = row
            if key in self.bias:
                j = self.bias[key]
                full[n + j] = 1.0
                h += float(self.b[j])
            var.append(self._var(key, y))
            nu.append(y - h)
            rows.append(full)
        if rows:  # rows made before a bias was added are shorter
            size = n + len(self.b)
            rows = [np.pad(r, (0, size - len(r))) for r in rows]
        return nu, rows, var

    def _add_bias(self, key: str, gap: float) -> None:
        """A new service figure: its bias joins the state at its first gap (the twin taken
        as right where a figure is first seen), with the prior spread."""
        c = self.config
        self.bias[key] = len(self.b)
        self.b = np.append(self.b, gap)
        size = len(self.cov)
        cov = np.zeros((size + 1, size + 1))
        cov[:size, :size] = self.cov
        cov[size, size] = c.bias_sd**2
        self.cov = cov

    def _update_scales(self, nu: list[float], rows: list[np.ndarray], var: list[float]) -> None:
        if not nu:
            return
        c = self.config
        h = np.vstack(rows)
        v = np.asarray(nu)
        r = np.asarray(var)
        p = self.cov
        n = len(self.services)
        s_diag = np.einsum("ij,jk,ik->i", h, p, h) + r
        z = np.abs(v) / np.sqrt(s_diag)
        r = np.where(z > c.huber, r * z / c.huber, r)  # Huber: far-off figures weigh less
        s = h @ p @ h.T + np.diag(r)
        gain = np.linalg.solve(s, h @ p).T
        x = np.concatenate([self.theta, self.b]) + gain @ v
        self.theta, self.b = x[:n], x[n:]
        ikh = np.eye(len(x)) - gain @ h
        self.cov = ikh @ p @ ikh.T + gain @ np.diag(r) @ gain.T  # Joseph form: stays PSD
        lo, hi = (math.log(x) for x in c.scale_limits)
        self.theta = np.clip(self.theta, lo, hi)

    def update(self, w: Window) -> tuple[Topology, FollowError]:
        """Read one window: score the twin's prediction for it, then re-estimate."""
        c = self.config
        self.windows += 1
        if w.p99 is None or w.p99 <= 0:
            self.skipped += 1
            return self.topology, FollowError(
                time=w.time,
                value=None,
                p50=None,
                success_pp=None,
                predicted_p99=None,
                observed_p99=None,
                predicted_p50=None,
                following=self._following(),
                off_for=self.off_for,
                skipped=self.skipped,
                reason="skipped: no entry P99",
            )
        self._update_load(w)
        self._update_mix(w)
        q = np.concatenate(
            [np.full(len(self.services), c.scale_q**2), np.full(len(self.b), c.bias_q**2)]
        )
        self.cov = self.cov + np.diag(q)
        pred, figs, jac = self.predict()
        p99_now = math.exp(figs["entry:p99"]) if "entry:p99" in figs else None
        p50_now = math.exp(figs["entry:p50"]) if "entry:p50" in figs else None
        value = 1 - accuracy(p99_now, w.p99) if p99_now is not None else None
        p50 = (
            1 - accuracy(p50_now, w.p50)
            if p50_now is not None and w.p50 is not None and w.p50 > 0
            else None
        )
        success_pp = (
            100 * abs(pred.success - w.success)
            if pred.success is not None and w.success is not None
            else None
        )
        self._update_scales(*self._rows(w, figs, jac))
        self._update_net(w)
        self.used += 1
        if self.used > c.k:
            self.off_for = self.off_for + 1 if value is None or value > c.bound else 0
        self.topology = self.topology_at(self.theta, self.load, self.net, self.mix)
        following = self._following()
        return self.topology, FollowError(
            time=w.time,
            value=value,
            p50=p50,
            success_pp=success_pp,
            predicted_p99=p99_now,
            observed_p99=w.p99,
            predicted_p50=p50_now,
            following=following,
            off_for=self.off_for,
            skipped=self.skipped,
            reason="" if following else self._why(),
        )

    def _pinned(self) -> list[str]:
        lo, hi = (math.log(x) for x in self.config.scale_limits)
        return [s for s, i in self.index.items() if not lo < self.theta[i] < hi]

    def _following(self) -> bool:
        return self.off_for < self.config.k and not self._pinned()

    def _why(self) -> str:
        pinned = self._pinned()
        if pinned:
            return "scale at its limit: " + ", ".join(pinned)
        return f"error beyond {self.config.bound:g} for {self.off_for} windows"


def _figures(p: Prediction) -> dict[str, float]:
    """The prediction's figures as logs (the filter's measurement space)."""
    out = {f"svc:{s}": math.log(v) for s, v in p.services.items()}
    if p.p99 is not None and p.p99 > 0:
        out["entry:p99"] = math.log(p.p99)
    if p.p50 is not None and p.p50 > 0:
        out["entry:p50"] = math.log(p.p50)
    return out


@dataclass(frozen=True)
class _Anchor:
    """The last engine run: where, what it predicted, and the Jacobian in use (and where it
    was taken)."""

    theta: np.ndarray
    load: float
    net: dict[str, float]
    mix: dict[str, dict[str, float]]
    pred: Prediction
    figures: dict[str, float]
    jac: dict[str, np.ndarray]
    jac_theta: np.ndarray
    jac_load: float
    jac_net: dict[str, float]


def follow(
    topology: Topology,
    windows: Iterable[Window],
    config: RecalibrateConfig | None = None,
    engine: Engine = fluid_engine,
) -> Iterator[tuple[Topology, FollowError]]:
    """Per window, the topology re-estimated with it and the error of the twin's prediction
    for it (made before it was read). Lazy: a live stream is followed as it comes."""
    r = Recalibrator(topology, config, engine)
    for w in windows:
        yield r.update(w)


__all__ = [
    "FollowError",
    "Prediction",
    "RecalibrateConfig",
    "Recalibrator",
    "follow",
    "gamma_median",
    "read_prediction",
]
