"""The watch's per-series detector and what it reads: a fault inside the first windows
does not become the normal; a drift too small to cross the band does not widen it; a delay
seen only on the callers' side of the calls into a service raises an alert that names that
service, with the statistical ranking of the same windows beside it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from small_system import WINDOW, small_topology

from twin.predict.sources import Window
from twin.predict.watch import MAX_WARM, EwmDetector, Watch, WatchConfig


def test_a_fault_in_the_first_windows_does_not_become_the_normal() -> None:
    d = EwmDetector(warm=5)
    rng = np.random.default_rng(3)
    first = [0.2, 1.0, 1.0, 0.2, 0.2]  # two of the first five windows are a CPU fault
    for i, v in enumerate(first):
        assert not d.update("s/cpu", float(i), v).anomalous  # warming up: only learns
    quiet = [d.update("s/cpu", 5.0 + i, 0.2 + 0.01 * rng.standard_normal()) for i in range(10)]
    assert not any(s.anomalous for s in quiet)
    assert d.update("s/cpu", 20.0, 1.0).anomalous


def _bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A tail latency that sits near 5 ms and one minute in four near 50 ms, as a call's
    median over a handful of calls does."""
    low = 0.005 * np.exp(0.1 * rng.standard_normal(n))
    return np.where(rng.random(n) < 0.25, 10 * low, low)


def test_a_band_started_from_its_history_does_not_page_on_its_own_bimodal_tail() -> None:
    rng = np.random.default_rng(5)
    history, live = _bimodal(rng, 240), _bimodal(rng, 240)
    history[:5] = 0.005  # the first minutes all sit in the lower mode
    cold, warm = EwmDetector(warm=5, flicker=0), EwmDetector(warm=5, flicker=0)
    for i, v in enumerate(history):
        cold.update("e/p50", float(i), float(v))  # read as live from its first minute
        warm.update("e/p50", float(i), float(v), baseline=True)
    flagged = {
        name: np.mean(
            [d.update("e/p50", 240.0 + i, float(v)).anomalous for i, v in enumerate(live)]
        )
        for name, d in (("cold", cold), ("history", warm))
    }
    assert flagged["history"] == 0.0
    assert flagged["cold"] > 0.1  # started from five quiet minutes, it pages on the tail


def test_a_band_started_from_its_history_still_flags_a_fault_and_holds_at_most_a_day() -> None:
    rng = np.random.default_rng(6)
    d = EwmDetector(warm=5)
    for i, v in enumerate(_bimodal(rng, 3000)):
        d.update("e/p50", float(i), float(v), baseline=True)
    assert len(d.state["e/p50"].first) == MAX_WARM  # the oldest history is let go
    assert not d.update("e/p50", 3000.0, 0.05).anomalous  # the upper mode is normal
    assert d.update("e/p50", 3001.0, 0.5).anomalous  # ten times it is not


def _flagged(d: EwmDetector, values: np.ndarray, start: float = 0.0) -> np.ndarray:
    return np.array(
        [d.update("e/p99", start + i, float(v)).anomalous for i, v in enumerate(values)]
    )


def test_a_cold_band_too_narrow_for_the_series_modes_restarts_and_stops_paging() -> None:
    # a histogram's p99 that reads 0.25 s or 0.5 s, half the time each, started in the lower
    # mode: without the check the band stays there for good
    rng = np.random.default_rng(8)
    values = np.where(rng.random(600) < 0.5, 0.49, 0.246) * np.exp(0.005 * rng.standard_normal(600))
    values[:5] = 0.246
    stuck, checked = EwmDetector(flicker=0), EwmDetector()
    late = slice(300, None)
    assert _flagged(stuck, values)[late].mean() > 0.3
    assert _flagged(checked, values)[late].mean() == 0.0


def test_one_long_fault_is_one_run_and_never_restarts_the_band() -> None:
    rng = np.random.default_rng(9)
    quiet = 0.1 * np.exp(0.05 * rng.standard_normal(300))
    d = EwmDetector()
    _flagged(d, quiet[:100])
    fault = _flagged(d, 10 * quiet[100:220], 100.0)  # two hours beyond the band
    assert fault.all()
    assert d.state["e/p99"].mean < 0.2  # still the quiet level: the fault taught it nothing


def test_a_band_that_fits_does_not_restart_on_its_own_noise() -> None:
    rng = np.random.default_rng(10)
    d = EwmDetector()
    flags = _flagged(d, np.exp(0.3 * rng.standard_normal(5000)))
    assert flags.mean() < 0.002
    assert d.state["e/p99"].runs < d.flicker


def test_a_value_moves_the_band_by_at_most_clip_widths() -> None:
    wide, clipped = EwmDetector(warm=5, clip=np.inf), EwmDetector(warm=5, clip=3.0)
    for d in (wide, clipped):
        for i in range(5):
            d.update("s/p99", float(i), 1.0 + 0.01 * (i % 2))
        for i in range(5):  # just inside the band: not anomalous, but far from the mean
            d.update("s/p99", 5.0 + i, 1.55)
    assert clipped.state["s/p99"].mean < wide.state["s/p99"].mean
    assert clipped.state["s/p99"].dev < wide.state["s/p99"].dev


def _figures(
    rng: np.random.Generator, noise: float
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """One window's figures of the small system, each its level times log-normal noise of
    sigma ``noise``: per service CPU, p99 and rate; per call edge both sides' medians."""

    def jit(x: float) -> float:
        return float(x * np.exp(noise * rng.standard_normal()))

    services = {
        s: {"cpu": jit(0.3), "latency_p99": jit(0.05), "rate": jit(10.0)}
        for s in ("front", "a", "b", "c")
    }
    edges = {
        e: {"client_p50": jit(0.02), "server_p50": jit(0.015)}
        for e in ("front->a", "front->b", "a->c")
    }
    return services, edges


def _windows(
    n: int, delay_from: int, window: float = WINDOW, delay_until: int | None = None
) -> list[Window]:
    """Quiet windows of ``window`` seconds of the small system; from ``delay_from`` on (until
    ``delay_until``), the calls into ``c`` are slower on the caller's side only (a delayed
    network into c; c's own figures unchanged)."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        services, edges = _figures(rng, 0.03)
        if delay_from <= i < (n if delay_until is None else delay_until):
            edges["a->c"]["client_p50"] += 0.5
        out.append(Window(1000.0 + window * (i + 1), window, services, None, edges=edges))
    return out


def test_a_delay_seen_only_on_the_callers_side_raises_an_alert_naming_the_callee() -> None:
    topo = small_topology()
    config = WatchConfig(horizon_s=60.0, replications=1, step_s=WINDOW, slo_latency_p99=10.0)
    watch = Watch(topo, config)
    alerts = watch.run(_windows(40, delay_from=30))
    firing = [a for a in alerts if a.status == "firing"]
    assert firing, "no alert on the delayed calls"
    assert all(a.time > 1000.0 + 30 * WINDOW for a in firing)
    last = firing[-1]
    assert last.root_cause[0] == "c"
    assert last.evidence.baseline_root_cause[0] == "c"
    assert any(m.service == "a->c" and m.metric == "client_p50" for m in last.evidence.metrics)


def test_a_symptom_must_last_seconds_not_only_windows_before_a_condition_is_raised() -> None:
    # 5 s windows: the three windows a service's symptom must last would be 15 s; it must
    # also last 45 s (``persist_service_s``), nine windows
    config = WatchConfig(horizon_s=60.0, replications=1, step_s=5.0, slo_latency_p99=10.0)
    brief = Watch(small_topology(), config).run(_windows(60, 30, 5.0, delay_until=34))
    assert not [a for a in brief if a.status == "firing"], "a 20 s blip raised a condition"
    lasting = Watch(small_topology(), config).run(_windows(60, 30, 5.0))
    firing = [a for a in lasting if a.status == "firing"]
    assert firing, "a delay lasting 150 s raised nothing"
    assert firing[0].time >= 1000.0 + 5.0 * (30 + 9) - 1e-9
    # counted in windows only, the blip raises one
    counted = replace(config, persist_service_s=0.0)
    blip = Watch(small_topology(), counted).run(_windows(60, 30, 5.0, delay_until=34))
    assert [a for a in blip if a.status == "firing"]


def _drifting(n: int, stuck_from: int, fault_from: int) -> list[Window]:
    """The small system with little noise: from ``stuck_from`` on, b's p99 as its client
    sees it sits three times higher for good (beyond its band, so some series moves in every
    window after it; a client's view is watched, not ranked); a's CPU
    climbs slowly from 0.3 to 0.75 over the windows after it (slow enough for its band to
    follow); from ``fault_from`` on, the calls into c take twice as long on the caller's
    side."""
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        services, edges = _figures(rng, 0.005)
        stuck = 3.0 if i >= stuck_from else 1.0
        services["b"]["client_p99"] = services["b"]["latency_p99"] * stuck
        climb = min(max(i - stuck_from, 0) / (fault_from - stuck_from - 5), 1.0)
        services["a"]["cpu"] *= 1.0 + 1.5 * climb
        if i >= fault_from:
            edges["a->c"]["client_p50"] *= 2.0
        out.append(Window(1000.0 + WINDOW * (i + 1), WINDOW, services, None, edges=edges))
    return out


def test_recognition_compares_each_series_with_its_own_latest_quiet_values() -> None:
    # b's lasting shift leaves no window where nothing moved after window 10; a fault at c
    # at window 95 must be read against the windows just before it, where a's CPU has
    # climbed, not against window 10, where a's climb would look larger than c's delay
    config = WatchConfig(horizon_s=60.0, replications=1, step_s=WINDOW, slo_latency_p99=10.0)
    watch = Watch(small_topology(), config)
    alerts = watch.run(_drifting(101, stuck_from=10, fault_from=95))
    late = [a for a in alerts if a.status == "firing" and a.time >= 1000.0 + WINDOW * 96]
    assert late, "no alert on the delayed calls into c"
    assert late[-1].root_cause[0] == "c"
    ref = watch.reference(1000.0 + WINDOW * 94, 5)
    assert all(w.services["a"]["cpu"] > 0.7 for w in ref)  # a's latest quiet values
    assert all(w.services["b"]["client_p99"] < 0.06 for w in ref)  # b's from before its shift
