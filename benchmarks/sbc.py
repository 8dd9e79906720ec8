"""Simulation-based calibration of the fault-occurrence model.

For each of N datasets: draw hyperparameters and rates from the model's own priors (the
"known rates"), simulate incident counts with exposure, fit with nutpie, and check whether
each rate's 90% credible interval holds its true value. Calibrated inference covers the
truth 90% of the time; the bar is 85-95%. The model is compiled once and refitted with new
data (``with_data``), so 100 datasets take a few minutes on 2 cores.

    python benchmarks/sbc.py [--datasets 100] [--seed 1] [--centred]

The model picks centred or non-centred kind levels from the data; each run checks one
parameterisation, with the truths drawn from exactly that model's prior.

The last line reads ``coverage: 0.xx``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from twin.bayes.failure import OccurrencePriors, build_occurrence_model, occurrence_rates
from twin.bayes.fit import quiet

SERVICES = [f"svc{i}" for i in range(8)]
KINDS = ["latency", "error_rate", "outage"]
PERIODS = 4
PERIOD_DAYS = 30.0


def prior_draw(pr: OccurrencePriors, rng: np.random.Generator, centred: bool) -> np.ndarray:
    """Rates (service, kind) per day from the compiled model's generative story: kind levels
    Normal(mu0, kind_sd) when centred, else mu0 + kind_sd x a zero-sum normal."""
    mu0 = rng.normal(math.log(pr.rate_median), pr.rate_log_sd)
    sk = rng.gamma(2.0, pr.kind_sd / 2.0)
    ss = rng.gamma(2.0, pr.service_sd / 2.0)
    zk = rng.normal(size=len(KINDS))
    if not centred:
        zk -= zk.mean()
    zs = rng.normal(size=len(SERVICES))
    zs -= zs.mean()
    shape = rng.lognormal(math.log(pr.shape_median), pr.shape_log_sd)
    mean = np.exp(mu0 + sk * zk[None, :] + ss * zs[:, None])
    return np.asarray(rng.gamma(shape, mean / shape))


def counts_frame(rates: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for i, s in enumerate(SERVICES):
        for j, k in enumerate(KINDS):
            for p in range(PERIODS):
                n = int(rng.poisson(rates[i, j] * PERIOD_DAYS))
                rows.append((s, k, f"p{p}", n, PERIOD_DAYS))
    return pd.DataFrame(
        rows, columns=["service", "fault_kind", "period", "incidents", "exposure_days"]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument(
        "--centred",
        action="store_true",
        help="check the centred kind levels (used when every kind has >= 20 incidents)",
    )
    a = ap.parse_args()
    quiet()
    import nutpie

    pr = OccurrencePriors(rate_median=1 / 30)  # a busy system: a few incidents per cell
    pr = OccurrencePriors(rate_median=pr.rate_median, centre_kinds_from=0 if a.centred else 10**9)
    rng = np.random.default_rng(a.seed)
    truth = prior_draw(pr, rng, a.centred)
    frame = counts_frame(truth, rng)
    t0 = time.perf_counter()
    first = build_occurrence_model(frame, pr)
    param = "non-centred" if "kind_z" in first.named_vars else "centred"
    assert (param == "centred") == a.centred
    compiled = nutpie.compile_pymc_model(first)
    compile_s = time.perf_counter() - t0
    cells = frame.groupby(["service", "fault_kind"], sort=False)[
        ["incidents", "exposure_days"]
    ].sum()
    hits = total = 0
    ranks = []
    divergent = 0
    started = time.perf_counter()
    for d in range(a.datasets):
        if d:
            truth = prior_draw(pr, rng, a.centred)
            frame = counts_frame(truth, rng)
            cells = frame.groupby(["service", "fault_kind"], sort=False)[
                ["incidents", "exposure_days"]
            ].sum()
        model = compiled.with_data(
            incidents=cells["incidents"].to_numpy("int64"),
            exposure=cells["exposure_days"].to_numpy("float64"),
        )
        idata = nutpie.sample(
            model,
            draws=a.draws,
            tune=a.draws,
            chains=2,
            cores=2,
            seed=a.seed * 1000 + d,
            progress_bar=False,
            target_accept=0.95,  # as twin.bayes.fit does
        )
        divergent += int(idata.sample_stats["diverging"].values.sum())
        draws = occurrence_rates(idata, frame, seed=d)  # (n, service, kind)
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        inside = (truth >= lo) & (truth <= hi)
        hits += int(inside.sum())
        total += inside.size
        ranks.append(((draws < truth[None]).mean(axis=0)).ravel())
        if (d + 1) % 10 == 0:
            print(f"{d + 1:4d} datasets: coverage so far {hits / total:.3f}", flush=True)
    r = np.concatenate(ranks)
    hist, _ = np.histogram(r, bins=10, range=(0.0, 1.0))
    print(
        f"compile {compile_s:.1f} s, {a.datasets} fits in {time.perf_counter() - started:.1f} s"
        f"; {len(SERVICES)} services x {len(KINDS)} kinds x {PERIODS} periods; "
        f"{divergent} divergent transitions in {a.datasets * 2 * a.draws} draws; "
        f"kind levels {param}"
    )
    print("rank histogram (deciles, flat when calibrated):", " ".join(map(str, hist)))
    print(f"coverage: {hits / total:.2f}")


if __name__ == "__main__":
    main()
