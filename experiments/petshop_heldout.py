"""PetShop (AWS PetAdoptions): calibrate at one traffic level, predict the other (held out).

    python experiments/petshop_heldout.py --data DATA [--out DIR]
        [--calibrate low_traffic] [--predict high_traffic]

The data are CloudWatch/X-Ray 5-minute aggregates per node (``noissue/metrics.csv``) and a
call graph (``graph.csv``), not spans, so the twin is built from aggregates:

- services: every node of the graph with traffic at the calibration level; entries: such
  nodes nobody calls, at their measured rate (requests / 300 s);
- calls: for each edge A -> B, B's requests are shared among its callers in proportion to
  the callers' requests, so A makes ``req_B / sum(req of B's callers)`` calls per request
  (count and probability); sequential;
- self time: A's mean latency minus its calls' mean latency times their count (floored at
  10% of A's latency), lognormal with the spread of A's own p50 and p99;
- failures: A's intrinsic failure share is its own (1 - availability) minus what its
  calls bring in (floored at 0); a call whose callee fails more often than its caller does
  cannot be a hard dependency, so it is ``optional`` (the caller answers anyway);
- workers: 64 per node (managed services and autoscaled containers; with the few requests
  per second here no node queues; say so rather than invent a pool size).

Then the twin runs at the held-out level's entry rates (the load is the scenario's input)
and its per-node mean, p50, p99 latency and availability are compared with the held-out
level's measurements (mean over the 5-minute periods). Accuracy = 1 - |twin - measured| /
measured; availability in percentage points. Writes ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from twin.calibrate import accuracy as acc
from twin.faults import ErrorRateFault, LatencyFault

ROOT = Path(__file__).resolve().parents[1]

PERIOD = 300.0  # seconds per CloudWatch row
WORKERS = 64
SIM_SECONDS = 3600.0


def safe(name: str) -> str:
    return name.replace(":", "_")


def build(nodes: Any, edges: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Topology document from a node table (see twin.calibrate.petshop.node_table)."""
    have = {
        n
        for n in nodes.index
        if float(nodes.loc[n].get("requests_Sum", 0.0) or 0.0) > 0
        and np.isfinite(nodes.loc[n].get("latency_Average", np.nan))
    }
    edges = [(a, b) for a, b in edges if a in have and b in have]
    req = {n: float(nodes.loc[n, "requests_Sum"]) for n in have}
    lat = {n: float(nodes.loc[n, "latency_Average"]) for n in have}
    fail = {n: 1.0 - float(nodes.loc[n].get("availability_Average", 100.0)) / 100.0 for n in have}
    callers: dict[str, list[str]] = {}
    for a, b in edges:
        callers.setdefault(b, []).append(a)
    per_req = {(a, b): req[b] / sum(req[c] for c in callers[b]) for a, b in edges}
    # a caller cannot wait for a callee slower than itself: such a call is asynchronous
    # (a queue, a state machine, an X-Ray client stub); the twin has no fire-and-forget
    # call, so the callee gets the calls as arrivals of its own and the caller does not wait
    async_edges = {(a, b) for a, b in edges if lat[b] > lat[a]}

    def spread(n: str) -> float:
        """cv of a lognormal with the node's own p50 and p99 (0.5 when unknown)."""
        p50 = float(nodes.loc[n].get("latency_p50", np.nan))
        p99 = float(nodes.loc[n].get("latency_p99", np.nan))
        if np.isfinite(p50) and np.isfinite(p99) and p50 > 0 and p99 > p50:
            sigma = math.log(p99 / p50) / 2.326
            return float(math.sqrt(math.expm1(sigma * sigma)))
        return 0.5

    services: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for n in sorted(have):
        calls = []
        sub_lat = sub_fail = sub_var = 0.0
        for a, b in edges:
            if a != n or (a, b) in async_edges:
                continue
            c = per_req[(a, b)]
            count = max(1, round(c))
            prob = min(1.0, c / count)
            optional = fail[b] > fail[a] + 1e-9
            calls.append(
                {
                    "to": f"{safe(b)}:op",
                    "probability": round(prob, 6),
                    "count": count,
                    "optional": optional,
                }
            )
            sub_lat += c * lat[b]
            # variance a call brings: its own, plus whether it is made at all
            sub_var += c * (spread(b) * lat[b]) ** 2 + count * prob * (1 - prob) * lat[b] ** 2
            if not optional:
                sub_fail += c * fail[b]
        self_mean = max(lat[n] - sub_lat, 0.1 * lat[n], 1e-6)
        # the node's own spread holds its calls' spread: only the rest is its own work
        var_self = max((spread(n) * lat[n]) ** 2 - sub_var, (0.1 * self_mean) ** 2)
        cv = float(np.clip(math.sqrt(var_self) / self_mean, 0.1, 3.0))
        intrinsic = float(np.clip(fail[n] - sub_fail, 0.0, 1.0))
        services[safe(n)] = {
            "workers": WORKERS,
            "operations": {
                "op": {
                    "service_time": {"dist": "lognormal", "mean": self_mean, "cv": cv},
                    "calls": calls,
                }
            },
        }
        info[n] = {
            "self_mean": self_mean,
            "cv": cv,
            "intrinsic_failure": intrinsic,
            "async_calls": sorted(b for a, b in async_edges if a == n),
        }
    edges = [e for e in edges if e not in async_edges]
    called = {b for _, b in edges}
    sources: dict[str, list[tuple[str, float]]] = {n: [(n, 1.0)] for n in have - called}
    for a, b in sorted(async_edges):
        sources.setdefault(b, []).append((a, per_req[(a, b)]))
    info["_entries"] = dict(sources)
    doc = {"name": "petshop", "services": services, "workload": entry_rates(sources, nodes)}
    return doc, info


def entry_rates(sources: dict[str, list[tuple[str, float]]], nodes: Any) -> list[dict[str, Any]]:
    """Each entry's rate at a traffic level: its own requests, or the asynchronous calls its
    callers make (their requests there times the calls per request calibrated)."""
    out = []
    for n, src in sorted(sources.items()):
        r = sum(
            f * float(nodes.loc[m, "requests_Sum"]) / PERIOD
            for m, f in src
            if m in nodes.index and np.isfinite(nodes.loc[m].get("requests_Sum", np.nan))
        )
        if r > 0:
            out.append({"entry": f"{safe(n)}:op", "rate": r})
    return out


SEARCH = "PetSearch_AWS::ECS::Fargate"
FRONT = "PetSite"
SHARES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
ERROR_SCALES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)


def issue_faults(kind: str, value: float, share: float) -> list[dict[str, Any]]:
    """The twin's fault for a labelled PetShop issue. ``searchdelay`` (ms) and
    ``searcherrorpercent`` are the published magnitudes; which share of PetSearch's requests
    they reach is not published, so ``share`` scales them: a delay of ``value`` ms on that
    share of requests; an error probability of ``share * value / 100`` (the published
    percent turns out not to be the share of PetSearch requests that fail, so ``share``
    is a multiplier there)."""
    target = safe(SEARCH)
    if kind == "searchdelay":
        d = value / 1000.0
        q = 1.0 - share
        quant = {0.0: 0.0, 1.0: d} if share >= 1.0 else {0.0: 0.0, q: 0.0, q + 1e-9: d, 1.0: d}
        return [
            {
                "kind": LatencyFault.name,
                "target": target,
                "delay": {"dist": "empirical", "quantiles": quant},
            }
        ]
    return [
        {
            "kind": ErrorRateFault.name,
            "target": target,
            "probability": min(1.0, share * value / 100.0),
        }
    ]


def run_issues(root: Path, doc: dict[str, Any], info: dict[str, Any], base: list[dict]) -> dict:
    """Replay the labelled issues of both traffic levels: the share of PetSearch's requests
    each issue kind reaches is fitted on the first issue of that kind at the calibration
    level and applied to all the others; PetSite's mean latency and availability over the
    10 minutes after the issue's timestamp are compared with the twin's."""
    from twin.calibrate.petshop import node_table, read_node_metrics
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation
    from twin.topology import Topology

    def twin_front(tdoc: dict[str, Any], faults: list[dict]) -> dict[str, float]:
        t = parse_model(Topology, tdoc)
        sc = parse_model(
            Scenario, {"duration": 1260.0, "warmup": 60.0, "seed": 1, "faults": base + faults}
        )
        sim = Simulation(t, sc)
        sim.run()
        st = sim.services[safe(FRONT)].stats
        n = sum(st.counts)
        return {"mean": float(st.hist.mean), "availability": 100.0 * st.counts[0] / n}

    cases = []
    for level in ("low_traffic", "high_traffic"):
        lvl_tab = node_table(read_node_metrics(root / level / "noissue" / "metrics.csv"))
        tdoc = {**doc, "workload": entry_rates(info["_entries"], lvl_tab)}
        for d in sorted((root / level / "train").glob("issue_*")):
            tg = json.loads((d / "target.json").read_text())
            cmd = tg["metadata"]["reproducibility"]["command"].split("'")
            kind, value = cmd[1].rsplit("/", 1)[-1], float(cmd[3])
            ts = float(tg["target"]["timestamp"])
            m = read_node_metrics(d / "metrics.csv")
            m = m[(m["node"] == FRONT) & (m["t"] >= ts) & (m["t"] < ts + 600)]
            meas = {
                "mean": float(m[(m.metric == "latency") & (m.statistic == "Average")].value.mean()),
                "availability": float(
                    m[(m.metric == "availability") & (m.statistic == "Average")].value.mean()
                ),
            }
            cases.append(
                {
                    "level": level,
                    "issue": d.name,
                    "kind": kind,
                    "value": value,
                    "measured": meas,
                    "tdoc": tdoc,
                }
            )
    shares: dict[str, float] = {}
    rows = []
    for c in cases:
        role = "held out"
        if c["kind"] not in shares and c["level"] == "low_traffic":
            key = "mean" if c["kind"] == "searchdelay" else "availability"
            base_m = 100.0 if key == "availability" else 0.0

            def err(sh: float, c: dict = c, key: str = key, base_m: float = base_m) -> float:
                t = twin_front(c["tdoc"], issue_faults(c["kind"], c["value"], sh))
                return abs((t[key] - base_m) - (c["measured"][key] - base_m))

            grid = SHARES if c["kind"] == "searchdelay" else ERROR_SCALES
            trials = {sh: err(sh) for sh in grid}
            shares[c["kind"]] = min(trials, key=lambda k: trials[k])
            role = "fit"
        tw = twin_front(c["tdoc"], issue_faults(c["kind"], c["value"], shares[c["kind"]]))
        meas = c["measured"]
        rows.append(
            {
                "level": c["level"],
                "issue": c["issue"],
                "kind": c["kind"],
                "value": c["value"],
                "role": role,
                "share": shares[c["kind"]],
                "measured": meas,
                "twin": tw,
                "mean_accuracy": acc(tw["mean"], meas["mean"]),
                "availability_diff_pp": tw["availability"] - meas["availability"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    held = [r for r in rows if r["role"] == "held out"]
    return {
        "shares": shares,
        "rows": rows,
        "held_out": len(held),
        "mean_accuracy_avg": float(np.mean([r["mean_accuracy"] for r in held])),
        "mean_accuracy_min": float(np.min([r["mean_accuracy"] for r in held])),
        "availability_mean_abs_diff_pp": float(
            np.mean([abs(r["availability_diff_pp"]) for r in held])
        ),
        "availability_max_abs_diff_pp": float(
            np.max([abs(r["availability_diff_pp"]) for r in held])
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data", type=Path, required=True, help="the public datasets folder (holding petshop/)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "petshop")
    ap.add_argument("--calibrate", default="low_traffic")
    ap.add_argument("--predict", default="high_traffic")
    ap.add_argument("--issues", action="store_true", help="also replay the labelled issues")
    a = ap.parse_args()
    from twin.calibrate.petshop import node_table, read_adjacency, read_node_metrics
    from twin.io import parse_model
    from twin.scenario import Scenario
    from twin.sim import Simulation
    from twin.topology import Topology

    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = a.data / "petshop"
    cal = node_table(read_node_metrics(root / a.calibrate / "noissue" / "metrics.csv"))
    held = node_table(read_node_metrics(root / a.predict / "noissue" / "metrics.csv"))
    _, edges = read_adjacency(root / a.calibrate / "graph.csv")
    doc, info = build(cal, edges)
    faults = [
        {"kind": ErrorRateFault.name, "target": safe(n), "probability": i["intrinsic_failure"]}
        for n, i in info.items()
        if not n.startswith("_") and i["intrinsic_failure"] > 0
    ]
    parse_model(Topology, doc)  # valid before anything runs
    (out / "topology.json").write_text(json.dumps(doc, indent=2))
    # held-out load: each entry at its rate at the other traffic level
    doc_h = {**doc, "workload": entry_rates(info["_entries"], held)}
    rows: list[dict[str, Any]] = []
    for level, tdoc, meas_tab in (
        (a.calibrate, doc, cal),  # in-sample: how well the aggregates rebuild themselves
        (a.predict, doc_h, held),  # held out
    ):
        t = parse_model(Topology, tdoc)
        sc = parse_model(
            Scenario,
            {"duration": SIM_SECONDS + 60, "warmup": 60, "seed": 1, "faults": faults},
        )
        sim = Simulation(t, sc)
        sim.run()
        for n in sorted(k for k in info if not k.startswith("_")):
            svc = sim.services.get(safe(n))
            if svc is None or n not in meas_tab.index:
                continue
            st = svc.stats
            n_req = sum(st.counts)
            if n_req == 0 or st.hist.n == 0:
                continue
            mr = meas_tab.loc[n]
            if not (float(mr.get("requests_Sum", 0) or 0) > 0):
                continue
            p50, p99 = st.hist.quantiles((0.5, 0.99))
            twin = {
                "mean": float(st.hist.mean),
                "p50": float(p50),
                "p99": float(p99),
                "availability": 100.0 * st.counts[0] / n_req,
                "rps": n_req / SIM_SECONDS,
            }
            meas = {
                "mean": float(mr.get("latency_Average", np.nan)),
                "p50": float(mr.get("latency_p50", np.nan)),
                "p99": float(mr.get("latency_p99", np.nan)),
                "availability": float(mr.get("availability_Average", np.nan)),
                "rps": float(mr.get("requests_Sum", np.nan)) / PERIOD,
            }
            rows.append(
                {
                    "level": level,
                    "role": "held out" if level == a.predict else "calibration",
                    "node": n,
                    "measured": meas,
                    "twin": twin,
                    "accuracy": {k: acc(twin[k], meas[k]) for k in ("mean", "p50", "p99")},
                    "availability_diff_pp": twin["availability"] - meas["availability"],
                }
            )
    summary: dict[str, Any] = {}
    for role in ("calibration", "held out"):
        rs = [r for r in rows if r["role"] == role]
        fin = {
            k: [r["accuracy"][k] for r in rs if np.isfinite(r["accuracy"][k])]
            for k in ("mean", "p50", "p99")
        }
        summary[role] = {
            "nodes": len(rs),
            **{f"{k}_accuracy_avg": float(np.mean(v)) for k, v in fin.items()},
            **{f"{k}_accuracy_median": float(np.median(v)) for k, v in fin.items()},
            "availability_mean_abs_diff_pp": float(
                np.mean([abs(r["availability_diff_pp"]) for r in rs])
            ),
            "availability_max_abs_diff_pp": float(
                np.max([abs(r["availability_diff_pp"]) for r in rs])
            ),
        }
    issues = run_issues(root, doc, info, faults) if a.issues else None
    result = {
        "issues": issues,
        "calibrate": a.calibrate,
        "predict": a.predict,
        "workers": WORKERS,
        "sim_seconds": SIM_SECONDS,
        "nodes": info,
        "rows": rows,
        "summary": summary,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    md = table([r for r in rows if r["role"] == "held out"], summary)
    if issues is not None:
        md += issue_table(issues)
    (out / "results.md").write_text(md)
    print(md)
    return 0


def table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [
        "| node | rps | mean ms real / twin | acc | p50 ms real / twin | acc "
        "| p99 ms real / twin | acc | availability % real / twin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, t, ac = r["measured"], r["twin"], r["accuracy"]
        lines.append(
            f"| {r['node']} | {m['rps']:.2f} | {m['mean'] * 1e3:.1f} / {t['mean'] * 1e3:.1f} "
            f"| {ac['mean']:.0%} | {m['p50'] * 1e3:.1f} / {t['p50'] * 1e3:.1f} | {ac['p50']:.0%} "
            f"| {m['p99'] * 1e3:.1f} / {t['p99'] * 1e3:.1f} | {ac['p99']:.0%} "
            f"| {m['availability']:.2f} / {t['availability']:.2f} |"
        )
    for role, s in summary.items():
        lines.append(
            f"\n{role}: {s['nodes']} nodes; mean-latency accuracy average "
            f"{s['mean_accuracy_avg']:.1%} (median {s['mean_accuracy_median']:.1%}); p50 "
            f"{s['p50_accuracy_avg']:.1%} ({s['p50_accuracy_median']:.1%}); p99 "
            f"{s['p99_accuracy_avg']:.1%} ({s['p99_accuracy_median']:.1%}); availability "
            f"within {s['availability_mean_abs_diff_pp']:.2f} pp on average, "
            f"{s['availability_max_abs_diff_pp']:.2f} pp at worst."
        )
    return "\n".join(lines) + "\n"


def issue_table(s: dict[str, Any]) -> str:
    lines = [
        "\n| level | issue | magnitude | role | share | PetSite mean ms real / twin | acc "
        "| availability % real / twin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        m, t = r["measured"], r["twin"]
        lines.append(
            f"| {r['level']} | {r['issue']} | {r['kind']} {r['value']:g} | {r['role']} "
            f"| {r['share']:g} | {m['mean'] * 1e3:.0f} / {t['mean'] * 1e3:.0f} "
            f"| {r['mean_accuracy']:.0%} | {m['availability']:.2f} / {t['availability']:.2f} |"
        )
    lines.append(
        f"\nLabelled issues, {s['held_out']} held out: PetSite mean-latency accuracy average "
        f"{s['mean_accuracy_avg']:.1%} (minimum {s['mean_accuracy_min']:.1%}); availability "
        f"within {s['availability_mean_abs_diff_pp']:.2f} pp on average, "
        f"{s['availability_max_abs_diff_pp']:.2f} pp at worst."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
