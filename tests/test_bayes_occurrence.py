"""Fault-occurrence model: exact against the conjugate posterior, and better than counting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from twin.bayes import synthetic
from twin.bayes.failure import OccurrencePriors, build_occurrence_model, occurrence_rates
from twin.bayes.fit import FitOptions, fit

pytestmark = pytest.mark.filterwarnings("ignore")


def test_conjugate_gamma_poisson_posterior_matches_the_analytic_posterior() -> None:
    # One group, a Gamma(2, 40) prior, 7 incidents over three periods of 30, 30 and 15 days:
    # the posterior is Gamma(2 + 7, 40 + 75) exactly.
    counts = pd.DataFrame(
        {
            "service": ["cart"] * 3,
            "fault_kind": ["outage"] * 3,
            "period": ["p0", "p1", "p2"],
            "incidents": [3, 1, 3],
            "exposure_days": [30.0, 30.0, 15.0],
        }
    )
    model = build_occurrence_model(counts, OccurrencePriors(fixed=(2.0, 40.0)))
    assert set(model.coords) >= {"service", "fault_kind"}
    f = fit(model, FitOptions(draws=4000, tune=500, chains=2, seed=3))
    draws = occurrence_rates(f.idata, counts)[:, 0, 0]
    exact = stats.gamma(a=9.0, scale=1.0 / 115.0)
    assert draws.mean() == pytest.approx(exact.mean(), rel=0.03)
    lo, hi = np.quantile(draws, [0.05, 0.95])
    assert lo == pytest.approx(exact.ppf(0.05), rel=0.06)
    assert hi == pytest.approx(exact.ppf(0.95), rel=0.04)


def _poisson_logpmf(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = y * np.log(mu) - mu - special.gammaln(y + 1)
    return np.where((mu == 0) & (y == 0), 0.0, np.where(mu == 0, -np.inf, out))


def test_held_out_periods_posterior_predictive_beats_count_over_exposure() -> None:
    # 40 services x 4 kinds over 4 periods; 40% of services are new (seen for 2 periods).
    # Fit on the first 3 periods, score the last one.
    services = [f"svc{i:02d}" for i in range(40)]
    kinds = ["latency", "error_rate", "outage", "memory_leak"]
    truth = synthetic.true_rates(services, kinds, seed=11)
    counts = synthetic.counts_from_truth(truth, 11, periods=4, sparse_share=0.4, sparse_periods=2)
    test_mask = counts["period"] == "p003"
    train, test = counts[~test_mask], counts[test_mask]
    f = fit(build_occurrence_model(train), FitOptions(draws=1000, tune=1000, chains=2, seed=5))
    rates = occurrence_rates(f.idata, train, seed=5)  # (draws, service, kind)
    s_idx = [services.index(s) for s in test["service"]]
    k_idx = [kinds.index(k) for k in test["fault_kind"]]
    y = test["incidents"].to_numpy(float)
    e = test["exposure_days"].to_numpy(float)
    lp = _poisson_logpmf(y[None, :], rates[:, s_idx, k_idx] * e[None, :])
    bayes = float(np.sum(special.logsumexp(lp, axis=0) - np.log(lp.shape[0])))
    tot = train.groupby(["service", "fault_kind"])[["incidents", "exposure_days"]].sum()
    key = list(zip(test["service"], test["fault_kind"], strict=True))
    mle_rate = np.array([tot.loc[k, "incidents"] / tot.loc[k, "exposure_days"] for k in key])
    mle = float(np.sum(_poisson_logpmf(y, mle_rate * e)))
    # even a smoothed count (+0.5 incident) loses to partial pooling
    smooth_rate = np.array(
        [(tot.loc[k, "incidents"] + 0.5) / tot.loc[k, "exposure_days"] for k in key]
    )
    smooth = float(np.sum(_poisson_logpmf(y, smooth_rate * e)))
    assert bayes > mle
    assert bayes > smooth


def test_more_exposure_for_the_same_incidents_means_a_lower_rate_and_sparse_cells_shrink() -> None:
    # 6 services x 2 kinds; cart/latency had 3 incidents, once over 30 days, once over 300.
    services = ["cart", "checkout", "payment", "ads", "email", "ship"]
    rows = [(s, k, 1, 120.0) for s in services for k in ("latency", "outage")]
    frame = pd.DataFrame(rows, columns=["service", "fault_kind", "incidents", "exposure_days"])
    cell = (frame["service"] == "cart") & (frame["fault_kind"] == "latency")
    import nutpie

    means = {}
    compiled = None
    for exposure in (30.0, 300.0):
        counts = frame.copy()
        counts.loc[cell, ["incidents", "exposure_days"]] = [3, exposure]
        if compiled is None:  # compile once, refit with new data (as benchmarks/sbc.py does)
            compiled = nutpie.compile_pymc_model(build_occurrence_model(counts))
        model = compiled.with_data(
            incidents=counts["incidents"].to_numpy("int64"),
            exposure=counts["exposure_days"].to_numpy("float64"),
        )
        idata = nutpie.sample(model, draws=500, tune=500, chains=2, seed=1, progress_bar=False)
        means[exposure] = float(occurrence_rates(idata, counts, seed=1)[:, 0, 0].mean())
    # more exposure, same count: a lower rate
    assert means[300.0] < 0.5 * means[30.0]
    # and partial pooling pulls the short history's rate (3/30 = 0.1 per day) toward the
    # others (1/120 per day), but not past them
    assert 1 / 120 < means[30.0] < 3 / 30
