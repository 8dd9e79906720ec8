"""The graph-only baseline agrees with analytic series/parallel availability of small graphs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from twin.availability import estimate, structural, success_by_operation
from twin.topology import Topology


def topo(services: dict[str, Any], entry: str = "a", **extra: Any) -> Topology:
    """A topology from ``{name: (replicas, [calls])}`` with trivial service times."""
    spec: dict[str, Any] = {
        "name": "t",
        "services": {
            name: {
                "replicas": replicas,
                "operations": {"default": {"service_time": 0.01, "calls": calls}},
                **({"host": extra["hosts_of"][name]} if name in extra.get("hosts_of", {}) else {}),
            }
            for name, (replicas, calls) in services.items()
        },
        "workload": [{"entry": entry, "rate": 1.0}],
    }
    if "hosts" in extra:
        spec["hosts"] = extra["hosts"]
    if "network" in extra:
        spec["network"] = extra["network"]
    return Topology.from_dict(spec)


def close(est: Any, truth: float) -> None:
    """The truth lies within the 95% interval, widened a little for the 1-in-20 miss."""
    half = (est.hi - est.lo) / 2
    assert abs(est.availability - truth) <= 2 * half + 1e-4, (est, truth)


def test_a_series_chain_is_the_product_of_its_components() -> None:
    t = topo({"a": (1, [{"to": "b"}]), "b": (1, [{"to": "c"}]), "c": (1, [])})
    est = estimate(t, replica_availability=0.9, trials=20_000, replications=10, seed=3)
    close(est, 0.9**3)


def test_replicas_in_parallel_fail_only_together() -> None:
    t = topo({"a": (3, [])})
    est = estimate(t, replica_availability=0.7, trials=20_000, replications=10, seed=4)
    close(est, 1 - 0.3**3)


def test_series_of_parallel_groups_and_per_service_availabilities() -> None:
    t = topo({"a": (1, [{"to": "b"}]), "b": (2, [{"to": "c"}]), "c": (3, [])})
    a = {"a": 0.99, "b": 0.8, "c": 0.6}
    truth = 0.99 * (1 - 0.2**2) * (1 - 0.4**3)
    close(estimate(t, replica_availability=a, trials=20_000, replications=10, seed=5), truth)


def test_a_probabilistic_call_mixes_the_callee_in_by_its_probability() -> None:
    t = topo(
        {
            "a": (1, [{"to": "b", "probability": 0.3}, {"to": "c", "count": 2}]),
            "b": (1, []),
            "c": (1, []),
        }
    )
    # c is called twice per request, but c's state is the same for both calls
    by_op = success_by_operation(t, {"a": 1.0, "b": 0.0, "c": 1.0})
    assert by_op["a:default"] == pytest.approx(0.7)
    truth = 0.95 * (0.7 + 0.3 * 0.95) * 0.95
    close(estimate(t, replica_availability=0.95, trials=20_000, replications=10, seed=6), truth)


def test_optional_calls_never_fail_the_caller() -> None:
    t = topo({"a": (1, [{"to": "b", "optional": True}]), "b": (1, [])})
    assert structural(t, {"b"}) == 1.0
    assert structural(t, {"a"}) == 0.0


def test_services_on_one_host_fail_together() -> None:
    t = topo(
        {"a": (1, [{"to": "b"}]), "b": (2, [])},
        hosts={"h1": {"cores": 2}},
        hosts_of={"a": "h1", "b": "h1"},
    )
    est = estimate(
        t, replica_availability=1.0, host_availability=0.8, trials=20_000, replications=10, seed=7
    )
    close(est, 0.8)  # not 0.8 * 0.8: one host, one failure
    assert structural(t, {"host:h1"}) == 0.0


def test_link_loss_is_a_per_call_failure() -> None:
    t = topo({"a": (1, [{"to": "b"}]), "b": (1, [])}, network={"links": {"a->b": {"loss": 0.1}}})
    assert structural(t) == pytest.approx(0.9)


def test_same_seed_same_estimate_and_the_interval_narrows_with_replications() -> None:
    t = topo({"a": (1, [{"to": "b"}]), "b": (2, [])})
    one = estimate(t, replica_availability=0.9, trials=2_000, replications=5, seed=9)
    two = estimate(t, replica_availability=0.9, trials=2_000, replications=5, seed=9)
    more = estimate(t, replica_availability=0.9, trials=2_000, replications=40, seed=9)
    assert one == two
    assert (more.hi - more.lo) < (one.hi - one.lo)


def test_availability_command_prints_the_estimate(tmp_path: Path) -> None:
    t = topo({"a": (1, [{"to": "b"}]), "b": (1, [])})
    p = tmp_path / "t.yaml"
    t.to_yaml(p)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin.cli",
            "availability",
            str(p),
            "--replica-availability",
            "0.9",
            "--trials",
            "5000",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    m = re.search(r"availability ([\d.]+)% \[([\d.]+)%, ([\d.]+)%\]", r.stdout)
    assert m, r.stdout
    lo, hi = float(m.group(2)), float(m.group(3))
    assert lo <= 81.0 <= hi
