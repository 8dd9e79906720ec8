"""``twin replay`` runs the workload model the data show: a closed loop of users (the
interactive law X = N / (R + Z)) when the windows outside the held-out faults say so, fitted
without reading a held-out fault's window; an open loop when they cannot tell."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from small_system import front_back

from twin.errors import InputError
from twin.faults import LatencyFault
from twin.io import parse_model
from twin.replay import ReplayConfig, replay
from twin.replay.run import at_load
from twin.replay.workload import choose, closed_at
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

USERS, THINK = 20, 2.0
T0 = 1_700_000_000.0
STEP = 30.0
SECONDS = 3600.0
DELAY = 0.2
FAULTS = ((900.0, 1200.0), (2400.0, 2700.0))
"""Two slowing faults at ``back`` (simulated seconds): the first is fitted, the second held
out."""
CFG = {
    "margin": 120.0,
    "block_seconds": 600.0,
    "min_block_seconds": 300.0,
    "twin_seconds": 300.0,
    "seeds": 2,
}


def topology(closed: bool) -> Topology:
    """Front end and a one-worker back end (about half busy at the users' rate); the users
    send about 9.5 rps, a 0.2 s delay at the back end leaves it 4 rps."""
    users = {"users": USERS, "think_time": {"dist": "exponential", "mean": THINK}}
    return front_back(
        rate=9.5,
        back={"dist": "exponential", "mean": 0.05},
        back_workers=1,
        entry=users if closed else None,
    )


@functools.cache
def _rows() -> tuple[tuple[float, float | None, float | None, float | None, float, float], ...]:
    """The closed-loop twin's own windows (time, p50, p99, mean, success, rate), the first
    minute (users starting together) left out."""
    faults = [
        {"kind": LatencyFault.name, "target": "back", "delay": DELAY, "start": a, "duration": b - a}
        for a, b in FAULTS
    ]
    doc = {"duration": SECONDS + 60.0, "seed": 5, "faults": faults}
    sim = Simulation(topology(closed=True), parse_model(Scenario, doc))
    sim.step(60.0)
    rows = []
    for i in range(int(SECONDS / STEP)):
        e = sim.step(STEP).entries["front:op"]
        n = e.succeeded + e.failed
        rows.append(
            (
                T0 + (i + 1) * STEP,
                e.latency.p50,
                e.latency.p99,
                e.latency.mean,
                e.succeeded / n if n else 1.0,
                e.arrivals / STEP,
            )
        )
    return tuple(rows)


def dataset(folder: Path, gap: tuple[float, float] | None = None) -> Path:
    """The windows as the generic format's CSV (none ending in ``gap``, simulated seconds),
    the faults without a magnitude."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["time,p50,p99,mean,success,rate"]
    lines += [
        ",".join("" if v is None else f"{v:.9g}" for v in r)
        for r in _rows()
        if gap is None or not gap[0] < r[0] - T0 + 60.0 <= gap[1]
    ]
    (folder / "windows.csv").write_text("\n".join(lines) + "\n")
    faults = [
        {"start": T0 - 60.0 + a, "end": T0 - 60.0 + b, "target": "back", "kind": "latency"}
        for a, b in FAULTS
    ]
    (folder / "faults.json").write_text(json.dumps(faults))
    return folder


@functools.cache
def _replayed(tmp: Path, fit: str, workload: str) -> dict[str, Any]:
    cfg = ReplayConfig.model_validate({"fit": fit, "workload": workload, **CFG})
    res: dict[str, Any] = replay(
        topology(closed=False), dataset(tmp / "data"), "generic", tmp / workload, cfg
    )
    return res


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workload")


def _held_out(res: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [r for r in res["faults"] if r["role"] == "held out"]
    (row,) = rows
    return row


def test_auto_finds_the_closed_loop_and_recovers_its_users_and_think_time(tmp: Path) -> None:
    wl = _replayed(tmp, "first", "auto")["workload"]
    assert wl["model"] == "closed" and wl["source"] == "fit", wl["fit"]["reason"]
    assert wl["fit"]["users"] == pytest.approx(USERS, rel=0.25)
    assert wl["fit"]["think_time"] == pytest.approx(THINK, rel=0.25)
    assert wl["fit"]["p_value"] < 0.01
    (entry,) = wl["entries"].values()
    assert entry["users"] == round(wl["fit"]["users"])
    written = json.loads((tmp / "auto" / "accuracy.json").read_text())
    assert written["workload"]["model"] == "closed"
    assert "Workload: closed" in (tmp / "auto" / "accuracy.md").read_text()


def test_the_fit_never_reads_a_window_of_a_held_out_fault(tmp: Path) -> None:
    res = _replayed(tmp, "first", "auto")
    held, fitted = _held_out(res), [r for r in res["faults"] if r["role"] == "fit"]
    used = {t for _, t in res["workload"]["windows_used"]}
    assert res["workload"]["windows"]["fitted_faults"] > 0
    assert not used & {w["time"] for w in held["measured"]}
    for t in used:  # nothing within the margin of the held-out fault either
        assert t <= held["start"] - CFG["margin"] or t - STEP >= held["end"] + CFG["margin"]
    assert {w["time"] for w in fitted[0]["measured"]} <= used


def test_the_closed_loop_replays_the_held_out_fault_better_than_an_open_one(tmp: Path) -> None:
    closed = _held_out(_replayed(tmp, "first", "auto"))
    opened = _replayed(tmp, "first", "open")
    assert opened["workload"]["model"] == "open" and opened["workload"]["source"] == "option"
    open_row = _held_out(opened)
    # the open twin can match the fitted fault's P99 with a weaker delay, not its P50 and mean
    c, o = closed["accuracy"], open_row["accuracy"]
    assert min(c.values()) > 0.6, c
    assert c["p50"] > o["p50"] + 0.3 and c["mean"] > o["mean"] + 0.3, (c, o)
    assert sum(c.values()) / 3 > sum(o.values()) / 3 + 0.2, (c, o)
    # the users at the fault are those the law gives for the load before it
    (users,) = closed["load"]["users"].values()
    assert users == pytest.approx(USERS, abs=4)


def test_with_no_window_before_a_fault_the_closed_loop_keeps_its_fitted_users(
    tmp: Path,
) -> None:
    start = FAULTS[1][0]
    data = dataset(tmp / "gap", gap=(start - 600.0, start))
    cfg = ReplayConfig.model_validate({"fit": "first", **CFG, "seeds": 1})
    res = replay(topology(closed=False), data, "generic", tmp / "gap-out", cfg)
    assert res["workload"]["model"] == "closed"
    (users,) = _held_out(res)["load"]["users"].values()
    assert users == round(res["workload"]["fit"]["users"])
    assert _held_out(res)["load"]["rate"] is None


def test_fault_free_windows_alone_cannot_tell_and_the_replay_stays_open(tmp: Path) -> None:
    res = _replayed(tmp, "none", "auto")
    wl = res["workload"]
    assert wl["model"] == "open" and wl["windows"]["fitted_faults"] == 0, wl["fit"]["reason"]
    assert all(w.users is None for w in topology(False).workload)
    assert all("users" not in e for e in wl["entries"].values())
    for t in (t for _, t in wl["windows_used"]):
        for a, b in FAULTS:
            a, b = T0 - 60.0 + a, T0 - 60.0 + b
            assert t <= a - CFG["margin"] or t - STEP >= b + CFG["margin"]


def test_forcing_a_closed_loop_the_windows_do_not_show_is_a_one_line_error(tmp: Path) -> None:
    flat = tmp / "flat"
    flat.mkdir(exist_ok=True)
    rows = [f"{T0 + i * STEP},0.1,0.3,0.12,1,9.5" for i in range(1, 40)]
    (flat / "w.csv").write_text("time,p50,p99,mean,success,rate\n" + "\n".join(rows) + "\n")
    (flat / "f.json").write_text("[]")
    cfg = ReplayConfig(workload="closed", **CFG)
    with pytest.raises(InputError, match="--workload closed"):
        replay(topology(closed=False), flat, "generic", tmp / "flat-out", cfg)


def test_a_closed_loop_in_the_topology_is_kept_unless_open_is_asked(tmp: Path) -> None:
    data = dataset(tmp / "data")
    cfg = {**CFG, "twin_seconds": 60.0, "seeds": 1}
    kept = replay(topology(True), data, "generic", tmp / "kept", ReplayConfig(**cfg))
    assert kept["workload"]["source"] == "topology"
    assert kept["workload"]["entries"]["front:op"]["users"] == pytest.approx(USERS, abs=4)
    opened = replay(
        topology(True), data, "generic", tmp / "op", ReplayConfig(workload="open", **cfg)
    )
    assert "users" not in opened["workload"]["entries"]["front:op"]


def test_no_window_outside_the_faults_keeps_the_topology_open_with_no_nan() -> None:
    topo, info = choose(topology(closed=False), "auto", [], {"fault_free": 0, "fitted_faults": 0})
    assert info["model"] == "open" and info["windows"]["n"] == 0
    assert all(w.users is None for w in topo.workload)
    json.dumps(info, allow_nan=False)


def test_a_closed_entry_runs_with_the_users_of_the_interactive_law_at_the_observed_load() -> None:
    (w,) = topology(closed=True).workload
    # X = 5 rps at R = 1 s: N = X (R + Z) = 15 users, the rate within N / Z
    at = closed_at(w, 5.0, 1.0)
    assert at.users == 15 and at.rate == 5.0
    # without a latency, the entry's own R at its bundled state: N scales with the rate
    assert closed_at(w, 9.5 / 2, None).users == USERS // 2
    # the topology's load: the closed entry's users follow the observed rate and latency
    (moved,) = at_load(topology(closed=True), 5.0, {}, 1.0).workload
    assert moved.users == 15
    # an open entry only changes its rate
    (o,) = at_load(topology(closed=False), 5.0, {}, 1.0).workload
    assert o.users is None and o.rate == 5.0
