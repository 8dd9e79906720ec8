"""Evidence becomes tidy frames: periods and exposure, campaign runs, chaos results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from twin.bayes import synthetic
from twin.bayes.evidence import read_history
from twin.bayes.risk import rpn, summarize
from twin.bayes.runs import build_impact, chaos_runs, read_chaos

pytestmark = pytest.mark.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]


def _sample_log(tmp_path: Path) -> Path:
    p = tmp_path / "incidents.csv"
    synthetic.incident_log(seed=7).to_csv(p, index=False)
    return p


def test_incident_log_becomes_counts_with_every_service_exposed_for_the_window(
    tmp_path: Path,
) -> None:
    h = read_history(_sample_log(tmp_path), services=synthetic.ONLINE_BOUTIQUE, period_days=30)
    c = h.counts
    assert list(c.columns) == ["service", "fault_kind", "period", "incidents", "exposure_days"]
    assert int(c["incidents"].sum()) == len(h.incidents)
    span = (h.incidents["time"].max() - h.incidents["time"].min()).total_seconds() / 86400
    per_cell = c.groupby(["service", "fault_kind"])["exposure_days"].sum()
    assert per_cell.to_numpy() == pytest.approx(span)
    assert set(c["service"]) == set(synthetic.ONLINE_BOUTIQUE)
    assert h.incidents["duration_minutes"].notna().all()


def test_synthetic_log_says_so_and_is_reproducible(tmp_path: Path) -> None:
    df = pd.read_csv(_sample_log(tmp_path))
    assert df["note"].str.startswith("SYNTHETIC").all()
    again = synthetic.incident_log(seed=7)
    assert again[["time", "service", "fault_kind"]].equals(df[["time", "service", "fault_kind"]])
    other = synthetic.incident_log(seed=8)
    assert not other[["time", "service"]].equals(df[["time", "service"]])


def test_symptoms_are_classified_like_the_campaign_does(tmp_path: Path) -> None:
    p = tmp_path / "log.csv"
    p.write_text(
        "time,service,symptom,duration\n"
        "2024-01-01,cart,OOM kills after deploy,00:20:00\n"
        "2024-02-01,cart,p99 latency degraded,PT15M\n",
        encoding="utf-8",
    )
    h = read_history(p)
    assert list(h.incidents["fault_kind"]) == ["memory_leak", "latency"]
    assert list(h.incidents["duration_minutes"]) == [20.0, 15.0]


def test_campaign_runs_become_binomial_rows_per_slo() -> None:
    runs, _ = synthetic.impact_runs(["a", "b"], ["latency", "outage"], replications=3)
    imp = build_impact(runs, source="runs.parquet", slo={"availability": 0.999})
    rows = imp.rows
    assert set(rows["slo"]) == {"any", "availability", "latency_p99"}
    for _, g in rows.groupby("slo"):
        assert int(g["trials"].sum()) == len(runs)
    any_rows = rows[rows["slo"] == "any"]
    assert int(any_rows["breaches"].sum()) == int(runs["slo_breached"].sum())
    assert imp.policies == ["none", "retries", "breaker"]


def _chaos_table(url: str) -> None:
    """The failure-mode database's ``chaos_results`` table (issue 5's store), narrowed to
    the columns the risk reader uses, written with plain SQLAlchemy."""
    import sqlalchemy as sa

    md = sa.MetaData()
    t = sa.Table(
        "chaos_results",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("test_id", sa.String(500)),
        sa.Column("parameters", sa.JSON),
        sa.Column("faults", sa.JSON),
        sa.Column("fault_kinds", sa.JSON),
        sa.Column("passed", sa.Boolean),
    )
    engine = sa.create_engine(url)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            t.insert(),
            [
                {
                    "test_id": "t1",
                    "parameters": {"intensity": 0.5},
                    "faults": [{"type": "latency", "target": "cart"}],
                    "fault_kinds": ["latency"],
                    "passed": False,
                },
                {
                    "test_id": "t2",
                    "parameters": {},
                    "faults": [{"type": "pod-kill", "target": "cart"}],
                    "fault_kinds": ["outage"],
                    "passed": True,
                },
            ],
        )
    engine.dispose()


def test_chaos_results_from_the_failure_mode_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twin.db'}"
    _chaos_table(url)
    frame, where = read_chaos(url)
    assert where.endswith("#chaos_results")
    assert list(frame["fault_kind"]) == ["latency", "outage"]
    assert list(frame["slo_breached"]) == [True, False]
    runs, _ = synthetic.impact_runs(["cart"], ["latency", "outage"], replications=1)
    imp = build_impact(runs, source="runs", real=[(frame, where)])
    real = imp.rows[imp.rows["source"] == "real"]
    assert int(real["trials"].sum()) == 2
    assert int(real["breaches"].sum()) == 1
    assert set(real["policy"]) == {"none"}  # the policy in force: the campaign's first


def test_chaos_rows_with_several_kinds_are_left_out() -> None:
    frame = pd.DataFrame(
        {
            "fault_kinds": [["latency", "outage"]],
            "faults": [[{"target": "a"}]],
            "parameters": [{}],
            "passed": [False],
            "test_id": ["x"],
        }
    )
    out = chaos_runs(frame)
    assert out["fault_kind"].iloc[0] == "latency+outage"


def test_rpn_and_summary_helpers() -> None:
    assert rpn(1.0, 10.0, "data_corruption") == {
        "rpn": 10 * 7 * 8,
        "severity": 10,
        "occurrence": 7,
        "detection": 8,
    }
    assert rpn(0.0, 0.0, "outage")["rpn"] == 1 * 1 * 2
    s = summarize(pd.Series(range(101)).to_numpy(float))
    assert s == pytest.approx({"mean": 50.0, "lo": 5.0, "hi": 95.0})
