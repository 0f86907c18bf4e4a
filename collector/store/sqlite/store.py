"""SQLite storage: two files in WAL mode, managed with sqlite-utils: the database, and
beside it `<db>-inbox` (store/sqlite/inbox.py), the group commit's own, so that
acknowledging an event never waits for an indexing transaction's hold on the other.

The ingest hot path (`write`) uses the raw connection with `executemany`, which inserts
about 2.5x faster than sqlite-utils' `insert_all`; everything else goes through
sqlite-utils."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlite_utils

from collector import ids
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
from collector.store import app_deletion, codec, core, person_deletion, visits
from collector.store.columns import ColumnCache
from collector.store.sqlite import inbox, queries
from collector.store.sqlite.migrations import MIGRATIONS
from collector.store.sqlite.visits import VisitTables
from collector.store.tables import Table
from collector.timeutil import now_ms

_CHUNK = 500  # bound on host parameters in one IN (...)
INDEX_CHUNK = 5_000  # events a catch-up transaction indexes
INBOX_ROW = 100  # events at most in one inbox row: the least indexing can take at once
BOUND_READ_S = 0.1  # how often a backlog said to be at its bound is counted again


def near_bound(max_backlog: int) -> int:
    """The backlog from which big requests are refused (`at_backlog_bound`): a tenth
    below the bound, so that one of them seldom takes it past the bound, where its
    commit would index too."""
    return max_backlog - max_backlog // 10


STREAM_CHUNK = 1_000  # at most this many for each poll of a live stream
_YIELD_S = 0.001  # pause between catch-up chunks, for the ingest writers
DEBT_FLOOR = 4.0  # as PostgreSQL's rate buckets
RATE_SWEEP_S = 60.0

# Lock files beside the database: indexing and administration take the main file's turn,
# the group commit the inbox file's (those that write both take the inbox's first).
MAIN_LOCK = ".writer-lock"
INBOX_LOCK = inbox.SUFFIX + ".writer-lock"
# A group commit that finds the inbox's turn taken holds a shared lock on this file until
# it has written; the deletion of consumed inbox rows leaves the turn to it.
INBOX_WAIT = inbox.SUFFIX + ".writer-wait"
# Only the database's own tables: takes the main file's write lock, not the inbox's.
_LOCK_MAIN = "DELETE FROM main.schema_migrations WHERE 0"
_LOCK_INBOX = "DELETE FROM inbox.inbox WHERE 0"


class SQLiteStore:
    """The default store. Each thread gets its own connection; the group-commit writer
    is the only thread that writes events."""

    commit_threads = 0
    shares_rate_limits = False  # one host: each worker enforces its share

    def __init__(self, path: str, *, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self.path = path
        self.max_backlog = max_backlog
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._lock_fd: int | None = None  # the group commit's turn on the inbox file
        self.columns = ColumnCache()  # the web figures' columns (store/columns.py)
        self._rate_swept = 0.0  # when this process last deleted refilled rate buckets
        # A plan that found the writers' lock taken (index_some): chunk, until, plan.
        self._kept: tuple[int, int | None, _Planned] | None = None
        # Waiting for the inbox's turn, a group commit holds a shared lock on INBOX_WAIT
        # (`_write_locked`), which the deletion of consumed rows looks for.
        self._wait_fd: int | None = None
        self._waiting = False
        self._probe_fd: int | None = None
        self._at_bound = False  # the last commit found the backlog at its bound
        self._bound_read = 0.0  # when that was last read (time.monotonic)

    # Connections -----------------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the request that waits on it is answered.
            # Group commit pays the fsync once per batch, not once per event.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA cache_size=-65536")
            # Checkpoint every ~80 MB of WAL rather than SQLite's 4 MB: a page the writer
            # keeps changing is copied back to the database once per checkpoint, so fewer
            # checkpoints mean far fewer page writes under load.
            conn.execute("PRAGMA wal_autocheckpoint=20000")
            self._attach_inbox(conn)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _attach_inbox(self, conn: sqlite3.Connection) -> None:
        if self.path == ":memory:":
            conn.execute("ATTACH ':memory:' AS inbox")
            return
        inbox.create_file(conn, self.path)
        conn.execute("ATTACH ? AS inbox", (inbox.path_of(self.path),))
        conn.execute("PRAGMA inbox.journal_mode=WAL")
        # Every acknowledged event is committed here: on disk before it is answered.
        conn.execute("PRAGMA inbox.synchronous=FULL")
        conn.execute("PRAGMA inbox.cache_size=-16384")

    @property
    def db(self) -> sqlite_utils.Database:
        return sqlite_utils.Database(self.conn())

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):
                    conn.close()
            self._all.clear()
            for fd in (self._lock_fd, self._wait_fd, self._probe_fd):
                if fd is not None:
                    os.close(fd)
            self._lock_fd = self._wait_fd = self._probe_fd = None
            self._waiting = False
        self._local = threading.local()

    def _tx(self) -> _Transaction:
        """A write transaction on the database's own tables: the main file's lock only."""
        return _Transaction(self.conn(), _LOCK_MAIN)

    def _inbox_tx(self) -> _Transaction:
        """A write transaction on the accept path's tables: the inbox file's lock only."""
        return _Transaction(self.conn(), _LOCK_INBOX)

    def _both_tx(self) -> _Transaction:
        """A write transaction on both files (BEGIN IMMEDIATE locks every attached one)."""
        return _Transaction(self.conn(), None)

    @contextlib.contextmanager
    def _turn(self, wait: bool = True, lock: str = MAIN_LOCK) -> Iterator[bool]:
        """A writers' lock (MAIN_LOCK or INBOX_LOCK), on an open file of its own (flock
        excludes by open file, so this thread and the event loop's writer in the same
        process exclude each other too); yields whether it was taken (always, when
        waiting)."""
        fd = None if self.path == ":memory:" else self._open_lock(lock)
        try:
            locked = _lock(fd, wait)
            try:
                yield locked
            finally:
                if locked:
                    _unlock(fd)
        finally:
            if fd is not None:
                os.close(fd)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on both files, taken in turn with the group commits and
        indexing (the inbox's lock first, as a group commit that indexes takes them)."""
        with self._turn(lock=INBOX_LOCK), self._turn(), self._both_tx() as conn:
            yield conn

    # Schema ------------------------------------------------------------------------

    def migrate(self) -> int:
        conn = self.conn()
        with self._both_tx():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            inbox.create_schema(conn)
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            db = sqlite_utils.Database(conn)
            for version, name, apply in MIGRATIONS:
                if version in done:
                    continue
                apply(db)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, core.now_iso()),
                )
                done.add(version)
        if inbox.MIGRATION in done:
            inbox.move_out(conn)
            inbox.check_pair(conn, self.path)
        return max(done, default=0)

    def secret(self) -> str:
        """This database's secret (signs query cursors; shared by every worker)."""
        row = self.conn().execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        return str(row[0])

    # Apps, keys, rules --------------------------------------------------------------

    def create_app(self, name: str, origins: Sequence[str], settings: dict[str, Any]) -> App:
        app = core.new_app(name, origins, settings)
        with self._tx():
            self.db.table("apps").insert(
                {
                    "app_id": app.app_id,
                    "name": app.name,
                    "origins": core.json_text(app.origins),
                    "settings": core.json_text(app.settings),
                    "created_at": app.created_at,
                }
            )
        return app

    def _app_from_row(self, row: dict[str, Any]) -> App:
        rules = [
            Rule(
                id=r["id"],
                app_id=r["app_id"],
                event=r["event"],
                kind=r["kind"],
                dedupe_key=r["dedupe_key"],
                throttle_ms=r["throttle_ms"],
            )
            for r in self.db.table("rules").rows_where("app_id = ?", [row["app_id"]], order_by="id")
        ]
        return App(
            app_id=row["app_id"],
            name=row["name"],
            origins=orjson.loads(row["origins"]),
            settings={**DEFAULT_APP_SETTINGS, **orjson.loads(row["settings"])},
            rules=rules,
            created_at=row["created_at"],
        )

    def get_app(self, app_id: str) -> App | None:
        rows = list(self.db.table("apps").rows_where("app_id = ?", [app_id]))
        return self._app_from_row(rows[0]) if rows else None

    def list_apps(self) -> list[App]:
        return [
            self._app_from_row(r) for r in self.db.table("apps").rows_where(order_by="created_at")
        ]

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
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if origins is not None:
            changes["origins"] = core.json_text(list(origins))
        if settings is not None:
            changes["settings"] = core.json_text({**app.settings, **settings})
        if changes:
            with self._tx():
                self.db.table("apps").update(app_id, changes)
        updated = self.get_app(app_id)
        assert updated is not None
        return updated

    def create_key(self, app_id: str) -> tuple[str, str]:
        secret = ids.api_key()
        key_id = ids.key_id()
        with self._tx():
            self.db.table("api_keys").insert(
                {
                    "key_id": key_id,
                    "app_id": app_id,
                    "key_hash": ids.hash_key(secret),
                    "prefix": secret[:7],
                    "created_at": core.now_iso(),
                    "revoked_at": None,
                }
            )
        return key_id, secret

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (core.now_iso(), key_id),
            )
        return cur.rowcount > 0

    def list_keys(self, app_id: str) -> list[dict[str, Any]]:
        return [
            {k: r[k] for k in ("key_id", "prefix", "created_at", "revoked_at")}
            for r in self.db.table("api_keys").rows_where(
                "app_id = ?", [app_id], order_by="created_at"
            )
        ]

    def app_for_key(self, key_hash: str) -> App | None:
        row = (
            self.conn()
            .execute(
                "SELECT app_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)
            )
            .fetchone()
        )
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
        with self._tx():
            table = self.db.table("rules")
            table.insert(
                {
                    "app_id": app_id,
                    "event": event,
                    "kind": kind,
                    "dedupe_key": dedupe_key,
                    "throttle_ms": throttle_ms,
                    "created_at": core.now_iso(),
                }
            )
            rule_id = table.last_pk
        assert rule_id is not None
        return Rule(int(rule_id), app_id, event, kind, dedupe_key, throttle_ms)

    def remove_rule(self, app_id: str, rule_id: int) -> bool:
        with self._writing() as conn:
            cur = conn.execute("DELETE FROM rules WHERE app_id = ? AND id = ?", (app_id, rule_id))
            conn.execute("DELETE FROM rule_state WHERE rule_id = ?", (rule_id,))
        return cur.rowcount > 0

    # Dashboard accounts and saved segments ---------------------------------------------

    def create_admin(self, email: str, password_hash: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO admins (email, password_hash, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (email) DO NOTHING",
                (email, password_hash, core.now_iso()),
            )
        return cur.rowcount > 0

    def get_admin(self, email: str) -> dict[str, Any] | None:
        row = (
            self.conn()
            .execute(
                "SELECT email, password_hash, created_at FROM admins WHERE email = ?", (email,)
            )
            .fetchone()
        )
        return (
            None
            if row is None
            else dict(zip(("email", "password_hash", "created_at"), row, strict=True))
        )

    def list_admins(self) -> list[dict[str, Any]]:
        rows = self.conn().execute(
            "SELECT email, created_at, (SELECT COUNT(*) FROM admin_sessions s "
            "WHERE s.email = admins.email AND s.expires_at > ?) FROM admins ORDER BY email",
            (now_ms(),),
        )
        return [{"email": e, "created_at": c, "sessions": n} for e, c, n in rows]

    def delete_admin(self, email: str) -> bool:
        with self._tx() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE email = ?", (email,))
            cur = conn.execute("DELETE FROM admins WHERE email = ?", (email,))
        return cur.rowcount > 0

    def set_admin_password(self, email: str, password_hash: str) -> bool:
        with self._tx() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE email = ?", (email,))
            cur = conn.execute(
                "UPDATE admins SET password_hash = ? WHERE email = ?", (password_hash, email)
            )
        return cur.rowcount > 0

    def create_session(self, token_hash: str, email: str, now_ms: int, expires_ms: int) -> None:
        with self._tx() as conn:
            # Expired sessions go as new ones come: the table never grows past the live ones.
            conn.execute("DELETE FROM admin_sessions WHERE expires_at <= ?", (now_ms,))
            conn.execute(
                "INSERT INTO admin_sessions (token_hash, email, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (token_hash, email, now_ms, expires_ms),
            )

    def session_admin(self, token_hash: str, now_ms: int) -> str | None:
        row = (
            self.conn()
            .execute(
                "SELECT email FROM admin_sessions WHERE token_hash = ? AND expires_at > ?",
                (token_hash, now_ms),
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    def delete_session(self, token_hash: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE token_hash = ?", (token_hash,))

    def save_segment(self, app_id: str, name: str, rules: dict[str, Any]) -> str:
        with self._tx() as conn:
            kept = conn.execute(
                "UPDATE saved_segments SET rules = ? WHERE app_id = ? AND name = ? "
                "RETURNING segment_id",
                (core.json_text(rules), app_id, name),
            ).fetchall()
            if kept:
                return str(min(row[0] for row in kept))
            segment_id = core.new_segment_id()
            conn.execute(
                "INSERT INTO saved_segments (segment_id, app_id, name, rules, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (segment_id, app_id, name, core.json_text(rules), core.now_iso()),
            )
        return segment_id

    def list_segments(self, app_id: str) -> list[dict[str, Any]]:
        rows = self.conn().execute(
            "SELECT segment_id, name, rules, created_at FROM saved_segments "
            "WHERE app_id = ? ORDER BY name, segment_id",
            (app_id,),
        )
        return [
            {"segment_id": i, "name": n, "rules": orjson.loads(r), "created_at": c}
            for i, n, r, c in rows
        ]

    def delete_segment(self, app_id: str, segment_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM saved_segments WHERE app_id = ? AND segment_id = ?",
                (app_id, segment_id),
            )
        return cur.rowcount > 0

    # Ingestion -----------------------------------------------------------------------

    def user_exists(self, app_id: str, user_id: str) -> bool:
        row = (
            self.conn()
            .execute("SELECT 1 FROM users WHERE app_id = ? AND user_id = ?", (app_id, user_id))
            .fetchone()
        )
        return row is not None

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        result = self._write_locked(lambda: events, blocking=True)
        assert result is not None
        return result

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        return self._write_locked(take, blocking=False)

    def _write_locked(
        self, take: Callable[[], Sequence[Event]], *, blocking: bool
    ) -> list[Outcome] | None:
        # Worker processes take turns through a kernel lock before they write: SQLite's
        # own busy handler would sleep 1, 2, 5… ms between tries. The group commit
        # writes the inbox file only (store/sqlite/inbox.py): its turn is that file's.
        if self._lock_fd is None and self.path != ":memory:":
            self._lock_fd = self._open_lock(INBOX_LOCK)
        if not _lock(self._lock_fd, blocking):
            self._mark_waiting()
            return None
        if self._waiting:
            _unlock(self._wait_fd)
            self._waiting = False
        try:
            with self._inbox_tx() as conn:
                primitives = _Primitives(conn, self.max_backlog, self)
                events = take()
                outcomes = core.accept(primitives, events)
        finally:
            _unlock(self._lock_fd)
        backlog = primitives.backlog
        if backlog > self.max_backlog:
            # Past the bound: this commit indexes as much as it added, before its events
            # are answered. Not in the accept's transaction: indexing there would commit
            # the main file's watermark past inbox rows a crash could still lose.
            backlog -= self._index_excess(backlog - self.max_backlog)
        if events:  # else every request was refused (`exceeds_bound`, which said so)
            self._at_bound = backlog >= near_bound(self.max_backlog)
            self._bound_read = time.monotonic()
        return outcomes

    def _index_excess(self, at_least: int) -> int:
        with self._turn(), self._tx() as conn:
            indexed = _index_pending(conn, at_least)
        self._drop_consumed()
        return indexed

    def at_backlog_bound(self) -> bool:
        if self._at_bound and time.monotonic() - self._bound_read >= BOUND_READ_S:
            # No commit of this process has looked since: the indexer may have caught up.
            self._at_bound = self.backlog() >= near_bound(self.max_backlog)
            self._bound_read = time.monotonic()
        return self._at_bound

    def exceeds_bound(self, count: int) -> bool:
        over = _backlog(self.conn()) + count > self.max_backlog
        if over:  # refused big requests from now on, before their events are read
            self._at_bound, self._bound_read = True, time.monotonic()
        return over

    def _open_lock(self, suffix: str = MAIN_LOCK) -> int:
        return os.open(self.path + suffix, os.O_RDWR | os.O_CREAT, 0o600)

    def _mark_waiting(self) -> None:
        """Say, until this writer has the inbox's turn, that a group commit waits for it."""
        if self._waiting or self.path == ":memory:":
            return
        if self._wait_fd is None:
            self._wait_fd = self._open_lock(INBOX_WAIT)
        try:
            fcntl.flock(self._wait_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            # A probe (`_writers_waiting`) holds it exclusively for an instant: said at
            # the next try, 0.5 ms on. (Raised, it failed the commit.)
            return
        self._waiting = True

    def _writers_waiting(self) -> bool:
        """Whether a group commit waits for the inbox's turn."""
        if self.path == ":memory:":
            return False
        if self._probe_fd is None:
            self._probe_fd = self._open_lock(INBOX_WAIT)
        if _lock(self._probe_fd, blocking=False):
            _unlock(self._probe_fd)
            return False
        return True

    def commit_waiting(self) -> bool:
        return self._writers_waiting()

    # Indexing ---------------------------------------------------------------------------

    def backlog(self) -> int:
        """Events accepted (committed and acknowledged) but not indexed yet."""
        return _backlog(self.conn())

    def ready(self) -> dict[str, int]:
        return {"backlog": self.backlog(), "max_backlog": self.max_backlog}

    def share_rate_usage(
        self, usage: Sequence[tuple[str, float, float, float]]
    ) -> dict[str, float]:
        """As PostgreSQL's (store/postgres/primitives.py), for the limits every worker of
        this host shares: the dashboard's logins (ingestion's stay in each process, so
        that no event waits on this database's one writer)."""
        now = time.time()  # one host: every worker reads the same clock
        tokens: dict[str, float] = {}
        with self._tx() as conn:
            for key, spent, rate, cap in sorted(usage):
                row = conn.execute(_SHARE_RATE_USAGE, (key, cap - spent, rate, cap, now)).fetchone()
                tokens[key] = float(row[0])
            if usage and now - self._rate_swept >= RATE_SWEEP_S:
                self._rate_swept = now
                conn.execute(
                    "DELETE FROM rate_buckets WHERE tokens + (? - updated) * rate >= cap", (now,)
                )
        return tokens

    def index_all(self, *, wait: bool = True, chunk: int = INDEX_CHUNK) -> int:
        """Index every event accepted before this call, `chunk` events a transaction;
        return how many were indexed. Reads call it first, so they see every event that
        was acknowledged before them. With wait=False it gives up (returning what it
        did) as soon as another writer holds the lock."""
        target = _accepted_total(self.conn())
        if target is None:  # nothing pending: one read of each file's last page
            return 0
        done = 0
        while True:
            indexed = self.index_some(chunk, wait=wait, until=target)
            if not indexed:
                return done
            done += indexed
            # flock is not fair: without a pause, this loop would take the lock back
            # before an ingest writer (retrying every 0.5 ms) got a turn.
            time.sleep(_YIELD_S)

    def _kept_plan(
        self, conn: sqlite3.Connection, chunk: int, until: int | None
    ) -> _Planned | None:
        """The plan of a try that found the lock taken, if it is still the next one and
        no larger than `chunk` (the indexer asks for small chunks while a commit waits,
        and large ones again after: a small plan kept serves both)."""
        if self._kept is None:
            return None
        kept_chunk, kept_until, planned = self._kept
        if (
            kept_chunk > chunk
            or kept_until != until
            or _indexed_total(conn) != planned.indexed_before
        ):
            self._kept = None
            return None
        return planned

    def index_some(self, chunk: int, *, wait: bool = True, until: int | None = None) -> int:
        """One transaction: index the oldest pending events, whole inbox rows, about
        `chunk` of them and none accepted after event number `until`; return how many
        (0 if none is pending, or if wait=False and another writer holds the lock)."""
        conn = self.conn()
        if _accepted_total(conn) is None:  # nothing pending: no need for the write lock
            return 0
        # Read, decode and plan first, in a read snapshot, so that the writers' lock is
        # held only for writing; kept if no other indexing commits meanwhile.
        planned = self._kept_plan(conn, chunk, until)
        planned_for = chunk if self._kept is None else self._kept[0]
        if planned is None:
            conn.execute("BEGIN")
            try:
                planned = _plan_pending(conn, chunk, until)
            finally:
                conn.execute("COMMIT")
            if planned is None:
                return 0
        self._kept = None
        with self._turn(wait) as locked:
            if not locked:
                # Kept for the next try: planning is most of an indexing round's CPU,
                # which an indexer retrying every millisecond while a read catches up
                # would otherwise spend again each time.
                self._kept = (planned_for, until, planned)
                return 0
            # With the fsync (synchronous=FULL): the consumed inbox rows are deleted
            # next, in the other file, whose commit syncs only itself.
            with self._tx():
                if _indexed_total(conn) != planned.indexed_before:
                    planned = _plan_pending(conn, chunk, until)  # another got there first
                    if planned is None:
                        return 0
                indexed = _write_planned(conn, planned)
        self._drop_consumed()
        return indexed

    def _drop_consumed(self) -> None:
        """Delete the inbox rows that indexing has consumed (their `total` at or below
        the main file's `indexed_total`), in a short transaction of the inbox file; left
        for the next time if a group commit waits for that file or holds it."""
        if self._writers_waiting():
            return
        with self._turn(wait=False, lock=INBOX_LOCK) as locked:
            if locked:
                with self._inbox_tx() as conn:
                    conn.execute(_DROP_CONSUMED)

    # Data management -------------------------------------------------------------------

    def export_events(
        self, app_id: str, since_ms: int | None = None, until_ms: int | None = None
    ) -> Iterator[dict[str, Any]]:
        self.index_all()
        where = ["app_id = ?"]
        params: list[Any] = [app_id]
        if since_ms is not None:
            where.append("ts >= ?")
            params.append(since_ms)
        if until_ms is not None:
            where.append("ts < ?")
            params.append(until_ms)
        for row in self.db.table("events").rows_where(
            " AND ".join(where), params, order_by="ts, rowid"
        ):
            yield core.event_dict(row)

    def purge(self, app_id: str, older_than_ms: int) -> int:
        """Delete the app's events and identify calls older than the cutoff, then the
        people they leave with neither (person_deletion.GONE), and the rules' state that old."""
        self.index_all()  # pending events are stored events too
        app = self.get_app(app_id)
        with self._writing() as conn:
            _index_pending(conn, None)  # and any accepted since
            for table in ("events", "identifies"):
                _forget_message_ids(conn, table, app_id, "ts < ?", (older_than_ms,))
            affected = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT person FROM person_event_stats "
                    "WHERE app_id = ? AND first_ts < ?",
                    (app_id, older_than_ms),
                )
            ]
            cur = conn.execute(
                "DELETE FROM events WHERE app_id = ? AND ts < ?", (app_id, older_than_ms)
            )
            conn.execute(
                "DELETE FROM identifies WHERE app_id = ? AND ts < ?", (app_id, older_than_ms)
            )
            restat_persons(conn, app_id, affected)
            visits.purge(_Primitives(conn), app_id, older_than_ms)
            _forget_call_owners(conn, app_id, "ts < ?", (older_than_ms,))
            _purge_people(conn, app_id, older_than_ms)
            for rule in [] if app is None else app.rules:
                conn.execute(
                    "DELETE FROM rule_state WHERE rule_id = ? AND last_ts < ?",
                    (rule.id, person_deletion.expiry(rule, older_than_ms)),
                )
        self._drop_consumed()
        return cur.rowcount

    def delete_user(self, app_id: str, user_id: str) -> int:
        """Remove the user (or an anonymous visitor, `anon:<id>`), every id aliased to
        them and every event they made (before login too), their links, their traits,
        the rules' state and the message ids their calls claimed (store/person_deletion.py)."""
        self.index_all()  # pending events are stored events too
        app = self.get_app(app_id)
        with self._writing() as conn:
            _index_pending(conn, None)  # and any accepted since
            user_ids = person_deletion.aliased_ids(
                user_id,
                lambda users: [
                    r[0]
                    for r in conn.execute(
                        "SELECT previous_id FROM user_aliases WHERE app_id = ? "
                        f"AND user_id IN {_EACH}",
                        (app_id, _array(users)),
                    )
                ],
            )
            anon_ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT anonymous_id FROM identities WHERE app_id = ? AND user_id IN {_EACH}",
                    (app_id, _array(user_ids)),
                )
            ]
            # A linked anonymous id's events carry person = user_id; "anon:<id>" catches
            # any written before the link. Events a *different* user made on the same
            # device (a shared browser) are theirs, not this user's, and stay.
            persons = [*user_ids, *(core.ANON + a for a in anon_ids)]
            named = f"user_id IN {_EACH} OR person IN {_EACH}"
            params = (_array(user_ids), _array(persons))
            state = person_deletion.rule_state_keys(
                [] if app is None else app.rules,
                persons,
                lambda event: [
                    r[0]
                    for r in conn.execute(
                        f"SELECT properties FROM events WHERE app_id = ? AND ({named}) "
                        "AND event = ?",
                        (app_id, *params, event),
                    )
                ],
            )
            tx = _Primitives(conn)
            windows = tx.windows_of(app_id, named, params)
            _forget_message_ids(conn, "events", app_id, f"({named})", params)
            _forget_message_ids(conn, "identifies", app_id, f"user_id IN {_EACH}", params[:1])
            _forget_call_owners(conn, app_id, f"person IN {_EACH}", params[1:])
            deleted = conn.execute(
                f"DELETE FROM events WHERE app_id = ? AND ({named})", (app_id, *params)
            ).rowcount
            affected = set(persons)
            for person in persons:
                tx.take_person(app_id, person)
            # Events of this user filed under another person (an alias's target) go
            # from that person's visits.
            visits.refresh(tx, [w for w in windows if w[0][1] not in affected])
            for table in ("identifies", "identities"):
                conn.execute(
                    f"DELETE FROM {table} WHERE app_id = ? AND user_id IN {_EACH}",
                    (app_id, params[0]),
                )
            # The users' rows and those of the visitors they were (anonymous identify
            # calls); an aliased id's row too, which the alias no longer hides.
            conn.execute(
                f"DELETE FROM users WHERE app_id = ? AND user_id IN {_EACH}", (app_id, params[1])
            )
            conn.execute(
                f"DELETE FROM user_aliases WHERE app_id = ? AND (user_id IN {_EACH} "
                f"OR previous_id IN {_EACH})",
                (app_id, params[0], params[0]),
            )
            restat_persons(conn, app_id, affected)
            conn.executemany("DELETE FROM rule_state WHERE rule_id = ? AND key = ?", state)
        self._drop_consumed()
        return deleted

    # Moving data (store/transfer.py) ---------------------------------------------------

    def is_empty(self) -> bool:
        conn = self.conn()
        return not any(
            conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            for table in ("apps", "events", "inbox")
        )

    def read_rows(self, table: Table) -> Iterator[tuple[Any, ...]]:
        conn = self.conn()
        order = " ORDER BY rowid" if table.name in ("events", "identifies") else ""
        decode = [i for i, c in enumerate(table.columns) if c in table.json]
        conn.execute("BEGIN")  # one snapshot, however long the copy takes
        try:
            for row in conn.execute(f"SELECT {', '.join(table.columns)} FROM {table.name}{order}"):
                values = list(row)
                for i in decode:
                    values[i] = orjson.loads(values[i])
                yield tuple(values)
        finally:
            conn.execute("COMMIT")

    def write_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        encode = [i for i, c in enumerate(table.columns) if c in table.json]
        marks = ", ".join("?" * len(table.columns))
        sql = f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})"
        with self._writing() as conn:
            conn.executemany(
                sql,
                [
                    tuple(core.json_text(v) if i in encode else v for i, v in enumerate(row))
                    for row in rows
                ],
            )

    def finish_import(self, secret: str) -> None:
        with self._writing() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'secret'", (secret,))

    def discard_counts(self, app_id: str) -> dict[str, int]:
        rows = self.conn().execute(
            "SELECT reason, SUM(n) FROM discards WHERE app_id = ? GROUP BY reason", (app_id,)
        )
        return {reason: int(n) for reason, n in rows}

    # Deleting an app (store/app_deletion.py) ---------------------------------------------------

    def delete_app(self, app_id: str, bucket_names_app: Callable[[str], bool]) -> dict[str, int]:
        """Every row of the app, in both files, as one write transaction taken in turn
        with the group commits and indexing; then the inbox rows that held its pending
        events."""
        self.index_all()  # pending events are stored events too
        conn = self.conn()
        with self._secure_delete(conn), self._writing():
            _index_pending(conn, None)  # and any accepted since
            counts = app_deletion.erase(_execute(conn), "?", app_id, bucket_names_app)
        # The inbox rows indexed above still hold the app's events as they were accepted.
        # They go in a transaction of the inbox file alone, after the main file's commit
        # recorded them as indexed (as _drop_consumed does, for the reason it gives), but
        # waiting for the file's turn rather than leaving them to a later indexing round.
        with self._secure_delete(conn), self._turn(lock=INBOX_LOCK), self._inbox_tx():
            conn.execute(_DROP_CONSUMED)
        return counts

    @staticmethod
    @contextlib.contextmanager
    def _secure_delete(conn: sqlite3.Connection) -> Iterator[None]:
        """Deleted content overwritten with zeros in both files, not left in free pages
        until reused: what an erasure promises. Per connection, so set back after."""
        before = [
            (schema, conn.execute(f"PRAGMA {schema}.secure_delete").fetchone()[0])
            for schema in ("main", "inbox")
        ]
        for schema, _ in before:
            conn.execute(f"PRAGMA {schema}.secure_delete = 1")
        try:
            yield
        finally:
            for schema, value in before:
                conn.execute(f"PRAGMA {schema}.secure_delete = {int(value)}")

    # Queries (SQL in store/queries.py) ------------------------------------------------

    def segment(self, app_id: str, query: SegmentQuery) -> SegmentPage:
        self.index_all()
        return queries.segment(self.conn(), app_id, query)

    def funnel_events(
        self, app_id: str, query: FunnelQuery
    ) -> contextlib.AbstractContextManager[FunnelEvents]:
        self.index_all()
        return queries.funnel_events(self.conn(), self.columns, app_id, query)

    def user_profile(
        self, app_id: str, user_id: str, include_bots: bool = False
    ) -> dict[str, Any] | None:
        self.index_all()
        return queries.user_profile(self.conn(), app_id, user_id, include_bots)

    def find_people(self, app_id: str, text: str, include_bots: bool, limit: int) -> list[str]:
        self.index_all()
        return queries.find_people(self.conn(), app_id, text, include_bots, limit)

    def events_page(self, app_id: str, query: EventsQuery) -> EventsPage:
        self.index_all()
        return queries.events_page(self.conn(), app_id, query)

    def event_stats(self, app_id: str, query: StatsQuery) -> dict[str, Any]:
        self.index_all()
        return queries.event_stats(self.conn(), app_id, query)

    def bot_reasons(
        self, app_id: str, query: StatsQuery, person: str | None = None
    ) -> dict[str, int]:
        self.index_all()
        return queries.bot_reasons(self.conn(), app_id, query, person)

    def analytics_overview(self, app_id: str, query: AnalyticsQuery) -> dict[str, Any]:
        self.index_all()
        return queries.analytics_overview(self.conn(), self.columns, app_id, query, now_ms())

    def analytics_breakdown(self, app_id: str, query: AnalyticsQuery, by: str) -> dict[str, Any]:
        self.index_all()
        return queries.analytics_breakdown(self.conn(), self.columns, app_id, query, by)

    def stream_position(self) -> int:
        self.index_all()
        return queries.stream_position(self.conn())

    async def wait_for_events(self, timeout_s: float) -> None:
        # Polling: every worker commits to the same file; nothing tells a reader.
        await asyncio.sleep(timeout_s)

    def stream_events(
        self, app_id: str, after: int, events: Sequence[str], include_bots: bool, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        # One chunk at most, and only if no other writer holds the lock: a watched stream
        # helps the indexer along but never waits on it (or makes ingest wait).
        self.index_some(STREAM_CHUNK, wait=False)
        return queries.stream_events(self.conn(), app_id, after, events, include_bots, limit)


class _Transaction:
    """A write transaction that takes its write locks up front, so concurrent writers
    (other worker processes) queue on busy_timeout instead of failing mid-transaction:
    BEGIN IMMEDIATE for both files (it locks every attached one), or BEGIN and a
    statement that writes nothing to one file (`lock`) for that file's lock alone."""

    def __init__(self, conn: sqlite3.Connection, lock: str | None) -> None:
        self.conn = conn
        self.lock = lock
        self.nested = False

    def __enter__(self) -> sqlite3.Connection:
        self.nested = self.conn.in_transaction
        if not self.nested:
            if self.lock is None:
                self.conn.execute("BEGIN IMMEDIATE")
            else:
                self.conn.execute("BEGIN")
                try:
                    self.conn.execute(self.lock)
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.nested:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _execute(conn: sqlite3.Connection) -> app_deletion.Execute:
    def run(sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        cur = conn.execute(sql, tuple(params))
        return (cur.fetchall() if cur.description else []), cur.rowcount

    return run


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _lookup(conn: sqlite3.Connection, sql: str, app_id: str, keys: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in _chunks(keys):
        marks = ",".join("?" * len(chunk))
        for key, value in conn.execute(sql.format(marks=marks), (app_id, *chunk)):
            found[key] = value
    return found


def _lock(fd: int | None, blocking: bool) -> bool:
    if fd is None:  # ":memory:": no other process can open it
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int | None) -> None:
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _purge_people(conn: sqlite3.Connection, app_id: str, cutoff: int) -> None:
    """Retention's last step: the people left with no events and no identify calls,
    their users rows last seen before the cutoff, links, aliases and persons rows."""
    found = [
        r[0]
        for r in conn.execute(person_deletion.GONE.format(m="?1", cutoff="?2"), (app_id, cutoff))
    ]
    aliases = dict(
        conn.execute("SELECT previous_id, user_id FROM user_aliases WHERE app_id = ?", (app_id,))
    )
    gone = person_deletion.gone_people(found, aliases)
    if not gone:
        return
    ids = _array(gone)
    anon_ids = [
        core.ANON + r[0]
        for r in conn.execute(
            f"SELECT anonymous_id FROM identities WHERE app_id = ? AND user_id IN {_EACH}",
            (app_id, ids),
        )
    ]
    for table in ("users", "identities"):
        conn.execute(f"DELETE FROM {table} WHERE app_id = ? AND user_id IN {_EACH}", (app_id, ids))
    conn.execute(
        f"DELETE FROM user_aliases WHERE app_id = ? AND (user_id IN {_EACH} "
        f"OR previous_id IN {_EACH})",
        (app_id, ids, ids),
    )
    restat_persons(conn, app_id, [*gone, *anon_ids])


# One parameter for a list of any length: a JSON array, read as a table (no bound on
# host parameters to chunk for).
_EACH = "(SELECT value FROM json_each(?))"


def _array(items: Iterable[str]) -> str:
    return core.json_text(list(items))


def _forget_call_owners(
    conn: sqlite3.Connection, app_id: str, where: str, params: Sequence[Any]
) -> None:
    """Release the message ids of the unstored calls (core.OwnerRow) matching `where`,
    and forget who they named."""
    conn.execute(
        "DELETE FROM message_ids WHERE app_id = ? AND (kind, message_id) IN "
        f"(SELECT kind, message_id FROM call_owners WHERE app_id = ? AND {where})",
        (app_id, app_id, *params),
    )
    conn.execute(f"DELETE FROM call_owners WHERE app_id = ? AND {where}", (app_id, *params))


def _forget_message_ids(
    conn: sqlite3.Connection, table: str, app_id: str, where: str, params: Sequence[Any]
) -> None:
    """Release the message ids of the rows of `table` about to be deleted: a deleted
    event is not kept as a duplicate."""
    kind = core.KIND["identify" if table == "identifies" else "track"]
    conn.execute(
        f"DELETE FROM message_ids WHERE app_id = ? AND kind = {kind} AND message_id IN "
        f"(SELECT message_id FROM {table} WHERE app_id = ? AND {where} "
        "AND message_id IS NOT NULL)",
        (app_id, app_id, *params),
    )


# Shared rate limits: one bucket's spending, as PostgreSQL's (store/postgres/primitives.py):
# a new row starts full less the spending (`excluded.tokens` = cap - spent); debt is
# floored at DEBT_FLOOR capacities.
_SHARE_RATE_USAGE = f"""
INSERT INTO rate_buckets AS b (key, tokens, rate, cap, updated) VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (key) DO UPDATE SET
  tokens = max(
    min(excluded.cap, b.tokens + max(excluded.updated - b.updated, 0) * excluded.rate)
      - (excluded.cap - excluded.tokens),
    -{DEBT_FLOOR} * excluded.cap),
  rate = excluded.rate, cap = excluded.cap, updated = excluded.updated
RETURNING tokens
"""
_ACCEPTED_TOTAL = "SELECT total FROM inbox.inbox ORDER BY id DESC LIMIT 1"
_INDEXED_TOTAL = "SELECT value FROM main.meta WHERE key = 'indexed_total'"
# Both in one statement: its read of the main file begins before its read of the inbox
# (schemas in order), so the inbox's total is never older than the watermark it is
# compared with. An inbox whose rows are all consumed and deleted counts as the watermark.
_TOTALS = f"SELECT ({_ACCEPTED_TOTAL}), ({_INDEXED_TOTAL})"
_DROP_CONSUMED = f"DELETE FROM inbox.inbox WHERE total <= ({_INDEXED_TOTAL})"


def _accepted_total(conn: sqlite3.Connection) -> int | None:
    """Events accepted so far, counting from the first ever; None if none is pending."""
    accepted, indexed = conn.execute(_TOTALS).fetchone()
    if accepted is None or int(accepted) <= int(indexed):
        return None
    return int(accepted)


def _indexed_total(conn: sqlite3.Connection) -> int:
    return int(conn.execute(_INDEXED_TOTAL).fetchone()[0])


def _backlog(conn: sqlite3.Connection) -> int:
    accepted, indexed = conn.execute(_TOTALS).fetchone()
    return 0 if accepted is None else max(int(accepted) - int(indexed), 0)


@dataclass(slots=True)
class _Planned:
    indexed_before: int  # indexed_total when planned
    plan: core.IndexPlan
    count: int  # events
    last_total: int  # the `total` of the last inbox row it indexes: the new watermark


def _plan_pending(
    conn: sqlite3.Connection, at_least: int | None, until: int | None = None
) -> _Planned | None:
    """Plan indexing the oldest inbox rows, whole rows until `at_least` events (None:
    all), none past event number `until`; None if there is nothing to index."""
    # The watermark first: the inbox is then read as of later, and its rows past the
    # watermark are all there (consumed rows are deleted only once it passed them).
    indexed = _indexed_total(conn)
    if until is not None and indexed >= until:
        return None
    events: list[codec.Accepted] = []
    last_total = None
    for total, data in conn.execute(
        "SELECT total, data FROM inbox.inbox WHERE total > ? ORDER BY id", (indexed,)
    ):
        events.extend(codec.decode(data))
        last_total = total
        if at_least is not None and total - indexed >= at_least:
            break
    if last_total is None:
        return None
    plan = core.plan_index(_Primitives(conn), events)
    return _Planned(indexed, plan, len(events), last_total)


def _write_planned(conn: sqlite3.Connection, planned: _Planned) -> int:
    """Write a plan in the caller's write transaction of the main file, and the new
    watermark with it; how many events it indexed. The consumed inbox rows are deleted
    afterwards (`SQLiteStore._drop_consumed`)."""
    core.write_index(_Primitives(conn), planned.plan)
    conn.execute(
        "UPDATE main.meta SET value = ? WHERE key = 'indexed_total'", (planned.last_total,)
    )
    return planned.count


def _index_pending(conn: sqlite3.Connection, at_least: int | None) -> int:
    """Index the oldest inbox rows, whole rows until `at_least` events (None: all), in
    the caller's write transaction; return how many events were indexed."""
    planned = _plan_pending(conn, at_least)
    return 0 if planned is None else _write_planned(conn, planned)


def restat_persons(conn: sqlite3.Connection, app_id: str, persons: Iterable[str]) -> None:
    """Rebuild the persons' person_event_stats and persons rows from their events and
    users rows (after deletes)."""
    for chunk in _chunks(sorted(persons)):
        marks = ",".join("?" * len(chunk))
        conn.execute(
            f"DELETE FROM person_event_stats WHERE app_id = ? AND person IN ({marks})",
            (app_id, *chunk),
        )
        conn.execute(
            f"INSERT INTO person_event_stats ({core.STAT_COLUMNS}) "
            "SELECT app_id, person, event, is_bot, COUNT(*), MIN(ts), MAX(ts) FROM events "
            f"WHERE app_id = ? AND person IN ({marks}) GROUP BY person, event, is_bot",
            (app_id, *chunk),
        )
        _restat_scope(conn, app_id, chunk)


def _restat_scope(conn: sqlite3.Connection, app_id: str, persons: Sequence[str]) -> None:
    marks = ",".join("?" * len(persons))
    conn.execute(
        f"DELETE FROM persons WHERE app_id = ? AND person IN ({marks})", (app_id, *persons)
    )
    conn.execute(
        f"INSERT INTO persons ({core.PERSON_COLUMNS}) "
        "SELECT ?, person, max(human), max(bot), max(known) FROM ("
        " SELECT person, max(is_bot = 0) AS human, max(is_bot = 1) AS bot, 0 AS known"
        f" FROM person_event_stats WHERE app_id = ? AND person IN ({marks}) GROUP BY person"
        f" UNION ALL SELECT user_id, 0, 0, 1 FROM users WHERE app_id = ? AND user_id IN ({marks})"
        ") GROUP BY person",
        (app_id, app_id, *persons, app_id, *persons),
    )


_STATS_MERGE = (
    "ON CONFLICT (app_id, event, person, is_bot) DO UPDATE SET n = n + excluded.n, "
    "first_ts = min(first_ts, excluded.first_ts), last_ts = max(last_ts, excluded.last_ts)"
)


class _Primitives(VisitTables):
    """core.Primitives on one SQLite connection, inside the transaction it has open."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        max_backlog: int | None = None,
        store: SQLiteStore | None = None,
    ) -> None:
        self.conn = conn
        self.max_backlog = max_backlog
        self.store = store  # the group commit's, whose turns `index_accepted` takes
        self.backlog = 0  # events pending once `append` has appended

    def claim_message_ids(self, claims: Sequence[core.Claim]) -> int:
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO message_ids (app_id, kind, message_id, event_id) "
            "VALUES (?, ?, ?, ?)",
            claims,
        )
        return self.conn.total_changes - before

    def message_id_owners(self, claims: Sequence[core.Claim]) -> dict[tuple[str, int, str], str]:
        by_key: dict[tuple[str, int], list[str]] = {}
        for app_id, kind, mid, _ in claims:
            by_key.setdefault((app_id, kind), []).append(mid)
        owners: dict[tuple[str, int, str], str] = {}
        for (app_id, kind), mids in by_key.items():
            sql = (
                "SELECT message_id, event_id FROM message_ids "
                f"WHERE app_id = ? AND kind = {kind} AND message_id IN ({{marks}})"
            )
            for mid, eid in _lookup(self.conn, sql, app_id, sorted(set(mids))).items():
                owners[(app_id, kind, mid)] = eid
        return owners

    def release_message_id(self, claim: core.Claim) -> None:
        self.conn.execute(
            "DELETE FROM message_ids WHERE app_id = ? AND kind = ? AND message_id = ? "
            "AND event_id = ?",
            claim,
        )

    def claim_rule_key(self, rule_id: int, key: str, ts: int) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO rule_state (rule_id, key, last_ts) VALUES (?, ?, ?)",
            (rule_id, key, ts),
        )
        return cur.rowcount > 0

    def rule_last_ts(self, rule_id: int, key: str) -> int | None:
        row = self.conn.execute(
            "SELECT last_ts FROM rule_state WHERE rule_id = ? AND key = ?", (rule_id, key)
        ).fetchone()
        return None if row is None else int(row[0])

    def set_rule_ts(self, rule_id: int, key: str, ts: int) -> None:
        self.conn.execute(
            "INSERT INTO rule_state (rule_id, key, last_ts) VALUES (?, ?, ?) "
            "ON CONFLICT (rule_id, key) DO UPDATE SET last_ts = excluded.last_ts",
            (rule_id, key, ts),
        )

    def links(self, app_id: str, anonymous_ids: Sequence[str]) -> dict[str, str]:
        sql = (
            "SELECT anonymous_id, user_id FROM identities "
            "WHERE app_id = ? AND anonymous_id IN ({marks})"
        )
        return _lookup(self.conn, sql, app_id, anonymous_ids)

    def index_accepted(self) -> None:
        # Inside a group commit, which holds the inbox's turn and lock: the main file's
        # are taken too (in that order, as every writer of both does), and the indexing
        # commits with the group. Only rows committed before the group are indexed.
        # The main file is locked before it is read: a write after a read of it in the
        # same transaction fails at once if another writer committed in between.
        assert self.store is not None
        with self.store._turn():
            self.conn.execute(_LOCK_MAIN)
            _index_pending(self.conn, None)

    def merge_users(self, updates: Sequence[core.UserUpdate]) -> None:
        # json_patch is RFC 7396's merge patch; on a new row it drops null traits too.
        # An existing row is patched with the patch as sent (?3), not with the new row's
        # value, which has lost its nulls: a null must remove the trait.
        self.conn.executemany(
            "INSERT INTO users (app_id, user_id, traits, first_seen, last_seen) "
            "VALUES (?1, ?2, json_patch('{}', ?3), ?4, ?5) "
            "ON CONFLICT (app_id, user_id) DO UPDATE SET "
            "traits = json_patch(users.traits, ?3), "
            "first_seen = min(users.first_seen, excluded.first_seen), "
            "last_seen = max(users.last_seen, excluded.last_seen)",
            [(a, u, core.json_text(traits), first, last) for a, u, traits, first, last in updates],
        )

    def absorb_users(self, absorbs: Sequence[core.Absorb]) -> None:
        # json_patch(previous, user's): the user's own traits win. (The WHERE also keeps
        # SQLite from reading ON CONFLICT as part of the SELECT.)
        self.conn.executemany(
            "INSERT INTO users (app_id, user_id, traits, first_seen, last_seen) "
            "SELECT app_id, ?3, traits, first_seen, last_seen FROM users "
            "WHERE app_id = ?1 AND user_id = ?2 "
            "ON CONFLICT (app_id, user_id) DO UPDATE SET "
            "traits = json_patch(excluded.traits, users.traits), "
            "first_seen = min(users.first_seen, excluded.first_seen), "
            "last_seen = max(users.last_seen, excluded.last_seen)",
            [(a, previous, user) for a, previous, user in absorbs if previous != user],
        )
        self.conn.executemany(
            "DELETE FROM users WHERE app_id = ? AND user_id = ?",
            [(a, previous) for a, previous, _ in absorbs if previous.startswith(core.ANON)],
        )

    def count_discards(self, counts: Sequence[core.DiscardCount]) -> None:
        self.conn.executemany(
            "INSERT INTO discards (app_id, day, reason, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (app_id, day, reason) DO UPDATE SET n = n + excluded.n",
            counts,
        )

    def append(self, events: Sequence[Event]) -> None:
        last, indexed_text = self.conn.execute(_TOTALS).fetchone()
        indexed = int(indexed_text)
        total = indexed if last is None else max(int(last), indexed)
        # Rows of at most INBOX_ROW events: indexing takes whole rows, so a row is the
        # least it can take in one hold of the writers' lock (a 2,000-event batch as
        # one row would hold every request back 20 times as long as it need).
        for start in range(0, len(events), INBOX_ROW):
            part = events[start : start + INBOX_ROW]
            total += len(part)
            self.conn.execute(
                "INSERT INTO inbox (total, data) VALUES (?, ?)", (total, codec.encode(part))
            )
        # A bounded backlog: past it, each commit also indexes what it adds (after it
        # commits: SQLiteStore._write_locked), so reads never have more than max_backlog
        # events to catch up on. Rarely reached: from half of it the indexer works in
        # large chunks whatever the CPU (indexer.py).
        self.backlog = total - indexed

    def insert_events(self, rows: Sequence[core.EventRow]) -> None:
        self.conn.executemany(
            f"INSERT INTO events ({core.EVENT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def index_visits(self, rows: Sequence[core.EventRow]) -> None:
        visits.index(self, rows)

    def insert_identifies(self, rows: Sequence[core.IdentifyRow]) -> None:
        self.conn.executemany(
            f"INSERT INTO identifies ({core.IDENTIFY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def add_person_stats(self, rows: Sequence[core.StatRow]) -> None:
        self.conn.executemany(
            f"INSERT INTO person_event_stats ({core.STAT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            + _STATS_MERGE,
            rows,
        )

    def add_persons(self, rows: Sequence[core.PersonRow]) -> None:
        # The WHERE leaves a row that already has the flags untouched: no page written.
        self.conn.executemany(
            f"INSERT INTO persons ({core.PERSON_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (app_id, person) DO UPDATE SET human = max(human, excluded.human), "
            "bot = max(bot, excluded.bot), known = max(known, excluded.known) "
            "WHERE excluded.human > human OR excluded.bot > bot OR excluded.known > known",
            rows,
        )

    def add_call_owners(self, rows: Sequence[core.OwnerRow]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO call_owners (app_id, person, kind, message_id, ts) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def link(self, links: Sequence[core.Link]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO identities (app_id, anonymous_id, user_id, linked_at) "
            "VALUES (?, ?, ?, ?)",
            links,
        )
        # What the visitor did before logging in now belongs to the user.
        self.move_persons([(user, app, core.ANON + anon) for app, anon, user, _ in links])

    # User aliases (core.apply_aliases) ----------------------------------------------

    def user_aliases(self, app_id: str, previous_ids: Sequence[str]) -> dict[str, str]:
        sql = (
            "SELECT previous_id, user_id FROM user_aliases "
            "WHERE app_id = ? AND previous_id IN ({marks})"
        )
        return _lookup(self.conn, sql, app_id, previous_ids)

    def add_user_alias(self, alias: core.Alias) -> None:
        app_id, previous, user, _ = alias
        self.conn.execute(
            "INSERT OR IGNORE INTO user_aliases (app_id, previous_id, user_id, aliased_at) "
            "VALUES (?, ?, ?, ?)",
            alias,
        )
        self.conn.execute(
            "UPDATE user_aliases SET user_id = ? WHERE app_id = ? AND user_id = ?",
            (user, app_id, previous),
        )

    def move_persons(self, moves: Sequence[core.Move]) -> None:
        self.conn.executemany("UPDATE events SET person = ? WHERE app_id = ? AND person = ?", moves)
        self.conn.executemany(
            f"INSERT INTO person_event_stats ({core.STAT_COLUMNS}) "
            "SELECT app_id, ?, event, is_bot, n, first_ts, last_ts FROM person_event_stats "
            # Without statistics the planner would scan the app's whole key range instead.
            "INDEXED BY person_event_stats_person WHERE app_id = ? AND person = ? " + _STATS_MERGE,
            moves,
        )
        self.conn.executemany(
            "DELETE FROM person_event_stats WHERE app_id = ? AND person = ?",
            [(app, person) for _, app, person in moves],
        )
        visits.move(self, moves)
        _move_scope(self.conn, moves)


def _move_scope(conn: sqlite3.Connection, moves: Sequence[core.Move]) -> None:
    """The persons rows' side of move_persons: the new person gains the old one's event
    flags; the old one, left without events, stays only as a known user."""
    conn.executemany(
        f"INSERT INTO persons ({core.PERSON_COLUMNS}) "
        "SELECT app_id, ?, human, bot, 0 FROM persons WHERE app_id = ? AND person = ? "
        "AND (human OR bot) ON CONFLICT (app_id, person) DO UPDATE SET "
        "human = max(human, excluded.human), bot = max(bot, excluded.bot)",
        moves,
    )
    old = [(app, person) for _, app, person in moves]
    conn.executemany("DELETE FROM persons WHERE app_id = ? AND person = ? AND NOT known", old)
    conn.executemany("UPDATE persons SET human = 0, bot = 0 WHERE app_id = ? AND person = ?", old)
