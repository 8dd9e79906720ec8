"""Known truth in, the same truth out: spans generated from a known topology (edges, call
probability, fan-out, parallel vs sequential, service-time means, network time) are
calibrated back to it within tolerances set by the sample size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from span_csv import SpanCsv
from typer.testing import CliRunner

from twin.cli import app
from twin.topology import Topology

N = 1500
P_BACK = 0.7  # front calls back twice in parallel with this probability, then cache always
MEANS = {"front": 0.005, "back": 0.010, "cache": 0.002}
CV = {"front": 0.5, "back": 0.8, "cache": 0.3}
WIRE = 0.0004  # each way, between client and server span


def _lognormal(rng: np.random.Generator, mean: float, cv: float) -> float:
    s2 = math.log1p(cv * cv)
    return float(rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2)))


def _write_csv(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = SpanCsv()
    span = table.span

    def server_call(trace: str, parent: str, svc: str, t: float) -> float:
        """A client span in ``parent`` around the callee's server span; returns its end."""
        d = _lognormal(rng, MEANS[svc], CV[svc])
        client = span(trace, parent, "front", f"call {svc}", t, t + d + 2 * WIRE)
        span(trace, client, svc, "get", t + WIRE, t + WIRE + d)
        return t + d + 2 * WIRE

    t = 1_700_000_000.0
    for i in range(N):
        t += float(rng.exponential(0.1))
        trace = f"t{i}"
        own = _lognormal(rng, MEANS["front"], CV["front"])
        root_id = table.open_root()  # its row is written when its end is known
        now = t + own
        if rng.random() < P_BACK:
            now = max(server_call(trace, root_id, "back", now) for _ in range(2))
        now = server_call(trace, root_id, "cache", now)
        table.close_root(root_id, trace, "front", "GET", t, now)
    table.write(path)


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    d = tmp_path_factory.mktemp("recovery")
    _write_csv(d / "spans.csv", seed=7)
    r = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--traces",
            str(d / "spans.csv"),
            "--out",
            str(d / "out"),
            "--predict",
            "0",
            "--no-classes",
        ],
    )
    assert r.exit_code == 0, r.output
    return Topology.load(d / "out" / "topology.yaml")


def test_edges_are_exactly_the_generating_topologys(recovered: Topology) -> None:
    assert set(recovered.services) == {"front", "back", "cache"}
    assert set(recovered.service_graph().edges) == {("front", "back"), ("front", "cache")}


def test_call_probability_count_and_parallelism(recovered: Topology) -> None:
    calls = {c.to.split(":")[0]: c for c in recovered.services["front"].operations["GET"].calls}
    sd = math.sqrt(P_BACK * (1 - P_BACK) / N)
    assert abs(calls["back"].probability - P_BACK) < 4 * sd
    assert calls["back"].count == 2 and calls["back"].parallel
    assert calls["cache"].probability == pytest.approx(1.0) and not calls["cache"].parallel
    order = [c.to.split(":")[0] for c in recovered.services["front"].operations["GET"].calls]
    assert order == ["back", "cache"]


def test_service_time_means_within_sampling_error(recovered: Topology) -> None:
    counts = {"front": N, "back": 2 * P_BACK * N, "cache": N}
    for svc, mean in MEANS.items():
        op = next(iter(recovered.services[svc].operations.values()))
        got = op.service_time.expected()
        tol = 4 * CV[svc] / math.sqrt(counts[svc])  # four standard errors of the mean
        assert abs(got - mean) / mean < tol, (svc, got, mean)


def test_network_time_is_the_wire_not_the_service(recovered: Topology) -> None:
    links = recovered.network.links
    for callee in ("back", "cache"):
        lat = links[f"front->{callee}"].latency.expected()
        # client minus server = 2 * WIRE exactly (up to ns rounding)
        assert lat == pytest.approx(2 * WIRE, abs=5e-6), (callee, lat)
