"""The storage backends the benchmarks run on, chosen by database URL as
`collector serve --db` takes it: a SQLite file path, or a server database's URL.

    python -m bench --db-url sqlite --db-url postgresql://user@host/bench

A backend's name (`sqlite`, `postgresql`) means a scratch database made for the run and
removed after it: a file in a temporary folder for SQLite, a database on a throwaway
PostgreSQL server for PostgreSQL (tests/pgcluster.py). A URL is a database the benchmark
may write to (each run creates an app of its own in it). With no `--db-url`, a scratch
database of every backend, side by side.

Everything else goes through the collector's own entry points (`collector serve --db`,
`collector apps create --db`, and `collector.store.open_store` for reads), so a backend the
collector serves is one the benchmarks can run on: adding one is its line in `BACKENDS`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _sqlite_scratch(tmp: Path, stack: ExitStack, name: str) -> str:
    return str(tmp / f"{name}.db")


def _postgresql_scratch(tmp: Path, stack: ExitStack, name: str) -> str:
    """A database on a throwaway server of its own (tests/pgcluster.py), stopped and
    removed with `stack`."""
    from tests.pgcluster import PostgresCluster

    return stack.enter_context(PostgresCluster()).create_database(name)


@dataclass(frozen=True)
class Backend:
    name: str  # as printed
    schemes: tuple[str, ...]  # URL schemes it takes; () for SQLite's plain paths
    # Single browser events must reach this share of the bare endpoint's req/s (the issue).
    single_target: float
    # A throwaway database for `--db-url NAME` (and for a run with no --db-url).
    scratch: Callable[[Path, ExitStack, str], str]
    # False while `collector serve --db` cannot serve it: the benchmarks say so and skip it.
    available: bool = True

    @property
    def key(self) -> str:
        return self.name.lower()

    def takes(self, url: str) -> bool:
        if self.schemes:
            return url.split("://", 1)[0] in self.schemes
        return "://" not in url


BACKENDS: tuple[Backend, ...] = (
    Backend("SQLite", (), 0.60, _sqlite_scratch),
    Backend("PostgreSQL", ("postgresql", "postgres"), 0.50, _postgresql_scratch),
)


@dataclass(frozen=True)
class Database:
    backend: Backend
    url: str  # what `collector … --db` takes; "" for a scratch database not made yet

    def make(self, tmp: Path, stack: ExitStack, name: str = "bench") -> Database:
        """This database, or a scratch one if it was asked for by the backend's name:
        made in `tmp` or on a server `stack` stops."""
        if self.url:
            return self
        return Database(self.backend, self.backend.scratch(tmp, stack, name))


def select(urls: Sequence[str]) -> tuple[list[Database], list[str]]:
    """The databases to run on, and a line for each backend that will not run and why.
    No URLs: a scratch database of every backend."""
    databases: list[Database] = []
    for url in urls or [b.key for b in BACKENDS]:
        by_name = next((b for b in BACKENDS if url.lower() == b.key), None)
        backend = by_name or next((b for b in BACKENDS if b.takes(url)), None)
        if backend is None:
            raise SystemExit(f"--db-url {url}: no backend takes it")
        databases.append(Database(backend, "" if by_name else url))
    skipped = [
        f"{b.name}: not run, the collector has no {b.name} backend yet (bench/backends.py)"
        for b in BACKENDS
        if not b.available
    ]
    databases = [d for d in databases if d.backend.available]
    if not databases:
        raise SystemExit("nothing to run on: " + "; ".join(skipped))
    return databases, skipped


def open_store(url: str) -> Any:
    """The collector's store for `url` (`collector.store.open_store`, which picks the
    backend as `--db` does), migrated."""
    from collector.store import open_store as collector_open_store

    store = collector_open_store(url)
    store.migrate()
    return store


def backlog(store: Any) -> int:
    """Events accepted but not yet indexed (0 for a store that indexes as it accepts)."""
    return int(store.backlog()) if hasattr(store, "backlog") else 0


def index_all(store: Any) -> int:
    """Index every accepted event now, as each read does first."""
    return int(store.index_all()) if hasattr(store, "index_all") else 0


def stored_events(store: Any, app_id: str) -> int:
    """Events stored for one app, every pending one indexed first."""
    index_all(store)
    conn = store.conn() if hasattr(store, "conn") else None
    if isinstance(conn, sqlite3.Connection):  # one index scan, where the API groups by day
        return int(
            conn.execute("SELECT count(*) FROM events WHERE app_id = ?", (app_id,)).fetchone()[0]
        )
    from collector.query.types import StatsQuery

    stats = store.event_stats(app_id, StatsQuery(include_bots=True))
    return sum(stats["totals"].values())
