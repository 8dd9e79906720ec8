"""Reference docs from the models themselves: ``python -m twin.refdoc > docs/reference.md``.

The docstrings and field descriptions are the reference; a test keeps the file current.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from twin import bounds as b
from twin import distributions as d
from twin import policy as p
from twin import results as r
from twin import scenario as s
from twin import topology as t
from twin.campaign import schedule as sc
from twin.campaign import spec as c
from twin.change import document as ch
from twin.change import verdict as v
from twin.drift import documents as dr
from twin.faults import KINDS, FaultBase
from twin.mirror import document as mi
from twin.predict import alerts as al
from twin.replay import document as rp

SECTIONS: list[tuple[str, list[type[BaseModel]]]] = [
    (
        "Topology",
        [
            t.Topology,
            t.Host,
            t.Service,
            t.Operation,
            t.Call,
            t.Network,
            t.Link,
            t.WorkloadEntry,
            t.SLO,
        ],
    ),
    ("Distributions", [d.Constant, d.Exponential, d.LogNormal, d.Gamma, d.Uniform, d.Empirical]),
    ("Scenario", [s.Scenario, s.Load, s.LoadStep, s.Sampling]),
    ("Faults", list(KINDS.values())),
    (
        "Policy",
        [
            p.Policy,
            p.ClientPolicy,
            p.Retries,
            p.CircuitBreaker,
            p.ServicePolicy,
            p.RateLimit,
            p.Autoscale,
            p.Failover,
        ],
    ),
    (
        "Campaign",
        [c.Campaign, c.ScenarioItem, c.Grid, c.FaultSweep, c.RandomSample, c.Range, c.History],
    ),
    ("Schedule", [sc.Schedule, sc.ScheduledCampaign]),
    ("Change set", [ch.ChangeSet, ch.Change, ch.VersionChange, ch.DependencyChange]),
    (
        "Mirror transformations",
        [
            mi.TransformSet,
            mi.PayloadNudge,
            mi.PayloadSwap,
            mi.SyntheticError,
            mi.Delay,
            mi.RateLimit,
            mi.Bandwidth,
            mi.Budget,
        ],
    ),
    ("Drift policy and ignore rules", [dr.DriftPolicy, dr.Override, dr.IgnoreRules, dr.IgnoreRule]),
    ("Replay: the observed data", [rp.Observed, rp.Window, rp.Figures, rp.Fault]),
    (
        "Results: summary.json",
        [
            r.Summary,
            r.Outcomes,
            r.EntrySummary,
            r.ServiceSummary,
            r.EdgeSummary,
            r.LatencyStats,
            r.SloVerdicts,
            r.SloVerdict,
            r.FaultRecord,
            r.Interval,
        ],
    ),
    (
        "Results: the stretch a step returns",
        [r.Stretch, r.EntryStretch, r.ServiceStretch, r.StretchLatency],
    ),
    (
        "Results: verdict.json (`twin check-change`)",
        [v.Verdict, v.VerdictMethod, v.SloFigures, v.Figure, v.VerdictFinding],
    ),
    (
        "Results: alerts.jsonl (`twin watch`)",
        [
            al.Alert,
            al.Evidence,
            al.MetricEvidence,
            al.Fingerprint,
            al.SimulatedEffect,
            al.Mitigation,
        ],
    ),
    (
        "Results: drift.json and plans.json (`twin drift`)",
        [
            dr.Drift,
            dr.DriftAlert,
            dr.Prediction,
            dr.PlansDocument,
            dr.Plan,
            dr.PlanAction,
            dr.Impact,
            dr.Rollout,
            dr.SecurityNote,
        ],
    ),
]


def _label(meta: list[Any]) -> str | None:
    """What an annotated string stands for, when it is one of the bounded name types."""
    funcs = {getattr(m, "func", None) for m in meta}
    if b.check_name in funcs:
        return "name"
    if b.check_reference in funcs:
        return "name or name:operation"
    return None


def _render(ann: Any) -> str:
    """A type as the reference shows it: the documents' own words, without typing noise."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        return _label(list(args[1:])) or _render(args[0])
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        inner = [get_args(a)[0] if get_origin(a) is Annotated else a for a in members]
        if inner and all(isinstance(a, type) and issubclass(a, d._Dist) for a in inner):
            text = "Distribution"
        elif inner and all(isinstance(a, type) and issubclass(a, FaultBase) for a in inner):
            text = "Fault (a fault of any kind below, told apart by `kind`)"
        else:
            text = " | ".join(_render(a) for a in members)
        return text + (" | None" if len(members) < len(args) else "")
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, tuple, dict):
        shown = [_render(a) if a is not Ellipsis else "..." for a in args]
        return f"{origin.__name__}[{', '.join(shown)}]"
    return getattr(ann, "__name__", str(ann))


def _type(info: FieldInfo) -> str:
    label = _label(list(info.metadata))
    if label is not None:  # a top-level annotated type: pydantic moved its metadata here
        optional = type(None) in get_args(info.annotation)
        return label + (" \\| None" if optional else "")
    return _render(info.annotation).replace("|", "\\|")


def _num(v: Any) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _own_limits(meta: list[Any]) -> list[str]:
    """Ranges, lengths and finiteness that metadata (of a field or a nested type) declares."""
    out = []
    for m in meta:
        if isinstance(m, FieldInfo):
            out += _own_limits(list(m.metadata))
            continue
        for name, sym in (
            ("ge", ">="),
            ("gt", ">"),
            ("le", "<="),
            ("lt", "<"),
            ("min_length", "min length"),
            ("max_length", "max length"),
        ):
            v = getattr(m, name, None)
            if v is not None:
                out.append(f"{sym} {_num(v)}")
        if getattr(m, "allow_inf_nan", None) is False:
            out.append("finite")
        if getattr(m, "strict", None) is True:
            out.append("strict")
    return out


def _nested_limits(ann: Any, where: str) -> list[str]:
    """Limits of the items, keys and values inside a field's type, named by where they
    apply."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        own = _own_limits(list(args[1:]))
        if _label(list(args[1:])) is not None:
            own = []  # a name's rule is given once, under "Names"
        prefixed = [f"{where}{x}" for x in own]
        return prefixed + _nested_limits(args[0], where)
    if origin in (Union, types.UnionType):
        return [x for a in args for x in _nested_limits(a, where)]
    if origin in (list, tuple):
        return [x for a in args if a is not Ellipsis for x in _nested_limits(a, "each ")]
    if origin is dict:
        return _nested_limits(args[0], "keys ") + _nested_limits(args[1], "values ")
    return []


def _limits(info: FieldInfo) -> str:
    own = [] if _label(list(info.metadata)) else _own_limits(list(info.metadata))
    out = own + _nested_limits(info.annotation, "")
    return ", ".join(dict.fromkeys(out))


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined:
        return "**required**" if info.default_factory is None else "empty / defaults"
    v = info.default
    return "`null`" if v is None else f"`{v}`"


def _heading(model: type[BaseModel]) -> str:
    """The model's name, qualified by its package where two documents share the name."""
    same = [x for _, models in SECTIONS for x in models if x.__name__ == model.__name__]
    if len(same) < 2:
        return model.__name__
    return f"{model.__module__.split('.')[1]}.{model.__name__}"


def model_section(model: type[BaseModel]) -> str:
    doc = inspect.cleandoc(model.__doc__ or "")
    lines = [
        f"### `{_heading(model)}`",
        "",
        doc,
        "",
        "| field | type | default | limits | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, info in model.model_fields.items():
        key = info.alias or name
        desc = (info.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {_type(info)} | {_default(info)} | {_limits(info)} | {desc} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    parts = [
        "# Reference: the input documents and the results",
        "",
        "Generated from the pydantic models by `python -m twin.refdoc`; do not edit by hand.",
        "Units: seconds, requests per second, fractions in [0, 1]. Every model is strict:",
        "unknown fields are errors. A distribution may be written as a bare number (a constant).",
        "A result record's key absent from a file reads as its default; `int \\| float` figures",
        "are counts in one run and means over replications.",
        "",
        "Limits: every number is finite (`.inf` and `.nan` are refused) and within the range",
        'its row gives; `strict` integers refuse `true`, `2.0` and `"2"`. Names of services,',
        f"operations, hosts and zones (`name` below) are {b.NAME_RULE}.",
        "A `Distribution`'s values are in its field's unit; its limits are in its own section.",
        "Cross-field rules (faults inside the run, outage replicas within the service, a load",
        "multiplier or a profile, intensities within each kind's range) are in",
        "[design.md](design.md#input-limits).",
        "",
    ]
    for title, models in SECTIONS:
        parts.append(f"## {title}\n")
        parts += [model_section(m) for m in models]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
