"""A real PostgreSQL server for tests (initdb into a temporary directory, a free loopback
port, stopped afterwards), shared by the store and campaign tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server's URL for the tests of one module (see
    :func:`running_postgres`)."""
    with running_postgres() as url:
        yield url


@contextmanager
def running_postgres() -> Iterator[str]:
    """initdb into a temporary directory and run ``postgres`` on a free loopback port, as the
    ``postgres`` user when we are root (it refuses to run as root). The server is this test
    process's child with a parent-death signal, so it stops even if the tests are killed.
    Benchmarks use it too; outside a test, a missing PostgreSQL raises pytest's skip
    exception, whose message says what to install."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not installed (Debian: apt-get install postgresql)")
    setpriv = shutil.which("setpriv")
    flags: list[str] = []
    owner = None
    if os.geteuid() == 0:
        if setpriv is None:
            pytest.skip("running as root and setpriv is missing to drop to the postgres user")
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        flags = ["--reuid=postgres", "--regid=postgres", "--init-groups"]
    home = Path(tempfile.mkdtemp(prefix="twin-pg-"))
    if owner is not None:
        os.chown(home, owner.pw_uid, owner.pw_gid)
    data = home / "data"
    port = _free_port()
    as_user = [str(setpriv), *flags, "--"] if flags else []
    dies_with_us = [str(setpriv), *flags, "--pdeathsig", "QUIT", "--"] if setpriv else []
    try:
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(
            [
                *dies_with_us,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(home),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=40",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(home / "server.log").open("wb"),
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                log = (home / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"PostgreSQL did not start:\n{log}")
            time.sleep(0.1)
        import psycopg

        for _ in range(50):  # listening is not yet accepting: wait for recovery to finish
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        try:
            yield url
        finally:
            server.terminate()  # SIGTERM: smart shutdown
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(home, ignore_errors=True)
