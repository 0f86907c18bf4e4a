"""The ingest benchmark measures what it says: every event it sends is new, so each one
the collector acknowledges is inserted (not answered as a duplicate)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from bench.ingest_bench import _LUA_BATCH, _LUA_SINGLE, _acked, _wrk_once, bench_app
from tests.server import CollectorProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]


def test_bench_events_are_all_new(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    app, browser, server_key = bench_app(db)
    with CollectorProcess(db, workers=2) as server:
        # Two runs of each script: ids must differ between wrk's threads and between runs.
        acked = 0.0
        for _ in range(2):
            single = _wrk_once(server.url, _LUA_SINGLE % {"app_id": app["app_id"]}, browser, 1, 4)
            batch = _wrk_once(server.url, _LUA_BATCH % {"size": 5}, server_key, 1, 4)
            assert single["non2xx"] == 0 and batch["non2xx"] == 0
            acked += _acked(single) + _acked(batch) * 5
    with sqlite3.connect(db) as conn:
        stored, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM events"
        ).fetchone()
    assert acked > 0
    assert stored == distinct
    # wrk does not read the answers still in flight when it stops, so a few more may be stored.
    assert stored >= acked
