"""Calibration tells a closed loop from an open one by whether the rate falls when latency
rises, and fits the users and their think time by the interactive law X = N / (R + Z)."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from twin.calibrate import CalibrationConfig, run_calibration
from twin.calibrate.workload_model import (
    apply_workload,
    entry_windows,
    fit_workload,
    mean_from_quantiles,
)
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.topology import Topology

USERS, THINK, SERVICE = 20, 2.0, 0.02


def _topology(closed: bool) -> Topology:
    entry: dict[str, Any] = {"entry": "s", "rate": 9.0}
    if closed:
        entry |= {"users": USERS, "think_time": {"dist": "exponential", "mean": THINK}}
    return Topology.from_dict(
        {
            "name": "loop",
            "services": {
                "s": {
                    "workers": 4,
                    "operations": {
                        "op": {"service_time": {"dist": "exponential", "mean": SERVICE}}
                    },
                }
            },
            "workload": [entry],
        }
    )


@functools.cache
def _windows(closed: bool, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-window entry rate and mean latency of a twin run with slow spells (latency faults
    of 0.3-3 s), as calibration would read them from a system's metrics."""
    faults = [
        {"kind": "latency", "target": "s", "start": t, "duration": 90, "delay": d}
        for t, d in ((300, 0.3), (900, 1.0), (1500, 3.0), (2100, 0.6))
    ]
    doc = {"duration": 2700, "seed": seed, "faults": faults}
    sim = Simulation(_topology(closed), Scenario.model_validate(doc))
    rates, means = [], []
    for _ in range(90):
        st = sim.step(30.0).entries["s"]
        rates.append(st.arrivals / 30.0)
        means.append(st.latency.mean if st.latency.mean is not None else math.nan)
    return np.array(rates), np.array(means)


def test_a_closed_loop_of_the_twin_is_recognised_and_its_users_and_think_time_recovered() -> None:
    rate, mean = _windows(closed=True)
    fit = fit_workload(rate, mean)
    assert fit.model == "closed", fit.reason
    assert fit.users == pytest.approx(USERS, rel=0.15)
    assert fit.think_time == pytest.approx(THINK, rel=0.15)
    assert fit.p_value is not None and fit.p_value < fit.alpha


def test_an_open_loop_of_the_twin_stays_open_whatever_its_latency() -> None:
    rate, mean = _windows(closed=False)
    assert np.nanmax(mean) > 10 * np.nanmin(mean)  # slow spells were there
    fit = fit_workload(rate, mean)
    assert fit.model == "open", fit.reason
    assert fit.users is None and fit.think_time is None


def test_too_few_windows_keep_the_entry_open() -> None:
    fit = fit_workload([5.0, 1.0, 5.0], [0.1, 3.0, 0.1])
    assert fit.model == "open" and "fewer than" in fit.reason


def test_the_mean_from_quantiles_of_a_lognormal_is_within_10_percent() -> None:
    dist = stats.lognorm(s=0.83, scale=0.2)  # cv about 1
    q = {p: np.array([dist.ppf(p)]) for p in (0.5, 0.9, 0.95, 0.99)}
    est = float(mean_from_quantiles(q)[0])
    assert est == pytest.approx(dist.mean(), rel=0.10)


def test_entry_windows_sum_series_and_read_a_counter_restart_as_a_fresh_start() -> None:
    count = [
        [(0.0, 0.0), (60.0, 600.0), (120.0, 30.0)],
        [(0.0, 10.0), (60.0, 70.0), (120.0, 130.0)],
    ]
    seconds = [[(0.0, 0.0), (60.0, 66.0), (120.0, 3.0)], [(0.0, 1.0), (60.0, 7.6), (120.0, 13.6)]]
    rate, mean = entry_windows(count, seconds)
    assert rate.tolist() == pytest.approx([11.0, 1.5])
    assert mean.tolist() == pytest.approx([72.6 / 660.0, 9.0 / 90.0])


def test_apply_workload_makes_the_entry_a_closed_loop_within_what_its_users_send() -> None:
    fit = fit_workload(*_windows(closed=True))
    topo = apply_workload(_topology(closed=False), "s", fit)
    (w,) = topo.workload
    assert w.users == round(fit.users or 0) and w.think_time is not None
    assert w.think_time.expected() == pytest.approx(fit.think_time)
    assert w.rate <= w.users / w.think_time.expected()


def _dump(rate: np.ndarray, mean: np.ndarray, step: float = 30.0) -> dict[str, Any]:
    t = np.arange(len(rate) + 1) * step + 1.7e9
    count = np.concatenate([[0.0], np.cumsum(rate * step)])
    total = np.concatenate([[0.0], np.cumsum(np.nan_to_num(mean) * rate * step)])
    cpu = np.concatenate([[0.0], np.cumsum(rate * step * SERVICE)])

    def series(name: str, values: np.ndarray) -> dict[str, Any]:
        return {
            "metric": {"__name__": name, "job": "s", "instance": "a"},
            "values": [[float(a), str(b)] for a, b in zip(t, values, strict=True)],
        }

    return {
        "http_server_request_duration_seconds_count": [
            series("http_server_request_duration_seconds_count", count)
        ],
        "http_server_request_duration_seconds_sum": [
            series("http_server_request_duration_seconds_sum", total)
        ],
        "process_cpu_seconds_total": [series("process_cpu_seconds_total", cpu)],
    }


def test_twin_calibrate_writes_a_closed_loop_when_the_metrics_show_one(tmp_path: Path) -> None:
    dump = tmp_path / "metrics.json"
    dump.write_text(json.dumps(_dump(*_windows(closed=True))))
    rec = run_calibration(CalibrationConfig(out=tmp_path / "cal", metrics=dump, predict_seconds=0))
    topo = Topology.load(tmp_path / "cal" / "topology.yaml")
    (w,) = topo.workload
    assert w.users is not None and w.think_time is not None
    assert w.users == pytest.approx(USERS, rel=0.15)
    assert rec.document["workload"][w.entry]["model"] == "closed"


def test_twin_calibrate_keeps_an_open_loop_open(tmp_path: Path) -> None:
    dump = tmp_path / "metrics.json"
    dump.write_text(json.dumps(_dump(*_windows(closed=False))))
    rec = run_calibration(CalibrationConfig(out=tmp_path / "cal", metrics=dump, predict_seconds=0))
    (w,) = Topology.load(tmp_path / "cal" / "topology.yaml").workload
    assert w.users is None
    assert rec.document["workload"][w.entry]["model"] == "open"
