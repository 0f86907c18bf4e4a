"""The accept path's own file, `<db>-inbox`, beside the database.

SQLite has one write lock per file. The group commit (`core.accept`) writes only the
tables here: the inbox rows (accepted events waiting to be indexed), the message ids
(idempotency), the rules' state (dedupe and throttle), the users and their traits, and
the discard counters. Indexing writes the main file: its transactions hold the main
file's lock for tens to hundreds of milliseconds on a busy machine (the indexer is
preempted while it holds it), and no acknowledgement waits for them now.

The main connection ATTACHes this file as schema `inbox`; the tables here exist only
here, so SQL that names them unqualified (`users`, `message_ids`) finds them. Indexing
records how far it got (`meta.indexed_total` in the main file) in the same transaction
as the indexed rows, and deletes consumed inbox rows (`total` at or below it) afterwards
in a short transaction of this file: no step needs both files to commit together.

The file's own schema is versioned with `PRAGMA inbox.user_version`; `inbox_meta` names
the database it belongs to (`database`, equal to the main file's `meta.inbox_id`), so a
main file is never served with another database's inbox."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3

from collector.store.tables import TABLES

SUFFIX = "-inbox"
VERSION = 1
MIGRATION = 16  # the main file's migration that moved the tables here

# The accept path's tables: what `core.accept` writes, and nothing else does on its path.
TABLE_NAMES = ("message_ids", "rule_state", "users", "discards", "inbox")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox.inbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # `total`: events accepted up to and including this row, counting from the first
    # ever. A row holds at most store.INBOX_ROW events.
    "CREATE TABLE IF NOT EXISTS inbox.inbox "
    "(id INTEGER PRIMARY KEY, total INTEGER NOT NULL, data BLOB NOT NULL)",
    """
    CREATE TABLE IF NOT EXISTS inbox.message_ids (
        app_id TEXT NOT NULL,
        kind INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (app_id, kind, message_id)
    ) WITHOUT ROWID
    """,
    # Keyed by a rule's id in the main file (a removed rule's state goes with it:
    # SQLiteStore.remove_rule); a foreign key cannot cross files.
    """
    CREATE TABLE IF NOT EXISTS inbox.rule_state (
        rule_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        last_ts INTEGER NOT NULL,
        PRIMARY KEY (rule_id, key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS inbox.users (
        app_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        traits TEXT NOT NULL DEFAULT '{}',
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (app_id, user_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS inbox.discards (
        app_id TEXT NOT NULL,
        day TEXT NOT NULL,
        reason TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (app_id, day, reason)
    ) WITHOUT ROWID
    """,
)

_COLUMNS = {t.name: t.columns for t in TABLES if t.name in TABLE_NAMES}
_COLUMNS["inbox"] = ("id", "total", "data")


def path_of(db_path: str) -> str:
    return db_path + SUFFIX


def create_file(conn: sqlite3.Connection, db_path: str) -> None:
    """Make `<db>-inbox` with the main file's permissions (owner-only for a database
    `collector` created), before SQLite opens it: its WAL and shared-memory files take
    their mode from it. A database that already had its inbox (`conn`, open on it, says
    so) must find it."""
    path = path_of(db_path)
    if os.path.exists(path):
        return
    try:
        row = conn.execute("SELECT value FROM main.meta WHERE key = 'inbox_id'").fetchone()
    except sqlite3.OperationalError:  # no meta table yet: a database being made
        row = None
    if row is not None:
        raise sqlite3.DatabaseError(
            f"{path} is missing: it holds the database's accepted events, users and message "
            "ids (restore it beside the database, as `collector backup` wrote it)"
        )
    mode = os.stat(db_path).st_mode & 0o777
    with contextlib.suppress(FileExistsError):  # another process made it first
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def create_schema(conn: sqlite3.Connection) -> None:
    """The inbox file's tables, in the caller's transaction."""
    version = conn.execute("PRAGMA inbox.user_version").fetchone()[0]
    if version >= VERSION:
        return
    for sql in _SCHEMA:
        conn.execute(sql)
    conn.execute(f"PRAGMA inbox.user_version = {VERSION}")


def pair(conn: sqlite3.Connection) -> None:
    """Bind a new inbox file to its database (main migration 16), in the caller's
    transaction."""
    conn.execute("INSERT OR IGNORE INTO main.meta VALUES ('inbox_id', ?)", (secrets.token_hex(8),))
    conn.execute(
        "INSERT OR IGNORE INTO inbox.inbox_meta "
        "SELECT 'database', value FROM main.meta WHERE key = 'inbox_id'"
    )


def check_pair(conn: sqlite3.Connection, db_path: str) -> None:
    (mine,) = conn.execute("SELECT value FROM main.meta WHERE key = 'inbox_id'").fetchone()
    row = conn.execute("SELECT value FROM inbox.inbox_meta WHERE key = 'database'").fetchone()
    if row is None or row[0] != mine:
        raise sqlite3.DatabaseError(
            f"{path_of(db_path)} belongs to another database than {db_path} "
            "(restore the pair that `collector backup` wrote together)"
        )


def move_out(conn: sqlite3.Connection) -> None:
    """Move the accept path's tables from the main file, where a database from before
    migration 16 keeps them, into the inbox file. Rows are copied and committed first,
    then the main file's tables dropped: a crash between leaves both copies, and the
    next start copies again (each table has a key: nothing doubles) and drops."""
    present = [
        name
        for name in TABLE_NAMES
        if conn.execute(
            "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
    ]
    if not present:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name in present:
            columns = ", ".join(_COLUMNS[name])
            conn.execute(
                f"INSERT OR IGNORE INTO inbox.{name} ({columns}) SELECT {columns} FROM main.{name}"
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name in present:
            conn.execute(f"DROP TABLE main.{name}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
