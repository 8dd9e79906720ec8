"""Documents hold bounded, meaningful values: finite numbers within documented ranges, strict
counts, names that cannot be misread, distributions the samplers handle, and cross-field rules.

Hostile values are refused with one located line (through ``twin check``/``twin campaign``
and at the model level); everything the repository ships still loads.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_twin
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from twin import bounds
from twin.campaign.generate import load_campaign
from twin.distributions import Constant, Exponential, Gamma, LogNormal, Uniform
from twin.errors import InputError
from twin.faults import KINDS, scale_fault
from twin.policy import Policy
from twin.refdoc import SECTIONS
from twin.scenario import Load, Scenario
from twin.topology import Topology

TOPOLOGY = """\
name: shop
hosts:
  node-1: {cores: 2, zone: z1}
services:
  front:
    replicas: 2
    workers: 2
    operations:
      default:
        service_time: {dist: exponential, mean: 0.01}
        calls: [{to: db, count: 1}]
  db:
    replicas: 1
    workers: 2
    host: node-1
    operations:
      default:
        service_time: {dist: gamma, mean: 0.004, cv: 0.5}
workload:
  - {entry: front, rate: 5}
"""

SCENARIO = """\
duration: 30
warmup: 5
window: 1
load: {multiplier: 1.0}
faults:
  - {kind: latency, target: db, start: 10, duration: 5, delay: 0.1}
"""

POLICY = """\
clients:
  "*": {timeout: 1.0, retries: {max: 2}}
services:
  db: {queue_limit: 10}
"""

GOOD = {"topology": TOPOLOGY, "scenario": SCENARIO, "policy": POLICY}


def edit(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not in the document"
    return text.replace(old, new, 1)


def line_of(text: str, marker: str) -> int:
    for i, line in enumerate(text.splitlines(), start=1):
        if marker in line:
            return i
    raise AssertionError(f"{marker!r} not in the document")


def write(tmp_path: Path, docs: dict[str, str]) -> dict[str, Path]:
    paths = {}
    for name, text in docs.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(text, encoding="utf-8")
        paths[name] = p
    return paths


def the_one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Refused: exit 2, one line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- hostile values through the command line -------------------------------------------------

# (document, text replaced, replacement, path the error names, marker of the line, words)
CLI_CASES: dict[str, tuple[str, str, str, str, str, str]] = {
    "infinite rate": ("topology", "rate: 5", "rate: .inf", "workload[0].rate", "rate:", "finite"),
    "nan service time": (
        "topology",
        "mean: 0.01}",
        "mean: .nan}",
        "services.front.operations.default.service_time.mean",
        "mean: .nan",
        "finite",
    ),
    "replicas true": (
        "topology",
        "replicas: 2",
        "replicas: true",
        "services.front.replicas",
        "replicas: true",
        "integer",
    ),
    "a billion replicas": (
        "topology",
        "replicas: 2",
        "replicas: 1000000000",
        "services.front.replicas",
        "replicas: 1000000000",
        "10000",
    ),
    "a billion calls": (
        "topology",
        "count: 1",
        "count: 1000000000",
        "services.front.operations.default.calls[0].count",
        "count: 1000000000",
        "1000",
    ),
    "gamma cv 1e-300": (
        "topology",
        "cv: 0.5",
        "cv: 1.0e-300",
        "services.db.operations.default.service_time.cv",
        "cv: 1.0e-300",
        "greater than or equal",
    ),
    "service named star": ("topology", "  db:\n", '  "*":\n', "services.*", '"*":', "wildcard"),
    "service named edge": ("topology", "  db:\n", '  "x->y":\n', "services.x->y", "x->y", "edge"),
    "service named svc:op": ("topology", "  db:\n", '  "c:op":\n', "services.c:op", "c:op", "':'"),
    "empty service name": ("topology", "  db:\n", '  "":\n', "services.", '"":', "empty"),
    "infinite duration": (
        "scenario",
        "duration: 30",
        "duration: .inf",
        "duration",
        "dur",
        "finite",
    ),
    "a billion-fold load": (
        "scenario",
        "multiplier: 1.0",
        "multiplier: 1.0e9",
        "load.multiplier",
        "multiplier",
        "1000",
    ),
    "multiplier with profile": (
        "scenario",
        "load: {multiplier: 1.0}",
        "load: {multiplier: 2.0, profile: [{at: 0, multiplier: 1}]}",
        "load",
        "load:",
        "not both",
    ),
    "microsecond window": ("scenario", "window: 1", "window: 1.0e-6", "window", "window", "0.01"),
    "fault after the end": (
        "scenario",
        "start: 10",
        "start: 30",
        "faults[0].start",
        "start: 30",
        "after the end",
    ),
    "infinite delay": (
        "scenario",
        "delay: 0.1",
        "delay: .inf",
        "faults[0].delay",
        "delay",
        "finite",
    ),
    "outage of 50 replicas on 1": (
        "scenario",
        "{kind: latency, target: db, start: 10, duration: 5, delay: 0.1}",
        "{kind: outage, target: db, start: 10, duration: 5, replicas: 50}",
        "faults[0].replicas",
        "outage",
        "has 1",
    ),
    "leak restarting at once": (
        "scenario",
        "{kind: latency, target: db, start: 10, duration: 5, delay: 0.1}",
        "{kind: memory_leak, target: db, start: 10, growth_mb_per_s: 1.0e300, restart_time: 0}",
        "faults[0].growth_mb_per_s",
        "memory_leak",
        "less than or equal",
    ),
    "fault sampled every nanosecond": (
        "scenario",
        "delay: 0.1}",
        "delay: 0.1, sample: {interval: 1.0e-9, duration: 0.1}}",
        "faults[0].sample",
        "sample",
        "interval",
    ),
    "surge of 1e12": (
        "scenario",
        "{kind: latency, target: db, start: 10, duration: 5, delay: 0.1}",
        "{kind: traffic_surge, target: front, start: 10, rate: 1.0e12}",
        "faults[0].rate",
        "traffic_surge",
        "1000000",
    ),
    "infinite timeout": (
        "policy",
        "timeout: 1.0",
        "timeout: .inf",
        "clients.*.timeout",
        "timeout",
        "finite",
    ),
    "policy client key with bad name": (
        "policy",
        '"*": {timeout',
        '"a:b->db": {timeout',
        "clients.a:b->db",
        "a:b->db",
        "':'",
    ),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_hostile_value_is_refused_by_twin_check_with_one_located_line(
    case: str, tmp_path: Path
) -> None:
    doc, old, new, path, marker, words = CLI_CASES[case]
    docs = dict(GOOD)
    docs[doc] = edit(GOOD[doc], old, new)
    p = write(tmp_path, docs)
    proc = run_twin(
        "check", str(p["topology"]), "--scenario", str(p["scenario"]), "--policy", str(p["policy"])
    )
    line = the_one_line(proc)
    head = f"twin: error: {p[doc]}:{line_of(docs[doc], marker)}: {path}: "
    assert line.startswith(head), (head, line)
    assert words in line, line


def test_good_documents_pass_twin_check(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    proc = run_twin(
        "check", str(p["topology"]), "--scenario", str(p["scenario"]), "--policy", str(p["policy"])
    )
    assert proc.returncode == 0, proc.stderr
    assert "inf" not in proc.stdout and "%" in proc.stdout


def test_infinite_duration_option_is_refused_naming_the_command_line(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    out = tmp_path / "out"
    proc = run_twin(
        "simulate",
        str(p["topology"]),
        "--scenario",
        str(p["scenario"]),
        "--duration",
        "inf",
        "--out",
        str(out),
    )
    line = the_one_line(proc)
    assert "duration" in line and "finite" in line, line
    assert not out.exists()


def _chain(n: int, count: int) -> str:
    """A chain of ``n`` services in which each call is made ``count`` times."""
    services = {}
    for i in range(n):
        op: dict[str, Any] = {"service_time": 0.001}
        if i + 1 < n:
            op["calls"] = [{"to": f"s{i + 1}", "count": count}]
        services[f"s{i}"] = {"operations": {"default": op}}
    return yaml.safe_dump(
        {"name": "chain", "services": services, "workload": [{"entry": "s0", "rate": 1.0e6}]}
    )


def test_calls_compounding_past_any_finite_rate_are_refused_so_check_never_prints_inf(
    tmp_path: Path,
) -> None:
    # 1e6 rps x 1000^k overflows a float after about 102 hops, each count within its range
    p = tmp_path / "chain.yaml"
    p.write_text(_chain(110, bounds.MAX_CALL_COUNT), encoding="utf-8")
    line = the_one_line(run_twin("check", str(p)))
    assert "finite rate" in line and "inf%" not in line, line
    # the same chain with fewer hops is valid: the refusal is about overflow, not length
    Topology.from_dict(yaml.safe_load(_chain(40, bounds.MAX_CALL_COUNT)))


# -- campaign documents -----------------------------------------------------------------------

CAMPAIGN = """\
name: c
topology: topology.yaml
duration: 60
warmup: 10
window: 5
grid:
  faults:
    - {kind: error_rate, targets: [db], intensities: [0.3]}
  loads: [1.0]
"""

CAMPAIGN_CASES = {
    "error intensity 3": ("intensities: [0.3]", "intensities: [3]", "grid.faults[0].intensities"),
    "no loads": ("loads: [1.0]", "loads: []", "grid.loads"),
    "infinite duration": ("duration: 60", "duration: .inf", "duration"),
    "fault start after the end": ("window: 5", "window: 5\nfault_start: 90", "fault_start"),
    "sampled intensities out of range": (
        "grid:\n  faults:\n    - {kind: error_rate, targets: [db], intensities: [0.3]}\n"
        "  loads: [1.0]\n",
        "sample: {count: 2, intensity: {error_rate: {low: 0.5, high: 2}}}\n",
        "sample.intensity",
    ),
}


@pytest.mark.parametrize("case", sorted(CAMPAIGN_CASES))
def test_hostile_campaign_value_is_refused_with_one_located_line(case: str, tmp_path: Path) -> None:
    old, new, path = CAMPAIGN_CASES[case]
    write(tmp_path, {"topology": TOPOLOGY})
    spec = tmp_path / "campaign.yaml"
    text = edit(CAMPAIGN, old, new)
    spec.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_campaign(spec)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{spec}:"), message
    assert f": {path}" in message, message


def test_campaign_error_intensity_above_one_exits_2_before_any_output(tmp_path: Path) -> None:
    write(tmp_path, {"topology": TOPOLOGY})
    spec = tmp_path / "campaign.yaml"
    spec.write_text(edit(CAMPAIGN, "intensities: [0.3]", "intensities: [3]"), encoding="utf-8")
    out = tmp_path / "out"
    line = the_one_line(run_twin("campaign", str(spec), "--out", str(out)))
    assert "intensity 3" in line and "[0, 1]" in line, line
    assert not out.exists()


def test_campaign_intensities_at_the_ends_of_a_kinds_range_are_accepted(tmp_path: Path) -> None:
    write(tmp_path, {"topology": TOPOLOGY})
    spec = tmp_path / "campaign.yaml"
    spec.write_text(edit(CAMPAIGN, "intensities: [0.3]", "intensities: [0, 1]"), encoding="utf-8")
    plan = load_campaign(spec)
    assert len(plan.scenarios) == 3  # two intensities and the baseline


# -- model level -------------------------------------------------------------------------------


def _refused(model: type[BaseModel], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    return str(err.value.errors()[0]["msg"])


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "nan", "inf"])
@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (Scenario, {}, "duration"),
        (Scenario, {}, "warmup"),
        (Load, {}, "multiplier"),
        (Exponential, {}, "mean"),
        (Gamma, {"mean": 1.0}, "cv"),
        (Uniform, {"low": 0.0}, "high"),
        (Policy, {}, "clients"),
    ],
)
def test_non_finite_numbers_are_refused_as_such(
    model: type[BaseModel], data: dict[str, Any], field: str, value: Any
) -> None:
    if model is Policy:  # a nested number: the timeout of the wildcard edge
        data = {"clients": {"*": {"timeout": value}}}
    else:
        data = {**data, field: value}
    assert "finite" in _refused(model, data)


@pytest.mark.parametrize("value", [True, False, 2.0, "3"])
def test_counts_are_strict_integers(value: Any) -> None:
    doc = yaml.safe_load(TOPOLOGY)
    doc["services"]["front"]["replicas"] = value
    with pytest.raises(InputError) as err:
        Topology.from_dict(doc)
    assert "services.front.replicas" in str(err.value)


def test_numpy_integers_are_integers() -> None:
    doc = yaml.safe_load(TOPOLOGY)
    doc["services"]["front"]["replicas"] = np.int64(3)
    assert Topology.from_dict(doc).services["front"].replicas == 3


@pytest.mark.parametrize("bad", ["", "*", "a*", "x->y", "c:op", " a", "a ", "a\nb", "x" * 201])
@pytest.mark.parametrize("where", ["service", "operation", "host", "zone"])
def test_names_that_could_be_misread_are_refused(where: str, bad: str) -> None:
    doc = yaml.safe_load(TOPOLOGY)
    if where == "service":
        doc["services"][bad] = doc["services"].pop("db")
        doc["services"]["front"]["operations"]["default"]["calls"] = []
    elif where == "operation":
        doc["services"]["db"]["operations"] = {bad: doc["services"]["db"]["operations"]["default"]}
        doc["services"]["front"]["operations"]["default"]["calls"] = []
    elif where == "host":
        doc["hosts"] = {bad: doc["hosts"]["node-1"]}
        del doc["services"]["db"]["host"]
    else:
        doc["hosts"]["node-1"]["zone"] = bad
    with pytest.raises(InputError) as err:
        Topology.from_dict(doc)
    assert "name" in str(err.value)


@pytest.mark.parametrize("good", ["db-1", "cart_v2", "GET /api/items", "hipstershop.Cart", "é"])
def test_ordinary_names_are_accepted(good: str) -> None:
    assert bounds.name_problem(good) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_safe_name_turns_any_text_into_a_valid_name(raw: str) -> None:
    assert bounds.name_problem(bounds.safe_name(raw)) is None


def test_a_valid_name_is_kept_by_safe_name() -> None:
    for name in ("frontend", "GET /cart", "redis-cart"):
        assert bounds.safe_name(name) == name


def test_fault_targets_refuse_parts_that_are_not_names() -> None:
    for target in ("a->b->c", "*", "", "host:"):
        msg = _refused(
            Scenario,
            {"faults": [{"kind": "error_rate", "target": target, "probability": 0.1}]},
        )
        assert "name" in msg, (target, msg)


def test_outage_on_a_host_may_take_as_many_replicas_as_its_largest_service() -> None:
    topo = Topology.from_dict(yaml.safe_load(TOPOLOGY))  # db, 1 replica, is on node-1
    ok = Scenario.model_validate(
        {"faults": [{"kind": "outage", "target": "host:node-1", "replicas": 1}]}
    )
    ok.check_against(topo)
    too_many = Scenario.model_validate(
        {"faults": [{"kind": "outage", "target": "zone:z1", "replicas": 2}]}
    )
    with pytest.raises(InputError) as err:
        too_many.check_against(topo)
    assert "faults[0].replicas" in str(err.value)


def test_profile_beside_the_default_multiplier_still_round_trips() -> None:
    load = Load.model_validate({"profile": [{"at": 5.0, "multiplier": 2.0}]})
    again = Load.model_validate(load.model_dump())
    assert again == load and again.steps() == [(0.0, 1.0), (5.0, 2.0)]


# -- distributions at the edges of their ranges --------------------------------------------------

N = 200_000


def _draws(dist: Any, seed: int = 7) -> np.ndarray:
    return np.asarray(dist._block(np.random.default_rng(seed), N))


@pytest.mark.parametrize("cv", [bounds.MIN_CV, 1.0, bounds.MAX_CV_GAMMA])
def test_gamma_at_the_edges_of_its_cv_range_samples_finite_draws_with_its_mean(cv: float) -> None:
    x = _draws(Gamma(mean=2.0, cv=cv))
    assert np.isfinite(x).all() and (x >= 0).all()
    se = 2.0 * cv / math.sqrt(N)
    assert abs(x.mean() - 2.0) < 6 * se + 1e-12


@pytest.mark.parametrize("cv", [bounds.MIN_CV, 1.0, bounds.MAX_CV_LOGNORMAL])
def test_lognormal_at_the_edges_of_its_cv_range_samples_finite_draws_with_its_log_moments(
    cv: float,
) -> None:
    d = LogNormal(mean=0.5, cv=cv)
    x = _draws(d)
    assert np.isfinite(x).all() and (x > 0).all()
    s2 = math.log1p(cv**2)
    logs = np.log(x)
    sigma = math.sqrt(s2)
    assert abs(logs.mean() - (math.log(0.5) - s2 / 2)) < 6 * sigma / math.sqrt(N)
    assert abs(logs.std() / sigma - 1) < 0.02


@pytest.mark.parametrize("mean", [bounds.MIN_DIST_MEAN, bounds.MAX_DIST_VALUE])
def test_positive_means_at_the_edges_sample_finite_positive_draws(mean: float) -> None:
    for dist in (
        Exponential(mean=mean),
        Gamma(mean=mean, cv=bounds.MAX_CV_GAMMA),
        LogNormal(mean=mean, cv=bounds.MAX_CV_LOGNORMAL),
    ):
        x = _draws(dist)
        assert np.isfinite(x).all() and x.max() > 0, dist


@pytest.mark.parametrize(
    ("dist", "cv"), [("gamma", 1e-300), ("gamma", 11.0), ("lognormal", 1e300), ("lognormal", 0.0)]
)
def test_cv_outside_what_the_samplers_handle_is_refused(dist: str, cv: float) -> None:
    model = Gamma if dist == "gamma" else LogNormal
    msg = _refused(model, {"mean": 1.0, "cv": cv})
    assert "than or equal" in msg


def test_scaling_keeps_a_distribution_within_its_range() -> None:
    assert Exponential(mean=1.0).scaled(0.0).mean == bounds.MIN_DIST_MEAN
    assert Constant(mean=1e9).scaled(1e9).mean == bounds.MAX_DIST_VALUE
    assert LogNormal(mean=0.2, cv=0.5).scaled(3.0) == LogNormal(mean=0.2 * 3.0, cv=0.5)


# -- scaled fault intensities ------------------------------------------------------------------


def _fault(kind: str, **fields: Any) -> Any:
    sc = Scenario.model_validate({"faults": [{"kind": kind, "target": "front", **fields}]})
    return sc.faults[0]


def test_a_scaled_intensity_stays_within_its_fields_range() -> None:
    surge = scale_fault(_fault("traffic_surge", rate=bounds.MAX_RATE), 1_000.0)
    assert surge.rate == bounds.MAX_RATE
    cpu = scale_fault(_fault("cpu_exhaustion", factor=500.0), 10.0)
    assert cpu.factor == bounds.MAX_FACTOR
    leak = scale_fault(_fault("memory_leak", growth_mb_per_s=5.0), 0.0)
    assert 0.0 < leak.growth_mb_per_s <= 5.0
    bw = scale_fault(_fault("bandwidth", bytes_per_second=1e3), 0.0)
    assert bw.bytes_per_second == bounds.MAX_BYTES
    # within range, scaling is plain multiplication (results of valid runs are unchanged)
    assert scale_fault(_fault("cpu_exhaustion", factor=2.0), 1.5).factor == 3.0


def test_every_kinds_intensity_range_is_finite() -> None:
    for name, cls in KINDS.items():
        assert math.isfinite(cls.intensity.high), name


# -- every numeric field has a documented range -------------------------------------------------

DOCUMENT_SECTIONS = [models for title, models in SECTIONS if not title.startswith("Results")]


def _numeric(info: Any) -> bool:
    text = str(info.annotation)
    return "float" in text or "int" in text


def test_every_numeric_document_field_has_a_documented_lower_and_upper_bound() -> None:
    from twin.refdoc import _limits

    missing = []
    for models in DOCUMENT_SECTIONS:
        for model in models:
            for name, info in model.model_fields.items():
                if not _numeric(info):
                    continue
                limits = _limits(info)
                has_low = ">" in limits
                has_high = "<" in limits
                if not (has_low and has_high) and not _bounded_elsewhere(model, name):
                    missing.append(f"{model.__name__}.{name}: {limits!r}")
    assert missing == [], missing


def _bounded_elsewhere(model: type[BaseModel], name: str) -> bool:
    """Fields whose range is a validator's (documented in the model's docstring)."""
    from twin.campaign.spec import FaultSweep, History, RandomSample, Range

    return (model, name) in {
        (FaultSweep, "intensities"),  # each kind's own range
        (FaultSweep, "params"),  # the fault's own fields
        (History, "intensities"),
        (Range, "low"),  # within the kind's range, or the load's
        (Range, "high"),
        (RandomSample, "intensity"),
    }


def test_reference_states_the_name_rule_and_the_limits() -> None:
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert bounds.NAME_RULE in text
    assert "<= 10000, strict" in text  # replicas


# -- nothing the repository ships is refused -------------------------------------------------------


def test_every_bundled_document_and_the_shipped_campaign_still_load() -> None:
    for topo_path in sorted((ROOT / "topologies").glob("*.yaml")):
        if topo_path.name.endswith((".scenario.yaml", ".policy.yaml")):
            continue
        topo = Topology.load(topo_path)
        stem = str(topo_path)[: -len(".yaml")]
        Scenario.load_file(f"{stem}.scenario.yaml").check_against(topo)
        Policy.load_file(f"{stem}.policy.yaml").check_against(topo)
    for spec in sorted((ROOT / "experiments").glob("*campaign*.yaml")):
        assert load_campaign(spec).scenarios
