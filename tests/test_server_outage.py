"""A real collector whose PostgreSQL goes away under load and comes back: meanwhile it
answers 503 with Retry-After (never a 5xx without it, never a traceback), then recovers
on its own, and every event it acknowledged is stored exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.dbrows import rows
from tests.pgcluster import PostgresCluster, find_bindir
from tests.server import CollectorProcess, create_app, index_all

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries"),
]


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    """A server of this test's own: it is stopped mid-test."""
    with PostgresCluster() as cluster:
        yield cluster


class Load:
    """Four clients posting batches of unique events; what each answer was."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.acked: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.bad: list[str] = []  # answers that break the contract
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(4)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                mids = [uuid.uuid4().hex for _ in range(10)]
                body = {"events": [{"event": "e", "user": "u", "message_id": m} for m in mids]}
                r = client.post("/v1/events", json=body, headers=headers)
                self.statuses[r.status_code] += 1
                if r.status_code == 202:
                    self.acked.extend(mids)
                elif r.status_code != 503 or "retry-after" not in r.headers:
                    self.bad.append(f"{r.status_code} {r.text[:200]}")

    def wait(self, condition: str, test: object, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not test():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out waiting for {condition}"
            self.stop.wait(0.02)  # polling the answers so far


def test_postgresql_down_under_load_then_back(own_cluster: PostgresCluster) -> None:
    db = own_cluster.create_database("outage")
    # No limits: while the database is down the 503s come back in a millisecond, and four
    # clients posting without a pause then pass the app's events budget (a 429 is right
    # there, but not what this test is about).
    app = create_app(
        db,
        "outage",
        "--rate-limit-app",
        "0",
        "--rate-limit-ip",
        "0",
        "--rate-limit-events",
        "0",
    )
    with CollectorProcess(db, workers=2) as server, Load(server.url, app["api_key"]) as load:
        load.wait("events acknowledged", lambda: len(load.acked) >= 500)
        own_cluster.stop(remove=False, mode="immediate")  # as if the server crashed
        load.wait("503 answers", lambda: load.statuses[503] >= 20)
        acked_while_down = len(load.acked)
        own_cluster.start()
        load.wait("recovery", lambda: len(load.acked) >= acked_while_down + 500)
        load.stop.set()
    assert not load.bad, load.bad[:5]
    index_all(db)
    stored = [r[0] for r in rows(db, "SELECT message_id FROM events")]
    assert len(stored) == len(set(stored))
    missing = set(load.acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"


def test_a_restart_while_idle_costs_no_request_a_503(
    own_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pools' connections all die with a restart; the first request after it must
    not take the server for down. (Every connection counts as stale here, so the test
    needs no idle wait.)"""
    from collector.store import open_store
    from collector.store.postgres import connections

    monkeypatch.setattr(connections, "STALE_S", 0.0)
    store = open_store(own_cluster.create_database())
    try:
        store.migrate()
        app = store.create_app("Shop", [], {})
        assert store.get_app(app.app_id) is not None  # the pool has its connections now
        own_cluster.stop(remove=False)
        own_cluster.start()
        # Each read would be a 503 if a dead pooled connection were taken for the server.
        for _ in range(3):
            assert store.get_app(app.app_id) is not None
    finally:
        store.close()
