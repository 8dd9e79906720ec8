"""Start, drive and stop the testbed. Everything it starts is recorded in ``DIR/state.json``
and stopped by :meth:`Testbed.stop` (SIGCONT first, so a paused process can exit)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from testbed.config import TestbedConfig
from testbed.load import run_load

ROOT = Path(__file__).resolve().parents[1]


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; its default elsewhere).

    A port chosen inside it can be handed to some client's socket between the check and the
    server's bind, so the testbed's ports are chosen outside it."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_base_port(span: int = 22, tries: int = 200) -> int:
    """A base port such that ``base .. base + span - 1`` are all free on 127.0.0.1 now and lie
    outside the ephemeral range (the testbed uses base + 0..21), so tests never collide with
    other work on the machine nor with the connections they open themselves."""
    import random

    lo, hi = _ephemeral_range()
    ranges = [(a, b) for a, b in ((10000, lo - span), (hi + 1, 65536 - span)) if b > a]
    if not ranges:
        raise RuntimeError(f"no room for {span} ports outside the ephemeral range {lo}-{hi}")
    rng = random.Random()
    weights = [b - a for a, b in ranges]
    for _ in range(tries):
        a, b = rng.choices(ranges, weights=weights)[0]
        base = rng.randrange(a, b)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + span):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {span} consecutive free ports found on 127.0.0.1")


def missing_tools(prometheus: bool = True) -> list[str]:
    """Debian packages the testbed needs that are not installed."""
    need = {"redis-server": "redis-server", "stress-ng": "stress-ng"}
    if prometheus:
        need["prometheus"] = "prometheus"
    return [pkg for exe, pkg in need.items() if shutil.which(exe) is None]


class Testbed:
    """The running system. Use as a context manager so it always stops."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(
        self, run_dir: str | Path, config: TestbedConfig | None = None, *, prometheus: bool = True
    ) -> None:
        self.dir = Path(run_dir).resolve()
        self.config = config or TestbedConfig()
        self.with_prometheus = prometheus
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.timers: list[threading.Timer] = []

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def spans_dir(self) -> Path:
        return self.dir / "spans"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.config.prometheus_port}"

    def url(self, service: str = "gateway", path: str = "/api") -> str:
        return f"http://127.0.0.1:{self.config.port(service)}{path}"

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if self.config.nice and shutil.which("nice"):
            cmd = ["nice", "-n", str(self.config.nice), *cmd]
        p = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, env=env, start_new_session=True
        )
        log.close()
        self.procs[name] = p
        self._save()
        return p

    def _save(self) -> None:
        self.state_file.write_text(
            json.dumps({n: p.pid for n, p in self.procs.items()}), encoding="utf-8"
        )

    def start_service(self, name: str) -> None:
        cfg = self.dir / "config" / f"{name}.json"
        access = str(self.dir / "logs" / f"{name}.access.jsonl")
        cfg.write_text(json.dumps(self.config.service_json(name, str(self.spans_dir), access)))
        self._spawn(name, [sys.executable, "-m", "testbed.service", str(cfg)])

    def start(self, timeout: float = 30.0) -> Testbed:
        missing = missing_tools(self.with_prometheus)
        if missing:
            raise RuntimeError(f"install first: apt-get install -y {' '.join(missing)}")
        if self.state_file.exists():
            self.stop()  # a previous run in this directory: leave nothing behind
        for sub in ("logs", "config", "spans", "prometheus"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        try:
            c = self.config
            self._spawn(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(c.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
            )
            for s in c.services:
                self.start_service(s.name)
            if self.with_prometheus:
                self._write_prometheus_config()
                self._spawn(
                    "prometheus",
                    [
                        "prometheus",
                        f"--config.file={self.dir / 'prometheus.yml'}",
                        f"--storage.tsdb.path={self.dir / 'prometheus'}",
                        f"--web.listen-address=127.0.0.1:{c.prometheus_port}",
                        "--log.level=warn",
                    ],
                )
            ports = {"redis": c.redis_port} | {s.name: c.port(s.name) for s in c.services}
            if self.with_prometheus:
                ports["prometheus"] = c.prometheus_port
            deadline = time.monotonic() + timeout
            for name, port in ports.items():
                self._wait_listening(name, port, deadline)
            for name, proc in self.procs.items():  # a port answered by someone else
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited at start: {self._log_tail(name)}")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, name: str, port: int, deadline: float) -> None:
        """Wait until ``name`` listens on ``port``; a child that exited says why (its log)."""
        proc = self.procs[name]
        while time.monotonic() < deadline:
            if _wait_port(port, 0.5):
                return
            if proc.poll() is not None:
                tail = self._log_tail(name)
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode} before listening on "
                    f"127.0.0.1:{port}: {tail}"
                )
        raise RuntimeError(f"{name}: nothing listens on 127.0.0.1:{port} after the start timeout")

    def _log_tail(self, name: str, lines: int = 3) -> str:
        try:
            text = (self.dir / "logs" / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def _write_prometheus_config(self) -> None:
        c = self.config
        lines = [
            "global:",
            f"  scrape_interval: {c.scrape_interval:g}s",
            f"  scrape_timeout: {min(c.scrape_interval, 1.0):g}s",
            "scrape_configs:",
        ]
        for s in c.services:
            lines += [
                f"  - job_name: {c.job(s.name)}",
                "    static_configs:",
                f"      - targets: ['127.0.0.1:{c.port(s.name)}']",
            ]
            if c.role != "production":
                lines.append(f"        labels: {{role: {c.role}}}")
        (self.dir / "prometheus.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop everything this directory's state names; SIGKILL what does not exit."""
        for t in self.timers:
            t.cancel()
        pids: dict[str, int] = {n: p.pid for n, p in self.procs.items()}
        if self.state_file.exists():
            with contextlib.suppress(json.JSONDecodeError, OSError):
                pids.update(json.loads(self.state_file.read_text()))
        for pid in pids.values():
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
        deadline = time.monotonic() + timeout
        for name, pid in pids.items():
            p = self.procs.get(name)
            while time.monotonic() < deadline:
                if p is not None and p.poll() is not None:
                    break
                if p is None and not _alive(pid):
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if p is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=2)
        self.procs.clear()
        self.state_file.unlink(missing_ok=True)

    def running(self) -> dict[str, bool]:
        return {n: p.poll() is None for n, p in self.procs.items()}

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- load -----------------------------------------------------------------------------------

    def load(
        self, rate: float, duration: float, *, seed: int = 1, out: Path | None = None
    ) -> dict[str, Any]:
        """Run the open-loop generator (its own process) and return its records."""
        out = out or self.dir / f"load-{rate:g}-{seed}.json"
        return run_load(self.url(), rate, duration, seed, out, nice=self.config.nice)

    def calibrate(
        self,
        out: Path,
        rate: float,
        seconds: float,
        *,
        demand: str = "cpu",
        predict_seconds: float = 60.0,
    ) -> tuple[Any, dict[str, Any], float, float]:
        """The twin calibrated from this system: warm up, run ``rate`` requests/s for
        ``seconds``, then calibrate from the spans and Prometheus with worker-busy time as the
        CPU demand (``out/calibration``). Returns the topology, the load's records and the
        window's start and end (unix seconds)."""
        from twin.calibrate import CalibrationConfig, run_calibration
        from twin.topology import Topology

        self.load(5, 5, seed=99)  # warm connections and caches
        t0 = time.time()
        records = self.load(rate, seconds, seed=1)
        t1 = time.time()
        time.sleep(2.5)  # let spans flush and Prometheus scrape the end of the window
        mapping = out / "mapping.yaml"
        mapping.write_text("cpu_seconds: worker_busy_seconds_total\n", encoding="utf-8")
        run_calibration(
            CalibrationConfig(
                traces=tuple(sorted(self.spans_dir.glob("*.jsonl"))),
                out=out / "calibration",
                prometheus=self.prometheus_url,
                start=str(t0),
                end=str(t1),
                step_seconds=1.0,
                name="testbed",
                workers={s.name: s.workers for s in self.config.services},
                mapping=mapping,
                demand=demand,
                predict_seconds=predict_seconds,
            )
        )
        return Topology.load(out / "calibration" / "topology.yaml"), records, t0, t1

    # -- faults ---------------------------------------------------------------------------------

    def inject(self, service: str, *, latency: float = 0.0, error: float = 0.0) -> None:
        """Latency (an awaited sleep before the calls) and/or an error rate at a service."""
        url = self.url(service, f"/admin/fault?latency={latency}&error={error}")
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()

    def cpu_hog(
        self, seconds: float, core: int = 1, hogs: int = 1, group_nice: int | None = None
    ) -> subprocess.Popen[bytes]:
        """stress-ng burning the core the bottleneck service is pinned to.

        The kernel's autogroup scheduler shares a core between *sessions*, not processes, so
        ``hogs`` busy workers together take about half of it from the pinned service,
        however many there are. ``group_nice`` (-20..19) sets the hog session's autogroup
        weight, which is what makes the contention strong: -10 leaves the service about a
        tenth of the core. It needs root (or CAP_SYS_NICE) and is ignored where refused."""
        p = self._spawn(
            "stress-ng",
            [
                "stress-ng",
                "--cpu",
                str(hogs),
                "--taskset",
                str(core),
                "--cpu-load",
                "100",
                "--timeout",
                f"{max(1, round(seconds))}s",
                "--quiet",
            ],
        )
        if group_nice is not None:
            with contextlib.suppress(OSError):
                Path(f"/proc/{p.pid}/autogroup").write_text(str(group_nice), encoding="utf-8")
        return p

    def pause(self, service: str, seconds: float) -> None:
        """SIGSTOP now, SIGCONT after ``seconds`` (and at stop, whatever happens)."""
        pid = self.procs[service].pid
        os.kill(pid, signal.SIGSTOP)
        t = threading.Timer(seconds, lambda: os.kill(pid, signal.SIGCONT))
        t.daemon = True
        t.start()
        self.timers.append(t)

    def kill_restart(self, service: str, downtime: float) -> float:
        """SIGKILL the service, start it again after ``downtime``; returns the seconds until it
        accepted connections again (the outage the callers saw)."""
        p = self.procs[service]
        t0 = time.monotonic()
        p.kill()
        p.wait(timeout=5)
        time.sleep(downtime)
        self.start_service(service)
        _wait_port(self.config.port(service), 20)
        return time.monotonic() - t0
