"""Statistical helpers the behaviour tests share: tolerances and per-window series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from twin.results import Results

Z = 4.0
"""Standard errors allowed on a random figure: a false alarm about once in 16,000 checks."""


def binomial_tol(p: float, n: int) -> float:
    """Z standard errors of a fraction estimated from ``n`` independent trials."""
    return Z * math.sqrt(max(p * (1 - p), 1e-12) / n)


def series(res: Results, scope: str, name: str, family: str, metric: str) -> pd.Series:
    """One metric per window start time (0 where the window has no row for it)."""
    df = res.timeseries.frame()
    starts = np.sort(df["time"].unique())
    sel = df[
        (df["scope"] == scope)
        & (df["name"] == name)
        & (df["family"] == family)
        & (df["metric"] == metric)
    ]
    return sel.groupby("time", observed=True)["value"].sum().reindex(starts, fill_value=0.0)
