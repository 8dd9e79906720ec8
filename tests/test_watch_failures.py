"""The failure-count test against the binomial it is built on: its tail is the binomial's;
two failures are an excess after an hour of clean traffic and not after minutes; one stray
failure is never material; bursty normal failures need proportionally more; a ramp's first
failures never join the baseline they are tested against, while stray ones that pass do.
In the watch it raises an error ramp before the availability objective breaks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom
from small_system import WINDOW, small_topology

from twin.predict.failures import FailureExcess, binomial_tail
from twin.predict.sources import EntrySli, Window
from twin.predict.watch import FAILURES, Watch, WatchConfig


def _clean(fx: FailureExcess, windows: int, requests: float = 75.0) -> None:
    for _ in range(windows):
        fx.update(0.0, requests)
        fx.settle(True)


@pytest.mark.parametrize(("k", "n", "p"), [(1, 75, 0.01), (2, 225, 1e-4), (5, 300, 0.003)])
def test_binomial_tail_is_the_binomial_survival_function(k: int, n: int, p: float) -> None:
    assert binomial_tail(k, n, p) == pytest.approx(binom.sf(k - 1, n, p), rel=1e-9)
    assert binomial_tail(0, n, p) == 1.0


def test_two_failures_are_an_excess_after_an_hour_clean_but_not_after_minutes() -> None:
    long, short = FailureExcess(0.99), FailureExcess(0.99)
    _clean(long, 240)  # an hour of 15 s windows at 5 requests/s
    _clean(short, 12)  # three minutes
    for fx in (long, short):
        fx.update(1.0, 75.0)
        fx.settle(True)
    # 2 of 225: P(X >= 2) ~ 1e-5 at the hour's rate, ~ 5e-3 at the minutes' rate
    assert long.update(1.0, 75.0).excess
    assert not short.update(1.0, 75.0).excess


def test_one_stray_failure_is_never_material() -> None:
    fx = FailureExcess(0.99, normal_windows=5000)
    _clean(fx, 4000)  # 300,000 clean requests: one failure in 225 is improbable (7e-4)
    ft = fx.update(1.0, 225.0)
    assert ft.surprise > 3.0
    assert not ft.excess  # but 0.44% is less than half the 1% budget
    assert fx.update(2.0, 225.0).excess


def test_bursty_normal_failures_need_proportionally_more() -> None:
    steady, bursty = FailureExcess(0.99), FailureExcess(0.99)
    rng = np.random.default_rng(3)
    for i in range(200):  # both fail 0.3% of 1000 requests a window on average
        steady.update(float(rng.poisson(3.0)), 1000.0)
        steady.settle(True)
        bursty.update(12.0 if i % 4 == 0 else 0.0, 1000.0)
        bursty.settle(True)
    assert steady.rate() == pytest.approx(bursty.rate(), rel=0.15)
    assert bursty.dispersion(bursty.rate()) > 5.0 > steady.dispersion(steady.rate())
    assert steady.test(10.0, 1000.0).excess
    assert not bursty.test(10.0, 1000.0).excess


def test_a_ramps_first_failures_never_join_the_baseline_but_stray_ones_do() -> None:
    fx = FailureExcess(0.99)
    _clean(fx, 120)
    clean_rate = fx.rate()
    fx.update(1.0, 75.0)
    fx.settle(True)  # one failure: the watch saw nothing wrong
    assert fx.update(1.0, 75.0).excess  # the second, in the same span: an excess
    fx.settle(False)
    _clean(fx, 4)  # both leave the span tainted
    assert fx.rate() == pytest.approx(clean_rate * (120 + 4 - 2) / 120, rel=0.05)
    stray = FailureExcess(0.99)
    _clean(stray, 120)
    stray.update(1.0, 75.0)
    stray.settle(True)
    _clean(stray, 4)  # it left the span with every test clean: the system does fail so
    assert stray.rate() > 2.5 * clean_rate


def _entry_windows(failures: list[float]) -> list[Window]:
    """The small system's entry at 300 requests a 30 s window, failing as given."""
    rng = np.random.default_rng(5)
    out = []
    for i, f in enumerate(failures):
        n = 300.0
        services = {
            s: {"cpu": 0.3 * float(np.exp(0.03 * rng.standard_normal())), "rate": 10.0}
            for s in ("front", "a", "b", "c")
        }
        entry = EntrySli(requests=n, success=1.0 - f / n, p50=0.01, p99=0.05)
        out.append(Window(1000.0 + WINDOW * (i + 1), WINDOW, services, entry))
    return out


@pytest.mark.parametrize("alpha", [1e-3, 0.0])
def test_an_error_ramp_is_raised_before_the_objective_breaks(alpha: float) -> None:
    # an hour clean, then 0.67%, 1.3%, 2% ... of requests failing: the objective (99% over
    # at least 200 requests) breaks on the window with 4 of 300
    ramp = [0.0] * 120 + [2.0, 4.0, 6.0, 8.0]
    config = WatchConfig(
        horizon_s=60.0,
        replications=1,
        step_s=WINDOW,
        slo_latency_p99=1.0,
        slo_availability=0.99,
        failures_alpha=alpha,
    )
    watch = Watch(small_topology(), config)
    alerts = [a for a in watch.run(_entry_windows(ramp)) if a.status == "firing"]
    breach = min(r.time for r in watch.records if r.breaching)
    assert alerts
    if alpha > 0:  # the count test: raised on the first window, with its evidence
        assert alerts[0].time < breach
        assert any(m.metric == FAILURES for m in alerts[0].evidence.metrics)
    else:  # without it, nothing is seen before the objective breaks
        assert alerts[0].time >= breach
