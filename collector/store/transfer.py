"""Moving a whole database from one store to another (`collector migrate-data`), e.g.
from the SQLite file a site started with into the PostgreSQL it has grown into.

Both backends keep the same tables with the same columns, so a table moves as rows
of plain Python values: each backend reads its rows into them (JSON columns decoded)
and writes them in its own form. The source is fully indexed first, so nothing
accepted is left behind in its inbox; the target must be empty."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from collector.store.base import Store
from collector.store.tables import TABLES

BATCH = 5_000


def transfer(
    source: Store,
    target: Store,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy every table; rows copied per table."""
    if not target.is_empty():
        raise ValueError("the target database is not empty")
    source.index_all()
    counts: dict[str, int] = {}
    for table in TABLES:
        n = 0
        for batch in _batches(source.read_rows(table)):
            target.write_rows(table, batch)
            n += len(batch)
        counts[table.name] = n
        if progress is not None:
            progress(table.name, n)
    target.finish_import(source.secret())
    return counts


def _batches(rows: Iterable[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
