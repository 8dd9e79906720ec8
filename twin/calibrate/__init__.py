"""Calibration: real telemetry (traces, Prometheus metrics) in, a Topology out.

Formats become tidy tables (:mod:`.traces`, :mod:`.metrics`), with times that are not finite
or far from the rest skipped and counted and the observed window measured by :mod:`.timeline`;
tidy tables become a call graph
and fitted distributions (:mod:`.callgraph`, :mod:`.service_time`); :mod:`.build` turns those
into a :class:`twin.topology.Topology`; :mod:`.run` does all of it from one
:class:`CalibrationConfig` and checks the calibrated twin against what was observed, with the
one accuracy measure of :mod:`.accuracy`. :func:`follow` keeps a calibrated twin in step with
a stream of observed :class:`Window` documents (:mod:`.recalibrate`). Only :mod:`.run`,
:mod:`.follow` and :mod:`.recalibrate` run the simulator.
"""

from twin.calibrate.accuracy import accuracy, accuracy_or_none
from twin.calibrate.build import BuildOptions, Calibration, build_topology
from twin.calibrate.callgraph import CallGraph, build_callgraph
from twin.calibrate.mask import Masker
from twin.calibrate.metrics import MetricMap, PrometheusClient, load_dump, summarize
from twin.calibrate.recalibrate import FollowError, RecalibrateConfig, Recalibrator, follow
from twin.calibrate.run import CalibrationConfig, CalibrationRecord, run_calibration
from twin.calibrate.service_time import Fit, fit_service_time
from twin.calibrate.traces import ReadReport, read_traces
from twin.calibrate.window import EdgeFigures, ServiceFigures, Window

__all__ = [
    "BuildOptions",
    "Calibration",
    "CalibrationConfig",
    "CalibrationRecord",
    "CallGraph",
    "EdgeFigures",
    "Fit",
    "FollowError",
    "Masker",
    "MetricMap",
    "PrometheusClient",
    "ReadReport",
    "RecalibrateConfig",
    "Recalibrator",
    "ServiceFigures",
    "Window",
    "accuracy",
    "accuracy_or_none",
    "build_callgraph",
    "build_topology",
    "fit_service_time",
    "follow",
    "load_dump",
    "read_traces",
    "run_calibration",
    "summarize",
]
