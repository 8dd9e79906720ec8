"""The models: how often faults happen, how often a fault breaks an SLO, when things fail.

Each is ``build_*_model(tidy_df, priors) -> pm.Model`` with named coords, in PyMC's style;
``docs/risk.md`` states each model's assumptions. Units: days for exposure and rates,
log(intensity) standardised per fault kind, log(load multiplier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin.errors import InputError

if TYPE_CHECKING:
    import pymc as pm


# -- fault occurrence -------------------------------------------------------------------------


@dataclass(frozen=True)
class OccurrencePriors:
    """Priors of the fault-occurrence model (rates are per day).

    The default says: a failure mode of one service happens about once a year (median rate
    1/365 per day) give or take a factor of e^2 per kind, services differ by a factor of
    about e^1, and service x kind cells scatter around that with Gamma shape near 2.
    ``fixed``: ``(alpha, beta)`` drops the hierarchy, each rate ~ Gamma(alpha, beta) (the
    conjugate reference used in tests).
    """

    rate_median: float = 1.0 / 365.0
    rate_log_sd: float = 2.0
    kind_sd: float = 1.0
    service_sd: float = 1.0
    shape_median: float = 2.0
    shape_log_sd: float = 0.5
    fixed: tuple[float, float] | None = None
    centre_kinds_from: int = 20


def _spread(name: str, scale: float) -> Any:
    """A group-level standard deviation with a boundary-avoiding Gamma(2, 2 / scale) prior
    (mean ``scale``, zero density at zero; Chung et al. 2013): with few groups a half-normal
    lets the spread collapse toward zero, where the non-centred effects form a funnel that
    NUTS reports as divergences."""
    import pymc as pm

    return pm.Gamma(name, alpha=2.0, beta=2.0 / scale)


def _onehot(idx: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(idx), n))
    out[np.arange(len(idx)), idx] = 1.0
    return out


def _codes(values: pd.Series, levels: list[str]) -> np.ndarray:
    return pd.Categorical(values.astype(str), categories=levels).codes.astype("int64")


def _cells(counts: pd.DataFrame) -> pd.DataFrame:
    """Totals per service and fault kind: the counts and exposures summed over periods are
    sufficient for a rate that is constant in time."""
    return counts.groupby(["service", "fault_kind"], as_index=False, sort=False)[
        ["incidents", "exposure_days"]
    ].sum()


def occurrence_coords(counts: pd.DataFrame) -> dict[str, list[str]]:
    """Named coords of the occurrence model: service and fault_kind."""
    return {
        "service": list(dict.fromkeys(counts["service"].astype(str))),
        "fault_kind": list(dict.fromkeys(counts["fault_kind"].astype(str))),
    }


def build_occurrence_model(
    counts: pd.DataFrame, priors: OccurrencePriors | None = None
) -> pm.Model:
    """Hierarchical Gamma-Poisson: incidents of each service and fault kind.

    ``counts``: one row per service, fault kind (and period) with ``incidents`` and
    ``exposure_days``. ``rate[service, fault_kind]`` ~ Gamma(shape, shape / mean_rate) with
    log mean_rate = kind level + service frailty; incidents ~ Poisson(rate x exposure).

    The rates are integrated out (the totals of a cell are negative binomial given the
    hyperparameters), which is exact and spares the sampler the funnel between ``shape``
    and hundreds of rates; :func:`occurrence_rates` then draws every rate from its conjugate
    conditional Gamma(shape + incidents, shape / mean_rate + exposure), one per posterior
    draw. With ``priors.fixed`` the model is the plain conjugate one, rates sampled directly.
    Data are ``pm.Data`` (``incidents``, ``exposure``, one per cell) so a compiled model can
    be reused with new counts of the same shape.
    """
    import pymc as pm

    pr = priors or OccurrencePriors()
    if counts.empty:
        raise InputError("empty history: no rows to model")
    if (counts["exposure_days"] < 0).any():
        raise InputError("negative exposure in the history")
    cells = _cells(counts)
    coords = occurrence_coords(counts)
    s_idx = _codes(cells["service"], coords["service"])
    k_idx = _codes(cells["fault_kind"], coords["fault_kind"])
    coords["cell"] = [
        f"{s}|{k}" for s, k in zip(cells["service"], cells["fault_kind"], strict=True)
    ]
    with pm.Model(coords=coords) as model:
        y = pm.Data("incidents", cells["incidents"].to_numpy(dtype="int64"), dims="cell")
        e = pm.Data("exposure", cells["exposure_days"].to_numpy(dtype="float64"), dims="cell")
        if pr.fixed is not None:
            alpha, beta = pr.fixed
            rate = pm.Gamma("rate", alpha=alpha, beta=beta, dims=("service", "fault_kind"))
            pm.Poisson("obs_incidents", mu=rate[s_idx, k_idx] * e, observed=y, dims="cell")
            return model
        mu0 = pm.Normal("log_rate_mean", mu=math.log(pr.rate_median), sigma=pr.rate_log_sd)
        sk = _spread("kind_sd", pr.kind_sd)
        # Kinds are centred when each has plenty of incidents over all services (the data
        # pin every kind's level), non-centred otherwise (sparse kinds would form a funnel
        # with kind_sd); services are non-centred and sum to zero (many have few incidents;
        # no ridge with the mean).
        per_kind = cells.groupby("fault_kind")["incidents"].sum()
        if len(per_kind) and int(per_kind.min()) >= pr.centre_kinds_from:
            lk = pm.Normal("log_kind_rate", mu=mu0, sigma=sk, dims="fault_kind")
        else:
            zk = pm.ZeroSumNormal("kind_z", sigma=1.0, dims="fault_kind")
            lk = pm.Deterministic("log_kind_rate", mu0 + sk * zk, dims="fault_kind")
        ss = _spread("service_sd", pr.service_sd)
        zs = pm.ZeroSumNormal("service_z", sigma=1.0, dims="service")
        shape = pm.LogNormal("shape", mu=math.log(pr.shape_median), sigma=pr.shape_log_sd)
        log_mu = lk[None, :] + ss * zs[:, None]
        mean_rate = pm.Deterministic(
            "mean_rate", pm.math.exp(log_mu), dims=("service", "fault_kind")
        )
        # Rates integrated out: the cell totals are negative binomial given the hyperparameters.
        mu_cell = mean_rate[s_idx, k_idx]
        pm.NegativeBinomial("obs_incidents", mu=mu_cell * e, alpha=shape, observed=y, dims="cell")
    return model


def occurrence_rates(idata: Any, counts: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Posterior draws of every rate, shape (draws, service, fault_kind), per day.

    From the posterior when the model sampled them (``fixed`` priors), else from each rate's
    conjugate conditional given the hyperparameters of the same draw (exact).
    """
    post = idata.posterior
    if "rate" in post:
        arr = np.asarray(post["rate"].values)
        return arr.reshape((-1, *arr.shape[2:]))
    coords = occurrence_coords(counts)
    cells = _cells(counts)
    s_idx = _codes(cells["service"], coords["service"])
    k_idx = _codes(cells["fault_kind"], coords["fault_kind"])
    shape_s = np.asarray(post["shape"].values).reshape(-1)
    mean = np.asarray(post["mean_rate"].values)
    mean = mean.reshape((-1, *mean.shape[2:]))
    y = np.zeros(mean.shape[1:])
    e = np.zeros(mean.shape[1:])
    y[s_idx, k_idx] = cells["incidents"].to_numpy(float)
    e[s_idx, k_idx] = cells["exposure_days"].to_numpy(float)
    a = shape_s[:, None, None] + y[None]
    b = shape_s[:, None, None] / mean + e[None]
    rng = np.random.default_rng(seed)
    return np.asarray(rng.gamma(a, 1.0 / b))


# -- impact given a fault ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactPriors:
    """Priors of the impact model (log-odds scale).

    ``discrepancy_sd``: how far real systems may differ from the twin, per fault kind, before
    any real chaos result is seen; real results pull this term, and so every prediction for
    the real system, toward what they show.
    """

    intercept_sd: float = 2.0
    kind_sd: float = 1.5
    target_sd: float = 1.0
    slope_mean: float = 0.5
    slope_sd: float = 1.0
    load_sd: float = 1.0
    policy_sd: float = 1.5
    policy_kind_sd: float = 1.0
    discrepancy_sd: float = 1.0


@dataclass(frozen=True)
class ImpactDesign:
    """Coords and covariate scaling of the impact model: what prediction needs to reuse."""

    slos: list[str]
    kinds: list[str]
    targets: list[str]
    policies: list[str]
    log_intensity_center: dict[str, float]
    log_intensity_scale: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def z_intensity(self, kind: str, intensity: np.ndarray | float) -> np.ndarray:
        x = np.log(np.maximum(np.asarray(intensity, dtype=float), 1e-9))
        return np.asarray(
            (x - self.log_intensity_center.get(kind, 0.0)) / self.log_intensity_scale.get(kind, 1.0)
        )


def impact_design(rows: pd.DataFrame, policies: list[str] | None = None) -> ImpactDesign:
    """Coords and scaling from binomial impact rows (:func:`twin.bayes.evidence.impact_rows`)."""
    slos = [s for s in ("any", "availability", "latency_p99") if s in set(rows["slo"])]
    kinds = list(dict.fromkeys(rows["fault_kind"].astype(str)))
    pols = list(policies or [])
    pols += [p for p in dict.fromkeys(rows["policy"].astype(str)) if p not in pols]
    center, scale = {}, {}
    for k in kinds:
        x = np.log(np.maximum(rows.loc[rows["fault_kind"] == k, "intensity"].to_numpy(float), 1e-9))
        center[k] = float(np.mean(x))
        sd = float(np.std(x))
        scale[k] = sd if sd > 1e-6 else 1.0
    return ImpactDesign(
        slos, kinds, list(dict.fromkeys(rows["target"].astype(str))), pols, center, scale
    )


def build_impact_model(
    rows: pd.DataFrame,
    priors: ImpactPriors | None = None,
    design: ImpactDesign | None = None,
) -> pm.Model:
    """Hierarchical logistic: P(SLO breach | fault kind, target, intensity, load, policy).

    ``rows``: binomial rows ``slo, fault_kind, target, intensity, load, policy, source,
    trials, breaches`` (source ``sim`` for campaign runs, ``real`` for chaos results).
    logit p = intercept[slo] + kind[slo, kind] + target[target] + slope[kind] x z(intensity)
    + load[slo] x log(load) + policy[policy] + policy_kind[policy, kind]
    + real x discrepancy[kind]; the first policy is the reference (its effects are zero).
    """
    import pymc as pm
    import pytensor.tensor as _pt

    pt: Any = _pt  # partly typed; used for concatenate, zeros, softplus

    pr = priors or ImpactPriors()
    if rows.empty:
        raise InputError("no campaign runs to learn impact from")
    d = design or impact_design(rows)
    coords: dict[str, list[str]] = {
        "slo": d.slos,
        "fault_kind": d.kinds,
        "target": d.targets,
        "policy": d.policies,
        "row": [str(i) for i in range(len(rows))],
    }
    alt = d.policies[1:]
    if alt:
        coords["policy_alt"] = alt
    slo_i = _codes(rows["slo"], d.slos)
    kind_i = _codes(rows["fault_kind"], d.kinds)
    tgt_i = _codes(rows["target"], d.targets)
    pol_i = _codes(rows["policy"], d.policies)
    z = np.zeros(len(rows))
    for k in d.kinds:
        m = (rows["fault_kind"] == k).to_numpy()
        z[m] = d.z_intensity(k, rows.loc[m, "intensity"].to_numpy(float))
    logload = np.log(np.maximum(rows["load"].to_numpy(float), 1e-9))
    real = (rows["source"].astype(str) == "real").to_numpy(dtype="float64")
    with pm.Model(coords=coords) as model:
        a0 = pm.Normal("intercept", 0.0, pr.intercept_sd, dims="slo")
        sk = _spread("kind_sd", pr.kind_sd)
        ak = pm.Deterministic(
            "kind_effect",
            sk * pm.Normal("kind_z", 0.0, 1.0, dims=("slo", "fault_kind")),
            dims=("slo", "fault_kind"),
        )
        st = _spread("target_sd", pr.target_sd)
        at = pm.Deterministic(
            "target_effect", st * pm.Normal("target_z", 0.0, 1.0, dims="target"), dims="target"
        )
        bm = pm.Normal("slope_mean", pr.slope_mean, pr.slope_sd)
        bs = _spread("slope_sd", pr.slope_sd)
        b = pm.Deterministic(
            "slope", bm + bs * pm.Normal("slope_z", 0.0, 1.0, dims="fault_kind"), dims="fault_kind"
        )
        bl = pm.Normal("load_slope", 0.0, pr.load_sd, dims="slo")
        ds = _spread("discrepancy_sd", pr.discrepancy_sd)
        d0 = pm.Normal("discrepancy_mean", 0.0, pr.discrepancy_sd)
        disc = pm.Deterministic(
            "discrepancy",
            d0 + ds * pm.Normal("discrepancy_z", 0.0, 1.0, dims="fault_kind"),
            dims="fault_kind",
        )
        # eta = X @ theta with a dense design matrix: one matrix-vector product (and its
        # transpose for the gradient) instead of a gather and a scatter per term.
        parts = [a0, ak.flatten(), at, b, bl, disc]
        cols = [
            _onehot(slo_i, len(d.slos)),
            _onehot(slo_i * len(d.kinds) + kind_i, len(d.slos) * len(d.kinds)),
            _onehot(tgt_i, len(d.targets)),
            _onehot(kind_i, len(d.kinds)) * z[:, None],
            _onehot(slo_i, len(d.slos)) * logload[:, None],
            _onehot(kind_i, len(d.kinds)) * real[:, None],
        ]
        if alt:
            # Few policies: fixed effects with a weakly informative prior (a hierarchical
            # spread over two or three values is not identified and slows the sampler).
            ga = pm.Normal("policy_alt_effect", 0.0, pr.policy_sd, dims="policy_alt")
            g = pm.Deterministic("policy_effect", pt.concatenate([pt.zeros(1), ga]), dims="policy")
            gka = pm.Normal(
                "policy_kind_alt_effect", 0.0, pr.policy_kind_sd, dims=("policy_alt", "fault_kind")
            )
            gk = pm.Deterministic(
                "policy_kind_effect",
                pt.concatenate([pt.zeros((1, len(d.kinds))), gka], axis=0),
                dims=("policy", "fault_kind"),
            )
            parts += [g, gk.flatten()]
            cols += [
                _onehot(pol_i, len(d.policies)),
                _onehot(pol_i * len(d.kinds) + kind_i, len(d.policies) * len(d.kinds)),
            ]
        eta = pt.dot(np.concatenate(cols, axis=1), pt.concatenate(parts))
        # Binomial log-likelihood without its constant coefficient: y x eta - n x log(1 + e^eta)
        # (one softplus per row; the same posterior as pm.Binomial, half the work).
        y = rows["breaches"].to_numpy(dtype="float64")
        n = rows["trials"].to_numpy(dtype="float64")
        pm.Potential("obs_breaches", pt.sum(y * eta - n * pt.softplus(eta)))
    return model


# -- time to failure --------------------------------------------------------------------------


@dataclass(frozen=True)
class TTFPriors:
    """Priors of the Weibull time-to-failure model (days)."""

    scale_median: float = 90.0
    scale_log_sd: float = 1.5
    service_sd: float = 0.75
    shape_log_sd: float = 0.5


def build_ttf_model(ages: pd.DataFrame, priors: TTFPriors | None = None) -> pm.Model:
    """Weibull time to failure per service, with right-censoring.

    ``ages``: one row per unit life with ``service``, ``age_days`` (time from deploy or
    restart to failure, or to now) and ``failed`` (False: still running, censored).
    shape > 1 means wear-out (leaks, fragmentation), < 1 infant mortality (bad deploys).
    """
    import pymc as pm

    pr = priors or TTFPriors()
    if ages.empty:
        raise InputError("no ages to model")
    if (ages["age_days"] <= 0).any():
        raise InputError("ages must be > 0 days")
    services = list(dict.fromkeys(ages["service"].astype(str)))
    s_idx = _codes(ages["service"], services)
    t = ages["age_days"].to_numpy(float)
    failed = ages["failed"].to_numpy(bool)
    with pm.Model(coords={"service": services}) as model:
        k = pm.LogNormal("shape", 0.0, pr.shape_log_sd)
        m = pm.Normal("log_scale_mean", math.log(pr.scale_median), pr.scale_log_sd)
        sd = _spread("service_sd", pr.service_sd)
        log_eta = pm.Deterministic(
            "log_scale", m + sd * pm.Normal("service_z", 0.0, 1.0, dims="service"), dims="service"
        )
        eta = pm.math.exp(log_eta)
        if failed.any():
            pm.Weibull("ttf", alpha=k, beta=eta[s_idx[failed]], observed=t[failed])
        if (~failed).any():
            ts = t[~failed]
            pm.Potential("censored", -pm.math.sum((ts / eta[s_idx[~failed]]) ** k))
    return model
