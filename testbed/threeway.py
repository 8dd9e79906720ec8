"""Three-way comparison on the testbed: production, the real shadow and the twin under the
same traffic and the same transformations.

    python -m testbed.threeway --out out/threeway [--rate 6] [--seconds 40]
        [--cal-seconds 120 | --topology FILE] [--transform FILE] [--db URL]

1. Start production and its shadow copy (two independent testbeds, own ports and Redis).
2. The twin: calibrate it from production (open-loop load at 4 requests/s for
   ``--cal-seconds``, its traces and Prometheus metrics, as experiments/validate_testbed.py
   does), or read ``--topology``.
3. For each transformation (``--transform``: a mirror transformation document, each of its
   transformations run alone; default: the eight below), start a real Envoy that routes
   every request to production and mirrors all of them (share 1) through the
   transformation to the shadow, and run open-loop Poisson load at ``--rate`` for
   ``--seconds``. Production's arm is the load generator's own record of every request;
   the shadow's is Envoy's access log on the transformation path (status and duration of
   every mirrored request, the delay, error or throttling included); the twin's is the
   calibrated topology at the same rate with the transformation's twin equivalent
   (:func:`twin.mirror.compare.twin_equivalent`).
4. Writes ``threeway.json`` (with the calibration evidence) and ``threeway.html``; with
   ``--db``, records the evidence in the failure-mode database.

Bounded: every load run lasts ``--seconds``; Envoy and both testbeds are stopped whatever
happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testbed.config import SHADOW_PORT_OFFSET, TestbedConfig
from testbed.run import Testbed, free_base_port

ROOT = Path(__file__).resolve().parents[1]
CAL_RATE = 4.0
ENTRY = "gateway"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
SHADOW_LISTENER = "shadow_transform"

DEFAULT_TRANSFORMS: dict[str, Any] = {
    "name": "threeway",
    "seed": 7,
    "transformations": [
        {"id": "untouched", "kind": "payload_nudge", "share": 0.0, "intensity": 0.05},
        {"id": "delay-50ms", "kind": "delay", "share": 1.0, "intensity": 0.05},
        {"id": "delay-200ms-half", "kind": "delay", "share": 0.5, "intensity": 0.2},
        {"id": "errors-10pct", "kind": "error", "share": 0.1, "status": 503},
        {"id": "errors-30pct", "kind": "error", "share": 0.3, "status": 503},
        {"id": "throttle-4rps", "kind": "rate_limit", "share": 1.0, "intensity": 4},
        {"id": "payload-nudge", "kind": "payload_nudge", "share": 1.0, "intensity": 0.1},
        {"id": "payload-swap", "kind": "payload_swap", "share": 1.0, "intensity": 1},
    ],
}
"""What the driver measures by default: the mirror with nothing changed, two delays, two
error rates, throttling below the offered rate, and two payload alterations."""


def design_topology(config: TestbedConfig, rate: float) -> Any:
    """The testbed as its configuration describes it (service times, workers, calls), for a
    twin without calibration: the quick twin the bounded test uses. The calibrated twin is
    what the measurements use."""
    from twin.topology import Topology

    services: dict[str, Any] = {}
    for s in config.services:
        calls = []
        for stage in s.stages:
            together = len(stage) > 1 or any(c.count > 1 for c in stage)
            for c in stage:
                call: dict[str, Any] = {"to": c.to, "probability": c.probability}
                if c.count > 1:
                    call["count"] = c.count
                if together:
                    call["parallel"] = True
                calls.append(call)
        services[s.name] = {
            "workers": s.workers,
            "operations": {
                "default": {
                    "service_time": {
                        "dist": "lognormal",
                        "mean": s.work_mean + s.cpu,
                        "cv": s.work_cv * s.work_mean / (s.work_mean + s.cpu),
                    },
                    "calls": calls,
                }
            },
        }
    return Topology.from_dict(
        {
            "name": "testbed-design",
            "services": services,
            "workload": [{"entry": ENTRY, "rate": rate}],
        },
        source="testbed configuration",
    )


def calibrate(tb: Testbed, out: Path, seconds: float) -> Any:
    """The twin calibrated from production at 4 requests/s (experiments/validate_testbed.py's
    method: traces, Prometheus, worker-busy time as the demand)."""
    topology, _, _, _ = tb.calibrate(out, CAL_RATE, seconds, demand="cpu", predict_seconds=60.0)
    return topology


def with_access_log(bootstrap: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The mirror's bootstrap with a JSON access log on each listener
    (``FOLDER/<listener>-access.jsonl``): status and duration (microseconds) of every
    request, production's and the ones on their way to the shadow."""
    for listener in bootstrap["static_resources"]["listeners"]:
        path = folder / f"{listener['name']}-access.jsonl"
        path.unlink(missing_ok=True)
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": FILE_LOG,
                    "path": str(path),
                    "log_format": {
                        "json_format": {
                            "status": "%RESPONSE_CODE%",
                            "us": "%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%",
                            "mark": "%REQ(X-SHADOW-TRANSFORMED)%",
                        }
                    },
                },
            }
        ]
    return bootstrap


@contextlib.contextmanager
def envoy(bootstrap: dict[str, Any], folder: Path, admin_port: int) -> Any:
    """Validate and run Envoy on ``bootstrap`` until the block ends (SIGTERM flushes its
    access log)."""
    from twin.io import dump_yaml
    from twin.mirror.admin import EnvoyAdmin
    from twin.mirror.envoy import envoy_binary, validate_file

    cfg = folder / "envoy.yaml"
    cfg.write_text(dump_yaml(bootstrap), encoding="utf-8")
    problems = validate_file(cfg)
    if problems:
        raise RuntimeError(f"envoy --mode validate: {problems[0]}")
    with open(folder / "envoy.log", "ab") as log:
        proc = subprocess.Popen(
            [envoy_binary(), "-c", str(cfg), "--log-level", "warn", "--disable-hot-restart",
             "--concurrency", "1", "--file-flush-interval-msec", "200"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        admin = EnvoyAdmin(admin_port)
        deadline = time.monotonic() + 30
        while not admin.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"envoy did not start (see {folder / 'envoy.log'})")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def load(url: str, rate: float, seconds: float, seed: int, out: Path) -> list[list[float]]:
    """Open-loop Poisson load (testbed.load, its own process): [sent, seconds, status]."""
    subprocess.run(
        [sys.executable, "-m", "testbed.load", url, "--rate", str(rate), "--duration",
         str(seconds), "--seed", str(seed), "--out", str(out)],
        check=True, timeout=seconds + 60, cwd=ROOT,
    )  # fmt: skip
    records: list[list[float]] = json.loads(out.read_text())["records"]
    return records


def shadow_records(path: Path) -> tuple[list[float], list[bool]]:
    """Durations (seconds) and success of the mirrored requests from Envoy's access log."""
    lat: list[float] = []
    ok: list[bool] = []
    if not path.exists():
        return lat, ok
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            row = json.loads(line)
            lat.append(float(row["us"]) / 1e6)
            ok.append(int(row["status"]) == 200)
    return lat, ok


def measure(
    prod: Testbed,
    shadow: Testbed,
    topology: Any,
    transforms: Any,
    out: Path,
    *,
    rate: float,
    seconds: float,
    twin_seconds: float = 600.0,
    log: Any = print,
) -> tuple[dict[str, Any], list[Any]]:
    """Every transformation of ``transforms`` (a TransformSet), one at a time; returns the
    result document and the rows."""
    from twin.mirror.compare import Row, arm, evidence, judge, predict, summarise, twin_equivalent
    from twin.mirror.document import TransformSet
    from twin.mirror.envoy import Endpoint, MirrorPlan, render
    from twin.mirror.run import free_port

    base_rate = sum(w.rate for w in topology.workload)
    rows: list[Row] = []
    runs: list[dict[str, Any]] = []
    for i, t in enumerate(transforms.transformations):
        folder = out / t.id
        folder.mkdir(parents=True, exist_ok=True)
        one = TransformSet(
            name=f"{transforms.name}-{t.id}", seed=transforms.seed, transformations=[t]
        )
        admin = free_port()
        plan = MirrorPlan(
            production=Endpoint("127.0.0.1", prod.config.port(ENTRY)),
            shadow=Endpoint("127.0.0.1", shadow.config.port(ENTRY)),
            share=1.0,
            listen=free_port(),
            admin_port=admin,
            internal_port=free_port(),
            transforms=one,
        )
        access = folder / f"{SHADOW_LISTENER}-access.jsonl"
        load_before = os.getloadavg()[0]
        with envoy(with_access_log(render(plan), folder), folder, admin):
            records = load(f"http://127.0.0.1:{plan.listen}/api", rate, seconds, 100 + i,
                           folder / "load.json")  # fmt: skip
            time.sleep(max(1.0, getattr(t, "intensity", 0.0) if t.kind == "delay" else 0.0) + 1.0)
        lat, ok = shadow_records(access)
        production = arm([r[1] for r in records], [r[2] == 200 for r in records])
        shadow_arm = arm(lat, ok)
        eq = twin_equivalent(t, ENTRY)
        twin_arm = predict(topology, eq, multiplier=rate / base_rate, seconds=twin_seconds)
        row = Row(t.id, t.kind, eq.kind, eq.note, production, shadow_arm, twin_arm,
                  judge(production, shadow_arm, twin_arm))  # fmt: skip
        rows.append(row)
        runs.append({"transformation": t.id, "loadavg_1m_before": load_before,
                     "mirrored": shadow_arm.requests, "production_requests": production.requests,
                     "loadavg_1m_after": os.getloadavg()[0], "twin_faults": eq.faults,
                     "twin_policy": eq.policy})  # fmt: skip
        log(
            f"{t.id}: production {production.requests} req, shadow {shadow_arm.requests} "
            f"mirrored, accuracy "
            + ", ".join(
                f"{v.metric} {'miss' if v.accuracy is None else f'{v.accuracy:.1%}'}"
                for v in row.verdicts
            )
        )
    observed = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {
        "observed_at": observed,
        "conditions": {
            "rate (requests/s, all mirrored)": rate,
            "seconds per transformation": seconds,
            "twin": f"{topology.name}, {twin_seconds:g} simulated s per transformation",
            "machine": f"{os.cpu_count()} cores, shared; load average per row in 'runs'",
        },
        "rows": [r.to_json() for r in rows],
        "runs": runs,
        "summary": summarise(rows),
        "evidence": evidence(rows, topology=topology.name, observed_at=observed, entry=ENTRY),
    }
    return result, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "threeway")
    ap.add_argument("--rate", type=float, default=6.0, help="requests/s to production")
    ap.add_argument("--seconds", type=float, default=40.0, help="load per transformation")
    ap.add_argument("--cal-seconds", type=float, default=120.0)
    ap.add_argument("--topology", type=Path, help="a calibrated twin (skips calibration)")
    ap.add_argument("--design", action="store_true", help="the configuration's twin, uncalibrated")
    ap.add_argument("--transform", type=Path, help="mirror transformation document")
    ap.add_argument("--db", help="record the evidence in this database")
    ap.add_argument("--twin-seconds", type=float, default=600.0)
    a = ap.parse_args(argv)
    from twin.io import parse_model
    from twin.mirror.compare import Tolerance, write
    from twin.mirror.document import TransformSet
    from twin.topology import Topology

    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if a.transform:
        transforms = TransformSet.load_file(a.transform)
    else:  # each is run alone, so each is checked as a set of its own
        d = DEFAULT_TRANSFORMS
        transforms = TransformSet.model_construct(
            name=d["name"],
            seed=d["seed"],
            transformations=[
                parse_model(TransformSet, {**d, "transformations": [t]}).transformations[0]
                for t in d["transformations"]
            ],
        )
    need_prom = not (a.topology or a.design)
    base = free_base_port(span=22 + SHADOW_PORT_OFFSET)  # one block: the copies never overlap
    prod = Testbed(out / "production", TestbedConfig(base_port=base), prometheus=need_prom)
    shadow = Testbed(
        out / "shadow",
        TestbedConfig(base_port=base + SHADOW_PORT_OFFSET, role="shadow"),
        prometheus=False,
    )
    with prod, shadow:
        if a.topology:
            topology = Topology.load(a.topology)
        elif a.design:
            topology = design_topology(prod.config, CAL_RATE)
        else:
            topology = calibrate(prod, out, a.cal_seconds)
        shadow.load(5, 3, seed=98)  # warm the shadow as production was
        result, rows = measure(prod, shadow, topology, transforms, out, rate=a.rate,
                               seconds=a.seconds, twin_seconds=a.twin_seconds)  # fmt: skip
    path = write(out, result, rows, Tolerance())
    if a.db:
        from twin.store import Store
        from twin.store.documents import add_calibration_evidence

        with Store(a.db) as store:
            add_calibration_evidence(store, result["evidence"])
    for m, s in result["summary"].items():
        avg = "–" if s["accuracy_mean"] is None else f"{s['accuracy_mean']:.1%}"
        print(f"{m}: mean accuracy {avg}, {s['misses']} miss(es), {s['disagreements']} of "
              f"{s['compared']} beyond tolerance")  # fmt: skip
    print(f"wrote {path} and {out / 'threeway.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
