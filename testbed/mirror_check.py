"""The mirror's measurements: ``python -m testbed.mirror_check --requests 10000 --out DIR``.

Three bounded phases, each with a real Envoy from ``twin mirror``'s library:

1. **share**: Envoy in front of a trivial HTTP server (production) and another that answers
   500s with garbage (the shadow); ``--requests`` open-loop requests; the mirrored share is
   counted in the shadow's own access log, and every client answer must be production's.
2. **untouched**: the testbed as production and its independent shadow copy; the shadow
   path carries synthetic errors and delays, and the shadow's gateway fails half its
   requests (an injected fault); interleaved runs with mirroring on and off
   (runtime ``mirror.share`` set between runs): production p50/p99 on vs off against the
   off-vs-off noise, production's error rate on vs off, and the transformed requests in
   production's gateway access log (must be 0).
3. **budget**: the testbed as production behind a mirror with a chaos budget; a real fault
   (the gateway's injected error rate) pushes production into a burn; the time until the
   budget stops the transformations, and until it resumes them after the fault is cleared.

Writes ``DIR/mirror-check.json`` and prints a summary; the load average is recorded with
each phase (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testbed import load
from testbed.config import SHADOW_PORT_OFFSET, TestbedConfig
from testbed.run import Testbed, free_base_port
from twin.mirror.document import Budget, TransformSet
from twin.mirror.envoy import MARK_HEADER, MIRROR_KEY, Endpoint, MirrorPlan, fraction
from twin.mirror.run import Mirror, free_port


class Recorder:
    """A trivial stdlib HTTP server on loopback that answers ``status`` with ``body`` (500
    while ``failing``), and appends one JSON line per request to ``log``: method, path, the
    transformation mark and payload headers, and the body it received."""

    def __init__(self, log: Path, status: int = 200, body: bytes = b'{"from":"production"}'):
        self.log_path = log
        self.status, self.body = status, body
        self.failing = False
        self.lines: list[dict[str, Any]] = []
        self.mu = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # one write per answer (flushed after each request)
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(n) if n else b""
                row = {
                    "method": self.command,
                    "path": self.path,
                    "transformed": self.headers.get(MARK_HEADER),
                    "payload": self.headers.get("x-shadow-payload"),
                    "body": data.decode("utf-8", "replace"),
                    "time": time.time(),
                }
                with rec.mu:
                    rec.lines.append(row)
                status = 500 if rec.failing else rec.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(rec.body)))
                self.end_headers()
                self.wfile.write(rec.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        with open(self.log_path, "w", encoding="utf-8") as f:
            for row in self.lines:
                f.write(json.dumps(row) + "\n")

    def count(self) -> int:
        with self.mu:
            return len(self.lines)


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared)."""
    return [round(x, 2) for x in os.getloadavg()]


def run_load(url: str, rate: float, duration: float, seed: int, out: Path) -> list[list[float]]:
    """testbed.load (open-loop Poisson) in its own process; its records."""
    recs: list[list[float]] = load.run_load(url, rate, duration, seed, out)["records"]
    return recs


def quantile(xs: list[float], q: float) -> float:
    """The q-quantile of ``xs`` (linear interpolation); 0 for no data."""
    if not xs:
        return 0.0
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _plan(prod: Endpoint, shadow: Endpoint, share: float, ts: TransformSet | None) -> MirrorPlan:
    return MirrorPlan(prod, shadow, share, free_port(), free_port(), free_port(), transforms=ts)


# -- phase 1: the mirrored share -------------------------------------------------------------


def phase_share(out: Path, requests: int, share: float, rate: float) -> dict[str, Any]:
    """Mirrored share counted at the shadow over ``requests`` requests."""
    d = out / "share"
    d.mkdir(parents=True, exist_ok=True)
    before = loadavg()
    with (
        Recorder(d / "production-access.jsonl") as prod,
        Recorder(d / "shadow-access.jsonl", 500, b"<garbage \x00 from the shadow>") as shadow,
    ):
        plan = _plan(
            Endpoint("127.0.0.1", prod.port), Endpoint("127.0.0.1", shadow.port), share, None
        )
        with Mirror(plan, d) as m:
            recs = run_load(
                f"http://127.0.0.1:{plan.listen}/api", rate, requests / rate, 1, d / "load.json"
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # mirrored copies still in flight
                c = m.admin.counters("cluster.mirror.upstream_rq_")
                if c.get("cluster.mirror.upstream_rq_total", 0) == shadow.count():
                    break
                time.sleep(0.2)
        sent, mirrored = prod.count(), shadow.count()
    statuses: dict[str, int] = {}
    for r in recs:
        statuses[str(int(r[2]))] = statuses.get(str(int(r[2])), 0) + 1
    observed = mirrored / sent if sent else 0.0
    return {
        "configured_share": share,
        "requests_sent": len(recs),
        "production_requests": sent,
        "shadow_requests": mirrored,
        "observed_share": round(observed, 5),
        "difference_pp": round(100 * abs(observed - share), 3),
        "client_statuses": statuses,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }


# -- phase 2: production untouched ----------------------------------------------------------

SHADOW_FAULTS = TransformSet.model_validate(
    {
        "name": "untouched-check",
        "seed": 3,
        "transformations": [
            {"id": "errors", "kind": "error", "share": 0.3, "status": 503},
            {"id": "slow", "kind": "delay", "share": 0.3, "intensity": 0.2},
        ],
    }
)


def _stats(recs: list[list[float]]) -> dict[str, float]:
    lat = [r[1] for r in recs if r[2] == 200]
    errors = sum(1 for r in recs if r[2] != 200)
    return {
        "n": len(recs),
        "p50_ms": round(1000 * quantile(lat, 0.5), 3),
        "p99_ms": round(1000 * quantile(lat, 0.99), 3),
        "error_rate": round(errors / len(recs), 5) if recs else 0.0,
    }


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b if b else 0.0


def phase_untouched(
    out: Path, pairs: int, rate: float, duration: float, share: float
) -> dict[str, Any]:
    """Interleaved on/off runs through one Envoy in front of the testbed."""
    d = out / "untouched"
    d.mkdir(parents=True, exist_ok=True)
    base = free_base_port(span=22 + SHADOW_PORT_OFFSET)
    prod_tb = Testbed(d / "production", TestbedConfig(base_port=base), prometheus=False)
    shadow_tb = Testbed(
        d / "shadow",
        TestbedConfig(base_port=base + SHADOW_PORT_OFFSET, role="shadow"),
        prometheus=False,
    )
    runs: list[dict[str, Any]] = []
    with prod_tb, shadow_tb:
        plan = _plan(
            Endpoint("127.0.0.1", prod_tb.config.port("gateway")),
            Endpoint("127.0.0.1", shadow_tb.config.port("gateway")),
            share,
            SHADOW_FAULTS,
        )
        # the shadow's own service fails too: half its answers are errors, after 50 ms
        shadow_tb.inject("gateway", latency=0.05, error=0.5)
        with Mirror(plan, d) as m:
            url = f"http://127.0.0.1:{plan.listen}/api"
            run_load(url, rate, 3.0, 99, d / "warmup.json")
            for i in range(2 * pairs):
                mirroring = i % 2 == (i // 2) % 2  # on, off, off, on, on, off: balanced
                m.admin.modify({MIRROR_KEY: fraction(share if mirroring else 0.0)})
                mirrored0 = m.admin.counters("cluster.mirror.upstream_rq_total")
                la = loadavg()
                recs = run_load(url, rate, duration, 10 + i, d / f"run-{i}.json")
                mirrored1 = m.admin.counters("cluster.mirror.upstream_rq_total")
                key = "cluster.mirror.upstream_rq_total"
                runs.append(
                    {
                        "run": i,
                        "mirroring": mirroring,
                        "mirrored": mirrored1.get(key, 0) - mirrored0.get(key, 0),
                        "loadavg": la,
                        **_stats(recs),
                        "records": recs,
                    }
                )
            faults = m.admin.counters("http.shadow_transform.fault.")
    time.sleep(0.2)
    prod_log = d / "production" / "logs" / "gateway.access.jsonl"
    shadow_log = d / "shadow" / "logs" / "gateway.access.jsonl"
    prod_rows = [json.loads(x) for x in prod_log.read_text().splitlines() if x]
    prod_rows = [r for r in prod_rows if r["path"] == "/api"]
    shadow_rows = [json.loads(x) for x in shadow_log.read_text().splitlines() if x]
    shadow_api = [r for r in shadow_rows if r["path"] == "/api"]
    on_recs = [r for run in runs if run["mirroring"] for r in run["records"]]
    off_recs = [r for run in runs if not run["mirroring"] for r in run["records"]]
    on, off = _stats(on_recs), _stats(off_recs)
    off_runs = [run for run in runs if not run["mirroring"]]
    on_runs = [run for run in runs if run["mirroring"]]
    # run-to-run noise, measured the same way: pooled halves of the off runs, and of the on
    half = len(off_runs) // 2
    noise = {}
    for q in ("p50_ms", "p99_ms"):
        a = _stats([r for run in off_runs[:half] for r in run["records"]])[q]
        b = _stats([r for run in off_runs[half:] for r in run["records"]])[q]
        c = _stats([r for run in on_runs[:half] for r in run["records"]])[q]
        e = _stats([r for run in on_runs[half:] for r in run["records"]])[q]
        noise[q] = round(max(_rel(a, b), _rel(c, e)), 4)
    diff = {q: round(_rel(on[q], off[q]), 4) for q in ("p50_ms", "p99_ms")}
    for run in runs:
        del run["records"]
    return {
        "rate": rate,
        "run_seconds": duration,
        "runs": runs,
        "on": on,
        "off": off,
        "on_vs_off": diff,
        "off_vs_off_noise": noise,
        "within": {q: diff[q] <= max(0.05, noise[q]) for q in diff},
        "production_requests_logged": len(prod_rows),
        "production_transformed": sum(1 for r in prod_rows if r.get(MARK_HEADER)),
        "shadow_requests_logged": len(shadow_api),
        "shadow_transformed": sum(1 for r in shadow_api if r.get(MARK_HEADER)),
        "shadow_error_rate": round(
            sum(1 for r in shadow_api if r["status"] >= 500) / max(1, len(shadow_api)), 4
        ),
        "shadow_faults": faults,
    }


# -- phase 3: the chaos budget ----------------------------------------------------------------

BUDGET = Budget(
    slo_target=0.99,
    interval_seconds=2.0,
    raise_below=1.0,
    shrink_above=2.0,
    stop_at=5.0,
    step=0.5,
    start_level=0.5,
    min_requests=5,
)

BUDGET_TRANSFORMS = TransformSet.model_validate(
    {
        "name": "budget-check",
        "transformations": [{"id": "errors", "kind": "error", "share": 0.5, "status": 503}],
    }
)


def phase_budget(out: Path, rate: float, error: float) -> dict[str, Any]:
    """A real fault at production's gateway; when the budget stops and resumes."""
    d = out / "budget"
    d.mkdir(parents=True, exist_ok=True)
    base = free_base_port()
    prod_tb = Testbed(d / "production", TestbedConfig(base_port=base), prometheus=False)
    with prod_tb, Recorder(d / "shadow-access.jsonl") as shadow:
        plan = _plan(
            Endpoint("127.0.0.1", prod_tb.config.port("gateway")),
            Endpoint("127.0.0.1", shadow.port),
            1.0,
            BUDGET_TRANSFORMS,
        )
        with Mirror(plan, d, budget=BUDGET, metrics_port=0) as m:
            url = f"http://127.0.0.1:{plan.listen}/api"
            load = threading.Thread(
                target=run_load, args=(url, rate, 36.0, 5, d / "load.json"), daemon=True
            )
            t0 = time.time()
            load.start()
            time.sleep(10.0)
            t_fault = time.time()
            prod_tb.inject("gateway", error=error)
            time.sleep(12.0)
            t_clear = time.time()
            prod_tb.inject("gateway")
            load.join()
            text = m.metrics()
    rows = [json.loads(x) for x in (d / "levels.jsonl").read_text().splitlines() if x]
    stop = next((r for r in rows if r["time"] >= t_fault and r.get("to") == 0.0), None)
    resume = next((r for r in rows if r["time"] >= t_clear and (r.get("to") or 0) > 0), None)
    return {
        "interval_seconds": BUDGET.interval_seconds,
        "fault": {"service": "gateway", "error": error},
        "t_start": t0,
        "t_fault": t_fault,
        "t_clear": t_clear,
        "stop_after_fault_s": round(stop["time"] - t_fault, 3) if stop else None,
        "resume_after_clear_s": round(resume["time"] - t_clear, 3) if resume else None,
        "stop": stop,
        "resume": resume,
        "levels": rows,
        "metrics": text,
        "loadavg": loadavg(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--share", type=float, default=0.3)
    ap.add_argument("--share-rate", type=float, default=400.0)
    ap.add_argument("--pairs", type=int, default=3, help="on/off pairs (interleaved)")
    ap.add_argument("--rate", type=float, default=8.0, help="testbed load, requests/s")
    ap.add_argument("--run-seconds", type=float, default=20.0)
    ap.add_argument("--phases", default="share,untouched,budget")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"started": time.time(), "cpus": os.cpu_count()}
    phases = a.phases.split(",")
    if "share" in phases:
        result["share"] = phase_share(a.out, a.requests, a.share, a.share_rate)
        print("share:", json.dumps(result["share"]), flush=True)
    if "untouched" in phases:
        u = phase_untouched(a.out, a.pairs, a.rate, a.run_seconds, 0.5)
        result["untouched"] = u
        show = {k: u[k] for k in u if k not in ("runs",)}
        print("untouched:", json.dumps(show), flush=True)
    if "budget" in phases:
        b = phase_budget(a.out, a.rate, 0.5)
        result["budget"] = b
        show = {k: b[k] for k in b if k not in ("levels", "metrics")}
        print("budget:", json.dumps(show), flush=True)
    (a.out / "mirror-check.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
