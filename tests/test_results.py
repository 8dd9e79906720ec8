"""The typed results: Summary writes what summary.json always held, both engines step into one
Stretch shape, and both satisfy the SteppedTwin protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.replicate import combine, run_replications
from twin.results import EntryStretch, ServiceStretch, Stretch, Summary, write_json
from twin.scenario import Scenario
from twin.sim import Simulation, SteppedTwin
from twin.sim.fluid import FluidSimulation
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
OB = Topology.load(ROOT / "topologies" / "online-boutique.yaml")
FAULTY = Scenario.model_validate(
    {
        "duration": 60,
        "warmup": 5,
        "seed": 3,
        "faults": [
            {
                "kind": "error_rate",
                "target": "cartservice",
                "start": 10,
                "duration": 20,
                "probability": 0.4,
            },
        ],
    }
)


def _written(data: object, tmp_path: Path) -> str:
    path = tmp_path / "summary.json"
    write_json(path, data)
    return path.read_text()


def test_a_summary_file_read_back_writes_the_same_bytes(tmp_path: Path) -> None:
    summary = Simulation(OB, FAULTY).run().summary
    first = _written(summary, tmp_path)
    again = _written(Summary.model_validate(json.loads(first)), tmp_path)
    assert again == first
    assert json.loads(first)["failures"]["ERROR"] == summary.failures["ERROR"] > 0


def test_a_replicated_summary_read_back_writes_the_same_bytes(tmp_path: Path) -> None:
    short = FAULTY.model_copy(update={"duration": 30})
    summary = combine(run_replications(OB, short, None, replications=2))
    first = _written(summary, tmp_path)
    doc = json.loads(first)
    assert doc["replications"] == 2 and "ci" in doc
    assert list(doc)[:5] == ["edges", "slo", "faults", "seed", "wall_seconds"]
    assert _written(Summary.model_validate(doc), tmp_path) == first


def test_keys_absent_from_an_old_file_stay_absent() -> None:
    doc = {"requests": 3, "succeeded": 3, "failed": 0, "latency": {"p99": None}}
    summary = Summary.model_validate(doc)
    assert summary.to_json() == doc
    assert summary.entries == {} and summary.availability is None
    assert "entries" not in summary


def test_item_access_reads_the_json_form() -> None:
    summary = Simulation(OB, FAULTY).run().summary
    assert summary["latency"] == summary.to_json()["latency"]
    assert summary["services"]["cartservice"]["failed"] == summary.services["cartservice"].failed
    with pytest.raises(KeyError):
        summary["ci"]


def test_a_misspelt_field_is_refused() -> None:
    with pytest.raises(ValueError, match="reqests"):
        Summary.model_validate({"reqests": 1})


def test_both_engines_are_stepped_twins() -> None:
    sc = Scenario(duration=20)
    des: SteppedTwin = Simulation(OB, sc)
    fluid: SteppedTwin = FluidSimulation(OB, sc)
    for twin in (des, fluid):
        assert isinstance(twin, SteppedTwin)
        stretch = twin.step(5.0)
        assert isinstance(stretch, Stretch)
        assert twin.now == pytest.approx(5.0)
    assert not isinstance(object(), SteppedTwin)


def test_both_engines_fill_every_field_of_the_stretch() -> None:
    sc = Scenario(duration=20, seed=2)
    stretches = [Simulation(OB, sc).step(10.0), FluidSimulation(OB, sc).step(10.0)]
    for st in stretches:
        assert set(st.model_fields_set) == set(Stretch.model_fields)
        assert st.entries.keys() == {"frontend"}
        assert st.services.keys() == set(OB.services)
        for e in st.entries.values():
            assert type(e) is EntryStretch
            assert set(e.model_fields_set) == set(EntryStretch.model_fields)
            assert e.arrivals > 0 and e.latency.p99 is not None
        for s in st.services.values():
            assert type(s) is ServiceStretch
            assert set(s.model_fields_set) == set(ServiceStretch.model_fields)
    des, fluid = stretches
    assert des.entries["frontend"].failures == {}
    assert fluid.entries["frontend"].failures is None  # the fluid engine has no reasons
    assert fluid.entries["frontend"].latency.p50 is None
    assert des.entries["frontend"].latency.p50 is not None
