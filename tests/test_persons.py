"""The `persons` table, a segment's scope kept at indexing: after every write path that
changes who has events or who is a known user (anonymous browsing, logins, alias calls,
identify calls without events, bots, `users delete`, `purge`) it holds exactly what the
summaries and the users table say, on both backends; and a database migrated from before
it gets the same rows."""

from __future__ import annotations

import dataclasses

import pytest

from collector.models import App, Event
from collector.store import Store, core, open_store
from collector.store.postgres import migrations as pg_migrations
from collector.store.postgres import primitives as pg_primitives
from collector.store.sqlite import migrations as sqlite_migrations
from collector.store.sqlite import store as sqlite_store
from tests.dbrows import rows
from tests.factories import DAY, ev

T0 = 1_790_000_000_000


def alias(app_id: str, previous: str, user: str, ts: int) -> Event:
    return dataclasses.replace(
        ev(app_id, "alias", ts, user=user, anon=previous), kind="alias", name="alias"
    )


def expected(db: str, app_id: str) -> list[tuple[str, int, int, int]]:
    """(person, human, bot, known) by the definition: a person with summaries (events
    not from a bot; from one) or a users row."""
    flags: dict[str, list[int]] = {}
    for person, is_bot in rows(
        db, "SELECT person, is_bot FROM person_event_stats WHERE app_id = ?", [app_id]
    ):
        flags.setdefault(person, [0, 0, 0])[1 if is_bot else 0] = 1
    for (user,) in rows(db, "SELECT user_id FROM users WHERE app_id = ?", [app_id]):
        flags.setdefault(user, [0, 0, 0])[2] = 1
    return sorted((p, *f) for p, f in flags.items())  # type: ignore[misc]


def stored(db: str, app_id: str) -> list[tuple[str, int, int, int]]:
    found = rows(db, "SELECT person, human, bot, known FROM persons WHERE app_id = ?", [app_id])
    return sorted((p, int(h), int(b), int(k)) for p, h, b, k in found)


def traffic(a: str) -> list[list[Event]]:
    return [
        [
            ev(a, "view", T0, anon="x1"),  # browses, then logs in as u1
            ev(a, "view", T0 + 1, anon="x1", bot=True),
            ev(a, "view", T0 + 2, anon="x2"),  # stays anonymous
            ev(a, "view", T0 + 3, anon="crawler", bot=True),  # only ever a bot
            ev(a, "identify", T0 + 4, user="quiet", traits={"plan": "pro"}),  # no events
            ev(a, "buy", T0 + 5, user="botuser", bot=True, traits={"plan": "free"}),
            ev(a, "buy", T0 + 6, user="plain"),  # a user without a users row
            ev(a, "buy", T0 + 7, user="empty", traits={}),  # empty traits: no users row
        ],
        [ev(a, "signup", T0 + DAY, user="u1", anon="x1", traits={"plan": "pro"})],
        [
            ev(a, "old", T0 + DAY + 1, user="before"),
            ev(a, "identify", T0 + DAY + 2, user="before", traits={"plan": "free"}),
            alias(a, "before", "after", T0 + DAY + 3),  # before's events count for after
            alias(a, "unseen", "after", T0 + DAY + 4),  # an id nobody used
        ],
        [ev(a, "later", T0 + 2 * DAY, user="before")],  # moved to after when indexed
    ]


def test_persons_follow_every_write_path(store: Store, app: App, db: str) -> None:
    a = app.app_id
    for batch in traffic(a):
        store.write(batch)
        store.index_all()
        assert stored(db, a) == expected(db, a)
    found = {p: (h, b, k) for p, h, b, k in stored(db, a)}
    assert found["u1"] == (1, 1, 1) and "anon:x1" not in found
    assert found["anon:crawler"] == (0, 1, 0)
    assert found["quiet"] == (0, 0, 1)
    assert found["before"] == (0, 0, 1)  # a known user left without events
    assert found["after"][:2] == (1, 0)
    assert found["plain"] == (1, 0, 0) and found["empty"] == (1, 0, 0)

    store.delete_user(a, "u1")
    assert "u1" not in {p for p, *_ in stored(db, a)}
    assert stored(db, a) == expected(db, a)

    store.purge(a, T0 + DAY)  # takes every event before the first day's
    assert stored(db, a) == expected(db, a)
    found = {p: (h, b, k) for p, h, b, k in stored(db, a)}
    assert "anon:x2" not in found and "anon:crawler" not in found
    # Retention takes the people it leaves with nothing: their users rows go too.
    assert "botuser" not in found and "quiet" not in found
    assert found["after"][:2] == (1, 0)


def test_a_database_from_before_persons_gets_them_at_migration(
    db: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schema and the indexing from before the table: indexing writes no persons.
    if backend == "sqlite":
        version = 11
        lite = [m for m in sqlite_migrations.MIGRATIONS if m[0] <= version]
        monkeypatch.setattr(sqlite_store, "MIGRATIONS", lite)
        monkeypatch.setattr(sqlite_store, "_move_scope", lambda conn, moves: None)
    else:
        version = 5
        pg = [m for m in pg_migrations.MIGRATIONS if m[0] <= version]
        monkeypatch.setattr(pg_migrations, "MIGRATIONS", pg)
        monkeypatch.setattr(pg_primitives.Primitives, "_move_scope", lambda *_: None)
    monkeypatch.setattr(core, "person_rows", lambda stats, events: [])
    old = open_store(db)
    assert old.migrate() == version
    a = old.create_app("Old", ["http://localhost"], {}).app_id
    for batch in traffic(a):
        old.write(batch)
        old.index_all()
    old.close()
    monkeypatch.undo()
    with pytest.raises(Exception, match="persons"):
        rows(db, "SELECT count(*) FROM persons")
    store = open_store(db)
    store.migrate()
    assert stored(db, a) == expected(db, a) != []
    store.close()
