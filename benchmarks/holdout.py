"""Held-out periods: does the posterior predict future incidents better than counting?

Synthetic incident histories (known rates, ``twin.bayes.synthetic``): S services x 6 fault
kinds x 4 monthly periods, a share of services new (seen for the last 2 periods only, so
1 month of training history). Each history is fitted on the first 3 periods and scored on
the 4th by the log predictive density of the held-out counts (summed over cells):

- ``bayes``: the hierarchical model's posterior predictive (mean of the Poisson pmf over
  posterior draws of the rate, then log);
- ``ml``: the maximum-likelihood rate count / exposure (``-inf`` as soon as one cell with
  no training incident has one in the held-out period);
- ``ml+0.5``: count + 0.5 over exposure (a Jeffreys-style pseudo-count, the usual fix);
- ``pooled``: one rate per kind over all services (complete pooling);
- ``truth``: the true rates (the ceiling).

    python benchmarks/holdout.py [--histories 5] [--services 60] [--sparse 0.4]

Prints one line per history and the totals; the last line reads ``bayes beats ml+0.5 in
n/N histories``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import special

from twin.bayes import synthetic
from twin.bayes.failure import build_occurrence_model, occurrence_rates
from twin.bayes.fit import FitOptions, fit, quiet

KINDS = list(synthetic.KIND_RATES)


def poisson_logpmf(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = y * np.log(mu) - mu - special.gammaln(y + 1)
    return np.where((mu == 0) & (y == 0), 0.0, np.where(mu == 0, -np.inf, out))


def score(seed: int, services: list[str], sparse: float, draws: int) -> dict[str, float]:
    truth = synthetic.true_rates(services, KINDS, seed=seed)
    counts = synthetic.counts_from_truth(
        truth, seed, periods=4, sparse_share=sparse, sparse_periods=2
    )
    test_mask = counts["period"] == "p003"
    train, test = counts[~test_mask], counts[test_mask]
    f = fit(build_occurrence_model(train), FitOptions(draws=draws, tune=1000, seed=seed))
    rates = occurrence_rates(f.idata, train, seed=seed)
    s_idx = [services.index(s) for s in test["service"]]
    k_idx = [KINDS.index(k) for k in test["fault_kind"]]
    y = test["incidents"].to_numpy(float)
    e = test["exposure_days"].to_numpy(float)
    lp = poisson_logpmf(y[None, :], rates[:, s_idx, k_idx] * e[None, :])
    out = {"bayes": float(np.sum(special.logsumexp(lp, axis=0) - np.log(lp.shape[0])))}
    tot = train.groupby(["service", "fault_kind"])[["incidents", "exposure_days"]].sum()
    keys = list(zip(test["service"], test["fault_kind"], strict=True))
    n = np.array([tot.loc[k, "incidents"] for k in keys], dtype=float)
    t = np.array([tot.loc[k, "exposure_days"] for k in keys], dtype=float)
    out["ml"] = float(np.sum(poisson_logpmf(y, n / t * e)))
    out["ml+0.5"] = float(np.sum(poisson_logpmf(y, (n + 0.5) / t * e)))
    per_kind = train.groupby("fault_kind")[["incidents", "exposure_days"]].sum()
    pooled = (per_kind["incidents"] / per_kind["exposure_days"]).reindex(test["fault_kind"])
    out["pooled"] = float(np.sum(poisson_logpmf(y, pooled.to_numpy(float) * e)))
    true = truth.rates.set_index(["service", "fault_kind"])["rate"]
    out["truth"] = float(np.sum(poisson_logpmf(y, true.loc[keys].to_numpy(float) * e)))
    out["zero_train_cells_hit"] = float(np.sum((n == 0) & (y > 0)))
    out["incidents_test"] = float(y.sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", type=int, default=5)
    ap.add_argument("--services", type=int, default=60)
    ap.add_argument("--sparse", type=float, default=0.4)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=100)
    a = ap.parse_args()
    quiet()
    services = [f"svc{i:03d}" for i in range(a.services)]
    cols = ["bayes", "ml", "ml+0.5", "pooled", "truth"]
    print(
        f"{a.services} services x {len(KINDS)} kinds, 4 periods of 30 days, "
        f"{a.sparse:.0%} of services new (2 periods); fit on 3, score the 4th"
    )
    rows = []
    started = time.perf_counter()
    for h in range(a.histories):
        r = score(a.seed + h, services, a.sparse, a.draws)
        rows.append(r)
        print(
            f"history {h}: {int(r['incidents_test'])} held-out incidents, "
            f"{int(r['zero_train_cells_hit'])} in cells with none in training; "
            + ", ".join(f"{c} {r[c]:.1f}" for c in cols),
            flush=True,
        )
    df = pd.DataFrame(rows)
    print("total log predictive density: " + ", ".join(f"{c} {df[c].sum():.1f}" for c in cols))
    wins = {c: int((df["bayes"] > df[c]).sum()) for c in ("ml", "ml+0.5", "pooled")}
    print(f"wall {time.perf_counter() - started:.0f} s")
    print(
        f"bayes beats ml in {wins['ml']}/{len(df)}, pooled in {wins['pooled']}/{len(df)}, "
        f"ml+0.5 in {wins['ml+0.5']}/{len(df)} histories"
    )


if __name__ == "__main__":
    main()
