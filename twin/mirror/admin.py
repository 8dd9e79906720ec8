"""Envoy's admin interface on loopback: readiness, counters, and runtime values (read and
changed without a restart, which is how the chaos budget moves the transformation levels)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class EnvoyAdmin:
    """The admin endpoint of one Envoy at ``127.0.0.1:port``."""

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.timeout = timeout

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=self.timeout) as r:
            return str(r.read().decode())

    def ready(self) -> bool:
        """Envoy answers ``/ready`` with LIVE (its listeners are up)."""
        try:
            return self._get("/ready").strip() == "LIVE"
        except (OSError, urllib.error.URLError):
            return False

    def counters(self, prefix: str) -> dict[str, int]:
        """Every counter whose name starts with ``prefix`` (a plain string, not a regex)."""
        q = urllib.parse.urlencode({"filter": "^" + _re_escape(prefix), "type": "Counters"})
        out: dict[str, int] = {}
        for line in self._get(f"/stats?{q}").splitlines():
            name, sep, value = line.partition(": ")
            if sep and value.strip().isdigit():
                out[name.strip()] = int(value.strip())
        return out

    def runtime(self) -> dict[str, str]:
        """Current runtime values (final values over all layers)."""
        doc: dict[str, Any] = json.loads(self._get("/runtime"))
        return {k: str(v.get("final_value", "")) for k, v in doc.get("entries", {}).items()}

    def modify(self, values: dict[str, Any]) -> None:
        """Set runtime values in the admin layer (``POST /runtime_modify``)."""
        if not values:
            return
        q = urllib.parse.urlencode(
            {k: _text(v) for k, v in values.items()}, quote_via=urllib.parse.quote
        )
        req = urllib.request.Request(f"{self.base}/runtime_modify?{q}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            r.read()


def _text(value: Any) -> str:
    """A runtime value as the admin layer parses it: booleans as true/false, messages (a
    FractionalPercent) as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _re_escape(text: str) -> str:
    return "".join("\\" + c if c in ".^$*+?{}[]\\|()" else c for c in text)


__all__ = ["EnvoyAdmin"]
