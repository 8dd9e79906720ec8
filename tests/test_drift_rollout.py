"""The simulated rolling update honours maxSurge and maxUnavailable, its downtime follows
from the load balancer's lag, and it predicts a measured rolling restart on the testbed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, child_env

from twin.drift.plans import rollout_params
from twin.drift.rollout import RolloutParams, error_seconds, resolve, simulate


@pytest.mark.parametrize("replicas", [1, 3, 4, 10])
@pytest.mark.parametrize("surge,unavailable", [(0, 1), (1, 0), ("25%", "25%"), (2, 2), ("50%", 0)])
def test_rollout_stays_within_surge_and_unavailable_and_replaces_every_pod(
    replicas: int, surge: int | str, unavailable: int | str
) -> None:
    p = RolloutParams(replicas, surge, unavailable, ready_seconds=2.0, propagation_seconds=0.5)
    r = simulate(p)
    new = [q for q in r.pods if q.deleted is None]
    old = [q for q in r.pods if q.deleted is not None]
    assert len(new) == replicas and len(old) == replicas
    stops = {q.deleted for q in old if q.deleted is not None}
    marks = sorted({q.created for q in r.pods} | {q.ready for q in r.pods} | stops)
    for t in [m + 1e-9 for m in marks if m >= 0]:
        running = sum(1 for q in r.pods if q.created <= t and (q.deleted is None or t < q.deleted))
        ready = sum(1 for q in r.pods if q.ready <= t and (q.deleted is None or t < q.deleted))
        assert running <= replicas + r.surge
        assert ready >= replicas - r.unavailable


def test_percentages_round_as_kubernetes_does() -> None:
    assert resolve("25%", 10, round_up=True) == 3  # maxSurge rounds up
    assert resolve("25%", 10, round_up=False) == 2  # maxUnavailable rounds down
    r = simulate(RolloutParams(1, 0, "25%"))  # both resolve to 0: unavailable becomes 1
    assert (r.surge, r.unavailable) == (0, 1)


def test_downtime_is_lag_over_view_size_for_each_stopped_pod() -> None:
    # ready (10 s) far longer than the lag (1 s): each stopped pod is in the view for 1 s
    # among 3, then 2, then 2 endpoints (the new pods join 1 s after they are ready)
    p = RolloutParams(3, 0, 1, ready_seconds=10.0, propagation_seconds=1.0, response_seconds=0.0)
    assert simulate(p).downtime_seconds == pytest.approx(1 / 3 + 1 / 2 + 1 / 2)


def test_a_drain_as_long_as_the_lag_leaves_no_downtime() -> None:
    p = RolloutParams(4, 1, 1, ready_seconds=3.0, propagation_seconds=1.0, drain_seconds=1.0)
    assert simulate(p).downtime_seconds == 0.0
    shorter = RolloutParams(4, 1, 1, ready_seconds=3.0, propagation_seconds=1.0, drain_seconds=0.5)
    assert simulate(shorter).downtime_seconds > 0.0


def test_surge_costs_replica_hours_and_no_surge_costs_none() -> None:
    assert simulate(RolloutParams(3, 0, 1, ready_seconds=5.0)).surge_replica_seconds == 0.0
    r = simulate(RolloutParams(3, 1, 0, ready_seconds=5.0))
    assert r.surge_replica_seconds == pytest.approx(3 * 5.0)  # one extra pod while each waits


def test_rollout_settings_come_from_the_manifest() -> None:
    raw = {
        "kind": "Deployment",
        "spec": {
            "replicas": 4,
            "strategy": {"rollingUpdate": {"maxSurge": 2, "maxUnavailable": "50%"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "readinessProbe": {"initialDelaySeconds": 4, "periodSeconds": 2},
                            "lifecycle": {
                                "preStop": {"exec": {"command": ["sh", "-c", "sleep 3"]}}
                            },
                        }
                    ]
                }
            },
        },
    }
    p = rollout_params(raw)
    assert (p.replicas, p.max_surge, p.max_unavailable, p.ready_seconds, p.drain_seconds) == (
        4,
        2,
        "50%",
        5.0,
        3.0,
    )


def test_rolling_restart_on_the_testbed_is_within_25_percent_of_the_twin() -> None:
    """Bounded: about 20 s of load; every replica process is stopped by the bed itself."""
    cmd = [
        sys.executable,
        "-m",
        "testbed.rolling",
        "--replicas",
        "3",
        "--max-surge",
        "0",
        "--max-unavailable",
        "1",
        "--rollouts",
        "3",
        "--timeout",
        "90",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=150, cwd=ROOT, env=child_env()
    )
    m = json.loads(out.stdout)
    assert m["failed_before_rollouts"] == 0
    rate = m["settings"]["rate"]
    measured = m["failed"] / rate / 3
    est = simulate(
        RolloutParams(
            3,
            0,
            1,
            ready_seconds=m["ready_seconds_before_rollouts"],
            propagation_seconds=1.0,
            response_seconds=m["settings"]["work_mean"],
        )
    ).downtime_seconds
    assert measured > 0.3  # the restart really failed requests
    assert abs(est - measured) / measured <= 0.25, (est, measured)
    # and the twin's arithmetic on the real pod timeline agrees with the count as well
    from twin.drift.rollout import Pod

    pods = [Pod(c, r, d) for c, r, d in m["pods"] if r is not None]
    timeline = (
        error_seconds(pods, RolloutParams(3, propagation_seconds=1.0, response_seconds=0.005))[0]
        / 3
    )
    assert abs(timeline - measured) / measured <= 0.25, (timeline, measured)
