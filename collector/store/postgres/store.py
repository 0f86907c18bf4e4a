"""The PostgreSQL store: the SQLite store's behaviour for collectors on many hosts.

What differs from SQLite, and why:

- Group commits of different collectors run side by side: there is no writer lock,
  only row-level claims (primitives.py), so try_write always writes.
- Indexing is serialised by an advisory lock held for its transaction instead of the
  writers' file lock; events get `seq` numbers (the stream position) in commit order.
- Events are range-partitioned by month, so purging old data can drop whole partitions
  (partitions.py).
- The live stream is woken by NOTIFY from whichever collector indexed (listen.py)
  instead of polling.
- The server may go away: calls then fail with `Unavailable` until it is back, and the
  store reconnects by itself (connections.py)."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from collector import ids
from collector.errors import Unavailable
from collector.models import DEFAULT_APP_SETTINGS, App, Event, Outcome, Rule
from collector.query.types import (
    AnalyticsQuery,
    EventsPage,
    EventsQuery,
    FunnelEvents,
    FunnelQuery,
    SegmentPage,
    SegmentQuery,
    StatsQuery,
)
from collector.settings import DEFAULT_MAX_BACKLOG
from collector.store import app_deletion, core, person_deletion, visits
from collector.store.columns import ColumnCache
from collector.store.postgres import migrations, partitions, queries
from collector.store.postgres.connections import Database
from collector.store.postgres.listen import Listener
from collector.store.postgres.primitives import (
    CHANNEL,
    BacklogGauge,
    PartitionsMissing,
    Primitives,
    accept_plain,
    backlog,
    bound_backlog,
    forget_call_owners,
    forget_message_ids,
    index_pending,
    last_inbox_id,
    lock_indexing,
    purge_people,
    restat_persons,
    share_rate_usage,
)
from collector.store.tables import Table
from collector.timeutil import now_ms

# For transactions that hold what other collectors wait for (the indexing lock, a
# group's message-id claims): should this collector's host vanish from the network
# mid-transaction, the server would otherwise keep its session, and the locks, until
# its TCP keepalives give up (two hours by default). Idle means waiting on the
# collector between statements, which takes milliseconds.
HOLDING_LOCKS = "SET LOCAL idle_in_transaction_session_timeout = '10s'"
INDEX_CHUNK = 5_000
INDEXING_BACKOFF_S = 0.01  # events an indexing transaction takes, as SQLite's
STREAM_CHUNK = 1_000  # at most this many indexed by each poll of a live stream


def _close(listener: Listener, db: Database) -> None:
    listener.close()
    db.close()


class PostgresStore:
    """The store for a `postgresql://` URL. Safe to share between threads; the
    group-commit writer calls try_write from threads of its own, each on a connection of
    its own, so the event loop keeps serving while a commit waits on the server, and two
    commits may wait side by side."""

    commit_threads = 2
    shares_rate_limits = True

    def __init__(self, url: str, *, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self.max_backlog = max_backlog
        self._db = Database(url, ingest_pool_size=self.commit_threads)
        self._gauge = BacklogGauge(max_backlog)
        self._indexing_elsewhere_until = 0.0  # index_some(wait=False) skips until then
        self._listener = Listener(self._db, CHANNEL)
        self.columns = ColumnCache()  # the web figures' columns (store/columns.py)
        # A store dropped without close() (a CLI command, a test) still closes its pools
        # and threads, from the thread that dropped it. Left to the pools' own __del__,
        # the last reference may go in one of their worker threads, which cannot join
        # itself.
        self._finalizer = weakref.finalize(self, _close, self._listener, self._db)

    def close(self) -> None:
        self._finalizer()

    # Schema ------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations; a server that cannot be reached raises
        StoreUnavailable, whose message is one line without the password."""
        try:
            conn = self._db.connect(autocommit=True)
        except psycopg.OperationalError as exc:
            raise self._db.unreachable(exc) from None
        with conn:
            version = migrations.migrate(conn)
            # This month's and the next: ingestion rarely has to make a partition.
            month = partitions.current_month()
            with conn.transaction():
                lock_indexing(conn, wait=True)  # purge may be dropping partitions
                partitions.create(
                    conn, partitions.missing(conn, [month, partitions.next_month(month)])
                )
        return version

    def secret(self) -> str:
        """This database's secret (signs query cursors; shared by every collector)."""
        with self._db.connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        assert row is not None, "migrate() first"
        return str(row[0])

    # Apps, keys, rules --------------------------------------------------------------

    def create_app(self, name: str, origins: Sequence[str], settings: dict[str, Any]) -> App:
        app = core.new_app(name, origins, settings)
        with self._db.connection() as conn:
            conn.execute(
                "INSERT INTO apps (app_id, name, origins, settings, created_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (app.app_id, app.name, Jsonb(app.origins), Jsonb(app.settings), app.created_at),
            )
        return app

    def _apps(self, where: str, params: Sequence[Any]) -> list[App]:
        with self._db.transaction(snapshot=True) as conn:
            cur = conn.cursor(row_factory=dict_row)
            apps = cur.execute(
                "SELECT app_id, name, origins, settings, created_at FROM apps "
                f"WHERE {where} ORDER BY created_at, app_id",
                params,
            ).fetchall()
            if not apps:
                return []
            rules: dict[str, list[Rule]] = {}
            for r in cur.execute(
                "SELECT id, app_id, event, kind, dedupe_key, throttle_ms FROM rules "
                "WHERE app_id = ANY(%s) ORDER BY id",
                ([a["app_id"] for a in apps],),
            ):
                rules.setdefault(r["app_id"], []).append(
                    Rule(
                        id=int(r["id"]),
                        app_id=r["app_id"],
                        event=r["event"],
                        kind=r["kind"],
                        dedupe_key=r["dedupe_key"],
                        throttle_ms=r["throttle_ms"],
                    )
                )
        return [
            App(
                app_id=a["app_id"],
                name=a["name"],
                origins=list(a["origins"]),
                settings={**DEFAULT_APP_SETTINGS, **a["settings"]},
                rules=rules.get(a["app_id"], []),
                created_at=a["created_at"],
            )
            for a in apps
        ]

    def get_app(self, app_id: str) -> App | None:
        found = self._apps("app_id = %s", (app_id,))
        return found[0] if found else None

    def list_apps(self) -> list[App]:
        return self._apps("true", ())

    def update_app(
        self,
        app_id: str,
        *,
        name: str | None = None,
        origins: Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> App:
        app = self.get_app(app_id)
        if app is None:
            raise KeyError(app_id)
        with self._db.connection() as conn:
            if name is not None:
                conn.execute("UPDATE apps SET name = %s WHERE app_id = %s", (name, app_id))
            if origins is not None:
                conn.execute(
                    "UPDATE apps SET origins = %s WHERE app_id = %s",
                    (Jsonb(list(origins)), app_id),
                )
            if settings is not None:
                # Merged in the statement, so two collectors changing different
                # settings at once both keep theirs.
                conn.execute(
                    "UPDATE apps SET settings = settings || %s WHERE app_id = %s",
                    (Jsonb(settings), app_id),
                )
        updated = self.get_app(app_id)
        assert updated is not None
        return updated

    def create_key(self, app_id: str) -> tuple[str, str]:
        secret = ids.api_key()
        key_id = ids.key_id()
        with self._db.connection() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, app_id, key_hash, prefix, created_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (key_id, app_id, ids.hash_key(secret), secret[:7], core.now_iso()),
            )
        return key_id, secret

    def revoke_key(self, key_id: str) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
                (core.now_iso(), key_id),
            )
        return cur.rowcount > 0

    def list_keys(self, app_id: str) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return cur.execute(
                "SELECT key_id, prefix, created_at, revoked_at FROM api_keys "
                "WHERE app_id = %s ORDER BY created_at, key_id",
                (app_id,),
            ).fetchall()

    def app_for_key(self, key_hash: str) -> App | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT app_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                (key_hash,),
            ).fetchone()
        return self.get_app(row[0]) if row else None

    def add_rule(
        self,
        app_id: str,
        event: str,
        *,
        dedupe_key: str | None = None,
        throttle_ms: int | None = None,
    ) -> Rule:
        kind = core.rule_kind(dedupe_key, throttle_ms)
        with self._db.connection() as conn:
            row = conn.execute(
                "INSERT INTO rules (app_id, event, kind, dedupe_key, throttle_ms, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (app_id, event, kind, dedupe_key, throttle_ms, core.now_iso()),
            ).fetchone()
        assert row is not None
        return Rule(int(row[0]), app_id, event, kind, dedupe_key, throttle_ms)

    def remove_rule(self, app_id: str, rule_id: int) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute("DELETE FROM rules WHERE app_id = %s AND id = %s", (app_id, rule_id))
            if cur.rowcount:
                conn.execute("DELETE FROM rule_state WHERE rule_id = %s", (rule_id,))
        return cur.rowcount > 0

    # Dashboard accounts and saved segments ---------------------------------------------

    def create_admin(self, email: str, password_hash: str) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                "INSERT INTO admins (email, password_hash, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (email) DO NOTHING",
                (email, password_hash, core.now_iso()),
            )
        return cur.rowcount > 0

    def get_admin(self, email: str) -> dict[str, Any] | None:
        with self._db.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            row: dict[str, Any] | None = cur.execute(
                "SELECT email, password_hash, created_at FROM admins WHERE email = %s", (email,)
            ).fetchone()
        return row

    def list_admins(self) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return cur.execute(
                "SELECT email, created_at, (SELECT COUNT(*) FROM admin_sessions s "
                "WHERE s.email = admins.email AND s.expires_at > %s)::int AS sessions "
                "FROM admins ORDER BY email",
                (now_ms(),),
            ).fetchall()

    def delete_admin(self, email: str) -> bool:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE email = %s", (email,))
            cur = conn.execute("DELETE FROM admins WHERE email = %s", (email,))
        return cur.rowcount > 0

    def set_admin_password(self, email: str, password_hash: str) -> bool:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE email = %s", (email,))
            cur = conn.execute(
                "UPDATE admins SET password_hash = %s WHERE email = %s", (password_hash, email)
            )
        return cur.rowcount > 0

    def create_session(self, token_hash: str, email: str, now_ms: int, expires_ms: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE expires_at <= %s", (now_ms,))
            conn.execute(
                "INSERT INTO admin_sessions (token_hash, email, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s)",
                (token_hash, email, now_ms, expires_ms),
            )

    def session_admin(self, token_hash: str, now_ms: int) -> str | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT email FROM admin_sessions WHERE token_hash = %s AND expires_at > %s",
                (token_hash, now_ms),
            ).fetchone()
        return None if row is None else str(row[0])

    def delete_session(self, token_hash: str) -> None:
        with self._db.connection() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE token_hash = %s", (token_hash,))

    def save_segment(self, app_id: str, name: str, rules: dict[str, Any]) -> str:
        with self._db.transaction() as conn:
            kept = conn.execute(
                "UPDATE saved_segments SET rules = %s WHERE app_id = %s AND name = %s "
                "RETURNING segment_id",
                (Jsonb(rules), app_id, name),
            ).fetchall()
            if kept:
                return str(min(row[0] for row in kept))
            segment_id = core.new_segment_id()
            conn.execute(
                "INSERT INTO saved_segments (segment_id, app_id, name, rules, created_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (segment_id, app_id, name, Jsonb(rules), core.now_iso()),
            )
        return segment_id

    def list_segments(self, app_id: str) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return cur.execute(
                "SELECT segment_id, name, rules, created_at FROM saved_segments "
                "WHERE app_id = %s ORDER BY name, segment_id",
                (app_id,),
            ).fetchall()

    def delete_segment(self, app_id: str, segment_id: str) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                "DELETE FROM saved_segments WHERE app_id = %s AND segment_id = %s",
                (app_id, segment_id),
            )
        return cur.rowcount > 0

    # Ingestion -----------------------------------------------------------------------

    def user_exists(self, app_id: str, user_id: str) -> bool:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM users WHERE app_id = %s AND user_id = %s", (app_id, user_id)
            ).fetchone()
        return row is not None

    def share_rate_usage(
        self, usage: Sequence[tuple[str, float, float, float]]
    ) -> dict[str, float]:
        with self._db.connection() as conn:
            return share_rate_usage(conn, usage)

    def ready(self) -> dict[str, int]:
        # A fresh connection, not a pooled one: the pools may hold a connection that
        # has not noticed yet that the server is gone.
        try:
            with self._db.connect(connect_timeout=2) as conn:
                pending = backlog(conn)
        except psycopg.Error as exc:
            raise self._db.unreachable(exc) from None
        return {"backlog": pending, "max_backlog": self.max_backlog}

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        with self._db.connection() as conn:
            with conn.transaction():
                outcomes = core.accept(Primitives(conn), events)
            self._bound_backlog(conn, len(events))
        return outcomes

    def _bound_backlog(self, conn: psycopg.Connection[Any], group: int) -> None:
        """After a group of `group` events committed: `bound_backlog`, in a transaction
        of its own, when the gauge says to count."""
        if self._gauge.should_count(group):
            with conn.transaction():
                bound_backlog(conn, self._gauge, group)

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        """Always writes (collectors do not take turns here). If the server cannot be
        reached, the group is still taken, so that its requests get their 503 now
        rather than wait in the queue for a server that is down."""
        taken = False

        def take_once() -> Sequence[Event]:
            nonlocal taken
            taken = True
            return take()

        try:
            with self._db.connection("ingest") as conn:
                events = take_once()
                # The usual group in one round trip; a group with something to judge,
                # or one whose message ids turn out to be taken, in a transaction.
                if core.is_plain(events) and accept_plain(conn, events):
                    outcomes = core.all_accepted(events)
                else:
                    with conn.transaction():
                        conn.execute(HOLDING_LOCKS)
                        outcomes = core.accept(Primitives(conn), events)
                self._bound_backlog(conn, len(events))
                return outcomes
        except Unavailable:
            if not taken:
                take()
            raise

    # Indexing ---------------------------------------------------------------------------

    def backlog(self) -> int:
        """Events accepted (committed and acknowledged) but not indexed yet."""
        with self._db.connection() as conn:
            return backlog(conn)

    def index_all(self) -> int:
        """Index every event accepted before this call, INDEX_CHUNK events a
        transaction; return how many. Reads call it first, so they see every event
        acknowledged before them."""
        with self._db.connection() as conn:
            target = last_inbox_id(conn)
        if target is None:  # nothing pending: one probe of the primary key
            return 0
        done = 0
        while indexed := self._index_chunk(INDEX_CHUNK, wait=True, until=target):
            done += indexed
        return done

    def at_backlog_bound(self) -> bool:
        return False  # commits past the bound index off the event loop, on a lane

    def exceeds_bound(self, count: int) -> bool:
        return False  # commits past the bound index off the event loop, on a lane

    def commit_waiting(self) -> bool:
        return False  # concurrent writers: no turn to wait for

    def index_some(self, chunk: int, *, wait: bool = True) -> int:
        """One transaction: index the oldest pending events, whole inbox rows, about
        `chunk` of them; how many (0 if none is pending, or if wait=False and another
        collector is indexing)."""
        return self._index_chunk(chunk, wait=wait, until=None)

    def _index_chunk(self, chunk: int, *, wait: bool, until: int | None) -> int:
        if not wait and time.monotonic() < self._indexing_elsewhere_until:
            return 0
        while True:
            try:
                with self._db.transaction() as conn:
                    # Not durable at commit: a crash loses the whole indexing
                    # transaction, its inbox rows included, so they are indexed again;
                    # the next acknowledged commit's WAL flush covers this one anyway.
                    conn.execute("SET LOCAL synchronous_commit = off; " + HOLDING_LOCKS)
                    if not lock_indexing(conn, wait):
                        # Another collector is indexing (a chunk takes tens of ms): asking
                        # again at once, as a pressed indexer would every millisecond,
                        # costs the server a transaction each time and gains nothing.
                        self._indexing_elsewhere_until = time.monotonic() + INDEXING_BACKOFF_S
                        return 0
                    return index_pending(conn, chunk, until=until, create_partitions=False)
            except PartitionsMissing as missing:
                # Made in a short transaction of their own: making a partition locks
                # `events` against every read until the transaction ends.
                with self._db.transaction() as conn:
                    if not lock_indexing(conn, wait):
                        return 0
                    partitions.create(conn, missing.months)

    # Data management -------------------------------------------------------------------

    def export_events(
        self, app_id: str, since_ms: int | None = None, until_ms: int | None = None
    ) -> Iterator[dict[str, Any]]:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            yield from queries.export_rows(conn, app_id, since_ms, until_ms)

    @contextlib.contextmanager
    def _maintenance(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction that holds the indexing lock, with every pending event indexed:
        deletes see accepted events as stored ones."""
        with self._db.transaction() as conn:
            lock_indexing(conn, wait=True)
            index_pending(conn)
            yield conn

    def purge(self, app_id: str, older_than_ms: int) -> int:
        """Delete the app's events and identify calls older than the cutoff. A monthly
        partition that ends before it and holds only this app's events is dropped
        whole (no dead rows to vacuum); the rest are deleted. Then the people left with
        neither (person_deletion.GONE) go, and the rules' state that old."""
        app = self.get_app(app_id)
        with self._maintenance() as conn:
            for table in ("events", "identifies"):
                forget_message_ids(conn, table, app_id, "ts < %s", (older_than_ms,))
            affected = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT person FROM person_event_stats "
                    "WHERE app_id = %s AND first_ts < %s",
                    (app_id, older_than_ms),
                )
            ]
            deleted = 0
            for name, month in partitions.listed(conn):
                if partitions.bounds(month)[1] > older_than_ms:
                    continue
                part = sql.Identifier(name)
                apps = conn.execute(
                    sql.SQL("SELECT min(app_id), max(app_id), count(*) FROM {}").format(part)
                ).fetchone()
                if apps is None or apps[0] != app_id or apps[1] != app_id:
                    continue  # other apps' events too (or none of this app's)
                deleted += int(apps[2])
                conn.execute(sql.SQL("DROP TABLE {}").format(part))
            cur = conn.execute(
                "DELETE FROM events WHERE app_id = %s AND ts < %s", (app_id, older_than_ms)
            )
            deleted += cur.rowcount
            conn.execute(
                "DELETE FROM identifies WHERE app_id = %s AND ts < %s", (app_id, older_than_ms)
            )
            restat_persons(conn, app_id, affected)
            visits.purge(Primitives(conn), app_id, older_than_ms)
            forget_call_owners(conn, app_id, "ts < %s", (older_than_ms,))
            purge_people(conn, app_id, older_than_ms)
            for rule in [] if app is None else app.rules:
                conn.execute(
                    "DELETE FROM rule_state WHERE rule_id = %s AND last_ts < %s",
                    (rule.id, person_deletion.expiry(rule, older_than_ms)),
                )
        return deleted

    def delete_user(self, app_id: str, user_id: str) -> int:
        """Remove the user (or an anonymous visitor, `anon:<id>`), every id aliased to
        them and every event they made (before login too), their links, their traits,
        the rules' state and the message ids their calls claimed (store/person_deletion.py)."""
        app = self.get_app(app_id)
        with self._maintenance() as conn:
            user_ids = person_deletion.aliased_ids(
                user_id,
                lambda users: [
                    r[0]
                    for r in conn.execute(
                        "SELECT previous_id FROM user_aliases "
                        "WHERE app_id = %s AND user_id = ANY(%s)",
                        (app_id, list(users)),
                    )
                ],
            )
            anon_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT anonymous_id FROM identities WHERE app_id = %s AND user_id = ANY(%s)",
                    (app_id, user_ids),
                )
            ]
            # A linked anonymous id's events carry person = user_id; "anon:<id>" catches
            # any written before the link. Events a *different* user made on the same
            # device (a shared browser) are theirs, not this user's, and stay.
            persons = [*user_ids, *(core.ANON + a for a in anon_ids)]
            named = "(user_id = ANY(%s) OR person = ANY(%s))"
            params = (user_ids, persons)
            state = person_deletion.rule_state_keys(
                [] if app is None else app.rules,
                persons,
                lambda event: [
                    r[0]
                    for r in conn.execute(
                        f"SELECT properties FROM events WHERE app_id = %s AND {named} "
                        "AND event = %s",
                        (app_id, *params, event),
                    )
                ],
            )
            tx = Primitives(conn)
            windows = tx.windows_of(app_id, named, params)
            forget_message_ids(conn, "events", app_id, named, params)
            forget_message_ids(conn, "identifies", app_id, "user_id = ANY(%s)", (user_ids,))
            forget_call_owners(conn, app_id, "person = ANY(%s)", (persons,))
            deleted = conn.execute(
                f"DELETE FROM events WHERE app_id = %s AND {named}", (app_id, *params)
            ).rowcount
            affected = set(persons)
            for person in persons:
                tx.take_person(app_id, person)
            # Events of this user filed under another person (an alias's target) go
            # from that person's visits.
            visits.refresh(tx, [w for w in windows if w[0][1] not in affected])
            for table in ("identifies", "identities"):
                conn.execute(
                    f"DELETE FROM {table} WHERE app_id = %s AND user_id = ANY(%s)",
                    (app_id, user_ids),
                )
            # The users' rows and those of the visitors they were (anonymous identify
            # calls); an aliased id's row too, which the alias no longer hides.
            conn.execute(
                "DELETE FROM users WHERE app_id = %s AND user_id = ANY(%s)", (app_id, persons)
            )
            conn.execute(
                "DELETE FROM user_aliases WHERE app_id = %s "
                "AND (user_id = ANY(%s) OR previous_id = ANY(%s))",
                (app_id, user_ids, user_ids),
            )
            restat_persons(conn, app_id, affected)
            if state:
                conn.execute(
                    "DELETE FROM rule_state WHERE (rule_id, key) IN "
                    "(SELECT * FROM unnest(%s::bigint[], %s::text[]))",
                    ([r for r, _ in state], [k for _, k in state]),
                )
        return deleted

    # Moving data (store/transfer.py) ---------------------------------------------------

    def is_empty(self) -> bool:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM apps) OR EXISTS (SELECT 1 FROM events) "
                "OR EXISTS (SELECT 1 FROM inbox)"
            ).fetchone()
        return not (row and row[0])

    def read_rows(self, table: Table) -> Iterator[tuple[Any, ...]]:
        # Identify calls have no commit-order column here; received time is the order
        # they were accepted in, near enough for a copy.
        order = {"events": " ORDER BY seq", "identifies": " ORDER BY received_at, id"}
        statement = f"SELECT {', '.join(table.columns)} FROM {table.name}"
        # A server-side cursor: the table streams in batches, not all in memory.
        with (
            self._db.transaction(snapshot=True) as conn,
            conn.cursor(name=f"telltale_read_{table.name}") as cur,
        ):
            cur.itersize = 5_000
            yield from cur.execute(statement + order.get(table.name, ""))

    def write_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        as_json = [c in table.json for c in table.columns]
        prepared = [
            tuple(Jsonb(v) if j else v for v, j in zip(row, as_json, strict=True)) for row in rows
        ]
        columns = ", ".join(table.columns)
        with self._db.transaction() as conn:
            if table.name == "events":
                lock_indexing(conn, wait=True)
                ts_at = table.columns.index("ts")
                partitions.create(
                    conn, partitions.missing(conn, partitions.wanted(r[ts_at] for r in rows))
                )
                # New positions, in the source's order.
                Primitives(conn).insert_events(prepared)  # type: ignore[arg-type]
                return
            # COPY keeps the source's ids in identity columns (rules.id), where an
            # INSERT would need OVERRIDING SYSTEM VALUE.
            with conn.cursor().copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                for row in prepared:
                    copy.write_row(row)

    def finish_import(self, secret: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE meta SET value = %s WHERE key = 'secret'", (secret,))
            # New rules continue after the imported ids (a removed rule's id is never
            # reused); new events' positions already follow the imported ones.
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('rules', 'id'), "
                "coalesce((SELECT max(id) FROM rules), 0) + 1, false)"
            )

    def discard_counts(self, app_id: str) -> dict[str, int]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT reason, sum(n) FROM discards WHERE app_id = %s GROUP BY reason",
                (app_id,),
            ).fetchall()
        return {reason: int(n) for reason, n in rows}

    # Deleting an app (store/app_deletion.py) ---------------------------------------------------

    def delete_app(self, app_id: str, bucket_names_app: Callable[[str], bool]) -> dict[str, int]:
        """Every row of the app in one transaction, which holds the indexing lock and has
        indexed every pending event first: the inbox rows that held the app's events are
        deleted by that indexing, in the same transaction. Its events' monthly partitions
        stay: they hold other apps' events too."""
        with self._maintenance() as conn:

            def run(statement: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
                cur = conn.execute(statement, params)
                return (cur.fetchall() if cur.description else []), cur.rowcount

            return app_deletion.erase(run, "%s", app_id, bucket_names_app)

    # Queries (SQL in store/sql.py, shared with SQLite; postgres/queries.py runs it) ----

    # Each reads in one REPEATABLE READ snapshot, after indexing what is pending.

    def segment(self, app_id: str, query: SegmentQuery) -> SegmentPage:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.segment(conn, app_id, query)

    def funnel_events(
        self, app_id: str, query: FunnelQuery
    ) -> contextlib.AbstractContextManager[FunnelEvents]:
        self.index_all()
        return self._funnel_events(app_id, query)

    @contextlib.contextmanager
    def _funnel_events(self, app_id: str, query: FunnelQuery) -> Iterator[FunnelEvents]:
        with (
            self._db.transaction(snapshot=True) as conn,
            queries.funnel_events(conn, self.columns, app_id, query) as events,
        ):
            yield events

    def user_profile(
        self, app_id: str, user_id: str, include_bots: bool = False
    ) -> dict[str, Any] | None:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.user_profile(conn, app_id, user_id, include_bots)

    def find_people(self, app_id: str, text: str, include_bots: bool, limit: int) -> list[str]:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.find_people(conn, app_id, text, include_bots, limit)

    def events_page(self, app_id: str, query: EventsQuery) -> EventsPage:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.events_page(conn, app_id, query)

    def event_stats(self, app_id: str, query: StatsQuery) -> dict[str, Any]:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.event_stats(conn, app_id, query)

    def bot_reasons(
        self, app_id: str, query: StatsQuery, person: str | None = None
    ) -> dict[str, int]:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.bot_reasons(conn, app_id, query, person)

    def analytics_overview(self, app_id: str, query: AnalyticsQuery) -> dict[str, Any]:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.analytics_overview(conn, self.columns, app_id, query, now_ms())

    def analytics_breakdown(self, app_id: str, query: AnalyticsQuery, by: str) -> dict[str, Any]:
        self.index_all()
        with self._db.transaction(snapshot=True) as conn:
            return queries.analytics_breakdown(conn, self.columns, app_id, query, by)

    def stream_position(self) -> int:
        self.index_all()
        with self._db.connection() as conn:
            return queries.stream_position(conn)

    async def wait_for_events(self, timeout_s: float) -> None:
        await self._listener.wait(timeout_s)

    def stream_events(
        self, app_id: str, after: int, events: Sequence[str], include_bots: bool, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        # One chunk at most, and only if no collector is indexing: a watched stream helps
        # the indexer along but never waits on it.
        self.index_some(STREAM_CHUNK, wait=False)
        with self._db.transaction(snapshot=True) as conn:
            return queries.stream_events(conn, app_id, after, events, include_bots, limit)
