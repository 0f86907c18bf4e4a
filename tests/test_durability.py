"""The promise behind "on disk before answered": every group commit runs on a connection
that waits for durability (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`),
also after the indexer used that connection. On SQLite, both files: the group commit's
(`DB-inbox`) and the database, where indexing records how far it got before the inbox
rows it consumed are deleted."""

from __future__ import annotations

from typing import Any

import pytest

from collector.models import App
from collector.store import Store, core, is_url
from tests.factories import ev

DURABLE = {"sqlite": (2, 2), "postgres": "on"}  # PRAGMA synchronous: 2 is FULL


def _setting(conn: Any, db: str) -> Any:
    if is_url(db):
        return conn.execute("SHOW synchronous_commit").fetchone()[0]
    return tuple(
        conn.execute(f"PRAGMA {schema}.synchronous").fetchone()[0] for schema in ("main", "inbox")
    )


def test_every_group_commit_runs_durable(
    store: Store, app: App, db: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    accept = core.accept

    def spy(primitives: Any, events: Any) -> Any:
        # Inside the write transaction, on its connection: what its COMMIT will obey.
        seen.append(_setting(primitives.conn, db))
        return accept(primitives, events)

    monkeypatch.setattr(core, "accept", spy)
    for i in range(3):
        outcomes = store.write([ev(app.app_id, "durable", 1_000 + i, user="u")])
        assert [o.status for o in outcomes] == ["accepted"]
        assert store.index_all() == 1  # the indexer's relaxed transactions in between
    assert seen == [DURABLE[backend]] * 3


def test_sqlite_indexing_commits_durable_before_it_deletes_what_it_consumed(
    store: Store, app: App, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indexed rows and the watermark commit in the database, then the consumed inbox
    rows are deleted in the inbox file, whose commit syncs only itself: an indexing
    commit without its fsync could be lost after that deletion was not."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL indexes in the one database")
    from collector.store.sqlite import store as sqlite_store

    seen: list[Any] = []
    write_planned = sqlite_store._write_planned

    def spy(conn: Any, planned: Any) -> Any:
        seen.append(conn.execute("PRAGMA main.synchronous").fetchone()[0])
        return write_planned(conn, planned)

    monkeypatch.setattr(sqlite_store, "_write_planned", spy)
    store.write([ev(app.app_id, "durable", 1_000, user="u")])
    assert store.index_all() == 1
    assert seen == [2]
