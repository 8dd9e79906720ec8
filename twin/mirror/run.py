"""Running the mirror: write and validate the bootstrap, start Envoy, follow the chaos
budget, export its metrics, and stop everything on SIGTERM or SIGINT.

Files in the output folder: ``envoy.yaml`` (the bootstrap, validated by ``envoy --mode
validate`` before Envoy starts), ``mirror.json`` (ports and pid, for tools that drive the
running mirror), ``envoy.log``, and ``levels.jsonl`` (one JSON line per change of budget
level, with its reason).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from twin.errors import InputError
from twin.io import dump_yaml
from twin.mirror.admin import EnvoyAdmin
from twin.mirror.budget import Controller, Decision
from twin.mirror.document import Budget
from twin.mirror.envoy import MirrorPlan, envoy_binary, render, runtime_values, validate_file

PRODUCTION_PREFIX = "http.production.downstream_rq_"
"""Envoy counters of what production's clients got (``completed``, ``5xx``, ...)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(plan: MirrorPlan, out: Path, level: float = 1.0) -> Path:
    """Write ``out/envoy.yaml`` for ``plan`` and check it with ``envoy --mode validate``;
    Envoy's refusal is bad input (one line), and no config is left behind."""
    path = out / "envoy.yaml"
    tmp = out / "envoy.tmp.yaml"  # Envoy reads the format from the extension
    tmp.write_text(dump_yaml(render(plan, level)), encoding="utf-8")
    try:
        problems = validate_file(tmp)
    except FileNotFoundError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(str(exc)) from None
    if problems:
        tmp.unlink(missing_ok=True)
        raise InputError(f"envoy --mode validate refused the config: {problems[0]}")
    tmp.replace(path)
    return path


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so Envoy never outlives the mirror."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Mirror:
    """One running mirror: Envoy, and the budget controller and metrics when asked."""

    def __init__(
        self,
        plan: MirrorPlan,
        out: Path,
        *,
        budget: Budget | None = None,
        metrics_port: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.plan = plan
        self.out = out
        self.budget = budget
        self.controller = Controller(budget) if budget is not None else None
        self.level = self.controller.level if self.controller is not None else 1.0
        self.metrics_port = metrics_port
        self.concurrency = concurrency
        self.admin = EnvoyAdmin(plan.admin_port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()
        self.evaluations = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Mirror:
        """Validate and write the config, start Envoy and wait until its listeners are up."""
        config = write_config(self.plan, self.out, self.level)
        cmd = [envoy_binary(), "-c", str(config), "--log-level", "warn"]
        cmd += ["--disable-hot-restart"]  # no shared memory: mirrors run side by side
        if self.concurrency:
            cmd += ["--concurrency", str(self.concurrency)]
        with open(self.out / "envoy.log", "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
            )
        deadline = time.monotonic() + timeout
        while not self.admin.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.out / "envoy.log").read_text(errors="replace").strip()
                last = tail.splitlines()[-1] if tail else "no output"
                raise InputError(f"envoy did not start: {last[:300]}")
            time.sleep(0.05)
        if self.metrics_port is not None:
            self._serve_metrics()
        if self.controller is not None:
            self._log({"event": "start", "level": self.level, "reason": "budget start_level"})
            t = threading.Thread(target=self._control_loop, name="chaos-budget", daemon=True)
            t.start()
            self.threads.append(t)
        self._write_state()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the controller, the metrics endpoint and Envoy (SIGTERM, then SIGKILL)."""
        self.stop_event.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for t in self.threads:
            t.join(timeout=timeout)
        self.threads.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> Mirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_foreground(self) -> int:
        """Run until SIGTERM or SIGINT (or Envoy exits); returns Envoy's exit status or 0."""
        handlers: dict[signal.Signals, Any] = {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop_event.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            handlers[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            while not self.stop_event.wait(0.2):
                if self.proc is not None and self.proc.poll() is not None:
                    break
        finally:
            self.stop()
            for sig, h in handlers.items():
                signal.signal(sig, h)
        code = self.proc.returncode if self.proc is not None else 0
        return 0 if code in (0, -signal.SIGTERM) else int(code or 0)

    # -- state ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Ports and pid of the running mirror."""
        return {
            "listen": self.plan.listen,
            "admin_port": self.plan.admin_port,
            "internal_port": self.plan.internal_port if self.plan.transforms else None,
            "metrics_port": self.metrics_port,
            "production": str(self.plan.production),
            "shadow": str(self.plan.shadow),
            "share": self.plan.share,
            "pid": self.proc.pid if self.proc is not None else None,
            "config": str(self.out / "envoy.yaml"),
        }

    def _write_state(self) -> None:
        (self.out / "mirror.json").write_text(json.dumps(self.state(), indent=1) + "\n")

    def _log(self, row: dict[str, Any]) -> None:
        row = {"time": round(time.time(), 3), **row}
        with open(self.out / "levels.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    # -- budget ---------------------------------------------------------------------------

    def set_level(self, level: float) -> None:
        """Apply a budget level to Envoy's runtime (no restart)."""
        values = runtime_values(self.plan.transforms, self.plan.share, level)
        values.pop("mirror.share", None)  # the mirrored share is not the budget's to change
        self.admin.modify(values)
        with self.lock:
            self.level = level

    def _production_counts(self) -> tuple[int, int]:
        c = self.admin.counters(PRODUCTION_PREFIX)
        return c.get(PRODUCTION_PREFIX + "completed", 0), c.get(PRODUCTION_PREFIX + "5xx", 0)

    def evaluate(self, requests: int, errors: int, *, full: bool = True) -> Decision | None:
        """One evaluation (``full``) or stop check over the given counts; applies and logs a
        new level."""
        assert self.controller is not None
        if full:
            d: Decision | None = self.controller.step(requests, errors)
            self.evaluations += 1
        else:
            d = self.controller.check_stop(requests, errors)
        if d is not None and d.changed:
            self.set_level(d.level_to)
            self._log(
                {
                    "event": "level",
                    "from": d.level_from,
                    "to": d.level_to,
                    "reason": d.reason,
                    "burn": d.burn,
                    "requests": d.requests,
                    "errors": d.errors,
                }
            )
        return d

    def _control_loop(self) -> None:
        """Sample the counters ``checks_per_interval`` times per interval; every sample is a
        stop check over the trailing interval, every last one of an interval a full
        evaluation."""
        assert self.budget is not None
        k = self.budget.checks_per_interval
        tick = self.budget.interval_seconds / k
        samples = [self._production_counts()]
        n = 0
        next_at = time.monotonic() + tick
        while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
            next_at += tick
            n += 1
            try:
                samples.append(self._production_counts())
                samples = samples[-(k + 1) :]
                first, last = samples[0], samples[-1]
                self.evaluate(last[0] - first[0], last[1] - first[1], full=n % k == 0)
            except OSError as exc:  # Envoy's admin did not answer: hold, say so
                self._log({"event": "error", "reason": f"admin unreachable: {exc}"})

    # -- metrics --------------------------------------------------------------------------

    def metrics(self) -> str:
        """Prometheus text: the budget, its spend and the transformation levels."""
        lines: list[str] = []

        def gauge(name: str, help_: str, value: float, labels: str = "") -> None:
            if not any(ln.startswith(f"# HELP {name} ") for ln in lines):
                lines.append(f"# HELP {name} {help_}")
                lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name}{labels} {value:.6g}")

        with self.lock:
            level = self.level
        gauge("shadow_mirror_share", "Configured mirrored share (0..1).", self.plan.share)
        gauge("shadow_budget_level", "Transformation level (0..1) the budget allows.", level)
        c = self.controller
        if c is not None:
            b = c.budget
            gauge("shadow_budget_error_budget", "Error ratio the SLO allows.", 1 - b.slo_target)
            gauge("shadow_budget_spent", "Share of the error budget spent since start.", c.spent)
            gauge("shadow_budget_burn_rate", "Burn rate at the last evaluation.", c.last_burn or 0)
            gauge("shadow_budget_stopped", "1 while production breaches (stopped).", c.stopped)
            for kind, value in (
                ("raise_below", b.raise_below),
                ("shrink_above", b.shrink_above),
                ("stop_at", b.stop_at),
            ):
                gauge(
                    "shadow_budget_threshold", "Burn-rate thresholds.", value, f'{{kind="{kind}"}}'
                )
            gauge("shadow_budget_level_changes", "Level changes since start.", c.changes)
            gauge("shadow_budget_evaluations", "Evaluations since start.", self.evaluations)
            gauge(
                "shadow_budget_production_requests", "Production requests seen.", c.requests_total
            )
            gauge("shadow_budget_production_errors", "Production 5xx seen.", c.errors_total)
        ts = self.plan.transforms
        if ts is not None:
            for t in ts.transformations:
                gauge(
                    "shadow_transformation_share",
                    "Share of mirrored requests a transformation applies to now.",
                    t.share * level,
                    f'{{id="{t.id}",kind="{t.kind}"}}',
                )
        return "\n".join(lines) + "\n"

    def _serve_metrics(self) -> None:
        render_metrics: Callable[[], str] = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = render_metrics().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.metrics_port or 0), Handler)
        self.metrics_port = int(self.server.server_address[1])
        t = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        t.start()
        self.threads.append(t)


__all__ = ["PRODUCTION_PREFIX", "Mirror", "free_port", "write_config"]
