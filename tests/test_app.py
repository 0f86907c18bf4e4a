"""HTTP behaviour of the ingestion endpoints (app.py + pipeline.py) against a real SQLite
file, with lifespan running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from collector.ingest.ratelimit import RateLimiter
from collector.models import App
from collector.settings import Settings
from collector.store import Store
from collector.web.app import create_app
from collector.web.ingest import BUILD_SLICE
from tests.conftest import CHROME_UA, ORIGIN, auth, browser
from tests.dbrows import json_value, rows, scalar


def events(store: Store, app: App) -> list[dict]:
    return list(store.export_events(app.app_id))


def assert_error_shape(body: dict, field: str) -> None:
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    assert field in [e["field"] for e in body["errors"]], body
    assert all(set(e) == {"field", "message"} for e in body["errors"])


# Browser path ---------------------------------------------------------------------


def test_browser_text_plain_from_allowed_origin(client: TestClient, store: Store, app: App) -> None:
    body = {
        "app_id": app.app_id,
        "events": [
            {
                "event": "page_viewed",
                "anonymous_id": "anon-1",
                "context": {"url": "https://shop.example.com/a", "path": "/a", "title": "A"},
            }
        ],
    }
    with TestClient(client.app, client=("203.0.113.7", 50000)) as peer:  # a real address
        r = peer.post("/v1/events", content=orjson.dumps(body), headers=browser())
    assert r.status_code == 202, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-expose-headers" not in r.headers  # no Retry-After to expose
    (row,) = events(store, app)
    ctx = row["context"]
    assert ctx["source"] == "browser"
    assert ctx["ip"] == "203.0.113.7"  # the socket's peer (the app keeps ip_mode full)
    assert (ctx["browser"], ctx["os"], ctx["device_type"]) == ("Chrome", "Windows", "desktop")
    assert ctx["path"] == "/a" and ctx["title"] == "A"
    assert row["anonymous_id"] == "anon-1"


def test_browser_app_id_in_query_string_and_wildcard_origin(
    client: TestClient, store: Store, app: App
) -> None:
    body = {"event": "page_viewed", "anonymous_id": "a"}
    r = client.post(
        f"/v1/event?app_id={app.app_id}",
        content=orjson.dumps(body),
        headers=browser(origin="https://deep.sub.example.org"),
    )
    assert r.status_code == 202, r.text
    assert len(events(store, app)) == 1


def test_browser_referer_fallback(client: TestClient, store: Store, app: App) -> None:
    headers = {"Referer": ORIGIN + "/checkout?x=1", "Content-Type": "text/plain"}
    body = {"app_id": app.app_id, "event": "page_viewed", "anonymous_id": "a"}
    r = client.post("/v1/event", content=orjson.dumps(body), headers=headers)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({}, "origin"),
        ({"Origin": "https://evil.example.net"}, "origin"),
        ({"Origin": "http://shop.example.com"}, "origin"),  # wrong scheme
        ({"Origin": "https://shop.example.com:8443"}, "origin"),  # wrong port
        ({"Origin": "https://example.org"}, "origin"),  # wildcard excludes the apex
    ],
)
def test_browser_origin_refused(
    client: TestClient, store: Store, app: App, headers: dict[str, str], field: str
) -> None:
    body = {"app_id": app.app_id, "event": "page_viewed", "anonymous_id": "a"}
    r = client.post(
        "/v1/event", content=orjson.dumps(body), headers={**headers, "Content-Type": "text/plain"}
    )
    assert r.status_code == 403
    assert_error_shape(r.json(), field)
    assert "access-control-allow-origin" not in r.headers
    assert events(store, app) == []


def test_browser_unknown_app_and_missing_app(client: TestClient, app: App) -> None:
    r = client.post(
        "/v1/event",
        content=b'{"app_id":"app_nope","event":"x","anonymous_id":"a"}',
        headers=browser(),
    )
    assert r.status_code == 403
    assert_error_shape(r.json(), "app_id")
    r = client.post("/v1/event", content=b'{"event":"x","anonymous_id":"a"}', headers=browser())
    assert r.status_code == 401
    assert_error_shape(r.json(), "app_id")


def test_browser_cannot_set_ip_or_user_agent(client: TestClient, store: Store, app: App) -> None:
    body = {
        "app_id": app.app_id,
        "event": "page_viewed",
        "anonymous_id": "a",
        "ip": "8.8.8.8",
        "ua": "Googlebot/2.1",
        "context": {"ip": "1.2.3.4", "user_agent": "x", "is_bot": False},
    }
    r = client.post("/v1/event", content=orjson.dumps(body), headers=browser())
    assert r.status_code == 202
    assert any(w["field"] == "ip" for w in r.json()["warnings"])
    (row,) = events(store, app)
    assert row["context"]["ip"] not in {"8.8.8.8", "1.2.3.4"}
    assert row["context"]["user_agent"] == CHROME_UA


def test_cors_preflight_only_for_allowed_origins(client: TestClient, app: App) -> None:
    r = client.options(
        "/v1/events", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    r = client.options("/v1/events", headers={"Origin": "https://evil.example.net"})
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    r = client.options(
        f"/v1/event?app_id={app.app_id}", headers={"Origin": "https://a.example.org"}
    )
    assert r.status_code == 204


def test_webdriver_signal_flags_bot(client: TestClient, store: Store, app: App) -> None:
    body = {
        "app_id": app.app_id,
        "event": "page_viewed",
        "anonymous_id": "a",
        "context": {"webdriver": True},
    }
    assert (
        client.post("/v1/event", content=orjson.dumps(body), headers=browser()).status_code == 202
    )
    (row,) = events(store, app)
    assert row["context"]["is_bot"] is True
    assert row["context"]["bot_reason"] == "webdriver"
    assert "webdriver" not in row["context"]


def test_headless_and_http_library_on_browser_path(
    client: TestClient, store: Store, app: App
) -> None:
    body = orjson.dumps({"app_id": app.app_id, "event": "page_viewed", "anonymous_id": "a"})
    headless = CHROME_UA.replace("Chrome/", "HeadlessChrome/")
    client.post("/v1/event", content=body, headers=browser(ua=headless))
    client.post("/v1/event", content=body, headers=browser(ua="curl/8.4.0"))
    reasons = [row["context"]["bot_reason"] for row in events(store, app)]
    assert reasons == ["headless", "http_library"]


def test_bot_policy_drop_stores_nothing(client: TestClient, store: Store, app: App) -> None:
    store.update_app(app.app_id, settings={"bot_policy": "drop"})
    body = {
        "app_id": app.app_id,
        "events": [{"event": "page_viewed", "anonymous_id": "a", "context": {"webdriver": True}}],
    }
    r = client.post("/v1/events", content=orjson.dumps(body), headers=browser())
    assert r.status_code == 202
    assert r.json()["discarded"] == [{"index": 0, "reason": "bot: webdriver"}]
    assert events(store, app) == []


# Server path ------------------------------------------------------------------------


def test_bad_or_missing_key_is_401(client: TestClient, app: App) -> None:
    for headers in ({"Authorization": "Bearer sk_wrong"}, {"Authorization": "Digest abc"}):
        r = client.post("/v1/event", json={"event": "a", "user": "u"}, headers=headers)
        assert r.status_code == 401
        assert_error_shape(r.json(), "authorization")
    r = client.post("/v1/event", json={"event": "a", "user": "u"})
    assert r.status_code == 401


def test_revoked_key_is_refused(client: TestClient, store: Store, app: App) -> None:
    key_id, key = store.create_key(app.app_id)
    store.revoke_key(key_id)
    r = client.post("/v1/event", json={"event": "a", "user": "u"}, headers=auth(key))
    assert r.status_code == 401


def test_one_apps_key_never_writes_to_another_app(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    other = store.create_app("Other", ["https://other.example"], {})
    body = {"app_id": other.app_id, "event": "a", "user": "u"}
    r = client.post("/v1/event", json=body, headers=auth(key))
    assert r.status_code == 202
    assert len(events(store, app)) == 1
    assert events(store, other) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "u"}, "event"),
        ({"event": "a"}, "user"),
        ({"event": "", "user": "u"}, "event"),
        ({"event": "x" * 256, "user": "u"}, "event"),
        ({"event": 5, "user": "u"}, "event"),
        ({"event": "a\u0000b", "user": "u"}, "event"),
        ({"event": "a", "user": {"traits": {}}}, "user.id"),
        ({"event": "a", "user": ["u"]}, "user"),
        ({"event": "a", "user": "u", "properties": [1]}, "properties"),
        (
            {"event": "a", "user": "u", "properties": {"a": {"b": {"c": {"d": 1}}}}},
            "properties.a.b.c",
        ),
        ({"event": "a", "user": "u", "properties": {"s": "x\u0000"}}, "properties.s"),
        ({"event": "a", "user": "u", "timestamp": "yesterday"}, "timestamp"),
        ({"event": "a", "user": "u", "timestamp": True}, "timestamp"),
        ({"event": "a", "user": "u", "context": "x"}, "context"),
        ({"event": "a", "user": "u", "message_id": {"x": 1}}, "message_id"),
        ({"event": "a", "user": "u", "sent_at": "nope"}, "sent_at"),
        ({"events": []}, "events"),
        ({"events": {"a": 1}}, "events"),
        ({"user": {"email": "e@x"}, "event": {"a": {}, "b": {}}}, "event"),
        ({"user": {"email": "e@x"}, "event": {"generic": {"x": 1}}}, "event.generic.event_name"),
    ],
)
def test_invalid_event_names_its_field(
    client: TestClient, key: str, body: dict, field: str
) -> None:
    r = client.post("/v1/event", json=body, headers=auth(key))
    assert r.status_code == 400, r.text
    assert_error_shape(r.json(), field)


def test_every_problem_is_named(client: TestClient, key: str) -> None:
    r = client.post("/v1/event", json={"properties": 3, "timestamp": "x"}, headers=auth(key))
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"event", "user", "properties", "timestamp"} <= fields


def test_batch_reports_invalid_by_index_and_stores_the_valid(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    batch = {
        "events": [
            {"event": "a_ok", "user": "u1"},
            {"event": "", "user": "u1"},
            "not an object",
            {"event": "SignedUp", "user": "u2"},
        ]
    }
    r = client.post("/v1/events", json=batch, headers=auth(key))
    assert r.status_code == 202
    body = r.json()
    assert len(body["accepted"]) == 2
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert body["warnings"][0]["index"] == 3 and body["warnings"][0]["field"] == "event"
    assert [row["event"] for row in events(store, app)] == ["a_ok", "SignedUp"]


def test_batch_with_nothing_valid_is_400(client: TestClient, key: str) -> None:
    r = client.post("/v1/events", json={"events": [{"event": ""}, 5]}, headers=auth(key))
    assert r.status_code == 400
    assert_error_shape(r.json(), "events[0].event")
    assert_error_shape(r.json(), "events[0].user")
    # Not an object: the item itself is named, not a field of it.
    assert_error_shape(r.json(), "events[1]")
    assert "events[1].event" not in [e["field"] for e in r.json()["errors"]]


def test_snake_case_warning(client: TestClient, key: str) -> None:
    r = client.post("/v1/event", json={"event": "Signed Up", "user": "u"}, headers=auth(key))
    assert r.status_code == 202
    assert r.json()["warnings"][0]["field"] == "event"
    r = client.post("/v1/event", json={"event": "signed_up", "user": "u"}, headers=auth(key))
    assert "warnings" not in r.json()


@pytest.mark.parametrize(
    ("content", "ctype", "status", "field"),
    [
        (b"{not json", "application/json", 400, "body"),
        (b"", "application/json", 400, "body"),
        (b"[1, 2", "text/plain", 400, "body"),
        (b'"just a string"', "application/json", 400, "body"),
        (b"\xff\xfe{}", "application/json", 400, "body"),
        (b'{"event": "a\x00", "user": "u"}', "application/json", 400, "body"),
        (b"a=b", "application/x-www-form-urlencoded", 415, "content-type"),
        (b"<xml/>", "application/xml", 415, "content-type"),
    ],
)
def test_malformed_bodies(
    client: TestClient, key: str, content: bytes, ctype: str, status: int, field: str
) -> None:
    r = client.post("/v1/event", content=content, headers={**auth(key), "Content-Type": ctype})
    assert r.status_code == status, r.text
    assert_error_shape(r.json(), field)


def test_too_large(client: TestClient, store: Store, app: App, key: str) -> None:
    big = {"event": "a", "user": "u", "properties": {"s": "x" * (600 * 1024)}}
    body = orjson.dumps(big)
    r = client.post(
        "/v1/event", content=body, headers={**auth(key), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert_error_shape(r.json(), "body")
    assert f"is {len(body)} bytes" in r.json()["errors"][0]["message"]  # the size received
    one_big = {"event": "a", "user": "u", "properties": {"s": "x" * (40 * 1024)}}
    r = client.post("/v1/event", json=one_big, headers=auth(key))
    assert r.status_code == 413
    assert_error_shape(r.json(), "event")
    r = client.post(
        "/v1/events", json={"events": [one_big, {"event": "small", "user": "u"}]}, headers=auth(key)
    )
    assert r.status_code == 202
    assert r.json()["errors"][0]["index"] == 0
    assert [row["event"] for row in events(store, app)] == ["small"]


def test_unknown_path_and_method(client: TestClient) -> None:
    r = client.get("/v1/nope")
    assert r.status_code == 404
    assert_error_shape(r.json(), "path")
    r = client.get("/v1/event")
    assert r.status_code == 405
    assert_error_shape(r.json(), "method")


# Timestamps -----------------------------------------------------------------------


def test_timestamps_iso_epoch_default_skew_and_clamp(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    from collector.timeutil import now_ms, parse_timestamp

    before = now_ms()
    batch = {
        "sent_at": "2030-01-01T00:00:10Z",  # the client's clock is years ahead
        "events": [
            {"event": "skewed", "user": "u", "timestamp": "2030-01-01T00:00:00Z"},
        ],
    }
    client.post("/v1/events", json=batch, headers=auth(key))
    client.post(
        "/v1/event",
        json={"event": "epoch", "user": "u", "timestamp": 1763805600000},
        headers=auth(key),
    )
    client.post("/v1/event", json={"event": "default", "user": "u"}, headers=auth(key))
    r = client.post(
        "/v1/event",
        json={"event": "future", "user": "u", "timestamp": "2099-01-01T00:00:00Z"},
        headers=auth(key),
    )
    assert any(w["field"] == "timestamp" for w in r.json()["warnings"])
    after = now_ms()
    rows = {row["event"]: row for row in events(store, app)}
    skewed = parse_timestamp(rows["skewed"]["timestamp"])
    received = parse_timestamp(rows["skewed"]["received_at"])
    assert skewed == received - 10_000  # received − (sent_at − timestamp)
    assert rows["skewed"]["client_timestamp"] == "2030-01-01T00:00:00Z"
    assert rows["epoch"]["timestamp"] == "2025-11-22T10:00:00.000Z"
    assert before <= parse_timestamp(rows["default"]["timestamp"]) <= after
    assert before <= parse_timestamp(rows["future"]["timestamp"]) <= after
    assert rows["future"]["context"]["clock_skew_clamped"] is True


def test_epoch_ms_sent_at_corrects_skew_and_is_kept_as_iso(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    # The browser SDK sends both times as epoch milliseconds.
    from collector.timeutil import parse_timestamp

    batch = {
        "sent_at": 1893456010000,  # 2030-01-01T00:00:10Z: the client's clock is years ahead
        "events": [{"event": "skewed", "user": "u", "timestamp": 1893456000000}],
    }
    assert client.post("/v1/events", json=batch, headers=auth(key)).status_code == 202
    (row,) = events(store, app)
    assert row["sent_at"] == "2030-01-01T00:00:10.000Z"
    assert row["client_timestamp"] == "2030-01-01T00:00:00.000Z"
    skewed = parse_timestamp(row["timestamp"])
    assert skewed == parse_timestamp(row["received_at"]) - 10_000


# Idempotency and rules ---------------------------------------------------------------


def test_message_id_stored_once_and_acknowledged_again(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    body = {"event": "a", "user": "u", "message_id": "m-1"}
    first = client.post("/v1/event", json=body, headers=auth(key)).json()
    again = client.post("/v1/event", json=body, headers=auth(key)).json()
    assert again["success"] is True and again["duplicate"] is True
    assert again["event_id"] == first["event_id"]
    batch = client.post(
        "/v1/events",
        json={"events": [body, {**body, "message_id": "m-2"}, {**body, "message_id": "m-2"}]},
        headers=auth(key),
    ).json()
    assert batch["duplicates"][0] == first["event_id"]
    assert len(batch["accepted"]) == 1 and len(batch["duplicates"]) == 2
    assert len(events(store, app)) == 2


def test_message_ids_are_per_app(client: TestClient, store: Store, app: App, key: str) -> None:
    other = store.create_app("Other", [], {})
    other_key = store.create_key(other.app_id)[1]
    body = {"event": "a", "user": "u", "message_id": "same"}
    client.post("/v1/event", json=body, headers=auth(key))
    r = client.post("/v1/event", json=body, headers=auth(other_key))
    assert "duplicate" not in r.json()
    assert len(events(store, other)) == 1


def test_throttle_email_opened(client: TestClient, store: Store, app: App, key: str) -> None:
    def opened(user: str, ts: str) -> dict:
        return client.post(
            "/v1/event",
            json={"event": "email_opened", "user": user, "timestamp": ts},
            headers=auth(key),
        ).json()

    assert "discarded" not in opened("u1", "2026-11-22T10:00:00Z")
    assert opened("u1", "2026-11-22T10:19:59Z")["reason"] == "throttled"
    assert "discarded" not in opened("u2", "2026-11-22T10:05:00Z")  # per user
    assert "discarded" not in opened("u1", "2026-11-22T10:20:00Z")  # window over
    assert len(events(store, app)) == 3
    assert store.discard_counts(app.app_id) == {"throttled": 1}


def test_a_late_email_open_is_throttled_by_a_kept_one_after_it(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    def opened(ts: str) -> dict:
        return client.post(
            "/v1/event",
            json={"event": "email_opened", "user": "fay", "timestamp": ts},
            headers=auth(key),
        ).json()

    assert "discarded" not in opened("2026-11-22T10:00:00Z")
    assert opened("2026-11-22T10:05:00Z")["reason"] == "throttled"
    # Sent before the first, arriving after it: 10 minutes apart, so throttled too.
    assert opened("2026-11-22T09:50:00Z")["reason"] == "throttled"
    # Far enough back to stand alone; kept, and the window still runs from 10:00.
    assert "discarded" not in opened("2026-11-22T09:30:00Z")
    assert opened("2026-11-22T10:19:00Z")["reason"] == "throttled"
    assert "discarded" not in opened("2026-11-22T10:20:00Z")
    stored = sorted(e["timestamp"] for e in events(store, app))
    assert stored == [
        "2026-11-22T09:30:00.000Z",
        "2026-11-22T10:00:00.000Z",
        "2026-11-22T10:20:00.000Z",
    ]


def test_dedupe_rule_added_later_applies(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    store.add_rule(app.app_id, "invoice_paid", dedupe_key="invoice")
    body = {"event": "invoice_paid", "user": "u", "properties": {"invoice": 7}}
    assert "discarded" not in client.post("/v1/event", json=body, headers=auth(key)).json()
    # The app cache refreshes within seconds; the rule is read from a fresh App here.
    r = client.post("/v1/event", json={**body, "user": "other"}, headers=auth(key)).json()
    assert r.get("reason") == "duplicate invoice"


def test_require_known_user(client: TestClient, store: Store, app: App, key: str) -> None:
    store.update_app(app.app_id, settings={"require_known_user": True})
    r = client.post("/v1/event", json={"event": "a", "user": "stranger"}, headers=auth(key))
    assert r.status_code == 404
    assert_error_shape(r.json(), "user")
    r = client.post(
        "/v1/identify", json={"user": {"id": "known", "traits": {"plan": "pro"}}}, headers=auth(key)
    )
    assert r.status_code == 202 and r.json()["user_id"] == "known"
    r = client.post("/v1/event", json={"event": "a", "user": "known"}, headers=auth(key))
    assert r.status_code == 202
    batch = {
        "events": [
            {"type": "identify", "user": "new"},
            {"event": "b", "user": "new"},
            {"event": "c", "user": "ghost"},
        ]
    }
    r = client.post("/v1/events", json=batch, headers=auth(key))
    assert r.json()["errors"] == [
        {"index": 2, "errors": [{"field": "user", "message": "is not a known user of this app"}]}
    ]


def test_a_big_batch_built_in_slices_keeps_indexes_and_known_users(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    """A batch longer than BUILD_SLICE is enriched a slice at a time (the loop serves
    other requests in between): its answer is the one a single pass gives, errors by
    their index in the whole batch, a user identified in one slice known in the next."""
    store.update_app(app.app_id, settings={"require_known_user": True, "rate_limit_events": 0})
    size = BUILD_SLICE * 2 + 7
    events: list[dict[str, Any]] = [{"event": "e", "user": "known"} for _ in range(size)]
    events[0] = {"type": "identify", "user": "known"}
    events[BUILD_SLICE + 3] = {"event": "", "user": "known"}  # invalid, in the second slice
    events[-1] = {"event": "e", "user": "ghost"}  # unknown, in the last slice
    r = client.post("/v1/events", json={"events": events}, headers=auth(key))
    assert r.status_code == 202, r.text
    body = r.json()
    assert [e["index"] for e in body["errors"]] == [BUILD_SLICE + 3, size - 1]
    assert body["errors"][1]["errors"][0]["message"] == "is not a known user of this app"
    assert len(body["accepted"]) == size - 2  # all but the two errors
    store.index_all()
    # Every accepted track event is stored (the identify call is stored as traits).
    assert scalar(db, "SELECT count(*) FROM events WHERE app_id = ?", [app.app_id]) == size - 3


def test_identify_links_anonymous_history_to_user(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    before = {"app_id": app.app_id, "events": [{"event": "page_viewed", "anonymous_id": "anon-7"}]}
    client.post("/v1/events", content=orjson.dumps(before), headers=browser())
    login = {
        "app_id": app.app_id,
        "events": [
            {"type": "identify", "anonymous_id": "anon-7", "user": "u_7", "traits": {"plan": "pro"}}
        ],
    }
    assert (
        client.post("/v1/events", content=orjson.dumps(login), headers=browser()).status_code == 202
    )
    store.index_all()  # the indexer's work, which every read does first
    assert rows(db, "SELECT person FROM events WHERE app_id = ?", [app.app_id]) == [("u_7",)]
    traits = scalar(db, "SELECT traits FROM users WHERE user_id = 'u_7'")
    assert json_value(traits) == {"plan": "pro"}


# Rate limits -------------------------------------------------------------------------


def test_rate_limit_per_ip_is_429_with_retry_after(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    # The buckets' clock stands still: no token comes back while the test runs, however
    # slow the machine, so the counts below are exact.
    collector = client.app.state.collector  # type: ignore[attr-defined]
    collector.limiter = RateLimiter(clock=lambda: 1000.0)
    store.update_app(app.app_id, settings={"rate_limit_ip": 2})
    other = store.create_app("Quiet", [], {"rate_limit_ip": 2})
    other_key = store.create_key(other.app_id)[1]
    statuses = [
        client.post("/v1/event", json={"event": "a", "user": "u"}, headers=auth(key)).status_code
        for _ in range(8)
    ]
    assert statuses == [202] * 4 + [429] * 4  # a burst of two seconds' worth, then no more
    limited = client.post("/v1/event", json={"event": "a", "user": "u"}, headers=auth(key))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert_error_shape(limited.json(), "rate_limit")
    # A browser's 429 exposes Retry-After to the page's script (CORS), so the SDK waits.
    store.update_app(app.app_id, settings={"rate_limit_ip": 2, "rate_limit_app": 0})
    collector.limiter = RateLimiter(clock=lambda: 1000.0)  # full buckets again
    body = orjson.dumps({"app_id": app.app_id, "event": "a", "anonymous_id": "x"})
    answers = [client.post("/v1/event", content=body, headers=browser()) for _ in range(5)]
    assert [r.status_code for r in answers] == [202] * 4 + [429]
    limited = answers[-1]
    assert limited.headers["access-control-allow-origin"] == ORIGIN
    assert limited.headers["access-control-expose-headers"] == "Retry-After"
    # Another app's traffic from the same IP is not affected by this app's flood.
    assert (
        client.post(
            "/v1/event", json={"event": "a", "user": "u"}, headers=auth(other_key)
        ).status_code
        == 202
    )


def test_an_ipv6_64_is_one_client_for_the_per_ip_limit(db: str, store: Store, app: App) -> None:
    # One host often holds a whole /64: every address in it shares one bucket, and
    # another /64 has its own.
    store.update_app(app.app_id, settings={"rate_limit_ip": 2, "rate_limit_app": 0})
    body = orjson.dumps({"app_id": app.app_id, "event": "a", "anonymous_id": "x"})
    settings = Settings(db=db, trusted_proxies=("10.0.0.0/8",))
    with TestClient(create_app(settings), client=("10.0.0.1", 40000)) as client:
        client.app.state.collector.limiter = RateLimiter(clock=lambda: 1000.0)  # type: ignore[attr-defined]

        def from_(address: str) -> int:
            headers = {**browser(), "X-Forwarded-For": address}
            return client.post("/v1/event", content=body, headers=headers).status_code

        assert [from_(f"2001:db8:0:1::{i + 1:x}") for i in range(5)] == [202] * 4 + [429]
        assert from_("2001:db8:0:2::1") == 202  # another /64
        assert from_("192.0.2.1") == 202 and from_("192.0.2.2") == 202  # IPv4: per address


def test_served_workers_keep_the_garbage_collector_off_the_hot_path(tmp_path: Path) -> None:
    # In a fresh interpreter: the thresholds are process-wide, so not in the test process.
    script = (
        "import gc, os\n"
        "from starlette.testclient import TestClient\n"
        "from collector.web.app import app_from_env\n"
        "before = gc.get_threshold()\n"
        "with TestClient(app_from_env()):\n"
        "    print(before, gc.get_threshold(), gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "COLLECTOR_DB": str(tmp_path / "gc.db")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "(700, 10, 10) (20000, 20, 20) True"


def test_an_unexpected_error_on_ingestion_is_a_500_in_the_error_shape(
    client: TestClient, key: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Ingestion is answered before Starlette's middleware, so it catches errors itself.
    # (The writer is patched, not the pipeline: compiled modules call each other directly.)
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("collector.ingest.writer.Writer.submit", broken)
    r = client.post("/v1/event", json={"event": "a", "user": "u"}, headers=auth(key))
    assert r.status_code == 500
    assert r.json() == {"success": False, "message": "Internal error", "errors": []}
    assert "secret" not in r.text
    assert "secret internal detail" in caplog.text  # logged for the operator
