"""The synthetic generator: deterministic, valid, and shaped like production call graphs."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.scenario import Scenario
from twin.sim import Simulation
from twin.synthetic import depth_profile, generate


def test_same_seed_gives_the_same_yaml_and_another_seed_does_not() -> None:
    assert generate(150, seed=7).to_yaml() == generate(150, seed=7).to_yaml()
    assert generate(150, seed=7).to_yaml() != generate(150, seed=8).to_yaml()


@settings(max_examples=8, deadline=None)
@given(n=st.integers(min_value=2, max_value=400), seed=st.integers(0, 10_000))
def test_every_generated_graph_is_acyclic_reachable_and_under_the_utilisation_bound(
    n: int, seed: int
) -> None:
    topo = generate(n, seed=seed)
    assert len(topo.services) == n
    g = topo.service_graph()
    assert nx.is_directed_acyclic_graph(g)
    entries = {topo.resolve(w.entry)[0] for w in topo.workload}
    reach = set(entries)
    for e in entries:
        reach |= nx.descendants(g, e)
    assert reach == set(topo.services)
    assert max(d["utilization"] for _, d in g.nodes(data=True)) <= 0.6 + 1e-9


@pytest.mark.parametrize("n", [100, 1000])
def test_shape_follows_the_published_production_figures(n: int) -> None:
    topo = generate(n, seed=1)
    shape = depth_profile(topo)
    assert 2 <= shape["median_depth"] <= 4  # shallow trees
    assert shape["max_depth"] <= 6
    assert 1.5 <= shape["mean_fanout"] <= 4 < shape["max_fanout"]  # heavy-tailed fan-out
    roles = [name.split("-")[0] for name in topo.services]
    assert roles.count("entry") == pytest.approx(0.13 * n, abs=1)
    assert roles.count("leaf") + roles.count("db") == pytest.approx(0.39 * n, abs=1)


def test_a_generated_topology_runs_in_the_engine_with_requests_conserved() -> None:
    topo = generate(200, seed=3)
    s = Simulation(topo, Scenario(duration=30, seed=1), series="entries").run().summary
    assert s["requests"] > 1000
    assert s["requests"] == s["succeeded"] + s["failed"] + s["in_flight"]
