"""Fault kinds have one home: each kind is one class in twin.faults that owns its fields,
targets, intensity, keywords and effects, and every consumer works through the registry."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from agents.scenarios import FaultCatalogue, FaultSpec, catalogue_kinds, scenario_for
from explorer.whatif import INTENSITY, FaultChoice, fault_document, from_slider, targets
from twin.campaign import load_campaign
from twin.faults import FAULT_KINDS, KINDS, Fault, FaultBase, scale_fault
from twin.incidents import classify
from twin.scenario import Scenario
from twin.store import chaos_kind
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]

_FAULT: TypeAdapter[Any] = TypeAdapter(Fault)

# -- the literal rule -------------------------------------------------------------------------

SCANNED = ("twin", "agents", "explorer", "experiments", "testbed", "app.py")
HOME = ROOT / "twin" / "faults"

SHARED_WORDS = {"latency", "error_rate", "attack", "bandwidth"}
"""Kind names that are also other concepts: summary.json / metric keys ("latency",
"error_rate"), the results family of attack traffic ("attack"), a link's capacity
("bandwidth"). They count as a fault kind only where the code is plainly about kinds: next
to a name with "kind" in it, as a ``kind`` value, in a ``Literal``, or in a kind table."""


def _is_kind(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in FAULT_KINDS


def _kind_table(members: list[ast.expr]) -> bool:
    """Two kind names or more, one of them no other concept: a table of kinds."""
    names = {m.value for m in members if isinstance(m, ast.Constant)}
    return len(names) >= 2 and bool(names - SHARED_WORDS)


def _about_kinds(node: ast.AST) -> bool:
    return "kind" in ast.unparse(node).lower()


def kind_literals(source: str) -> list[tuple[int, str]]:
    """(line, name) of every fault-kind name used as a fault kind in the source."""
    hits: list[tuple[int, str]] = []

    def hit(node: ast.AST) -> None:
        assert isinstance(node, ast.Constant)
        hits.append((node.lineno, str(node.value)))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for i, side in enumerate(sides):
                found = [side] if _is_kind(side) else []
                if isinstance(side, (ast.Tuple, ast.List, ast.Set)):
                    found = [e for e in side.elts if _is_kind(e)]
                others = sides[:i] + sides[i + 1 :]
                for c in found:
                    assert isinstance(c, ast.Constant)
                    if c.value not in SHARED_WORDS or any(_about_kinds(o) for o in others):
                        hit(c)
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == "kind" and _is_kind(v):
                    hit(v)
            keys = [k for k in node.keys if k is not None and _is_kind(k)]
            if _kind_table(keys):
                for k in keys:
                    hit(k)
        elif isinstance(node, ast.keyword):
            if node.arg is not None and "kind" in node.arg and _is_kind(node.value):
                hit(node.value)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elts = [e for e in node.elts if _is_kind(e)]
            if _kind_table(elts):
                for e in elts:
                    hit(e)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("Literal"):
            for sub in ast.walk(node.slice):
                if _is_kind(sub):
                    hit(sub)
    return sorted(set(hits))


def _scanned_files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        p = ROOT / name
        out += [p] if p.is_file() else sorted(p.rglob("*.py"))
    return [p for p in out if HOME not in p.parents]


def test_fault_kind_names_appear_as_literals_only_in_twin_faults() -> None:
    files = _scanned_files()
    assert len(files) > 50  # the scan sees the code base
    found = {
        str(p.relative_to(ROOT)): hits
        for p in files
        if (hits := kind_literals(p.read_text(encoding="utf-8")))
    }
    assert found == {}, f"fault kinds named outside twin/faults: {found}"


@pytest.mark.parametrize(
    "planted",
    [
        'if x == "outage":\n    pass\n',
        'if f.kind == "latency":\n    pass\n',
        'ok = kind in ("traffic_surge", "attack")\n',
        'doc = {"kind": "error_rate", "target": "a"}\n',
        'LEVELS = {"latency": 1, "outage": 2}\n',
        'K = Literal["bandwidth"]\n',
        'make(kind="memory_leak")\n',
        'KINDS = ("cpu_exhaustion", "pool_exhaustion")\n',
    ],
)
def test_the_literal_scan_flags_a_planted_kind_name(planted: str) -> None:
    assert kind_literals(planted)


def test_the_literal_scan_lets_metric_keys_that_share_a_name_pass() -> None:
    source = (
        'p99 = summary["latency"]["p99"]\nif column == "error_rate":\n    pass\n'
        'out = {"latency": lat, "attack": attack}\n'
    )
    assert kind_literals(source) == []


# -- the registry -----------------------------------------------------------------------------


def test_the_registry_maps_each_tag_to_the_class_whose_literal_it_is() -> None:
    assert tuple(KINDS) == FAULT_KINDS
    for name, cls in KINDS.items():
        assert cls.name == name
        fault = _FAULT.validate_python(cls.document(_target(cls), cls.intensity.typical, TOPO))
        assert type(fault) is cls


# -- a topology every kind can target ---------------------------------------------------------

TOPO = Topology.from_dict(
    yaml.safe_load(
        """\
name: kinds
hosts:
  h1: {cores: 4, zone: z1, disk_bandwidth: 1.0e7}
services:
  web:
    replicas: 2
    workers: 4
    operations:
      default:
        service_time: {dist: exponential, mean: 0.005}
        calls: [{to: db}]
  db:
    replicas: 4
    workers: 2
    host: h1
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        io: {dist: constant, mean: 20000}
workload:
  - {entry: web, rate: 20}
"""
    )
)


def _target(cls: type[FaultBase]) -> str:
    t = cls.targets
    return "web" if t.entry else ("db" if t.service else "web->db")


# -- intensity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAULT_KINDS)
def test_each_kind_round_trips_kind_and_intensity_through_its_document(name: str) -> None:
    cls = KINDS[name]
    for x in {cls.intensity.typical, *cls.intensity.sample}:
        x = cls.intensity.clamp(x)
        doc = cls.document(_target(cls), x, TOPO)
        fault = _FAULT.validate_python(doc)
        assert fault.kind == name
        back = cls.intensity_of(fault, TOPO)
        if name == "outage":  # whole replicas: db has 4, so a share rounds up to quarters
            assert back == math.ceil(x * 4) / 4
        else:
            assert back == pytest.approx(x)


def test_an_outage_share_becomes_replicas_and_a_surge_a_multiple_of_the_entry_rate() -> None:
    assert KINDS["outage"].document("db", 0.5, TOPO)["replicas"] == 2
    assert "replicas" not in KINDS["outage"].document("db", 1.0, TOPO)
    assert KINDS["traffic_surge"].document("web", 1.5, TOPO)["rate"] == pytest.approx(30.0)
    assert KINDS["attack"].document("web", 2.0, entry_rate=7.0)["rate"] == pytest.approx(14.0)


def test_bandwidth_is_bytes_per_second_and_pickers_show_kib() -> None:
    cls = KINDS["bandwidth"]
    assert cls.document("web->db", 102_400.0, TOPO)["bytes_per_second"] == 102_400.0
    assert cls.to_display(102_400.0) == 100.0
    assert cls.from_display(100.0) == 102_400.0


def _fault(name: str, **fields: Any) -> Any:
    cls = KINDS[name]
    doc = cls.document(_target(cls), cls.intensity.typical, TOPO)
    doc.update(fields)
    return _FAULT.validate_python(doc)


def test_scaling_caps_probabilities_keeps_factors_at_least_one_and_divides_bandwidth() -> None:
    assert scale_fault(_fault("error_rate", probability=0.6), 2.0).probability == 1.0
    assert scale_fault(_fault("packet_loss", probability=0.2), 0.5).probability == 0.1
    assert scale_fault(_fault("pool_exhaustion", fraction=0.5), 4.0).fraction == 1.0
    assert scale_fault(_fault("data_corruption", probability=0.9), 2.0).probability == 1.0
    assert scale_fault(_fault("cpu_exhaustion", factor=2.0), 0.25).factor == 1.0
    assert scale_fault(_fault("disk_io", factor=2.0), 3.0).factor == 6.0
    assert scale_fault(_fault("bandwidth", bytes_per_second=1000.0), 4.0).bytes_per_second == 250.0
    lat = scale_fault(_fault("latency"), 3.0)
    assert lat.delay.expected() == pytest.approx(0.6)
    assert scale_fault(_fault("memory_leak", growth_mb_per_s=2.0), 3.0).growth_mb_per_s == 6.0
    assert scale_fault(_fault("traffic_surge"), 2.0).rate == pytest.approx(40.0)
    outage = _fault("outage")
    assert scale_fault(outage, 3.0) is outage  # an outage has no intensity to scale


@pytest.mark.parametrize("name", FAULT_KINDS)
def test_each_kind_has_a_unit_a_valid_range_and_a_picker_inside_it(name: str) -> None:
    spec = KINDS[name].intensity
    assert spec.unit
    assert spec.low <= spec.typical <= spec.high
    assert spec.clamp(spec.low - 1.0) >= spec.low and spec.clamp(spec.high + 1.0) <= spec.high
    lo, hi = (KINDS[name].from_display(v) for v in (spec.picker.low, spec.picker.high))
    assert spec.low <= lo <= hi <= spec.high


# -- keywords -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAULT_KINDS)
def test_each_kinds_incident_keywords_classify_as_that_kind(name: str) -> None:
    words = KINDS[name].symptoms
    assert words, f"{name} has no incident keywords"
    assert classify(f"incident: {words[0]} on checkout") == name


@pytest.mark.parametrize("name", [k for k, c in KINDS.items() if c.chaos_words])
def test_each_kinds_chaos_words_name_that_kind(name: str) -> None:
    assert chaos_kind(f"my-{KINDS[name].chaos_words[0]}-experiment") == name


# -- every consumer takes every kind from the registry -------------------------------------------


@pytest.mark.parametrize("name", FAULT_KINDS)
def test_a_campaign_grid_sweeps_every_kind(tmp_path: Path, name: str) -> None:
    (tmp_path / "t.yaml").write_text(TOPO.to_yaml())
    (tmp_path / "c.yaml").write_text(
        f"name: c\ntopology: t.yaml\nduration: 20\nwarmup: 2\nbaseline: false\n"
        f"grid:\n  faults:\n    - {{kind: {name}}}\n"
    )
    plan = load_campaign(tmp_path / "c.yaml")
    kinds = {f.kind for ps in plan.scenarios for f in ps.scenario.faults}
    assert kinds == {name}
    for ps in plan.scenarios:
        ps.scenario.check_against(TOPO)


@pytest.mark.parametrize("name", FAULT_KINDS)
def test_the_explorer_builds_a_valid_scenario_for_every_kind(name: str) -> None:
    options = targets(TOPO, name)
    assert options
    choice = FaultChoice(name, options[0], 5, 10, from_slider(name, INTENSITY[name].default))
    doc = fault_document(TOPO, choice)
    sc = Scenario.model_validate({"duration": 30, "faults": [doc]})
    sc.check_against(TOPO)
    assert KINDS[name].intensity_of(sc.faults[0], TOPO) == pytest.approx(choice.intensity)


def test_the_explorer_offers_no_target_for_a_disk_fault_without_a_disk() -> None:
    data = TOPO.to_dict()
    data["hosts"]["h1"].pop("disk_bandwidth")
    del data["services"]["db"]["operations"]["default"]["io"]
    assert targets(Topology.from_dict(data), "disk_io") == []


@pytest.mark.parametrize("name", [k for k, c in KINDS.items() if c.agent_levels])
def test_the_agents_catalogue_turns_every_catalogued_kind_into_a_valid_scenario(
    name: str,
) -> None:
    assert name in catalogue_kinds(TOPO)
    cls = KINDS[name]
    for level in cls.agent_levels:
        spec = FaultSpec(name, _target(cls), 10.0, 20.0, level)
        sc = scenario_for(spec, 60.0, 5.0, 1.0, entry_rate=20.0)
        sc.check_against(TOPO)
        assert sc.faults[0].kind == name


def test_the_agents_catalogue_skips_disk_kinds_on_a_topology_without_disks() -> None:
    boutique = Topology.load(ROOT / "topologies" / "online-boutique.yaml")
    assert not boutique.has_disk()
    assert all(not KINDS[k].needs_disk for k in catalogue_kinds(boutique))
    assert "disk_io" in FaultCatalogue(TOPO).kinds


NEW_KIND = '''
from typing import Any, ClassVar, Literal

from pydantic import Field

from twin.faults.base import (
    FaultBase, FluidEngine, Intensity, Picker, RequestEngine, Targets,
)


class GrayFailureFault(FaultBase):
    """A service answers slowly and wrongly at once (a kind defined outside the package)."""

    kind: Literal["gray_failure"]
    factor: float = Field(ge=1.0)

    label: ClassVar[str] = "gray failure"
    listing: ClassVar[int] = 65
    targets: ClassVar[Targets] = Targets(service=True)
    intensity: ClassVar[Intensity] = Intensity(
        unit="slow-down factor", field="factor", low=1.0, high=float("inf"), typical=2.0,
        sample=(1.5, 3.0), picker=Picker("factor", 1.0, 5.0, 2.0, 0.5, "slower and wrong"),
    )

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        engine.slow(self.target, self.factor)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        engine.slow(self.target, self.factor)
'''


def test_a_new_kind_is_one_module_the_registry_finds_without_an_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from twin import faults

    (tmp_path / "gray_failure.py").write_text(NEW_KIND)
    monkeypatch.setattr(faults, "__path__", [*faults.__path__, str(tmp_path)])
    try:
        found = faults._discover()
    finally:
        sys.modules.pop("twin.faults.gray_failure", None)
    names = list(found)
    assert "gray_failure" in names
    # placed by its listing, between cpu_exhaustion (60) and memory_leak (70)
    assert names.index("gray_failure") == names.index("cpu_exhaustion") + 1
    assert [n for n in names if n != "gray_failure"] == list(FAULT_KINDS)
    doc = found["gray_failure"].document("frontend", 2.5)
    assert doc == {"kind": "gray_failure", "target": "frontend", "factor": 2.5}


def test_two_classes_with_one_tag_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from twin import faults

    (tmp_path / "second_latency.py").write_text(
        NEW_KIND.replace('Literal["gray_failure"]', 'Literal["latency"]')
    )
    monkeypatch.setattr(faults, "__path__", [*faults.__path__, str(tmp_path)])
    try:
        with pytest.raises(TypeError, match="latency"):
            faults._discover()
    finally:
        sys.modules.pop("twin.faults.second_latency", None)
