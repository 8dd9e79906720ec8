"""Results: the typed :class:`Summary` (``summary.json``), the :class:`Stretch` a step returns,
the tidy time series and the sampled trace.

Nothing here refers to engine objects, so results pickle, cross process boundaries and
outlive the simulation.
"""

from twin.results.record import Number, Record
from twin.results.series import SERIES_COLUMNS, TRACE_COLUMNS, Results, TimeSeries, write_json
from twin.results.stretch import (
    EntryStretch,
    ServiceStretch,
    Stretch,
    StretchLatency,
)
from twin.results.summary import (
    EdgeSummary,
    EntrySummary,
    FaultRecord,
    Interval,
    LatencyStats,
    Outcomes,
    ServiceSummary,
    SloVerdict,
    SloVerdicts,
    Summary,
    Verdict,
)

__all__ = [
    "SERIES_COLUMNS",
    "TRACE_COLUMNS",
    "EdgeSummary",
    "EntryStretch",
    "EntrySummary",
    "FaultRecord",
    "Interval",
    "LatencyStats",
    "Number",
    "Outcomes",
    "Record",
    "Results",
    "ServiceStretch",
    "ServiceSummary",
    "SloVerdict",
    "SloVerdicts",
    "Stretch",
    "StretchLatency",
    "Summary",
    "TimeSeries",
    "Verdict",
    "write_json",
]
