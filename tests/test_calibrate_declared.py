"""``twin calibrate --optional CALLER->CALLEE``: a call the traces cannot show to be optional
(nothing failed in them) is declared so, and the calibrated twin then serves its callers
through the callee's failures; an edge the traces do not have is refused, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from span_csv import SpanCsv
from typer.testing import CliRunner

from twin.calibrate.declared import SHOWN, parse_edge, with_optional_calls
from twin.cli import app
from twin.errors import InputError
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology


def _traces(tmp_path: Path) -> Path:
    """A page service that calls ``ads`` then ``cart`` on every request; nothing fails."""
    t = SpanCsv()
    for i in range(120):
        trace, t0 = f"t{i}", 1_700_000_000.0 + i * 0.25
        root = t.open_root()
        t.span(trace, root, "ads", "GetAds", t0 + 0.001, t0 + 0.004)
        t.span(trace, root, "cart", "GetCart", t0 + 0.005, t0 + 0.008)
        t.close_root(root, trace, "page", "Render", t0, t0 + 0.010)
    path = tmp_path / "spans.csv"
    t.write(path)
    return path


def _calibrate(tmp_path: Path, *args: str) -> tuple[int, str, Path]:
    out = tmp_path / "out"
    traces = str(_traces(tmp_path))
    argv = ["calibrate", "--traces", traces, "--out", str(out), "--predict", "0", *args]
    r = CliRunner().invoke(app, argv)
    return r.exit_code, r.output, out


def _success_with_failing(topo: Topology, target: str) -> float:
    faults = [
        {"kind": "error_rate", "target": target, "start": 0, "duration": 60, "probability": 1.0}
    ]
    sc = Scenario.model_validate({"duration": 60, "warmup": 0, "seed": 3, "faults": faults})
    entry = Simulation(topo, sc).run().summary.services["page"]
    return 1.0 - entry.failed / entry.arrivals


def _calls(topo: Topology) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for op in topo.services["page"].operations.values():
        for c in op.calls:
            out.setdefault(c.to.split(":")[0], []).append(c.optional)
    return out


def test_a_declared_edge_makes_its_calls_optional_and_no_other(tmp_path: Path) -> None:
    code, output, out = _calibrate(tmp_path, "--optional", "page->ads")
    assert code == 0, output
    calls = _calls(Topology.load(out / "topology.yaml"))
    assert calls["ads"] and all(calls["ads"])
    assert calls["cart"] and not any(calls["cart"])
    assert "declared optional: `page->ads`" in (out / "report.md").read_text()


def test_the_declared_twin_serves_pages_through_the_callees_failures(tmp_path: Path) -> None:
    code, output, out = _calibrate(tmp_path)
    assert code == 0, output
    plain = Topology.load(out / "topology.yaml")
    declared, marked = with_optional_calls(plain, ["page->ads"])
    assert marked == {"page->ads": 1}
    # every page calls ads: a required call fails them all, an optional one none
    assert _success_with_failing(plain, "ads") == 0.0
    assert _success_with_failing(declared, "ads") == 1.0
    # the declaration is about ads only: cart's failures still fail the page
    assert _success_with_failing(declared, "cart") == 0.0


def test_an_edge_the_traces_do_not_have_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path,
) -> None:
    code, output, out = _calibrate(tmp_path, "--optional", "page->adz")
    assert code == 2
    line = output.strip()
    assert "\n" not in line
    assert "page->adz" in line and "page->ads" in line  # what was asked, what there is
    assert not out.exists()


@pytest.mark.parametrize("text", ["page", "page->", "->ads", "page->ads:GetAds", "a->b->c"])
def test_a_malformed_edge_is_one_line_exit_2(tmp_path: Path, text: str) -> None:
    code, output, _ = _calibrate(tmp_path, "--optional", text)
    assert code == 2
    assert output.strip().count("\n") == 0 and repr(text) in output
    with pytest.raises(InputError):
        parse_edge(text)


def test_an_edge_reads_with_spaces_around_the_arrow() -> None:
    assert parse_edge(" page -> ads ") == ("page", "ads")


def test_the_refusal_stays_one_short_line_in_a_large_system() -> None:
    leaf = {"operations": {"op": {"service_time": {"dist": "exponential", "mean": 0.001}}}}
    calls = [{"to": f"s{i:02d}"} for i in range(SHOWN + 15)]
    root = {
        "operations": {
            "op": {"service_time": {"dist": "exponential", "mean": 0.001}, "calls": calls}
        }
    }
    services = {"root": root} | {f"s{i:02d}": leaf for i in range(SHOWN + 15)}
    topo = Topology.from_dict(
        {"name": "wide", "services": services, "workload": [{"entry": "root", "rate": 1.0}]}
    )
    with pytest.raises(InputError) as err:
        with_optional_calls(topo, ["root->s99"])
    msg = str(err.value)
    assert "root->s00" in msg and "and 15 more" in msg
    assert f"root->s{SHOWN:02d}" not in msg  # the 21st edge is counted, not listed
