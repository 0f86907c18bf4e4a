"""normalize.py's checks of property values and names, on both of their paths: the
quick pass for the usual flat objects and the full walk that names each problem."""

from __future__ import annotations

import math

import orjson

from collector.ingest.normalize import MAX_EVENT_BYTES, Item, normalize_item, parse_payload


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
