"""Versioned schema migrations. Append only: a released migration never changes."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import sqlite_utils

from collector.store import visits as visit_model
from collector.store.sqlite import inbox, visits


def _initial(db: sqlite_utils.Database) -> None:
    db.table("apps").create(
        {"app_id": str, "name": str, "origins": str, "settings": str, "created_at": str},
        pk="app_id",
        not_null={"name", "origins", "settings", "created_at"},
    )
    db.table("api_keys").create(
        {
            "key_id": str,
            "app_id": str,
            "key_hash": str,
            "prefix": str,
            "created_at": str,
            "revoked_at": str,
        },
        pk="key_id",
        not_null={"app_id", "key_hash", "created_at"},
        foreign_keys=[("app_id", "apps", "app_id")],
    )
    db.table("api_keys").create_index(["key_hash"], unique=True)
    db.table("rules").create(
        {
            "id": int,
            "app_id": str,
            "event": str,
            "kind": str,
            "dedupe_key": str,
            "throttle_ms": int,
            "created_at": str,
        },
        pk="id",
        not_null={"app_id", "event", "kind", "created_at"},
        foreign_keys=[("app_id", "apps", "app_id")],
    )
    # Events: rowid table (cheap appends); `person` is the resolved identity — the
    # user id, or "anon:" + anonymous id until that anonymous id is linked to a user.
    db.executescript(
        """
        CREATE TABLE events (
            id TEXT NOT NULL,
            app_id TEXT NOT NULL,
            message_id TEXT,
            event TEXT NOT NULL,
            user_id TEXT,
            anonymous_id TEXT,
            person TEXT NOT NULL,
            ts INTEGER NOT NULL,
            timestamp TEXT,
            sent_at TEXT,
            received_at INTEGER NOT NULL,
            properties TEXT NOT NULL,
            context TEXT NOT NULL,
            is_bot INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX events_message_id ON events(app_id, message_id)
            WHERE message_id IS NOT NULL;
        CREATE INDEX events_anonymous_id ON events(app_id, anonymous_id)
            WHERE anonymous_id IS NOT NULL;
        CREATE INDEX events_person ON events(app_id, person, event, ts);
        CREATE INDEX events_event_ts ON events(app_id, event, ts);
        CREATE INDEX events_ts ON events(app_id, ts);

        CREATE TABLE identifies (
            id TEXT NOT NULL,
            app_id TEXT NOT NULL,
            message_id TEXT,
            user_id TEXT NOT NULL,
            anonymous_id TEXT,
            traits TEXT NOT NULL,
            ts INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            context TEXT NOT NULL
        );
        CREATE UNIQUE INDEX identifies_message_id ON identifies(app_id, message_id)
            WHERE message_id IS NOT NULL;
        CREATE INDEX identifies_user ON identifies(app_id, user_id);

        CREATE TABLE users (
            app_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            traits TEXT NOT NULL DEFAULT '{}',
            first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            PRIMARY KEY (app_id, user_id)
        ) WITHOUT ROWID;

        CREATE TABLE identities (
            app_id TEXT NOT NULL,
            anonymous_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            linked_at INTEGER NOT NULL,
            PRIMARY KEY (app_id, anonymous_id)
        ) WITHOUT ROWID;
        CREATE INDEX identities_user ON identities(app_id, user_id);

        CREATE TABLE rule_state (
            rule_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            last_ts INTEGER NOT NULL,
            PRIMARY KEY (rule_id, key)
        ) WITHOUT ROWID;

        CREATE TABLE discards (
            app_id TEXT NOT NULL,
            day TEXT NOT NULL,
            reason TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (app_id, day, reason)
        ) WITHOUT ROWID;
        """
    )


def _query_summaries(db: sqlite_utils.Database) -> None:
    # One row per (person, event, bot flag): what behavioural segments read instead of
    # scanning events (has done, counts, first/last time). The writer keeps it current
    # in its own transaction (store/sqlite.py); existing events are backfilled here.
    # Statements one by one, not executescript: that would commit migrate()'s transaction.
    for sql in (
        """
        CREATE TABLE person_event_stats (
            app_id TEXT NOT NULL,
            person TEXT NOT NULL,
            event TEXT NOT NULL,
            is_bot INTEGER NOT NULL,
            n INTEGER NOT NULL,
            first_ts INTEGER NOT NULL,
            last_ts INTEGER NOT NULL,
            PRIMARY KEY (app_id, event, person, is_bot)
        ) WITHOUT ROWID
        """,
        # Keyed by event first: "who did E (since T, N times)" is one range of the table.
        # The person index only changes when a person does an event for the first time,
        # not on every upsert, which keeps the writer's cost low.
        "CREATE INDEX person_event_stats_person ON person_event_stats(app_id, person)",
        # The (event, ts) index gains person and is_bot, so windowed counts and funnels
        # read the index alone, never the rows (1M random row reads take seconds). Same
        # leading columns: every lookup it served, it still serves.
        "DROP INDEX events_event_ts",
        "CREATE INDEX events_event_ts ON events(app_id, event, ts, person, is_bot)",
        "INSERT INTO person_event_stats (app_id, person, event, is_bot, n, first_ts, last_ts) "
        "SELECT app_id, person, event, is_bot, COUNT(*), MIN(ts), MAX(ts) FROM events "
        "GROUP BY app_id, person, event, is_bot",
    ):
        db.execute(sql)


def _drop_anonymous_id_index(db: sqlite_utils.Database) -> None:
    # Every insert into an index of random keys (anonymous ids are UUIDs) dirties its own
    # page; on the browser path this index cost more than the row itself. The person
    # index finds what it found: an anonymous id's unlinked events have person
    # "anon:<id>", and linked ones carry the user's id.
    db.execute("DROP INDEX IF EXISTS events_anonymous_id")


def _narrow_person_index(db: sqlite_utils.Database) -> None:
    # Its readers (identity links, user deletion, one user's event list) look up a
    # person and nothing more; segments read person_event_stats and funnels the event
    # index. Narrower entries mean fewer pages dirtied by each random-keyed insert.
    db.execute("DROP INDEX IF EXISTS events_person")
    db.execute("CREATE INDEX events_person ON events(app_id, person)")


def _meta(db: sqlite_utils.Database) -> None:
    # Per-database settings; `secret` signs query cursors, the same for every worker.
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('secret', ?)", [secrets.token_hex(32)])


def _inbox(db: sqlite_utils.Database) -> None:
    # Accept now, index later. A group commit stores its events as one row of `inbox`
    # (a JSON array) and claims their message ids in `message_ids`: two appends, so an
    # event costs a fifth of what inserting it into `events` with its indexes does.
    # The indexer (store/indexer.py) then moves inbox rows into events, identifies,
    # identities and person_event_stats in large chunks, and every read catches up
    # first. `total` counts the events accepted up to and including a row; the meta row
    # `indexed_total` says how many of them are indexed.
    # `message_ids` is now where idempotency is decided, for indexed events and pending
    # ones alike, so the unique indexes it replaces go. kind: 0 event, 1 identify (two
    # namespaces, as before).
    for sql in (
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY, total INTEGER NOT NULL, data BLOB NOT NULL)",
        """
        CREATE TABLE message_ids (
            app_id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            message_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            PRIMARY KEY (app_id, kind, message_id)
        ) WITHOUT ROWID
        """,
        "INSERT INTO message_ids SELECT app_id, 0, message_id, id FROM events "
        "WHERE message_id IS NOT NULL",
        "INSERT INTO message_ids SELECT app_id, 1, message_id, id FROM identifies "
        "WHERE message_id IS NOT NULL",
        "DROP INDEX events_message_id",
        "DROP INDEX identifies_message_id",
        "INSERT INTO meta VALUES ('indexed_total', 0)",
    ):
        db.execute(sql)


def _user_aliases(db: sqlite_utils.Database) -> None:
    # Alias calls (Segment, PostHog): previous user id → the user it now counts for.
    # Indexing moves what the previous id did (core.apply_aliases); later events that
    # still name it are moved in the chunk that stores them.
    db.execute(
        """
        CREATE TABLE user_aliases (
            app_id TEXT NOT NULL,
            previous_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            aliased_at INTEGER NOT NULL,
            PRIMARY KEY (app_id, previous_id)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX user_aliases_user ON user_aliases(app_id, user_id)")


def _rule_ids_never_reused(db: sqlite_utils.Database) -> None:
    # A rowid alias hands the largest id out again once its rule is removed, and a new
    # rule with an old id would inherit the old rule's state (rule_state is keyed by id).
    # AUTOINCREMENT never reuses one; SQLite cannot add it to a table, hence the copy.
    for sql in (
        """
        CREATE TABLE rules_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            app_id TEXT NOT NULL REFERENCES apps(app_id),
            event TEXT NOT NULL,
            kind TEXT NOT NULL,
            dedupe_key TEXT,
            throttle_ms INTEGER,
            created_at TEXT NOT NULL
        )
        """,
        "INSERT INTO rules_new (id, app_id, event, kind, dedupe_key, throttle_ms, created_at) "
        "SELECT id, app_id, event, kind, dedupe_key, throttle_ms, created_at FROM rules",
        "DROP TABLE rules",
        "ALTER TABLE rules_new RENAME TO rules",
        # Ids of rules removed before this migration are past the largest left: the rule
        # states still keyed by them go too.
        "DELETE FROM rule_state WHERE rule_id NOT IN (SELECT id FROM rules)",
    ):
        db.execute(sql)


def _dashboard(db: sqlite_utils.Database) -> None:
    # Dashboard accounts: scrypt hashes (dashboard/passwords.py), sessions by the SHA-256
    # of their token (a copy of the database opens no session), saved segments per app.
    for sql in (
        """
        CREATE TABLE admins (
            email TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE admin_sessions (
            token_hash TEXT PRIMARY KEY,
            email TEXT NOT NULL REFERENCES admins(email),
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX admin_sessions_email ON admin_sessions(email)",
        """
        CREATE TABLE saved_segments (
            segment_id TEXT PRIMARY KEY,
            app_id TEXT NOT NULL REFERENCES apps(app_id),
            name TEXT NOT NULL,
            rules TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX saved_segments_app ON saved_segments(app_id, name)",
        # Bot events alone, by time: every page counts what it filters out, by reason.
        "CREATE INDEX events_bots ON events(app_id, ts) WHERE is_bot = 1",
    ):
        db.execute(sql)


def _visits(db: sqlite_utils.Database) -> None:
    # Visits and the narrow copy of events they are counted from (store/visits.py),
    # computed for the events already stored.
    for sql in visits.SCHEMA:
        db.execute(sql)
    visits.rebuild(db.conn)


def _properties_in_event_index(db: sqlite_utils.Database) -> None:
    # Property filters and funnel breakdowns read `properties` of one event's rows: from
    # the table that is a random row read each (about 2 µs, most of a filtered
    # segment's time on 1M events); from the index that already orders them by event,
    # a sequential read. Same leading columns, so every lookup it served it still
    # serves; an insert writes the same number of entries, only longer ones.
    db.execute("DROP INDEX events_event_ts")
    db.execute(
        "CREATE INDEX events_event_ts ON events(app_id, event, ts, person, is_bot, properties)"
    )


def _persons(db: sqlite_utils.Database) -> None:
    # One row per person a segment can find: whoever has events (`human`: some not from
    # a bot, `bot`: some from one) and every identified user (`known`: has a users row,
    # with or without events). A segment's scope is then one ordered range of this table
    # instead of every person_event_stats row grouped by person plus an anti-join of
    # users; indexing keeps it (core.person_rows), after the summaries.
    db.execute(
        """
        CREATE TABLE persons (
            app_id TEXT NOT NULL,
            person TEXT NOT NULL,
            human INTEGER NOT NULL,
            bot INTEGER NOT NULL,
            known INTEGER NOT NULL,
            PRIMARY KEY (app_id, person)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        "INSERT INTO persons (app_id, person, human, bot, known) "
        "SELECT app_id, person, max(human), max(bot), max(known) FROM ("
        " SELECT app_id, person, max(is_bot = 0) AS human, max(is_bot = 1) AS bot, 0 AS known"
        " FROM person_event_stats GROUP BY app_id, person"
        " UNION ALL SELECT app_id, user_id, 0, 0, 1 FROM users"
        ") GROUP BY app_id, person"
    )


def _visit_days(db: sqlite_utils.Database) -> None:
    # A version per (app, day of visit start) that indexing raises with every change
    # there, so the figures' column cache reloads only the days that changed. A
    # database made since migration 10 had it created with the visits.
    db.execute(visit_model.VISIT_DAYS_SCHEMA)
    db.execute(
        "INSERT OR IGNORE INTO visit_days (app_id, day, version) "
        f"SELECT app_id, start_ts / {visit_model.DAY_MS}, 1 FROM visits GROUP BY 1, 2"
    )


def _rate_buckets(db: sqlite_utils.Database) -> None:
    # Limits every worker of the host shares (the dashboard's login limits; ingestion's
    # stay in each process here): PostgreSQL's rate_buckets (its migration 7).
    db.execute(
        "CREATE TABLE rate_buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL,"
        " rate REAL NOT NULL, cap REAL NOT NULL, updated REAL NOT NULL) WITHOUT ROWID"
    )


def _accept_path_in_its_own_file(db: sqlite_utils.Database) -> None:
    # The group commit's tables (inbox, message_ids, rule_state, users, discards) live in
    # `<db>-inbox` (store/sqlite/inbox.py), whose write lock no indexing transaction
    # holds. This pairs the two files; SQLiteStore.migrate moves the rows of a database
    # made before, in two commits of their own (a multi-file commit is not atomic in WAL).
    inbox.pair(db.conn)


def _call_owners(db: sqlite_utils.Database) -> None:
    # Calls whose message id is claimed but that leave no row of their own to find it by
    # (an identify naming only its anonymous id, an alias call): who each one names, so
    # that deleting that person (`users delete`) or retention releases the message id.
    # Calls indexed before this migration are not listed: nothing names their person.
    db.execute(
        """
        CREATE TABLE call_owners (
            app_id TEXT NOT NULL,
            person TEXT NOT NULL,
            kind INTEGER NOT NULL,
            message_id TEXT NOT NULL,
            ts INTEGER NOT NULL,
            PRIMARY KEY (app_id, person, kind, message_id)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX call_owners_ts ON call_owners(app_id, ts)")


MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "initial schema", _initial),
    (2, "query summaries: person_event_stats, covering event indexes", _query_summaries),
    (3, "drop events_anonymous_id (the person index covers it)", _drop_anonymous_id_index),
    (4, "narrow events_person to (app_id, person)", _narrow_person_index),
    (5, "meta table with the cursor-signing secret", _meta),
    (6, "inbox and message_ids: accept now, index later", _inbox),
    (7, "user_aliases: alias calls from other products' libraries", _user_aliases),
    (8, "rules: a removed rule's id is never given to a new one", _rule_ids_never_reused),
    (9, "dashboard: admins, their sessions, saved segments, bot events index", _dashboard),
    (10, "visits and hits: the web analytics model", _visits),
    (11, "events_event_ts covers properties", _properties_in_event_index),
    (12, "persons: who a segment's scope holds, kept at indexing", _persons),
    (13, "visit_days: a version per day of visits, for the figures' cache", _visit_days),
    (15, "rate_buckets: limits every worker shares (dashboard logins)", _rate_buckets),
    (16, "the accept path's tables in their own file, <db>-inbox", _accept_path_in_its_own_file),
    (17, "call_owners: the person an unstored call's message id belongs to", _call_owners),
]
