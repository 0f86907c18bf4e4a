"""The tables every backend keeps, with the same columns: what moves from one store to
another (store/transfer.py)."""

from __future__ import annotations

from dataclasses import dataclass

from collector.store import core, visits


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    json: tuple[str, ...] = ()  # columns holding JSON


def _table(name: str, columns: str, json: str = "") -> Table:
    return Table(name, tuple(columns.replace(",", " ").split()), tuple(json.split()))


# In dependency order (apps before what refers to them). `meta` moves only the secret
# that signs cursors, so cursors handed out before the move keep working.
TABLES = (
    _table("apps", "app_id name origins settings created_at", json="origins settings"),
    _table("api_keys", "key_id app_id key_hash prefix created_at revoked_at"),
    _table("rules", "id app_id event kind dedupe_key throttle_ms created_at"),
    _table("rule_state", "rule_id key last_ts"),
    _table("users", "app_id user_id traits first_seen last_seen", json="traits"),
    _table("identities", "app_id anonymous_id user_id linked_at"),
    _table("user_aliases", "app_id previous_id user_id aliased_at"),
    _table("events", core.EVENT_COLUMNS, json="properties context"),
    _table("identifies", core.IDENTIFY_COLUMNS, json="traits context"),
    _table("person_event_stats", core.STAT_COLUMNS),
    _table("visits", visits.VISIT_COLUMNS),
    _table("hits", visits.HIT_COLUMNS),
    _table("visit_days", "app_id day version"),
    _table("persons", core.PERSON_COLUMNS),
    _table("message_ids", "app_id kind message_id event_id"),
    _table("call_owners", "app_id person kind message_id ts"),
    _table("discards", "app_id day reason n"),
    # Dashboard accounts move; their sessions do not (each admin logs in again).
    _table("admins", "email password_hash created_at"),
    _table("saved_segments", "segment_id app_id name rules created_at", json="rules"),
)
