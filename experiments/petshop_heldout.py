"""PetShop (AWS PetAdoptions): calibrate at one traffic level, replay the whole dataset.

    python experiments/petshop_heldout.py --data DATA [--out DIR] [--calibrate low_traffic]
        [--fit first|none]

1. A twin from one level's per-node aggregates (:func:`twin.calibrate.petshop.calibrate_level`:
   services, calls shared by request counts, asynchronous calls, self times and intrinsic
   failures; see its docstring), written as ``DIR/topology.yaml`` and ``DIR/scenario.yaml``.
2. ``twin replay DIR/topology.yaml --data DATA/petshop --format petshop --scenario
   DIR/scenario.yaml --fit first --out DIR/replay``: each level's normal operation is a
   fault-free capture (per node: rate, mean, p50, p99, availability; the level calibrated
   from is in-sample, the other is held out), and every labelled issue is replayed at the
   judged node, unmapped kinds listed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding petshop/")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "petshop")
    ap.add_argument("--calibrate", default="low_traffic", help="the level to calibrate from")
    ap.add_argument("--fit", choices=["first", "none"], default="first")
    a = ap.parse_args()
    from twin.calibrate.petshop import calibrate_level
    from twin.io import dump_yaml, output_dir, parse_model
    from twin.replay import ReplayConfig, replay
    from twin.topology import Topology

    out = output_dir(a.out)
    doc, faults, _ = calibrate_level(a.data / "petshop" / a.calibrate)
    topo = parse_model(Topology, doc)
    (out / "topology.yaml").write_text(dump_yaml(doc))
    (out / "scenario.yaml").write_text(dump_yaml({"faults": faults}))
    res = replay(
        topo,
        a.data / "petshop",
        "petshop",
        out / "replay",
        ReplayConfig(fit=a.fit),
        base_faults=faults,
    )
    print((out / "replay" / "accuracy.md").read_text())
    return 0 if res["n_held_out"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
