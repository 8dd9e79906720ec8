"""Reference docs from the models themselves: ``python -m twin.refdoc > docs/reference.md``.

The docstrings and field descriptions are the reference; a test keeps the file current.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from twin import distributions as d
from twin import policy as p
from twin import results as r
from twin import scenario as s
from twin import topology as t
from twin.faults import KINDS

SECTIONS: list[tuple[str, list[type[BaseModel]]]] = [
    ("Topology", [t.Topology, t.Host, t.Service, t.Operation, t.Call, t.Network, t.Link,
                  t.WorkloadEntry, t.SLO]),
    ("Distributions", [d.Constant, d.Exponential, d.LogNormal, d.Gamma, d.Uniform, d.Empirical]),
    ("Scenario", [s.Scenario, s.Load, s.LoadStep, s.Sampling]),
    ("Faults", list(KINDS.values())),
    ("Policy", [p.Policy, p.ClientPolicy, p.Retries, p.CircuitBreaker, p.ServicePolicy,
                p.RateLimit, p.Autoscale, p.Failover]),
    ("Results: summary.json", [r.Summary, r.Outcomes, r.EntrySummary, r.ServiceSummary,
                               r.EdgeSummary, r.LatencyStats, r.SloVerdicts, r.SloVerdict,
                               r.FaultRecord, r.Interval]),
    ("Results: the stretch a step returns", [r.Stretch, r.EntryStretch, r.ServiceStretch,
                                             r.StretchLatency]),
]


def _type(info: FieldInfo) -> str:
    ann: Any = info.annotation
    text = getattr(ann, "__name__", None) if not hasattr(ann, "__args__") else None
    text = text or str(ann).replace("typing.", "").replace("twin.distributions.", "")
    text = re.sub(r"twin\.faults\.(\w+\.)?", "", text)
    for mod in ("twin.topology.", "twin.scenario.", "twin.policy.", "twin.results.summary.",
                "twin.results.stretch.", "Annotated[", "NoneType"):
        text = text.replace(mod, "None" if mod == "NoneType" else "")
    if "Constant | Exponential" in text:
        text = "Distribution"
    if "discriminator='kind'" in text:
        text = "list[Fault] (a fault of any kind below, told apart by `kind`)"
    return text.replace("|", "\\|")


def _limits(info: FieldInfo) -> str:
    out = []
    for m in info.metadata:
        for name, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"),
                          ("min_length", "min length")):
            v = getattr(m, name, None)
            if v is not None:
                out.append(f"{sym} {v}")
    return ", ".join(out)


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined:
        return "**required**" if info.default_factory is None else "empty / defaults"
    v = info.default
    return "`null`" if v is None else f"`{v}`"


def model_section(model: type[BaseModel]) -> str:
    doc = inspect.cleandoc(model.__doc__ or "")
    lines = [f"### `{model.__name__}`", "", doc, "",
             "| field | type | default | limits | meaning |", "|---|---|---|---|---|"]
    for name, info in model.model_fields.items():
        key = info.alias or name
        desc = (info.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {_type(info)} | {_default(info)} | {_limits(info)} | {desc} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    parts = [
        "# Reference: the three input documents and the results",
        "",
        "Generated from the pydantic models by `python -m twin.refdoc`; do not edit by hand.",
        "Units: seconds, requests per second, fractions in [0, 1]. Every model is strict:",
        "unknown fields are errors. A distribution may be written as a bare number (a constant).",
        "A result record's key absent from a file reads as its default; `int \\| float` figures",
        "are counts in one run and means over replications.",
        "",
    ]
    for title, models in SECTIONS:
        parts.append(f"## {title}\n")
        parts += [model_section(m) for m in models]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
