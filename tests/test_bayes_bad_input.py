"""Bad evidence gives one clear line naming the file, the row and the column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from twin.bayes.evidence import parse_horizon, read_history
from twin.bayes.runs import build_impact, read_chaos, read_runs
from twin.cli import app
from twin.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_negative_exposure_names_file_row_and_column(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "counts.csv",
        "service,fault_kind,incidents,exposure_days\ncart,outage,1,30\ncart,latency,0,-3\n",
    )
    with pytest.raises(InputError) as e:
        read_history(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: column exposure_days: ")
    assert "negative" in msg and "\n" not in msg


def test_unknown_service_names_file_line_and_column(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "log.csv",
        "time,service,fault_kind,duration\n"
        "2024-01-01T00:00:00Z,cart,outage,10m\n"
        "2024-01-05T00:00:00Z,payments-v2,latency,5m\n",
    )
    with pytest.raises(InputError) as e:
        read_history(p, services=["cart", "frontend"])
    assert str(e.value).startswith(f"{p}:3: column service: unknown service 'payments-v2'")


def test_empty_history_is_refused(tmp_path: Path) -> None:
    for text in ("time,service,fault_kind\n", ""):
        p = _write(tmp_path / "empty.csv", text)
        with pytest.raises(InputError, match="empty history"):
            read_history(p)
    j = _write(tmp_path / "empty.json", json.dumps({"incidents": []}))
    with pytest.raises(InputError, match="empty history"):
        read_history(j)


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("yesterday-ish,cart,outage,5m", "time", "expected a date"),
        ("2024-01-02,cart,meteor,5m", "fault_kind", "unknown fault kind"),
        ("2024-01-02,cart,outage,-5", "duration", "must be >= 0"),
        ("2024-01-02,cart,outage,soon", "duration", "not a duration"),
    ],
)
def test_bad_incident_fields_name_their_column(
    tmp_path: Path, row: str, column: str, words: str
) -> None:
    p = _write(
        tmp_path / "log.csv",
        "time,service,fault_kind,duration\n2024-01-01,cart,outage,5m\n" + row + "\n",
    )
    with pytest.raises(InputError) as e:
        read_history(p)
    assert str(e.value).startswith(f"{p}:3: column {column}: ")
    assert words in str(e.value)


def test_symptom_without_a_recognisable_kind_is_refused(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "log.csv",
        "time,service,symptom\n2024-01-01,cart,OOM kills\n2024-01-03,cart,something odd\n",
    )
    with pytest.raises(InputError, match=r":3: column symptom: cannot tell the fault kind"):
        read_history(p)


def test_campaign_dir_without_runs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no runs\.parquet"):
        read_runs(tmp_path)


def test_runs_without_outcome_columns_are_refused() -> None:
    runs = pd.DataFrame(
        {
            "fault_kind": ["outage"],
            "target": ["a"],
            "intensity": [1.0],
            "load": [1.0],
            "policy": ["none"],
        }
    )
    with pytest.raises(InputError, match="missing SLO outcome columns"):
        build_impact(runs, source="runs.parquet")


def test_missing_chaos_file_and_bad_horizon_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_chaos(str(tmp_path / "nope.csv"))
    with pytest.raises(InputError, match="database file not found"):
        read_chaos(f"sqlite:///{tmp_path / 'nope.db'}")
    assert not (tmp_path / "nope.db").exists()  # and none was created
    with pytest.raises(InputError, match="--horizon"):
        parse_horizon("next month")
    assert parse_horizon("2w") == 14.0
    assert parse_horizon("12h") == 0.5


def test_cli_bad_input_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    camp.mkdir()
    pd.DataFrame(
        {
            "fault_kind": ["outage"],
            "target": ["cart"],
            "intensity": [1.0],
            "load": [1.0],
            "policy": ["none"],
            "slo_breached": [True],
        }
    ).to_parquet(camp / "runs.parquet")
    hist = _write(
        tmp_path / "counts.csv", "service,fault_kind,incidents,exposure_days\ncart,outage,2,-1\n"
    )
    r = CliRunner().invoke(
        app, ["risk", "--history", str(hist), "--results", str(camp), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.startswith("twin: error:")]
    assert len(lines) == 1
    assert f"{hist}:2: column exposure_days" in lines[0]
    assert not (tmp_path / "o" / "risk.json").exists()


def _campaign(tmp_path: Path, drop: str | None = None) -> Path:
    camp = tmp_path / "camp"
    camp.mkdir(exist_ok=True)
    runs = pd.DataFrame(
        {
            "scenario": ["s1", "s2"],
            "policy": ["none", "none"],
            "replication": [0, 0],
            "seed": [1, 2],
            "requests": [100, 100],
            "succeeded": [90, 100],
            "failed": [10, 0],
            "latency_p99": [0.5, 0.1],
            "fault_kind": ["outage", "latency"],
            "target": ["cart", "cart"],
            "intensity": [1.0, 0.2],
            "load": [1.0, 1.0],
            "slo_breached": [True, False],
        }
    )
    if drop:
        runs = runs.drop(columns=[drop])
    runs.to_parquet(camp / "runs.parquet")
    return camp


@pytest.mark.parametrize(
    ("history", "drop", "words"),
    [
        ("service,fault_kind,incidents,exposure_days\ncart,outage,1,30\n", "target", "'target'"),
        ("service,fault_kind,incidents,exposure_days\ncart,outage,1,30\n", "load", "'load'"),
        ("time,service,fault_kind\n", None, "empty history"),
        (
            "service,fault_kind,incidents,exposure_days\nbasket,outage,1,30\n",
            None,
            "column service: unknown service 'basket'",
        ),
    ],
)
def test_cli_names_the_file_and_column_exits_2_and_keeps_earlier_results(
    tmp_path: Path, history: str, drop: str | None, words: str
) -> None:
    camp = _campaign(tmp_path, drop)
    hist = _write(tmp_path / "history.csv", history)
    out = tmp_path / "o"
    out.mkdir()
    (out / "risk.json").write_text('{"earlier": true}', encoding="utf-8")
    r = CliRunner().invoke(
        app, ["risk", "--history", str(hist), "--results", str(camp), "--out", str(out)]
    )
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("twin: error:")]
    assert len(lines) == 1
    assert words in lines[0]
    named = str(camp / "runs.parquet") if drop else str(hist)
    assert named in lines[0]
    assert (out / "risk.json").read_text(encoding="utf-8") == '{"earlier": true}'
