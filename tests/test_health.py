"""/healthz/live and /healthz/ready: a load balancer's two questions, on both backends."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from collector.settings import DEFAULT_MAX_BACKLOG, Settings
from collector.store import Store
from collector.web.app import create_app
from tests.pgcluster import PostgresCluster, find_bindir


def test_live_answers_while_the_process_serves(client: TestClient) -> None:
    for path in ("/healthz", "/healthz/live"):
        r = client.get(path)
        assert r.status_code == 200
        assert r.json()["ok"] is True


def served_store(client: TestClient) -> Store:
    """The store of the app the client serves (not the test's own `store`)."""
    found: Store = client.app.state.collector.store  # type: ignore[attr-defined]
    return found


def test_ready_when_the_database_answers_and_the_backlog_is_bounded(
    client: TestClient,
) -> None:
    r = client.get("/healthz/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True
    assert body["backlog"] == 0
    assert body["max_backlog"] == DEFAULT_MAX_BACKLOG


def test_not_ready_when_the_database_cannot_be_reached(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> dict[str, int]:
        raise OSError("connection refused")

    monkeypatch.setattr(served_store(client), "ready", unreachable)
    r = client.get("/healthz/ready")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["reasons"] == ["database unreachable: connection refused"]
    assert client.get("/healthz/live").status_code == 200  # alive all the same


def test_not_ready_when_the_backlog_is_over_twice_its_bound(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        served_store(client), "ready", lambda: {"backlog": 100_001, "max_backlog": 50_000}
    )
    r = client.get("/healthz/ready")
    assert r.status_code == 503
    assert r.json()["reasons"] == ["backlog 100001 is over twice its bound 50000"]
    monkeypatch.setattr(
        served_store(client), "ready", lambda: {"backlog": 100_000, "max_backlog": 50_000}
    )
    assert client.get("/healthz/ready").status_code == 200


@pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries")
def test_a_stopped_postgresql_is_not_ready() -> None:
    """Against a real server that stops: ready turns 503, then 200 once it is back."""
    with PostgresCluster() as cluster:
        url = cluster.create_database()
        with TestClient(create_app(Settings(db=url)), raise_server_exceptions=False) as c:
            assert c.get("/healthz/ready").status_code == 200
            cluster.stop(remove=False, mode="immediate")
            r = c.get("/healthz/ready")
            assert r.status_code == 503
            assert r.json()["reasons"][0].startswith("database unreachable: cannot connect")
            assert "password" not in r.text
            cluster.start()
            assert c.get("/healthz/ready").status_code == 200
