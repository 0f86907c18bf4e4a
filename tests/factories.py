"""Events as the pipeline hands them to the store, for tests and the query and store benchmarks."""

from __future__ import annotations

from typing import Any

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
