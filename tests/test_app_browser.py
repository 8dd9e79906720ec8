"""End to end: ``streamlit run app.py`` on loopback, driven in headless Chromium.

Opens the What-if page, picks a fault, runs it, waits for the charts to show its failures
and saves a screenshot. Uses Debian's Chromium (``/usr/bin/chromium``) through Playwright's
``executable_path``: no browser is downloaded. The server is always stopped afterwards.
Set ``SHADOW_TWIN_SCREENSHOTS=DIR`` to keep a copy of the screenshot.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 90.0
UI_TIMEOUT_MS = 120_000

pytest.importorskip("streamlit", reason="the explorer needs streamlit (the `app` extra)")
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs the playwright package"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (Debian package `chromium`)"
)

TINY = """\
name: tiny
services:
  web:
    workers: 4
    operations:
      default: {service_time: {dist: exponential, mean: 0.005}, calls: [{to: db}]}
  db:
    workers: 2
    operations:
      default: {service_time: {dist: exponential, mean: 0.02}}
workload: [{entry: web, rate: 20}]
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"streamlit did not answer within {START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server we started (its own process group), firmly if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The explorer on a free loopback port, and the entry service of the system it opens
    with (bundled Online Boutique when it is there, else a tiny topology)."""
    tmp = tmp_path_factory.mktemp("explorer")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    topology = ROOT / "topologies" / "online-boutique.yaml"
    if not topology.is_file():
        topology = tmp / "tiny.yaml"
        topology.write_text(TINY, encoding="utf-8")
        env["SHADOW_TWIN_TOPOLOGIES"] = str(tmp)
    entry = str(yaml.safe_load(topology.read_text(encoding="utf-8"))["workload"][0]["entry"])
    port = free_port()
    log = tmp / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.headless", "true",
                "--server.port", str(port),
                "--server.address", "127.0.0.1",
                "--server.fileWatcherType", "none",
                "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, proc, log)
        yield url, entry.partition(":")[0]
    finally:
        stop(proc)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "a PNG file"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def test_pick_a_fault_run_it_and_see_the_chart(server: tuple[str, str], tmp_path: Path) -> None:
    url, entry = server
    sync_playwright = playwright_api.sync_playwright
    expect = playwright_api.expect
    expect.set_options(timeout=UI_TIMEOUT_MS)  # assertions too: a loaded CI machine is slow
    shot = tmp_path / "whatif.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1800})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(url)
            charts = page.locator("[data-testid='stPlotlyChart'] .main-svg")
            charts.first.wait_for()  # the Topology page has drawn its call graph
            page.get_by_test_id("stSidebarNav").get_by_text("What-if").click()
            expect(page.get_by_role("heading", name="What-if")).to_be_visible()
            # the page answers its default question first; wait for its charts
            expect(page.get_by_text("Error rate by reason")).to_be_visible()

            # pick a fault: exceptions at the entry service, so users see them
            kind = page.get_by_role("combobox", name="Fault kind")
            kind.click()
            page.keyboard.type("error rate")
            page.keyboard.press("Enter")
            expect(kind).to_have_value("error rate (exceptions)")
            target = page.get_by_role("combobox", name="Target")
            target.click()
            page.keyboard.type(entry)
            page.keyboard.press("Enter")
            expect(target).to_have_value(entry)
            stale = page.get_by_text("The inputs changed since this run")
            expect(stale).to_be_visible()

            page.get_by_role("button", name="Run what-if").click()
            expect(stale).to_have_count(0)
            # the errors-by-reason chart now has an ERROR bar
            bars = page.get_by_test_id("stPlotlyChart").filter(has_text="Error rate by reason")
            expect(bars.get_by_text("ERROR", exact=True).first).to_be_visible()
            error_rate = page.get_by_test_id("stMetric").filter(has_text="Error rate").first
            expect(error_rate.get_by_test_id("stMetricValue")).not_to_have_text("0%")
            assert page.get_by_test_id("stException").count() == 0
            time.sleep(1.0)  # let plotly finish its transitions before the picture
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.is_file()
    width, height = png_size(shot)
    assert width >= 1000 and height >= 1000
    assert shot.stat().st_size > 50_000, "a real page, not a blank one"
    keep = os.environ.get("SHADOW_TWIN_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
