"""CPU limits from manifests and CPU faults from a pod's metrics (the utilisation law)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from typer.testing import CliRunner

from twin.calibrate.cpu import (
    cpu_cores,
    cpu_demand,
    cpu_limits_from_manifests,
    hog_share,
    nezha_cpu_demands,
    nezha_cpu_fault,
    twin_cpu_limit,
    twin_quota_share,
    with_cpu_limits,
)
from twin.calibrate.nezha import NezhaDay, NezhaFault
from twin.cli import app
from twin.errors import InputError
from twin.topology import Topology

MANIFESTS = SHARED_DATA / "topologies" / "online-boutique-kubernetes-manifests.yaml"
NEZHA_SPANS = SHARED_DATA / "traces" / "nezha-ob-2022-08-22-0353-spans.csv"


@pytest.mark.parametrize(
    ("text", "cores"),
    [("200m", 0.2), ("1500m", 1.5), ("2", 2.0), ("0.5", 0.5), (1, 1.0), (0.25, 0.25)],
)
def test_cpu_quantities_read_as_cores(text: object, cores: float) -> None:
    assert cpu_cores(text) == pytest.approx(cores)


@pytest.mark.parametrize("text", ["1Gi", "abc", "-1", "0", True, None, "200 m m"])
def test_what_is_not_a_cpu_quantity_reads_as_none(text: object) -> None:
    assert cpu_cores(text) is None


def test_limits_come_from_each_workloads_application_container(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: istio-proxy
          resources: {limits: {cpu: 2}}
        - name: web
          resources: {limits: {cpu: 250m}, requests: {cpu: 100m}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  template:
    spec:
      containers:
        - name: server
          resources: {requests: {cpu: 1}}
""",
        encoding="utf-8",
    )
    assert cpu_limits_from_manifests([tmp_path]) == {"web": 0.25}


@pytest.mark.skipif(not MANIFESTS.exists(), reason="the shared datasets are not here")
def test_online_boutique_manifests_give_their_published_limits() -> None:
    limits = cpu_limits_from_manifests([MANIFESTS])
    assert limits["frontend"] == pytest.approx(0.2)
    assert limits["cartservice"] == pytest.approx(0.3)
    assert limits["currencyservice"] == pytest.approx(0.2)


@pytest.mark.skipif(
    not (MANIFESTS.exists() and NEZHA_SPANS.exists()), reason="the shared datasets are not here"
)
def test_twin_calibrate_takes_cpu_limits_from_manifests(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["calibrate", "--traces", str(NEZHA_SPANS), "--manifests", str(MANIFESTS)]
    r = CliRunner().invoke(app, [*args, "--out", str(out), "--predict", "0"])
    assert r.exit_code == 0, r.output
    topo = Topology.load(out / "topology.yaml")
    assert topo.services["frontend"].cpu_limit == pytest.approx(0.2)
    assert topo.services["cartservice"].cpu_limit == pytest.approx(0.3)
    assert "redis-cart" in r.output  # a limited workload the traces do not show is said


def test_a_missing_manifest_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        cpu_limits_from_manifests([tmp_path / "nothing.yaml"])


def _topo() -> Topology:
    st = {"default": {"service_time": {"dist": "exponential", "mean": 0.01}}}
    return Topology.from_dict(
        {
            "name": "t",
            "hosts": {"h": {"cores": 2}},
            "services": {"a": {"operations": st}, "b": {"host": "h", "operations": st}},
            "workload": [{"entry": "a", "rate": 1.0}],
        }
    )


def test_limits_apply_to_named_services_and_say_what_they_skip() -> None:
    topo, notes = with_cpu_limits(_topo(), {"a": 0.5, "b": 1.0, "zz": 1.0})
    assert topo.services["a"].cpu_limit == 0.5
    assert topo.services["b"].cpu_limit is None
    assert len(notes) == 2


def test_utilisation_law_gives_cpu_seconds_per_request() -> None:
    # half of a 0.2-core limit at 10 requests/s: 0.01 CPU-seconds each
    assert cpu_demand(0.5, 10.0, 0.2) == pytest.approx(0.01)
    assert cpu_demand(0.5, 0.0, 0.2) is None


def test_hog_share_is_what_the_pod_used_beyond_its_requests_needs() -> None:
    # 50% of the limit for 10 rps: 5% per rps; during, 4 rps need 20% of a pod at 100%
    assert hog_share(0.5, 1.0, 10.0, 4.0) == pytest.approx(0.8)
    # the same traffic and use: no hog
    assert hog_share(0.5, 0.5, 10.0, 10.0) == pytest.approx(0.0)
    assert hog_share(0.0, 1.0, 10.0, 4.0) is None
    assert hog_share(math.nan, 1.0, 10.0, 4.0) is None


def test_a_saturated_pods_share_leaves_exactly_the_throughput_it_kept() -> None:
    """At the limit the throughput is the capacity: (1 - share) x limit / demand = X."""
    u_before, x_before, x_during, limit = 0.4, 20.0, 6.0, 0.2
    share = hog_share(u_before, 1.0, x_before, x_during)
    assert share is not None
    demand = cpu_demand(u_before, x_before, limit)
    assert demand is not None
    assert (1 - share) * limit / demand == pytest.approx(x_during)


def test_the_twins_share_and_limit_keep_the_real_capacity() -> None:
    limit, measured, twin = 0.2, 0.004, 0.001
    share = 0.75
    real_capacity = (1 - share) * limit / measured
    twin_share = twin_quota_share(share, measured, twin)
    assert (1 - twin_share) * limit / twin == pytest.approx(real_capacity)
    twin_limit = twin_cpu_limit(limit, measured, twin)
    assert (1 - share) * twin_limit / twin == pytest.approx(real_capacity)


def _day() -> NezhaDay:
    times = np.arange(0.0, 60.0 * 30, 60.0) + 60.0
    cpu = np.full(len(times), 0.5)
    rate = np.full(len(times), 10.0)
    start = 60.0 * 20
    during = (times > start + 30) & (times <= start + 180 + 30)
    cpu[during] = 1.0
    rate[during] = 4.0
    fault = NezhaFault(start, "", "svc-1-2", "svc", "cpu_contention")
    return NezhaDay(
        times=times,
        step=60.0,
        entry={},
        services={"svc": {"cpu": cpu, "rate": rate}},
        edges={},
        calls=(),
        faults=[fault],
    )


def test_a_nezha_fault_reads_usage_and_rate_before_and_during() -> None:
    day = _day()
    est = nezha_cpu_fault(day, "svc", day.faults[0].timestamp, 180.0)
    assert est is not None
    assert (est.usage_before, est.rate_before) == (0.5, 10.0)
    assert (est.usage_during, est.rate_during) == (1.0, 4.0)
    assert est.share == pytest.approx(0.8)
    assert est.saturated
    assert nezha_cpu_fault(day, "other", 0.0, 180.0) is None


def test_cpu_demands_leave_the_minutes_after_faults_out() -> None:
    assert nezha_cpu_demands(_day(), {"svc": 0.2}) == {"svc": pytest.approx(0.01)}
