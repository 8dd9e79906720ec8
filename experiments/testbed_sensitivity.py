"""How sensitive the testbed twin's high-load prediction is to catalog's service time, and
how far one measurement window's mean may fall from the expectation by chance.

    python experiments/testbed_sensitivity.py out/validate-testbed/calibration \
        [--out sensitivity.json]

Reads the calibrated ``topology.yaml`` that ``validate_testbed.py`` wrote; prints, for 3x and
3.5x the calibration load, the twin's mean latency with catalog's service time scaled by
0.95-1.05, and the twin's 5th-95th percentile of the mean of one 60 s and one 180 s window
at 3.5x (40 seeds). Simulation only: about 20 s on one core.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _sibling(name: str) -> Any:
    """Another script of this folder, loaded by path: experiments are scripts, not a package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("calibration", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    v = _sibling("validate_testbed")

    from twin.topology import Topology

    t = Topology.load(a.calibration / "topology.yaml")
    out: dict[str, Any] = {}
    for w in (60.0, 180.0):
        out[f"band_3.5x_{w:.0f}s"] = v.twin_window_band(t, 3.5, [], w, runs=40)

    def scaled(k: float) -> Topology:
        svc = t.services["catalog"]
        ops = {
            n: o.model_copy(update={"service_time": o.service_time.scaled(k)})
            for n, o in svc.operations.items()
        }
        services = {**t.services, "catalog": svc.model_copy(update={"operations": ops})}
        return t.model_copy(update={"services": services})

    for k in (0.95, 0.975, 1.0, 1.025, 1.05):
        for m in (3.0, 3.5):
            out[f"mean_{m}x_catalog_x{k}"] = v.twin_predict(scaled(k), m, [], 60, False)["mean"]
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
