"""Alias calls in the store (core.apply_aliases over each backend's primitives): what a
previous id did, and does later, counts for the new user; chains resolve to their end,
cycles and repeats change nothing, deleting a user takes its aliases."""

from __future__ import annotations

import dataclasses

from collector.models import App, Event
from collector.store import Store
from tests.dbrows import rows
from tests.factories import DAY, ev

T0 = 1_790_000_000_000


def alias(app_id: str, previous: str, user: str, ts: int) -> Event:
    """An alias call as the pipeline hands it over: the previous id as anonymous id."""
    return dataclasses.replace(
        ev(app_id, "alias", ts, user=user, anon=previous), kind="alias", name="alias"
    )


def persons(db: str, app: App) -> dict[str, str]:
    """event name → person, for the app's stored events."""
    found = rows(db, "SELECT event, person FROM events WHERE app_id = ?", [app.app_id])
    return dict(found)


def test_previous_user_and_anonymous_ids_count_for_the_new_user(
    store: Store, app: App, db: str
) -> None:
    a = app.app_id
    store.write([ev(a, "old_user_event", T0, user="old"), ev(a, "anon_event", T0, anon="x")])
    store.index_all()
    store.write([alias(a, "old", "new", T0 + 1), alias(a, "x", "new", T0 + 2)])
    store.write([ev(a, "later_old_event", T0 + 3, user="old")])  # still named by its old id
    store.index_all()
    assert persons(db, app) == {
        "old_user_event": "new",
        "anon_event": "new",
        "later_old_event": "new",
    }
    stats = rows(db, "SELECT DISTINCT person FROM person_event_stats WHERE app_id = ?", [a])
    assert stats == [("new",)]
    assert rows(db, "SELECT user_id FROM users WHERE app_id = ?", [a]) == [("new",)]


def test_chains_resolve_to_their_end_and_cycles_are_ignored(
    store: Store, app: App, db: str
) -> None:
    a = app.app_id
    store.write([ev(a, "by_a", T0, user="a"), ev(a, "by_b", T0, user="b")])
    store.write([alias(a, "a", "b", T0 + 1)])
    store.index_all()
    store.write([alias(a, "b", "c", T0 + DAY)])  # a → b, then b → c: a → c too
    store.write([alias(a, "c", "a", T0 + DAY + 1)])  # a cycle back to a: ignored
    store.write([alias(a, "a", "z", T0 + DAY + 2)])  # a already has its alias: kept
    store.write([ev(a, "later_by_a", T0 + DAY + 3, user="a")])
    store.index_all()
    assert persons(db, app) == {"by_a": "c", "by_b": "c", "later_by_a": "c"}
    aliases = rows(
        db, "SELECT previous_id, user_id FROM user_aliases WHERE app_id = ? ORDER BY 1", [a]
    )
    assert aliases == [("a", "c"), ("b", "c")]


def test_deleting_the_user_takes_its_aliases(store: Store, app: App, db: str) -> None:
    a = app.app_id
    store.write([ev(a, "by_old", T0, user="old"), alias(a, "old", "new", T0 + 1)])
    store.index_all()
    assert store.delete_user(a, "new") == 1
    assert rows(db, "SELECT count(*) FROM user_aliases WHERE app_id = ?", [a]) == [(0,)]
    assert rows(db, "SELECT count(*) FROM events WHERE app_id = ?", [a]) == [(0,)]
