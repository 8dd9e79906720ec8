"""The failure-count test against the binomial it is built on: its tail is the binomial's;
two failures are an excess after an hour of clean traffic and not after minutes; one stray
failure is never material; bursty normal failures need proportionally more; a ramp's first
failures never join the baseline they are tested against, while stray ones that pass do.
In the watch it raises an error ramp before the availability objective breaks, names it an
error fault whatever the recogniser read unless the entry is also slow, and puts first the
service where the failures start (failing while none of the services it calls do)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import binom
from small_system import WINDOW, small_topology

from twin.io import parse_model
from twin.predict.evidence import error_origins, place_first
from twin.predict.failures import FailureExcess, binomial_tail, service_failures
from twin.predict.sources import EntrySli, Window
from twin.predict.watch import FAILURES, Recognition, Watch, WatchConfig
from twin.topology import Topology


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


SMALL_CALLS = [("front", "a"), ("front", "b"), ("a", "c")]


def test_failures_start_at_the_failing_service_whose_callees_do_not_fail() -> None:
    # c fails, so a (which calls c) and front (which calls a) fail too; b does not
    tails = {"front": 1e-6, "a": 1e-5, "c": 1e-4, "b": 0.4}
    assert error_origins(tails, SMALL_CALLS) == ["c"]
    origins = error_origins(tails, SMALL_CALLS)
    assert place_first(["front", "a", "b", "c"], origins) == ["c", "front", "a", "b"]
    # two independent origins, most improbable first; nothing failing changes nothing
    assert error_origins({"b": 1e-3, "c": 1e-5, "front": 1e-6}, SMALL_CALLS) == ["c", "b"]
    assert error_origins({"b": 0.5, "a": 0.2}, SMALL_CALLS) == []
    assert place_first(["b", "a"], []) == ["b", "a"]


def _service_windows(failed: dict[str, list[float]], requests: float = 100.0) -> list[Window]:
    """Windows of the small system, each service at ``requests`` a window, failing as given
    per service (missing: none)."""
    n = max(len(v) for v in failed.values())
    return [
        Window(
            1000.0 + WINDOW * (i + 1),
            WINDOW,
            {
                s: {
                    "rate": requests / WINDOW,
                    "success": 1.0 - failed.get(s, [0.0] * n)[i] / requests,
                }
                for s in ("front", "a", "b", "c")
            },
        )
        for i in range(n)
    ]


def test_service_failures_pool_the_suspect_windows_against_each_services_normal_rate() -> None:
    normal = _service_windows({"c": [0.0] * 40})
    recent = _service_windows({"c": [1.0, 1.0, 1.0], "a": [0.0, 1.0, 0.0]})
    tails = service_failures(recent, normal)
    # 3 failures in 300 against a Jeffreys rate of 0.5 / 4001: the binomial tail
    assert tails["c"] == pytest.approx(binom.sf(2, 300, 0.5 / 4001), rel=1e-6)
    assert tails["c"] < 1e-4 < tails["a"] < 0.05
    assert tails["b"] == 1.0 and tails["front"] == 1.0
    # a service whose normal windows failed as often is not failing more
    assert service_failures(recent, _service_windows({"c": [1.0, 0.0, 0.0] * 13}))["c"] > 0.05


@dataclass
class _Says:
    """A recogniser that always reads the same answer: what the watch adds is then the
    only thing that can change it."""

    kind: str
    ranking: tuple[str, ...]

    def recognise(self, recent: Sequence[Window], normal: Sequence[Window]) -> Recognition:
        return Recognition(self.kind, self.ranking, (0.4, 0.3, 0.2, 0.1))


def _system_windows(failing: list[float], p99: list[float]) -> list[Window]:
    """The small system with c failing ``failing[i]`` of 100 requests in window i and the
    failure travelling up to a and front; the entry's p99 as given."""
    rng = np.random.default_rng(7)
    out = []
    for i, (f, q) in enumerate(zip(failing, p99, strict=True)):
        services = {
            s: {
                "rate": 100.0 / WINDOW,
                "success": 1.0 - (f if s != "b" else 0.0) / 100.0,
                "cpu": 0.3 * float(np.exp(0.03 * rng.standard_normal())),
                "latency_p99": 0.05 * float(np.exp(0.05 * rng.standard_normal())),
            }
            for s in ("front", "a", "b", "c")
        }
        entry = EntrySli(requests=100.0, success=1.0 - f / 100.0, p50=0.01, p99=q)
        out.append(Window(1000.0 + WINDOW * (i + 1), WINDOW, services, entry))
    return out


@pytest.mark.parametrize("slow", [False, True])
def test_an_entry_failing_more_than_normal_is_an_error_fault_unless_it_is_also_slow(
    slow: bool,
) -> None:
    # an hour clean, then c starts failing one request in a hundred; with ``slow`` the
    # entry's p99 also climbs past its band (a fault that both slows and fails requests)
    clean, ramp = 120, 4
    rng = np.random.default_rng(11)
    p99 = [0.05 * float(np.exp(0.05 * rng.standard_normal())) for _ in range(clean)]
    p99 += [0.3 * (i + 1) for i in range(ramp)] if slow else [0.05] * ramp
    windows = _system_windows([0.0] * clean + [1.0] * ramp, p99)
    config = WatchConfig(
        horizon_s=60.0, replications=1, step_s=WINDOW, slo_latency_p99=1.0, slo_availability=0.99
    )
    says = _Says("latency", ("b", "a", "front", "c"))
    watch = Watch(small_topology(), config, recogniser=says)
    alerts = [a for a in watch.run(windows) if a.status == "firing"]
    assert alerts
    first = alerts[0]
    if slow:  # the recogniser's reading stands
        assert (first.kind, tuple(first.root_cause)) == ("latency", says.ranking)
    else:  # an error fault, starting at c (a and front fail only through it)
        assert first.kind == "error_rate"
        assert first.root_cause[0] == "c"
        assert list(first.root_cause_probability) == sorted(
            first.root_cause_probability, reverse=True
        )


def test_a_latency_incidents_windows_teach_the_normal_failure_rate() -> None:
    # 30 clean windows, then 60 with the entry's p99 above the objective (the SLO broken and
    # an alert open the whole time) and no failed request, then 10 clean: the normal failure
    # rate is learnt from all of them, the incident's included
    rng = np.random.default_rng(13)
    n_clean, n_slow = 30, 60
    p99 = [0.05 * float(np.exp(0.05 * rng.standard_normal())) for _ in range(n_clean)]
    p99 += [1.5] * n_slow + [0.05] * 10
    windows = _system_windows([0.0] * len(p99), p99)
    config = WatchConfig(
        horizon_s=60.0, replications=1, step_s=WINDOW, slo_latency_p99=1.0, slo_availability=0.99
    )
    watch = Watch(small_topology(), config)
    alerts = [a for a in watch.run(windows) if a.status == "firing"]
    assert alerts and alerts[0].kind == "latency"  # the incident was seen
    assert watch.failures is not None
    learnt = len(watch.failures.normal)
    assert learnt >= n_clean + n_slow - 5  # all but the span still under test
    assert watch.failures.rate() == pytest.approx(0.5 / (100.0 * learnt + 1.0))


def test_telemetry_names_reach_the_topologys_names_as_calibration_made_them() -> None:
    # X-Ray and CloudWatch name nodes "PetSearch_AWS::ECS::Fargate"; calibration names the
    # service "PetSearch_AWS__ECS__Fargate". The watch reads the entry and aims the twin's
    # fault at it through the same mapping.
    doc = small_topology().model_dump(mode="json")
    doc["services"]["front__x"] = doc["services"].pop("front")
    doc["workload"][0]["entry"] = "front__x"
    watch = Watch(parse_model(Topology, doc), WatchConfig(horizon_s=60.0, replications=1))
    assert watch.named("front::x") == "front__x"
    assert watch.named("front__x") == "front__x"
    assert watch.named("nowhere::x") is None
    w = Window(
        1030.0,
        WINDOW,
        {"front::x": {"rate": 10.0, "success": 0.9, "latency_p99": 0.2}, "a": {"rate": 10.0}},
    )
    sli = watch.entry_sli(w)
    assert sli.requests == pytest.approx(10.0 * WINDOW)
    assert sli.success == pytest.approx(0.9) and sli.p99 == pytest.approx(0.2)


def test_users_are_seen_at_entries_no_call_goes_into() -> None:
    # the twin gives c arrivals of its own (a call it cannot wait on), but a calls c: users
    # are at front; with no entry left uncalled, every entry counts
    doc = small_topology().model_dump(mode="json")
    doc["workload"].append({"entry": "c", "rate": 2.0})
    config = WatchConfig(horizon_s=60.0, replications=1)
    assert Watch(parse_model(Topology, doc), config).entries == {"front"}
    doc["workload"] = [{"entry": "c", "rate": 2.0}]
    assert Watch(parse_model(Topology, doc), config).entries == {"c"}
