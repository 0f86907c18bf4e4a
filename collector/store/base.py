"""The storage interface, implemented by SQLite (store/sqlite/) and PostgreSQL
(store/postgres/). Handlers and the CLI speak only this; SQL lives in the
implementations, and the rules every backend must keep are decided once in core.py.

Guarantees, on every backend: an event is acknowledged only once its group is
committed durably; a message id is stored once per app; every read sees every
acknowledged event (what is accepted but not yet indexed is indexed before a read)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from collector.models import App, Event, Outcome, Rule
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
from collector.store.columns import ColumnCache
from collector.store.tables import Table


class Store(Protocol):
    # How many group commits may run at once, each on a thread of its own; 0: one at a
    # time, on the event loop. A commit that mostly waits (PostgreSQL: round trips and
    # the server's flush) lets the event loop keep serving meanwhile, and commits that
    # wait side by side let one app's long commit hold up only that app
    # (ingest/writer.py); one that mostly computes in-process (SQLite, whose writers
    # take turns anyway) costs less on the loop than the hand-off to a thread.
    commit_threads: int
    # Whether collectors that share this store share their rate limits through it
    # (ingest/ratelimit.py): PostgreSQL, many hosts. SQLite is one host, whose worker
    # processes each enforce their share of the rate.
    shares_rate_limits: bool
    # This process's cache of the web figures' columns (store/columns.py).
    columns: ColumnCache

    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version."""

    def close(self) -> None: ...
    def secret(self) -> str:
        """A random secret made with the database, shared by every worker process."""

    # Apps, keys and rules.
    def create_app(self, name: str, origins: Sequence[str], settings: dict[str, Any]) -> App: ...
    def get_app(self, app_id: str) -> App | None: ...
    def list_apps(self) -> list[App]: ...
    def update_app(
        self,
        app_id: str,
        *,
        name: str | None = None,
        origins: Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> App: ...
    def create_key(self, app_id: str) -> tuple[str, str]:
        """(key_id, secret); the secret is returned once and stored hashed."""

    def revoke_key(self, key_id: str) -> bool: ...
    def list_keys(self, app_id: str) -> list[dict[str, Any]]: ...
    def app_for_key(self, key_hash: str) -> App | None: ...
    def add_rule(
        self,
        app_id: str,
        event: str,
        *,
        dedupe_key: str | None = None,
        throttle_ms: int | None = None,
    ) -> Rule: ...
    def remove_rule(self, app_id: str, rule_id: int) -> bool: ...

    # Dashboard accounts, sessions and saved segments (collector/dashboard/).
    def create_admin(self, email: str, password_hash: str) -> bool:
        """False when an admin with this email exists."""

    def get_admin(self, email: str) -> dict[str, Any] | None:
        """{email, password_hash, created_at}."""

    def list_admins(self) -> list[dict[str, Any]]:
        """{email, created_at, sessions} of each admin, by email."""

    def delete_admin(self, email: str) -> bool:
        """Delete the admin and end every session of theirs."""

    def set_admin_password(self, email: str, password_hash: str) -> bool:
        """Change the hash and end every session of theirs."""

    def create_session(self, token_hash: str, email: str, now_ms: int, expires_ms: int) -> None: ...
    def session_admin(self, token_hash: str, now_ms: int) -> str | None:
        """The email of the session's admin while it has not expired, else None."""

    def delete_session(self, token_hash: str) -> None: ...
    def save_segment(self, app_id: str, name: str, rules: dict[str, Any]) -> str:
        """Store a named segment (its rules as the Query API takes them); its id. A name
        the app already has is that segment, saved again with these rules."""

    def list_segments(self, app_id: str) -> list[dict[str, Any]]:
        """{segment_id, name, rules, created_at} of the app's saved segments, by name."""

    def delete_segment(self, app_id: str, segment_id: str) -> bool: ...

    # Ingestion.
    def write(self, events: Sequence[Event]) -> list[Outcome]:
        """Store a group of events in one transaction, applying idempotency and rules;
        one outcome per event, in order. Nothing is stored on error. Identity links and
        the rest may be worked out later, but every read sees every event written."""

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        """As write() for the events `take()` returns, called once the store can write;
        None at once, with `take` not called, while the store is busy (another process
        has the turn), so the caller's event loop keeps serving and tries again."""

    def user_exists(self, app_id: str, user_id: str) -> bool: ...
    def share_rate_usage(
        self, usage: Sequence[tuple[str, float, float, float]]
    ) -> dict[str, float]:
        """Shared rate limits: for each (key, spent, rate, capacity), take `spent` from the
        one bucket every collector shares, refilled at `rate` up to `capacity`; return
        what each bucket holds now (it may be below 0: a debt everyone waits out). A
        negative `spent` gives tokens back, up to the capacity."""

    def ready(self) -> dict[str, int]:
        """For /healthz/ready: raises if the database cannot be reached now; else what
        is pending (`backlog`) and its bound (`max_backlog`)."""

    # Deferred indexing: accepted events are indexed later, by the indexer process, by
    # a read that needs them, or by the writer when the backlog is at its bound.
    def backlog(self) -> int:
        """Events accepted (committed and acknowledged) but not indexed yet."""

    def index_some(self, chunk: int, *, wait: bool = True) -> int:
        """Index about `chunk` of the oldest accepted events in one transaction; how
        many (0 when none are pending, or when wait=False and the store is busy)."""

    def index_all(self) -> int:
        """Index every event accepted before this call; how many."""

    def at_backlog_bound(self) -> bool:
        """Whether the backlog is near its bound (within a tenth), as this process's last
        commit found it (or a count, at most every 0.1 s, while it says so): the writer
        then refuses big requests (SQLite, whose commits past the bound index on the
        event loop, holding the one write lock; never on PostgreSQL)."""

    def exceeds_bound(self, count: int) -> bool:
        """Whether `count` more events would take the backlog past its bound, read in the
        writer's turn (SQLite: inside `try_write`'s take, under the write lock): the
        writer then refuses a big request rather than commit it (never on PostgreSQL)."""

    def commit_waiting(self) -> bool:
        """Whether another process's group commit waits for the lock this process's
        commits take in turn with it (SQLite's inbox file; never on PostgreSQL): a big
        request committed in slices then lets it go first."""

    # Data management.
    def export_events(
        self, app_id: str, since_ms: int | None = None, until_ms: int | None = None
    ) -> Iterator[dict[str, Any]]: ...
    def purge(self, app_id: str, older_than_ms: int) -> int: ...
    def delete_user(self, app_id: str, user_id: str) -> int: ...
    def discard_counts(self, app_id: str) -> dict[str, int]: ...

    # Deleting an app (store/app_deletion.py).
    def delete_app(self, app_id: str, bucket_names_app: Callable[[str], bool]) -> dict[str, int]:
        """Delete the app and every row of it, its pending events included, in one write
        transaction (per file, on SQLite); how many rows of each kind (app_deletion.LABELS'
        keys). `bucket_names_app` tells which shared rate buckets' keys are the app's.
        Idempotent: an app already gone finds nothing, or what was accepted for it since."""

    # Moving a whole database to another store (store/transfer.py).
    def is_empty(self) -> bool:
        """No app and no event: a safe target."""

    def read_rows(self, table: Table) -> Iterator[tuple[Any, ...]]:
        """The table's rows, in its columns' order, JSON decoded; events and identify
        calls in the order they were stored."""

    def write_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows as read_rows gives them, in one transaction."""

    def finish_import(self, secret: str) -> None:
        """After every table: take the source's secret, and let ids made from now on
        (rule ids, event positions) continue after the imported ones."""

    # Queries (the query API): each reads one app and resolves identities.
    def segment(self, app_id: str, query: SegmentQuery) -> SegmentPage: ...
    def funnel_events(
        self, app_id: str, query: FunnelQuery
    ) -> AbstractContextManager[FunnelEvents]:
        """The events a funnel reads, in one read snapshot held while the context is."""

    def user_profile(
        self, app_id: str, user_id: str, include_bots: bool = False
    ) -> dict[str, Any] | None: ...
    def find_people(self, app_id: str, text: str, include_bots: bool, limit: int) -> list[str]:
        """The people (user ids, `anon:` persons) whose user id or anonymous id starts
        with `text`, or whose `email` trait does in any case; at most `limit`, in order."""
        ...

    def events_page(self, app_id: str, query: EventsQuery) -> EventsPage: ...
    def event_stats(self, app_id: str, query: StatsQuery) -> dict[str, Any]: ...
    def bot_reasons(
        self, app_id: str, query: StatsQuery, person: str | None = None
    ) -> dict[str, int]:
        """The bot events among the query's (and one person's, a user id or `anon:ID`,
        when given), by reason (event_stats' `bot_reasons`)."""
        ...

    def analytics_overview(self, app_id: str, query: AnalyticsQuery) -> dict[str, Any]:
        """Visitors, visits, page views, bounce rate and visit duration for the range and
        the period before it, a time series and current visitors (store/analytics.py)."""
        ...

    def analytics_breakdown(self, app_id: str, query: AnalyticsQuery, by: str) -> dict[str, Any]:
        """The figures per value of dimension `by` (query.types.DIMENSIONS)."""
        ...

    # Live stream.
    def stream_position(self) -> int:
        """The newest position in the event log: a stream that starts now resumes
        after it. Positions grow in commit order."""

    async def wait_for_events(self, timeout_s: float) -> None:
        """Return when events may have been stored since, or after `timeout_s`."""

    def stream_events(
        self, app_id: str, after: int, events: Sequence[str], include_bots: bool, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """(position, event) for events stored after `after`, oldest first."""
