"""Sampling: nutpie (default, fastest here), PyMC's own NUTS, or ADVI for interactive use.

Every method returns an ArviZ ``InferenceData`` wrapped in :class:`Fit` with the wall time;
:mod:`twin.bayes.checks` decides whether the draws can be trusted.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from twin.errors import InputError

if TYPE_CHECKING:
    import pymc as pm

Method = Literal["nutpie", "pymc", "advi"]
METHODS: tuple[str, ...] = ("nutpie", "pymc", "advi")


@dataclass(frozen=True)
class FitOptions:
    """How to sample. ``draws`` and ``tune`` are per chain; ``cores`` defaults to
    min(chains, CPUs). ADVI runs ``advi_iterations`` steps, then draws ``draws x chains``."""

    method: Method = "nutpie"
    draws: int = 2000
    tune: int = 1000
    chains: int = 2
    cores: int | None = None
    seed: int = 1
    target_accept: float = 0.95
    advi_iterations: int = 20_000
    progress: bool = False  # the samplers' own progress bars (the CLI: when on a terminal)


@dataclass
class Fit:
    """Posterior draws and how they were made."""

    idata: Any  # arviz.InferenceData
    method: str
    seconds: float
    compile_seconds: float
    free_vars: list[str]
    loss: np.ndarray | None = None  # ADVI: negative ELBO per iteration

    def draws(self, name: str) -> np.ndarray:
        """Draws of ``name`` with chain and draw stacked first: shape (n, *dims)."""
        return stacked(self.idata, name)


def stacked(idata: Any, name: str) -> np.ndarray:
    arr = np.asarray(idata.posterior[name].values)
    return arr.reshape((arr.shape[0] * arr.shape[1], *arr.shape[2:]))


def quiet() -> None:
    """Silence PyMC's and PyTensor's chatter (progress, BLAS advice); errors still raise."""
    for name in ("pymc", "pytensor", "arviz", "numba"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytensor")
    warnings.filterwarnings("ignore", module="arviz")
    warnings.filterwarnings("ignore", module="pymc")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")


def fit(model: pm.Model, options: FitOptions | None = None) -> Fit:
    """Sample ``model`` with the chosen method."""
    o = options or FitOptions()
    if o.method not in METHODS:
        raise InputError(
            f"unknown method {o.method!r} (expected {', '.join(METHODS)})", source="--method"
        )
    if o.draws < 1 or o.chains < 1 or o.tune < 0:
        raise InputError("draws and chains must be >= 1, tune >= 0", source="--draws")
    quiet()
    free = [v.name for v in model.free_RVs]
    cores = o.cores or max(1, min(o.chains, os.cpu_count() or 1))
    if o.method == "nutpie":
        import nutpie

        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model)
        t1 = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            draws=o.draws,
            tune=o.tune,
            chains=o.chains,
            cores=cores,
            seed=o.seed,
            progress_bar=o.progress,
            target_accept=o.target_accept,
        )
        return Fit(idata, "nutpie", time.perf_counter() - t1, t1 - t0, free)
    if o.method == "pymc":
        import pymc as pm

        t0 = time.perf_counter()
        with model:
            idata = pm.sample(
                draws=o.draws,
                tune=o.tune,
                chains=o.chains,
                cores=cores,
                random_seed=o.seed,
                progressbar=o.progress,
                target_accept=o.target_accept,
                compute_convergence_checks=False,
            )
        return Fit(idata, "pymc", time.perf_counter() - t0, 0.0, free)
    import pymc as pm

    t0 = time.perf_counter()
    with model:
        from pymc.variational.callbacks import CheckParametersConvergence

        approx = pm.fit(
            n=o.advi_iterations,
            method="advi",
            random_seed=o.seed,
            progressbar=o.progress,
            callbacks=[CheckParametersConvergence(every=500, diff="relative", tolerance=0.01)],
        )
        idata = approx.sample(o.draws * o.chains, random_seed=o.seed)
    # one "chain" of independent draws: reshape so checks see (chains, draws)
    idata.posterior = (
        idata.posterior.stack(_s=("chain", "draw"))
        .drop_vars(["chain", "draw", "_s"])
        .rename({"_s": "draw"})
        .expand_dims("chain")
        .transpose("chain", "draw", ...)
    )
    return Fit(
        idata,
        "advi",
        time.perf_counter() - t0,
        0.0,
        free,
        loss=np.asarray(approx.hist, dtype=float),
    )
