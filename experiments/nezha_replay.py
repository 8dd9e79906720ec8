"""Online Boutique (Nezha): calibrate from the traced minute, replay the day's faults.

    python experiments/nezha_replay.py --data DATA [--out DIR]

The same as the two commands

    twin calibrate --traces DATA/traces/nezha-ob-2022-08-22-0353-spans.csv --out DIR/calibration
    twin replay DIR/calibration/topology.yaml --data DATA/nezha-ob --format nezha --fit first \
        --out DIR/replay

``twin calibrate``'s defaults, then :func:`twin.replay.replay` (fault types -> twin faults:
:mod:`twin.replay.nezha`; scoring: :mod:`twin.replay.run`). The trace file is named here
because it is this experiment's input; the library finds every Nezha file by pattern.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = "traces/nezha-ob-2022-08-22-0353-spans.csv"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding nezha-ob/, traces/")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "nezha-replay")
    ap.add_argument("--fit", choices=["first", "none"], default="first")
    a = ap.parse_args()
    from twin.calibrate import CalibrationConfig, run_calibration
    from twin.io import load_model
    from twin.replay import ReplayConfig, replay
    from twin.topology import Topology

    out: Path = a.out.resolve()
    run_calibration(CalibrationConfig(traces=(a.data / TRACES,), out=out / "calibration"))
    topo = load_model(Topology, out / "calibration" / "topology.yaml")
    res = replay(topo, a.data / "nezha-ob", "nezha", out / "replay", ReplayConfig(fit=a.fit))
    print((out / "replay" / "accuracy.md").read_text())
    return 0 if res["n_held_out"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
