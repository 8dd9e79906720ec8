"""The synthetic baseline: the twin's prediction of the new version, per query step. A canary
that behaves as predicted passes against it; one slower than predicted does not; the new
version's error rate shows in the predicted error ratio."""

from __future__ import annotations

import numpy as np
import pytest

from twin.bundled import bundled_topology_path
from twin.change.document import ChangeSet
from twin.change.judge import MetricRule, judge_metric
from twin.change.synthetic import predicted_samples
from twin.errors import InputError
from twin.io import load_model
from twin.topology import Topology

STATS = {"latency_mean": "latency_mean", "error_ratio": "error_ratio"}


def _topo() -> Topology:
    return load_model(Topology, bundled_topology_path("online-boutique"))


def _version(factor: float, error: float = 0.0) -> ChangeSet:
    return ChangeSet.model_validate(
        {
            "name": "cart-v2",
            "changes": [
                {
                    "id": "v2",
                    "kind": "version",
                    "service": "cartservice",
                    "latency_factor": factor,
                    "error_rate": error,
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def predicted() -> dict[str, list[float]]:
    return predicted_samples(_topo(), _version(2.0, 0.1), "cartservice", STATS, steps=20)


def test_a_canary_as_predicted_passes_and_a_slower_one_is_high(
    predicted: dict[str, list[float]],
) -> None:
    again = predicted_samples(_topo(), _version(2.0, 0.1), "cartservice", STATS, steps=20, seed=2)
    rule = MetricRule(name="latency_mean", allowed_increase=1.2)
    assert judge_metric(again["latency_mean"], predicted["latency_mean"], rule).classification == (
        "Pass"
    )
    slower = np.asarray(again["latency_mean"]) * 3
    assert judge_metric(slower, predicted["latency_mean"], rule).classification == "High"


def test_the_new_versions_error_rate_is_in_the_predicted_error_ratio(
    predicted: dict[str, list[float]],
) -> None:
    assert float(np.nanmean(predicted["error_ratio"])) == pytest.approx(0.1, abs=0.03)
    assert len(predicted["latency_mean"]) == 20


def test_the_prediction_is_the_new_versions_not_the_old_ones(
    predicted: dict[str, list[float]],
) -> None:
    old = predicted_samples(_topo(), _version(1.0), "cartservice", STATS, steps=20)
    assert np.nanmean(predicted["latency_mean"]) > 1.5 * np.nanmean(old["latency_mean"])


def test_an_unknown_figure_is_refused() -> None:
    with pytest.raises(InputError, match="predicts"):
        predicted_samples(_topo(), _version(2.0), "cartservice", {"x": "latency_p42"}, steps=2)
