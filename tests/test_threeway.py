"""The three-way comparison on synthetic inputs: known figures in, known accuracy out;
degenerate arms are counted misses; twin equivalents do what the transformation does;
disagreements land in the database and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.io import parse_model
from twin.mirror.compare import (
    Arm,
    Row,
    Tolerance,
    arm,
    evidence,
    judge,
    predict,
    summarise,
    twin_equivalent,
    write,
)
from twin.mirror.document import TransformSet
from twin.topology import Topology

PROD = Arm(100, 100, 0.080, 0.075, 0.150)


def verdicts(shadow: Arm, twin: Arm) -> dict[str, object]:
    return {v.metric: v for v in judge(PROD, shadow, twin)}


def test_accuracy_is_perfsims_form_per_metric() -> None:
    shadow = Arm(100, 90, 0.100, 0.080, 0.200)
    twin = Arm(100, 88, 0.090, 0.080, 0.250)
    v = verdicts(shadow, twin)
    assert v["latency_mean"].accuracy == pytest.approx(0.90)  # type: ignore[attr-defined]
    assert v["latency_p50"].accuracy == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert v["latency_p99"].accuracy == pytest.approx(0.75)  # type: ignore[attr-defined]
    # error rates 10% and 12%: success ratios 0.90 and 0.88, 1 - 0.02 / 0.90
    assert v["error_rate"].accuracy == pytest.approx(1 - 0.02 / 0.90)  # type: ignore[attr-defined]
    assert v["error_rate"].diff_pp == pytest.approx(2.0)  # type: ignore[attr-defined]


def test_disagreement_is_judged_by_the_tolerance() -> None:
    shadow = Arm(100, 90, 0.100, 0.080, 0.200)
    twin = Arm(100, 86, 0.090, 0.071, 0.250)
    v = verdicts(shadow, twin)
    assert not v["latency_mean"].disagrees  # type: ignore[attr-defined]  # 90% >= 90%
    assert v["latency_p50"].disagrees  # type: ignore[attr-defined]  # 88.75% < 90%
    assert v["latency_p99"].disagrees  # type: ignore[attr-defined]  # 75% < 80%
    assert v["error_rate"].disagrees  # type: ignore[attr-defined]  # +4 pp > 3 pp
    loose = {x.metric: x for x in judge(PROD, shadow, twin, Tolerance(latency_p99=0.7))}
    assert not loose["latency_p99"].disagrees


def test_a_zero_success_arm_is_a_counted_miss_never_nan() -> None:
    shadow = Arm(50, 0)
    twin = Arm(100, 97, 0.05, 0.04, 0.2)
    v = verdicts(shadow, twin)
    for m in ("latency_mean", "latency_p50", "latency_p99"):
        assert v[m].miss and v[m].disagrees and v[m].accuracy is None  # type: ignore[attr-defined]
        assert "shadow" in v[m].why  # type: ignore[attr-defined]
    assert v["error_rate"].miss  # type: ignore[attr-defined]  # all failed, twin says 3%
    row = Row("t", "error", "error_rate", "", PROD, shadow, twin, judge(PROD, shadow, twin))
    s = summarise([row])
    assert s["latency_mean"] == {
        "compared": 1,
        "misses": 1,
        "disagreements": 1,
        "accuracy_mean": None,
        "accuracy_min": None,
    }
    assert "NaN" not in json.dumps(s)


def test_an_error_free_shadow_is_compared_on_the_success_ratio() -> None:
    shadow, twin = Arm(100, 100, 0.1, 0.1, 0.2), Arm(100, 100, 0.1, 0.1, 0.2)
    v = verdicts(shadow, twin)
    assert v["error_rate"].accuracy == 1.0 and not v["error_rate"].disagrees  # type: ignore[attr-defined]


def test_summary_averages_only_what_was_compared() -> None:
    good = Arm(100, 100, 0.10, 0.10, 0.20)
    rows = [
        Row("a", "delay", "latency", "", PROD, good, Arm(100, 100, 0.09, 0.10, 0.20),
            judge(PROD, good, Arm(100, 100, 0.09, 0.10, 0.20))),
        Row("b", "delay", "latency", "", PROD, good, Arm(100, 100, 0.12, 0.10, 0.20),
            judge(PROD, good, Arm(100, 100, 0.12, 0.10, 0.20))),
        Row("c", "error", "error_rate", "", PROD, Arm(10, 0), good,
            judge(PROD, Arm(10, 0), good)),
    ]  # fmt: skip
    s = summarise(rows)["latency_mean"]
    assert s["accuracy_mean"] == pytest.approx(0.85) and s["accuracy_min"] == pytest.approx(0.8)
    assert (s["compared"], s["misses"], s["disagreements"]) == (3, 1, 2)


def test_arm_from_records() -> None:
    a = arm([0.1, 0.2, 0.3, 5.0], [True, True, True, False])
    assert (a.requests, a.succeeded) == (4, 3)
    assert a.latency_mean == pytest.approx(0.2) and a.latency_p50 == pytest.approx(0.2)
    assert a.error_rate == pytest.approx(0.25)
    assert arm([], []).error_rate is None


CHAIN = {
    "name": "pair",
    "services": {
        "front": {
            "workers": 8,
            "operations": {
                "default": {
                    "service_time": {"dist": "constant", "mean": 0.01},
                    "calls": [{"to": "back"}],
                }
            },
        },
        "back": {
            "workers": 4,
            "operations": {"default": {"service_time": {"dist": "constant", "mean": 0.02}}},
        },
    },
    "workload": [{"entry": "front", "rate": 10.0}],
}


def transformation(doc: dict[str, object]) -> object:
    ts = parse_model(TransformSet, {"name": "t", "transformations": [{"id": "x", **doc}]})
    return ts.transformations[0]


def test_twin_equivalents_do_what_the_transformation_does() -> None:
    topo = Topology.from_dict(CHAIN, source="pair")
    base = predict(topo, twin_equivalent(transformation({"kind": "payload_nudge", "share": 1.0,
                   "intensity": 0.1}), "front"), multiplier=1.0, seconds=200)  # type: ignore[arg-type]  # fmt: skip
    assert base.error_rate == 0.0 and base.latency_mean == pytest.approx(0.03, rel=1e-6)
    delay = twin_equivalent(transformation({"kind": "delay", "share": 1.0, "intensity": 0.05}),  # type: ignore[arg-type]
                            "front")  # fmt: skip
    slow = predict(topo, delay, multiplier=1.0, seconds=200)
    assert slow.latency_mean == pytest.approx(0.08, rel=1e-6)
    half = twin_equivalent(transformation({"kind": "delay", "share": 0.5, "intensity": 0.05}),  # type: ignore[arg-type]
                           "front")  # fmt: skip
    assert sorted(half.faults[0]["delay"]["samples"]) == [0.0, 0.05]
    err = predict(topo, twin_equivalent(transformation({"kind": "error", "share": 0.3}),  # type: ignore[arg-type]
                  "front"), multiplier=1.0, seconds=400)  # fmt: skip
    assert err.error_rate == pytest.approx(0.3, abs=0.04)  # 4000 requests: 4.5 standard errors
    limited = predict(topo, twin_equivalent(transformation({"kind": "rate_limit", "share": 1.0,  # type: ignore[arg-type]
                      "intensity": 5}), "front"), multiplier=1.0, seconds=400)  # fmt: skip
    # a 5/s bucket under 10/s Poisson arrivals passes about 5/s: about half are refused
    assert 0.4 < (limited.error_rate or 0.0) < 0.6


def test_disagreements_become_evidence_that_reads_back(tmp_path: Path) -> None:
    from twin.store import Store
    from twin.store.documents import add_calibration_evidence, page

    shadow, twin = Arm(100, 90, 0.100, 0.080, 0.200), Arm(100, 86, 0.090, 0.071, 0.250)
    rows = [Row("slow", "delay", "latency", "", PROD, shadow, twin, judge(PROD, shadow, twin)),
            Row("dead", "error", "error_rate", "", PROD, Arm(5, 0), twin,
                judge(PROD, Arm(5, 0), twin))]  # fmt: skip
    ev = evidence(rows, topology="testbed", observed_at="2026-03-01T10:00:00Z", entry="gateway")
    assert len(ev) == 8
    with Store(str(tmp_path / "t.db")) as store:
        assert add_calibration_evidence(store, ev) == ["created"] * 8
        assert add_calibration_evidence(store, ev) == ["already_existed"] * 8
        wrong, _ = page(store, "calibration_evidence", limit=50, filters=[("disagrees", True)])
        right, _ = page(store, "calibration_evidence", limit=50, filters=[("disagrees", False)])
    assert {(r["scenario"], r["metric"]) for r in right} == {("slow", "latency_mean")}
    misses = [r for r in wrong if r["accuracy"] is None]
    assert {r["metric"] for r in misses} == {"latency_mean", "latency_p50", "latency_p99",
                                             "error_rate"}  # fmt: skip
    assert all(r["scenario"] == "dead" for r in misses)


def test_evidence_with_a_nan_is_refused_whole(tmp_path: Path) -> None:
    from twin.errors import InputError
    from twin.store import Store
    from twin.store.documents import add_calibration_evidence, counts

    good = {"observed_at": "t", "source": "s", "topology": "x", "scenario": "a",
            "fault_kind": "latency", "target": "g", "metric": "latency_mean",
            "predicted": 0.1, "measured": 0.1, "accuracy": 1.0, "disagrees": False}  # fmt: skip
    with Store(str(tmp_path / "t.db")) as store:
        with pytest.raises(InputError, match=r"evidence\[1\].accuracy: expected a finite number"):
            add_calibration_evidence(store, [good, {**good, "accuracy": float("nan")}])
        assert counts(store)["calibration_evidence"] == 0


def test_report_files_hold_no_nan(tmp_path: Path) -> None:
    shadow = Arm(40, 0)
    twin = Arm(100, 97, 0.05, 0.04, 0.2)
    rows = [Row("dead", "error", "error_rate", "why", PROD, shadow, twin,
                judge(PROD, shadow, twin))]  # fmt: skip
    result = {"rows": [r.to_json() for r in rows], "summary": summarise(rows),
              "evidence": evidence(rows, topology="x", observed_at="t", entry="g")}  # fmt: skip
    write(tmp_path, result, rows, Tolerance())
    text = (tmp_path / "threeway.json").read_text()
    assert "NaN" not in text and json.loads(text)["summary"]["latency_p99"]["misses"] == 1
    page_ = (tmp_path / "threeway.html").read_text()
    tables = page_.split("<img")[0]  # the plots are base64 PNG
    assert "miss" in tables and "nan" not in tables.lower()


def test_a_written_comparison_reads_back_into_the_same_rows(tmp_path: Path) -> None:
    from twin.mirror.compare import render_markdown, rows_from_json

    shadow, twin = Arm(100, 90, 0.100, 0.080, 0.200), Arm(100, 86, 0.090, 0.071, 0.250)
    rows = [Row("slow", "delay", "latency", "n", PROD, shadow, twin, judge(PROD, shadow, twin)),
            Row("dead", "error", "error_rate", "n", PROD, Arm(5, 0), twin,
                judge(PROD, Arm(5, 0), twin))]  # fmt: skip
    write(tmp_path, {"rows": [r.to_json() for r in rows], "summary": summarise(rows)}, rows,
          Tolerance())  # fmt: skip
    back = rows_from_json(json.loads((tmp_path / "threeway.json").read_text()))
    assert back == rows
    table = (tmp_path / "threeway.md").read_text()
    assert table == render_markdown(rows)
    assert "| slow | latency | 100 / 100 | 80.0 ms / 100.0 ms / 90.0 ms | 90.0% |" in table
    assert "| dead |" in table and "miss *" in table
