"""The live Prometheus source the testbed check polls: a window is read whatever the clock's
fraction of a second, since Prometheus answers ``query_range`` on a millisecond grid; a
counter created by its first increment (a service's first failed request) is counted from
zero, live and replayed; the history before the first poll is read as baseline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from twin.calibrate.metrics import MetricMap
from twin.predict.sources import (
    HISTORY_CHUNK,
    RATE,
    SUCCESS,
    PrometheusSource,
    Recorded,
    SourceReport,
    Window,
    dump_windows,
    learn_first,
)


class MillisecondPrometheus:
    """A ``query_range`` answer as Prometheus gives it: points at ``start + k * step``
    truncated to whole milliseconds; one service with 10 requests per second."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    def fetch(self, mapping: MetricMap, start: float, end: float, step: float) -> dict[str, Any]:
        self.asked.append((start, end))
        times = []
        t = start
        while t <= end + 1e-9:
            times.append(math.floor(t * 1000) / 1000)
            t += step

        def series(name: str, value: Any, **labels: str) -> dict[str, Any]:
            return {
                "metric": {"__name__": name, "job": "api", **labels},
                "values": [[x, str(value(x))] for x in times],
            }

        code = {"http_response_status_code": "200"}
        return {
            mapping.requests: [series(mapping.requests, lambda x: 10 * x, **code)],
            mapping.duration_sum: [series(mapping.duration_sum, lambda x: 0.1 * x, **code)],
            mapping.duration_bucket: [
                series(mapping.duration_bucket, lambda x: 10 * x, le="+Inf", **code)
            ],
        }


def _live(
    fake: MillisecondPrometheus,
    now: float,
    polls: int,
    window: float = 15.0,
    history: float = 0.0,
) -> PrometheusSource:
    """A live source of ``window`` s windows polling ``fake`` on a clock that starts at
    ``now`` and moves only when the source sleeps."""
    clock = [now]
    return PrometheusSource(
        "http://127.0.0.1:9",
        MetricMap(),
        window=window,
        polls=polls,
        history=history,
        clock=lambda: clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        client=fake,
    )


def test_live_windows_are_read_when_the_clock_is_between_milliseconds() -> None:
    fake = MillisecondPrometheus()
    source = _live(fake, 1_000_000.4567, polls=3)
    windows = list(source.windows())
    assert len(windows) == 3
    for w in windows:
        assert w.services["api"][RATE] == pytest.approx(10.0)
    # consecutive windows tile time: each starts where the previous ended
    assert [b - a for a, b in fake.asked] == [15.0] * 3
    assert all(fake.asked[i][1] == fake.asked[i + 1][0] for i in range(2))


def test_live_windows_shorter_than_the_default_step_still_count_their_requests() -> None:
    # a 5 s window read at a 15 s step would hold one point, and every counter would read 0
    fake = MillisecondPrometheus()
    windows = list(_live(fake, 1_000_000.0, polls=4, window=5.0).windows())
    assert [round(w.services["api"][RATE], 6) for w in windows] == [10.0] * 4
    assert [b - a for a, b in fake.asked] == [5.0] * 4


class FirstFailure(MillisecondPrometheus):
    """The same service, which fails its first request between 30 s and 45 s after
    ``born_after``: its ``500`` series appears then, with the value 1, and stays at 1."""

    def __init__(self, born_after: float) -> None:
        super().__init__()
        self.born = born_after + 40.0

    def fetch(self, mapping: MetricMap, start: float, end: float, step: float) -> dict[str, Any]:
        out = super().fetch(mapping, start, end, step)
        grid = [start + k * step for k in range(round((end - start) / step) + 1)]
        times = [t for t in grid if t >= self.born]
        if times:
            bad = {"__name__": mapping.requests, "job": "api", "http_response_status_code": "500"}
            out[mapping.requests].append({"metric": bad, "values": [[t, "1"] for t in times]})
        return out


def test_a_counter_born_at_its_first_increment_counts_from_zero() -> None:
    # the 500 series is created by the first failure: its first sample is all increase
    source = _live(FirstFailure(1_000_000.0), 1_000_000.0, polls=5)
    windows = list(source.windows())
    failed = [round((1.0 - w.services["api"][SUCCESS]) * 151.0, 6) for w in windows]
    # windows end 0, 15, 30, 45 and 60 s after the start: 150 successes and one failure in
    # the one the series was born in (30-45 s), none after
    assert failed == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert source.births.born == 1


def test_a_replayed_dump_counts_a_counter_born_mid_recording_from_zero() -> None:
    fake = FirstFailure(1_000_000.0)
    dump = fake.fetch(MetricMap(), 1_000_000.0, 1_000_075.0, 15.0)
    windows = dump_windows(dump, MetricMap(), SourceReport(), window=15.0)
    failed = [round((1.0 - w.services["api"][SUCCESS]) * 151.0, 6) for w in windows]
    # windows end 15 ... 75 s after the start; the first sample (45 s) ends the third
    assert failed == [0.0, 0.0, 1.0, 0.0, 0.0]


def test_a_live_watch_reads_its_history_as_baseline_before_the_first_poll() -> None:
    fake = MillisecondPrometheus()
    source = _live(fake, 1_000_000.0, polls=2, history=60.0)
    windows = list(source.windows())
    assert source.total == 6
    assert [w.baseline for w in windows] == [True] * 4 + [False] * 2
    # one fetch of the hour before the first live window, then one per poll, tiling time
    first_live_start = 1_000_000.0 - 15.0
    assert fake.asked[0] == (first_live_start - 60.0, first_live_start)
    assert [w.time for w in windows] == [first_live_start - 45.0 + 15.0 * k for k in range(6)]
    assert all(w.services["api"][RATE] == pytest.approx(10.0) for w in windows)


def test_a_replay_reads_only_its_first_seconds_as_history() -> None:
    items = [Window(100.0 + 60.0 * k, 60.0, {}) for k in range(5)]  # ends 100, 160, ... 340
    rec = learn_first(Recorded(items, SourceReport()), 120.0)  # the first starts at 40
    assert [w.baseline for w in rec.items] == [True, True, False, False, False]
    assert learn_first(rec, 0.0) is rec


def test_a_live_watch_reads_four_hours_of_history_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    from small_system import small_topology

    from twin.predict.outputs import WatchRun, make_source
    from twin.predict.sources import LIVE_HISTORY_S

    topo = small_topology()
    live = make_source(WatchRun(topology=topo, out=tmp_path, prometheus="http://127.0.0.1:9"))
    assert isinstance(live, PrometheusSource) and live.history == LIVE_HISTORY_S == 14_400.0
    told = WatchRun(topology=topo, out=tmp_path, prometheus="http://127.0.0.1:9", history_s=0.0)
    assert make_source(told).history == 0.0  # type: ignore[attr-defined]


def test_a_long_history_is_fetched_a_bounded_number_of_windows_at_a_time() -> None:
    fake = MillisecondPrometheus()
    windows = list(_live(fake, 1_000_000.0, polls=1, history=300 * 15.0).windows())
    assert [w.baseline for w in windows] == [True] * 300 + [False]
    spans = [round((b - a) / 15.0) for a, b in fake.asked]
    assert spans == [HISTORY_CHUNK, 300 - HISTORY_CHUNK, 1]  # two history fetches, one poll
    assert all(fake.asked[i][1] == fake.asked[i + 1][0] for i in range(2))  # they tile
