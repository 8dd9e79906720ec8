"""The topology twin: YAML <-> model <-> networkx, and the traffic equations."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
import yaml

from twin.distributions import Constant, Empirical, Exponential, Gamma, LogNormal, Uniform
from twin.io import parse_model
from twin.topology import Topology

DOC = {
    "name": "shop",
    "hosts": {"n1": {"cores": 2, "zone": "z1"}},
    "services": {
        "gw": {
            "workers": 4,
            "host": "n1",
            "operations": {
                "default": {
                    "service_time": {"dist": "gamma", "mean": 0.01, "cv": 0.5},
                    "calls": [
                        {"to": "cat:list", "probability": 0.8},
                        {"to": "rec", "count": 2, "parallel": True},
                    ],
                }
            },
        },
        "cat": {
            "replicas": 2,
            "operations": {
                "list": {
                    "service_time": {"dist": "lognormal", "mean": 0.02, "cv": 1.2},
                    "calls": [{"to": "db"}],
                },
                "get": {"service_time": 0.005},
            },
        },
        "rec": {
            "operations": {
                "default": {"service_time": {"dist": "uniform", "low": 0.001, "high": 0.003}}
            }
        },
        "db": {
            "operations": {
                "q": {
                    "service_time": {
                        "dist": "empirical",
                        "quantiles": {0: 0.001, 0.5: 0.002, 1: 0.01},
                    }
                }
            }
        },
    },
    "network": {"links": {"gw->cat": {"latency": {"dist": "exponential", "mean": 0.001}}}},
    "workload": [{"entry": "gw", "rate": 10.0}],
    "slo": {"latency_p99": 0.5, "availability": 0.999},
}


def test_yaml_round_trip_gives_an_equal_topology(tmp_path: Path) -> None:
    topo = parse_model(Topology, DOC)
    path = tmp_path / "t.yaml"
    topo.to_yaml(path)
    again = Topology.load(path)
    assert again == topo
    assert yaml.safe_load(again.to_yaml()) == yaml.safe_load(topo.to_yaml())


def test_service_graph_has_services_as_nodes_and_calls_as_edges() -> None:
    g = parse_model(Topology, DOC).service_graph()
    assert isinstance(g, nx.DiGraph)
    assert set(g.nodes) == {"gw", "cat", "rec", "db"}
    assert set(g.edges) == {("gw", "cat"), ("gw", "rec"), ("cat", "db")}
    assert g.nodes["cat"]["replicas"] == 2 and g.nodes["gw"]["host"] == "n1"
    assert g.edges["gw", "cat"]["latency"] == pytest.approx(0.001)


def test_traffic_equations_multiply_probability_and_count_down_the_graph() -> None:
    rates = parse_model(Topology, DOC).operation_rates()
    assert rates["gw:default"] == pytest.approx(10.0)
    assert rates["cat:list"] == pytest.approx(8.0)
    assert rates["cat:get"] == 0.0
    assert rates["rec:default"] == pytest.approx(20.0)
    assert rates["db:q"] == pytest.approx(8.0)
    g = parse_model(Topology, DOC).service_graph()
    # offered utilisation = rate * mean service time / (replicas * workers)
    assert g.nodes["cat"]["utilization"] == pytest.approx(8.0 * 0.02 / 2)


@pytest.mark.parametrize(
    ("dist", "mean"),
    [
        (Constant(mean=0.5), 0.5),
        (Exponential(mean=0.5), 0.5),
        (LogNormal(mean=0.5, cv=1.5), 0.5),
        (Gamma(mean=0.5, cv=0.3), 0.5),
        (Uniform(low=0.2, high=0.8), 0.5),
        (Empirical(samples=[0.1, 0.9, 0.5]), 0.5),
        (Empirical(quantiles={0.0: 0.0, 1.0: 1.0}), 0.5),
    ],
)
def test_every_distribution_samples_its_stated_mean(dist: object, mean: float) -> None:
    import numpy as np

    sampler = dist.sampler(np.random.default_rng(0))  # type: ignore[attr-defined]
    xs = np.array([sampler() for _ in range(200_000)])
    assert dist.expected() == pytest.approx(mean)  # type: ignore[attr-defined]
    assert xs.mean() == pytest.approx(mean, rel=0.02)
    assert (xs >= 0).all()


def test_lognormal_and_gamma_have_the_stated_coefficient_of_variation() -> None:
    import numpy as np

    for dist in (LogNormal(mean=2.0, cv=0.7), Gamma(mean=2.0, cv=0.7)):
        s = dist.sampler(np.random.default_rng(1))
        xs = np.array([s() for _ in range(300_000)])
        assert xs.std() / xs.mean() == pytest.approx(0.7, rel=0.03)


def test_a_bare_number_is_a_constant_distribution() -> None:
    doc = {
        "name": "x",
        "services": {"a": {"operations": {"o": {"service_time": 0.25}}}},
        "workload": [{"entry": "a", "rate": 1}],
    }
    topo = parse_model(Topology, doc)
    assert topo.services["a"].operations["o"].service_time == Constant(mean=0.25)
