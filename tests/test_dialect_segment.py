"""Segment's HTTP Tracking API and analytics.js's paths (ingest/dialects/segment.py), as
the endpoint answers them, on both backends: every message type mapped into the
canonical event, write keys, the answers Segment's and RudderStack's libraries read."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from collector.errors import Unavailable
from collector.models import App
from collector.store import Store
from tests.conftest import CHROME_UA, ORIGIN, auth
from tests.dbrows import rows


def basic(write_key: str) -> dict[str, str]:
    """Segment's auth: the write key as Basic auth's user name, no password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def events(store: Store, app: App, name: str | None = None) -> list[dict[str, Any]]:
    return [e for e in store.export_events(app.app_id) if name is None or e["event"] == name]


def user(client: TestClient, key: str, user_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/users/{user_id}", headers=auth(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


LIBRARY_CONTEXT = {
    "library": {"name": "analytics-python", "version": "2.4.0"},
    # What browsers and libraries add that we do not use: never a reason to refuse.
    "userAgentData": {"brands": [{"brand": "Chromium", "version": "124"}], "mobile": False},
    "device": {"deep": {"deeper": {"deepest": {"too": "deep"}}}},
    "os": {"name": "Linux"},
    "locale": "en-GB",
    "timezone": "Europe/London",
    "screen": {"width": 1280, "height": 720, "density": 2},
}


def test_batch_of_every_type_maps_into_the_canonical_event(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    batch = [
        {
            "type": "track",
            "event": "order_completed",
            "userId": "u1",
            "properties": {"total": 30.5, "items": [{"sku": "a"}]},
            "messageId": "m-track",
            "timestamp": "2026-11-22T10:00:00Z",
            "context": {**LIBRARY_CONTEXT, "ip": "203.0.113.9", "userAgent": CHROME_UA},
            "integrations": {"All": True},
        },
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "anon-1",
            "traits": {"plan": "pro"},
            "context": {"traits": {"email": "a@example.com", "plan": "free"}},
            "messageId": "m-identify",
        },
        {
            "type": "page",
            "userId": "u1",
            "name": "Pricing",
            "category": "Docs",
            "properties": {"url": "https://shop.example.com/pricing?x=1", "plan": "pro"},
            "context": {
                "page": {
                    "path": "/pricing",
                    "referrer": "https://search.example/",
                    "title": "Pricing",
                }
            },
            "messageId": "m-page",
        },
        {
            "type": "screen",
            "userId": "u1",
            "name": "Settings",
            "category": "App",
            "properties": {"tab": "billing"},
            "messageId": "m-screen",
        },
        {
            "type": "group",
            "userId": "u1",
            "groupId": "g-42",
            "traits": {"name": "Acme", "employees": 12},
            "messageId": "m-group",
        },
        {"type": "alias", "previousId": "anon-2", "userId": "u1", "messageId": "m-alias"},
    ]
    r = client.post(
        "/v1/batch",
        json={"batch": batch, "sentAt": "2026-11-22T10:00:05Z", "context": {}},
        headers=basic(key),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and len(body["accepted"]) == 6 and not body["errors"]

    (track,) = events(store, app, "order_completed")
    assert track["user_id"] == "u1" and track["message_id"] == "m-track"
    assert track["properties"] == {"total": 30.5, "items": [{"sku": "a"}]}
    assert track["client_timestamp"] == "2026-11-22T10:00:00Z"
    assert track["sent_at"] == "2026-11-22T10:00:05Z"
    ctx = track["context"]
    assert ctx["source"] == "server" and ctx["ip"] == "203.0.113.9"  # from a server key
    assert (ctx["browser"], ctx["os"]) == ("Chrome", "Windows")  # context.userAgent
    assert ctx["library"] == "analytics-python/2.4.0" and ctx["screen"] == "1280x720"
    assert (ctx["locale"], ctx["timezone"]) == ("en-GB", "Europe/London")
    assert "userAgentData" not in ctx and "device" not in ctx

    (page,) = events(store, app, "page_viewed")
    assert page["properties"] == {
        "url": "https://shop.example.com/pricing?x=1",
        "plan": "pro",
        "name": "Pricing",
        "category": "Docs",
    }
    assert page["context"]["url"] == "https://shop.example.com/pricing?x=1"
    assert page["context"]["path"] == "/pricing"
    assert page["context"]["referrer"] == "https://search.example/"
    assert page["context"]["title"] == "Pricing"
    (screen,) = events(store, app, "screen_viewed")
    assert screen["properties"] == {"tab": "billing", "name": "Settings", "category": "App"}
    (group,) = events(store, app, "group_identified")
    assert group["properties"] == {
        "group_id": "g-42",
        "group_traits": {"name": "Acme", "employees": 12},
    }

    profile = user(client, key, "u1")
    # Top-level traits win over context.traits.
    assert profile["traits"] == {"email": "a@example.com", "plan": "pro"}
    assert sorted(profile["anonymous_ids"]) == ["anon-1", "anon-2"]
    # Group calls are queryable: who belongs to g-42.
    r = client.post(
        "/v1/segments/query",
        json={
            "conditions": [
                {"has_done": {"event": "group_identified", "where": {"group_id": "g-42"}}}
            ]
        },
        headers=auth(key),
    )
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 1
    # An alias is an identity link, not an event.
    assert rows(db, "SELECT count(*) FROM events WHERE event = 'alias'") == [(0,)]


def test_single_message_paths_and_analytics_js_short_paths(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    for path, message in [
        ("/v1/track", {"userId": "u1", "event": "a_done", "messageId": "m1"}),
        ("/v1/page", {"userId": "u1", "name": "Home"}),
        ("/v1/screen", {"userId": "u1", "name": "Home"}),
        ("/v1/group", {"userId": "u1", "groupId": "g1"}),
        ("/v1/identify", {"userId": "u1", "traits": {"a": 1}, "messageId": "m2"}),
        ("/v1/alias", {"userId": "u1", "previousId": "old-anon"}),
        ("/v1/t", {"type": "track", "userId": "u1", "event": "b_done"}),
        ("/v1/p", {"type": "page", "userId": "u1"}),
        ("/v1/s", {"type": "screen", "userId": "u1"}),
        ("/v1/g", {"type": "group", "userId": "u1", "groupId": "g2"}),
        ("/v1/i", {"type": "identify", "userId": "u1", "traits": {"b": 2}}),
        ("/v1/a", {"type": "alias", "userId": "u1", "previousId": "older-anon"}),
        ("/v1/b", {"batch": [{"type": "track", "userId": "u1", "event": "c_done"}]}),
    ]:
        r = client.post(path, json=message, headers=basic(key))
        assert r.status_code == 200, (path, r.text)
        assert r.json()["success"] is True, (path, r.text)
    names = sorted(e["event"] for e in events(store, app))
    assert names == [
        "a_done",
        "b_done",
        "c_done",
        "group_identified",
        "group_identified",
        "page_viewed",
        "page_viewed",
        "screen_viewed",
        "screen_viewed",
    ]
    profile = user(client, key, "u1")
    assert profile["traits"] == {"a": 1, "b": 2}
    assert sorted(profile["anonymous_ids"]) == ["old-anon", "older-anon"]


def test_our_own_shapes_on_shared_paths_are_answered_as_before(
    client: TestClient, key: str
) -> None:
    # /v1/track and /v1/identify are ours too: a body without Segment's marks is ours.
    r = client.post("/v1/track", json={"event": "a", "user": "u"}, headers=auth(key))
    assert r.status_code == 202 and r.json()["message"] == "Event tracked successfully"
    r = client.post("/v1/identify", json={"user": "u", "traits": {"a": 1}}, headers=auth(key))
    assert r.status_code == 202 and r.json()["user_id"] == "u"


def test_write_key_in_the_body_and_browser_write_key(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    r = client.post("/v1/track", json={"writeKey": key, "userId": "u", "event": "a"})
    assert r.status_code == 200, r.text
    # A browser's write key is the app id, from an allowed origin; its ip and user agent
    # come from the request, never from the body.
    page = {
        "Origin": ORIGIN,
        "User-Agent": CHROME_UA,
        "Content-Type": "text/plain",
        **basic(app.app_id),
    }
    message = {
        "type": "track",
        "event": "b",
        "anonymousId": "anon-b",
        "context": {"ip": "198.51.100.1", "userAgent": "curl/8"},
    }
    r = client.post("/v1/t", content=orjson.dumps(message), headers=page)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    (stored,) = events(store, app, "b")
    assert stored["context"]["source"] == "browser"
    assert stored["context"]["ip"] != "198.51.100.1" and stored["context"]["browser"] == "Chrome"
    # The app id in the body, as analytics.js's batches carry it.
    batch = {"batch": [{**message, "event": "c", "writeKey": app.app_id}]}
    r = client.post("/v1/b", content=orjson.dumps(batch), headers={"Origin": ORIGIN})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("headers", "body", "status", "field"),
    [
        ({}, {"userId": "u", "event": "a", "type": "track"}, 401, "writeKey"),
        (basic("sk_unknown"), {"userId": "u", "event": "a"}, 401, "writeKey"),
        ({"Authorization": "Basic !!!"}, {"userId": "u", "event": "a"}, 401, "authorization"),
        (
            {"Origin": "https://elsewhere.example"},
            {"writeKey": "APP", "userId": "u", "event": "a"},
            403,
            "origin",
        ),
        ({}, {"writeKey": "APP", "userId": "u", "event": "a"}, 403, "origin"),
    ],
)
def test_refused_write_keys_answer_in_the_shape_the_libraries_read(
    client: TestClient,
    app: App,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    field: str,
) -> None:
    if body.get("writeKey") == "APP":
        body = {**body, "writeKey": app.app_id}
    r = client.post("/v1/t", json=body, headers=headers)
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["success"] is False and field in [e["field"] for e in answer["errors"]]
    # Segment's and RudderStack's clients read `code` and `message`.
    assert isinstance(answer["code"], str) and isinstance(answer["message"], str)


def test_an_identify_with_only_an_anonymous_id_keeps_the_visitors_traits(
    client: TestClient, key: str
) -> None:
    # analytics.js's identify({email}) before a login, or analytics-python's
    # identify(anonymous_id=..., traits=...): Segment accepts it, so do we.
    for message in (
        {"type": "track", "anonymousId": "v1", "event": "page_viewed"},
        {"type": "identify", "anonymousId": "v1", "traits": {"email": "v@example.com"}},
    ):
        r = client.post("/v1/batch", json={"batch": [message]}, headers=basic(key))
        assert r.status_code == 200 and r.json()["success"] is True, r.text
    assert user(client, key, "anon:v1")["traits"] == {"email": "v@example.com"}
    login = {"type": "identify", "anonymousId": "v1", "userId": "u1", "traits": {"plan": "pro"}}
    assert client.post("/v1/identify", json=login, headers=basic(key)).status_code == 200
    assert user(client, key, "u1")["traits"] == {"email": "v@example.com", "plan": "pro"}


def test_invalid_messages_are_named_and_never_block_valid_ones(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "ok_one"},
        {"type": "track", "userId": "u"},  # no event
        {"type": "group", "userId": "u"},  # no groupId
        {"type": "alias", "userId": "u"},  # no previousId
        {"type": "fly", "userId": "u"},
        {"type": "identify", "traits": {"a": 1}},  # an identify names a user or a visitor
        {"type": "track", "userId": "u", "event": "bad_ctx", "context": "nope"},
        {"type": "track", "userId": "u", "event": "ok_two", "timestamp": "yesterday"},
    ]
    r = client.post("/v1/batch", json={"batch": batch}, headers=basic(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is False and len(body["accepted"]) == 1
    fields = {e["index"]: [f["field"] for f in e["errors"]] for e in body["errors"]}
    assert fields == {
        1: ["event"],
        2: ["groupId"],
        3: ["previousId"],
        4: ["type"],
        5: ["userId"],
        6: ["context"],
        7: ["timestamp"],
    }
    assert [e["event"] for e in events(store, app)] == ["ok_one"]
    # Nothing valid: a 400 in the one shape, with `code`.
    r = client.post("/v1/batch", json={"batch": batch[1:3]}, headers=basic(key))
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    for bad in ({"batch": "x"}, {"batch": []}, {"sentAt": "soon", "batch": batch[:1]}, [1]):
        r = client.post("/v1/batch", json=bad, headers=basic(key))
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_request" and r.json()["errors"]


def test_messages_are_stored_once_by_message_id(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    message = {"type": "track", "userId": "u", "event": "a", "messageId": "same"}
    for _ in range(2):
        r = client.post("/v1/batch", json={"batch": [message]}, headers=basic(key))
        assert r.status_code == 200
    assert len(events(store, app)) == 1
    assert r.json()["duplicates"] and not r.json()["accepted"]


def test_gzip_batches_as_rudderstack_sends_them(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    body = gzip.compress(
        orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "zipped"}]})
    )
    r = client.post(
        "/v1/batch",
        content=body,
        headers={**basic(key), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert [e["event"] for e in events(store, app)] == ["zipped"]


def test_rate_limited_and_full_queue_answers_carry_retry_after(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    store.update_app(app.app_id, settings={"rate_limit_app": 1, "rate_limit_ip": 0})
    message = {"type": "track", "userId": "u", "event": "a"}
    answers = [client.post("/v1/t", json=message, headers=basic(key)) for _ in range(6)]
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["code"] == "rate_limited"


def test_preflight_allows_the_headers_analytics_js_sends(client: TestClient, app: App) -> None:
    r = client.options(
        "/v1/t",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-retry-count", "content-encoding"} <= allowed
    refused = client.options(
        "/v1/b",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


def test_settings_send_analytics_js_to_this_collector(client: TestClient, app: App) -> None:
    r = client.get(f"/v1/projects/{app.app_id}/settings", headers={"Origin": "http://localhost"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers  # not an allowed origin
    assert r.json()["integrations"]["Segment.io"]["protocol"] == "http"
    r = client.get(f"/v1/projects/{app.app_id}/settings", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    settings = r.json()
    segment = settings["integrations"]["Segment.io"]
    assert segment["apiKey"] == app.app_id
    assert segment["apiHost"] == "testserver/v1" and segment["protocol"] == "https"
    assert settings["metrics"]["sampleRate"] == 0  # no metrics sent to anyone
    # The answer names the Host asked for: no shared cache may keep it for another host.
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["vary"] == "Host, Origin"
    other = client.get(
        f"/v1/projects/{app.app_id}/settings", headers={"Origin": "https://elsewhere.example"}
    )
    assert "access-control-allow-origin" not in other.headers
    # A page served over https posts over https, whatever scheme reached the collector.
    secure = client.get(
        f"/v1/projects/{app.app_id}/settings", headers={"Origin": "https://a.example.org"}
    )
    assert secure.json()["integrations"]["Segment.io"]["protocol"] == "https"
    assert secure.headers["access-control-allow-origin"] == "https://a.example.org"
    missing = client.get("/v1/projects/app_nope/settings", headers={"Origin": ORIGIN})
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "writeKey"


def test_alias_of_a_previous_user_id_moves_what_it_did(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    def send(*messages: dict[str, Any]) -> None:
        r = client.post("/v1/batch", json={"batch": list(messages)}, headers=basic(key))
        assert r.status_code == 200 and r.json()["success"], r.text

    send(
        {"type": "track", "userId": "old-user", "event": "signed_up"},
        {"type": "track", "anonymousId": "anon-z", "event": "page_seen"},
        {"type": "identify", "userId": "old-user", "anonymousId": "anon-z"},
    )
    store.index_all()
    send({"type": "alias", "previousId": "old-user", "userId": "new-user"})
    # What the previous id still sends afterwards counts for the new one too.
    send({"type": "track", "userId": "old-user", "event": "checked_out"})
    profile = user(client, key, "new-user")
    assert profile["event_counts"] == {"signed_up": 1, "page_seen": 1, "checked_out": 1}
    r = client.post(
        "/v1/segments/query",
        json={"match": "all", "conditions": [{"has_done": {"event": "signed_up"}}]},
        headers=auth(key),
    )
    assert [u["id"] if isinstance(u, dict) else u for u in r.json()["users"]] == ["new-user"]
    persons = rows(db, "SELECT DISTINCT person FROM events WHERE app_id = ?", [app.app_id])
    assert persons == [("new-user",)]


def test_alias_makes_its_user_known_and_a_self_alias_is_an_identify(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    messages = [
        {"type": "track", "anonymousId": "anon-s", "event": "page_seen"},
        {"type": "alias", "previousId": "anon-s", "userId": "only-aliased"},
        # analytics.js's alias(to) once identified: the current user as both ids.
        {"type": "alias", "previousId": "me", "userId": "me", "anonymousId": "anon-me"},
    ]
    r = client.post("/v1/batch", json={"batch": messages}, headers=basic(key))
    assert r.status_code == 200 and r.json()["success"], r.text
    assert user(client, key, "only-aliased")["event_counts"] == {"page_seen": 1}
    assert user(client, key, "me")["anonymous_ids"] == ["anon-me"]
    assert rows(db, "SELECT count(*) FROM user_aliases WHERE app_id = ?", [app.app_id]) == [(1,)]


def test_a_full_queue_is_a_503_with_retry_after_in_each_dialect(
    client: TestClient, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (The writer is patched, not the pipeline: compiled modules call each other directly.)
    async def full(*args: object, **kwargs: object) -> None:
        raise Unavailable(2)

    monkeypatch.setattr("collector.ingest.writer.Writer.submit", full)
    message = {"type": "track", "userId": "u", "event": "a"}
    r = client.post("/v1/batch", json={"batch": [message]}, headers=basic(key))
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["code"] == "unavailable" and r.json()["success"] is False
    r = client.post("/batch/", json={"api_key": key, "event": "a", "distinct_id": "u"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["type"] == "server_error" and "retry" in r.json()["detail"]


SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)


@pytest.mark.parametrize("headers", [basic, auth], ids=["basic", "bearer"])
def test_the_docs_examples_without_segment_marks_are_read_as_segment(
    client: TestClient, store: Store, app: App, key: str, headers: Any
) -> None:
    # Segment's own docs' examples carry no type, messageId or writeKey: their camelCase
    # keys are what says that /v1/track and /v1/identify are spoken Segment's way.
    context = {
        "ip": "81.2.69.160",
        "userAgent": SAFARI_MAC,
        "page": {"url": "https://shop.example.com/a?b=1", "path": "/a", "title": "A"},
        "traits": {"email": "d@example.com", "plan": "free"},
    }
    track = {"userId": "u-docs", "event": "Item Purchased", "properties": {}, "context": context}
    r = client.post("/v1/track", json=track, headers=headers(key))
    assert r.status_code == 200, r.text
    identify = {"userId": "u-docs", "traits": {"plan": "pro"}, "context": context}
    r = client.post("/v1/identify", json=identify, headers=headers(key))
    assert r.status_code == 200, r.text
    anonymous = {"anonymousId": "anon-docs", "event": "Viewed", "context": context}
    assert client.post("/v1/track", json=anonymous, headers=headers(key)).status_code == 200

    stored = {e["event"]: e for e in events(store, app)}
    ctx = stored["Item Purchased"]["context"]
    assert (ctx["browser"], ctx["os"]) == ("Safari", "Mac OS X")  # context.userAgent
    assert ctx["ip"] == "81.2.69.160"
    assert (ctx["url"], ctx["path"], ctx["title"]) == ("https://shop.example.com/a?b=1", "/a", "A")
    assert "userAgent" not in ctx and "page" not in ctx and "traits" not in ctx
    assert stored["Viewed"]["anonymous_id"] == "anon-docs"
    assert stored["Viewed"]["user_id"] is None
    assert user(client, key, "u-docs")["traits"] == {"email": "d@example.com", "plan": "pro"}


def test_a_browser_cannot_state_the_user_agent_in_the_docs_shape(
    client: TestClient, store: Store, app: App
) -> None:
    message = {"anonymousId": "anon-b", "event": "b", "context": {"userAgent": "curl/8"}}
    headers = {"Origin": ORIGIN, "User-Agent": CHROME_UA, **basic(app.app_id)}
    r = client.post("/v1/track", json=message, headers=headers)
    assert r.status_code == 200, r.text
    (stored,) = events(store, app)
    assert stored["context"]["source"] == "browser" and stored["context"]["browser"] == "Chrome"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # Userpilot's /v1/track (seed 004).
        ("/v1/track", {"user_id": "u", "event_name": "e", "metadata": {"a": 1}}),
        # Ours, with the lenient camelCase aliases beside a key only ours has.
        ("/v1/track", {"userId": "u", "event": "e", "metadata": {"a": 1}}),
        ("/v1/track", {"anonymousId": "a", "event": "e", "app_id": "APP"}),
        ("/v1/track", {"user": "u", "event": "e", "context": {"userAgent": "x"}}),
        ("/v1/identify", {"user_id": "u", "traits": {"a": 1}}),
    ],
)
def test_our_own_bodies_with_camel_case_keys_stay_ours(
    client: TestClient, store: Store, app: App, key: str, path: str, body: dict[str, Any]
) -> None:
    if body.get("app_id") == "APP":
        r = client.post(path, json={**body, "app_id": app.app_id}, headers={"Origin": ORIGIN})
    else:
        r = client.post(path, json=body, headers={"Authorization": f"Token {key}"})
    assert r.status_code == 202, r.text  # ours; Segment's answer is a 200
    if path == "/v1/track":
        (stored,) = events(store, app)
        assert stored["event"] == "e"


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b"])
def test_a_batch_context_is_every_message_s_under_its_own(
    client: TestClient, store: Store, app: App, key: str, path: str
) -> None:
    batch = {
        "context": {
            "ip": "81.2.69.160",
            "userAgent": SAFARI_MAC,
            "locale": "fr-FR",
            "library": {"name": "analytics-go", "version": "3.3.0"},
            "page": {"url": "https://shop.example.com/shared", "path": "/shared"},
        },
        "batch": [
            {"type": "track", "userId": "u", "event": "bare"},
            {
                "type": "track",
                "userId": "u",
                "event": "own",
                "context": {"locale": "de-DE", "page": {"path": "/own"}},
            },
            {"type": "identify", "userId": "u", "traits": {"plan": "pro"}},
        ],
    }
    r = client.post(path, json=batch, headers=basic(key))
    assert r.status_code == 200 and r.json()["success"], r.text
    stored = {e["event"]: e["context"] for e in events(store, app)}
    bare, own = stored["bare"], stored["own"]
    assert (bare["ip"], bare["browser"], bare["os"]) == ("81.2.69.160", "Safari", "Mac OS X")
    assert (bare["locale"], bare["path"]) == ("fr-FR", "/shared")
    assert bare["library"] == "analytics-go/3.3.0"
    # A message's own context keys win, whole: its page replaces the batch's page.
    assert (own["locale"], own["path"]) == ("de-DE", "/own") and "url" not in own
    assert (own["ip"], own["browser"]) == ("81.2.69.160", "Safari")
    assert user(client, key, "u")["traits"] == {"plan": "pro"}


def test_a_batch_context_that_is_no_object_is_named(client: TestClient, key: str) -> None:
    body = {"context": "nope", "batch": [{"type": "track", "userId": "u", "event": "a"}]}
    r = client.post("/v1/batch", json=body, headers=basic(key))
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["context"]


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/v1/track", {"type": "track", "event": "a"}, ["userId"]),
        ("/v1/t", {"event": "a", "userId": "u", "messageId": ["x"]}, ["messageId"]),
        # One error per problem: the invalid id, not also a missing user because of it.
        ("/v1/t", {"event": "a", "anonymousId": {"id": 1}}, ["anonymousId"]),
        ("/v1/alias", {"userId": "u", "previousId": ["x"]}, ["previousId"]),
        ("/v1/i", {"type": "identify", "userId": "u", "traits": [1]}, ["traits"]),
        ("/v1/g", {"userId": "u", "groupId": "g", "traits": {"a": [[[[1]]]]}}, ["traits.a[0]"]),
        (
            "/v1/t",
            {"event": "a", "userId": "u", "originalTimestamp": "then"},
            ["originalTimestamp"],
        ),
        ("/v1/t", {"event": "a", "userId": "u", "context": {"ip": "here"}}, ["context.ip"]),
        (
            "/v1/batch",
            {"batch": [{"type": "track", "event": "a"}, {"type": "identify", "traits": {"a": 1}}]},
            ["batch[0].userId", "batch[1].userId"],
        ),
    ],
)
def test_errors_name_the_field_of_the_segment_message(
    client: TestClient, key: str, path: str, body: dict[str, Any], fields: list[str]
) -> None:
    r = client.post(path, json=body, headers=basic(key))
    assert r.status_code == 400, r.text
    answer = r.json()
    assert [e["field"] for e in answer["errors"]] == fields, answer
    assert answer["code"] == "invalid_request"


def test_a_browser_write_key_that_is_no_app_is_named_write_key(client: TestClient) -> None:
    r = client.post(
        "/v1/t",
        json={"userId": "u", "event": "a"},
        headers={"Origin": ORIGIN, **basic("app_unknown")},
    )
    assert r.status_code == 403, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["writeKey"]


def test_our_own_errors_keep_our_names(client: TestClient, key: str) -> None:
    r = client.post("/v1/events", json={"events": [{"event": "a"}]}, headers=auth(key))
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == ["events[0].user"]
    # Our own aliases (seed 004's `user_id`) are named as sent, as normalize names them.
    r = client.post("/v1/track", json={"event": "a", "user_id": ["x"]}, headers=auth(key))
    assert r.status_code == 400 and [e["field"] for e in r.json()["errors"]] == ["user_id"]
