"""Drift prediction: how often each resource's configuration changes outside the desired
state, by field class and manager, and P(drift within a horizon) with an interval.

The model (``build_drift_model``) is hierarchical Poisson on a tidy table with one row per
resource x field class x manager (``changes`` counted over ``exposure_days``)::

    log rate[r, c, m] = mu + resource[r] + class[c] + manager[m]
    changes ~ Poisson(rate * exposure_days)

with the group effects summing to zero (so ``mu`` is the average level and nothing trades
off against it). A group with many levels (resources) is partially pooled: its effects are
``sd * z`` with a spread ``sd`` learnt from the data under a Gamma(a, a / scale) prior
(mean ``scale``). A group with few levels (the field classes and managers, usually under
ten) is a fixed effect with a Normal(0, scale) prior per level: four or six levels cannot
identify a spread, and estimating one anyway only gives the sampler a funnel to get stuck in.
Resources that changed rarely borrow strength from the others; a manager that edits often
(``kubectl-edit``, an operator) raises every cell it touches. The probability that a
resource drifts within ``h`` days is ``1 - exp(-h * sum over c, m of rate[r, c, m])``,
computed per posterior draw; its mean and equal-tailed interval are the prediction.
:func:`synthetic_history` draws change histories from this model with known rates, and
:func:`holdout` scores predictions on held-out days (Brier against the base rate, interval
coverage of the true probability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin.errors import InputError

if TYPE_CHECKING:
    import pymc as pm

COLUMNS = ("resource", "field_class", "manager", "changes", "exposure_days")


@dataclass(frozen=True)
class DriftPriors:
    """Priors of the drift-rate model (per day and cell). The default: a cell (one resource,
    field class and manager) changes about once a year (median 1/365 per day, give or take
    e^2), and resources, field classes and managers each differ by a factor of about e.

    A group with at least ``pool_from`` levels gets a learnt spread with a
    Gamma(``spread_shape``, ``spread_shape`` / scale) prior: mean ``scale``, and firm enough
    (shape 5: 90% of its mass between 0.4 and 1.8 times the scale) that a quiet history, where
    most resources changed zero times or once and the counts look alike by chance, does not
    pull the spread far towards zero and make every resource look the same; under a weaker
    prior (shape 2) a few dozen such changes halved the spread and the intervals came out
    too narrow. The effects of such a group are centred when every level has at least
    ``centre_from`` changes (the data pin each level) and non-centred otherwise (sparse
    levels would form a funnel with their spread). A group with fewer levels is a fixed
    effect."""

    rate_median: float = 1.0 / 365.0
    rate_log_sd: float = 2.0
    resource_sd: float = 1.0
    class_sd: float = 1.0
    manager_sd: float = 1.0
    spread_shape: float = 5.0
    pool_from: int = 10
    centre_from: int = 20


def _spread(name: str, scale: float, shape: float) -> Any:
    import pymc as pm

    return pm.Gamma(name, alpha=shape, beta=shape / scale)


def check_tidy(df: pd.DataFrame) -> None:
    """Refuse a table the model cannot read, naming what is wrong."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"drift history: missing column(s) {missing}; expected {list(COLUMNS)}")
    if df.empty:
        raise InputError("drift history: no rows to model")
    if (df["changes"] < 0).any() or (df["exposure_days"] <= 0).any():
        raise InputError("drift history: changes must be >= 0 and exposure_days > 0")


def drift_coords(df: pd.DataFrame) -> dict[str, list[str]]:
    """Named coords: resource, field_class, manager."""
    return {
        c: list(dict.fromkeys(df[c].astype(str))) for c in ("resource", "field_class", "manager")
    }


def _codes(values: pd.Series, levels: list[str]) -> np.ndarray:
    return pd.Categorical(values.astype(str), categories=levels).codes.astype("int64")


def build_drift_model(df: pd.DataFrame, priors: DriftPriors | None = None) -> pm.Model:
    """The hierarchical Poisson model of change counts (see the module docstring)."""
    import pymc as pm

    check_tidy(df)
    pr = priors or DriftPriors()
    cells = df.groupby(["resource", "field_class", "manager"], as_index=False, sort=False)[
        ["changes", "exposure_days"]
    ].sum()
    coords = drift_coords(cells)
    r = _codes(cells["resource"], coords["resource"])
    c = _codes(cells["field_class"], coords["field_class"])
    m = _codes(cells["manager"], coords["manager"])
    coords["cell"] = [
        f"{a}|{b}|{d}"
        for a, b, d in zip(cells["resource"], cells["field_class"], cells["manager"], strict=True)
    ]
    with pm.Model(coords=coords) as model:
        y = pm.Data("changes", cells["changes"].to_numpy(dtype="int64"), dims="cell")
        e = pm.Data("exposure", cells["exposure_days"].to_numpy(dtype="float64"), dims="cell")
        mu = pm.Normal("log_rate_mean", mu=math.log(pr.rate_median), sigma=pr.rate_log_sd)
        terms = mu
        for name, dim, idx, scale in (
            ("resource", "resource", r, pr.resource_sd),
            ("class", "field_class", c, pr.class_sd),
            ("manager", "manager", m, pr.manager_sd),
        ):
            n = len(coords[dim])
            if n < 2:
                continue  # one level: its effect is the mean itself
            if n < pr.pool_from:
                # few levels: a fixed effect per level, no spread to estimate
                eff = pm.ZeroSumNormal(f"{name}_effect", sigma=scale, dims=dim)
                terms = terms + eff[idx]
                continue
            sd = _spread(f"{name}_sd", scale, pr.spread_shape)
            per_level = np.bincount(idx, weights=cells["changes"].to_numpy(float), minlength=n)
            if per_level.min() >= pr.centre_from:
                # every level is pinned by its own changes: centred (no funnel to fear)
                eff = pm.ZeroSumNormal(f"{name}_effect", sigma=sd, dims=dim)
            else:
                z = pm.ZeroSumNormal(f"{name}_z", sigma=1.0, dims=dim)
                eff = pm.Deterministic(f"{name}_effect", sd * z, dims=dim)
            terms = terms + eff[idx]
        rate = pm.Deterministic("rate", pm.math.exp(terms), dims="cell")
        pm.Poisson("obs_changes", mu=rate * e, observed=y, dims="cell")
    return model


def drift_probabilities(
    idata: Any, df: pd.DataFrame, horizon_days: float, interval: float = 0.9
) -> pd.DataFrame:
    """P(a resource drifts within ``horizon_days``): one row per resource with ``probability``
    (posterior mean), ``low`` and ``high`` (equal-tailed ``interval``), ``changes_seen``, and
    the field class and manager contributing most."""
    post = idata.posterior
    rate = np.asarray(post["rate"].values)
    rate = rate.reshape((-1, rate.shape[-1]))  # draws x cell
    cells = df.groupby(["resource", "field_class", "manager"], as_index=False, sort=False)[
        ["changes", "exposure_days"]
    ].sum()
    a = (1.0 - interval) / 2.0
    rows = []
    for res, grp in cells.groupby("resource", sort=False):
        idx = grp.index.to_numpy()
        total = rate[:, idx].sum(axis=1)
        p = 1.0 - np.exp(-horizon_days * total)
        lo, hi = np.quantile(p, [a, 1.0 - a])
        top = int(np.argmax(rate[:, idx].mean(axis=0)))
        rows.append(
            {
                "resource": str(res),
                "probability": float(p.mean()),
                "low": float(lo),
                "high": float(hi),
                "changes_seen": int(grp["changes"].sum()),
                "top_field_class": str(grp["field_class"].iloc[top]),
                "top_manager": str(grp["manager"].iloc[top]),
            }
        )
    return pd.DataFrame(rows)


# -- synthetic histories and held-out scoring ---------------------------------------------------


@dataclass(frozen=True)
class SyntheticHistory:
    """Change events with known rates: ``events`` (day, resource, field_class, manager) and
    ``rates`` (one row per cell with ``rate`` per day)."""

    events: pd.DataFrame
    rates: pd.DataFrame
    days: float


def synthetic_history(
    rng: np.random.Generator,
    *,
    resources: int = 60,
    classes: tuple[str, ...] = ("replicas", "resources", "image", "env", "security", "metadata"),
    managers: tuple[str, ...] = ("kubectl-edit", "kubectl-scale", "helm", "operator"),
    days: float = 90.0,
    resource_days: float = 40.0,
    priors: DriftPriors | None = None,
) -> SyntheticHistory:
    """A change history drawn from the model: effects drawn per resource, class and manager
    with the priors' spreads, the level set so that a typical resource changes about once in
    ``resource_days`` days, and each cell's changes a Poisson process over ``days``."""
    pr = priors or DriftPriors()
    names = [f"Deployment/default/svc-{i:03d}" for i in range(resources)]
    er = rng.normal(0.0, pr.resource_sd, resources)
    ec = rng.normal(0.0, pr.class_sd, len(classes))
    em = rng.normal(0.0, pr.manager_sd, len(managers))
    rows = []
    events = []
    # per resource, summed over its cells: about one change in ``resource_days`` days
    base = -math.log(resource_days * len(classes) * len(managers)) - 1.5
    for i, r in enumerate(names):
        for j, c in enumerate(classes):
            for k, m in enumerate(managers):
                rate = math.exp(base + er[i] + ec[j] + em[k])
                rows.append({"resource": r, "field_class": c, "manager": m, "rate": rate})
                n = int(rng.poisson(rate * days))
                for t in np.sort(rng.uniform(0.0, days, n)):
                    events.append({"day": float(t), "resource": r, "field_class": c, "manager": m})
    return SyntheticHistory(
        pd.DataFrame(events, columns=["day", "resource", "field_class", "manager"]),
        pd.DataFrame(rows),
        days,
    )


def tidy_counts(
    events: pd.DataFrame, cells: pd.DataFrame, start: float, end: float
) -> pd.DataFrame:
    """Changes per cell of ``cells`` (resource, field_class, manager) within [start, end),
    with that window as exposure: the model's input table."""
    window = events[(events["day"] >= start) & (events["day"] < end)]
    counts = window.groupby(["resource", "field_class", "manager"]).size()
    out = cells[["resource", "field_class", "manager"]].copy()
    keys = list(zip(out["resource"], out["field_class"], out["manager"], strict=True))
    out["changes"] = [int(counts.get(k, 0)) for k in keys]
    out["exposure_days"] = end - start
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class Holdout:
    """Scores of predictions on held-out days."""

    resources: int
    drifted_share: float
    brier: float
    brier_base_rate: float
    base_rate: float
    coverage_true_probability: float
    interval: float


def holdout(
    history: SyntheticHistory,
    idata: Any,
    train: pd.DataFrame,
    *,
    train_days: float,
    horizon_days: float,
    interval: float = 0.9,
) -> Holdout:
    """Score a fit on the first ``train_days`` against what happened in the next
    ``horizon_days``. Brier: mean squared difference between P(drift) and whether the resource
    drifted. Base rate: the share of (resource, window) pairs with a change over the training
    days cut into windows of the horizon's length, predicted for every resource. Coverage:
    the share of resources whose true P(drift) (from the known rates) lies in the interval."""
    pred = drift_probabilities(idata, train, horizon_days, interval).set_index("resource")
    ev = history.events
    later = ev[(ev["day"] >= train_days) & (ev["day"] < train_days + horizon_days)]
    drifted = pred.index.isin(set(later["resource"]))
    windows = max(1, int(train_days // horizon_days))
    hits = 0
    for w in range(windows):
        lo, hi = w * horizon_days, (w + 1) * horizon_days
        hits += ev[(ev["day"] >= lo) & (ev["day"] < hi)]["resource"].nunique()
    base = hits / (windows * len(pred))
    y = drifted.astype(float)
    p = pred["probability"].to_numpy()
    true_rate = history.rates.groupby("resource")["rate"].sum().reindex(pred.index).to_numpy()
    true_p = 1.0 - np.exp(-horizon_days * true_rate)
    covered = (pred["low"].to_numpy() <= true_p) & (true_p <= pred["high"].to_numpy())
    return Holdout(
        resources=len(pred),
        drifted_share=float(y.mean()),
        brier=float(np.mean((p - y) ** 2)),
        brier_base_rate=float(np.mean((base - y) ** 2)),
        base_rate=float(base),
        coverage_true_probability=float(covered.mean()),
        interval=interval,
    )


__all__ = [
    "COLUMNS",
    "DriftPriors",
    "Holdout",
    "SyntheticHistory",
    "build_drift_model",
    "check_tidy",
    "drift_coords",
    "drift_probabilities",
    "holdout",
    "synthetic_history",
    "tidy_counts",
]
