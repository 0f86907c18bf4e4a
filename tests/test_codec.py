"""The inbox row: what is encoded is what indexing gets back, JSON as text."""

from __future__ import annotations

import zlib

import lz4.block
import orjson

from collector.models import Event
from collector.store import codec
from tests.factories import whole_inbox_row


def event(i: int, **fields: object) -> Event:
    base: dict[str, object] = {
        "kind": "track",
        "name": f"e{i}",
        "app_id": "app_1",
        "user_id": None,
        "anonymous_id": f"anon-{i}",
        "message_id": f"m{i}",
        "ts": 1_700_000_000_000 + i,
        "received_at": 1_700_000_000_500 + i,
        "timestamp": "2023-11-14T22:13:20Z",
        "sent_at": None,
        "properties": {"n": i, "text": 'a "quoted"\nline ☃', "nested": {"deep": [1, None]}},
        "context": {"ip": "127.0.0.1", "page": {"path": "/x"}},
        "id": f"evt_{i}",
    }
    base.update(fields)
    return Event(**base)  # type: ignore[arg-type]


def test_every_field_comes_back_with_json_as_text() -> None:
    events = [
        event(0),
        event(1, kind="identify", user_id="u1", traits={"plan": "pro", "gone": None}),
        event(2, is_bot=True, properties={}, context={}),
        event(3, traits={}),  # empty traits are traits, not "none"
    ]
    back = codec.decode(codec.encode(events))
    assert [a.id for a in back] == ["evt_0", "evt_1", "evt_2", "evt_3"]
    for original, accepted in zip(events, back, strict=True):
        assert accepted.kind == original.kind
        assert accepted.name == original.name
        assert (accepted.app_id, accepted.user_id, accepted.anonymous_id) == (
            original.app_id,
            original.user_id,
            original.anonymous_id,
        )
        assert accepted.message_id == original.message_id
        assert (accepted.ts, accepted.received_at) == (original.ts, original.received_at)
        assert (accepted.timestamp, accepted.sent_at) == (original.timestamp, original.sent_at)
        assert accepted.is_bot == original.is_bot
        assert isinstance(accepted.properties, str)
        assert orjson.loads(accepted.properties) == original.properties
        assert orjson.loads(accepted.context) == original.context
        if original.traits is None:
            assert accepted.traits is None
        else:
            assert accepted.traits is not None
            assert orjson.loads(accepted.traits) == original.traits


def test_rows_written_by_earlier_versions_still_decode() -> None:
    events = [event(0), event(1, kind="identify", user_id="u1", traits={"a": 1})]
    whole = whole_inbox_row(events)
    for row in (whole, b"L" + lz4.block.compress(whole), zlib.compress(whole)):
        back = codec.decode(row)
        assert [a.id for a in back] == ["evt_0", "evt_1"]
        assert orjson.loads(back[0].properties) == events[0].properties
        assert back[0].traits is None
        assert back[1].traits is not None and orjson.loads(back[1].traits) == {"a": 1}
