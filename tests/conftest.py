from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import psycopg_pool.base
import pytest
from starlette.testclient import TestClient

from collector import native
from collector.models import App
from collector.settings import Settings
from collector.store import Store, open_store
from collector.web.app import create_app

ORIGIN = "https://shop.example.com"
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)


def pytest_report_header() -> str:
    # Which build the run tests: `make test` runs whichever is there (`make native`
    # compiles the hot modules; CI does, then tests).
    return f"collector's hot modules: {native.status()} (collector/native.py)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(pytest_report_header())


# psycopg_pool draws from the `random` module's shared generator, in its worker threads,
# each time it opens a connection (a jitter on the connection's lifetime). Hypothesis
# checks that the shared generator is untouched while it draws a test's arguments: a
# pool growing in the background at that moment failed a PostgreSQL property test once
# in a while (a HypothesisDeprecationWarning, then "Flaky" when the replay passed). The
# pool's jitter gets a generator of its own in tests.
psycopg_pool.base.random = random.Random().random  # type: ignore[attr-defined]

# Every test that takes `db` (or `store`, `client`, …) runs once per backend: an embedded
# SQLite file, and a fresh database on a throwaway PostgreSQL server.
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The test's database: a SQLite path or a postgresql:// URL."""
    if backend == "sqlite":
        return str(tmp_path / "telltale.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file, for what only SQLite has (its file, its lock, its migrations)."""
    return tmp_path / "telltale.db"


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = open_store(db)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def app(store: Store) -> App:
    created = store.create_app("Shop", [ORIGIN, "https://*.example.org"], {"rate_limit_ip": 0})
    store.add_rule(created.app_id, "confirmation", dedupe_key="orderId")
    store.add_rule(created.app_id, "email_opened", throttle_ms=20 * 60 * 1000)
    found = store.get_app(created.app_id)
    assert found is not None
    return found


@pytest.fixture
def key(store: Store, app: App) -> str:
    return store.create_key(app.app_id)[1]


@pytest.fixture
def client(db: str, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(db=db)), raise_server_exceptions=False) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def browser(origin: str = ORIGIN, ua: str = CHROME_UA) -> dict[str, str]:
    return {
        "Origin": origin,
        "User-Agent": ua,
        "Accept-Language": "en-GB,en;q=0.9",
        "Content-Type": "text/plain;charset=UTF-8",
    }


# PostgreSQL: one throwaway server for the whole session, a fresh database for each test.
# (Imported here, not at the top, so that this block stays self-contained.)
from tests.pgcluster import PostgresCluster, find_bindir  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A started PostgreSQL server, stopped and deleted at the end of the session."""
    if find_bindir() is None:
        pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (make apt)")
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)
