"""Which forecaster: the online Holt-Winters filter against statsmodels' ETS refitted on a window.

Both see the same series one point at a time and keep the same bounded window (2,000 points).
Every ``--every`` points (an origin) each one forecasts 1, 6 and 24 steps ahead:

- **online**: :class:`twin.predict.HoltWinters` (robust additive Holt-Winters, damped trend,
  season found from the data, smoothing constants re-chosen by grid search on the window
  every season or 200 points), updated point by point in between.
- **statsmodels ETS**: ``statsmodels.tsa.holtwinters.ExponentialSmoothing`` (additive damped
  trend, additive season of the same length the online model found), fitted by least squares
  on the window at every origin, since it has no online filter.
- **seasonal naive**: the value one season earlier (the last value without a season).

Errors are MASE (mean absolute error over the mean absolute one-step change of the series:
below 1 beats the naive last-value forecast on average) per horizon, averaged over series.
CPU per point is the process time spent in each model over the points seen (the ETS fit runs
once per origin, so its cost per point is the fit's cost over ``--every``).

    nice -n 10 python benchmarks/forecast.py                  # NAB real series
    nice -n 10 python benchmarks/forecast.py --quick          # four series
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from twin.predict import HoltWinters

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nab"
HORIZONS = (1, 6, 24)
HISTORY = 2000


def series_files(data: Path) -> list[Path]:
    return sorted(p for p in data.glob("*/*.csv"))


def evaluate(values: np.ndarray, every: int) -> dict[str, object]:
    """Absolute errors per model and horizon at each origin, and CPU seconds per model."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing  # type: ignore[import-untyped]

    hw = HoltWinters(history=HISTORY)
    errors: dict[str, dict[int, list[float]]] = {
        m: {h: [] for h in HORIZONS} for m in ("online", "ets", "naive")
    }
    cpu = {"online": 0.0, "ets": 0.0}
    n = len(values)
    start = n // 4  # every model has a full season or more behind it by then
    for i, v in enumerate(values.tolist()):
        c = time.process_time()
        hw.update(float(i), v)
        cpu["online"] += time.process_time() - c
        if i < start or (i - start) % every or i + max(HORIZONS) >= n:
            continue
        window = values[max(0, i + 1 - HISTORY) : i + 1]
        m = hw.period if len(window) >= 2 * hw.period else 0
        c = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(
                window,
                trend="add",
                damped_trend=True,
                seasonal="add" if m else None,
                seasonal_periods=m or None,
                initialization_method="estimated",
            ).fit()
            ets = model.forecast(max(HORIZONS))
        cpu["ets"] += time.process_time() - c
        for h in HORIZONS:
            truth = values[i + h]
            errors["online"][h].append(abs(truth - hw.predict(h)))
            errors["ets"][h].append(abs(truth - float(ets[h - 1])))
            lag = m if m else 1
            past = values[i + h - lag * ((h - 1) // lag + 1)]
            errors["naive"][h].append(abs(truth - past))
    scale = float(np.mean(np.abs(np.diff(values)))) or 1.0
    mase = {m: {h: float(np.mean(e[h])) / scale for h in HORIZONS} for m, e in errors.items()}
    return {"mase": mase, "cpu": cpu, "points": n, "period": hw.period}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--every", type=int, default=200, help="points between origins (ETS refits)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    files = series_files(args.data)
    if args.quick:
        files = files[:4]
    per: dict[str, list[float]] = {}
    cpu = {"online": 0.0, "ets": 0.0}
    points = 0
    for path in files:
        values = pd.read_csv(path)["value"].to_numpy(dtype=float)
        r = evaluate(values, args.every)
        points += int(r["points"])  # type: ignore[call-overload]
        for model, secs in r["cpu"].items():  # type: ignore[attr-defined]
            cpu[model] += secs
        line = []
        for model, by_h in r["mase"].items():  # type: ignore[attr-defined]
            for h, v in by_h.items():
                per.setdefault(f"{model}@{h}", []).append(v)
                line.append(f"{model}@{h} {v:.3f}")
        print(f"{path.parent.name}/{path.name} (period {r['period']}): " + ", ".join(line))
    print(f"\n{len(files)} series, {points} points, an origin every {args.every} points")
    print(f"{'MASE (mean over series)':<26}" + "".join(f"{'h=' + str(h):>10}" for h in HORIZONS))
    for model in ("online", "ets", "naive"):
        row = "".join(f"{np.mean(per[f'{model}@{h}']):10.3f}" for h in HORIZONS)
        print(f"{model:<26}{row}")
    print(f"{'MASE (median over series)':<26}")
    for model in ("online", "ets", "naive"):
        row = "".join(f"{np.median(per[f'{model}@{h}']):10.3f}" for h in HORIZONS)
        print(f"{model:<26}{row}")
    print(
        f"CPU per point: online {cpu['online'] / points * 1e6:.0f} us,"
        f" statsmodels ETS refitted every {args.every} points"
        f" {cpu['ets'] / points * 1e6:.0f} us"
        f" (ratio {cpu['ets'] / max(cpu['online'], 1e-9):.1f}x)"
    )


if __name__ == "__main__":
    main()
