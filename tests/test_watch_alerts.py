"""Alerts: grouped, de-duplicated and resolved; the Alertmanager webhook body has the
version 4 shape; the shipped JSON Schema is the model's; stored in the failure-mode database
once per message."""

from __future__ import annotations

import json

from twin.predict.alerts import (
    Alert,
    AlertBook,
    Condition,
    Evidence,
    Mitigation,
    alertmanager_payload,
    database_rows,
    schema_text,
    shipped_schema,
)


def _cond(service: str = "cart", kind: str = "latency") -> Condition:
    return Condition(
        name="FailureMode",
        kind=kind,
        root_cause=(service, "checkout"),
        root_cause_probability=(0.7, 0.3),
        probability=0.8,
        time_to_breach_s=240.0,
        mitigation=Mitigation(source="none", description="no mitigation known"),
        evidence=Evidence(reason="anomaly"),
        summary=f"{kind} at {service}",
    )


def test_a_condition_that_holds_fires_once_then_resolves_once() -> None:
    book = AlertBook(horizon_s=1800, resolve_after=2)
    sent: list[Alert] = []
    for t in range(0, 600, 60):  # the same condition for ten windows
        sent += book.update(float(t), [_cond()])
    assert [a.status for a in sent] == ["firing"]
    sent += book.update(600.0, [])  # one clear window: not yet resolved
    assert len(sent) == 1
    sent += book.update(660.0, [])
    assert [a.status for a in sent] == ["firing", "resolved"]
    assert sent[1].fingerprint == sent[0].fingerprint
    assert sent[1].starts_at == 0.0 and sent[1].time == 660.0


def test_a_changed_kind_is_sent_again_and_another_service_is_another_group() -> None:
    book = AlertBook(horizon_s=1800)
    a = book.update(0.0, [_cond()])
    b = book.update(60.0, [_cond(kind="cpu_exhaustion")])
    c = book.update(120.0, [_cond(kind="cpu_exhaustion"), _cond(service="currency")])
    assert len(a) == len(b) == 1 and b[0].kind == "cpu_exhaustion"
    assert [x.root_cause[0] for x in c] == ["currency"]
    assert len({a[0].fingerprint, c[0].fingerprint}) == 2


def test_duplicates_in_one_window_are_one_message() -> None:
    book = AlertBook(horizon_s=1800)
    assert len(book.update(0.0, [_cond(), _cond()])) == 1


def test_alertmanager_payload_has_the_version_4_shape() -> None:
    book = AlertBook(horizon_s=1800, resolve_after=1)
    fired = book.update(1661140434.0, [_cond()])
    body = alertmanager_payload(fired, external_url="http://twin.example:8080")
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert body["version"] == "4" and body["status"] == "firing"
    entry = body["alerts"][0]
    assert set(entry) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert entry["endsAt"] == "0001-01-01T00:00:00Z"
    assert entry["startsAt"] == "2022-08-22T03:53:54Z"
    assert all(
        isinstance(v, str) for v in [*entry["labels"].values(), *entry["annotations"].values()]
    )
    assert body["groupKey"] == '{}:{alertname="FailureMode", service="cart"}'
    assert body["groupLabels"] == {"alertname": "FailureMode", "service": "cart"}
    resolved = alertmanager_payload(book.update(1661140494.0, []))
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2022-08-22T03:54:54Z"
    json.dumps(body, allow_nan=False)


def test_the_shipped_schema_file_is_the_models_schema() -> None:
    assert shipped_schema() == schema_text()
    assert json.loads(shipped_schema())["title"] == "Alert"


def test_alerts_are_stored_once_in_the_failure_mode_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from twin.store import Store
    from twin.store.documents import add_alerts, counts

    store = Store(f"sqlite:///{tmp_path / 'modes.db'}")
    try:
        fired = AlertBook(horizon_s=1800).update(0.0, [_cond()])
        assert add_alerts(store, database_rows(fired)) == ["created"]
        assert add_alerts(store, database_rows(fired)) == ["already_existed"]
        assert counts(store)["alerts"] == 1
    finally:
        store.close()


def test_a_firing_group_is_sent_again_when_its_first_three_candidates_change() -> None:
    book = AlertBook(horizon_s=1800)
    first = book.update(0.0, [_cond()])
    same = book.update(60.0, [_cond()])
    moved = _cond()
    moved = Condition(**{**moved.__dict__, "root_cause": ("cart", "currency")})
    again = book.update(120.0, [moved])
    assert len(first) == 1 and same == [] and len(again) == 1
    assert again[0].root_cause == ["cart", "currency"] and again[0].starts_at == 0.0
