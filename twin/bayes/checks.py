"""Can the draws be trusted? r-hat, effective sample size and divergences (via ArviZ).

Reports are refused, with the reason, when any check fails: a risk figure from a sampler
that did not converge is worse than none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from twin.bayes.fit import Fit
from twin.errors import TwinError


class DiagnosticsError(TwinError):
    """The sampler's draws failed a convergence check; the message says which and why."""


@dataclass(frozen=True)
class Thresholds:
    """Vehtari et al. (2021): r-hat below 1.01, bulk and tail ESS of at least 100 per chain;
    divergent transitions in at most ``max_divergence_share`` of the draws (0.1%: an isolated
    divergence is shown, more refuse the report). ADVI: the loss must have settled (relative
    change of the mean over the last two tenths of the iterations below ``advi_tolerance``)."""

    rhat_max: float = 1.01
    ess_per_chain: float = 100.0
    max_divergence_share: float = 0.001
    advi_tolerance: float = 0.01


@dataclass(frozen=True)
class Diagnostics:
    """The checks of one fitted model."""

    model: str
    method: str
    chains: int
    draws: int
    rhat_max: float | None
    ess_bulk_min: float | None
    ess_tail_min: float | None
    divergences: int
    seconds: float
    compile_seconds: float
    worst: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _worst(ds: Any, *, largest: bool) -> tuple[float, str]:
    """The extreme value over every variable and index, and where it is."""
    best_v = -math.inf if largest else math.inf
    where = ""
    for name, da in ds.data_vars.items():
        arr = np.asarray(da.values, dtype=float)
        if arr.size == 0 or np.all(np.isnan(arr)):
            continue
        flat = np.where(np.isnan(arr), -np.inf if largest else np.inf, arr)
        i = int(np.argmax(flat) if largest else np.argmin(flat))
        v = float(flat.reshape(-1)[i])
        if (largest and v > best_v) or (not largest and v < best_v):
            best_v = v
            idx = np.unravel_index(i, arr.shape) if arr.shape else ()
            labels = [str(da.coords[d].values[j]) for d, j in zip(da.dims, idx, strict=True)]
            where = f"{name}[{', '.join(labels)}]" if labels else str(name)
    return best_v, where


def diagnose(fit: Fit, *, model: str, thresholds: Thresholds | None = None) -> Diagnostics:
    """Check one fit; ``problems`` lists every failed check in words."""
    import arviz as _az

    az: Any = _az

    th = thresholds or Thresholds()
    post = fit.idata.posterior
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    names = [n for n in fit.free_vars if n in post.data_vars]
    problems: list[str] = []
    worst: dict[str, str] = {}
    rhat_v = ess_b = ess_t = None
    divergences = 0
    if fit.method == "advi":
        loss = fit.loss if fit.loss is not None else np.array([])
        n = len(loss)
        if n >= 20:
            a = float(np.mean(loss[int(n * 0.6) : int(n * 0.8)]))
            b = float(np.mean(loss[int(n * 0.8) :]))
            change = abs(b - a) / max(1.0, abs(b))
            if not math.isfinite(change) or change > th.advi_tolerance:
                problems.append(
                    f"ADVI did not settle: loss changed {change:.1%} over the last fifth "
                    f"(limit {th.advi_tolerance:.0%}); raise the iterations"
                )
        else:
            problems.append("ADVI ran too few iterations to judge convergence")
    else:
        sub = post[names]
        if chains < 2:
            problems.append("r-hat needs at least 2 chains")
        else:
            rhat_v, worst["rhat"] = _worst(az.rhat(sub), largest=True)
            if not rhat_v <= th.rhat_max:
                problems.append(f"r-hat {rhat_v:.3f} > {th.rhat_max} at {worst['rhat']}")
        need = th.ess_per_chain * chains
        ess_b, worst["ess_bulk"] = _worst(az.ess(sub, method="bulk"), largest=False)
        ess_t, worst["ess_tail"] = _worst(az.ess(sub, method="tail"), largest=False)
        for label, v, key in (("bulk", ess_b, "ess_bulk"), ("tail", ess_t, "ess_tail")):
            if not v >= need:
                problems.append(
                    f"{label} ESS {v:.0f} < {need:.0f} ({th.ess_per_chain:.0f} per chain) "
                    f"at {worst[key]}: draw more"
                )
        stats = getattr(fit.idata, "sample_stats", None)
        if stats is not None and "diverging" in stats:
            divergences = int(np.asarray(stats["diverging"].values).sum())
        allowed = int(th.max_divergence_share * chains * draws)
        if divergences > allowed:
            problems.append(
                f"{divergences} divergent transition(s) (allowed {allowed}): "
                "the posterior has regions the sampler cannot explore; the estimates may be biased"
            )
    return Diagnostics(
        model=model,
        method=fit.method,
        chains=chains,
        draws=draws,
        rhat_max=rhat_v,
        ess_bulk_min=ess_b,
        ess_tail_min=ess_t,
        divergences=divergences,
        seconds=fit.seconds,
        compile_seconds=fit.compile_seconds,
        worst=worst,
        problems=problems,
        thresholds=asdict(th),
    )


def require(diagnostics: list[Diagnostics]) -> None:
    """Raise :class:`DiagnosticsError` naming every failed check, or return quietly."""
    bad = [f"{d.model} model: " + "; ".join(d.problems) for d in diagnostics if d.problems]
    if bad:
        raise DiagnosticsError("refusing to report: " + " | ".join(bad))
