"""`collector backup PATH`: a consistent copy of a SQLite database while it is served.

SQLite's online backup API (`sqlite3.Connection.backup`) copies every page in one step,
inside one read transaction: in WAL mode the workers and the indexer keep writing
meanwhile, and the copy is the database as of the moment that transaction began,
including accepted events the indexer has not reached yet (they are indexed when the
copy is served). The copy is written beside PATH and renamed into place, so PATH is
never a half-written file.

PostgreSQL has its own tool for this: `pg_dump --format=custom` and `pg_restore`
(docs/operations.md, Backups)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def backup_sqlite(source: str | Path, target: str | Path) -> int:
    """Copy the SQLite database `source` to `target` (which must not exist); its size in
    bytes."""
    src_path = Path(source).expanduser().resolve()
    dst_path = Path(target).expanduser().resolve()
    if not src_path.exists():
        raise FileNotFoundError(f"no database at {src_path}")
    if dst_path.exists():
        raise FileExistsError(f"{dst_path} exists already")
    if dst_path == src_path:
        raise ValueError("the backup would overwrite the database")
    partial = dst_path.with_name(f".{dst_path.name}.partial")
    partial.unlink(missing_ok=True)
    # Read-only: a backup never writes to the database it copies.
    src = sqlite3.connect(f"{src_path.as_uri()}?mode=ro", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 10000")
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: every page in one step, one snapshot
            # A single file to copy or serve: leave WAL mode, so no -wal file belongs to it.
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy does not check out: {check}")
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(partial, dst_path)
    return dst_path.stat().st_size
