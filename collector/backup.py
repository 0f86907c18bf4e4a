"""`collector backup PATH`: a consistent copy of a SQLite database while it is served.

A SQLite database is two files: the database and `<db>-inbox` beside it, the group
commit's own (store/sqlite/inbox.py). The copy is two files too, PATH and PATH-inbox,
made with SQLite's online backup API (`sqlite3.Connection.backup`), each in one step,
inside one read transaction over both: in WAL mode the workers and the indexer keep
writing meanwhile, and the copy is the database as of the moment that transaction began,
including accepted events the indexer has not reached yet (they are indexed when the
copy is served). Each copy is written beside its place and renamed into it, the inbox's
first, so PATH is never a half-written file nor one without its inbox.

PostgreSQL has its own tool for this: `pg_dump --format=custom` and `pg_restore`
(docs/operations.md, Backups)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from collector.store.sqlite import inbox
from collector.store.sqlite import store as sqlite_store


def backup_sqlite(source: str | Path, target: str | Path) -> int:
    """Copy the SQLite database `source` to `target` and its inbox to `target`-inbox
    (neither may exist); their size in bytes."""
    src_path = Path(source).expanduser().resolve()
    dst_path = Path(target).expanduser().resolve()
    src_inbox, dst_inbox = Path(inbox.path_of(str(src_path))), Path(inbox.path_of(str(dst_path)))
    if not src_path.exists():
        raise FileNotFoundError(f"no database at {src_path}")
    if not src_inbox.exists():
        raise FileNotFoundError(f"no {src_inbox} beside the database")
    for path in (dst_path, dst_inbox):
        if path.exists():
            raise FileExistsError(f"{path} exists already")
    if dst_path in (src_path, src_inbox):
        raise ValueError("the backup would overwrite the database")
    # Read-only: a backup never writes to the database it copies.
    src = sqlite3.connect(f"{src_path.as_uri()}?mode=ro", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 10000")
        src.execute("ATTACH ? AS inbox", (f"{src_inbox.as_uri()}?mode=ro",))
        # Both files' snapshots begin while no group commit can write the inbox (its
        # turn held for that instant): the main file's watermark then covers no event
        # whose message id, rule state or user the inbox's copy would lack, and no
        # consumed row is deleted between the two (indexing commits first, then deletes).
        turn = os.open(str(src_path) + sqlite_store.INBOX_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM inbox.inbox_meta").fetchone()
            src.execute("SELECT count(*) FROM main.meta").fetchone()
        finally:
            os.close(turn)  # and its lock with it
        try:
            size = _copy(src, "inbox", dst_inbox)
            size += _copy(src, "main", dst_path)
        finally:
            src.execute("COMMIT")
    finally:
        src.close()
    return size


def _copy(src: sqlite3.Connection, schema: str, dst_path: Path) -> int:
    partial = dst_path.with_name(f".{dst_path.name}.partial")
    partial.unlink(missing_ok=True)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst, name=schema)  # pages=-1: every page in one step, in the snapshot
        # A single file to copy or serve: leave WAL mode, so no -wal file belongs to it.
        dst.execute("PRAGMA journal_mode = DELETE")
        check = dst.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"the copy does not check out: {check}")
    finally:
        dst.close()
    os.replace(partial, dst_path)
    return dst_path.stat().st_size
