"""``twin replay``: the twin replays data it produced itself at ~100% accuracy; faults a
format cannot map are listed, never a crash; a twin prediction with no success is a counted
miss, never a ``nan``; ``--fit first`` fits on the first fault of a type and never scores it;
the anchor carries production's state before a fault into it; the two yardsticks
(persistence, the best constant) are what their definitions say."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from small_system import front_back

from twin.calibrate.accuracy import accuracy
from twin.errors import InputError
from twin.faults import ErrorRateFault, LatencyFault
from twin.io import parse_model
from twin.replay import ReplayConfig, replay
from twin.replay.document import Figures
from twin.replay.run import (
    Anchor,
    Prediction,
    at_load,
    best_constant,
    block_references,
    predict,
    skill,
)
from twin.topology import Topology

T0 = 1_700_000_000.0
STEP = 60.0
FAST = {"block_seconds": 600.0, "min_block_seconds": 300.0, "twin_seconds": 150.0, "seeds": 2}


def small() -> Topology:
    return front_back(rate=10.0, back={"dist": "lognormal", "mean": 0.02, "cv": 0.5})


def twin_windows(
    topo: Topology, start: float, n: int, faults: list[dict[str, Any]], seed: int
) -> list[dict[str, Any]]:
    """``n`` windows the twin itself produces (one long run, its figures on every window)."""
    pred = predict(
        topo, faults, seconds=300.0, warmup=30.0, seeds=[seed, seed + 100], observed=None
    )
    return [
        {
            "time": start + (i + 1) * STEP,
            "p50": pred.p50,
            "p99": pred.p99,
            "success": pred.success,
            "rate": 10.0,
        }
        for i in range(n)
    ]


def write_generic(folder: Path, rows: list[dict[str, Any]], faults: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["time,p50,p99,success,rate"]
    lines += [
        ",".join(
            "" if r[k] is None else f"{r[k]:.9g}" for k in ("time", "p50", "p99", "success", "rate")
        )
        for r in rows
    ]
    (folder / "windows.csv").write_text("\n".join(lines) + "\n")
    (folder / "faults.json").write_text(json.dumps(faults))
    return folder


def delayed_dataset(tmp: Path, magnitudes: list[float | None]) -> tuple[Path, float]:
    """30 fault-free minutes, then one 3-minute latency fault at ``back`` every 15 minutes
    (delay 0.2 s), each with its magnitude as given (None: not published)."""
    topo = small()
    delay = 0.2
    fault_doc = [
        {
            "kind": LatencyFault.name,
            "target": "back",
            "delay": delay,
            "start": 60.0,
            "duration": 180.0,
        }
    ]
    rows = twin_windows(topo, T0, 30, [], seed=7)
    faults = []
    t = T0 + 30 * STEP
    for i, mag in enumerate(magnitudes):
        rows += twin_windows(topo, t, 12, [], seed=11 + i)
        fault_rows = predict(
            topo, fault_doc, seconds=180.0, warmup=60.0, seeds=[21 + i, 41 + i], observed=None
        )
        for j in range(3):
            rows.append(
                {
                    "time": t + (12 + j + 1) * STEP,
                    "p50": fault_rows.p50,
                    "p99": fault_rows.p99,
                    "success": fault_rows.success,
                    "rate": 10.0,
                }
            )
        f: dict[str, Any] = {
            "start": t + 12 * STEP,
            "end": t + 15 * STEP,
            "target": "back",
            "kind": LatencyFault.name,
        }
        if mag is not None:
            f["magnitude"] = mag
        faults.append(f)
        t += 15 * STEP
    return write_generic(tmp / "data", rows, faults), delay


def test_data_the_twin_produced_itself_replays_at_about_full_accuracy(tmp_path: Path) -> None:
    data, _ = delayed_dataset(tmp_path, [0.2, 0.2])
    res = replay(small(), data, "generic", tmp_path / "out", ReplayConfig(**FAST))
    assert res["n_held_out"] == 2 and res["unmapped"] == [] and res["misses"] == 0
    for k in ("p50", "p99"):
        assert res["held_out"][k]["min"] > 0.85, (k, res["held_out"][k])
        assert res["fault_free"][k]["mean"] > 0.85, (k, res["fault_free"][k])
    assert res["held_out"]["success_pp"]["mean"] < 1.0
    assert res["fault_free"]["n_blocks"] >= 2
    written = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    for key in ("p50", "p99"):
        for stat in ("median", "mean"):
            assert written["held_out"][key][stat] == pytest.approx(res["held_out"][key][stat])
    assert "success_pp" in written["held_out"] and "n_held_out" in written
    assert (tmp_path / "out" / "accuracy.md").read_text().count("| held out |") == 2
    assert (tmp_path / "out" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_fit_first_fits_the_first_fault_of_a_type_and_never_scores_it(tmp_path: Path) -> None:
    data, delay = delayed_dataset(tmp_path, [None, None, None])
    res = replay(
        small(),
        data,
        "generic",
        tmp_path / "out",
        ReplayConfig(fit="first", **{**FAST, "seeds": 1}),
    )
    roles = [r["role"] for r in res["faults"]]
    assert roles == ["fit", "held out", "held out"]
    assert res["n_held_out"] == 2 and res["n_fitted"] == 1
    assert res["held_out"]["p50"]["n"] == 2  # the fitted fault is not in the summary
    fitted = res["fitted"][LatencyFault.name]
    assert fitted["on"] == res["faults"][0]["fault"]
    assert delay / 2 < fitted["magnitude"] < delay * 2
    # without a fit, a fault with no magnitude has nothing to run: unmapped, said why
    res2 = replay(small(), data, "generic", tmp_path / "out2", ReplayConfig(**FAST))
    assert res2["n_held_out"] == 0
    assert all("--fit first" in u["reason"] for u in res2["unmapped"])


def test_a_twin_with_no_successful_request_is_a_counted_miss_never_nan(tmp_path: Path) -> None:
    topo = small()
    rows = twin_windows(topo, T0, 30, [], seed=3)
    rows += twin_windows(topo, T0 + 30 * STEP, 3, [], seed=4)
    faults = [
        {
            "start": T0 + 30 * STEP,
            "end": T0 + 33 * STEP,
            "target": "front",
            "kind": ErrorRateFault.name,
            "magnitude": 1.0,
        }
    ]
    data = write_generic(tmp_path / "data", rows, faults)
    res = replay(topo, data, "generic", tmp_path / "out", ReplayConfig(**FAST))
    assert res["misses"] == 1 and res["n_held_out"] == 1
    assert res["held_out"]["p50"]["mean"] == 0.0 and res["held_out"]["p99"]["median"] == 0.0
    assert res["held_out"]["success_pp"]["mean"] == pytest.approx(100.0, abs=1.0)
    text = (tmp_path / "out" / "accuracy.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)  # strict JSON


def test_unknown_kinds_and_targets_are_listed_unmapped_not_a_crash(tmp_path: Path) -> None:
    topo = small()
    rows = twin_windows(topo, T0, 40, [], seed=5)
    faults = [
        {"start": T0 + 600, "end": T0 + 780, "target": "back", "kind": "gremlins"},
        {
            "start": T0 + 1200,
            "end": T0 + 1380,
            "target": "nowhere",
            "kind": LatencyFault.name,
            "magnitude": 0.1,
        },
    ]
    data = write_generic(tmp_path / "data", rows, faults)
    res = replay(topo, data, "generic", tmp_path / "out", ReplayConfig(**FAST))
    reasons = [u["reason"] for u in res["unmapped"]]
    assert len(reasons) == 2
    assert "gremlins" in reasons[0] and "nowhere" in reasons[1]
    assert res["n_held_out"] == 0 and res["held_out"]["p50"]["mean"] is None


def test_a_bad_windows_table_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text("time,p50\n1,0.1\n")
    with pytest.raises(InputError, match=r"w\.csv: missing column\(s\) p99, success, rate"):
        replay(small(), tmp_path, "generic", tmp_path / "out")
    (tmp_path / "w.csv").write_text("time,p50,p99,success,rate\n1,0.1,0.2,1.5,3\n")
    with pytest.raises(InputError, match=r"w\.csv:2: "):
        replay(small(), tmp_path, "generic", tmp_path / "out")
    assert not (tmp_path / "out" / "accuracy.json").exists()


def test_an_entry_rate_is_its_service_rate_minus_what_modelled_callers_send() -> None:
    topo = small().model_copy(
        update={
            "workload": [
                *small().workload,
                *parse_model(
                    Topology,
                    {
                        "name": "x",
                        "services": {
                            "back": {
                                "operations": {
                                    "op": {"service_time": {"dist": "constant", "mean": 0.01}}
                                }
                            }
                        },
                        "workload": [{"entry": "back:op", "rate": 1.0}],
                    },
                ).workload,
            ]
        }
    )
    moved = at_load(topo, None, {"front": 4.0, "back": 10.0})
    rates = {w.entry: w.rate for w in moved.workload}
    assert rates == {"front:op": pytest.approx(4.0), "back:op": pytest.approx(6.0)}
    scaled = at_load(topo, 22.0, {})
    assert sum(w.rate for w in scaled.workload) == pytest.approx(22.0)
    assert math.isclose(scaled.workload[0].rate / scaled.workload[1].rate, 10.0)  # shares kept


def _shift_latency(data: Path, seconds: float) -> None:
    """Production slower than the twin by ``seconds`` in every window (a state the
    calibrated twin does not hold), faults included."""
    path = data / "windows.csv"
    head, *rows = path.read_text().splitlines()
    cols = head.split(",")
    out = [head]
    for r in rows:
        cells = r.split(",")
        for k in ("p50", "p99"):
            i = cols.index(k)
            cells[i] = f"{float(cells[i]) + seconds:.9g}"
        out.append(",".join(cells))
    path.write_text("\n".join(out) + "\n")


def test_the_anchor_carries_an_offset_seen_before_a_fault_into_the_fault(tmp_path: Path) -> None:
    data, _ = delayed_dataset(tmp_path, [0.2, 0.2])
    _shift_latency(data, 0.3)
    runs = {
        mode: replay(small(), data, "generic", tmp_path / mode, ReplayConfig(**FAST, anchor=mode))
        for mode in ("none", "before")
    }
    alone, anchored = runs["none"]["held_out"]["p50"], runs["before"]["held_out"]["p50"]
    assert anchored["min"] > 0.9, anchored
    assert alone["max"] < 0.8, alone
    row = next(r for r in runs["before"]["faults"] if r["role"] == "held out")
    assert row["anchor"]["observed"]["p50"] - row["anchor"]["twin"]["p50"] == pytest.approx(
        0.3, abs=0.03
    )
    # the twin's own figures are kept beside the anchored ones
    assert row["twin"]["p50"] - row["twin_alone"]["p50"] == pytest.approx(0.3, abs=0.03)
    assert "anchor" not in next(r for r in runs["none"]["faults"] if r["role"] == "held out")


def test_an_anchored_figure_stays_positive_when_the_fault_makes_the_twin_faster() -> None:
    before = Prediction(p50=1.0, p99=2.0, mean=1.2, success=0.99, requests=100)
    anchor = Anchor(observed=Figures(p50=0.5, p99=1.0, mean=0.6, success=1.0), twin=before)
    faster = anchor.apply(Prediction(p50=0.2, p99=0.4, mean=0.25, success=0.5, requests=100))
    assert faster.p50 == pytest.approx(0.1) and faster.p99 == pytest.approx(0.2)
    slower = anchor.apply(Prediction(p50=3.0, p99=5.0, mean=3.2, success=0.995, requests=100))
    assert slower.p50 == pytest.approx(2.5) and slower.p99 == pytest.approx(4.0)
    assert slower.success == 1.0  # shifted by +0.01 and clipped
    nothing = anchor.apply(Prediction(p50=None, p99=None, mean=None, success=0.0, requests=9))
    assert nothing.p50 is None and nothing.success == pytest.approx(0.01)


def test_the_best_constant_is_the_grid_maximum_of_the_accuracy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        values = list(rng.lognormal(0.0, 1.0, size=int(rng.integers(1, 6))))
        grid = np.exp(np.linspace(np.log(min(values)) - 1, np.log(max(values)) + 1, 4001))
        brute = max(float(np.mean([accuracy(c, v) for v in values])) for c in grid)
        best = best_constant(values)
        assert best is not None and best == pytest.approx(brute, abs=2e-3)
        assert best >= brute - 1e-12
    assert best_constant([0.7, 0.7, 0.7]) == 1.0
    assert best_constant([]) is None and best_constant([0.0]) is None


def test_persistence_scores_the_lookback_figures_and_the_ceiling_bounds_the_twin(
    tmp_path: Path,
) -> None:
    data, _ = delayed_dataset(tmp_path, [0.2, 0.2])
    res = replay(small(), data, "generic", tmp_path / "out", ReplayConfig(**FAST))
    for r in (r for r in res["faults"] if r["role"] == "held out"):
        before = [w for w in _windows(data) if r["start"] - 300.0 < w["time"] <= r["start"]]
        during = [w for w in _windows(data) if r["start"] < w["time"] <= r["end"]]
        prev = float(np.median([w["p50"] for w in before]))
        want = float(np.mean([accuracy(prev, w["p50"]) for w in during]))
        assert r["references"]["persistence"]["p50"] == pytest.approx(want)
        # a 0.2 s delay on a ~20 ms service: nothing-changes is far off, the twin is not
        assert r["references"]["persistence"]["p50"] < 0.5 < r["accuracy"]["p50"]
        for k in ("p50", "p99"):
            ceiling, pers = r["references"]["ceiling"][k], r["references"]["persistence"][k]
            assert r["accuracy"][k] <= ceiling + 1e-12
            assert r["skill"][k] == pytest.approx((r["accuracy"][k] - pers) / (ceiling - pers))
    assert res["held_out"]["references"]["persistence"]["p50"]["n"] == res["n_held_out"]
    ff = res["fault_free"]
    assert ff["n_blocks"] >= 2  # the quiet half hour before the faults, in 10-minute blocks
    assert ff["references"]["constant"]["p50"]["n"] == ff["n_blocks"]
    assert ff["references"]["persistence"]["p50"]["n"] == ff["n_blocks"] - 1


def _block(segment: str, start: float, p50: float | None, twin: float = 0.1) -> dict[str, Any]:
    return {
        "segment": segment,
        "start": start,
        "end": start + 600.0,
        "measured": {"p50": p50, "p99": None, "mean": None},
        "accuracy": {"p50": None if p50 is None else accuracy(twin, p50), "p99": None},
    }


def test_a_quiet_block_is_judged_against_the_block_just_before_and_the_capture_best_figure() -> (
    None
):
    blocks = [
        _block("a", 0.0, 0.1),
        _block("a", 600.0, 0.2),
        _block("a", 1200.0, 0.1),
        _block("a", 3000.0, 0.1),  # 1,200 s after the block before: more than one block away
        _block("b", 1800.0, 0.4),  # a capture with one block: nothing to judge it against
    ]
    rows = block_references(blocks, 600.0)
    pers = [r["references"]["persistence"]["p50"] for r in rows]
    const = [r["references"]["constant"]["p50"] for r in rows]
    assert pers == [None, pytest.approx(0.5), pytest.approx(0.0), None, None]
    # capture a: 0.1 is right on three blocks of four and half right on one
    assert const == [1.0, pytest.approx(0.5), 1.0, 1.0, None]
    assert all(r["references"]["persistence"]["p99"] is None for r in rows)
    assert [r["measured"] for r in rows] == [b["measured"] for b in blocks]  # rows kept


def test_skill_is_zero_at_persistence_one_at_the_ceiling_and_none_when_they_meet() -> None:
    assert skill(0.5, 0.5, 0.9) == 0.0 and skill(0.9, 0.5, 0.9) == 1.0
    assert skill(0.3, 0.5, 0.9) == pytest.approx(-0.5)
    assert skill(0.7, 0.9, 0.9) is None and skill(None, 0.5, 0.9) is None
    assert skill(0.7, 0.9, 0.905) is None and skill(0.7, 0.9, 0.915) is not None


def _windows(data: Path) -> list[dict[str, float]]:
    head, *rows = (data / "windows.csv").read_text().splitlines()
    cols = head.split(",")
    return [dict(zip(cols, map(float, r.split(",")), strict=True)) for r in rows]
