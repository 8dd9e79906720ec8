"""The work budget: a run's work and memory estimated before it starts, refused above the budget
in one line, and an unstable run stopped with a verdict instead of exhausting memory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import ROOT
from test_safe_load import PEAK_RSS_MB, refused_in_one_line, twin_bounded

from twin.errors import InputError
from twin.policy import Policy
from twin.replicate import combine, run_replications
from twin.scenario import Scenario
from twin.sim import Simulation
from twin.sim.budget import Budget, CallGraph, check_run, estimate, fluid_estimate
from twin.sim.fluid import FluidSimulation, erlang_c
from twin.topology import Topology

BUNDLED = ("online-boutique", "sock-shop", "teastore", "deathstarbench-social")
SMALL = Budget(max_requests=10**8, max_memory=8 * 2**20)
"""A memory budget small enough for an unstable run to reach it within seconds."""


def bundled(name: str) -> tuple[Topology, Policy]:
    topo = Topology.load(ROOT / "topologies" / f"{name}.yaml")
    return topo, Policy.load_file(ROOT / "topologies" / f"{name}.policy.yaml")


def chain(rho: float, *, blocking: bool = False, rate: float = 200.0) -> Topology:
    """front -> mid -> back; ``mid`` (2 workers) is offered ``rho``, the others 10% or less."""

    def svc(mean: float, to: str | None) -> dict[str, object]:
        op: dict[str, object] = {"service_time": {"dist": "exponential", "mean": mean}}
        if to:
            op["calls"] = [{"to": to}]
        return {"workers": 2, "blocking": blocking, "operations": {"default": op}}

    return Topology.from_dict(
        {
            "name": "chain",
            "services": {
                "front": svc(0.2 / rate, "mid"),
                "mid": svc(2 * rho / rate, "back"),
                "back": svc(0.2 / rate, None),
            },
            "workload": [{"entry": "front", "rate": rate}],
        }
    )


# -- the estimate ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLED)
def test_estimated_requests_match_the_engine_count_within_poisson_noise(name: str) -> None:
    """Entry requests are Poisson: the engine's count is within 5 standard deviations of the
    estimate; service requests (calls included) follow with the same relative tolerance plus
    2% for the calls' own probabilities and the retries of a healthy run."""
    topo, pol = bundled(name)
    sc = Scenario(duration=120.0, seed=3)
    est = estimate(topo, sc, pol)
    s = Simulation(topo, sc, pol).run().summary
    tol = 5.0 / math.sqrt(est.entry_requests)
    assert s.requests == pytest.approx(est.entry_requests, rel=tol)
    served = sum(sv.arrivals for sv in s.services.values())
    assert served == pytest.approx(est.requests, rel=tol + 0.02)
    assert served <= est.requests_worst * (1.0 + tol)


def test_utilisation_agrees_with_the_topology_graph_at_the_bundled_load() -> None:
    topo, pol = bundled("online-boutique")
    graph = topo.service_graph()
    est = estimate(topo, Scenario(), pol)
    for name, rho in est.peak.utilisation.items():
        assert rho == pytest.approx(graph.nodes[name]["utilization"], rel=1e-12)
    assert est.saturates is None


def test_a_load_step_and_a_surge_decide_when_and_where_saturation_starts() -> None:
    topo = chain(0.5)
    sc = Scenario.model_validate(
        {
            "duration": 100,
            "load": {"profile": [{"at": 0, "multiplier": 1}, {"at": 40, "multiplier": 1.5}]},
            "faults": [
                {
                    "kind": "traffic_surge",
                    "target": "front",
                    "rate": 100,
                    "start": 70,
                    "duration": 10,
                }
            ],
        }
    )
    est = estimate(topo, sc)
    # mid: 0.5 x 1.5 = 0.75 from 40 s; plus a surge of half the entry's rate from 70 s: 1.0
    assert est.saturates is not None
    at, service, rho = est.saturates
    assert (at, service) == (70.0, "mid")
    assert rho == pytest.approx(1.0)
    # requests: 200/s x (40 + 1.5 x 60) + 100/s x 10, three services each
    assert est.entry_requests == pytest.approx(200 * (40 + 90) + 1000)
    assert est.requests == pytest.approx(3 * est.entry_requests)


def test_retries_bound_the_worst_case_per_attempt_allowed() -> None:
    topo = chain(0.5)
    pol = Policy.model_validate({"clients": {"*": {"retries": {"max": 2}}}})
    est = estimate(topo, Scenario(duration=10), pol)
    # front once, mid up to 3 attempts, back up to 3 per attempt at mid
    assert est.requests_worst == pytest.approx(est.entry_requests * (1 + 3 + 9))


def test_sampled_fault_occurrences_are_counted_without_expanding_them() -> None:
    sc = Scenario.model_validate(
        {
            "duration": 1e7,
            "faults": [
                {
                    "kind": "error_rate",
                    "target": "back",
                    "probability": 0.1,
                    "sample": {
                        "interval": {"dist": "constant", "mean": 0.01},
                        "duration": {"dist": "constant", "mean": 0.01},
                    },
                }
            ],
        }
    )
    est = estimate(chain(0.5), sc)
    assert est.fault_occurrences == pytest.approx(1e7 / 0.02, rel=1e-6)
    with pytest.raises(InputError, match=r"fault occurrences.*--max-memory"):
        Budget.from_limits(max_requests="1e12").check(est)  # the requests pass; the faults do not


# -- refusal before the run --------------------------------------------------------------------


# Values the documents allow (each at or near its documented maximum; the values beyond those
# are refused by the documents themselves), which together ask for more work than the budget.
HOSTILE_TOPOLOGY = {
    "rate 1e6": [("rate: 50", "rate: 1e6")],
    "count 1000 at 1e4 rps": [
        ("calls: [{to: back}]", "calls: [{to: back, count: 1000}]"),
        ("rate: 50", "rate: 1e4"),
    ],
}
HOSTILE_SCENARIO = {
    "multiplier 1000 for a day": "duration: 86400\nload: {multiplier: 1000}\n",
    "surge 1e6 rps": (
        "duration: 10000\nfaults: [{kind: traffic_surge, target: front, rate: 1e6, start: 1}]\n"
    ),
    "window 0.01 s for 1e7 s": "duration: 1e7\nwindow: 0.01\n",
    "fault every 0.01 s for 1e7 s": (
        "duration: 1e7\nfaults: [{kind: error_rate, target: back, probability: 0.1, sample: "
        "{interval: {dist: constant, mean: 0.01}, duration: {dist: constant, mean: 0.01}}}]\n"
    ),
    "duration 1e7": "duration: 1e7\n",
}
BASE = """name: small
services:
  front: {workers: 4, operations: {default: {service_time: {dist: exponential, mean: 0.01}, calls: [{to: back}]}}}
  back: {workers: 2, operations: {default: {service_time: {dist: exponential, mean: 0.01}}}}
workload: [{entry: front, rate: 50}]
"""  # noqa: E501


def _hostile_args(case: str, tmp_path: Path) -> list[str]:
    topo = tmp_path / "topology.yaml"
    if case in HOSTILE_TOPOLOGY:
        text = BASE
        for old, new in HOSTILE_TOPOLOGY[case]:
            assert old in text
            text = text.replace(old, new)
        topo.write_text(text, encoding="utf-8")
        return [str(topo)]
    topo.write_text(BASE, encoding="utf-8")
    if case == "--duration 1e7":
        return [str(topo), "--duration", "1e7"]
    sc = tmp_path / "scenario.yaml"
    sc.write_text(HOSTILE_SCENARIO[case], encoding="utf-8")
    return [str(topo), "--scenario", str(sc)]


@pytest.mark.parametrize("case", [*HOSTILE_TOPOLOGY, *HOSTILE_SCENARIO, "--duration 1e7"])
def test_a_run_above_the_budget_is_refused_in_one_line_before_any_output(
    case: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = _hostile_args(case, tmp_path)
    code, err, rss = twin_bounded("simulate", *args, "--out", str(out), cwd=tmp_path)
    line = refused_in_one_line(code, err)
    assert ("--max-requests" in line) or ("--max-memory" in line), line
    assert "budget: the run would" in line  # the estimate is in the line
    assert not out.exists()
    assert rss < PEAK_RSS_MB


def test_raising_the_budget_lets_the_refused_run_through(tmp_path: Path) -> None:
    topo = tmp_path / "topology.yaml"
    topo.write_text(BASE.replace("rate: 50", "rate: 1e6"), encoding="utf-8")
    code, err, _ = twin_bounded("check", str(topo), cwd=tmp_path)
    assert "--max-requests" in refused_in_one_line(code, err)
    code, err, _ = twin_bounded("check", str(topo), "--max-requests", "2e9", cwd=tmp_path)
    assert code == 0, err
    env_code, err, _ = twin_bounded(
        "check", str(topo), cwd=tmp_path, env=_env(TWIN_MAX_REQUESTS="2e9")
    )
    assert env_code == 0, err


def _env(**extra: str) -> dict[str, str]:
    from conftest import child_env

    return child_env(**extra)


def test_budget_values_are_read_as_people_write_them() -> None:
    b = Budget.from_limits("1e9", "2GiB")
    assert (b.max_requests, b.max_memory) == (10**9, 2 * 2**30)
    assert Budget.from_limits("500M", "512MB") == Budget(500_000_000, 512_000_000)
    for bad in ("0", "-5", "inf", "lots"):
        with pytest.raises(InputError, match="--max-memory"):
            Budget.from_limits(None, bad)


def test_the_environment_sets_the_default_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_MAX_REQUESTS", "1000")
    with pytest.raises(InputError, match=r"work budget: .* above the budget of 1,000"):
        Simulation(chain(0.5), Scenario(duration=60))
    monkeypatch.setenv("TWIN_MAX_REQUESTS", "1k0")
    with pytest.raises(InputError, match="TWIN_MAX_REQUESTS='1k0'"):
        Simulation(chain(0.5), Scenario(duration=60))


def test_the_fluid_engine_budgets_its_steps_not_its_requests() -> None:
    topo = chain(0.5, rate=1e6)  # a million requests per second: nothing to the fluid twin
    FluidSimulation(topo, Scenario(duration=60), dt=1.0)
    est = fluid_estimate(topo, Scenario(duration=1e7), 1e-3)
    assert est.steps == pytest.approx(1e10)
    with pytest.raises(InputError, match=r"operation-steps.*--max-requests"):
        FluidSimulation(topo, Scenario(duration=1e7), dt=1e-3)


def test_erlang_c_with_a_billion_servers_is_immediate_and_exact_below_the_cutoff() -> None:
    assert erlang_c(10**9, 50.0) == 0.0
    # against the closed form through the Poisson distribution, around and past the cutoff
    from scipy.stats import poisson

    for c, a in ((1500, 1450.0), (3000, 2500.0), (800, 790.0)):
        top = poisson.pmf(c, a) * c / (c - a)
        exact = top / (poisson.cdf(c - 1, a) + top)
        assert erlang_c(c, a) == pytest.approx(exact, rel=1e-9, abs=1e-300)


# -- the verdict during the run ----------------------------------------------------------------


@pytest.mark.parametrize("blocking", [False, True])
def test_an_overloaded_service_stops_the_run_with_a_verdict_naming_it(blocking: bool) -> None:
    """``mid`` is offered 1.5: its queue grows without bound. With blocking services the queue
    shows at ``front`` (its workers wait on ``mid``), yet ``mid`` is the one that saturated."""
    topo = chain(1.5, blocking=blocking)
    sim = Simulation(topo, Scenario(duration=2000.0, window=100.0), budget=SMALL)
    cap = sim.ctx.in_flight_cap
    s = sim.run().summary
    v = s.verdict
    assert v is not None and v.verdict == "unstable"
    assert v.service == "mid"
    assert v.utilization == pytest.approx(1.5)
    assert v.in_flight == cap + 1 and v.limit == cap
    assert v.stopped_at < 2000.0
    assert s.simulated_seconds == v.stopped_at
    # everything held was counted: the in-flight requests fit the memory budget
    assert cap * 512 <= SMALL.max_memory
    assert "verdict" in s.to_json()
    # a stopped simulation stays stopped
    again = sim.run().summary
    assert again.simulated_seconds == v.stopped_at


def test_a_stable_run_has_no_verdict_and_the_guard_changes_nothing() -> None:
    topo, pol = bundled("online-boutique")
    sc = Scenario(duration=60.0, warmup=5.0, seed=9)
    guarded = Simulation(topo, sc, pol).run().summary.to_json()
    free = Simulation(topo, sc, pol, budget=Budget(10**15, 2**60)).run().summary.to_json()
    assert "verdict" not in guarded
    guarded.pop("wall_seconds")
    free.pop("wall_seconds")
    assert json.dumps(guarded) == json.dumps(free)


def test_replications_carry_the_verdict_of_a_stopped_run() -> None:
    results = run_replications(
        chain(1.5), Scenario(duration=2000.0, window=100.0), None, replications=2, budget=SMALL
    )
    combined = combine(results)
    assert combined.verdict is not None and combined.verdict.service == "mid"
    assert list(combined.to_json())[-1] == "verdict"


def test_the_cli_writes_only_the_summary_with_the_verdict_and_exits_3(tmp_path: Path) -> None:
    topo = tmp_path / "topology.yaml"
    topo.write_text(BASE.replace("rate: 50", "rate: 300"), encoding="utf-8")  # back: 1.5
    sc = tmp_path / "scenario.yaml"
    sc.write_text("duration: 2000\nwindow: 100\n", encoding="utf-8")
    out = tmp_path / "out"
    code, err, rss = twin_bounded(
        "simulate", str(topo), "--scenario", str(sc), "--max-memory", "8MiB", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unstable at this load: back saturated first" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    verdict = json.loads((out / "summary.json").read_text())["verdict"]
    assert verdict["verdict"] == "unstable" and verdict["service"] == "back"
    assert rss < PEAK_RSS_MB


def test_check_reports_each_service_and_the_one_that_saturates_first(tmp_path: Path) -> None:
    topo = tmp_path / "topology.yaml"
    topo.write_text(BASE.replace("rate: 50", "rate: 300"), encoding="utf-8")
    code, _, _ = twin_bounded("check", str(topo), cwd=tmp_path)
    text = (tmp_path / "stdout.txt").read_text()
    assert code == 0
    assert "unstable at this load: back saturates first (offered utilisation 150%" in text
    assert "front" in text and "75%" in text
    assert "work: 360,000 requests" in text
    topo.write_text(BASE, encoding="utf-8")
    code, _, _ = twin_bounded("check", str(topo), cwd=tmp_path)
    assert code == 0 and "unstable" not in (tmp_path / "stdout.txt").read_text()


def test_a_campaign_above_the_budget_is_refused_before_its_folder_exists(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(BASE, encoding="utf-8")
    spec = tmp_path / "campaign.yaml"
    spec.write_text(
        "name: big\ntopology: topology.yaml\nduration: 100000\nreplications: 1\n"
        "grid:\n  loads: [1.0, 1000]\n"
        "  faults: [{kind: error_rate, targets: [back], intensities: [0.1]}]\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code, err, _ = twin_bounded("campaign", str(spec), "--out", str(out), "--no-db", cwd=tmp_path)
    line = refused_in_one_line(code, err)
    assert "work budget" in line and "--max-requests" in line
    assert not out.exists() and not (tmp_path / "twin.db").exists()


def test_the_estimate_is_reused_across_policies_of_one_graph() -> None:
    topo, pol = bundled("teastore")
    graph = CallGraph(topo, pol)
    a = estimate(topo, Scenario(duration=30), pol, graph=graph)
    b = check_run(topo, Scenario(duration=30), pol)
    assert a == b
