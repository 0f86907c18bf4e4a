"""The promise behind "on disk before answered": every group commit runs on a connection
that waits for durability (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`),
also after the indexer, which relaxes it for its own transactions, used that connection."""

from __future__ import annotations

from typing import Any

import pytest

from collector.models import App
from collector.store import Store, core, is_url
from tests.factories import ev

DURABLE = {"sqlite": 2, "postgres": "on"}  # PRAGMA synchronous: 2 is FULL


def _setting(conn: Any, db: str) -> Any:
    if is_url(db):
        return conn.execute("SHOW synchronous_commit").fetchone()[0]
    return conn.execute("PRAGMA synchronous").fetchone()[0]


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
