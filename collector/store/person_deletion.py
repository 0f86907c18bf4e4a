"""Who a deletion is about, and what of the rules' state it takes with it: decided once
for both backends (`users delete`, retention's purge), each of which runs its own SQL.

A person is more than one id. `users delete U` is also about every id aliased to U
(`user_aliases`: an alias call's previous id, whose rows stay, hidden behind the alias,
and would show again once the alias went) and every anonymous id linked to any of
them (`anon:<id>`, what the visitor did before logging in)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from collector.models import Rule
from collector.store import core


def aliased_ids(user_id: str, previous_of: Callable[[Sequence[str]], Iterable[str]]) -> list[str]:
    """The user id and every previous id aliased to it, through chains too
    (`previous_of(ids)`: the previous ids of aliases whose user is one of `ids`)."""
    found = [user_id]
    seen = {user_id}
    frontier: list[str] = [user_id]
    while frontier:  # chains resolve to their end when stored, but older rows may not
        fresh = [p for p in previous_of(frontier) if p not in seen]
        seen.update(fresh)
        found.extend(fresh)
        frontier = fresh
    return found


def rule_state_keys(
    rules: Sequence[Rule],
    persons: Sequence[str],
    properties_of: Callable[[str], Iterable[str | dict[str, Any]]],
) -> list[tuple[int, str]]:
    """The (rule id, key) rows of the rules' state that a deleted person leaves: each
    throttle rule's key for each of its person ids, and each dedupe rule's key for the
    value its property has on the person's events of the rule's event, as
    `core._apply_rules` wrote it (`properties_of(event)`: those events' properties, JSON
    text or decoded). Read before the events are deleted."""
    keys: list[tuple[int, str]] = []
    for rule in rules:
        if rule.kind == "throttle":
            keys.extend((rule.id, person) for person in persons)
        elif rule.kind == "dedupe" and rule.dedupe_key:
            values = set()
            for properties in properties_of(rule.event):
                decoded = orjson.loads(properties) if isinstance(properties, str) else properties
                value = decoded.get(rule.dedupe_key) if isinstance(decoded, dict) else None
                if value is not None:
                    values.add(core.json_text(value))
            keys.extend((rule.id, v) for v in sorted(values))
    return keys


def expiry(rule: Rule, cutoff: int) -> int:
    """Retention: a rule's state whose last time is before this goes with the events.
    A throttle key is kept while an event at or after the cutoff could still fall in its
    window, so no kept event is judged differently; a dedupe value goes with the event
    that first carried it (keeping it would keep the value, often personal, an email or
    an order id, past the app's retention: an event resent with it after that is stored
    again)."""
    return cutoff - (rule.throttle_ms or 0) if rule.kind == "throttle" else cutoff


# Retention: the ids that may name a person left with nothing once old events and
# identify calls are purged (users rows last seen before the cutoff, linked and aliased
# users), less those with events (under their own name: an aliased id's events are its
# user's), identify calls, or a users row seen since. `{m}` is the app id's parameter,
# `{cutoff}` the cutoff's.
GONE = """
SELECT c.id FROM (
  SELECT user_id AS id FROM users WHERE app_id = {m} AND last_seen < {cutoff}
  UNION SELECT user_id FROM identities WHERE app_id = {m}
  UNION SELECT user_id FROM user_aliases WHERE app_id = {m}
) AS c
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.app_id = {m} AND e.person = c.id)
  AND NOT EXISTS (SELECT 1 FROM identifies i WHERE i.app_id = {m} AND i.user_id = c.id)
  AND NOT EXISTS (
    SELECT 1 FROM users u WHERE u.app_id = {m} AND u.user_id = c.id AND u.last_seen >= {cutoff})
"""


def gone_people(found: Iterable[str], aliases: dict[str, str]) -> list[str]:
    """The ids `GONE` found, less the previous ids whose user is still there: what the
    previous id did is that user's now, and its alias and users row (hidden) keep
    routing later events that name it to them. Those whose user is gone go with it."""
    candidates = set(found)
    return sorted(p for p in candidates if aliases.get(p, p) == p or aliases[p] in candidates)
