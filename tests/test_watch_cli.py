"""``twin watch`` end to end on a short replay (alerts.jsonl valid against the shipped
schema, a fault raised and resolved with the faulted service first, report.html and
timeline.json written), and bad input as one line with exit 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.predict.alerts import schema

TOPOLOGY = """\
name: web-db
services:
  web:
    workers: 8
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        calls: [{to: db}]
  db:
    workers: 4
    operations:
      default: {service_time: {dist: exponential, mean: 0.005}}
workload:
  - {entry: web, rate: 10}
slo: {latency_p99: 1.0, availability: 0.99}
"""

HEADER = (
    "Time,TimeStamp,PodName,CpuUsageRate(%),PodServerLatencyP99(s),PodWorkload(Ops),"
    "PodSuccessRate(%)"
)


def _replay(folder: Path, minutes: int = 60, fault: tuple[int, int] = (40, 46)) -> None:
    """An hour of a web -> db system; db's CPU and latency jump during ``fault`` minutes,
    and the entry's p99 with it."""
    folder.mkdir(parents=True)
    t0 = 1_700_000_000
    sli = [
        "Time,TimeStamp,ServiceName,SuccessRate(%),LatencyP50(s),LatencyP90(s),LatencyP95(s),LatencyP99(s)"
    ]
    web, db = [HEADER], [HEADER]
    for i in range(minutes):
        t = t0 + 60 * i
        bad = fault[0] <= i < fault[1]
        wiggle = 0.01 * ((i * 7) % 5)
        sli.append(f"x,{t},Frontend,100,0.05,0.1,0.15,{(2.5 if bad else 0.3) + wiggle}")
        cpu, w99, d99 = (95, 2.4, 2.0) if bad else (30, 0.25, 0.05)
        web.append(f"x,{t},web-6b7c8d9f5-aaaaa,{20 + wiggle * 100},{w99 + wiggle},10,100")
        db.append(f"x,{t},db-0,{cpu + wiggle * 100},{d99 + wiggle},10,100")
    (folder / "sli.csv").write_text("\n".join(sli) + "\n")
    (folder / "web-6b7c8d9f5-aaaaa_metric.csv").write_text("\n".join(web) + "\n")
    (folder / "db-0_metric.csv").write_text("\n".join(db) + "\n")


def test_a_short_replay_raises_and_resolves_one_alert_end_to_end(tmp_path: Path) -> None:
    topo = tmp_path / "topo.yaml"
    topo.write_text(TOPOLOGY)
    _replay(tmp_path / "rec")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "watch",
            str(topo),
            "--replay",
            str(tmp_path / "rec"),
            "--format",
            "nezha",
            "--out",
            str(out),
            "--horizon",
            "600",
            "--db",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    for a in lines:
        jsonschema.validate(a, schema())
    firing = [a for a in lines if a["status"] == "firing"]
    assert firing, res.output
    first = firing[0]
    t0 = 1_700_000_000
    assert t0 + 60 * 40 <= first["time"] <= t0 + 60 * 46  # raised during the fault
    assert first["root_cause"][0] in {"db", "web"}
    assert first["probability"] == 1.0 and first["time_to_breach_s"] == 0.0  # p99 > SLO now
    assert any(a["status"] == "resolved" for a in lines)
    timeline = json.loads((out / "timeline.json").read_text())
    assert len(timeline["windows"]) == 60
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    from twin.store import Store
    from twin.store.documents import counts

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert counts(store)["alerts"] == len(lines)
    store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --prometheus URL or --replay DIR"),
        (["--replay", "REC"], "--replay needs --format"),
        (["--replay", "REC", "--format", "csv"], "--format 'csv'"),
        (["--replay", "MISSING", "--format", "nezha"], "not a folder"),
        (["--prometheus", "not a url"], "--prometheus"),
        (["--replay", "REC", "--format", "nezha", "--act"], "--act needs --policy"),
        (["--replay", "REC", "--format", "nezha", "--horizon", "-5"], "--horizon"),
        (["--replay", "REC", "--format", "nezha", "--history", "-60"], "--history -60.0"),
        (["--prometheus", "http://127.0.0.1:9", "--history", "1e9"], "expected 0 to 86400"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    topo = tmp_path / "topo.yaml"
    topo.write_text(TOPOLOGY)
    _replay(tmp_path / "REC", minutes=3)
    args = [
        a.replace("REC", str(tmp_path / "REC")).replace("MISSING", str(tmp_path / "no"))
        for a in args
    ]
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["watch", str(topo), *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (out / "alerts.jsonl").exists()


BOUTIQUE = [
    "adservice",
    "cartservice",
    "checkoutservice",
    "currencyservice",
    "emailservice",
    "frontend",
    "paymentservice",
    "productcatalogservice",
    "recommendationservice",
    "redis-cart",
    "shippingservice",
]


def _boutique_replay(folder: Path, services: list[str]) -> None:
    """An hour of Online Boutique's services; cartservice slows down in minutes 40-45."""
    folder.mkdir(parents=True)
    t0 = 1_700_000_000
    sli = [
        "Time,TimeStamp,ServiceName,SuccessRate(%),LatencyP50(s),LatencyP90(s),LatencyP95(s),LatencyP99(s)"
    ]
    rows = {s: [HEADER] for s in services}
    for i in range(60):
        t, bad, wiggle = t0 + 60 * i, 40 <= i < 46, 0.01 * ((i * 7) % 5)
        sli.append(f"x,{t},Frontend,100,0.05,0.1,0.15,{(2.5 if bad else 0.3) + wiggle}")
        for s in services:
            hit = bad and s == "cartservice"
            cpu, p99 = (95, 2.0) if hit else (30, 0.05)
            rows[s].append(f"x,{t},{s}-6b7c8d9f5-aaaaa,{cpu + wiggle * 100},{p99 + wiggle},10,100")
    (folder / "sli.csv").write_text("\n".join(sli) + "\n")
    for s in services:
        (folder / f"{s}-6b7c8d9f5-aaaaa_metric.csv").write_text("\n".join(rows[s]) + "\n")


def _act(tmp_path: Path, services: list[str]) -> list[str]:
    root = Path(__file__).resolve().parents[1]
    _boutique_replay(tmp_path / "rec", services)
    res = CliRunner().invoke(
        app,
        [
            "watch",
            str(root / "topologies" / "online-boutique.yaml"),
            *("--replay", str(tmp_path / "rec"), "--format", "nezha"),
            *("--out", str(tmp_path / "out"), "--horizon", "600"),
            *("--policy", str(root / "agents/policies/online-boutique/export/policy.json")),
            "--act",
        ],
    )
    assert res.exit_code == 0, res.output
    return [ln for ln in res.output.splitlines() if ln.startswith("watch: act: ")]


def test_act_sends_each_firing_alert_through_the_enforcer_reading_that_window(
    tmp_path: Path,
) -> None:
    acts = _act(tmp_path, BOUTIQUE)
    assert acts, "a firing alert must reach the enforcer"
    assert all("HOLD" not in a and "[model]" in a for a in acts), acts


def test_act_holds_naming_the_reading_a_window_lacks(tmp_path: Path) -> None:
    acts = _act(tmp_path, [s for s in BOUTIQUE if s != "emailservice"])
    assert acts
    assert all("HOLD" in a and "emailservice has no" in a for a in acts), acts
