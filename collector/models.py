"""Domain objects: apps, rules and events as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

BotPolicy = Literal["flag", "drop"]
IpMode = Literal["full", "truncate", "none"]
Source = Literal["browser", "server"]
Kind = Literal["track", "identify", "alias"]

# Per-app defaults. Rate limits are requests per second, `rate_limit_events` events per
# second (a batch of 2,000 costs 2,000); 0 turns a limit off.
DEFAULT_APP_SETTINGS: dict[str, Any] = {
    "bot_policy": "flag",
    "require_known_user": False,
    "ip_mode": "full",
    "rate_limit_app": 1000,
    "rate_limit_ip": 100,
    "rate_limit_events": 10_000,
    "retention_days": 0,  # 0: keep events for ever (collector/retention.py)
}


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    app_id: str
    event: str
    kind: Literal["dedupe", "throttle"]
    dedupe_key: str | None = None
    throttle_ms: int | None = None


@dataclass(slots=True)
class App:
    app_id: str
    name: str
    origins: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_APP_SETTINGS))
    rules: list[Rule] = field(default_factory=list)
    created_at: str = ""

    def setting(self, name: str) -> Any:
        return self.settings.get(name, DEFAULT_APP_SETTINGS.get(name))


@dataclass(slots=True)
class Event:
    """A normalised, validated, enriched event or identify call, ready for the writer."""

    kind: Kind
    name: str
    app_id: str
    user_id: str | None
    anonymous_id: str | None
    message_id: str | None
    ts: int  # corrected event time, epoch ms
    received_at: int  # epoch ms
    timestamp: str | None  # as the client gave it
    sent_at: str | None
    properties: dict[str, Any]
    context: dict[str, Any]
    traits: dict[str, Any] | None = None
    id: str = ""
    is_bot: bool = False
    bot_reason: str | None = None
    rules: tuple[Rule, ...] = ()  # the app's rules for this event name


OutcomeStatus = Literal["accepted", "duplicate", "discarded"]


class Outcome(NamedTuple):
    """What became of one event. A named tuple rather than a frozen dataclass: one is
    made per event, and a frozen dataclass takes ~0.7 µs to build, a named tuple ~0.2."""

    status: OutcomeStatus
    event_id: str | None = None
    reason: str | None = None
