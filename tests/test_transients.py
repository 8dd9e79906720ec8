"""Transient episodes in a trace window: a stall planted in synthetic traces is found (its
service, callee and interval) and set aside with its requests and time, so the steady-state
fit and the rate are those of the stall-free traces; a stall-free capture, a slow drift and
a stall filling most of the window are left untouched, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from span_csv import SpanCsv
from typer.testing import CliRunner

from twin.calibrate import CalibrationConfig, run_calibration
from twin.calibrate.traces import read_traces
from twin.calibrate.transients import MAX_SHARE, Z_MIN, exclusive_times, scan, set_aside
from twin.cli import app
from twin.topology import Topology

T0 = 1_700_000_000.0
SECONDS = 120.0
RATE = 20.0  # requests per second
STALL = (50.0, 60.0)  # seconds after T0


def _write(
    path: Path,
    *,
    seed: int,
    stall: tuple[float, float] | None = None,
    extra: float = 0.100,
    drift: float = 0.0,
    front: float = 0.002,
) -> Path:
    """Requests front -> cart (always) -> db (half of them): lognormal self times (front's
    median ``front`` seconds), a wire wait on each call; during ``stall`` the wait on db
    grows by ``extra`` seconds; with ``drift`` cart's self time grows linearly by that share
    over the window."""
    rng = np.random.default_rng(seed)
    table = SpanCsv()
    span = table.span

    t, i = T0, 0
    while True:
        t += float(rng.exponential(1 / RATE))
        if t >= T0 + SECONDS:
            break
        i += 1
        trace = f"t{i}"
        root = table.open_root()
        now = t + float(rng.lognormal(np.log(front), 0.3))
        calls = [("cart", 0.002 * (1 + drift * (t - T0) / SECONDS))]
        if rng.random() < 0.5:
            calls.append(("db", 0.004))
        for svc, own in calls:
            wait = float(rng.lognormal(np.log(0.001), 0.5))
            if svc == "db" and stall and T0 + stall[0] <= now < T0 + stall[1]:
                wait += extra
            d = float(rng.lognormal(np.log(own), 0.3))
            client = span(trace, root, "front", f"call {svc}", now, now + d + wait)
            span(trace, client, svc, "Get", now + wait / 2, now + wait / 2 + d)
            now += d + wait
        table.close_root(root, trace, "front", "Front/Recv", t, now)
    return table.write(path)


def _spans(path: Path) -> pd.DataFrame:
    return read_traces([path])[0]


def test_scan_of_stationary_series_stays_below_the_bar() -> None:
    """Without an episode the largest standardised rank-sum over all intervals is chance:
    in 60 independent series of 50-2,000 lognormal values it stays far below Z_MIN."""
    rng = np.random.default_rng(7)
    top = max(
        scan(np.sort(rng.uniform(0, 60, n)), rng.lognormal(0, 1, n), 0.0, 60.0)[0]
        for n in (50, 300, 2000)
        for _ in range(20)
    )
    assert 2.0 < top < Z_MIN - 1.0


def test_scan_finds_a_planted_shift_where_it_was_planted() -> None:
    """A shift of the values in [30, 40) s of [0, 100) is the interval the scan returns
    (bins of 1 s, to within a bin)."""
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 100, 3000))
    v = rng.lognormal(0, 0.5, 3000) * np.where((t >= 30) & (t < 40), 5.0, 1.0)
    z, a, e = scan(t, v, 0.0, 100.0, bins=100)
    assert z > Z_MIN
    assert abs(a - 30) <= 1 and abs(e - 40) <= 1


def test_exclusive_time_of_a_client_span_is_its_wait_beyond_the_callee(tmp_path: Path) -> None:
    """A client span's exclusive time is client minus server duration; a leaf's is its
    duration; a root's is its duration minus its calls."""
    p = tmp_path / "one.csv"
    ms = int(1e6)
    at = int(T0 * 1e9)
    rows = [("a", "root", "front", "Recv", 0, 10), ("b", "a", "front", "call db", 2, 8)]
    rows.append(("c", "b", "db", "Get", 3, 6))
    p.write_text(
        "TraceID,SpanID,ParentID,ServiceName,OperationName,StartTimeUnixNano,EndTimeUnixNano\n"
        + "".join(
            f"t,{i},{par},{s},{o},{at + a * ms},{at + b * ms}\n" for i, par, s, o, a, b in rows
        ),
        encoding="utf-8",
    )
    df = _spans(p).reset_index(drop=True)
    ex, remote = exclusive_times(df)
    got = dict(zip(df["span_id"], ex, strict=True))
    assert got == pytest.approx({"a": 0.004, "b": 0.003, "c": 0.003}, abs=1e-6)
    assert df["span_id"][remote[df.index[df["span_id"] == "b"][0]]] == "c"


def test_planted_stall_is_found_named_and_set_aside(tmp_path: Path) -> None:
    """The stall on db's wait is one episode: front's `call db`, waiting on db, from 50 s
    for 10 s (to within a second); the requests set aside are those starting in the
    stretch, and no other series is flagged."""
    spans = _spans(_write(tmp_path / "stall.csv", seed=1, stall=STALL))
    kept, aside = set_aside(spans)
    assert [(e.service, e.operation, e.callee) for e in aside.episodes] == [
        ("front", "call db", "db")
    ]
    (e,) = aside.episodes
    assert abs(e.start - (T0 + STALL[0])) <= 1.5
    assert abs(e.end - (T0 + STALL[1])) <= 1.5
    assert e.stretch is not None and e.stretch > 10
    ((a, b),) = aside.stretches
    starts = spans.groupby("trace_id")["start"].min()
    inside = ((starts >= a) & (starts < b)).sum()
    assert aside.requests == inside
    assert aside.seconds == pytest.approx(b - a)
    assert abs(aside.requests - RATE * aside.seconds) < 4 * np.sqrt(RATE * aside.seconds)
    assert set(kept["trace_id"]).isdisjoint(set(starts.index[(starts >= a) & (starts < b)]))
    assert len(kept) + aside.spans == len(spans)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_stall_free_capture_is_returned_as_it_came(tmp_path: Path, seed: int) -> None:
    """No episode in a stationary capture: the very same table comes back."""
    spans = _spans(_write(tmp_path / "quiet.csv", seed=seed))
    kept, aside = set_aside(spans)
    assert kept is spans
    assert aside.episodes == () and aside.requests == 0 and aside.seconds == 0.0


def test_slow_drift_and_a_long_stall_are_not_transients(tmp_path: Path) -> None:
    """A 30% drift over the window is the steady state moving (the stretch bar), and a
    stall filling 70% of the window is no transient (at most MAX_SHARE of it)."""
    drift = _spans(_write(tmp_path / "drift.csv", seed=5, drift=0.3))
    assert set_aside(drift)[0] is drift
    assert MAX_SHARE < 0.7
    long = _spans(_write(tmp_path / "long.csv", seed=5, stall=(10.0, 10.0 + 0.7 * SECONDS)))
    assert set_aside(long)[0] is long


def test_a_shift_too_small_to_matter_to_a_request_is_no_stall(tmp_path: Path) -> None:
    """A wait of 1 ms growing by 4 ms for 10 s passes the rank and stretch tests, but under
    requests of about 200 ms it adds 2% of one: not an episode. The same shift under 8 ms
    requests is one."""
    slow = _spans(_write(tmp_path / "slow.csv", seed=1, stall=STALL, extra=0.004, front=0.2))
    assert set_aside(slow)[0] is slow
    fast = _spans(_write(tmp_path / "fast.csv", seed=1, stall=STALL, extra=0.004))
    assert [e.callee for e in set_aside(fast)[1].episodes] == ["db"]


def _calibrate(path: Path, out: Path, keep: bool = False) -> tuple[Topology, dict]:  # type: ignore[type-arg]
    rec = run_calibration(
        CalibrationConfig(
            traces=(path,), out=out, name="t", predict_seconds=0, keep_transients=keep
        )
    )
    return Topology.load(out / "topology.yaml"), rec.document


def test_stall_free_calibration_is_the_same_bit_for_bit(tmp_path: Path) -> None:
    """On a capture with no episode the topology written is byte for byte the one written
    with --keep-transients (the detection changes nothing)."""
    p = _write(tmp_path / "quiet.csv", seed=1)
    _calibrate(p, tmp_path / "a")
    _calibrate(p, tmp_path / "b", keep=True)
    assert (tmp_path / "a" / "topology.yaml").read_bytes() == (
        tmp_path / "b" / "topology.yaml"
    ).read_bytes()


def _db_wait(topo: Topology) -> float:
    (call,) = [
        c
        for s in topo.services.values()
        for o in s.operations.values()
        for c in o.calls
        if c.to.startswith("db")
    ]
    assert call.latency is not None
    return float(call.latency.expected())


def test_set_aside_calibration_matches_the_stall_free_one(tmp_path: Path) -> None:
    """Calibrated from the stalled capture with the stall set aside, the entry rate and
    db's wait are those calibrated from the same capture without a stall (within 5% and
    15%); kept in the fit, the wait is several times longer. The record says what was set
    aside, and the command line's --keep-transients keeps it."""
    clean, _ = _calibrate(_write(tmp_path / "quiet.csv", seed=1), tmp_path / "clean")
    stalled = _write(tmp_path / "stall.csv", seed=1, stall=STALL)
    steady, doc = _calibrate(stalled, tmp_path / "steady")
    kept, kdoc = _calibrate(stalled, tmp_path / "kept", keep=True)
    rate = sum(w.rate for w in steady.workload)
    assert rate == pytest.approx(sum(w.rate for w in clean.workload), rel=0.05)
    assert _db_wait(steady) == pytest.approx(_db_wait(clean), rel=0.15)
    assert _db_wait(kept) > 3 * _db_wait(clean)
    tr = doc["transients"]
    assert tr["set_aside"] and tr["episodes"][0]["callee"] == "db" and tr["requests"] > 0
    assert kdoc["transients"]["set_aside"] is False and kdoc["transients"]["episodes"]
    assert "transient:" in (tmp_path / "steady" / "report.md").read_text(encoding="utf-8")
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--traces",
            str(stalled),
            "--out",
            str(tmp_path / "cli"),
            "--predict",
            "0",
            "--keep-transients",
            "--name",
            "t",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "topology.yaml").read_bytes() == (
        tmp_path / "kept" / "topology.yaml"
    ).read_bytes()


def test_a_stall_at_the_end_of_the_capture_leaves_the_rate_unbiased(tmp_path: Path) -> None:
    """Set aside at the window's end, the stall's time leaves the observed window once: the
    entry rate is the stall-free capture's (within 5%), not inflated by counting it twice."""
    clean, _ = _calibrate(_write(tmp_path / "quiet.csv", seed=2), tmp_path / "clean")
    end = _write(tmp_path / "end.csv", seed=2, stall=(SECONDS - 15.0, SECONDS))
    steady, doc = _calibrate(end, tmp_path / "steady")
    assert doc["transients"]["set_aside"]
    rate = sum(w.rate for w in steady.workload)
    assert rate == pytest.approx(sum(w.rate for w in clean.workload), rel=0.05)


def test_episodes_that_together_fill_most_of_the_window_are_kept_in_the_fit(
    tmp_path: Path,
) -> None:
    """Two stalls on two calls, each under half the window but together more than half of
    it, are reported and kept: what fills most of the window is the steady state."""
    a = _spans(_write(tmp_path / "a.csv", seed=3, stall=(5.0, 5.0 + 0.45 * SECONDS)))
    b = _spans(_write(tmp_path / "b.csv", seed=3, stall=(60.0, 60.0 + 0.45 * SECONDS)))
    db = (b["service"] == "front") & (b["operation"] == "call db")
    b = b.assign(operation=b["operation"].where(~db, "call db again"))
    b = b.assign(trace_id="b" + b["trace_id"])
    both = pd.concat([a, b], ignore_index=True)
    kept, aside = set_aside(both)
    assert len(aside.episodes) >= 2 and aside.kept
    assert kept is both
