"""Gymnasium environment over the stepped twin: faults arrive, the agent sets mitigations.

CartPole conventions: ``super().reset(seed=seed)``, randomness only from ``self.np_random``,
finite normalised spaces, the time limit at registration (``max_episode_steps``). Each step
applies the action as a twin Policy, advances ``interval`` simulated seconds, and observes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents import EPISODE_SECONDS, INTERVAL_SECONDS
from agents import spaces as sp
from agents.reward import RewardWeights, attainment, reward, violated
from agents.scenarios import FaultCatalogue, FaultSpec, scenario_for, weights_from_risk
from twin.bundled import bundled_topology_path
from twin.errors import InputError
from twin.policy import Policy
from twin.results import Stretch
from twin.sim.engine import Simulation
from twin.sim.fluid import FluidSimulation
from twin.sim.stepped import SteppedTwin
from twin.topology import Topology

DEFAULT_TOPOLOGY = bundled_topology_path("online-boutique")


@dataclass(frozen=True)
class EnvConfig:
    """Episode shape. ``load`` multiplies the workload (a reduced-rate twin trains faster)."""

    topology: str = str(DEFAULT_TOPOLOGY)
    interval: float = INTERVAL_SECONDS
    episode_seconds: float = EPISODE_SECONDS
    load: float = 1.0
    weights: RewardWeights = field(default_factory=RewardWeights)
    fidelity: str = "des"
    """"des": the request-level engine; "fluid": the aggregated twin (twin/sim/fluid.py),
    ~30x faster, for training; evaluate in "des"."""
    faults_from: str | None = None
    """A ``risk.json`` of ``twin risk``: training faults follow its posterior rates per
    service and kind (agents.scenarios.weights_from_risk); None: the uniform catalogue."""

    @property
    def max_steps(self) -> int:
        return round(self.episode_seconds / self.interval)


class MitigationEnv(gym.Env[np.ndarray, np.ndarray]):
    """One episode: one fault from the catalogue (or a given one), ``max_steps`` decisions."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it so)

    def __init__(self, config: EnvConfig | None = None, **overrides: Any) -> None:
        cfg = config or EnvConfig()
        if overrides:
            cfg = EnvConfig(**{**cfg.__dict__, **overrides})
        if cfg.fidelity not in ("des", "fluid"):
            raise InputError(f"env config: fidelity {cfg.fidelity!r}: expected 'des' or 'fluid'")
        if cfg.interval <= 0 or cfg.episode_seconds < cfg.interval or cfg.load <= 0:
            raise InputError(
                f"env config: interval ({cfg.interval}), episode_seconds "
                f"({cfg.episode_seconds}) and load ({cfg.load}) must be positive, "
                "with episode_seconds >= interval"
            )
        self.cfg = cfg
        self.topology = Topology.load(cfg.topology)
        self.services = tuple(sorted(self.topology.services))
        self.n = len(self.services)
        weights = (
            None
            if cfg.faults_from is None
            else weights_from_risk(Path(cfg.faults_from), self.topology)
        )
        self.catalogue = FaultCatalogue(self.topology, weights=weights)
        slo = self.topology.slo
        self.p99_target = slo.latency_p99 if slo.latency_p99 is not None else 1.0
        self.avail_target = slo.availability if slo.availability is not None else 0.99
        self.base_replicas = {s: self.topology.services[s].replicas for s in self.services}
        self.observation_spec = sp.ObservationSpec(
            services=self.services,
            slo_p99_seconds=self.p99_target,
            slo_availability=self.avail_target,
            max_replicas=sp.MAX_REPLICAS,
        )
        self.action_spec = sp.ActionSpec.for_topology(self.topology)
        self.observation_space = sp.observation_space(self.n)
        self.action_space = sp.action_space(self.n)
        self._callers: dict[str, list[str]] = {s: [] for s in self.services}
        for a, b in self.topology.service_graph().edges:
            self._callers[b].append(f"{a}->{b}")
        self.sim: SteppedTwin | None = None
        self.fault: FaultSpec | None = None
        self.replicas: dict[str, int] = dict(self.base_replicas)
        self._pinned: set[str] = set()
        self.last_action = sp.neutral_action(self.n)
        self.steps = 0

    # -- gymnasium API ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Options: ``fault`` (a FaultSpec, e.g. a held-out one, or None for no fault)."""
        super().reset(seed=seed)
        opts = options or {}
        if "fault" in opts:
            self.fault = opts["fault"]
        else:
            self.fault = self.catalogue.sample_training(self.np_random)
        sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        scen = scenario_for(
            self.fault,
            self.cfg.episode_seconds + self.cfg.interval,
            self.cfg.interval,
            self.cfg.load,
            self.topology.workload[0].rate if self.topology.workload else 1.0,
        )
        self.replicas = dict(self.base_replicas)
        self._pinned = set()
        self.last_action = sp.neutral_action(self.n)
        policy = self.action_spec.policy(
            self.action_spec.decode(self.last_action, self.services, self.replicas)
        )
        self.sim = (
            FluidSimulation(self.topology, scen, policy)
            if self.cfg.fidelity == "fluid"
            else Simulation(self.topology, scen, policy, seed=sim_seed, series="none")
        )
        self.steps = 0
        return self._observe(None), {"fault": self.fault}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.sim is None:
            raise InputError("env: step() called before reset()")
        act = np.asarray(action, dtype=np.int64)
        if act.shape != self.action_space.shape or not self.action_space.contains(act):
            raise InputError(f"env: action {act.tolist()} is outside {self.action_space}")
        policy = self._policy(act)
        self.sim.apply(policy)
        stretch = self.sim.step(self.cfg.interval)
        self.steps += 1
        changed = int(np.sum(act != self.last_action))
        self.last_action = act.copy()
        attain = attainment(stretch.entries, self.p99_target, self.avail_target)
        extra = sum(
            max(0.0, float(s.replicas) - self.base_replicas[n]) for n, s in stretch.services.items()
        )
        viol = violated(stretch.entries, self.p99_target, self.avail_target)
        secs = float(stretch.seconds)
        r = reward(self.cfg.weights, attain, viol, extra * secs, secs, changed, act.size)
        info = {
            "attainment": attain,
            "violated": viol,
            "replica_seconds": sum(float(s.replicas) for s in stretch.services.values())
            * float(stretch.seconds),
            "entries": stretch.entries,
            "seconds": float(stretch.seconds),
        }
        truncated = self.steps >= self.cfg.max_steps
        return self._observe(stretch), float(r), False, truncated, info

    # -- helpers ------------------------------------------------------------------------------

    def _policy(self, act: np.ndarray) -> Policy:
        """Action -> Policy; replica deltas move a pinned HPA (min = max = target)."""
        knobs = self.action_spec.decode(act, self.services, self.replicas)
        doc = self.action_spec.policy(knobs).model_dump(exclude_none=True)
        for name in self.services:
            self.replicas[name] = int(np.clip(knobs.replicas[name], 1, sp.MAX_REPLICAS))
            if self.replicas[name] != self.base_replicas[name]:
                self._pinned.add(name)
            if name in self._pinned:
                # pinned until the episode ends, so a return to the topology's count drains the
                # extra replicas; a 1 s period puts a new target in force within the step (the
                # twin's HPA first acts one period after a policy change)
                k = self.replicas[name]
                doc["services"].setdefault(name, {})["autoscale"] = {
                    "min": k,
                    "max": k,
                    "boot_time": 10.0,
                    "cooldown": 0.0,
                    "period": min(1.0, self.cfg.interval),
                }
        return Policy.model_validate(doc)

    def _observe(self, stretch: Stretch | None) -> np.ndarray:
        """The codec's observation of a stretch (None: the start, only replicas known)."""
        readings = {}
        for name in self.services:
            if stretch is None:
                readings[name] = sp.ServiceReading(None, 0.0, None, self.replicas[name])
                continue
            s = stretch.services[name]
            ok, failed = s.succeeded, s.failed
            readings[name] = sp.ServiceReading(
                p99_seconds=s.latency.p99,
                error_rate=failed / (ok + failed) if ok + failed else 0.0,
                utilization=s.utilization,
                replicas=self.replicas[name],
                queue=float(s.queue),
                breaker=sp.breaker_observation(
                    [st for k in self._callers[name] if (st := stretch.breakers.get(k)) is not None]
                ),
            )
        return self.observation_spec.encode(readings)
