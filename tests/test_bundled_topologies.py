"""Bundled topologies load, name their source, and show a fault and a mitigation at work."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, SHARED_DATA

from twin.policy import Policy
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

BUNDLED = sorted(
    p.stem
    for p in (ROOT / "topologies").glob("*.yaml")
    if not p.name.endswith((".scenario.yaml", ".policy.yaml"))
)
SHARED = SHARED_DATA / "topologies"


def test_the_four_real_systems_are_bundled() -> None:
    assert set(BUNDLED) >= {"online-boutique", "deathstarbench-social", "teastore", "sock-shop"}


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_documents_load_check_and_name_their_source(name: str) -> None:
    topo = Topology.load(ROOT / "topologies" / f"{name}.yaml")
    assert topo.source and "@" in topo.source, "the public source, repository @ commit"
    assert topo.description
    Scenario.load_file(ROOT / "topologies" / f"{name}.scenario.yaml").check_against(topo)
    Policy.load_file(ROOT / "topologies" / f"{name}.policy.yaml").check_against(topo)
    g = topo.service_graph()
    assert max(d["utilization"] for _, d in g.nodes(data=True)) < 1.0


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_policy_improves_the_bundled_scenario(name: str) -> None:
    topo = Topology.load(ROOT / "topologies" / f"{name}.yaml")
    sc = Scenario.load_file(ROOT / "topologies" / f"{name}.scenario.yaml")
    sc = sc.model_copy(update={"duration": min(sc.duration, 600.0)})
    pol = Policy.load_file(ROOT / "topologies" / f"{name}.policy.yaml")
    bare = Simulation(topo, sc, series="entries").run().summary
    safe = Simulation(topo, sc, pol, series="entries").run().summary
    # the fault hurts the unprotected system, and the policy helps on tail latency or
    # availability (each scenario's comment says which trade it shows)
    better_tail = safe["latency"]["p99"] < 0.5 * bare["latency"]["p99"]
    better_avail = safe["availability"] > bare["availability"]
    assert better_tail or better_avail, (bare["latency"], safe["latency"])


@pytest.mark.skipif(not SHARED.exists(), reason=f"the public dataset {SHARED} is absent")
def test_online_boutique_edges_are_exactly_the_manifests_addr_variables() -> None:
    docs = [
        d
        for d in yaml.safe_load_all(
            (SHARED / "online-boutique-kubernetes-manifests.yaml").read_text()
        )
        if d
    ]
    deployed = {d["metadata"]["name"] for d in docs if d.get("kind") == "Deployment"}
    edges = set()
    for d in docs:
        if d.get("kind") != "Deployment" or d["metadata"]["name"] == "loadgenerator":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            for env in c.get("env", []):
                if env["name"].endswith("_ADDR"):
                    callee = env["value"].split(":")[0]
                    if callee in deployed:  # SHOPPING_ASSISTANT names no Deployment
                        edges.add((d["metadata"]["name"], callee))
    g = Topology.load(ROOT / "topologies" / "online-boutique.yaml").service_graph()
    assert set(g.edges) == edges
    assert set(g.nodes) == deployed - {"loadgenerator"}
