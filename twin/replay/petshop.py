"""The PetShop dataset's layout as an :class:`~.document.Observed`, and its issues as twin
faults.

Found by pattern under ``--data`` (the dataset folder, or one traffic level of it):
``<level>/noissue/metrics.csv`` (normal operation) and ``<level>/<split>/issue_N/`` (an
issue's ``metrics.csv`` and ``target.json``). Each file is a capture of its own (a
*segment*, named by its folder): a window is one row (a CloudWatch period), with every
node's rate, mean, p50, p99 and availability, and the entry figures are those of the node
the issues are judged at (``target.node``; with no issue, the busiest entry).

An issue is reproduced by a command; ``aws ssm put-parameter --name NAME --value V`` is read
as a fault of type NAME's last part with value V, at ``root_cause.node``, for the
:data:`FAULT_SECONDS` after ``target.timestamp``. Types by their words: one with ``delay``
-> ``latency`` of V ms on a share of the node's requests; one with ``error`` ->
``error_rate`` of V percent times a scale. Neither the share nor the scale is published (a
1000 ms delay raises the node's mean by far less than 1000 ms), so both default to 1 and are
fitted with ``--fit first``. Any other command or type is unmapped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from twin.bounds import MAX_SECONDS
from twin.calibrate.petshop import period_seconds, read_node_metrics, service_name
from twin.errors import InputError
from twin.faults import ErrorRateFault, LatencyFault
from twin.replay.document import Fault, Figures, Observed, Window
from twin.replay.mapping import Plan, entry_services
from twin.safeload import loads_json, read_text
from twin.topology import Topology

FAULT_SECONDS = 600.0
"""Seconds after an issue's ``target.timestamp`` its effect is compared over."""

SHARES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
"""Candidate shares of requests a published delay reaches."""
ERROR_SCALES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
"""Candidate multipliers of a published error percentage."""

_PUT = re.compile(r"put-parameter\b.*?--name\s+'?([^'\s]+)'?.*?--value\s+'?([^'\s]+)'?")
_FIGURES = {
    ("latency", "Average"): "mean",
    ("latency", "p50"): "p50",
    ("latency", "p99"): "p99",
    ("availability", "Average"): "success",
}


def _windows(path: Path, segment: str) -> list[Window]:
    tidy = read_node_metrics(path)
    period = period_seconds(tidy)
    figs: dict[float, dict[str, dict[str, float]]] = {}
    r: Any
    for r in tidy.itertuples(index=False):
        node = service_name(str(r.node))
        slot = figs.setdefault(float(r.t), {}).setdefault(node, {})
        if r.metric == "requests" and r.statistic == "Sum":
            slot["rate"] = float(r.value) / period
        elif (r.metric, r.statistic) in _FIGURES:
            v = float(r.value)
            slot[_FIGURES[(str(r.metric), str(r.statistic))]] = (
                v / 100.0 if r.metric == "availability" else v
            )
    out = []
    for t in sorted(figs):
        services = {
            n: Figures(**{k: v for k, v in f.items() if np.isfinite(v) and v >= 0})
            for n, f in figs[t].items()
        }
        out.append(Window(time=t + period, seconds=period, segment=segment, services=services))
    return out


def _issue(folder: Path, segment: str) -> tuple[Fault, str]:
    path = folder / "target.json"
    try:
        doc = loads_json(read_text(path, "telemetry"), str(path), "telemetry")
        ts = float(doc["target"]["timestamp"])
        judged = str(doc["target"]["node"])
        root = str(doc["root_cause"]["node"])
        cmd = str(doc.get("metadata", {}).get("reproducibility", {}).get("command", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(
            f"needs target.timestamp, target.node and root_cause.node ({e})", source=str(path)
        ) from e
    m = _PUT.search(cmd)
    ftype, detail = (
        (m.group(1).rsplit("/", 1)[-1], {"value": m.group(2)})
        if m
        else ("command: " + " ".join(cmd.split()[:3]), {})
    )
    value = detail.get("value", "")
    fault = Fault(
        start=ts,
        end=ts + FAULT_SECONDS,
        target=service_name(root),
        type=ftype,
        label=f"{segment} {ftype} {value}".strip(),
        segment=segment,
        detail={**detail, "command": cmd},
    )
    return fault, service_name(judged)


def read(folder: Path, topology: Topology) -> Observed:
    """Every normal-operation and issue capture under ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("expected the PetShop dataset folder", source=str(root))
    normal = sorted(root.glob("**/noissue/metrics.csv"))
    issues = sorted(p.parent for p in root.glob("**/issue_*/target.json"))
    if not normal and not issues:
        raise InputError(
            "no <level>/noissue/metrics.csv and no <level>/<split>/issue_N/target.json",
            source=str(root),
        )
    windows: list[Window] = []
    faults: list[Fault] = []
    judged: list[str] = []
    files: list[str] = []
    for p in normal:
        seg = str(p.parent.relative_to(root))
        windows += _windows(p, seg)
        files.append(str(p))
    for d in issues:
        seg = str(d.relative_to(root))
        f, node = _issue(d, seg)
        faults.append(f)
        judged.append(node)
        files.append(str(d / "target.json"))
        if (d / "metrics.csv").is_file():
            windows += _windows(d / "metrics.csv", seg)
            files.append(str(d / "metrics.csv"))
    observed = _observed(judged, windows, topology)
    windows = [
        w.model_copy(update=w.services[observed].model_dump()) if observed in w.services else w
        for w in windows
    ]
    return Observed(
        format="petshop",
        observed=observed,
        windows=windows,
        faults=sorted(faults, key=lambda f: f.start),
        block_seconds=MAX_SECONDS,  # a capture is one block: its nodes' figures, all periods
        twin_seconds=3600.0,
        files=files,
    )


def _observed(judged: list[str], windows: list[Window], topology: Topology) -> str:
    if judged:
        return max(set(judged), key=judged.count)
    rates: dict[str, float] = {}
    for w in windows:
        for n, f in w.services.items():
            if n in entry_services(topology) and f.rate:
                rates[n] = rates.get(n, 0.0) + f.rate
    if not rates:
        raise InputError("no entry service of the topology has traffic in these captures")
    return max(rates, key=lambda n: rates[n])


def plan(fault: Fault, topology: Topology) -> Plan | str:
    """The twin's play of one issue, or why it has none."""
    if "value" not in fault.detail:
        return f"reproduced by {fault.type.removeprefix('command: ')!r}, not a parameter"
    try:
        value = float(fault.detail["value"])
    except ValueError:
        return f"{fault.type}: value {fault.detail['value']!r} is not a number"
    target = fault.target
    if target not in topology.services:
        return f"no service {target!r} in the topology"
    words = fault.type.lower()
    if "delay" in words:
        seconds = value / 1000.0
        latency = LatencyFault.name

        def delay(share: float) -> list[dict[str, Any]]:
            q = 1.0 - share
            quant = (
                {0.0: seconds, 1.0: seconds}
                if share >= 1.0
                else {0.0: 0.0, q: 0.0, q + 1e-9: seconds, 1.0: seconds}
            )
            return [
                {
                    "kind": latency,
                    "target": target,
                    "delay": {"dist": "empirical", "quantiles": quant},
                }
            ]

        return Plan(
            kind=latency,
            what=f"{latency} {target} {value:g} ms on a share",
            build=delay,
            value=1.0,
            grid=SHARES,
            fit_on="response_time",
        )
    if "error" in words:
        err = ErrorRateFault.name

        def errors(scale: float) -> list[dict[str, Any]]:
            return [{"kind": err, "target": target, "probability": min(1.0, scale * value / 100.0)}]

        return Plan(
            kind=err,
            what=f"{err} {target} {value:g}% x a scale",
            build=errors,
            value=1.0,
            grid=ERROR_SCALES,
            fit_on="success",
        )
    return f"no twin fault for the parameter {fault.type!r}"
