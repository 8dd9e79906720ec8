"""Downtime of a rolling restart: the twin's simulated rolling update against a measured one.

``python experiments/drift_rollout.py [--out F.json] [--rollouts 3]``

For each setting (replicas, maxSurge, maxUnavailable) the testbed (``testbed.rolling``)
replaces every replica of a service several times under open-loop load and counts the failed
requests; the downtime is failed requests / request rate (error-seconds) per rollout. The
twin's estimate (:func:`twin.drift.rollout.simulate`) uses only what is known before the
rollout: the settings, the load balancer's propagation delay, the pods' readiness delay
measured on the initial replicas, and the mean response time. Bounded: about 20 s of load
per setting; every process started is stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from twin.drift.rollout import RolloutParams, simulate

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = (
    (3, "0", "1"),
    (3, "1", "0"),
    (4, "25%", "25%"),
    (4, "0", "2"),
)


def measure(
    replicas: int, surge: str, unavailable: str, rollouts: int, seed: int
) -> dict[str, object]:
    cmd = [
        sys.executable,
        "-m",
        "testbed.rolling",
        "--replicas",
        str(replicas),
        "--max-surge",
        surge,
        "--max-unavailable",
        unavailable,
        "--rollouts",
        str(rollouts),
        "--seed",
        str(seed),
        "--timeout",
        "120",
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=180, cwd=ROOT)
    data: dict[str, object] = json.loads(out.stdout)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rollouts", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    rows = []
    print(f"{'replicas':>8} {'surge':>6} {'unavail':>7} {'measured':>9} {'twin':>7} {'error':>7}")
    for replicas, surge, unavailable in SETTINGS:
        m = measure(replicas, surge, unavailable, a.rollouts, a.seed)
        settings = m["settings"]
        assert isinstance(settings, dict)
        ready = m["ready_seconds_before_rollouts"]
        assert isinstance(ready, float)

        def parse(v: str) -> int | str:
            return v if v.endswith("%") else int(v)

        est = simulate(
            RolloutParams(
                replicas,
                parse(surge),
                parse(unavailable),
                ready_seconds=ready,
                propagation_seconds=float(settings["propagation_seconds"]),
                drain_seconds=float(settings["drain_seconds"]),
                response_seconds=float(settings["work_mean"]),
            )
        )
        measured = float(m["failed"]) / float(settings["rate"]) / a.rollouts  # type: ignore[arg-type]
        err = (est.downtime_seconds - measured) / measured if measured else float("nan")
        rows.append(
            {
                "replicas": replicas,
                "max_surge": surge,
                "max_unavailable": unavailable,
                "requests": m["requests"],
                "failed": m["failed"],
                "failed_before_rollouts": m["failed_before_rollouts"],
                "ready_seconds": ready,
                "measured_error_seconds": measured,
                "twin_error_seconds": est.downtime_seconds,
                "relative_error": err,
            }
        )
        print(
            f"{replicas:>8} {surge:>6} {unavailable:>7} {measured:>9.3f} "
            f"{est.downtime_seconds:>7.3f} {err:>+7.1%}"
        )
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
