"""The ingest benchmark measures what it says: every event it sends is new, so each one
the collector acknowledges is inserted (not answered as a duplicate); its baselines are
served exactly as the collector is; its sustained runs keep every window's figures."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import abuse_bench, backends
from bench.ingest_bench import (
    _LUA_BATCH,
    _LUA_SINGLE,
    QUANTILES,
    _acked,
    _Uvicorn,
    _wrk_once,
    bench_app,
    merged_quantile,
    report,
    run,
)
from bench.serve import config as bench_config
from collector import cli
from collector.settings import Settings
from tests.dbrows import scalar
from tests.pgcluster import find_bindir
from tests.server import CollectorProcess, index_all

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def test_targets_are_served_with_the_collectors_uvicorn_settings() -> None:
    collector = cli.uvicorn_config(Settings())  # what `collector serve` hands to uvicorn
    bench = bench_config("bench.bare_app:app", factory=False)
    assert bench.proxy_headers is False and bench.server_header is False
    different = {"app", "factory", "host", "port"}
    theirs = {k: v for k, v in vars(collector).items() if k not in different}
    ours = {k: v for k, v in vars(bench).items() if k not in different}
    assert ours == theirs


@pytest.mark.slow
def test_bare_endpoint_answers_as_the_collector_serves(tmp_path: Path) -> None:
    with _Uvicorn("bench.bare_app:app") as bare:
        r = httpx.post(bare.url + "/v1/event", content=b'{"a": 1}')
    assert r.status_code == 202 and r.json() == {"success": True, "n": 1}
    assert "server" not in r.headers  # uvicorn's default server header is off, as served


def _window(requests: float, latency_ms: float) -> dict[str, Any]:
    return {"requests": requests, "quantiles_us": [latency_ms * 1000] * len(QUANTILES)}


def test_merged_quantile_weighs_windows_by_their_requests() -> None:
    fast, slow = _window(990, 1.0), _window(10, 500.0)
    assert merged_quantile([fast, slow], 50) == 1.0
    assert merged_quantile([fast, slow], 99) == 1.0
    assert merged_quantile([fast, slow], 99.5) == 500.0
    assert merged_quantile([slow, fast], 99.5) == 500.0
    # One window: its own quantiles, read at the steps.
    ramp = {"requests": 1000, "quantiles_us": [p * 1000 for p in QUANTILES]}
    assert merged_quantile([ramp], 99) == 99.0
    assert merged_quantile([ramp], 99.95) == 99.95
    assert merged_quantile([], 99) == 0.0


def test_backends_chosen_by_url(monkeypatch: pytest.MonkeyPatch) -> None:
    databases, _ = backends.select(["sqlite", "/data/kept.db", "postgres://127.0.0.1/bench"])
    assert [(d.backend.name, d.url) for d in databases] == [
        ("SQLite", ""),
        ("SQLite", "/data/kept.db"),
        ("PostgreSQL", "postgres://127.0.0.1/bench"),
    ]
    # By default, a scratch database of every backend, side by side.
    assert [d.backend.name for d in backends.select([])[0]] == ["SQLite", "PostgreSQL"]
    with pytest.raises(SystemExit, match="no backend takes it"):
        backends.select(["mysql://127.0.0.1/bench"])
    # A backend the collector cannot serve yet is skipped, and the output says so.
    pending = tuple(
        dataclasses.replace(b, available=b.name != "PostgreSQL") for b in backends.BACKENDS
    )
    monkeypatch.setattr(backends, "BACKENDS", pending)
    databases, skipped = backends.select([])
    assert [d.backend.name for d in databases] == ["SQLite"]
    assert skipped == [
        "PostgreSQL: not run, the collector has no PostgreSQL backend yet (bench/backends.py)"
    ]
    with pytest.raises(SystemExit, match="nothing to run on: PostgreSQL: not run"):
        backends.select(["postgresql://127.0.0.1/bench"])


@pytest.mark.slow
@needs_wrk
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
            assert len(single["quantiles_us"]) == len(QUANTILES)
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


@pytest.mark.slow
@needs_wrk
@pytest.mark.parametrize(
    "backend",
    [
        "SQLite",
        pytest.param(
            "PostgreSQL",
            marks=pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server"),
        ),
    ],
)
def test_sustained_run_in_windows_stores_every_event_it_acknowledges(backend: str) -> None:
    # A scratch database: a file, or one on a throwaway PostgreSQL server.
    results = run(2, 4, batch_size=5, rounds=1, window=1, warmup=1, db_urls=[backend.lower()])
    ((name, acknowledged, stored),) = results["stored"]
    assert name == backend and acknowledged > 0
    assert stored >= acknowledged  # a few more: answers still in flight when wrk stops
    (round_,) = results["rounds"]
    for target in ("bare", f"single {backend}", f"batch {backend}"):
        windows = round_[target]["windows"]
        assert len(windows) == 2  # 2 s in windows of 1 s, on the same server
        assert round_[target]["requests"] == sum(w["requests"] for w in windows)
    batch = round_[f"batch {backend}"]
    assert batch["events_per_s"] == pytest.approx(batch["rps"] * 5)
    assert batch["query_after_load_s"] > 0 and batch["query_idle_s"] > 0
    text = report(results)
    assert "round 1, 1-s windows" in text and "segment query" in text


@pytest.mark.slow
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
    assert scalar(db, "SELECT count(*) FROM events") == 0
    assert scalar(db, "SELECT count(*) FROM inbox") == 0


def test_abuse_bench_counts_the_group_commits_between_two_readings() -> None:
    before = {
        "telltale_group_commit_seconds_count": 10.0,
        "telltale_group_commit_seconds_sum": 0.1,
        "telltale_group_commit_events_sum": 10.0,
        "over_100ms": 0.0,
    }
    after = {
        "telltale_group_commit_seconds_count": 14.0,
        "telltale_group_commit_seconds_sum": 0.5,
        "telltale_group_commit_events_sum": 4010.0,
        "over_100ms": 1.0,
    }
    assert abuse_bench.commit_stats(before, after) == {
        "commits": 4,
        "mean_events": 1000.0,
        "mean_ms": 100.0,
        "over_100ms": 1,
    }
    assert abuse_bench.commit_stats(before, before) == {"commits": 0}


@pytest.mark.slow
def test_abuse_bench_replays_an_attack_beside_the_steady_app() -> None:
    rows = abuse_bench.run(0.5, None, attacks=["ids"])
    assert [row["attack"] for row in rows] == ["none (unloaded)", "ids", "end"]
    for row in rows[:2]:
        assert row["requests"] > 0 and row["success"] == 1.0, row
        assert row["commits"]["commits"] > 0, row  # the steady app's events were committed
    assert rows[1]["attacker"]["requests"] > 0
    assert "ids" in abuse_bench.report(rows)
