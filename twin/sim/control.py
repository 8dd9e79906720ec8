"""What changes the system while it runs: fault windows, the autoscaler, failover.

Each fault kind's class (:mod:`twin.faults`) says what it does through the narrow
:class:`twin.faults.RequestEngine` interface, which :class:`FaultController` implements on
the running simulation: whenever a fault window opens or closes, the state of services,
hosts and edges is reset and every open window composes its share again, so overlapping
faults compose (factors multiply, probabilities combine as independent events, the tightest
bandwidth wins, each cause of a replica being down is counted).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.distributions import Exponential
from twin.faults import FaultWindow
from twin.faults.memory_leak import gc_slowdown_factor
from twin.mitigations import desired_replicas
from twin.policy import Autoscale, Failover
from twin.rng import generator
from twin.sim.events import NORMAL, Wake
from twin.sim.service import Replica, Service
from twin.sim.workload import Source
from twin.stats import either

if TYPE_CHECKING:
    from twin.sim.engine import Context, Simulation


@dataclass(frozen=True)
class LeakConfig:
    """A memory leak's parameters (MB, MB/s, seconds)."""

    growth_mb_per_s: float
    limit_mb: float
    baseline_mb: float
    restart_time: float
    gc_slowdown: float


class LeakState:
    """Memory of one replica under a leak; the GC slowdown grows with the square of use."""

    __slots__ = ("cfg", "since")

    def __init__(self, cfg: LeakConfig, since: float) -> None:
        self.cfg = cfg
        self.since = since

    def used(self, now: float) -> float:
        return self.cfg.baseline_mb + self.cfg.growth_mb_per_s * (now - self.since)

    def slowdown(self, now: float) -> float:
        return gc_slowdown_factor(self.used(now), self.cfg.limit_mb, self.cfg.gc_slowdown)

    def oom_in(self, now: float) -> float:
        return max(0.0, (self.cfg.limit_mb - self.used(now)) / self.cfg.growth_mb_per_s)


class FaultController:
    """Opens and closes fault windows on the running simulation (the faults' engine)."""

    def __init__(self, sim: Simulation, windows: list[FaultWindow]) -> None:
        self.sim = sim
        self.ctx: Context = sim.ctx
        self.active: list[tuple[FaultWindow, Any]] = []
        self.down: dict[tuple[str, int], int] = {}  # (service, replica) -> reasons to be down
        self.log: list[dict[str, Any]] = []
        self._detect: dict[str, list[float]] = {}  # service -> detection of each corruption
        self._stolen: dict[str, int] = {}  # host -> cores contention takes
        for n, w in enumerate(windows):
            self.ctx.schedule(Wake(self._open, (n, w)), NORMAL, w.start)

    # -- window life cycle --------------------------------------------------------------------

    def _open(self, wake: Wake) -> None:
        n, w = wake.payload
        now = self.ctx.env.now
        handle = w.fault.open(self, w.index, n)
        self.active.append((w, handle))
        self.log.append(
            {
                "fault": w.index,
                "kind": w.fault.name,
                "target": w.fault.target,
                "start": now,
                "end": w.end,
            }
        )
        self._recompute()
        self.ctx.schedule(Wake(self._close, (w, handle)), NORMAL, w.end - now)

    def _close(self, wake: Wake) -> None:
        w, handle = wake.payload
        self.active = [(a, h) for a, h in self.active if a is not w]
        w.fault.close(self, handle)
        self._recompute()

    # -- what faults may do (twin.faults.RequestEngine) ----------------------------------------

    def _services(self, target: str) -> list[Service]:
        sim = self.sim
        if target.startswith("host:"):
            name = target[5:]
            return [s for s in sim.services.values() if s.host is not None and s.host.name == name]
        if target.startswith("zone:"):
            zone = target[5:]
            return [s for s in sim.services.values() if sim.zone_of(s.name) == zone]
        return [sim.services[target]]

    def stream(self, name: str) -> np.random.Generator:
        return generator(self.sim.scenario.seed, name)

    def take_down(self, target: str, replicas: int | None) -> Any:
        chosen: list[tuple[Service, Replica]] = []
        for svc in self._services(target):
            # down or not already: each cause of down-ness is counted, so overlapping
            # outages (and OOM kills) compose and the replica returns when the last ends
            reps = [r for r in svc.replicas if not r.draining and not r.booting]
            k = len(reps) if replicas is None else min(replicas, len(reps))
            chosen += [(svc, r) for r in reps[:k]]
        for svc, rep in chosen:
            self._down(svc, rep)
        return chosen

    def bring_up(self, handle: Any) -> None:
        for svc, rep in handle:
            self._up(svc, rep)

    def start_leak(
        self,
        service: str,
        growth_mb_per_s: float,
        limit_mb: float,
        baseline_mb: float,
        restart_time: float,
        gc_slowdown: float,
    ) -> Any:
        cfg = LeakConfig(growth_mb_per_s, limit_mb, baseline_mb, restart_time, gc_slowdown)
        svc = self.sim.services[service]
        now = self.ctx.env.now
        handle = {"generation": 0, "service": svc}
        for rep in svc.replicas:
            rep.leak = LeakState(cfg, now)
            self._schedule_oom(svc, rep, handle)
        return handle

    def stop_leak(self, handle: Any) -> None:
        handle["generation"] += 1
        for rep in handle["service"].replicas:
            rep.leak = None

    def start_traffic(
        self, entry: str, rate: float, cost: float, attack: bool, rng: np.random.Generator
    ) -> Any:
        src = Source(
            self.ctx,
            self.sim.entry_for(entry),
            rate,
            Exponential(mean=1.0).sampler(rng),
            klass=1 if attack else 0,
            cost=cost,
        )
        src.start()
        return src

    def stop_traffic(self, handle: Any) -> None:
        handle.stop()

    def slow(self, target: str, factor: float) -> None:
        if target.startswith("host:"):
            self.sim.hosts[target[5:]].slow *= factor
        else:
            for svc in self._services(target):
                svc.slow *= factor

    def delay(self, target: str, draw: Callable[[], float]) -> None:
        if "->" in target:
            self.sim.clients[target].delays.append(draw)
        else:
            self.sim.services[target].delays.append(draw)

    def add_errors(self, service: str, probability: float) -> None:
        svc = self.sim.services[service]
        svc.error_p = either(svc.error_p, probability)

    def lose(self, target: str, probability: float) -> None:
        sim = self.sim
        edges = (
            [sim.clients[target]]
            if "->" in target
            else [c for c in sim.clients.values() if c.callee.name == target]
        )
        for c in edges:
            c.loss = either(c.loss, probability)

    def cap_bandwidth(self, edge: str, bytes_per_second: float) -> None:
        c = self.sim.clients[edge]
        c.bandwidth = (
            bytes_per_second if c.bandwidth is None else min(c.bandwidth, bytes_per_second)
        )

    def hold_workers(self, service: str, fraction: float) -> None:
        svc = self.sim.services[service]
        svc.pool_fraction = max(svc.pool_fraction, fraction)

    def corrupt(self, service: str, probability: float, detection: float) -> None:
        svc = self.sim.services[service]
        svc.corrupt_p = either(svc.corrupt_p, probability)
        self._detect.setdefault(service, []).append(detection)

    def slow_disk(self, target: str, factor: float) -> None:
        if target.startswith("host:"):
            self.sim.hosts[target[5:]].disk_slow *= factor
        else:
            for svc in self._services(target):
                svc.disk_slow *= factor

    def steal_quota(self, service: str, share: float) -> None:
        self.sim.services[service].quota_keep *= 1.0 - share

    def steal_cores(self, target: str, cores: int) -> None:
        if target.startswith("host:"):
            host = self.sim.hosts[target[5:]]
        else:
            placed = self.sim.services[target].host
            assert placed is not None, "the scenario check refuses cores on a service off hosts"
            host = placed
        self._stolen[host.name] = self._stolen.get(host.name, 0) + cores

    def _down(self, svc: Service, rep: Replica) -> None:
        key = (svc.name, rep.index)
        self.down[key] = self.down.get(key, 0) + 1
        if self.down[key] == 1:
            svc.kill(rep)

    def _up(self, svc: Service, rep: Replica) -> None:
        key = (svc.name, rep.index)
        self.down[key] = self.down.get(key, 1) - 1
        if self.down[key] <= 0:
            del self.down[key]
            svc.revive(rep)

    def _schedule_oom(self, svc: Service, rep: Replica, handle: dict[str, Any]) -> None:
        leak = rep.leak
        if leak is None:
            return
        at = leak.oom_in(self.ctx.env.now)
        self.ctx.schedule(Wake(self._oom, (svc, rep, handle, handle["generation"])), NORMAL, at)

    def _oom(self, wake: Wake) -> None:
        svc, rep, handle, gen = wake.payload
        if gen != handle["generation"] or rep.leak is None:
            return
        cfg = rep.leak.cfg
        self.log.append(
            {
                "kind": "oom_kill",
                "target": f"{svc.name}#{rep.index}",
                "start": self.ctx.env.now,
                "end": self.ctx.env.now + cfg.restart_time,
            }
        )
        self._down(svc, rep)
        self.ctx.schedule(Wake(self._restarted, (svc, rep, handle, gen)), NORMAL, cfg.restart_time)

    def _restarted(self, wake: Wake) -> None:
        svc, rep, handle, gen = wake.payload
        self._up(svc, rep)
        if gen == handle["generation"] and rep.leak is not None:
            rep.leak = LeakState(rep.leak.cfg, self.ctx.env.now)
            self._schedule_oom(svc, rep, handle)

    # -- aggregate state ----------------------------------------------------------------------

    def _recompute(self) -> None:
        sim = self.sim
        old_pool = {name: svc.pool_fraction for name, svc in sim.services.items()}
        for svc in sim.services.values():
            svc.slow = 1.0
            svc.delays = []
            svc.error_p = 0.0
            svc.corrupt_p = 0.0
            svc.corrupt_detect = 0.0
            svc.pool_fraction = 0.0
            svc.disk_slow = 1.0
        for host in sim.hosts.values():
            host.slow = 1.0
            host.disk_slow = 1.0
        for client in sim.clients.values():
            client.loss = client.base_loss
            client.delays = []
            client.bandwidth = None
        self._detect = {}
        self._stolen = {}
        for svc in sim.services.values():
            svc.quota_keep = 1.0
        for w, handle in self.active:
            w.fault.compose(self, handle)
        for name, ds in self._detect.items():
            sim.services[name].corrupt_detect = sum(ds) / len(ds)
        for name, svc in sim.services.items():
            if svc.pool_fraction != old_pool[name]:
                svc.set_eff_workers()
        for name, host in sim.hosts.items():
            if self._stolen.get(name, 0) != host.stolen:
                host.steal(self._stolen.get(name, 0))


class Autoscaler:
    """The HPA loop for one service: every period, utilisation -> desired replicas."""

    def __init__(self, ctx: Context, svc: Service, cfg: Autoscale) -> None:
        self.ctx = ctx
        self.svc = svc
        self.cfg = cfg
        self.last_change = -math.inf
        self.prev_busy = 0.0
        self.prev_cap = 0.0
        self.active = True
        self.decisions: list[tuple[float, int]] = []
        ctx.schedule(Wake(self._tick), NORMAL, cfg.period)

    def stop(self) -> None:
        self.active = False

    def _tick(self, wake: Wake) -> None:
        if not self.active:
            return
        svc = self.svc
        now = self.ctx.env.now
        busy_area, cap_area, _ = svc.areas(now)
        busy = busy_area - self.prev_busy
        cap = cap_area - self.prev_cap
        self.prev_busy, self.prev_cap = busy_area, cap_area
        svc.purge_drained()
        ready = [r for r in svc.replicas if r.up and not r.draining]
        booting = [r for r in svc.replicas if not r.up and r.booting]
        current = len(ready) + len(booting)
        util = busy / cap if cap > 0 else (1.0 if svc.routable == [] else 0.0)
        want = desired_replicas(self.cfg, max(1, len(ready)), util)
        if want > current:
            add = min(want - current, max(4, current))  # HPA: +max(4 pods, 100%) per period
            for _ in range(add):
                rep = svc.add_replica()
                self.ctx.schedule(Wake(self._booted, rep), NORMAL, self.cfg.boot_time)
            self.last_change = now
            self.decisions.append((now, current + add))
        elif want < current and now - self.last_change >= self.cfg.cooldown:
            for rep in (booting + ready)[::-1][: current - want]:
                svc.drain(rep)
            self.last_change = now
            self.decisions.append((now, want))
        wake.callbacks = [self._tick]
        self.ctx.schedule(wake, NORMAL, self.cfg.period)

    def _booted(self, wake: Wake) -> None:
        rep: Replica = wake.payload
        rep.booting = False
        if not rep.draining:
            self.svc.revive(rep)


class FailoverControl:
    """Sends a service's callers to its standby while its recent error rate is high."""

    def __init__(self, svc: Service, standby: Service, cfg: Failover) -> None:
        self.svc = svc
        self.cfg = cfg
        svc.failover_to = standby
        self.history: deque[tuple[float, int, int]] = deque()  # (time, answered, failed)
        self.until = -math.inf
        self.switches: list[tuple[float, bool]] = []

    def observe(self, now: float) -> None:
        """Called at each monitor window with the window's counts (before they reset)."""
        svc = self.svc
        wc = svc.stats.w_counts
        done = sum(wc)
        hist = self.history
        hist.append((now, done, done - wc[0]))
        while hist and hist[0][0] <= now - self.cfg.window:
            hist.popleft()
        if svc.failover_active:
            if now >= self.until:
                svc.failover_active = False
                hist.clear()
                self.switches.append((now, False))
            return
        n = sum(d for _, d, _ in hist)
        bad = sum(f for _, _, f in hist)
        if n >= self.cfg.min_requests and bad >= self.cfg.when_error_rate * n:
            svc.failover_active = True
            self.until = now + self.cfg.hold
            self.switches.append((now, True))
