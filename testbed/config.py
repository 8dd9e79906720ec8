"""The testbed system: services, their work and their calls, and the ports they use.

Each service is one asyncio process whose own processing runs under a semaphore of
``workers`` slots (a thread pool of that size): a request waits for a slot, holds it for its
work, and releases it before its downstream calls (which hold no worker). The work is mostly
a lognormal *sleep* (``work_mean``, ``work_cv``) plus a fixed slice of burned CPU time
(``cpu``): on a 2-core machine shared with other people's jobs, a sleep keeps the service
time, hence the utilisation and the queueing, under the testbed's control, while the CPU
slice is what a CPU hog on the same core really slows down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CallDef:
    to: str
    probability: float = 1.0
    count: int = 1


@dataclass
class ServiceDef:
    name: str
    work_mean: float  # seconds of work (sleep) per request, lognormal
    work_cv: float = 0.5
    workers: int = 1  # slots for the service's own processing (a thread pool)
    cpu: float = 0.0  # CPU seconds burned per request, in a worker slot, before the sleep
    stages: list[list[CallDef]] = field(default_factory=list)  # each stage runs in parallel
    redis: bool = False  # GET and SET a key per request
    core: int | None = None  # pin to this core (the CPU-hog fault targets it)


def default_services() -> list[ServiceDef]:
    """gateway -> {catalog, cart} in parallel, then recommend (p=0.5); catalog fans out to
    pricing twice in parallel; recommend calls catalog; cart uses Redis. Catalog (one worker,
    about 39 ms per request, 1.5 requests per gateway request) is the bottleneck: it
    saturates near 17 gateway requests per second. It sits on core 1. Long sleeps keep the
    few milliseconds that other people's load adds a small share of each service time."""
    return [
        ServiceDef(
            "gateway",
            0.005,
            0.3,
            workers=8,
            stages=[
                [CallDef("catalog"), CallDef("cart")],
                [CallDef("recommend", probability=0.5)],
            ],
        ),
        ServiceDef(
            "catalog",
            0.035,
            0.5,
            workers=1,
            cpu=0.003,
            stages=[[CallDef("pricing", count=2)]],
            core=1,
        ),
        ServiceDef("pricing", 0.012, 0.5, workers=2),
        ServiceDef("cart", 0.010, 0.5, workers=2, redis=True),
        ServiceDef("recommend", 0.020, 0.5, workers=1, stages=[[CallDef("catalog")]]),
    ]


SHADOW_PORT_OFFSET = 100
"""The shadow copy's default base port is production's plus this (the testbed uses 22)."""


@dataclass
class TestbedConfig:
    __test__ = False  # not a pytest class, whatever its name
    base_port: int = 18400  # services at base+i, Prometheus at base+20, Redis at base+21
    services: list[ServiceDef] = field(default_factory=default_services)
    scrape_interval: float = 1.0
    seed: int = 1
    nice: int = -10  # run above other work on a shared machine (needs root; ignored otherwise)
    role: str = "production"  # "shadow": a second, independent copy (own ports, Redis, jobs)

    def port(self, name: str) -> int:
        for i, s in enumerate(self.services):
            if s.name == name:
                return self.base_port + i
        raise KeyError(name)

    @property
    def prometheus_port(self) -> int:
        return self.base_port + 20

    @property
    def redis_port(self) -> int:
        return self.base_port + 21

    def job(self, name: str) -> str:
        """Prometheus job of a service: its name in production, ``ROLE-name`` otherwise, so a
        shadow's series never mix with production's."""
        return name if self.role == "production" else f"{self.role}-{name}"

    def service_json(
        self, name: str, spans_dir: str, access_log: str | None = None
    ) -> dict[str, Any]:
        svc = next(s for s in self.services if s.name == name)
        return {
            **asdict(svc),
            "port": self.port(name),
            "ports": {s.name: self.port(s.name) for s in self.services},
            "redis_port": self.redis_port,
            "spans": f"{spans_dir}/{name}.jsonl",
            "seed": self.seed,
            "access_log": access_log,
        }
