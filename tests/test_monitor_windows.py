"""Monitor windows: what a run reports must not depend on whether per-service series are kept.

Without per-service series the engine buffers each service's window over many windows and
rolls it only when ``step`` or ``results`` reads it (and each window for services a failover
control watches). These tests run the same seed with series kept (every window rolled) and
without, and require the same figures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from twin.policy import Policy
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
OB = Topology.load(ROOT / "topologies" / "online-boutique.yaml")


def _same(a: Any, b: Any, where: str) -> None:
    """Equal, but for means: their sums are added up in another grouping (equal to rounding)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if k == "mean" and a[k] is not None and b[k] is not None:
                assert a[k] == pytest.approx(b[k], rel=1e-12), f"{where}.{k}"
            else:
                _same(a[k], b[k], f"{where}.{k}")
    else:
        nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        assert a == b or nan, where


def test_service_totals_are_the_same_with_and_without_per_service_series() -> None:
    sc = Scenario.model_validate(
        {
            "duration": 180,
            "warmup": 20,
            "seed": 3,
            "faults": [
                {
                    "kind": "latency",
                    "target": "productcatalogservice",
                    "start": 60,
                    "duration": 40,
                    "delay": 0.05,
                },
                {
                    "kind": "error_rate",
                    "target": "currencyservice",
                    "start": 90,
                    "duration": 30,
                    "probability": 0.3,
                },
            ],
        }
    )
    kept = Simulation(OB, sc, series="all").run().summary
    buffered = Simulation(OB, sc, series="entries").run().summary
    assert kept["requests"] == buffered["requests"] > 1000
    assert kept["latency"] == buffered["latency"]
    _same(kept["services"], buffered["services"], "services")


def test_step_stretches_are_the_same_with_and_without_per_service_series() -> None:
    # 7.3 s steps do not line up with the 1 s windows: a step ends inside a window
    sc = Scenario.model_validate(
        {
            "duration": 90,
            "warmup": 0,
            "seed": 5,
            "faults": [{"kind": "outage", "target": "cartservice", "start": 30, "duration": 15}],
        }
    )
    sims = [Simulation(OB, sc, series=s) for s in ("all", "entries")]
    total_arrivals = 0
    while sims[0].now < 90:
        kept, buffered = (sim.step(7.3) for sim in sims)
        for name, k in kept["services"].items():
            _same(k, buffered["services"][name], name)
        total_arrivals += sum(s["arrivals"] for s in kept["services"].values())
    final = sims[1].results().summary["services"]
    # with no warm-up every arrival is measured: the stretches add up to the run's totals
    assert total_arrivals == sum(s["arrivals"] for s in final.values()) > 1000


FAILOVER = {"to": "s", "when_error_rate": 0.5, "window": 5, "min_requests": 10, "hold": 20}


def test_failover_switches_at_the_same_times_without_per_service_series() -> None:
    def svc(calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        st = {"dist": "exponential", "mean": 0.01}
        return {
            "workers": 100,
            "operations": {"default": {"service_time": st, "calls": calls or []}},
        }

    topo = Topology.from_dict(
        {
            "name": "failover",
            "services": {"a": svc([{"to": "b"}]), "b": svc(), "s": svc()},
            "workload": [{"entry": "a", "rate": 20.0}],
        }
    )
    sc = Scenario.model_validate(
        {
            "duration": 200,
            "seed": 7,
            "faults": [
                {
                    "kind": "error_rate",
                    "target": "b",
                    "probability": 0.9,
                    "start": 50,
                    "duration": 50,
                }
            ],
        }
    )
    pol = Policy.from_dict({"services": {"b": {"failover": FAILOVER}}})
    runs = []
    for series in ("all", "entries"):
        sim = Simulation(topo, sc, pol, series=series)
        summary = sim.run().summary
        runs.append((sim.failovers["b"].switches, summary))
    (sw_kept, kept), (sw_buffered, buffered) = runs
    assert sw_kept == sw_buffered and len(sw_kept) >= 2
    _same(kept["services"], buffered["services"], "services")


def _chain() -> Topology:
    def svc(calls: list[dict[str, Any]]) -> dict[str, Any]:
        st = {"dist": "exponential", "mean": 0.05}
        return {"workers": 3, "operations": {"default": {"service_time": st, "calls": calls}}}

    return Topology.from_dict(
        {
            "name": "chain",
            "services": {"a": svc([{"to": "b"}]), "b": svc([])},
            "workload": [{"entry": "a", "rate": 5.0}],
        }
    )


def _with_idle_gap(gap: float) -> Scenario:
    """30 s of traffic (5 s of it warm-up), then ``gap`` seconds with no arrivals."""
    profile = [{"at": 0, "multiplier": 1.0}, {"at": 30, "multiplier": 0.0}]
    return Scenario.model_validate(
        {"duration": 30 + gap, "warmup": 5, "seed": 11, "load": {"profile": profile}}
    )


def test_idle_windows_emit_zero_rows_without_touching_a_histogram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from twin.stats import LogHistogram

    calls = {"merge": 0, "quantiles": 0, "clear": 0}
    for method in calls:
        original = getattr(LogHistogram, method)

        def counted(self: LogHistogram, *a: Any, _m: str = method, _f: Any = original) -> Any:
            calls[_m] += 1
            return _f(self, *a)

        monkeypatch.setattr(LogHistogram, method, counted)

    def run(gap: float) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
        before = dict(calls)
        res = Simulation(_chain(), _with_idle_gap(gap), series="all").run()
        return res.timeseries.rows, {k: calls[k] - before[k] for k in calls}

    short_rows, short_work = run(40.0)
    long_rows, long_work = run(400.0)
    assert short_work["merge"] > 100 and short_work["quantiles"] > 50
    # 360 more windows with nothing in them: not one more histogram operation
    assert long_work == short_work
    # and the same rows up to where the short run ended, then idle rows only
    assert long_rows[: len(short_rows)] == short_rows
    tail = [r for r in long_rows[len(short_rows) :] if r[4] != "resources"]
    assert {(r[4], r[5]) for r in tail} == {
        ("requests", "arrivals"),
        ("requests", "succeeded"),
        ("requests", "failed"),
    }
    assert {r[6] for r in tail} == {0.0}
    assert len(tail) == 360 * 3 * 3  # 360 windows, one entry and two services, three rows


def test_a_stretch_is_the_same_whether_or_not_earlier_stretches_were_taken() -> None:
    # counters skip the stretch's bookkeeping until the run is first stepped
    sc = _with_idle_gap(10.0)
    stepped = Simulation(_chain(), sc)
    stepped.step(12.5)
    run_first = Simulation(_chain(), sc)
    run_first.run(until=12.5)
    a, b = stepped.step(10.0), run_first.step(10.0)
    assert a.entries["a"].arrivals > 20
    assert a.to_json() == b.to_json()


def test_the_series_frame_is_the_frame_of_its_rows() -> None:
    # failures by reason, attack traffic and corrupted answers add rows beyond the usual
    sc = Scenario.model_validate(
        {
            "duration": 60,
            "warmup": 10,
            "seed": 2,
            "window": 2.5,
            "faults": [
                {"kind": "outage", "target": "cartservice", "start": 20, "duration": 10},
                {"kind": "attack", "target": "frontend", "start": 30, "duration": 10, "rate": 50},
                {
                    "kind": "data_corruption",
                    "target": "productcatalogservice",
                    "start": 15,
                    "duration": 30,
                    "probability": 0.2,
                },
            ],
        }
    )
    from twin.results import TimeSeries

    series = Simulation(OB, sc).run().timeseries
    families = {r[4] for r in series.rows}
    assert {"failures", "attack", "latency", "resources"} <= families
    assert any(r[5] == "corrupted" for r in series.rows)
    pd.testing.assert_frame_equal(series.frame(), TimeSeries(series.rows).frame(), check_exact=True)
