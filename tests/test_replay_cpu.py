"""A CPU fault replayed as a hog of busy threads inside the pod, at a CPU limit that gives the
twin the pod's own measured capacity: the limit keeps the utilisation law, the hog's share
follows CFS's fair sharing, the same hog costs a busy pod its capacity and spares an idle
one, and a fault is described by its pod's fault-free minutes, never its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from small_system import front_back
from test_replay_formats import FAST, T0, nezha_day

from twin.faults.cpu_exhaustion import MAX_QUOTA_SHARE
from twin.replay import ReplayConfig, nezha, replay
from twin.replay.mapping import (
    HOG_THREADS,
    Plan,
    cpu_hog,
    hog_share,
    quota_limit,
    work_per_request,
)
from twin.replay.run import predict


def test_the_limit_gives_the_twin_the_pods_own_capacity() -> None:
    topo = front_back(rate=5.0, back={"dist": "exponential", "mean": 0.02})
    work = work_per_request(topo)
    assert work["back"] == pytest.approx(0.02) and work["front"] == pytest.approx(0.01)
    for rate, cpu in ((5.0, 0.4), (40.0, 0.9), (0.3, 0.01)):
        limit = quota_limit("back", topo, rate, cpu)
        assert limit is not None
        # capacity in the twin (limit / work) is the pod's, rate / cpu (utilisation law)
        assert limit / work["back"] == pytest.approx(rate / cpu)


def test_a_pod_without_traffic_or_cpu_use_gives_no_limit_and_a_set_limit_is_kept() -> None:
    topo = front_back(rate=5.0, back={"dist": "exponential", "mean": 0.02})
    assert quota_limit("back", topo, 0.0, 0.5) is None
    assert quota_limit("back", topo, 5.0, 0.0) is None
    svc = topo.services["back"].model_copy(update={"cpu_limit": 0.7})
    limited = topo.model_copy(update={"services": {**topo.services, "back": svc}})
    assert quota_limit("back", limited, 5.0, 0.4) == 0.7


def test_a_hog_takes_more_of_a_pod_with_fewer_workers_and_more_with_more_threads() -> None:
    shares = [[hog_share(k, w) for w in (1, 2, 4, 8)] for k in (1, 4, 16)]
    for row in shares:
        assert row == sorted(row, reverse=True)
    for col in zip(*shares, strict=True):
        assert list(col) == sorted(col)
    assert hog_share(1, 1) == pytest.approx(0.5)
    assert min(min(r) for r in shares) > 0.0 and max(max(r) for r in shares) <= MAX_QUOTA_SHARE


def _p50(plan: Plan | None, threads: float, rate: float) -> float:
    topo = front_back(rate=rate, back={"dist": "exponential", "mean": 0.02}, back_workers=2)
    faults = []
    if plan is not None:
        topo = plan.adjust(topo) if plan.adjust else topo
        faults = [{**d, "start": 10.0, "duration": 60.0} for d in plan.build(threads)]
    pred = predict(topo, faults, seconds=60.0, warmup=10.0, seeds=[1, 2], observed=None)
    assert pred.p50 is not None
    return pred.p50


def test_the_same_hog_slows_a_pod_near_its_limit_and_spares_an_idle_one() -> None:
    topo = front_back(rate=20.0, back={"dist": "exponential", "mean": 0.02}, back_workers=2)
    base = _p50(None, 0, 20.0)
    # the same 20 requests/s: one pod used 60% of its limit for them, the other 2%
    busy = _p50(cpu_hog("back", topo, 20.0, 0.6), 4, 20.0)
    idle = _p50(cpu_hog("back", topo, 20.0, 0.02), 4, 20.0)
    assert busy > 3 * base
    assert idle < 1.2 * base


def test_a_nezha_fault_is_described_by_its_pods_fault_free_minutes(tmp_path: Path) -> None:
    data = nezha_day(
        tmp_path / "day", [(T0 + 1200, "front-5f6585d649-fnmft", "cpu_contention")], (10, 90)
    )
    topo = front_back(rate=5.0, back={"dist": "exponential", "mean": 0.02})
    (fault,) = nezha.read(data, topo).faults
    # the fault's own minutes (90% CPU) are never read
    assert fault.baseline is not None
    assert fault.baseline.cpu == pytest.approx(0.10) and fault.baseline.rate == pytest.approx(5.0)
    plan = nezha.plan(fault, topo)
    assert isinstance(plan, Plan) and plan.kind == "cpu_exhaustion" and plan.adjust is not None
    assert plan.adjust(topo).services["front"].cpu_limit == pytest.approx(0.01 * 5.0 / 0.10)


def test_quiet_minutes_are_farther_than_the_margin_from_every_fault() -> None:
    times = np.arange(1, 61) * 60.0
    quiet = nezha.quiet_minutes(times, [1200.0], 180.0, 600.0)
    ends = times[~quiet]
    # a minute [t - 60, t) is out when it comes within 600 s of [1200, 1380)
    assert ends.min() == 660.0 and ends.max() == 1980.0
    assert quiet.sum() == len(times) - len(ends)


def test_a_cpu_fault_at_a_pod_without_cpu_figures_falls_back_to_a_fitted_delay(
    tmp_path: Path,
) -> None:
    data = nezha_day(tmp_path / "day", [(T0 + 1200, "back-7b598fc7d-lmggd", "cpu_consumed")])
    topo = front_back(rate=5.0, back={"dist": "exponential", "mean": 0.02})
    (fault,) = nezha.read(data, topo).faults
    assert fault.baseline is None
    plan = nezha.plan(fault, topo)
    assert isinstance(plan, Plan) and plan.kind == "latency" and plan.adjust is None


def test_a_type_played_as_two_kinds_fits_each_kind_on_its_own_first_fault(
    tmp_path: Path,
) -> None:
    faults = [
        (T0 + 1200, "back-7b598fc7d-lmggd", "cpu_contention"),  # no CPU figures: a delay
        (T0 + 1800, "front-5f6585d649-fnmft", "cpu_contention"),  # CPU figures: a hog
        (T0 + 2400, "front-5f6585d649-fnmft", "cpu_contention"),
    ]
    data = nezha_day(tmp_path / "day", faults, (20, 90))
    topo = front_back(rate=5.0, back={"dist": "exponential", "mean": 0.02})
    res = replay(topo, data, "nezha", tmp_path / "out", ReplayConfig(fit="first", **FAST))
    roles = [(r["twin_fault"].split()[0], r["role"]) for r in res["faults"]]
    assert roles == [("latency", "fit"), ("cpu_exhaustion", "fit"), ("cpu_exhaustion", "held out")]
    assert set(res["fitted"]) == {"cpu_contention", "cpu_contention (cpu_exhaustion)"}
    held = res["faults"][2]
    assert held["magnitude"] == res["fitted"]["cpu_contention (cpu_exhaustion)"]["magnitude"]
    assert held["magnitude"] in HOG_THREADS
