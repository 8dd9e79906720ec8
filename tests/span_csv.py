"""Synthetic span tables in the CSV form calibration reads, for tests that generate traces
from a known topology: one row per span, times in Unix nanoseconds, ids ``s1, s2, ...`` in
the order spans are opened."""

from __future__ import annotations

from pathlib import Path

HEADER = "TraceID,SpanID,ParentID,ServiceName,OperationName,StartTimeUnixNano,EndTimeUnixNano"


class SpanCsv:
    """Rows of a span table; a root's row is reserved when it opens (so it comes first, as
    in an exporter's file) and written when its end is known."""

    def __init__(self) -> None:
        self.rows = [HEADER]
        self._n = 0
        self._open: dict[str, int] = {}

    def _row(
        self, trace: str, sid: str, parent: str, svc: str, op: str, t0: float, t1: float
    ) -> str:
        return f"{trace},{sid},{parent},{svc},{op},{int(t0 * 1e9)},{int(t1 * 1e9)}"

    def span(self, trace: str, parent: str, svc: str, op: str, t0: float, t1: float) -> str:
        """A finished span; its id."""
        self._n += 1
        sid = f"s{self._n}"
        self.rows.append(self._row(trace, sid, parent, svc, op, t0, t1))
        return sid

    def open_root(self) -> str:
        """A root span's id, its row kept in place until :meth:`close_root`."""
        self._n += 1
        sid = f"s{self._n}"
        self._open[sid] = len(self.rows)
        self.rows.append("")
        return sid

    def close_root(self, sid: str, trace: str, svc: str, op: str, t0: float, t1: float) -> None:
        self.rows[self._open.pop(sid)] = self._row(trace, sid, "root", svc, op, t0, t1)

    def write(self, path: Path) -> Path:
        path.write_text("\n".join(self.rows) + "\n", encoding="utf-8")
        return path
