"""The throwaway PostgreSQL cluster (tests/pgcluster.py) works, and cleans up after itself."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Literal

import psycopg
import pytest

from tests.pgcluster import PostgresCluster, PostgresClusterError, find_bindir

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries")


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout} s: {condition}"
        time.sleep(0.01)


def test_a_database_answers_queries_with_durable_settings(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # The defaults the collector's durability promise relies on.
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)


def test_databases_are_independent(pg_cluster: PostgresCluster) -> None:
    first, second = pg_cluster.create_database(), pg_cluster.create_database()
    try:
        assert first != second
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
        with psycopg.connect(second) as conn:
            found = conn.execute("SELECT to_regclass('t')").fetchone()
            assert found == (None,)
    finally:
        pg_cluster.drop_database(first)
        pg_cluster.drop_database(second)


def test_drop_database_ends_open_sessions(pg_cluster: PostgresCluster) -> None:
    url = pg_cluster.create_database("left_open")
    assert url == pg_cluster.url_for("left_open")
    forgotten = psycopg.connect(url)
    try:
        # Without FORCE: "database is being accessed by other users".
        pg_cluster.drop_database("left_open")
        with pytest.raises(psycopg.OperationalError):  # the server ended its session
            forgotten.execute("SELECT 1")
    finally:
        forgotten.close()
    with psycopg.connect(pg_cluster.url) as conn:
        names = conn.execute("SELECT datname FROM pg_database").fetchall()
    assert ("left_open",) not in names
    pg_cluster.drop_database("left_open")  # dropping it again does nothing


def test_leaving_the_block_stops_the_server_and_removes_its_folder() -> None:
    with PostgresCluster() as cluster:
        root, port = cluster.root, cluster.port
        assert root is not None and (root / "data" / "PG_VERSION").exists()
        assert accepts_connections(port)
    assert not root.exists()
    wait_for(lambda: not accepts_connections(port))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url, connect_timeout=5)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restart_keeps_committed_rows(mode: Literal["fast", "immediate"]) -> None:
    with PostgresCluster() as cluster:
        url = cluster.create_database()
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        # immediate is a crash: no checkpoint, so the rows come back from the WAL.
        cluster.stop(remove=False, mode=mode)
        assert cluster.root is not None and cluster.root.exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=5)
        cluster.start()
        with psycopg.connect(url) as conn:  # same URL: same port, same data
            assert conn.execute("SELECT count(*), sum(x) FROM t").fetchone() == (1000, 500500)


def test_a_failed_start_reports_the_server_log() -> None:
    cluster = PostgresCluster(max_connections=0)  # the server refuses this setting
    try:
        with pytest.raises(PostgresClusterError, match="max_connections") as failure:
            cluster.start()
        assert "pg_ctl start failed" in str(failure.value)
    finally:
        root = cluster.root
        cluster.stop()
    assert root is not None and not root.exists()
