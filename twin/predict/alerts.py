"""The alerts ``twin watch`` raises: one document, three ways out.

- **JSON lines** (``alerts.jsonl``): one :class:`Alert` per line; its JSON Schema ships in
  the package (``alert.schema.json``, generated from the model: :func:`schema_text`), so
  consumers validate without importing the twin.
- **Alertmanager webhook** (:func:`alertmanager_payload`): the version 4 body Alertmanager
  posts to a ``webhook_config`` receiver (``receiver``, ``status``, ``alerts[]`` with
  ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``, ``fingerprint``;
  ``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``, ``version``,
  ``groupKey``, ``truncatedAlerts``), so existing routing, silencing and paging work on it.
- **The failure-mode database** (:func:`database_rows` for
  :func:`twin.store.documents.add_alerts`).

:class:`AlertBook` groups and de-duplicates: an alert's identity is its group labels (the
alert name and the first root-cause service); while the condition holds, the group fires
once (later windows update it without a new notification unless the fault kind or the
first three root-cause candidates change, as the recognition reads more of the fault, or
``repeat_s`` passes), and when the condition has been clear for
``resolve_after`` windows it sends one ``resolved`` message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_FILE = "alert.schema.json"

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class MetricEvidence(BaseModel):
    """One metric that moved: its value now, what was expected, and by how much it moved."""

    model_config = _FROZEN
    service: str = Field(description="service as the telemetry names it")
    metric: str = Field(description="metric name (e.g. latency_p99 in seconds, success in [0, 1])")
    value: float | None = Field(description="value in the window, in the metric's unit")
    expected: float | None = Field(None, description="forecast for the window, same unit")
    score: float = Field(description="anomaly score (standardised residual, or the detector's)")


class Fingerprint(BaseModel):
    """The simulated failure fingerprint the telemetry matched."""

    model_config = _FROZEN
    name: str = Field(description="the fingerprint's name (fault kind and target)")
    similarity: float | None = Field(None, description="how well it matched, in [0, 1]")


class Evidence(BaseModel):
    """Why the alert was raised."""

    model_config = _FROZEN
    reason: str = Field(description="what fired: anomaly, breach, slo, or twin-diverged")
    metrics: list[MetricEvidence] = Field(default_factory=list, description="largest first")
    fingerprint: Fingerprint | None = Field(None, description="None without a recogniser")
    twin_error: float | None = Field(
        None, description="twin-vs-reality relative latency error of the window (0 is exact)"
    )
    entry_p99_s: float | None = Field(None, description="entry p99 latency observed (seconds)")
    entry_success: float | None = Field(None, description="entry success share observed")
    baseline_root_cause: list[str] = Field(
        default_factory=list,
        description="the statistical localiser's ranking (largest standardised change, BARO / "
        "N-sigma style) on the same windows, most likely first: the reference the recogniser "
        "is compared with",
    )


class SimulatedEffect(BaseModel):
    """What the twin saw over the horizon from the current state, without and with the
    mitigation (entry p99 in seconds, success share in [0, 1], P(breach))."""

    model_config = _FROZEN
    p99_without_s: float | None = None
    p99_with_s: float | None = None
    success_without: float | None = None
    success_with: float | None = None
    breach_without: float | None = Field(None, description="P(breach) without, in [0, 1]")
    breach_with: float | None = Field(None, description="P(breach) with, in [0, 1]")


class Mitigation(BaseModel):
    """The recommended action: a twin Policy document, where it came from, and its effect
    re-simulated from the current state before it was recommended."""

    model_config = _FROZEN
    source: Literal["campaign", "policy", "none"] = Field(
        description="campaign: best mitigation of the failure mode in the database; policy: "
        "the learned policy's decision; none: nothing known"
    )
    description: str = Field(description="one line for people")
    policy: dict[str, Any] | None = Field(None, description="twin Policy document")
    effect: SimulatedEffect | None = None
    acted: bool = Field(False, description="sent through the enforcer's safety net (--act)")


class Alert(BaseModel):
    """One alert message. ``time`` is the end of the window it was raised (or resolved) on;
    ``starts_at`` when its group began firing."""

    model_config = _FROZEN
    time: float = Field(description="unix seconds of the window")
    status: Literal["firing", "resolved"]
    kind: str = Field(description="fault kind (the catalogue's names), or slo / twin-diverged")
    root_cause: list[str] = Field(
        description="services, most likely first, as telemetry spells them"
    )
    root_cause_probability: list[float] = Field(
        default_factory=list, description="probability of each root_cause entry, same order"
    )
    probability: float | None = Field(description="P(SLO breach within the horizon), [0, 1]")
    time_to_breach_s: float | None = Field(description="expected seconds to the breach; 0: now")
    horizon_s: float = Field(description="the horizon P(breach) is over (seconds)")
    mitigation: Mitigation
    evidence: Evidence
    group_key: str = Field(description="Alertmanager-style group key")
    fingerprint: str = Field(description="16 hex digits naming the alert's group")
    starts_at: float = Field(description="unix seconds the group began firing")
    summary: str = Field(description="one line for people")


def schema() -> dict[str, Any]:
    """The JSON Schema of one line of ``alerts.jsonl``."""
    return Alert.model_json_schema()


def schema_text() -> str:
    """The schema as shipped (``alert.schema.json``): sorted keys, two-space indent."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def shipped_schema() -> str:
    """The schema file in the installed package."""
    return resources.files("twin.predict").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


# -- grouping ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """What the watch saw in one window that warrants an alert (before grouping)."""

    name: str
    kind: str
    root_cause: tuple[str, ...]
    root_cause_probability: tuple[float, ...]
    probability: float | None
    time_to_breach_s: float | None
    mitigation: Mitigation
    evidence: Evidence
    summary: str


def _labels(name: str, service: str) -> dict[str, str]:
    return {"alertname": name, "service": service}


def _group_key(labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{}:{" + inner + "}"


def _fingerprint(labels: dict[str, str]) -> str:
    text = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class _Open:
    alert: Alert
    clear: int = 0
    sent_at: float = 0.0


@dataclass
class AlertBook:
    """Open alert groups; :meth:`update` takes one window's conditions and answers the
    messages to send (new firing groups, changed or repeated ones, and resolutions)."""

    horizon_s: float
    resolve_after: int = 2
    repeat_s: float = 3600.0
    open: dict[str, _Open] = field(default_factory=dict)

    def update(self, time: float, conditions: Iterable[Condition]) -> list[Alert]:
        out: list[Alert] = []
        seen: set[str] = set()
        for c in conditions:
            labels = _labels(c.name, c.root_cause[0] if c.root_cause else "")
            fp = _fingerprint(labels)
            if fp in seen:
                continue  # one message per group and window: the first (strongest) wins
            seen.add(fp)
            prev = self.open.get(fp)
            alert = Alert(
                time=time,
                status="firing",
                kind=c.kind,
                root_cause=list(c.root_cause),
                root_cause_probability=list(c.root_cause_probability),
                probability=c.probability,
                time_to_breach_s=c.time_to_breach_s,
                horizon_s=self.horizon_s,
                mitigation=c.mitigation,
                evidence=c.evidence,
                group_key=_group_key(labels),
                fingerprint=fp,
                starts_at=prev.alert.starts_at if prev else time,
                summary=c.summary,
            )
            if prev is None:
                self.open[fp] = _Open(alert, 0, time)
                out.append(alert)
                continue
            changed = (prev.alert.kind, prev.alert.root_cause[:3]) != (
                alert.kind,
                alert.root_cause[:3],
            )
            prev.alert, prev.clear = alert, 0
            if changed or time - prev.sent_at >= self.repeat_s:
                prev.sent_at = time
                out.append(alert)
        for fp in list(self.open):
            if fp in seen:
                continue
            o = self.open[fp]
            o.clear += 1
            if o.clear >= self.resolve_after:
                del self.open[fp]
                out.append(
                    o.alert.model_copy(
                        update={
                            "time": time,
                            "status": "resolved",
                            "summary": f"resolved: {o.alert.summary}",
                        }
                    )
                )
        return out

    def close(self, time: float) -> list[Alert]:
        """Nothing: groups still firing when the telemetry ends stay firing (no message)."""
        return []


# -- Alertmanager ------------------------------------------------------------------------------

_ZERO = "0001-01-01T00:00:00Z"


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return ""
    return f"{v:.3g}{unit}"


def am_alert(a: Alert, generator_url: str) -> dict[str, Any]:
    """One alert as an Alertmanager webhook ``alerts[]`` entry (labels and annotations are
    strings; ``endsAt`` is the zero time while firing)."""
    labels = {
        "alertname": a.group_key.split('alertname="', 1)[1].split('"', 1)[0],
        "service": a.root_cause[0] if a.root_cause else "",
        "kind": a.kind,
        "severity": "critical" if (a.time_to_breach_s == 0.0) else "warning",
    }
    annotations = {
        "summary": a.summary,
        "root_cause": ",".join(a.root_cause),
        "probability": _fmt(a.probability),
        "time_to_breach_s": _fmt(a.time_to_breach_s),
        "mitigation": a.mitigation.description,
    }
    return {
        "status": a.status,
        "labels": labels,
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": _rfc3339(a.starts_at),
        "endsAt": _rfc3339(a.time) if a.status == "resolved" else _ZERO,
        "generatorURL": generator_url,
        "fingerprint": a.fingerprint,
    }


def alertmanager_payload(
    alerts: list[Alert],
    *,
    receiver: str = "twin-watch",
    external_url: str = "",
    generator_url: str = "",
) -> dict[str, Any]:
    """The version 4 webhook body for one group's alerts (all of ``alerts`` must share a
    group key): firing while any alert in it fires."""
    if not alerts:
        raise ValueError("a webhook payload needs at least one alert")
    entries = [am_alert(a, generator_url) for a in alerts]

    def common(key: str) -> dict[str, str]:
        first = entries[0][key]
        return {k: v for k, v in first.items() if all(e[key].get(k) == v for e in entries)}

    group_labels = {k: entries[0]["labels"][k] for k in ("alertname", "service")}
    return {
        "version": "4",
        "groupKey": alerts[0].group_key,
        "truncatedAlerts": 0,
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common("labels"),
        "commonAnnotations": common("annotations"),
        "externalURL": external_url,
        "alerts": entries,
    }


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 5.0) -> str | None:
    """POST the payload; the problem as one line, or None when it was accepted."""
    import urllib.error
    import urllib.request

    body = json.dumps(payload, allow_nan=False).encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            code = resp.status
    except urllib.error.HTTPError as e:
        return f"webhook {url}: HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return f"webhook {url}: {e}"
    return None if 200 <= code < 300 else f"webhook {url}: HTTP {code}"


# -- database ----------------------------------------------------------------------------------


def database_rows(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """Rows for :func:`twin.store.documents.add_alerts` (the whole alert is the document)."""
    return [
        {
            "raised_at": _rfc3339(a.time),
            "service": ",".join(a.root_cause),
            "failure_mode": a.kind,
            "severity": "resolved" if a.status == "resolved" else "warning",
            "probability": a.probability,
            "lead_seconds": a.time_to_breach_s,
            "message": a.summary,
            **a.model_dump(mode="json"),
        }
        for a in alerts
    ]


__all__ = [
    "SCHEMA_FILE",
    "Alert",
    "AlertBook",
    "Condition",
    "Evidence",
    "Fingerprint",
    "MetricEvidence",
    "Mitigation",
    "SimulatedEffect",
    "alertmanager_payload",
    "am_alert",
    "database_rows",
    "post_webhook",
    "schema",
    "schema_text",
    "shipped_schema",
]
