"""Calibration: real telemetry (traces, Prometheus metrics) in, a Topology out.

Formats become tidy tables (:mod:`.traces`, :mod:`.metrics`); tidy tables become a call graph
and fitted distributions (:mod:`.callgraph`, :mod:`.service_time`); :mod:`.build` turns those
into a :class:`twin.topology.Topology`. Nothing here imports the simulator: comparing the
calibrated twin with what was observed is the CLI's job (``twin/calibrate_cli.py``).
"""

from twin.calibrate.build import BuildOptions, Calibration, build_topology
from twin.calibrate.callgraph import CallGraph, build_callgraph
from twin.calibrate.mask import Masker
from twin.calibrate.metrics import MetricMap, PrometheusClient, load_dump, summarize
from twin.calibrate.service_time import Fit, fit_service_time
from twin.calibrate.traces import ReadReport, read_traces

__all__ = [
    "BuildOptions",
    "Calibration",
    "CallGraph",
    "Fit",
    "Masker",
    "MetricMap",
    "PrometheusClient",
    "ReadReport",
    "build_callgraph",
    "build_topology",
    "fit_service_time",
    "load_dump",
    "read_traces",
    "summarize",
]
