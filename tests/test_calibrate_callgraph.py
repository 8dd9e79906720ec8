"""Call graph and fits from spans: self time, parallel stages, call mix, network, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.calibrate.build import BuildOptions, build_topology
from twin.calibrate.callgraph import build_callgraph
from twin.calibrate.service_time import fit_service_time


def _spans(rows):
    df = pd.DataFrame(
        rows,
        columns=[
            "trace_id",
            "span_id",
            "parent_id",
            "service",
            "operation",
            "kind",
            "start",
            "end",
            "error",
        ],
    )
    df["instance"] = df["service"]
    df["attributes"] = "{}"
    df["partial"] = False
    return df


def _request(t, i, with_db=True, fail_db=False):
    """gw:GET -> client span -> api:list (server); api calls db twice in parallel, then cache."""
    p = f"t{i}"
    rows = [
        (t, p + "gw", "", "gw", "GET", "server", 0.0, 10.0, fail_db),
        (t, p + "c1", p + "gw", "gw", "call api", "client", 1.0, 9.0, fail_db),
        (t, p + "api", p + "c1", "api", "list", "server", 1.5, 8.5, fail_db),
        (t, p + "cache", p + "api", "cache", "get", "server", 7.0, 8.0, False),
    ]
    if with_db:
        rows += [
            (t, p + "db1", p + "api", "db", "q", "server", 2.0, 5.0, fail_db),
            (t, p + "db2", p + "api", "db", "q", "server", 3.0, 6.0, False),
        ]
    return rows


def test_self_time_is_duration_minus_union_of_calls() -> None:
    g = build_callgraph(_spans(_request("a", 0)))
    api = g.operations[("api", "list")]
    # api lasts 7; calls cover [2,6] (db, overlapping) and [7,8] (cache): 5 -> self 2
    assert api.self_times[0] == pytest.approx(2.0)
    # gw lasts 10; its call is the client span [1,9]: self 2
    assert g.operations[("gw", "GET")].self_times[0] == pytest.approx(2.0)


def test_overlapping_calls_are_parallel_and_later_ones_sequential() -> None:
    g = build_callgraph(_spans(_request("a", 0)))
    calls = {c.callee: c for c in g.operations[("api", "list")].calls}
    assert calls[("db", "q")].parallel and calls[("db", "q")].mean_count == 2
    assert not calls[("cache", "get")].parallel
    assert [c.callee for c in g.operations[("api", "list")].calls] == [
        ("db", "q"),
        ("cache", "get"),
    ]


def test_call_probability_is_share_of_instances_that_call() -> None:
    rows = []
    for i in range(4):
        rows += _request(f"t{i}", i, with_db=i < 1)
    g = build_callgraph(_spans(rows))
    db = next(c for c in g.operations[("api", "list")].calls if c.callee == ("db", "q"))
    assert db.probability == pytest.approx(0.25)
    topo = build_topology(g).topology
    call = next(c for c in topo.services["api"].operations["list"].calls if c.to == "db:q")
    assert call.count == 2 and call.probability == pytest.approx(0.25) and call.parallel


def test_network_time_is_client_minus_server_span() -> None:
    g = build_callgraph(_spans(_request("a", 0)))
    assert g.network[("gw", "api")][0] == pytest.approx(1.0)  # client 8, server 7
    assert ("api", "db") not in g.network  # no client span there: nothing to measure


def test_errors_are_attributed_to_where_they_arose() -> None:
    rows = _request("a", 0, fail_db=True) + _request("b", 1)
    g = build_callgraph(_spans(rows))
    assert g.operations[("db", "q")].intrinsic_errors == 1
    assert g.operations[("api", "list")].errors == 1
    assert g.operations[("api", "list")].intrinsic_errors == 0  # it only passed db's error on


def test_entry_rate_counts_roots_over_the_traced_window_and_sampling() -> None:
    rows = []
    for i in range(5):
        rows += [(f"t{i}", f"r{i}", "", "gw", "GET", "server", float(i), i + 1.0, False)]
    g = build_callgraph(_spans(rows))
    assert g.entry_rates()[("gw", "GET")] == pytest.approx(1.0)
    assert g.entry_rates(sampling=0.1)[("gw", "GET")] == pytest.approx(10.0)


def test_calls_that_would_loop_forever_are_dropped_and_said() -> None:
    rows = [
        ("t", "a1", "", "a", "x", "server", 0.0, 10.0, False),
        ("t", "b1", "a1", "b", "y", "server", 1.0, 9.0, False),
        ("t", "a2", "b1", "a", "x", "server", 2.0, 3.0, False),
    ]
    cal = build_topology(build_callgraph(_spans(rows)))
    assert any("cycle" in n for n in cal.notes)


def test_lognormal_samples_are_fitted_as_lognormal() -> None:
    x = np.random.default_rng(1).lognormal(np.log(0.01), 0.6, 2000)
    f = fit_service_time(x)
    assert f.family == "lognormal" and f.dist.expected() == pytest.approx(x.mean(), rel=0.05)


def test_gamma_samples_are_fitted_as_gamma() -> None:
    x = np.random.default_rng(2).gamma(4.0, 0.005, 2000)
    f = fit_service_time(x)
    assert f.family == "gamma" and f.cv == pytest.approx(0.5, rel=0.1)


def test_bimodal_samples_fall_back_to_the_data() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0.01, 0.0005, 1000), rng.normal(0.05, 0.001, 1000)])
    f = fit_service_time(x)
    assert f.family == "empirical" and "rejected" in f.reason
    assert f.dist.expected() == pytest.approx(x.mean(), rel=0.02)


def test_few_samples_get_a_moment_matched_gamma() -> None:
    f = fit_service_time([0.01, 0.02, 0.03])
    assert f.family == "gamma" and f.dist.expected() == pytest.approx(0.02)


def test_workers_override_and_demand_scaling() -> None:
    g = build_callgraph(_spans(_request("a", 0)))
    cal = build_topology(g, BuildOptions(workers={"*": 1, "api": 3}, demand={"db": 6.0}))
    assert cal.topology.services["gw"].workers == 1 and cal.topology.services["api"].workers == 3
    assert cal.topology.services["db"].operations["q"].service_time.expected() == pytest.approx(6.0)


def test_self_time_beyond_the_demand_becomes_delay_into_the_service() -> None:
    # db spans last 3 (no children): 1 of it held a worker, 2 did not (parsing, writing)
    g = build_callgraph(_spans(_request("a", 0)))
    topo = build_topology(g, BuildOptions(demand={"db": 1.0})).topology
    assert topo.services["db"].operations["q"].service_time.expected() == pytest.approx(1.0)
    assert topo.network.links["api->db"].latency.expected() == pytest.approx(2.0)
    assert "gw->api" in topo.network.links  # the measured wire time is untouched
    assert topo.network.links["gw->api"].latency.expected() == pytest.approx(1.0)
