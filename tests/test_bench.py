"""The ingest benchmark measures what it says: every event it sends is new, so each one
the collector acknowledges is inserted (not answered as a duplicate)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx
import pytest

from bench.ingest_bench import (
    _LUA_BATCH,
    _LUA_SINGLE,
    _acked,
    _Uvicorn,
    _wrk_once,
    bench_app,
)
from tests.server import CollectorProcess, index_all

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
    index_all(db)
    with sqlite3.connect(db) as conn:
        stored, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM events"
        ).fetchone()
        singles = [
            r[0]
            for r in conn.execute("SELECT message_id FROM events WHERE event = ?", ("page_viewed",))
        ]
    assert acked > 0
    assert stored == distinct
    # wrk does not read the answers still in flight when it stops, so a few more may be stored.
    assert stored >= acked
    # Like the SDK's version 7 UUIDs, one client's ids sort in the order they were made
    # (start time, run token, counter, wrk thread).
    by_client: dict[tuple[str, ...], list[str]] = {}
    for mid in singles:
        start, token, _counter, thread = mid.split("-")
        by_client.setdefault((start, token, thread), []).append(mid)
    assert len(by_client) == 4  # two runs of two wrk threads
    for ids in by_client.values():
        assert sorted(ids) == sorted(ids, key=lambda mid: int(mid.split("-")[2]))


def test_without_storage_answers_like_the_collector_and_stores_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    app, browser, _ = bench_app(db)
    event = {"app_id": app["app_id"], "event": "page_viewed", "anonymous_id": "a1"}
    with _Uvicorn("bench.without_storage:app_from_env", factory=True, db=db) as nostore:
        accepted = httpx.post(nostore.url + "/v1/event", json=event, headers=browser)
        # The rest of the pipeline still runs: a wrong origin is refused as by the collector.
        refused = httpx.post(
            nostore.url + "/v1/event", json=event, headers={**browser, "Origin": "https://x.test"}
        )
    assert accepted.status_code == 202 and accepted.json()["event_id"].startswith("evt_")
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "origin"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 0
