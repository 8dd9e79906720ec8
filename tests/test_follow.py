"""Continuous recalibration (``twin.calibrate.follow``) against streams the twin generates
itself: a change it can express is followed to its true size, no change keeps it still, a
stream it cannot express is flagged, and missing figures are skipped and counted."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from small_system import small_topology

from twin.calibrate.follow import fluid_engine
from twin.calibrate.recalibrate import (
    FollowError,
    RecalibrateConfig,
    Recalibrator,
    gamma_median,
    read_prediction,
)
from twin.calibrate.window import EdgeFigures, ServiceFigures, Window
from twin.scenario import Scenario
from twin.topology import Topology

NEZHA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nezha-ob"


def _truth(topology: Topology, scales: dict[str, float]) -> tuple[Window, dict[str, float]]:
    """What a system equal to the twin with these service-time scales shows over a minute
    (noise-free): entry P50/P99/success/rate, per service P99, rate and CPU (its utilisation
    times its workers: busy cores)."""
    r = Recalibrator(topology, RecalibrateConfig(moment_match=False))
    theta = np.array([math.log(scales.get(s, 1.0)) for s in r.services])
    topo = r.topology_at(theta, 0.0, {}, {})
    sim = fluid_engine(topo, Scenario(duration=120.0))
    sim.step(60.0)
    s = sim.step(60.0)
    p = read_prediction(s)
    services = {
        name: ServiceFigures(
            rate=float(v.arrivals) / 60.0,
            latency_p99=float(v.latency.p99 or 0.0),
            cpu=float(v.utilization or 0.0) * topology.services[name].workers,
        )
        for name, v in s.services.items()
    }
    assert p.p99 is not None and p.p50 is not None and p.success is not None
    w = Window(
        time=0.0,
        rate=sum(x.rate for x in topology.workload),
        p50=p.p50,
        p99=p.p99,
        success=p.success,
        services=services,
        edges={"front->a": EdgeFigures(client_p50=0.004, server_p50=0.003)},
    )
    return w, {"p99": p.p99}


def _noisy(w: Window, t: float, rng: np.random.Generator, sd: float = 0.05) -> Window:
    def k() -> float:
        return float(rng.lognormal(0.0, sd))

    services = {
        n: f.model_copy(
            update={
                "latency_p99": (f.latency_p99 or 0.0) * k(),
                "cpu": (f.cpu or 0.0) * k(),
            }
        )
        for n, f in w.services.items()
    }
    return w.model_copy(
        update={
            "time": t,
            "p50": (w.p50 or 0.0) * k(),
            "p99": (w.p99 or 0.0) * k(),
            "rate": (w.rate or 0.0) * k(),
            "services": services,
        }
    )


def _stream(
    before: dict[str, float], after: dict[str, float], n_before: int, n_after: int, seed: int = 1
) -> list[Window]:
    topo = small_topology()
    rng = np.random.default_rng(seed)
    w0, _ = _truth(topo, before)
    w1, _ = _truth(topo, after)
    return [_noisy(w0, 60.0 * i, rng) for i in range(n_before)] + [
        _noisy(w1, 60.0 * (n_before + i), rng) for i in range(n_after)
    ]


def test_a_step_in_one_services_time_is_followed_to_its_true_factor() -> None:
    from twin.calibrate import follow

    windows = _stream({}, {"c": 2.0}, 20, 40)
    out = list(follow(small_topology(), windows))
    base, last = small_topology(), out[-1][0]

    def mean(t: Topology, s: str) -> float:
        return t.services[s].operations["default"].service_time.expected()

    scales = {s: mean(last, s) / mean(base, s) for s in base.services}
    assert scales["c"] == pytest.approx(2.0, rel=0.1)
    for s in ("front", "a", "b"):
        assert scales[s] == pytest.approx(1.0, rel=0.15), s
    errors = [e.value for _, e in out]
    bound = RecalibrateConfig().bound
    assert all(e is not None and e < bound for e in errors[-10:])
    assert out[-1][1].following


def test_a_stream_without_change_keeps_the_parameters_still() -> None:
    windows = _stream({}, {}, 40, 0, seed=2)
    r = Recalibrator(small_topology())
    moves = []
    for w in windows:
        _, e = r.update(w)
        moves.append(dict(r.scales()))
        assert e.following
    for s, v in r.scales().items():  # 5% noise on every figure, 40 windows
        assert v == pytest.approx(1.0, rel=0.15), s
    # after the first windows the scales hardly move from one window to the next
    late = [max(abs(math.log(b[s] / a[s])) for s in a) for a, b in pairwise(moves[20:])]
    assert max(late) < 0.1  # each window moves a scale less than twice its noise
    assert r.load_multiplier() == pytest.approx(1.0, rel=0.1)


def test_a_stream_the_twin_cannot_follow_is_flagged() -> None:
    windows = _stream({}, {}, 30, 0, seed=3)
    wild = [
        w.model_copy(update={"p99": (w.p99 or 0.0) * (6.0 if i % 2 else 0.15)})
        for i, w in enumerate(windows)
    ]
    r = Recalibrator(small_topology())
    verdicts = [r.update(w)[1] for w in wild]
    assert not verdicts[-1].following
    assert "error beyond" in verdicts[-1].reason
    # and the same stream without the wild P99 is followed throughout
    r2 = Recalibrator(small_topology())
    assert all(r2.update(w)[1].following for w in windows)


def test_windows_with_missing_figures_are_skipped_and_counted_never_nan() -> None:
    windows = _stream({}, {}, 12, 0, seed=4)
    holes = [
        windows[0],
        Window(time=60.0),  # nothing at all
        windows[2].model_copy(update={"p99": None}),  # no entry P99: nothing to score
        windows[3].model_copy(update={"p50": None, "services": {}, "edges": {}, "rate": None}),
        windows[4].model_copy(
            update={"services": {"ghost": ServiceFigures(rate=1.0, latency_p99=0.1)}}
        ),
        *windows[5:],
    ]
    r = Recalibrator(small_topology())
    out = [r.update(w)[1] for w in holes]
    assert r.skipped == 2
    assert out[1].skipped == 1 and out[2].skipped == 2 and out[-1].skipped == 2
    assert out[1].value is None and "skipped" in out[1].reason
    assert out[3].value is not None and out[3].p50 is None
    assert "ghost" in r.unknown
    for e in out:
        for f in ("value", "p50", "success_pp", "predicted_p99", "predicted_p50"):
            x = getattr(e, f)
            assert x is None or math.isfinite(x), (f, e)
    assert all(math.isfinite(v) for v in r.scales().values())


def test_an_edges_network_time_follows_the_two_sides_of_its_calls() -> None:
    windows = _stream({}, {}, 25, 0, seed=5)
    slow = [
        w.model_copy(
            update={"edges": {"front->a": EdgeFigures(client_p50=0.013, server_p50=0.003)}}
        )
        for w in windows
    ]
    r = Recalibrator(small_topology())
    for w in slow:
        topo, _ = r.update(w)
    assert r.net["front->a"] == pytest.approx(0.010, rel=0.1)
    link = topo.link("front", "a").latency
    assert link is not None and link.expected() == pytest.approx(0.010, rel=0.1)
    # an edge never observed keeps its calibrated time
    assert topo.link("a", "c").latency == small_topology().network.latency


def test_followed_topologies_are_valid_documents() -> None:
    windows = _stream({}, {"b": 1.5}, 5, 10, seed=6)
    r = Recalibrator(small_topology())
    for w in windows:
        topo, err = r.update(w)
        assert isinstance(err, FollowError)
    Topology.model_validate(topo.model_dump())


def test_follow_stays_the_package_function_whatever_is_imported_after() -> None:
    import twin.calibrate
    import twin.predict.watch  # imports the Follower's module after the package

    assert callable(twin.calibrate.follow)
    assert twin.calibrate.follow.__name__ == "follow"


def test_a_window_refuses_figures_that_are_not_numbers() -> None:
    with pytest.raises(ValidationError):
        Window(time=0.0, p99=float("nan"))
    with pytest.raises(ValidationError):
        Window(time=0.0, rate=-1.0)
    with pytest.raises(ValidationError):
        Window(time=0.0, success=1.5)


def test_the_gamma_median_of_an_exponential_is_its_mean_times_ln2() -> None:
    mean = 0.2
    p99 = mean * math.log(100.0)
    m = gamma_median(mean, p99)
    assert m is not None and m == pytest.approx(mean * math.log(2.0), rel=1e-4)
    assert gamma_median(1.0, 0.5) is None  # no gamma has its P99 below its mean


@pytest.mark.skipif(not NEZHA.is_dir(), reason="Nezha data not present")
def test_nezha_minutes_become_windows_with_each_pods_figures() -> None:
    from twin.calibrate.nezha import read_day
    from twin.calibrate.window import windows_from_nezha

    day = read_day(NEZHA)
    windows = list(windows_from_nezha(day, "frontend"))
    assert len(windows) == len(day.times)
    w = windows[len(windows) // 2]
    assert w.rate == pytest.approx(day.services["frontend"]["rate"][len(windows) // 2])
    assert {"cartservice", "currencyservice", "frontend"} <= set(w.services)
    for f in w.services.values():
        assert f.rate is not None and f.latency_p99 is not None and f.cpu is not None
    assert any(e.client_p50 is not None and e.server_p50 is not None for e in w.edges.values())


def _classes() -> Topology:
    """An entry with two request classes: ``browse`` calls a, ``buy`` calls a and b."""
    from twin.io import parse_model

    def op(mean: float, calls: list[str]) -> dict[str, object]:
        return {
            "service_time": {"dist": "exponential", "mean": mean},
            "calls": [{"to": c} for c in calls],
        }

    return parse_model(
        Topology,
        {
            "name": "classes",
            "services": {
                "front": {
                    "workers": 4,
                    "operations": {"browse": op(0.004, ["a"]), "buy": op(0.004, ["a", "b"])},
                },
                "a": {"workers": 4, "operations": {"default": op(0.005, [])}},
                "b": {"workers": 4, "operations": {"default": op(0.050, [])}},
            },
            "workload": [{"entry": "front", "rate": 10.0, "mix": {"browse": 0.5, "buy": 0.5}}],
        },
    )


def test_the_class_mix_follows_the_observed_shares() -> None:
    topo = _classes()
    shifted = topo.model_copy(
        update={
            "workload": [topo.workload[0].model_copy(update={"mix": {"browse": 0.8, "buy": 0.2}})]
        }
    )
    sim = fluid_engine(shifted, Scenario(duration=120.0))
    sim.step(60.0)
    p = read_prediction(sim.step(60.0))
    assert p.p99 is not None
    windows = [
        Window(
            time=60.0 * i,
            rate=10.0,
            p99=p.p99,
            p50=p.p50,
            mix={"front": {"browse": 0.8, "buy": 0.2, "refund": 0.01}},
        )
        for i in range(15)
    ]
    r = Recalibrator(topo)
    for w in windows:
        followed, err = r.update(w)
    assert followed.workload[0].mix["browse"] == pytest.approx(0.8, abs=0.02)
    assert sum(followed.workload[0].mix.values()) == pytest.approx(1.0)
    assert "front:refund" in r.unknown
    # the twin with the followed mix predicts what the shifted system shows
    assert err.value is not None and err.value < 0.05
    Topology.model_validate(followed.model_dump())
