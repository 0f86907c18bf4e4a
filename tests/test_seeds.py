"""Each seed document's example request, sent as written with its own auth scheme, is
accepted and stored in the canonical shape."""

from __future__ import annotations

import base64

from starlette.testclient import TestClient

from collector.models import App
from collector.store import Store
from tests.conftest import auth
from tests.dbrows import json_value, scalar


def stored(store: Store, app: App) -> list[dict]:
    return list(store.export_events(app.app_id))


def test_seed_000_userboost_single_and_batch(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    single = {
        "event": "user_signed_up",
        "user": {"id": "user_123", "traits": {"email": "a@example.com", "plan": "pro"}},
        "timestamp": "2026-11-22T10:00:00Z",
        "properties": {"source": "landing_page", "trial_end": "2025-02-15", "amount": 99.99},
    }
    r = client.post("/v1/event", json=single, headers=auth(key))
    assert r.status_code == 202, r.text
    assert r.json()["success"] is True
    assert r.json()["message"] == "Event tracked successfully"
    assert r.json()["event_id"].startswith("evt_")

    batch = {"events": [{"event": "profile_completed", "user": "user_123"}, single]}
    r = client.post("/v1/events", json=batch, headers=auth(key))
    assert r.status_code == 202, r.text
    assert len(r.json()["accepted"]) == 2

    rows = stored(store, app)
    assert [row["event"] for row in rows].count("user_signed_up") == 2
    first = next(row for row in rows if row["event"] == "user_signed_up")
    assert first["user_id"] == "user_123"
    assert first["timestamp"] == "2026-11-22T10:00:00.000Z"
    assert first["properties"]["trial_end"] == "2025-02-15"
    traits = scalar(
        db, "SELECT traits FROM users WHERE app_id = ? AND user_id = 'user_123'", [app.app_id]
    )
    assert json_value(traits)["plan"] == "pro"


def test_seed_001_appizer_bearer_with_visitor_ip_and_ua(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    body = {
        "event_name": "purchase_completed",
        "user_id": "user_123",
        "properties": {"amount": 29.99, "currency": "USD", "product_id": "premium_plan"},
        "ip": "192.168.1.1",
        "ua": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
    }
    r = client.post(
        "/events",
        json=body,
        headers={
            **auth(key),
            "User-Agent": "python-requests/2.31",
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 202, r.text
    assert r.json() == {
        "success": True,
        "event_id": r.json()["event_id"],
        "message": "Event tracked successfully",
    }
    # The Appizer single shape at the batch path is one event too.
    r = client.post(
        "/v1/events",
        json={k: v for k, v in body.items() if k not in {"ip", "ua"}},
        headers=auth(key),
    )
    assert r.status_code == 202, r.text

    rows = stored(store, app)
    assert len(rows) == 2
    ctx = rows[0]["context"]
    # Enriched from the visitor's ip/ua in the body, never the posting server's headers.
    assert ctx["ip"] == "192.168.1.1"
    assert ctx["os"] == "Windows"
    assert ctx["is_bot"] is False
    assert rows[0]["properties"] == body["properties"]
    assert rows[1]["context"]["ip"] is None


def test_seed_002_user_email_and_typed_events_with_basic_auth(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    update = {
        "user": {"email": "[email protected]"},
        "event": {"update": {"firstname": "alexandru"}},
    }
    r = client.post("/v1/events", json=update, headers=basic)
    assert r.status_code == 202, r.text
    generic = {
        "user": {"email": "[email protected]"},
        "event": {"generic": {"generic": {"event_name": "my_event", "firstname": "alexandru"}}},
    }
    r = client.post("/v1/events", json=generic, headers=basic)
    assert r.status_code == 202, r.text
    confirmation = {
        "user": {"_id": "u_9"},
        "event": {"confirmation": {"orderId": "o_1", "total": 10}},
    }
    first = client.post("/v1/events", json=confirmation, headers=basic)
    second = client.post("/v1/events", json=confirmation, headers=basic)
    assert first.json().get("discarded") is None
    assert second.status_code == 202
    assert second.json()["discarded"] is True
    assert second.json()["reason"] == "duplicate orderId"

    rows = stored(store, app)
    assert [(r["event"], r["user_id"]) for r in rows] == [
        ("my_event", "[email protected]"),
        ("confirmation", "u_9"),
    ]
    assert rows[0]["properties"] == {"firstname": "alexandru"}
    traits = scalar(db, "SELECT traits FROM users WHERE user_id = '[email protected]'")
    assert "alexandru" in json_value(traits).values()
    assert store.discard_counts(app.app_id) == {"duplicate orderId": 1}


def test_seed_003_cueflow_event_key_and_external_id(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    body = {
        "externalId": "user-123",
        "eventKey": "purchase_completed",
        "properties": {"amount": 99.99, "currency": "USD", "plan": "pro", "method": "credit_card"},
    }
    r = client.post("/api/v1/events", json=body, headers=auth(key))
    assert r.status_code == 202, r.text
    (row,) = stored(store, app)
    assert (row["event"], row["user_id"]) == ("purchase_completed", "user-123")
    assert row["properties"]["plan"] == "pro"


def test_seed_004_userpilot_token_auth_and_metadata(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    r = client.post(
        "/v1/track",
        json={
            "user_id": "user_1",
            "event_name": "subscription_changed",
            "metadata": {"plan": "team"},
        },
        headers={"Authorization": f"Token {key}", "X-API-Version": "2020-09-22"},
    )
    assert r.status_code == 202, r.text
    (row,) = stored(store, app)
    assert (row["event"], row["user_id"], row["properties"]) == (
        "subscription_changed",
        "user_1",
        {"plan": "team"},
    )


def test_seed_002_user_with_id_and_email_keeps_the_email_as_a_trait(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    body = {
        "user": {"_id": "u_5", "email": "ana@example.com"},
        "event": {"confirmation": {"orderId": "o_5"}},
    }
    r = client.post("/v1/events", json=body, headers=auth(key))
    assert r.status_code == 202, r.text
    (row,) = stored(store, app)
    assert row["user_id"] == "u_5"
    traits = scalar(db, "SELECT traits FROM users WHERE user_id = 'u_5'")
    assert json_value(traits) == {"email": "ana@example.com"}


def test_seed_004_metadata_beside_properties_is_merged_properties_winning(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    body = {
        "user_id": "user_1",
        "event_name": "subscription_changed",
        "metadata": {"plan": "team", "seats": 5},
        "properties": {"plan": "business", "coupon": "X"},
    }
    r = client.post("/v1/track", json=body, headers={"Authorization": f"Token {key}"})
    assert r.status_code == 202, r.text
    (row,) = stored(store, app)
    assert row["properties"] == {"plan": "business", "seats": 5, "coupon": "X"}
    body["metadata"] = {"note": "a\x00b"}
    r = client.post("/v1/track", json=body, headers={"Authorization": f"Token {key}"})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {"field": "metadata.note", "message": "must not contain NUL characters"}
    ]


def test_seed_errors_name_the_fields_each_api_documents(client: TestClient, key: str) -> None:
    r = client.post("/api/v1/events", json={"eventKey": "purchase_completed"}, headers=auth(key))
    assert r.status_code == 400
    assert r.json()["errors"] == [{"field": "externalId", "message": "is required"}]
    r = client.post(
        "/v1/track",
        json={"user_id": "user_1", "event_name": "subscription_changed", "metadata": "team"},
        headers={"Authorization": f"Token {key}"},
    )
    assert r.status_code == 400
    assert r.json()["errors"] == [{"field": "metadata", "message": "must be an object"}]
    r = client.post(
        "/v1/events", json={"events": [{"event_name": "purchase_completed"}]}, headers=auth(key)
    )
    assert r.status_code == 400
    assert r.json()["errors"] == [{"field": "events[0].user_id", "message": "is required"}]
