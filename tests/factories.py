"""Events as the pipeline hands them to the store, for tests and the query and store benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from collector.ids import event_id
from collector.models import Event

DAY = 86_400_000


def ev(
    app_id: str,
    name: str,
    ts: int,
    *,
    user: str | None = None,
    anon: str | None = None,
    props: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    bot: bool = False,
    context: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> Event:
    """An event (or, named "identify", an identify call) as the pipeline hands it over."""
    return Event(
        kind="identify" if name == "identify" else "track",
        name=name,
        app_id=app_id,
        user_id=user,
        anonymous_id=anon,
        message_id=message_id,
        ts=ts,
        received_at=ts,
        timestamp=None,
        sent_at=None,
        properties=props or {},
        context=context or {},
        traits=traits,
        id=event_id(ts),
        is_bot=bot,
        bot_reason="crawler" if bot else None,
    )


def whole_inbox_row(events: Sequence[Event]) -> bytes:
    """An inbox row as earlier versions wrote it, before compression: one JSON array of
    whole events (an upgraded collector may find such rows in its inbox)."""
    return orjson.dumps(
        [
            (
                e.kind,
                e.id,
                e.app_id,
                e.name,
                e.user_id,
                e.anonymous_id,
                e.message_id,
                e.ts,
                e.timestamp,
                e.sent_at,
                e.received_at,
                e.properties,
                e.context,
                e.traits,
                e.is_bot,
            )
            for e in events
        ]
    )
