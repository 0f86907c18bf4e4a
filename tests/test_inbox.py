"""Accept now, index later (store/sqlite.py): what a group commit decides at once
(idempotency, rules, user traits) holds whether the events it compares with are still in
the inbox or already indexed; reads, deletion and purging see pending events; the
backlog stays within its bound; and a database from before the inbox keeps its ids."""

from __future__ import annotations

import os
import sqlite3
import zlib
from pathlib import Path

import lz4.block
import pytest

from collector.models import Event, Rule
from collector.query.types import EventsQuery
from collector.store import SQLiteStore, codec
from collector.store.sqlite import store as sqlite_store
from tests.factories import DAY, ev, whole_inbox_row

APP = "app_inbox"
T0 = 1_790_000_000_000


def _big_request() -> list[Event]:
    """A flooding app's request, one event over what the writer counts as big."""
    from collector.ingest.writer import BIG_REQUEST

    return [ev(APP, "flood", T0 + i, user="u") for i in range(BIG_REQUEST + 1)]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(str(tmp_path / "t.db"))
    s.migrate()
    s.conn().execute("INSERT INTO apps VALUES (?, 'inbox', '[]', '{}', '2026-11-22')", (APP,))
    return s


def indexed_rows(store: SQLiteStore, sql: str = "SELECT count(*) FROM events") -> int:
    """A count from the indexed tables as they are, without catching up."""
    return int(store.conn().execute(sql).fetchone()[0])


def test_a_write_is_committed_to_the_inbox_and_indexed_later(store: SQLiteStore) -> None:
    outcomes = store.write([ev(APP, "a", T0, user="u1", message_id="m1")])
    assert [o.status for o in outcomes] == ["accepted"]
    assert store.backlog() == 1
    assert indexed_rows(store) == 0  # acknowledged, committed, not indexed yet
    assert store.index_all() == 1
    assert store.backlog() == 0
    assert indexed_rows(store) == 1
    assert indexed_rows(store, "SELECT count(*) FROM inbox") == 0


def test_reads_catch_up_first(store: SQLiteStore) -> None:
    store.write([ev(APP, "a", T0, user="u1"), ev(APP, "b", T0 + 1, user="u1")])
    page = store.events_page(APP, EventsQuery(user="u1"))
    assert sorted(e["event"] for e in page.events) == ["a", "b"]
    profile = store.user_profile(APP, "u1")
    assert profile is not None and profile["event_counts"]["a"] == 1


def test_a_retry_is_a_duplicate_while_pending_and_after_indexing(store: SQLiteStore) -> None:
    first = store.write([ev(APP, "a", T0, user="u1", message_id="m1")])[0]
    retry = ev(APP, "a", T0, user="u1", message_id="m1")
    assert store.write([retry])[0].status == "duplicate"
    assert store.write([retry])[0].event_id == first.event_id  # still in the inbox
    store.index_all()
    again = store.write([ev(APP, "a", T0, user="u1", message_id="m1")])[0]
    assert (again.status, again.event_id) == ("duplicate", first.event_id)
    assert store.index_all() == 0
    assert indexed_rows(store) == 1


def test_repeats_inside_one_group_and_separate_namespaces(store: SQLiteStore) -> None:
    group = [
        ev(APP, "a", T0, user="u1", message_id="m1"),
        ev(APP, "a", T0, user="u1", message_id="m2"),
        ev(APP, "a", T0, user="u1", message_id="m1"),
        ev(APP, "identify", T0, user="u1", message_id="m1"),  # identify calls: own ids
    ]
    outcomes = store.write(group)
    assert [o.status for o in outcomes] == ["accepted", "accepted", "duplicate", "accepted"]
    assert outcomes[2].event_id == outcomes[0].event_id
    store.index_all()
    assert indexed_rows(store) == 2
    assert indexed_rows(store, "SELECT count(*) FROM identifies") == 1


def test_backlog_stays_within_its_bound(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "b.db"), max_backlog=50)
    store.migrate()
    for n in range(5):
        store.write([ev(APP, "a", T0 + n * 40 + i, user=f"u{i}") for i in range(40)])
        assert store.backlog() <= 50
    assert indexed_rows(store) >= 150  # the commits indexed what they added past the bound
    store.index_all()
    assert indexed_rows(store) == 200


def test_delete_user_removes_pending_events_and_frees_their_ids(store: SQLiteStore) -> None:
    store.write([ev(APP, "identify", T0, user="u1", anon="a1", traits={"plan": "pro"})])
    store.write(
        [
            ev(APP, "page_viewed", T0 + 1, anon="a1", message_id="m1"),
            ev(APP, "signup", T0 + 2, user="u1", message_id="m2"),
            ev(APP, "signup", T0 + 3, user="u2", message_id="m3"),
        ]
    )
    assert store.backlog() == 4
    assert store.delete_user(APP, "u1") == 2
    assert store.backlog() == 0
    assert [r[0] for r in store.conn().execute("SELECT user_id FROM events")] == ["u2"]
    assert indexed_rows(store, "SELECT count(*) FROM identifies") == 0
    # A deleted event is not kept as a duplicate: the same id is a new event now.
    assert store.write([ev(APP, "signup", T0 + 4, user="u1", message_id="m2")])[0].status == (
        "accepted"
    )
    assert store.write([ev(APP, "signup", T0, user="u2", message_id="m3")])[0].status == (
        "duplicate"
    )


def test_purge_includes_pending_events(store: SQLiteStore) -> None:
    store.write(
        [
            ev(APP, "old", T0 - 100 * DAY, user="u1", message_id="old"),
            ev(APP, "new", T0, user="u1", message_id="new"),
        ]
    )
    assert store.purge(APP, T0 - 90 * DAY) == 1
    assert [r[0] for r in store.conn().execute("SELECT event FROM events")] == ["new"]
    assert store.write([ev(APP, "old", T0 - 100 * DAY, user="u1", message_id="old")])[0].status == (
        "accepted"
    )


def test_a_throttle_sees_a_link_still_in_the_inbox(store: SQLiteStore) -> None:
    rule = Rule(1, APP, "email_opened", "throttle", throttle_ms=20 * 60 * 1000)
    store.conn().execute(
        "INSERT INTO rules VALUES (1, ?, 'email_opened', 'throttle', NULL, ?, '2026-11-22')",
        (APP, rule.throttle_ms),
    )

    def opened(ts: int, **who: str) -> Event:
        event = ev(APP, "email_opened", ts, **who)  # type: ignore[arg-type]
        event.rules = (rule,)
        return event

    assert store.write([opened(T0, user="u1")])[0].status == "accepted"
    store.write([ev(APP, "identify", T0 + 1, user="u1", anon="a1")])  # the link, pending
    # The same person, by the anonymous id now linked to u1, within 20 minutes.
    outcome = store.write([opened(T0 + 60_000, anon="a1")])[0]
    assert (outcome.status, outcome.reason) == ("discarded", "throttled")


def test_pending_events_survive_a_new_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    first = SQLiteStore(path)
    first.migrate()
    first.write([ev(APP, "a", T0, user="u1", message_id="m1")])
    first.close()  # nothing indexed: the inbox row is the committed event
    second = SQLiteStore(path)
    assert second.backlog() == 1
    assert second.index_all() == 1
    assert indexed_rows(second, "SELECT count(*) FROM events WHERE message_id = 'm1'") == 1


def test_migration_keeps_the_message_ids_of_stored_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "old.db")
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:5])
    old = SQLiteStore(path)
    assert old.migrate() == 5
    with sqlite3.connect(path) as conn:  # an event as the schema before the inbox stored it
        conn.execute(
            "INSERT INTO events (id, app_id, message_id, event, user_id, person, ts, "
            "received_at, properties, context) VALUES "
            "('evt_old', ?, 'm-old', 'a', 'u1', 'u1', ?, ?, '{}', '{}')",
            (APP, T0, T0),
        )
    old.close()
    monkeypatch.undo()
    store = SQLiteStore(path)
    assert store.migrate() == sqlite_store.MIGRATIONS[-1][0]
    outcome = store.write([ev(APP, "a", T0, user="u1", message_id="m-old")])[0]
    assert (outcome.status, outcome.event_id) == ("duplicate", "evt_old")


def test_a_database_from_before_the_inbox_file_moves_its_pending_events_ids_and_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 16: the accept path's tables move from the main file to `<db>-inbox`,
    with an event accepted and not yet indexed, its message id and its user's traits."""
    path = str(tmp_path / "old.db")
    before = [m for m in sqlite_store.MIGRATIONS if m[0] < 16]
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", before)
    old = SQLiteStore(path)
    old.migrate()
    old.close()
    monkeypatch.undo()
    pending = [ev(APP, "a", T0, user="u1", message_id="m-pending")]
    with sqlite3.connect(path) as conn:  # as the collector before it left them
        conn.execute("INSERT INTO apps VALUES (?, 'inbox', '[]', '{}', '2026-11-22')", (APP,))
        conn.execute("INSERT INTO inbox (total, data) VALUES (1, ?)", (codec.encode(pending),))
        conn.execute("INSERT INTO message_ids VALUES (?, 0, 'm-pending', ?)", (APP, pending[0].id))
        conn.execute("INSERT INTO users VALUES (?, 'u1', '{}', ?, ?)", (APP, T0, T0))
    store = SQLiteStore(path)
    assert store.migrate() == sqlite_store.MIGRATIONS[-1][0]
    with sqlite3.connect(path) as conn:
        left = conn.execute(
            "SELECT name FROM sqlite_master WHERE name IN "
            "('inbox', 'message_ids', 'rule_state', 'users', 'discards')"
        ).fetchall()
    assert left == []  # only in the inbox file now
    assert store.backlog() == 1
    outcome = store.write([ev(APP, "a", T0, user="u1", message_id="m-pending")])[0]
    assert (outcome.status, outcome.event_id) == ("duplicate", pending[0].id)
    assert store.user_exists(APP, "u1")
    assert store.index_all() == 1
    assert indexed_rows(store, "SELECT count(*) FROM events WHERE message_id = 'm-pending'") == 1
    store.close()
    again = SQLiteStore(path)  # a second start finds nothing left to move
    assert again.migrate() == sqlite_store.MIGRATIONS[-1][0]
    assert again.user_exists(APP, "u1")
    again.close()


def test_a_database_is_never_served_without_its_own_inbox_file(tmp_path: Path) -> None:
    """The inbox file holds acknowledged events, message ids and users: a database whose
    inbox is missing, or is another database's, is refused rather than served."""
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for path in (first, second):
        s = SQLiteStore(path)
        s.migrate()
        s.close()
    os.replace(second + "-inbox", tmp_path / "b-inbox-elsewhere")
    with pytest.raises(sqlite3.DatabaseError, match="missing"):
        SQLiteStore(second).migrate()
    assert not os.path.exists(second + "-inbox")  # not made anew, empty, in its place
    os.replace(first + "-inbox", second + "-inbox")
    with pytest.raises(sqlite3.DatabaseError, match="another database"):
        SQLiteStore(second).migrate()


def test_a_stream_poll_indexes_one_chunk_and_never_waits(store: SQLiteStore) -> None:
    for g in range(3):
        store.write([ev(APP, "a", T0 + g * 1000 + i, user=f"u{i}") for i in range(1000)])
    first = store.stream_events(APP, 0, (), False, 5000)
    assert len(first) == 1000 and store.backlog() == 2000  # one inbox row of the three
    fd = store._open_lock()  # another writer holds the lock: the poll reads what is there
    try:
        sqlite_store._lock(fd, True)
        assert len(store.stream_events(APP, first[-1][0], (), False, 5000)) == 0
        assert store.backlog() == 2000
    finally:
        sqlite_store._unlock(fd)
        os.close(fd)
    assert len(store.stream_events(APP, first[-1][0], (), False, 5000)) == 1000


def test_inbox_rows_are_compressed_and_older_rows_still_index(store: SQLiteStore) -> None:
    group = [ev(APP, "page_viewed", T0 + i, user="u1", message_id=f"m{i}") for i in range(20)]
    store.write(group)
    (data,) = store.conn().execute("SELECT data FROM inbox").fetchone()
    assert data[:1] == b"S"
    plain = lz4.block.decompress(data[1:])
    assert len(data) * 3 < len(plain)  # twenty events alike: LZ4 shrinks them severalfold
    # Rows written by earlier versions (whole events: plain JSON, zlib, LZ4) index too.
    older_rows = (
        lambda raw: raw,
        lambda raw: zlib.compress(raw, 1),
        lambda raw: b"L" + lz4.block.compress(raw),
    )
    for n, older in enumerate(older_rows, 1):
        events = [ev(APP, "older", T0 + i, user="u1", message_id=f"o{n}-{i}") for i in range(5)]
        store.write(events)
        last = "(SELECT max(id) FROM inbox)"
        store.conn().execute(
            f"UPDATE inbox SET data = ? WHERE id = {last}", (older(whole_inbox_row(events)),)
        )
    assert store.index_all() == 35
    assert indexed_rows(store) == 35
    assert indexed_rows(store, "SELECT count(*) FROM events WHERE event = 'older'") == 15


def test_a_big_group_is_kept_in_rows_the_indexer_can_take_a_few_at_a_time(
    store: SQLiteStore,
) -> None:
    """Indexing takes whole inbox rows: a 2,000-event batch kept as one row held the
    writers' lock for all 2,000 however small the indexer's chunk."""
    store.write([ev(APP, "flood", T0 + i, user=f"u{i % 7}") for i in range(2_000)])
    row = sqlite_store.INBOX_ROW
    totals = [r[0] for r in store.conn().execute("SELECT total FROM inbox ORDER BY id")]
    assert totals == list(range(row, 2_001, row))
    assert store.index_some(row, wait=False) == row
    assert store.backlog() == 2_000 - row
    assert store.index_all() == 2_000 - row
    assert indexed_rows(store) == 2_000


def test_a_group_commit_is_acknowledged_while_indexing_holds_the_main_file(
    store: SQLiteStore,
) -> None:
    """The group commit writes the inbox file only: an indexing transaction, which held
    the one write lock 60-530 ms under a flood (preempted while holding it), no longer
    holds any acknowledgement back. Each process has its own store, as here."""
    store.write([ev(APP, "a", T0 + i, user="u1") for i in range(10)])
    worker = SQLiteStore(store.path)
    with store._turn(), store._tx() as conn:  # indexing, in the middle of its transaction
        conn.execute("UPDATE main.meta SET value = value WHERE key = 'indexed_total'")
        outcomes = worker.try_write(lambda: [ev(APP, "b", T0, user="u2", message_id="m1")])
        assert outcomes is not None and [o.status for o in outcomes] == ["accepted"]
    assert store.backlog() == 11
    assert [o.status for o in worker.write([ev(APP, "b", T0, message_id="m1")])] == ["duplicate"]
    assert store.index_all() == 11
    assert indexed_rows(store) == 11
    assert indexed_rows(store, "SELECT count(*) FROM inbox") == 0  # consumed, then deleted
    worker.close()


def test_a_group_commit_that_finds_the_inbox_taken_says_it_waits(store: SQLiteStore) -> None:
    """Consumed inbox rows are deleted in short transactions of the inbox file, which a
    group commit that waits for that file goes before."""
    worker = SQLiteStore(store.path)
    other = SQLiteStore(store.path)
    store.write([ev(APP, "a", T0, user="u1")])
    with other._turn(lock=sqlite_store.INBOX_LOCK):  # another worker's group commit
        assert worker.try_write(lambda: [ev(APP, "b", T0)]) is None
        assert store._writers_waiting()
        assert worker.try_write(lambda: [ev(APP, "c", T0)]) is None  # still one wait
    assert store.index_some(500) == 1  # indexing never waits for the inbox's turn
    assert indexed_rows(store, "SELECT count(*) FROM inbox") == 1  # left to the commit
    assert worker.try_write(lambda: [ev(APP, "d", T0)]) is not None
    assert not store._writers_waiting()  # it has written: nobody waits now
    assert store.index_some(500) == 1
    assert indexed_rows(store, "SELECT count(*) FROM inbox") == 0  # both consumed rows
    worker.close()
    other.close()


def test_a_writer_that_finds_the_probe_on_the_wait_file_tries_again(
    store: SQLiteStore,
) -> None:
    """The wait file is probed with an exclusive lock for an instant; a worker that
    asked for its shared lock just then failed its group commit with a traceback
    (BlockingIOError), found by the abuse benchmark's flood."""
    worker = SQLiteStore(store.path)
    probe = store._open_lock(sqlite_store.INBOX_WAIT)
    with store._turn(lock=sqlite_store.INBOX_LOCK):
        sqlite_store._lock(probe, blocking=False)  # the probe, at that instant
        assert worker.try_write(lambda: [ev(APP, "a", T0)]) is None  # the lock is taken
        sqlite_store._unlock(probe)
        assert worker.try_write(lambda: [ev(APP, "b", T0)]) is None
        assert store._writers_waiting()  # said at the next try
    assert worker.try_write(lambda: [ev(APP, "c", T0)]) is not None
    os.close(probe)
    worker.close()


def test_a_plan_that_found_the_lock_taken_is_kept_for_the_next_try(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write([ev(APP, "a", T0 + i, user="u1") for i in range(10)])
    plans: list[int] = []
    plan = sqlite_store._plan_pending

    def counted(*args: object, **kwargs: object) -> object:
        plans.append(1)
        return plan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_store, "_plan_pending", counted)
    other = SQLiteStore(store.path)
    with other._turn():  # a worker commits
        assert store.index_some(500, wait=False) == 0
        assert store.index_some(500, wait=False) == 0
    assert len(plans) == 1  # planned once, kept while the lock was taken
    assert store.index_some(5_000, wait=False) == 10  # a small plan serves a large chunk
    assert len(plans) == 1
    other.write([ev(APP, "b", T0, user="u2")])
    with other._turn():
        assert store.index_some(5_000, wait=False) == 0
    planned = len(plans)
    with other._turn():  # a large plan kept does not serve a small chunk
        assert store.index_some(500, wait=False) == 0
    assert len(plans) == planned + 1
    other.index_all()  # another indexes first: the kept plan is stale, and dropped
    other.write([ev(APP, "c", T0, user="u3")])
    planned = len(plans)
    assert store.index_some(500, wait=False) == 1  # c alone, newly planned
    assert len(plans) == planned + 1
    other.close()


def test_at_its_bound_the_backlog_refuses_big_requests_and_takes_small_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bound every commit indexes as much as it adds, on the event loop and
    holding the lock: a flood's 2,000-event commits then held every app back 1-2 s. The
    app that sends big batches waits for the indexer instead."""
    import asyncio

    from collector.errors import BacklogFull
    from collector.ingest.writer import BIG_REQUEST, Writer

    clock = [100.0]
    monkeypatch.setattr(sqlite_store.time, "monotonic", lambda: clock[0])
    store = SQLiteStore(str(tmp_path / "b.db"), max_backlog=300)
    store.migrate()
    big = BIG_REQUEST + 1

    async def scenario() -> None:
        writer = Writer(store, queue_size=10_000)
        await writer.start()
        await writer.submit(_big_request())
        assert not store.at_backlog_bound()  # 251 of 300
        store.write([ev(APP, "small", T0 + i, user="s") for i in range(20)])
        assert store.at_backlog_bound()  # 271: within a tenth of the bound
        with pytest.raises(BacklogFull):
            await writer.submit(_big_request())
        assert len(await writer.submit([ev(APP, "quiet", T0, user="q")])) == 1
        assert store.backlog() == 272
        store.index_all()  # the indexer catches up
        assert store.at_backlog_bound()  # as the last commit found it, for a while
        clock[0] += 2 * sqlite_store.BOUND_READ_S
        assert not store.at_backlog_bound()  # then counted again
        await writer.submit(_big_request())
        await writer.stop()

    asyncio.run(scenario())
    assert store.backlog() == big


def test_a_big_request_that_would_take_the_backlog_past_its_bound_is_refused_at_commit(
    tmp_path: Path,
) -> None:
    """Big requests let in while the backlog was short of the bound, from every worker,
    took it past: each of their commits then indexed up to 2,000 events too, on the loop
    and holding the lock (0.1-0.7 s on the busy machine). Read under the lock, the
    backlog refuses them; small requests are still taken."""
    import asyncio

    from collector.errors import BacklogFull
    from collector.ingest.writer import Writer

    store = SQLiteStore(str(tmp_path / "b.db"), max_backlog=300)
    store.migrate()

    async def scenario() -> None:
        writer = Writer(store, queue_size=10_000)
        await writer.start()
        await writer.submit(_big_request())
        assert not store.at_backlog_bound()  # 251 of 300: short of the tenth below it
        with pytest.raises(BacklogFull):  # 502 would be past the bound
            await writer.submit(_big_request())
        assert store.at_backlog_bound()  # big requests are refused before they are read
        # Small requests are taken, in a group past the bound too (it indexes the excess).
        answers = await asyncio.gather(
            *(
                writer.submit([ev(APP, "quiet", T0 + i, user=f"q{n}") for i in range(10)])
                for n in range(30)
            )
        )
        assert [len(a) for a in answers] == [10] * 30
        await writer.stop()

    asyncio.run(scenario())
    assert store.backlog() == 300  # at the bound: the group indexed what it added past it
