"""The guard's latest decision over HTTP, for progressive delivery tools (127.0.0.1 only).

- ``GET /decision``: an Argo Rollouts ``web`` metric provider. The body is JSON (``decision``,
  ``p_breach``, ``score``, ``classification``, ``reason``, ``elapsed_seconds``), so an
  AnalysisTemplate reads it with ``jsonPath: "{$}"`` and
  ``successCondition: result.decision == 'go'``,
  ``failureCondition: result.decision in ['no-go', 'rollback']`` (``hold`` is neither:
  Argo counts it inconclusive).
- ``GET|POST /flagger/gate``: a Flagger ``rollout`` (or ``confirm-*``) webhook. Flagger
  continues on a 2xx answer and counts anything else as a failed check (after
  ``analysis.threshold`` of them it rolls back): 200 for ``go`` and ``hold``, 503 for
  ``no-go`` and ``rollback``.
- ``GET|POST /flagger/rollback``: a Flagger ``rollback`` webhook, whose meaning is the
  reverse: a 2xx answer makes Flagger stop the analysis and roll back at once. 200 only for
  ``rollback``, 409 otherwise.
- ``GET /healthz``: 200.

Before the first interval the decision is ``hold``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from twin.change.guard import DecisionRecord


class _HasLatest(Protocol):
    latest: DecisionRecord | None


def decision_body(rec: DecisionRecord | None) -> dict[str, Any]:
    """The JSON the endpoint answers with."""
    if rec is None:
        return {
            "decision": "hold",
            "p_breach": None,
            "score": None,
            "classification": "nodata",
            "reason": "no interval evaluated yet",
            "elapsed_seconds": 0.0,
        }
    return {
        "decision": rec.decision,
        "p_breach": rec.p_breach,
        "score": rec.score,
        "classification": rec.classification,
        "reason": rec.reason,
        "elapsed_seconds": rec.elapsed_seconds,
    }


def status_for(path: str, decision: str) -> int | None:
    """The HTTP status for ``path`` at ``decision`` (None: unknown path)."""
    if path in {"/decision", "/healthz"}:
        return 200
    if path == "/flagger/gate":
        return 200 if decision in ("go", "hold") else 503
    if path == "/flagger/rollback":
        return 200 if decision == "rollback" else 409
    return None


def serve_decisions(guard: _HasLatest, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``guard.latest`` on ``host:port`` in a daemon thread; ``shutdown()`` stops it."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the decision endpoint listens on the loopback interface only")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 1 << 20))  # Flagger's payload: not needed
            body = decision_body(guard.latest)
            status = status_for(path, str(body["decision"]))
            if status is None:
                status, body = 404, {"error": f"no such path {path!r}"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _answer  # noqa: N815 - the stdlib's names
        do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="decision-endpoint").start()
    return server


__all__ = ["decision_body", "serve_decisions", "status_for"]
