"""How long a 100-service incident history takes to sample: nutpie vs PyMC's NUTS (+ ADVI).

A synthetic history (100 services x 6 fault kinds x 12 monthly periods, 30% of services new
in the last quarter) fitted with the occurrence model, 2 chains x 2000 draws after 1000
tuning steps, on the cores there are (2 here). Prints compile and sampling seconds per
sampler, the diagnostics, and the ratio. Target: under a minute on 2 cores.

    python benchmarks/bayes_speed.py [--services 100] [--skip-pymc] [--only METHOD]

PyTensor caches PyMC's compiled C code on disk, so PyMC's first run in a fresh cache is
slower (``PYTENSOR_FLAGS=compiledir=/tmp/fresh`` measures that); nutpie compiles with numba
in every process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from twin.bayes import synthetic
from twin.bayes.checks import diagnose
from twin.bayes.failure import build_occurrence_model, occurrence_rates
from twin.bayes.fit import FitOptions, Method, fit, quiet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--skip-pymc", action="store_true")
    ap.add_argument("--only", choices=["nutpie", "pymc", "advi"], help="time one method")
    a = ap.parse_args()
    quiet()
    services = [f"svc{i:03d}" for i in range(a.services)]
    truth = synthetic.true_rates(services, list(synthetic.KIND_RATES), seed=1)
    counts = synthetic.counts_from_truth(truth, 1, periods=12, sparse_share=0.3, sparse_periods=3)
    print(
        f"history: {len(services)} services x {len(synthetic.KIND_RATES)} kinds, "
        f"{int(counts['incidents'].sum())} incidents, "
        f"{counts['exposure_days'].sum() / 365:.0f} service-kind-years of exposure"
    )
    totals = {}
    rates = {}
    methods: list[Method] = ["nutpie"] if a.skip_pymc else ["nutpie", "pymc"]
    run: list[Method] = [a.only] if a.only else [*methods, "advi"]
    for method in run:
        model = build_occurrence_model(counts)
        t0 = time.perf_counter()
        f = fit(
            model,
            FitOptions(
                method=method,
                draws=a.draws,
                tune=1000,
                chains=2,
                seed=1,
            ),
        )
        wall = time.perf_counter() - t0
        d = diagnose(f, model="occurrence")
        totals[method] = wall
        rates[method] = occurrence_rates(f.idata, counts, seed=1)
        compiled = (
            f"compile {f.compile_seconds:5.1f} s"
            if method == "nutpie"
            else "PyTensor compile included"
        )
        print(
            f"{method:7s} wall {wall:6.1f} s (sampling {f.seconds:5.1f} s, {compiled}): r-hat max "
            f"{'-' if d.rhat_max is None else f'{d.rhat_max:.3f}'}, bulk ESS min "
            f"{'-' if d.ess_bulk_min is None else f'{d.ess_bulk_min:.0f}'}, "
            f"divergences {d.divergences}; {'ok' if d.ok else '; '.join(d.problems)}"
        )
    if "pymc" in totals and "nutpie" in totals:
        print(f"pymc / nutpie wall: {totals['pymc'] / totals['nutpie']:.2f}x")
    if "advi" in rates and "nutpie" in rates:
        # how far the fast option is from NUTS: rate means and 90% interval widths
        ref, adv = rates["nutpie"], rates["advi"]
        m_ref, m_adv = ref.mean(axis=0), adv.mean(axis=0)
        w_ref = np.subtract(*np.quantile(ref, [0.95, 0.05], axis=0))
        w_adv = np.subtract(*np.quantile(adv, [0.95, 0.05], axis=0))
        print(
            "advi vs nutpie, per rate: median |relative error| of the mean "
            f"{np.median(np.abs(m_adv / m_ref - 1)):.1%}, 90th percentile "
            f"{np.quantile(np.abs(m_adv / m_ref - 1), 0.9):.1%}; median 90%-interval width "
            f"ratio {np.median(w_adv / w_ref):.2f}"
        )
    if "nutpie" in totals:
        print(f"nutpie seconds: {totals['nutpie']:.1f}")


if __name__ == "__main__":
    main()
