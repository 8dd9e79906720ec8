"""The live Prometheus source the testbed check polls: a window is read whatever the clock's
fraction of a second, since Prometheus answers ``query_range`` on a millisecond grid."""

from __future__ import annotations

import math
from typing import Any

import pytest

from twin.calibrate.metrics import MetricMap
from twin.predict.sources import RATE, PrometheusSource


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


def test_live_windows_are_read_when_the_clock_is_between_milliseconds() -> None:
    fake = MillisecondPrometheus()
    now = [1_000_000.4567]
    source = PrometheusSource(
        "http://127.0.0.1:9",
        MetricMap(),
        window=15.0,
        polls=3,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        client=fake,
    )
    windows = list(source.windows())
    assert len(windows) == 3
    for w in windows:
        assert w.services["api"][RATE] == pytest.approx(10.0)
    # consecutive windows tile time: each starts where the previous ended
    assert [b - a for a, b in fake.asked] == [15.0] * 3
    assert all(fake.asked[i][1] == fake.asked[i + 1][0] for i in range(2))
