"""The agent's codec: how the world becomes an observation and an action becomes mitigations.

One encoder/decoder serves the training environment, the runtime enforcer, the baseline
controllers, the macro actions and the export, so a policy sees in production exactly what
it saw in the twin.

Observation: per service (sorted by name) the six :class:`Feature` columns, each in [0, 1]:
  p99 latency / SLO p99, squashed x/(1+x) (0.5 = at the SLO); error rate (failed /
  (succeeded + failed)); utilisation (busy / capacity, capped at 1); queue length squashed
  q/(q + ``queue_scale``); replicas / ``max_replicas``; worst breaker state on calls into the
  service (:data:`BREAKER_OBSERVATION`: closed 0, half-open 0.5, open 1).

Actions: MultiDiscrete, per service [replica delta {-1, 0, +1}, queue limit level
{none, 50, 10}], then the :class:`Knob` components [timeout level, retry count, breaker
on/off, frontend rate limit level]. The space grows with the number of services. Failover
is not a knob: Online Boutique has no alternative service to fail over to.

An action decodes (:meth:`ActionSpec.decode`) to :class:`Knobs`, concrete settings, and
knobs to a twin :class:`~twin.policy.Policy` (:meth:`ActionSpec.policy`). The level tables
and the observation's scales travel with an exported policy as :class:`ActionSpec` and
:class:`ObservationSpec`, the documents of ``policy.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from twin.mitigations import CircuitState
from twin.policy import Policy

if TYPE_CHECKING:
    from gymnasium import spaces

    from twin.topology import Topology


class Feature(IntEnum):
    """The per-service observation columns; the value is the column index."""

    P99 = 0
    ERROR_RATE = 1
    UTILIZATION = 2
    QUEUE = 3
    REPLICAS = 4
    BREAKER = 5

    @property
    def label(self) -> str:
        """The name in ``policy.json`` and in the distilled tree."""
        return FEATURE_LABELS[self]


FEATURE_LABELS = ("p99_over_slo", "error_rate", "utilization", "queue", "replicas", "breaker")
FEATURES = len(Feature)


class Knob(IntEnum):
    """The global action components after the per-service pairs; the value is the offset."""

    TIMEOUT = 0
    RETRIES = 1
    BREAKER = 2
    RATE_LIMIT = 3


MAX_REPLICAS = 5
QUEUE_SCALE = 10.0
"""Requests: a queue of this length observes as 0.5."""
REPLICA_DELTAS = (-1, 0, 1)
DOWN, KEEP, UP = (REPLICA_DELTAS.index(d) for d in (-1, 0, 1))
"""Replica-delta levels (indices into REPLICA_DELTAS), as controllers write them."""
QUEUE_LIMITS: tuple[int | None, ...] = (None, 50, 10)
TIMEOUTS = (1.0, 0.5, 0.25)  # seconds per attempt
RETRIES = (0, 1, 2)
BREAKER = (False, True)
RATE_LIMITS: tuple[float | None, ...] = (None, 1.2, 1.0)  # x nominal entry rate
RETRY_BUDGET = 0.2
"""Extra attempts / requests per edge when the action asks for retries."""
BREAKER_SETTINGS: Mapping[str, float | int] = {
    "failure_rate": 0.5,
    "window": 20,
    "min_requests": 10,
}
"""The breaker the action's ``circuit_breaker: on`` stands for."""
RATE_LIMIT_BURST = 10.0
"""Requests: the token bucket's depth when the action limits the entry rate."""
PER_SERVICE = (len(REPLICA_DELTAS), len(QUEUE_LIMITS))
GLOBAL = (len(TIMEOUTS), len(RETRIES), len(BREAKER), len(RATE_LIMITS))
NEUTRAL_SERVICE = (KEEP, 0)
NEUTRAL_GLOBAL = (0, 0, 0, 0)

BREAKER_OBSERVATION: Mapping[CircuitState, float] = {
    CircuitState.CLOSED: 0.0,
    CircuitState.HALF_OPEN: 0.5,
    CircuitState.OPEN: 1.0,
}
"""A breaker state's observation value: half-open sits between closed and open."""


def breaker_observation(states: Sequence[int]) -> float:
    """The worst of the breaker states on calls into a service (0 when there are none)."""
    return max((BREAKER_OBSERVATION[CircuitState(s)] for s in states), default=0.0)


def breaker_label_value(label: str) -> float | None:
    """The observation value of a breaker state's name (``closed``, ``half_open``,
    ``open``), None for any other text."""
    for state, value in BREAKER_OBSERVATION.items():
        if state.label == label:
            return value
    return None


# -- observation -------------------------------------------------------------------------------

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Document(BaseModel):
    """A frozen document: a typo in a field name is an error, not a silent default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class ServiceReading:
    """What the metrics say about one service now, in natural units (the encoder's input).

    ``p99_seconds`` or ``utilization`` None (or not finite): nothing was measured, which
    observes as 0. ``breaker`` is already an observation value (:func:`breaker_observation`).
    """

    p99_seconds: float | None
    error_rate: float
    utilization: float | None
    replicas: int
    queue: float = 0.0
    breaker: float = 0.0


class ObservationSpec(Document):
    """How the enforcer builds the network's input from live metrics.

    The vector is ``services`` (in this order) x ``features`` (in this order), each in
    [0, 1]: p99 / ``slo_p99_seconds`` squashed x/(1+x); error rate; utilisation (busy /
    capacity, capped at 1); queue length squashed q/(q + ``queue_scale``); replicas /
    ``max_replicas``; worst circuit-breaker state on calls into the service (closed 0,
    half-open 0.5, open 1).
    """

    services: tuple[str, ...] = Field(min_length=1)
    features: tuple[str, ...] = FEATURE_LABELS
    slo_p99_seconds: float = Field(gt=0.0, description="seconds")
    slo_availability: Fraction
    queue_scale: float = Field(default=QUEUE_SCALE, gt=0.0, description="requests")
    max_replicas: int = Field(ge=1)

    def encode(self, readings: Mapping[str, ServiceReading]) -> np.ndarray:
        """The observation vector; ``readings`` must hold every service (KeyError names the
        first missing one)."""
        obs = np.zeros((len(self.services), FEATURES), dtype=np.float32)
        for i, name in enumerate(self.services):
            r = readings[name]
            row = obs[i]
            p99 = r.p99_seconds
            if p99 is not None and np.isfinite(p99):
                x = p99 / self.slo_p99_seconds
                row[Feature.P99] = x / (1.0 + x)
            row[Feature.ERROR_RATE] = r.error_rate
            u = r.utilization
            row[Feature.UTILIZATION] = min(1.0, u) if u is not None and np.isfinite(u) else 0.0
            row[Feature.QUEUE] = r.queue / (r.queue + self.queue_scale)
            row[Feature.REPLICAS] = r.replicas / self.max_replicas
            row[Feature.BREAKER] = r.breaker
        return np.clip(obs.reshape(-1), 0.0, 1.0)


def per_service(obs: np.ndarray, n_services: int) -> np.ndarray:
    """The observation as rows of services and :class:`Feature` columns."""
    return obs.reshape(n_services, FEATURES)


def observation_space(n_services: int) -> spaces.Box:
    from gymnasium import spaces

    return spaces.Box(0.0, 1.0, shape=(n_services * FEATURES,), dtype=np.float32)


# -- action ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knobs:
    """Concrete mitigation settings (what production enforces), not action indices."""

    replicas: dict[str, int]
    queue_limits: dict[str, int | None]
    timeout_seconds: float
    retries: int
    circuit_breaker: bool
    rate_limit_x: float | None

    def flat(self) -> dict[str, Any]:
        """Knob name -> value, the unit the change limit counts."""
        out: dict[str, Any] = {f"replicas.{s}": n for s, n in self.replicas.items()}
        out |= {f"queue_limit.{s}": q for s, q in self.queue_limits.items()}
        out |= {
            "timeout_seconds": self.timeout_seconds,
            "retries": self.retries,
            "circuit_breaker": self.circuit_breaker,
            "rate_limit_x": self.rate_limit_x,
        }
        return out

    @staticmethod
    def from_flat(flat: dict[str, Any]) -> Knobs:
        return Knobs(
            replicas={k[9:]: int(v) for k, v in flat.items() if k.startswith("replicas.")},
            queue_limits={k[12:]: v for k, v in flat.items() if k.startswith("queue_limit.")},
            timeout_seconds=float(flat["timeout_seconds"]),
            retries=int(flat["retries"]),
            circuit_breaker=bool(flat["circuit_breaker"]),
            rate_limit_x=flat["rate_limit_x"],
        )


class ActionSpec(Document):
    """What each component of the MultiDiscrete action means.

    Per service (in ``ObservationSpec.services`` order): [index into ``replica_deltas``,
    index into ``queue_limits``]; then the global components: [index into
    ``timeouts_seconds``, ``retries``, ``circuit_breaker``, ``rate_limits_x``]. A rate-limit
    level multiplies the nominal entry rate in ``entry_rates_rps``.
    """

    replica_deltas: tuple[int, ...]
    queue_limits: tuple[int | None, ...] = Field(description="per replica; null: no limit")
    timeouts_seconds: tuple[float, ...]
    retries: tuple[int, ...]
    retry_budget: Fraction = Field(description="extra attempts / requests, per edge")
    circuit_breaker: tuple[bool, ...]
    rate_limits_x: tuple[float | None, ...] = Field(description="x nominal entry rate; null: none")
    entry_rates_rps: dict[str, float] = Field(description="nominal rate per entry service, rps")

    @classmethod
    def levels(cls, entry_rates_rps: Mapping[str, float]) -> ActionSpec:
        """The environment's level tables, with these nominal entry rates."""
        return cls(
            replica_deltas=REPLICA_DELTAS,
            queue_limits=QUEUE_LIMITS,
            timeouts_seconds=TIMEOUTS,
            retries=RETRIES,
            retry_budget=RETRY_BUDGET,
            circuit_breaker=BREAKER,
            rate_limits_x=RATE_LIMITS,
            entry_rates_rps=dict(entry_rates_rps),
        )

    @classmethod
    def for_topology(cls, topology: Topology, load: float | None = None) -> ActionSpec:
        """:meth:`levels` with the topology's workload rates (times ``load`` if given; the
        environment limits against the unscaled rates)."""
        return cls.levels(
            {w.entry: w.rate if load is None else w.rate * load for w in topology.workload}
        )

    def components(self, n_services: int) -> tuple[int, ...]:
        """The MultiDiscrete sizes of the whole action."""
        glob = (
            len(self.timeouts_seconds),
            len(self.retries),
            len(self.circuit_breaker),
            len(self.rate_limits_x),
        )
        return (len(self.replica_deltas), len(self.queue_limits)) * n_services + glob

    def decode(
        self,
        action: Sequence[int] | np.ndarray,
        services: Sequence[str],
        replicas: Mapping[str, int],
    ) -> Knobs:
        """Action indices -> knobs; replica deltas move from ``replicas`` (unclamped)."""
        a = [int(x) for x in action]
        n = len(services)
        size = len(self.components(n))
        if len(a) != size:
            raise ValueError(f"the action has {len(a)} components, expected {size}")
        glob = a[2 * n :]
        return Knobs(
            replicas={
                s: replicas[s] + self.replica_deltas[a[2 * i]] for i, s in enumerate(services)
            },
            queue_limits={s: self.queue_limits[a[2 * i + 1]] for i, s in enumerate(services)},
            timeout_seconds=self.timeouts_seconds[glob[Knob.TIMEOUT]],
            retries=self.retries[glob[Knob.RETRIES]],
            circuit_breaker=self.circuit_breaker[glob[Knob.BREAKER]],
            rate_limit_x=self.rate_limits_x[glob[Knob.RATE_LIMIT]],
        )

    def policy(self, knobs: Knobs) -> Policy:
        """The twin Policy the knobs stand for (replicas aside: they are not a policy knob)."""
        client: dict[str, Any] = {"timeout": knobs.timeout_seconds}
        if knobs.retries:
            client["retries"] = {"max": knobs.retries, "budget": self.retry_budget}
        if knobs.circuit_breaker:
            client["circuit_breaker"] = dict(BREAKER_SETTINGS)
        services: dict[str, Any] = {}
        for name, q in knobs.queue_limits.items():
            if q is not None:
                services[name] = {"queue_limit": q}
        if knobs.rate_limit_x is not None:
            for entry, rps in self.entry_rates_rps.items():
                services.setdefault(entry, {})["rate_limit"] = {
                    "rps": rps * knobs.rate_limit_x,
                    "burst": RATE_LIMIT_BURST,
                }
        return Policy.model_validate({"clients": {"*": client}, "services": services})


def action_space(n_services: int) -> spaces.MultiDiscrete:
    from gymnasium import spaces

    return spaces.MultiDiscrete(np.array(list(PER_SERVICE) * n_services + list(GLOBAL)))


def compose(deltas: Sequence[int], queue: int, knobs: Sequence[int]) -> np.ndarray:
    """An action from per-service replica-delta levels, one queue-limit level for every
    service, and the global knob levels (in :class:`Knob` order): the layout lives here, not
    in each controller."""
    return np.array([x for d in deltas for x in (d, queue)] + list(knobs), dtype=np.int64)


def neutral_action(n_services: int) -> np.ndarray:
    """Keep replicas, no shedding, 1 s timeout, no retries, no breaker, no rate limit."""
    return np.array(list(NEUTRAL_SERVICE) * n_services + list(NEUTRAL_GLOBAL), dtype=np.int64)


def action_to_policy(
    action: Sequence[int] | np.ndarray, services: Sequence[str], topology: Topology
) -> Policy:
    """The twin Policy an action stands for in the environment (replica deltas aside)."""
    spec = ActionSpec.for_topology(topology)
    return spec.policy(spec.decode(action, services, dict.fromkeys(services, 0)))
