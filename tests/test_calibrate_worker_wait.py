"""A call's wait for a busy worker is taken out of its network gap when the worker count is
known (servers that open their span when a worker takes the request)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.calibrate.build import BuildOptions, build_topology
from twin.calibrate.callgraph import build_callgraph

NET = 0.002  # seconds of wire each way and back, in every call below
WORK = 0.040  # the callee's own processing per request


def _spans(n_calls: int, db_every: int = 0) -> pd.DataFrame:
    """``n_calls`` requests into gw at t=0, each calling ``api`` at once; api works one at a
    time: request k's span starts when request k-1's ends (its wait is k * WORK). With
    ``db_every``, every such request also calls ``db`` afterwards (two request classes)."""
    rows = []
    for k in range(n_calls):
        t = f"t{k}"
        began = NET / 2 + k * WORK
        end = began + WORK
        rows += [
            (t, "g", "", "gw", "GET", "server", 0.0, end + NET),
            (t, "c", "g", "gw", "call api", "client", 0.0, end + NET / 2),
            (t, "s", "c", "api", "GET", "server", began, end),
        ]
        if db_every and k % db_every == 0:
            rows += [
                (t, "d", "g", "gw", "call db", "client", end + NET / 2, end + NET),
                (t, "ds", "d", "db", "GET", "server", end + 0.75 * NET, end + 0.8 * NET),
            ]
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
        ],
    )
    df["error"] = False
    df["instance"] = df["service"]
    df["attributes"] = "{}"
    df["partial"] = False
    return df


def test_wait_for_a_busy_worker_is_not_network_time_when_workers_are_known() -> None:
    spans = _spans(4)
    raw = build_callgraph(spans).network[("gw", "api")]
    # client minus server: the wire plus the wait behind the k requests before
    assert sorted(raw) == pytest.approx([NET + k * WORK for k in range(4)])
    known = build_callgraph(spans, {"api": 1}).network[("gw", "api")]
    assert known == pytest.approx(np.full(4, NET))


def test_a_wait_while_a_worker_was_free_stays_in_the_gap() -> None:
    # two workers: the second request found one free, so its late start is not a worker wait
    spans = _spans(2)
    got = build_callgraph(spans, {"api": 2}).network[("gw", "api")]
    assert sorted(got) == pytest.approx([NET, NET + WORK])
    # "*" names every service
    star = build_callgraph(spans, {"*": 1}).network[("gw", "api")]
    assert star == pytest.approx(np.full(2, NET))


def test_full_network_of_request_classes_keeps_only_the_wire_for_a_one_worker_callee() -> None:
    spans = _spans(40, db_every=2)
    opts = BuildOptions(workers={"api": 1}, network="full", classes=True)
    topo = build_topology(build_callgraph(spans, {"api": 1}), opts).topology
    ops = topo.services["gw"].operations
    assert len(ops) == 2  # with and without the db call
    api = [c.latency for o in ops.values() for c in o.calls if c.to == "api:GET"]
    assert len(api) == 2
    assert all(d is not None and d.expected() == pytest.approx(NET, rel=1e-6) for d in api)
