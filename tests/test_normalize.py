"""normalize.py's checks of property values and names, on both of their paths: the
quick pass for the usual flat objects and the full walk that names each problem."""

from __future__ import annotations

import math

import orjson
import pytest
from starlette.testclient import TestClient

from collector.errors import InvalidRequest
from collector.ingest.normalize import MAX_EVENT_BYTES, Item, normalize_item, parse_payload
from collector.models import App, Source
from collector.store import Store
from collector.timeutil import now_ms, parse_timestamp
from tests.conftest import auth


def problems(raw: dict) -> list[tuple[str, str]]:
    out = normalize_item({"event": "a", "user": "u", **raw}, source="server")
    assert isinstance(out, list), "expected field errors"
    return [(e["field"], e["message"]) for e in out]


def test_flat_valid_values_pass() -> None:
    item = normalize_item(
        {"event": "a", "user": "u", "properties": {"s": "x", "n": 1, "b": True, "z": None}},
        source="server",
    )
    assert isinstance(item, Item) and item.properties["n"] == 1


def test_each_bad_value_is_named_with_its_path() -> None:
    assert problems({"properties": {"ok": 1, "s": "a\x00b"}}) == [
        ("properties.s", "must not contain NUL characters")
    ]
    assert problems({"properties": {"f": math.inf}}) == [
        ("properties.f", "must be a finite number")
    ]
    assert problems({"properties": {"": 1}}) == [("properties", "has an invalid key ''")]
    assert problems({"context": {"k" * 256: 1}})[0][0] == "context"
    assert problems({"properties": {"o": [{"x": "\x00"}]}}) == [
        ("properties.o[0].x", "must not contain NUL characters")
    ]
    assert problems({"properties": {"a": {"b": {"c": {"d": 1}}}}}) == [
        ("properties.a.b.c", "nests deeper than 3 levels")
    ]


def test_a_known_name_passes_again_and_a_bad_one_warns_every_time() -> None:
    for _ in range(2):
        item = normalize_item({"event": "plan_chosen", "user": "u"}, source="server")
        assert isinstance(item, Item) and item.warnings == []
    for _ in range(2):
        item = normalize_item({"event": "Plan Chosen", "user": "u"}, source="server")
        assert isinstance(item, Item) and [w["field"] for w in item.warnings] == ["event"]


def test_a_single_events_size_leaves_out_the_envelope() -> None:
    event = {"event": "a", "user": "u", "properties": {"s": ""}}
    filler = MAX_EVENT_BYTES - len(orjson.dumps(event))
    event["properties"]["s"] = "x" * filler  # exactly the limit
    body = {"app_id": "app_" + "0" * 40, "sent_at": "2026-11-22T10:00:00Z", **event}
    payload = parse_payload(body, source="browser", body_size=len(orjson.dumps(body)))
    assert isinstance(payload.items[0], Item)
    event["properties"]["s"] += "x"  # one byte over
    body = {**body, **event}
    payload = parse_payload(body, source="browser", body_size=len(orjson.dumps(body)))
    assert payload.items[0] == [{"field": "event", "message": "is larger than 32768 bytes"}]


# Timestamps --------------------------------------------------------------------------

NOW_S = 1_765_000_000  # 2025-12-06T05:46:40Z in epoch seconds


def test_an_epoch_number_below_1e11_is_seconds_and_warned_about() -> None:
    for sent, ms in [
        (NOW_S, NOW_S * 1000),
        (NOW_S + 0.25, NOW_S * 1000 + 250),
        (str(NOW_S), NOW_S * 1000),
        (99_999_999_999, 99_999_999_999_000),  # the last number read as seconds
    ]:
        item = normalize_item({"event": "a", "user": "u", "timestamp": sent}, source="server")
        assert isinstance(item, Item), sent
        assert item.timestamp_ms == ms, sent
        assert [(w["field"], "seconds" in w["message"]) for w in item.warnings] == [
            ("timestamp", True)
        ]
    for sent, ms in [(NOW_S * 1000, NOW_S * 1000), ("100000000000", 100_000_000_000)]:
        item = normalize_item({"event": "a", "user": "u", "timestamp": sent}, source="server")
        assert isinstance(item, Item) and item.timestamp_ms == ms and item.warnings == []


def test_a_timestamp_that_is_no_time_is_a_clear_error_naming_it() -> None:
    assert problems({"timestamp": -1}) == [
        ("timestamp", "must not be negative (a time after 1970)")
    ]
    assert problems({"timestamp": True}) == [
        ("timestamp", "must be an ISO 8601 string or epoch milliseconds")
    ]
    assert problems({"timestamp": math.nan}) == [("timestamp", "must be a finite number")]
    # Digits to str.isdigit that int() refuses: the message is ours, not Python's.
    assert problems({"timestamp": "²"}) == [
        ("timestamp", "must be an ISO 8601 string or epoch milliseconds")
    ]


def test_a_sent_at_in_seconds_is_read_as_seconds_and_each_event_is_told() -> None:
    body = {
        "sent_at": NOW_S,
        "events": [{"event": "a", "user": "u", "timestamp": NOW_S * 1000}, {"event": "b"}],
    }
    payload = parse_payload(body, source="server")
    assert payload.sent_at_ms == NOW_S * 1000
    item = payload.items[0]
    assert isinstance(item, Item)
    assert [w["field"] for w in item.warnings] == ["sent_at"]
    assert payload.items[1] == [{"field": "user", "message": "is required"}]
    payload = parse_payload({"sentAt": str(NOW_S), "event": "a", "user": "u"}, source="server")
    assert payload.sent_at_ms == NOW_S * 1000
    assert isinstance(payload.items[0], Item)
    assert [w["field"] for w in payload.items[0].warnings] == ["sentAt"]
    for bad in (-1, False):
        with pytest.raises(InvalidRequest) as refused:
            parse_payload({"sent_at": bad, "event": "a", "user": "u"}, source="server")
        assert [e["field"] for e in refused.value.errors] == ["sent_at"]


def test_seconds_are_stored_as_their_time_with_skew_correction_and_the_clamp(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    now_s = now_ms() // 1000
    # A client an hour fast, in seconds: the event happened 60 s before it was sent.
    batch = {
        "sent_at": now_s + 3600,
        "events": [{"event": "skewed", "user": "u", "timestamp": now_s + 3540}],
    }
    r = client.post("/v1/events", json=batch, headers=auth(key))
    assert r.status_code == 202, r.text
    assert [(w["index"], w["field"]) for w in r.json()["warnings"]] == [
        (0, "timestamp"),
        (0, "sent_at"),
    ]
    r = client.post(
        "/v1/event",
        json={"event": "plain", "user": "u", "timestamp": 1_765_000_000},
        headers=auth(key),
    )
    assert r.status_code == 202, r.text
    assert [w["field"] for w in r.json()["warnings"]] == ["timestamp"]
    r = client.post(
        "/v1/event",
        json={"event": "future", "user": "u", "timestamp": now_s + 48 * 3600},
        headers=auth(key),
    )
    assert r.status_code == 202, r.text
    warned = [w["message"] for w in r.json()["warnings"]]
    assert len(warned) == 2 and "seconds" in warned[0] and "clamped" in warned[1]
    r = client.post(
        "/v1/event", json={"event": "bad", "user": "u", "timestamp": -5}, headers=auth(key)
    )
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == ["timestamp"]

    rows = {row["event"]: row for row in store.export_events(app.app_id)}
    skewed = parse_timestamp(rows["skewed"]["timestamp"])
    assert skewed == parse_timestamp(rows["skewed"]["received_at"]) - 60_000
    assert rows["plain"]["timestamp"] == "2025-12-06T05:46:40.000Z"
    future = rows["future"]
    assert future["timestamp"] == future["received_at"]
    assert future["context"]["clock_skew_clamped"] is True


# Errors in the client's words, one per problem -------------------------------------


def errors_of(raw: dict, source: Source = "server") -> list[tuple[str, str]]:
    out = normalize_item(raw, source=source)
    assert isinstance(out, list), "expected field errors"
    return [(e["field"], e["message"]) for e in out]


def test_an_error_names_the_alias_the_client_sent() -> None:
    assert errors_of({"user_id": "u", "event_name": 5}) == [("event_name", "must be a string")]
    assert errors_of({"externalId": "u", "eventKey": ""}) == [
        ("eventKey", "must be 1 to 255 characters")
    ]
    assert errors_of({"user_id": 5.5, "event_name": "e"}) == [("user_id", "must be a string")]
    assert errors_of({"externalId": "", "eventKey": "e"}) == [
        ("externalId", "must be 1 to 255 characters")
    ]
    assert errors_of({"user_id": "u", "event_name": "e", "metadata": 5}) == [
        ("metadata", "must be an object")
    ]
    assert errors_of({"user_id": "u", "event_name": "e", "metadata": {"a": [math.inf]}}) == [
        ("metadata.a[0]", "must be a finite number")
    ]
    assert errors_of({"user": {"_id": 1.5}, "event": "e"}) == [("user._id", "must be a string")]
    assert errors_of({"event": "e", "user": "u", "messageId": ""}) == [
        ("messageId", "must be 1 to 255 characters")
    ]
    item = normalize_item({"externalId": "u", "eventKey": "Bought It"}, source="server")
    assert isinstance(item, Item) and [w["field"] for w in item.warnings] == ["eventKey"]


def test_a_missing_field_is_named_as_the_bodys_own_api_names_it() -> None:
    assert errors_of({"eventKey": "purchase_completed"}) == [("externalId", "is required")]
    assert errors_of({"externalId": "user-123"}) == [("eventKey", "is required")]
    assert errors_of({"event_name": "e"}) == [("user_id", "is required")]
    assert errors_of({"user_id": "u"}) == [("event_name", "is required")]
    assert errors_of({"metadata": {}}) == [
        ("event_name", "is required"),
        ("user_id", "is required"),
    ]
    # Our own canonical bodies keep their names.
    assert errors_of({"event": "e"}) == [("user", "is required")]
    assert errors_of({"user": "u"}) == [("event", "is required")]
    assert errors_of({"event": "e"}, source="browser") == [
        ("user", "is required (or anonymous_id)")
    ]


def test_seed_002_errors_name_the_path_inside_the_event() -> None:
    email = {"email": "a@example.com"}
    assert errors_of({"user": email, "event": {"update": {"a": "\x00"}}}) == [
        ("event.update.a", "must not contain NUL characters")
    ]
    assert errors_of({"user": email, "event": {"confirmation": {"o": math.nan}}}) == [
        ("event.confirmation.o", "must be a finite number")
    ]
    generic = {"generic": {"generic": {"event_name": 5}}}
    assert errors_of({"user": email, "event": generic}) == [
        ("event.generic.generic.event_name", "must be a string")
    ]
    assert errors_of({"user": email, "event": {"generic": {"x": 1}}}) == [
        ("event.generic.event_name", "is required")
    ]


def test_one_problem_is_one_error() -> None:
    assert errors_of({"event": {}, "user": "u"}) == [
        ("event", 'must hold exactly one event type, e.g. {"update": {...}}')
    ]
    assert errors_of({"event": {"update": 5}, "user": "u"}) == [
        ("event.update", "must be an object")
    ]
    assert errors_of({"user": {}, "event": "e"}) == [("user.id", "is required")]
    assert errors_of({"user": {}, "event": {"update": {"a": 1}}}) == [
        ("user", "must have an email or an _id")
    ]
    assert errors_of({"event": {}}) == [
        ("event", 'must hold exactly one event type, e.g. {"update": {...}}'),
        ("user", "is required"),
    ]
    assert errors_of({"event": "e", "anonymous_id": ""}, source="browser") == [
        ("anonymous_id", "must be 1 to 255 characters")
    ]
    # Traits beside a user object's own are checked too, not dropped in the merge.
    assert errors_of({"event": "e", "user": {"id": "u", "traits": {"a": 1}}, "traits": 5}) == [
        ("traits", "must be an object")
    ]


def test_a_user_id_too_large_for_a_whole_number_says_so() -> None:
    # How a 30-digit id arrives: orjson reads whole numbers past 64 bits as floats.
    (raw,) = orjson.loads(b"[123456789012345678901234567890]")
    assert errors_of({"event": "e", "user": raw}) == [
        ("user", "is a number too large to keep exactly: send a string")
    ]
    assert errors_of({"event": "e", "user": 1.5}) == [("user", "must be a string")]
