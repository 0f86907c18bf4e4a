"""The collector with its storage taken out, for the ingest benchmark's
`--without-storage` rows: HTTP, authentication, validation, enrichment and the
group-commit writer all run as served, but the store's write path answers "accepted"
without touching SQLite. It shows what storage costs in the benchmark's own terms.
Benchmark-only: it acknowledges events it never keeps, so nothing serves traffic with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.applications import Starlette

from collector.models import Event, Outcome
from collector.settings import Settings
from collector.store import SQLiteStore
from collector.web.app import create_app


class WithoutStorage(SQLiteStore):
    """Reads apps and keys from the database as usual; writes nothing."""

    commit_threads = 0

    def write(self, events: Sequence[Event]) -> list[Outcome]:
        return [Outcome("accepted", ev.id) for ev in events]

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        return self.write(take())

    def exceeds_bound(self, count: int) -> bool:
        return False


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory`, as collector.web.app.app_from_env."""
    settings = Settings.from_env()
    return create_app(settings, WithoutStorage(settings.db), tune_gc=True)
