"""The PostgreSQL store (store/postgres/): what it shares with SQLite through core.py
holds on PostgreSQL's own SQL, and what is its own holds too — several collectors at
once, advisory-locked indexing, monthly partitions, NOTIFY, and a server that goes away
and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from collector.errors import StoreUnavailable, Unavailable
from collector.models import Event, Outcome, Rule
from collector.store.postgres import connections, migrations, partitions
from collector.store.postgres.primitives import INDEX_LOCK
from collector.store.postgres.store import PostgresStore
from tests.factories import DAY, ev
from tests.pgcluster import PostgresCluster, find_bindir

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries")

APP = "app_pg"
OTHER = "app_other"
T0 = 1_790_000_000_000  # 2026-09-21


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout} s: {condition}"
        time.sleep(0.01)


def rows(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """What is stored, read on a connection of its own (nothing indexed first)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(url: str, sql: str, params: Sequence[Any] = ()) -> Any:
    return rows(url, sql, params)[0][0]


def execute(url: str, sql: str, params: Sequence[Any] = ()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url)
    s.migrate()
    for app_id in (APP, OTHER):
        execute(pg_url, "INSERT INTO apps VALUES (%s, 'pg', '[]', '{}', '2026-11-22')", (app_id,))
    yield s
    s.close()


def ruled(event: Event, *rules: Rule) -> Event:
    event.rules = rules
    return event


def statuses(outcomes: Sequence[Outcome]) -> list[str]:
    return [o.status for o in outcomes]


# Schema -------------------------------------------------------------------------------


def test_collectors_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(6)]
    versions: list[int] = []
    threads = [threading.Thread(target=lambda s=s: versions.append(s.migrate())) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        latest = migrations.MIGRATIONS[-1][0]
        assert versions == [latest] * 6
        assert rows(pg_url, "SELECT version FROM schema_migrations ORDER BY version") == [
            (v,) for v, _, _ in migrations.MIGRATIONS
        ]
        secrets = {s.secret() for s in stores}
        assert len(secrets) == 1 and len(secrets.pop()) == 64
        # Room in each page for the versions indexing writes in place (HOT updates).
        for table in ("visits", "person_event_stats"):
            options = scalar(pg_url, "SELECT reloptions FROM pg_class WHERE relname = %s", (table,))
            assert options == ["fillfactor=70"]
        # This month's and next month's partitions exist before any event needs them.
        month = partitions.current_month()
        for wanted in (month, partitions.next_month(month)):
            assert scalar(pg_url, "SELECT to_regclass(%s) IS NOT NULL", (partitions.name(wanted),))
    finally:
        for s in stores:
            s.close()


def test_an_unreachable_server_is_one_line_without_the_password(
    pg_cluster: PostgresCluster,
) -> None:
    with PostgresCluster() as gone:
        port = gone.port
    url = f"postgresql://telltale:s3cret-pw@127.0.0.1:{port}/telltale?connect_timeout=2"
    store = PostgresStore(url)
    with pytest.raises(StoreUnavailable) as failure:
        store.migrate()
    store.close()
    message = str(failure.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert message.startswith(
        f"cannot connect to PostgreSQL at postgresql://telltale@127.0.0.1:{port}"
    )
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
    # A password given as a parameter is left out too; the database is named.
    missing = pg_cluster.url_for("no_such_db") + "?password=hunter2"
    with pytest.raises(StoreUnavailable) as failure:
        PostgresStore(missing).migrate()
    assert "no_such_db" in str(failure.value) and "hunter2" not in str(failure.value)
    assert "\n" not in str(failure.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cret-pw@[::1/db",  # libpq quotes a URL it cannot parse
        "postgresql://u:s3cret-pw@127.0.0.1:5/db?bogus=1",
        "postgresql://u:s3cret-pw@127.0.0.1:notaport/db",
    ],
)
def test_a_malformed_url_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(StoreUnavailable) as failure:
        PostgresStore(url).migrate()
    message = str(failure.value)
    assert "\n" not in message and "s3cret-pw" not in message and "PostgreSQL" in message


# Apps, keys, rules ----------------------------------------------------------------------


def test_apps_keys_and_rules(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.migrate()
    try:
        app = store.create_app("Shop", ["https://shop.example.com"], {"rate_limit_ip": 5})
        assert app.settings["rate_limit_ip"] == 5 and app.settings["bot_policy"] == "flag"
        assert store.get_app(app.app_id) == app
        assert store.get_app("app_missing") is None
        second = store.create_app("Blog", [], {})
        assert {a.app_id for a in store.list_apps()} == {app.app_id, second.app_id}

        updated = store.update_app(app.app_id, name="Shop 2", settings={"ip_mode": "none"})
        assert updated.name == "Shop 2" and updated.origins == ["https://shop.example.com"]
        assert updated.settings["ip_mode"] == "none" and updated.settings["rate_limit_ip"] == 5
        assert store.update_app(app.app_id, origins=["https://a.example"]).origins == [
            "https://a.example"
        ]
        with pytest.raises(KeyError):
            store.update_app("app_missing", name="x")

        key_id, secret = store.create_key(app.app_id)
        from collector.ids import hash_key

        found = store.app_for_key(hash_key(secret))
        assert found is not None and found.app_id == app.app_id
        (listed,) = store.list_keys(app.app_id)
        assert listed["key_id"] == key_id and listed["prefix"] == secret[:7]
        assert listed["revoked_at"] is None
        assert store.revoke_key(key_id) and not store.revoke_key(key_id)
        assert store.app_for_key(hash_key(secret)) is None

        dedupe = store.add_rule(app.app_id, "confirmation", dedupe_key="orderId")
        throttle = store.add_rule(app.app_id, "email_opened", throttle_ms=60_000)
        assert (dedupe.kind, throttle.kind) == ("dedupe", "throttle")
        with pytest.raises(ValueError):
            store.add_rule(app.app_id, "x")
        got = store.get_app(app.app_id)
        assert got is not None and got.rules == [dedupe, throttle]
        assert store.remove_rule(app.app_id, throttle.id)
        assert not store.remove_rule(app.app_id, throttle.id)
        # Rule ids are never reused: a new rule would inherit the old one's state.
        again = store.add_rule(app.app_id, "email_opened", throttle_ms=60_000)
        assert again.id > throttle.id
    finally:
        store.close()


# Accepting ------------------------------------------------------------------------------


def test_a_message_id_is_stored_once(store: PostgresStore, pg_url: str) -> None:
    first = store.write([ev(APP, "a", T0, user="u1", message_id="m1")])[0]
    assert first.status == "accepted"
    retry = store.write([ev(APP, "a", T0, user="u1", message_id="m1")])[0]
    assert (retry.status, retry.event_id) == ("duplicate", first.event_id)  # still pending
    assert store.index_all() == 1
    again = store.write([ev(APP, "a", T0, user="u1", message_id="m1")])[0]
    assert (again.status, again.event_id) == ("duplicate", first.event_id)
    # Inside one group, and the separate namespace of identify calls.
    group = store.write(
        [
            ev(APP, "b", T0, user="u1", message_id="m2"),
            ev(APP, "b", T0, user="u1", message_id="m2"),
            ev(APP, "identify", T0, user="u1", message_id="m1"),
            ev(OTHER, "a", T0, user="u1", message_id="m1"),  # another app's id space
        ]
    )
    assert statuses(group) == ["accepted", "duplicate", "accepted", "accepted"]
    store.index_all()
    assert scalar(pg_url, "SELECT count(*) FROM events WHERE message_id = 'm1'") == 2
    assert scalar(pg_url, "SELECT count(*) FROM events WHERE message_id = 'm2'") == 1
    assert scalar(pg_url, "SELECT count(*) FROM identifies") == 1


def test_dedupe_and_throttle_rules(store: PostgresStore) -> None:
    dedupe = Rule(1, APP, "confirmation", "dedupe", dedupe_key="orderId")
    throttle = Rule(2, APP, "email_opened", "throttle", throttle_ms=20 * 60_000)

    def confirmation(ts: int, order: object, message_id: str | None = None) -> Event:
        return ruled(
            ev(APP, "confirmation", ts, user="u1", props={"orderId": order}, message_id=message_id),
            dedupe,
        )

    def opened(ts: int, **who: str) -> Event:
        return ruled(ev(APP, "email_opened", ts, **who), throttle)  # type: ignore[arg-type]

    outcomes = store.write([confirmation(T0, 7, "c1"), confirmation(T0 + 1, 7, "c2")])
    assert statuses(outcomes) == ["accepted", "discarded"]
    assert outcomes[1].reason == "duplicate orderId"
    assert store.write([confirmation(T0 + 2, "7")])[0].status == "accepted"  # typed: "7" ≠ 7
    # The discarded event's message id was released: a retry is judged again.
    assert store.write([confirmation(T0 + 3, 8, "c2")])[0].status == "accepted"

    assert store.write([opened(T0, user="u1")])[0].status == "accepted"
    late = store.write([opened(T0 + 60_000, user="u1"), opened(T0 + 21 * 60_000, user="u1")])
    assert statuses(late) == ["discarded", "accepted"]
    assert late[0].reason == "throttled"
    # The same person by an anonymous id linked to u1 while the link is still pending.
    store.write([ev(APP, "identify", T0, user="u1", anon="a1")])
    linked = store.write([opened(T0 + 22 * 60_000, anon="a1")])[0]
    assert (linked.status, linked.reason) == ("discarded", "throttled")
    assert store.discard_counts(APP) == {"duplicate orderId": 1, "throttled": 2}


def test_throttles_hold_across_collectors_writing_at_once(
    pg_url: str, store: PostgresStore
) -> None:
    throttle = Rule(2, APP, "email_opened", "throttle", throttle_ms=20 * 60_000)
    stores = [PostgresStore(pg_url) for _ in range(4)]
    results: list[Outcome] = []
    barrier = threading.Barrier(len(stores))

    def send(s: PostgresStore) -> None:
        barrier.wait()
        results.extend(s.write([ruled(ev(APP, "email_opened", T0, user="u9"), throttle)]))

    threads = [threading.Thread(target=send, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sorted(statuses(results)) == ["accepted", "discarded", "discarded", "discarded"]


def test_traits_merge_as_a_json_merge_patch(store: PostgresStore, pg_url: str) -> None:
    def traits(user: str) -> Any:
        return scalar(pg_url, "SELECT traits FROM users WHERE user_id = %s", (user,))

    store.write(
        [
            ev(
                APP,
                "identify",
                T0,
                user="u1",
                traits={"plan": "pro", "gone": None, "address": {"city": "Oslo", "zip": "0150"}},
            ),
        ]
    )
    # A null is no trait, on a new user too.
    assert traits("u1") == {"plan": "pro", "address": {"city": "Oslo", "zip": "0150"}}
    store.write(
        [
            ev(
                APP,
                "identify",
                T0 + 5,
                user="u1",
                traits={
                    "plan": None,
                    "address": {"zip": None, "street": "Karl Johans gate"},
                    "tags": ["a"],
                },
            )
        ]
    )
    assert traits("u1") == {
        "address": {"city": "Oslo", "street": "Karl Johans gate"},
        "tags": ["a"],
    }
    # Within one group the last value wins; first and last seen span every call.
    store.write(
        [
            ev(APP, "identify", T0 - 10, user="u1", traits={"tags": ["b"]}),
            ev(APP, "identify", T0 + 10, user="u1", traits={"tags": ["c"]}),
        ]
    )
    assert traits("u1")["tags"] == ["c"]
    assert rows(pg_url, "SELECT first_seen, last_seen FROM users WHERE user_id = 'u1'") == [
        (T0 - 10, T0 + 10)
    ]
    assert store.user_exists(APP, "u1") and not store.user_exists(APP, "u2")
    assert not store.user_exists(OTHER, "u1")


def test_an_identity_link_moves_the_anonymous_past_to_the_user(
    store: PostgresStore, pg_url: str
) -> None:
    store.write(
        [
            ev(APP, "page_viewed", T0, anon="a1"),
            ev(APP, "page_viewed", T0 + 1, anon="a1"),
            ev(APP, "page_viewed", T0 + 2, anon="a2"),
        ]
    )
    store.index_all()  # indexed as anonymous first
    store.write([ev(APP, "page_viewed", T0 + 3, user="u1")])
    store.write([ev(APP, "identify", T0 + 4, user="u1", anon="a1")])
    store.write([ev(APP, "page_viewed", T0 + 5, anon="a1")])  # after the link
    # The first user an anonymous id is linked to keeps it.
    store.write([ev(APP, "identify", T0 + 6, user="u2", anon="a1")])
    store.index_all()
    persons = rows(pg_url, "SELECT person, count(*) FROM events GROUP BY person ORDER BY person")
    assert persons == [("anon:a2", 1), ("u1", 4)]
    assert rows(pg_url, "SELECT anonymous_id, user_id FROM identities") == [("a1", "u1")]
    stats = rows(
        pg_url,
        "SELECT person, event, n, first_ts, last_ts FROM person_event_stats ORDER BY person",
    )
    assert stats == [
        ("anon:a2", "page_viewed", 1, T0 + 2, T0 + 2),
        ("u1", "page_viewed", 4, T0, T0 + 5),
    ]


# Indexing -------------------------------------------------------------------------------


def test_indexing_in_chunks_and_the_backlog(store: PostgresStore, pg_url: str) -> None:
    for g in range(4):
        store.write([ev(APP, "a", T0 + g * 10 + i, user=f"u{i}") for i in range(10)])
    assert store.backlog() == 40
    assert scalar(pg_url, "SELECT count(*) FROM events") == 0
    assert store.index_some(15) == 20  # whole inbox rows: two groups reach 15
    assert store.backlog() == 20
    # While another collector indexes, wait=False gives up at once.
    with psycopg.connect(pg_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK,))
        assert store.index_some(15, wait=False) == 0
    assert store.index_all() == 20
    assert store.backlog() == 0 and store.index_all() == 0 and store.index_some(5) == 0
    assert scalar(pg_url, "SELECT count(*) FROM inbox") == 0
    # Positions follow the order events were accepted in, with no repeats.
    seqs = [r[0] for r in rows(pg_url, "SELECT seq FROM events ORDER BY ts")]
    assert seqs == sorted(seqs) and len(set(seqs)) == 40


def test_the_backlog_stays_within_its_bound(pg_url: str, store: PostgresStore) -> None:
    bounded = PostgresStore(pg_url, max_backlog=50)
    try:
        for n in range(5):
            bounded.write([ev(APP, "a", T0 + n * 40 + i, user=f"u{i}") for i in range(40)])
            assert bounded.backlog() <= 50
        assert scalar(pg_url, "SELECT count(*) FROM events") >= 150
        bounded.index_all()
        assert scalar(pg_url, "SELECT count(*) FROM events") == 200
    finally:
        bounded.close()


@pytest.mark.parametrize(
    ("bound", "group", "waits"),
    [
        (50, 60, True),  # a group of batches waits for a busy indexer
        (15, 40, True),  # a small one too, once the backlog is past twice the bound
        (50, 40, False),  # a small one within twice the bound does not
    ],
)
def test_past_its_bound_a_commit_waits_for_a_busy_indexer_then_indexes(
    pg_url: str, store: PostgresStore, bound: int, group: int, waits: bool
) -> None:
    # An indexer under pressure holds the indexing lock chunk after chunk: a commit that
    # gave up on the lock let the backlog grow without end (564,100 behind after a
    # saturating minute, with a bound of 25,000).
    bounded = PostgresStore(pg_url, max_backlog=bound)
    try:
        bounded.write([ev(APP, "a", T0 + i, user=f"u{i}") for i in range(40)])
        done = threading.Event()

        def over_the_bound() -> None:
            bounded.write([ev(APP, "a", T0 + 40 + i, user=f"u{i}") for i in range(group)])
            done.set()

        with psycopg.connect(pg_url) as indexer:
            indexer.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK,))
            writer = threading.Thread(target=over_the_bound)
            writer.start()
            if waits:
                wait_for(lambda: scalar(pg_url, _WAITING_FOR_ADVISORY) == 1)
                # Its events are stored while it waits; it is not answered yet.
                assert scalar(pg_url, "SELECT sum(n) FROM inbox") >= group
                assert not done.is_set()
            else:
                writer.join(timeout=30)
                assert done.is_set()  # answered while the indexer holds the lock
                assert bounded.backlog() == 40 + group
            indexer.rollback()
            writer.join(timeout=30)
        assert done.is_set()
        if waits:
            assert bounded.backlog() <= bound
        bounded.index_all()
        assert scalar(pg_url, "SELECT count(*) FROM events") == 40 + group
    finally:
        bounded.close()


_WAITING_FOR_ADVISORY = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"


def test_collectors_writing_at_once_store_each_message_id_once(
    pg_url: str, store: PostgresStore
) -> None:
    stores = [store, *(PostgresStore(pg_url) for _ in range(3))]
    results: list[list[Outcome]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def collector(s: PostgresStore, worker: int) -> None:
        start.wait()
        for g in range(25):
            # Overlapping ids, in a different order in each worker.
            ids = [f"m{(g * 7 + i * (worker + 1)) % 60}" for i in range(8)]
            group = [ev(APP, "a", T0 + g, user="u1", message_id=m) for m in ids]
            outcomes = s.try_write(lambda group=group: group)
            assert outcomes is not None
            with lock:
                results.append(outcomes)

    threads = [threading.Thread(target=collector, args=(stores[w % 4], w)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores[1:]:
        s.close()
    assert len(results) == 200
    store.index_all()
    stored = rows(pg_url, "SELECT message_id, count(*) FROM events GROUP BY message_id")
    assert stored and all(n == 1 for _, n in stored)
    accepted = [o for group in results for o in group if o.status == "accepted"]
    assert len(accepted) == len(stored) == scalar(pg_url, "SELECT count(*) FROM message_ids")
    # Every duplicate names the event that holds its message id.
    owners = {eid for (eid,) in rows(pg_url, "SELECT id FROM events")}
    assert all(o.event_id in owners for group in results for o in group)


def test_months_get_partitions_as_events_arrive(store: PostgresStore, pg_url: str) -> None:
    old = T0 - 300 * DAY  # 2025-11
    ancient = 86_400_000  # 1970: before any partition, into the default one
    store.write([ev(APP, "a", old, user="u1"), ev(APP, "b", ancient, user="u1")])
    store.index_all()
    assert scalar(pg_url, "SELECT count(*) FROM events_2025_11") == 1
    assert scalar(pg_url, "SELECT count(*) FROM events_default") == 1
    assert scalar(pg_url, "SELECT count(*) FROM events") == 2


def test_a_stream_polling_after_its_position_misses_nothing(
    pg_url: str, store: PostgresStore
) -> None:
    """Collectors index concurrently while others accept; a reader that only ever asks
    for positions after the last it saw still sees every event, once: positions are
    handed out in commit order."""
    stores = [store, *(PostgresStore(pg_url) for _ in range(3))]
    writing = threading.Event()
    writing.set()
    seen: list[str] = []

    def write(s: PostgresStore, w: int) -> None:
        for g in range(30):
            s.write([ev(APP, "a", T0 + g, user=f"u{w}-{i}") for i in range(5)])
        writing.clear()

    def index(s: PostgresStore) -> None:
        while writing.is_set():
            s.index_some(7, wait=False)

    def read() -> None:
        position = 0
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while True:
                done = not writing.is_set() and store.backlog() == 0
                new = conn.execute(
                    "SELECT seq, id FROM events WHERE seq > %s ORDER BY seq", (position,)
                ).fetchall()
                if new:
                    position = new[-1][0]
                    seen.extend(i for _, i in new)
                elif done:
                    return

    threads = [
        *(threading.Thread(target=write, args=(s, w)) for w, s in enumerate(stores[:2])),
        *(threading.Thread(target=index, args=(s,)) for s in stores[1:]),
        threading.Thread(target=read),
    ]
    for t in threads[:-1]:
        t.start()
    threads[-1].start()
    for t in threads[:-1]:
        t.join()
    store.index_all()
    threads[-1].join()
    for s in stores[1:]:
        s.close()
    stored = [i for (i,) in rows(pg_url, "SELECT id FROM events")]
    assert len(stored) == 300
    assert sorted(seen) == sorted(stored)


def test_group_commits_never_wait_for_a_busy_main_pool(store: PostgresStore) -> None:
    with contextlib.ExitStack() as held:
        for _ in range(connections.MAIN_POOL_SIZE):  # every connection of the main pool
            held.enter_context(store._db.connection())
        started = time.monotonic()
        outcomes = store.try_write(lambda: [ev(APP, "a", T0, user="u1")])
        assert outcomes is not None and statuses(outcomes) == ["accepted"]
        assert time.monotonic() - started < 2  # the main pool would make it wait 30 s


# Data management ------------------------------------------------------------------------


def test_purge_drops_a_month_that_only_this_app_has(store: PostgresStore, pg_url: str) -> None:
    store.write(
        [
            ev(APP, "old", T0 - 300 * DAY, user="u1", message_id="o1"),  # 2025-11: APP only
            ev(APP, "old", T0 - 300 * DAY + 1, user="u2", message_id="o2"),
            ev(APP, "older", T0 - 330 * DAY, user="u1", message_id="o3"),  # 2025-10: shared
            ev(OTHER, "older", T0 - 330 * DAY, user="u1", message_id="x1"),
            ev(APP, "new", T0, user="u1", message_id="n1"),
        ]
    )
    assert store.purge(APP, T0 - 100 * DAY) == 3  # pending events count as stored
    assert scalar(pg_url, "SELECT to_regclass('events_2025_11') IS NULL")
    assert scalar(pg_url, "SELECT to_regclass('events_2025_10') IS NOT NULL")
    assert sorted(rows(pg_url, "SELECT app_id, event FROM events")) == [
        (OTHER, "older"),
        (APP, "new"),
    ]
    # Summaries rebuilt from what is left; purged message ids free again.
    assert rows(
        pg_url, "SELECT person, event, n FROM person_event_stats WHERE app_id = %s", (APP,)
    ) == [("u1", "new", 1)]
    assert store.write([ev(APP, "old", T0 - 300 * DAY, user="u1", message_id="o1")])[0].status == (
        "accepted"
    )
    store.index_all()  # the dropped month comes back for a late event
    assert scalar(pg_url, "SELECT count(*) FROM events_2025_11") == 1


def test_delete_user_removes_their_past_and_frees_their_ids(
    store: PostgresStore, pg_url: str
) -> None:
    store.write([ev(APP, "identify", T0, user="u1", anon="a1", traits={"plan": "pro"})])
    store.write(
        [
            ev(APP, "page_viewed", T0 - 5, anon="a1", message_id="m0"),  # before the link
            ev(APP, "page_viewed", T0 + 1, anon="a1", message_id="m1"),
            ev(APP, "signup", T0 + 2, user="u1", message_id="m2"),
            ev(APP, "signup", T0 + 3, user="u2", message_id="m3"),
            ev(APP, "signup", T0 + 4, user="u1", anon="a9", message_id="m4"),
        ]
    )
    store.index_all()
    execute(
        pg_url,
        "INSERT INTO rules (app_id, event, kind, throttle_ms, created_at) "
        "VALUES (%s, 'x', 'throttle', 1, '')",
        (APP,),
    )
    execute(pg_url, "INSERT INTO rule_state SELECT id, 'u1', 1 FROM rules")
    assert store.delete_user(APP, "u1") == 4
    assert rows(pg_url, "SELECT user_id FROM events") == [("u2",)]
    for table in ("identifies", "identities", "users", "rule_state"):
        assert scalar(pg_url, f"SELECT count(*) FROM {table}") == 0, table
    assert rows(pg_url, "SELECT person FROM person_event_stats") == [("u2",)]
    assert store.write([ev(APP, "signup", T0 + 9, user="u1", message_id="m2")])[0].status == (
        "accepted"
    )
    assert store.write([ev(APP, "signup", T0, user="u2", message_id="m3")])[0].status == (
        "duplicate"
    )


# Live stream ----------------------------------------------------------------------------


def test_a_stream_wakes_when_another_collector_indexes(pg_url: str, store: PostgresStore) -> None:
    other = PostgresStore(pg_url)

    async def scenario() -> float:
        await store.wait_for_events(0.01)  # starts listening
        await asyncio.to_thread(wait_for, lambda: store._listener.listening)
        started = time.monotonic()
        waiting = asyncio.create_task(store.wait_for_events(30))
        await asyncio.sleep(0)  # the waiter is registered
        assert not waiting.done()
        await asyncio.to_thread(other.write, [ev(APP, "a", T0, user="u1")])
        await asyncio.to_thread(other.index_all)
        await waiting
        return time.monotonic() - started

    try:
        assert asyncio.run(scenario()) < 5
    finally:
        other.close()


# A server that goes away ------------------------------------------------------------------


def test_writes_fail_while_the_server_is_down_and_resume_after(tmp_path: Any) -> None:
    with PostgresCluster() as cluster:
        url = cluster.create_database()
        store = PostgresStore(url)
        store.migrate()
        try:
            assert store.write([ev(APP, "a", T0, user="u1", message_id="m1")])[0].status == (
                "accepted"
            )
            cluster.stop(remove=False)
            with pytest.raises(Unavailable):
                store.write([ev(APP, "a", T0, user="u1", message_id="m2")])
            # Down: a group commit fails at once, and takes its group so that its
            # requests are answered (503) instead of waiting in the queue.
            taken: list[bool] = []
            with pytest.raises(Unavailable):
                store.try_write(lambda: taken.append(True) or [ev(APP, "a", T0, user="u1")])
            assert taken == [True]
            with pytest.raises(Unavailable):
                store.backlog()

            cluster.start()

            def written() -> bool:
                try:
                    store.write([ev(APP, "a", T0, user="u1", message_id="m2")])
                except Unavailable:
                    return False
                return True

            wait_for(written)
            assert store.try_write(lambda: [ev(APP, "a", T0, user="u1", message_id="m3")])
            assert store.index_all() == 3
            assert store.write([ev(APP, "a", T0, user="u1", message_id="m2")])[0].status == (
                "duplicate"
            )
        finally:
            store.close()


def test_new_pooled_connections_leave_the_shared_random_generator_alone(pg_url: str) -> None:
    """What tests/conftest.py sees to, and hypothesis checks while it draws a property
    test's arguments: the pools' worker threads draw nothing from `random`'s shared
    generator when they open connections."""
    before = random.getstate()
    store = PostgresStore(pg_url)
    try:
        store.migrate()
        with ThreadPoolExecutor(4) as threads:  # four readers at once: the pool grows
            list(threads.map(lambda _: store.list_apps(), range(16)))
    finally:
        store.close()
    assert random.getstate() == before
