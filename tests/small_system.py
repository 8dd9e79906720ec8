"""The small system the recogniser's tests train and watch on: four services in distinct
places of the call graph, and the fingerprint settings that keep training in seconds."""

from __future__ import annotations

from twin.io import parse_model
from twin.predict.fingerprints import FingerprintSpec
from twin.topology import Topology

WINDOW = 30.0
SPEC = FingerprintSpec(
    kinds=("latency", "error_rate", "cpu_exhaustion"),
    levels=2,
    loads=(1.0,),
    none_runs=2,
    window_s=WINDOW,
    warmup_s=WINDOW,
    before_s=5 * WINDOW,
    during_s=3 * WINDOW,
)


def small_topology() -> Topology:
    """front calls a and b; a calls c: four services, distinct places in the graph."""

    def svc(mean: float, calls: list[str]) -> dict[str, object]:
        return {
            "workers": 4,
            "operations": {
                "default": {
                    "service_time": {"dist": "exponential", "mean": mean},
                    "calls": [{"to": c} for c in calls],
                }
            },
        }

    return parse_model(
        Topology,
        {
            "name": "small",
            "services": {
                "front": svc(0.004, ["a", "b"]),
                "a": svc(0.006, ["c"]),
                "b": svc(0.005, []),
                "c": svc(0.008, []),
            },
            "network": {"latency": {"dist": "constant", "mean": 0.001}},
            "workload": [{"entry": "front", "rate": 10.0}],
        },
    )


def front_back(
    *,
    rate: float,
    back: dict[str, object],
    back_workers: int = 8,
    entry: dict[str, object] | None = None,
) -> Topology:
    """A front end (8 workers, exponential 10 ms) calling one back end: the replay tests'
    system, with the back end's service time, its workers and the entry's extra fields
    (a closed loop's users) as each test needs."""
    return parse_model(
        Topology,
        {
            "name": "pair",
            "services": {
                "front": {
                    "workers": 8,
                    "operations": {
                        "op": {
                            "service_time": {"dist": "exponential", "mean": 0.01},
                            "calls": [{"to": "back:op"}],
                        }
                    },
                },
                "back": {"workers": back_workers, "operations": {"op": {"service_time": back}}},
            },
            "workload": [{"entry": "front:op", "rate": rate} | (entry or {})],
        },
    )
