"""Versioned schema migrations for PostgreSQL. Append only: a released migration never
changes. Numbered on their own: the SQLite backend has its own list.

`migrate` applies the pending ones in one transaction under an advisory lock, so
collectors that start together against a new database migrate it once: the others wait
on the lock, then find every version recorded."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from collector.store import visits as visit_model
from collector.store.postgres import visits

# Fixed and arbitrary: every collector must use the same key.
MIGRATE_LOCK = 0x7E11_7A1E_0001

_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
)

# The SQLite schema's tables and columns with PostgreSQL types: JSON as jsonb, times as
# bigint epoch ms, is_bot smallint 0|1 (the query layer compares it with integers).
_INITIAL = """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE apps (
    app_id text PRIMARY KEY, name text NOT NULL, origins jsonb NOT NULL,
    settings jsonb NOT NULL, created_at text NOT NULL
);
CREATE TABLE api_keys (
    key_id text PRIMARY KEY, app_id text NOT NULL REFERENCES apps(app_id),
    key_hash text NOT NULL UNIQUE, prefix text, created_at text NOT NULL, revoked_at text
);
-- An identity: a removed rule's id is never given to a new rule, whose state would
-- otherwise start from the old rule's rule_state rows.
CREATE TABLE rules (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id text NOT NULL REFERENCES apps(app_id), event text NOT NULL, kind text NOT NULL,
    dedupe_key text, throttle_ms bigint, created_at text NOT NULL
);
-- Events get their seq when they are indexed; indexing is serialised (an advisory
-- lock), so seq grows in commit order: what a live stream resumes after.
CREATE SEQUENCE event_seq;
CREATE TABLE events (
    seq bigint NOT NULL,
    id text NOT NULL, app_id text NOT NULL, message_id text, event text NOT NULL,
    user_id text, anonymous_id text,
    person text NOT NULL,
    ts bigint NOT NULL,
    "timestamp" text, sent_at text, received_at bigint NOT NULL,
    properties jsonb NOT NULL, context jsonb NOT NULL, is_bot smallint NOT NULL DEFAULT 0
) PARTITION BY RANGE (ts);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_person ON events (app_id, person);
CREATE INDEX events_event_ts ON events (app_id, event, ts) INCLUDE (person, is_bot);
CREATE INDEX events_ts ON events (app_id, ts);
CREATE INDEX events_seq ON events (seq);
CREATE TABLE identifies (
    id text NOT NULL, app_id text NOT NULL, message_id text, user_id text NOT NULL,
    anonymous_id text, traits jsonb NOT NULL, ts bigint NOT NULL, received_at bigint NOT NULL,
    context jsonb NOT NULL
);
CREATE INDEX identifies_user ON identifies (app_id, user_id);
CREATE TABLE users (
    app_id text NOT NULL, user_id text NOT NULL, traits jsonb NOT NULL DEFAULT '{}',
    first_seen bigint NOT NULL, last_seen bigint NOT NULL, PRIMARY KEY (app_id, user_id)
);
CREATE TABLE identities (
    app_id text NOT NULL, anonymous_id text NOT NULL, user_id text NOT NULL,
    linked_at bigint NOT NULL, PRIMARY KEY (app_id, anonymous_id)
);
CREATE INDEX identities_user ON identities (app_id, user_id);
CREATE TABLE rule_state (
    rule_id bigint NOT NULL, key text NOT NULL, last_ts bigint NOT NULL,
    PRIMARY KEY (rule_id, key)
);
CREATE TABLE discards (
    app_id text NOT NULL, day text NOT NULL, reason text NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (app_id, day, reason)
);
CREATE TABLE person_event_stats (
    app_id text NOT NULL, person text NOT NULL, event text NOT NULL, is_bot smallint NOT NULL,
    n bigint NOT NULL, first_ts bigint NOT NULL, last_ts bigint NOT NULL,
    PRIMARY KEY (app_id, event, person, is_bot)
);
CREATE INDEX person_event_stats_person ON person_event_stats (app_id, person);
-- One row per accepted group: collector/store/codec.py's encode(), n events.
CREATE TABLE inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n integer NOT NULL, data bytea NOT NULL
);
CREATE TABLE message_ids (
    app_id text NOT NULL, kind smallint NOT NULL, message_id text NOT NULL,
    event_id text NOT NULL, PRIMARY KEY (app_id, kind, message_id)
);

-- RFC 7396 JSON merge patch, as SQLite's json_patch: a null removes a member, an object
-- merges into an object member, anything else replaces. PL/pgSQL rather than SQL: a
-- SQL function's body is checked at creation, before it exists to call itself.
CREATE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    merged jsonb;
    item record;
BEGIN
    IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
        RETURN patch;
    END IF;
    merged := CASE WHEN jsonb_typeof(target) = 'object' THEN target ELSE '{}' END;
    FOR item IN SELECT key, value FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(item.value) = 'null' THEN
            merged := merged - item.key;
        ELSE
            merged := merged
                || jsonb_build_object(item.key, jsonb_merge_patch(merged -> item.key, item.value));
        END IF;
    END LOOP;
    RETURN merged;
END $$;
"""


def _initial(conn: psycopg.Connection[Any]) -> None:
    conn.execute(_INITIAL)
    # Signs query cursors: the same for every collector sharing the database.
    conn.execute("INSERT INTO meta VALUES ('secret', %s)", (secrets.token_hex(32),))


# The usual group commit in one statement, so in one round trip with its commit
# (primitives.accept_plain): the claims, then the inbox row only if every claim was
# new; otherwise it raises ACCEPT_REPEATS, which rolls the claims back, and the caller
# judges the group in a transaction of its own. The arrays come sorted by key, as
# every writer's claims do, so two groups never deadlock on them.
ACCEPT_REPEATS = "TT001"
_ACCEPT_PLAIN = f"""
CREATE FUNCTION accept_plain(
    app_ids text[], kinds smallint[], message_ids text[], event_ids text[],
    events integer, data bytea
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    claimed bigint;
BEGIN
    INSERT INTO message_ids (app_id, kind, message_id, event_id)
        SELECT * FROM unnest(app_ids, kinds, message_ids, event_ids)
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF claimed <> cardinality(message_ids) THEN
        RAISE EXCEPTION 'a message id of the group is taken' USING ERRCODE = '{ACCEPT_REPEATS}';
    END IF;
    INSERT INTO inbox (n, data) VALUES (events, data);
END $$;
"""


def _accept_plain(conn: psycopg.Connection[Any]) -> None:
    conn.execute(_ACCEPT_PLAIN)


def _user_aliases(conn: psycopg.Connection[Any]) -> None:
    # Alias calls (Segment, PostHog): previous user id → the user it now counts for
    # (core.apply_aliases).
    conn.execute(
        "CREATE TABLE user_aliases ("
        " app_id text NOT NULL, previous_id text NOT NULL, user_id text NOT NULL,"
        " aliased_at bigint NOT NULL, PRIMARY KEY (app_id, previous_id))"
    )
    conn.execute("CREATE INDEX user_aliases_user ON user_aliases (app_id, user_id)")


def _dashboard(conn: psycopg.Connection[Any]) -> None:
    # Dashboard accounts, their sessions (by the SHA-256 of the token), saved segments.
    conn.execute(
        "CREATE TABLE admins ("
        " email text PRIMARY KEY, password_hash text NOT NULL, created_at text NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE admin_sessions ("
        " token_hash text PRIMARY KEY, email text NOT NULL REFERENCES admins(email),"
        " created_at bigint NOT NULL, expires_at bigint NOT NULL)"
    )
    conn.execute("CREATE INDEX admin_sessions_email ON admin_sessions (email)")
    conn.execute(
        "CREATE TABLE saved_segments ("
        " segment_id text PRIMARY KEY, app_id text NOT NULL REFERENCES apps(app_id),"
        " name text NOT NULL, rules jsonb NOT NULL, created_at text NOT NULL)"
    )
    conn.execute("CREATE INDEX saved_segments_app ON saved_segments (app_id, name)")
    # Bot events alone, by time: every page counts what it filters out, by reason.
    conn.execute("CREATE INDEX events_bots ON events (app_id, ts) WHERE is_bot = 1")


def _visits(conn: psycopg.Connection[Any]) -> None:
    # Visits and the narrow copy of events they are counted from (store/visits.py),
    # computed for the events already stored.
    for statement in visits.SCHEMA:
        conn.execute(statement)
    visits.rebuild(conn)


def _persons(conn: psycopg.Connection[Any]) -> None:
    # Who a segment's scope holds, kept at indexing (as SQLite's migration 12 says):
    # whoever has events (`human`: some not from a bot, `bot`: some from one) and every
    # identified user (`known`: has a users row).
    conn.execute(
        "CREATE TABLE persons ("
        " app_id text NOT NULL, person text NOT NULL, human smallint NOT NULL,"
        " bot smallint NOT NULL, known smallint NOT NULL, PRIMARY KEY (app_id, person))"
    )
    conn.execute(
        "INSERT INTO persons (app_id, person, human, bot, known) "
        "SELECT app_id, person, max(human), max(bot), max(known) FROM ("
        " SELECT app_id, person, max(CASE WHEN is_bot = 0 THEN 1 ELSE 0 END) AS human,"
        " max(is_bot) AS bot, 0 AS known FROM person_event_stats GROUP BY app_id, person"
        " UNION ALL SELECT app_id, user_id, 0, 0, 1 FROM users"
        ") AS found GROUP BY app_id, person"
    )


def _rate_buckets(conn: psycopg.Connection[Any]) -> None:
    # Shared rate limits (ingest/ratelimit.py). UNLOGGED: a bucket is worth nothing after
    # a crash (a full bucket is what an empty table means), so its updates, several a
    # second from every collector, write no WAL.
    conn.execute(
        "CREATE UNLOGGED TABLE rate_buckets ("
        " key text PRIMARY KEY, tokens float8 NOT NULL, rate float8 NOT NULL,"
        " cap float8 NOT NULL, updated float8 NOT NULL)"
    )


def _visit_days(conn: psycopg.Connection[Any]) -> None:
    # As SQLite's migration 13: a version per (app, day of visit start).
    conn.execute(visit_model.VISIT_DAYS_SCHEMA)
    conn.execute(
        "INSERT INTO visit_days (app_id, day, version) "
        f"SELECT app_id, start_ts / {visit_model.DAY_MS}, 1 FROM visits GROUP BY 1, 2 "
        "ON CONFLICT DO NOTHING"
    )


def _fillfactor(conn: psycopg.Connection[Any]) -> None:
    # Indexing updates a person's visit and summary rows on nearly every event, never
    # their indexed columns: with room left in each page, PostgreSQL writes the new
    # version beside the old (a HOT update) and touches no index: indexing 25,000 server
    # events for 100,000 users, the visits write went from 18.9 to 15.1-16.5 µs an event
    # and the summaries' from 15.2 to 10.2-10.8 (docs/benchmarks.md). Pages written from
    # now on keep the room; a table rewrite (VACUUM FULL) would give it to the old ones,
    # under an exclusive lock, and is left to the operator.
    for table in ("visits", "person_event_stats"):
        conn.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def _call_owners(conn: psycopg.Connection[Any]) -> None:
    # As SQLite's migration 17: the person an identify naming only its anonymous id, or
    # an alias call, belongs to, so that `users delete` and retention release its
    # message id (such a call leaves no row of its own to find it by).
    conn.execute(
        "CREATE TABLE call_owners ("
        " app_id text NOT NULL, person text NOT NULL, kind smallint NOT NULL,"
        " message_id text NOT NULL, ts bigint NOT NULL,"
        " PRIMARY KEY (app_id, person, kind, message_id))"
    )
    conn.execute("CREATE INDEX call_owners_ts ON call_owners (app_id, ts)")


MIGRATIONS: list[tuple[int, str, Callable[[psycopg.Connection[Any]], None]]] = [
    (1, "initial schema", _initial),
    (2, "accept_plain: the usual group commit in one statement", _accept_plain),
    (3, "user_aliases: alias calls from other products' libraries", _user_aliases),
    (4, "dashboard: admins, their sessions, saved segments, bot events index", _dashboard),
    (5, "visits and hits: the web analytics model", _visits),
    (6, "persons: who a segment's scope holds, kept at indexing", _persons),
    (7, "rate_buckets: rate limits shared by every collector", _rate_buckets),
    (8, "visit_days: a version per day of visits, for the figures' cache", _visit_days),
    (9, "fillfactor 70 on the rows indexing updates in place", _fillfactor),
    (10, "call_owners: the person an unstored call's message id belongs to", _call_owners),
]


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply the pending migrations in one transaction; return the schema version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute(_SCHEMA_MIGRATIONS)
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, apply in MIGRATIONS:
            if version in done:
                continue
            apply(conn)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                (version, name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            done.add(version)
    return max(done, default=0)
