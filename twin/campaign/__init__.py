"""Fault campaigns: many scenarios x policies x replications, run anywhere, resumable.

A campaign document lists or generates scenarios (explicit lists, grids, seeded random
samples, and scenarios drawn from an incident log). Every (scenario, policy, replication)
is one *run* whose id is a hash of everything that decides its result, so:

- the same campaign gives the same rows on local processes or on a Dask cluster (a run is a
  pure function of its inputs, and replication ``r`` uses the r-th seed spawned from the
  campaign seed under every scenario and policy: common random numbers, which sharpen
  comparisons between policies);
- each finished run is written at once as its own Parquet part file (atomically), so a
  killed campaign resumes where it stopped and never redoes or double-counts a run;
- the consolidated ``runs.parquet`` has one row per run and a fixed schema DuckDB reads.

Analysis turns runs into per-scenario figures with 95% intervals, failure modes (trigger,
effect, evidence) and recommended mitigations for :mod:`twin.store`.
"""

from twin.campaign.execute import (
    CURVE_FIELDS,
    SCHEMA,
    VOLATILE,
    Emit,
    execute_run,
    finished_rows,
    run_dask,
    run_local,
)
from twin.campaign.generate import (
    Plan,
    PlannedScenario,
    RunTask,
    build_plan,
    expand_targets,
    fault_intensity,
    load_campaign,
    make_fault,
    parse_duration,
    read_incidents,
)
from twin.campaign.report import write_report
from twin.campaign.run import (
    Outcome,
    run_campaign,
)
from twin.campaign.spec import (
    AFFECTED_SHARE,
    DEFAULT_INTENSITY,
    DEFAULT_RANGE,
    LOWER_IS_WORSE,
    ROW_VERSION,
    Campaign,
    FaultSweep,
    Grid,
    History,
    RandomSample,
    Range,
    ScenarioItem,
)
from twin.campaign.tables import (
    METRICS,
    aggregate,
    failure_modes,
    mitigations,
)
from twin.incidents import classify
from twin.scenario import FaultKind

__all__ = [
    "AFFECTED_SHARE",
    "CURVE_FIELDS",
    "DEFAULT_INTENSITY",
    "DEFAULT_RANGE",
    "LOWER_IS_WORSE",
    "METRICS",
    "ROW_VERSION",
    "SCHEMA",
    "VOLATILE",
    "Campaign",
    "Emit",
    "FaultKind",
    "FaultSweep",
    "Grid",
    "History",
    "Outcome",
    "Plan",
    "PlannedScenario",
    "RandomSample",
    "Range",
    "RunTask",
    "ScenarioItem",
    "aggregate",
    "build_plan",
    "classify",
    "execute_run",
    "expand_targets",
    "failure_modes",
    "fault_intensity",
    "finished_rows",
    "load_campaign",
    "make_fault",
    "mitigations",
    "parse_duration",
    "read_incidents",
    "run_campaign",
    "run_dask",
    "run_local",
    "write_report",
]
