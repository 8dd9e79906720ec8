"""Service-time distributions: sampling in blocks keeps the seeded stream."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from twin.distributions import BLOCK, Dist


def test_block_sizes_do_not_change_the_stream() -> None:
    """Samplers draw in growing blocks; numpy fills value by value, so the draws equal one
    big draw from the same generator, for every kind of distribution."""
    docs = [
        {"dist": "exponential", "mean": 0.5},
        {"dist": "lognormal", "mean": 0.5, "cv": 1.3},
        {"dist": "gamma", "mean": 0.5, "cv": 0.4},
        {"dist": "uniform", "low": 0.1, "high": 0.9},
    ]
    for doc in docs:
        d = TypeAdapter(Dist).validate_python(doc)
        draw = d.sampler(np.random.default_rng(11))
        got = [draw() for _ in range(BLOCK + 500)]
        want = d._block(np.random.default_rng(11), BLOCK + 500)
        np.testing.assert_array_equal(got, want)


def test_each_distributions_variance_is_the_variance_of_its_draws() -> None:
    """The fluid engine queues on the second moment: each kind's ``variance()`` must be the
    variance of what its sampler draws (400k draws: within 2%)."""
    docs = [
        {"dist": "constant", "mean": 0.3},
        {"dist": "exponential", "mean": 0.5},
        {"dist": "lognormal", "mean": 0.5, "cv": 1.3},
        {"dist": "gamma", "mean": 0.5, "cv": 0.4},
        {"dist": "uniform", "low": 0.1, "high": 0.9},
        {"dist": "empirical", "samples": [0.1, 0.2, 0.3, 2.0]},
        {"dist": "empirical", "quantiles": {0: 0.0, 0.5: 0.1, 0.9: 0.4, 1: 3.0}},
    ]
    for doc in docs:
        d = TypeAdapter(Dist).validate_python(doc)
        draw = d.sampler(np.random.default_rng(5))
        x = np.array([draw() for _ in range(400_000)])
        assert d.variance() == pytest.approx(float(x.var()), rel=0.02, abs=1e-12), doc
