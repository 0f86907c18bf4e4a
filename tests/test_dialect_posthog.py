"""PostHog's capture API (ingest/dialects/posthog.py), as the endpoint answers it, on
both backends."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from starlette.testclient import TestClient

from collector.models import App
from collector.store import Store
from tests.conftest import CHROME_UA, ORIGIN, auth
from tests.dbrows import rows


def events(store: Store, app: App, name: str | None = None) -> list[dict[str, Any]]:
    return [e for e in store.export_events(app.app_id) if name is None or e["event"] == name]


def profile(client: TestClient, key: str, user_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/users/{user_id}", headers=auth(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_batch_maps_posthog_events(client: TestClient, store: Store, app: App, key: str) -> None:
    batch = [
        {
            "event": "$pageview",
            "distinct_id": "u1",
            "uuid": "0190b2d6-0000-7000-8000-000000000001",
            "timestamp": "2026-11-22T10:00:00Z",
            "properties": {
                "$current_url": "https://shop.example.com/pricing",
                "$pathname": "/pricing",
                "$referrer": "https://search.example/",
                "$lib": "posthog-python",
                "$lib_version": "7.0.0",
                "$geoip_disable": True,
                "$ip": "203.0.113.7",
                "$raw_user_agent": CHROME_UA,
                "plan": "pro",
            },
        },
        {
            "event": "$identify",
            "distinct_id": "u1",
            "properties": {"$anon_distinct_id": "anon-1", "$set": {"email": "a@example.com"}},
        },
        {"event": "$set", "distinct_id": "u1", "$set": {"plan": "pro"}},
        {"event": "$set_once", "distinct_id": "u1", "$set_once": {"first_seen_on": "web"}},
        {"event": "button_clicked", "distinct_id": "u1", "properties": {"$set": {"seen": 1}}},
        {
            "event": "$groupidentify",
            "distinct_id": "u1",
            "properties": {
                "$group_type": "company",
                "$group_key": "acme",
                "$group_set": {"size": 12},
            },
        },
        {"event": "$create_alias", "distinct_id": "u1", "properties": {"alias": "u1-new"}},
    ]
    r = client.post(
        "/batch/",
        json={"api_key": key, "batch": batch, "sent_at": "2026-11-22T10:00:01Z"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == 1 and body["success"] is True and len(body["accepted"]) == 7

    (page,) = events(store, app, "page_viewed")
    assert page["message_id"] == "0190b2d6-0000-7000-8000-000000000001"
    assert page["properties"] == {"plan": "pro"}  # PostHog's own $ properties are not ours
    ctx = page["context"]
    assert ctx["url"] == "https://shop.example.com/pricing" and ctx["path"] == "/pricing"
    assert ctx["referrer"] == "https://search.example/"
    assert ctx["library"] == "posthog-python/7.0.0"
    assert ctx["ip"] == "203.0.113.7" and ctx["browser"] == "Chrome"  # a server key's
    (group,) = events(store, app, "group_identified")
    assert group["properties"] == {
        "group_id": "acme",
        "group_type": "company",
        "group_traits": {"size": 12},
    }
    assert events(store, app, "button_clicked")

    # The alias made u1 count for u1-new, traits and anonymous history included.
    new = profile(client, key, "u1-new")
    assert new["event_counts"] == {"page_viewed": 1, "button_clicked": 1, "group_identified": 1}
    # Asked for by its old id, the profile is the user it became, with its traits.
    old = profile(client, key, "u1")
    assert old["id"] == "u1-new" and old["aliases"] == ["u1"]
    assert old["traits"] == {
        "email": "a@example.com",
        "plan": "pro",
        "first_seen_on": "web",
        "seen": 1,
    }
    assert "anon-1" in old["anonymous_ids"]


@pytest.mark.parametrize("path", ["/capture/", "/e/", "/i/v0/e/", "/batch", "/capture"])
def test_single_events_on_every_capture_path(
    client: TestClient, store: Store, app: App, key: str, path: str
) -> None:
    r = client.post(path, json={"api_key": key, "event": "signed_up", "distinct_id": "u"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == 1
    assert [e["event"] for e in events(store, app)] == ["signed_up"]


def test_browser_project_key_is_the_app_id_from_an_allowed_origin(
    client: TestClient, store: Store, app: App
) -> None:
    # posthog-js: a bare list, the key in each event's properties, gzip said in the query.
    batch = [
        {
            "event": "$pageview",
            "properties": {
                "token": app.app_id,
                "distinct_id": "device-1",
                "$device_id": "device-1",
                "$current_url": "https://shop.example.com/",
                "$ip": "198.51.100.1",
            },
        }
    ]
    headers = {"Origin": ORIGIN, "User-Agent": CHROME_UA, "Content-Type": "text/plain"}
    r = client.post(
        "/e/?compression=gzip-js", content=gzip.compress(orjson.dumps(batch)), headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    (page,) = events(store, app)
    # Before identify, posthog-js's distinct id is its device's: an anonymous id.
    assert page["user_id"] is None and page["anonymous_id"] == "device-1"
    assert page["context"]["source"] == "browser" and page["context"]["ip"] != "198.51.100.1"
    elsewhere = client.post(
        "/e/", content=orjson.dumps(batch), headers={**headers, "Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"event": "a", "distinct_id": "u"}, 401, "api_key"),
        ({"api_key": "phc_unknown", "event": "a", "distinct_id": "u"}, 401, "api_key"),
        ({"api_key": "KEY", "event": "a"}, 400, "distinct_id"),
        ({"api_key": "KEY", "distinct_id": "u"}, 400, "event"),
        ({"api_key": "KEY", "event": "$create_alias", "distinct_id": "u"}, 400, "properties.alias"),
        ({"api_key": "KEY", "batch": {"a": 1}}, 400, "batch"),
        ({"api_key": "KEY", "batch": [], "sent_at": 1}, 400, "batch"),
        (
            {"api_key": "KEY", "event": "a", "distinct_id": "u", "properties": [1]},
            400,
            "properties",
        ),
    ],
)
def test_errors_carry_the_detail_posthog_reads(
    client: TestClient, key: str, body: dict[str, Any], status: int, field: str
) -> None:
    if body.get("api_key") == "KEY":
        body = {**body, "api_key": key}
    r = client.post("/batch/", json=body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["success"] is False and field in [e["field"] for e in answer["errors"]]
    assert field in answer["detail"] and answer["type"] == "validation_error"


def test_uuid_is_the_idempotency_key(client: TestClient, store: Store, app: App, key: str) -> None:
    event = {"event": "a", "distinct_id": "u", "uuid": "0190b2d6-0000-7000-8000-0000000000aa"}
    for _ in range(2):
        assert client.post("/batch/", json={"api_key": key, "batch": [event]}).status_code == 200
    assert len(events(store, app)) == 1


def test_personless_events_make_no_person(
    client: TestClient, store: Store, app: App, key: str, db: str
) -> None:
    # What posthog-python sends for capture() without a distinct id: a random UUID each
    # time, flagged as personless.
    batch = [
        {
            "event": "report_exported",
            "distinct_id": f"0190b2d6-0000-7000-8000-00000000000{i}",
            "properties": {
                "$process_person_profile": False,
                "i": i,
                "$set": {"plan": "pro"},
            },
        }
        for i in range(3)
    ]
    r = client.post("/batch/", json={"api_key": key, "batch": batch})
    assert r.status_code == 200 and len(r.json()["accepted"]) == 3, r.text
    stored = events(store, app, "report_exported")
    assert sorted(e["properties"]["i"] for e in stored) == [0, 1, 2]
    assert {e["user_id"] for e in stored} == {None}
    assert sorted(e["anonymous_id"] for e in stored) == [e["distinct_id"] for e in batch]
    assert rows(db, "SELECT count(*) FROM users WHERE app_id = ?", [app.app_id]) == [(0,)]
    r = client.get(f"/v1/users/{batch[0]['distinct_id']}", headers=auth(key))
    assert r.status_code == 404
    # Still counted: three events, by three anonymous visitors.
    r = client.get("/v1/stats", headers=auth(key))
    assert r.status_code == 200, r.text
    (day,) = [d for d in r.json()["days"] if d["event"] == "report_exported"]
    assert (day["count"], day["users"]) == (3, 3)
    # A person event of the same distinct id is that person's, traits and all.
    person = {**batch[0], "properties": {"$set": {"plan": "team"}}}
    assert client.post("/capture/", json={"api_key": key, **person}).status_code == 200
    assert profile(client, key, batch[0]["distinct_id"])["traits"] == {"plan": "team"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"batch": [{"event": "a"}]}, ["batch[0].distinct_id"]),
        ({"batch": [{"event": "a", "distinct_id": "u", "uuid": [5]}]}, ["batch[0].uuid"]),
        (
            {"batch": [{"event": "a", "properties": {"distinct_id": "u", "$ip": "x"}}]},
            ["batch[0].properties.$ip"],
        ),
        (
            {"event": "$identify", "distinct_id": "u", "$set": {"a": [[[[1]]]]}},
            ["$set.a[0][0]"],
        ),
        (
            {"event": "$create_alias", "distinct_id": ["u"], "properties": {"alias": "v"}},
            ["distinct_id"],
        ),
        ([{"event": "a", "properties": {"token": "KEY"}}], ["[0].distinct_id"]),
    ],
)
def test_errors_name_the_field_of_the_posthog_event(
    client: TestClient, key: str, body: Any, fields: list[str]
) -> None:
    if isinstance(body, list):
        body = [{**e, "properties": {**e["properties"], "token": key}} for e in body]
    else:
        body = {**body, "api_key": key}
    r = client.post("/batch/", json=body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert [e["field"] for e in answer["errors"]] == fields, answer
    assert fields[0] in answer["detail"]


def _browser(content_type: str = "text/plain") -> dict[str, str]:
    return {"Origin": ORIGIN, "User-Agent": CHROME_UA, "Content-Type": content_type}


def _js_batch(app: App, event: str = "signed_up") -> dict[str, Any]:
    """What recent posthog-js posts: the key beside the batch and in each event."""
    return {
        "api_key": app.app_id,
        "batch": [
            {
                "event": event,
                "properties": {"token": app.app_id, "distinct_id": "d-1", "$device_id": "d-1"},
            }
        ],
        "sent_at": "2026-11-22T10:00:01Z",
    }


def test_gzip_body_without_a_word_of_it_is_read(client: TestClient, store: Store, app: App) -> None:
    # Recent posthog-js gzips and says so neither in a header nor in the query string.
    body = gzip.compress(orjson.dumps(_js_batch(app)))
    r = client.post("/e/", content=body, headers=_browser())
    assert r.status_code == 200, r.text
    assert [e["event"] for e in events(store, app)] == ["signed_up"]


@pytest.mark.parametrize(
    ("query", "content_type", "encode"),
    [
        # sendBeacon: the bare base64, text/plain.
        ("?compression=base64", "text/plain", lambda raw: base64.b64encode(raw)),
        # fetch and older posthog-js: a form's data field of base64...
        (
            "?compression=base64",
            "application/x-www-form-urlencoded",
            lambda raw: b"data=" + quote(base64.b64encode(raw)).encode(),
        ),
        # ...with an older version's query parameters, or of JSON.
        (
            "?ip=1&_=1732269601000&ver=1.130.0",
            "application/x-www-form-urlencoded",
            lambda raw: b"data=" + quote(base64.b64encode(raw)).encode(),
        ),
        ("", "application/x-www-form-urlencoded", lambda raw: b"data=" + quote(raw).encode()),
    ],
)
def test_base64_and_form_bodies_are_read(
    client: TestClient,
    store: Store,
    app: App,
    query: str,
    content_type: str,
    encode: Callable[[bytes], bytes],
) -> None:
    raw = orjson.dumps(_js_batch(app))
    r = client.post("/e/" + query, content=encode(raw), headers=_browser(content_type))
    assert r.status_code == 200, r.text
    (event,) = events(store, app)
    assert event["anonymous_id"] == "d-1" and event["context"]["source"] == "browser"


@pytest.mark.parametrize(
    ("query", "content_type", "body", "status", "field"),
    [
        ("", "application/x-www-form-urlencoded", b"compression=base64", 400, "data"),
        ("", "application/x-www-form-urlencoded", b"data=", 400, "data"),
        ("?compression=base64", "application/x-www-form-urlencoded", b"data=%%%", 400, "data"),
        ("", "application/x-www-form-urlencoded", b"data=e30%3D%3D%3D", 400, "data"),
        ("", "application/x-www-form-urlencoded", b"data=%7Bnope", 400, "data"),
        # Raw bytes past ASCII: no form (found by the fuzz tests on the compiled build).
        ("", "application/x-www-form-urlencoded", b'{"event": "\x93"}', 400, "body"),
        ("?compression=base64", "text/plain", b"not base64!", 400, "body"),
        ("?compression=lz64", "application/x-www-form-urlencoded", b"data=x", 415, "compression"),
        ("?compression=lz64", "text/plain", b"x", 415, "compression"),
        ("", "text/plain", b"\x1f\x8bnot gzip", 400, "body"),
    ],
)
def test_bad_bodies_are_refused_by_field(
    client: TestClient, query: str, content_type: str, body: bytes, status: int, field: str
) -> None:
    r = client.post("/e/" + query, content=body, headers=_browser(content_type))
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["success"] is False and [e["field"] for e in answer["errors"]] == [field]
    assert field in answer["detail"]


def test_remote_config_for_an_app_id(client: TestClient, app: App) -> None:
    r = client.get(f"/array/{app.app_id}/config", headers={"Origin": ORIGIN})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    config = r.json()
    assert config["token"] == app.app_id
    assert "gzip-js" in config["supportedCompression"]
    assert config["hasFeatureFlags"] is False and config["sessionRecording"] is False
    assert config["autocapture_opt_out"] is True and config["siteApps"] == []
    # Another origin gets the same answer without CORS headers: its page cannot read it.
    elsewhere = client.get(
        f"/array/{app.app_id}/config", headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 200 and "access-control-allow-origin" not in elsewhere.headers
    script = client.get(f"/array/{app.app_id}/config.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert f'["{app.app_id}"]' in script.text and '"hasFeatureFlags":false' in script.text
    for path in ("/array/app_0000000000000000/config", "/array/sk_secret/config.js"):
        missing = client.get(path)
        assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "token"


@pytest.mark.parametrize("path", ["/flags/?v=4", "/flags", "/decide/?v=3"])
def test_flags_are_answered_with_none(client: TestClient, app: App, path: str) -> None:
    body = {"token": app.app_id, "distinct_id": "d-1", "groups": {}}
    # posthog-js sends its flags call in the compression the config named.
    r = client.post(path, content=gzip.compress(orjson.dumps(body)), headers=_browser())
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    answer = r.json()
    assert answer["flags"] == {} and answer["featureFlags"] == {}
    assert answer["errorsWhileComputingFlags"] is False
    assert answer["supportedCompression"] and answer["sessionRecording"] is False
    form = b"data=" + quote(base64.b64encode(orjson.dumps(body))).encode()
    r = client.post(path, content=form, headers=_browser("application/x-www-form-urlencoded"))
    assert r.status_code == 200 and r.json()["flags"] == {}, r.text


def test_flags_from_a_server_key_and_refusals(client: TestClient, app: App, key: str) -> None:
    r = client.post("/flags/?v=2", json={"api_key": key, "distinct_id": "u"})
    assert r.status_code == 200 and r.json()["flags"] == {}, r.text
    assert key not in r.text  # a server key is never echoed back
    body = {"token": app.app_id, "distinct_id": "d"}
    elsewhere = client.post("/flags/", json=body, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "access-control-allow-origin" not in elsewhere.headers
    assert elsewhere.json()["errors"][0]["field"] == "origin"
    r = client.post("/flags/", json={"distinct_id": "d"})
    assert r.status_code == 401 and r.json()["errors"][0]["field"] == "api_key"
    r = client.post(
        "/flags/", content=b"data=", headers=_browser("application/x-www-form-urlencoded")
    )
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "data"


def test_preflights_for_posthog_js(client: TestClient, app: App) -> None:
    # Uncompressed, posthog-js posts application/json: a preflight, on every path it uses.
    for path in ("/e/", "/i/v0/e/", "/flags/", "/decide/"):
        r = client.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert r.status_code == 204, (path, r.text)
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "Content-Type" in r.headers["access-control-allow-headers"]


def test_a_page_leave_ends_the_visit_without_making_it_an_interaction(
    client: TestClient, key: str
) -> None:
    page = {"$current_url": "https://shop.example.com/", "$pathname": "/"}
    batch = [
        {"event": "$pageview", "distinct_id": "v", "timestamp": "2026-11-22T10:00:00Z",
         "properties": page},
        {"event": "$pageleave", "distinct_id": "v", "timestamp": "2026-11-22T10:00:40Z",
         "properties": page},
    ]  # fmt: skip
    r = client.post("/batch/", json={"api_key": key, "batch": batch})
    assert r.status_code == 200, r.text
    params = {"since": "2026-11-22T00:00:00Z", "until": "2026-11-23T00:00:00Z"}
    figures = client.get("/v1/analytics/overview", params=params, headers=auth(key)).json()
    results = figures["results"]
    assert (results["visits"], results["page_views"]) == (1, 1)
    assert results["visit_duration"] == 40 and results["bounce_rate"] == 1
