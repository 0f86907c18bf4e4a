"""Alias calls in the store (core.apply_aliases over each backend's primitives): what a
previous id did, and does later, counts for the new user; chains resolve to their end,
cycles and repeats change nothing, deleting a user takes its aliases."""

from __future__ import annotations

import dataclasses

from collector.models import App, Event
from collector.query.segments import parse_segment_query
from collector.query.types import EventsQuery
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


def test_the_previous_users_traits_follow_and_its_id_finds_the_new_user(
    store: Store, app: App
) -> None:
    a = app.app_id
    # One batch, as a Segment library sends it: the old id's traits, its event, the alias.
    store.write(
        [
            ev(a, "identify", T0, user="q1", traits={"plan": "pro", "seats": 3}),
            ev(a, "signed_up", T0 + 1, user="q1"),
            dataclasses.replace(alias(a, "q1", "q2", T0 + 2), traits={"seats": 5}),
        ]
    )
    store.index_all()
    new = store.user_profile(a, "q2", False)
    assert new is not None
    # The new user's own traits win over the previous id's.
    assert new["traits"] == {"plan": "pro", "seats": 5}
    assert new["aliases"] == ["q1"]
    assert new["event_counts"] == {"signed_up": 1}
    # Asked for by its old id, a read answers for the user it became.
    old = store.user_profile(a, "q1", False)
    assert old is not None and old["id"] == "q2" and old["traits"] == new["traits"]
    page = store.events_page(a, EventsQuery(user="q1"))
    assert [e["event"] for e in page.events] == ["signed_up"]
    found = store.segment(
        a, parse_segment_query({"conditions": [{"trait": {"key": "plan", "eq": "pro"}}]}, T0 + DAY)
    )
    assert [u["id"] for u in found.users] == ["q2"]
