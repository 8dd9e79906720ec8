"""Observation and action spaces of the mitigation environment.

Observation: per service (sorted by name) six features in [0, 1]:
  0 p99 latency / SLO p99, squashed x/(1+x) (0.5 = at the SLO)
  1 error rate of the stretch (failed / (succeeded + failed))
  2 utilisation (busy / capacity)
  3 queue length, squashed q/(q+10)
  4 replicas / MAX_REPLICAS
  5 worst breaker state on calls into the service (closed 0, open 1, half-open 0.5)

Actions: MultiDiscrete, per service [replica delta {-1, 0, +1}, queue limit level
{none, 50, 10}], then global knobs [timeout level, retry count, breaker on/off, frontend
rate limit level]. The space grows with the number of services. Failover is not a knob:
Online Boutique has no alternative service to fail over to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

FEATURES = 6
MAX_REPLICAS = 5
REPLICA_DELTAS = (-1, 0, 1)
DOWN, KEEP, UP = (REPLICA_DELTAS.index(d) for d in (-1, 0, 1))
"""Replica-delta levels (indices into REPLICA_DELTAS), as controllers write them."""
QUEUE_LIMITS: tuple[int | None, ...] = (None, 50, 10)
TIMEOUTS = (1.0, 0.5, 0.25)  # seconds per attempt
RETRIES = (0, 1, 2)
BREAKER = (False, True)
RATE_LIMITS: tuple[float | None, ...] = (None, 1.2, 1.0)  # x nominal entry rate
PER_SERVICE = (len(REPLICA_DELTAS), len(QUEUE_LIMITS))
GLOBAL = (len(TIMEOUTS), len(RETRIES), len(BREAKER), len(RATE_LIMITS))
NEUTRAL_SERVICE = (1, 0)
NEUTRAL_GLOBAL = (0, 0, 0, 0)


def observation_space(n_services: int) -> spaces.Box:
    return spaces.Box(0.0, 1.0, shape=(n_services * FEATURES,), dtype=np.float32)


def action_space(n_services: int) -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete(np.array(list(PER_SERVICE) * n_services + list(GLOBAL)))


def compose(deltas: Sequence[int], queue: int, knobs: Sequence[int]) -> np.ndarray:
    """An action from per-service replica-delta levels, one queue-limit level for every
    service, and the global knob levels: the layout lives here, not in each controller."""
    return np.array([x for d in deltas for x in (d, queue)] + list(knobs), dtype=np.int64)


def neutral_action(n_services: int) -> np.ndarray:
    """Keep replicas, no shedding, 1 s timeout, no retries, no breaker, no rate limit."""
    return np.array(list(NEUTRAL_SERVICE) * n_services + list(NEUTRAL_GLOBAL), dtype=np.int64)
