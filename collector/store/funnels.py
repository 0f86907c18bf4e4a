"""What the store reads for a funnel, written once for every backend: the events of its
steps as columns from the column cache (store/columns.py) when the steps have no
property filter, else rows in SQL (`sql.funnel_sql`).

Why columns: a funnel reads every occurrence of its steps' events (284,000 for four
steps of the benchmark's 1,000,000 events). In SQL that is a sort by person in the
database and a row per event moved into Python, 0.9 s of CPU on SQLite before any
matching; the cache already holds every event (as `hits`, one per event but the
engagement measurement) with its person, time and name, kept up to date a UTC day at a
time, so the step events are a selection of arrays. Only a breakdown needs more than
the hits: the property of the first step's events, read from SQL in the same
snapshot."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from itertools import repeat
from operator import itemgetter

import numpy as np

from collector.query.types import EventTimes, FunnelColumns, FunnelEvents, FunnelQuery
from collector.store.columns import ColumnCache, Frame, without_gc
from collector.store.sql import Reader
from collector.store.visits import ENGAGEMENT

_DERIVED = 16  # event names' sorted occurrences kept per frame (each up to 16 B an event)


@contextlib.contextmanager
def funnel_events(
    reader: Reader, cache: ColumnCache | None, app_id: str, query: FunnelQuery
) -> Iterator[FunnelEvents]:
    """The funnel's events, in one read snapshot held while the context is."""
    with reader.snapshot():
        if cache is not None and readable_as_columns(query):
            yield FunnelEvents((), _columns(reader, cache, app_id, query))
        else:
            yield FunnelEvents(reader.funnel_rows(app_id, query))


def readable_as_columns(query: FunnelQuery) -> bool:
    """Steps matched by their name alone, none of them the engagement measurement (which
    is kept out of the hits)."""
    return all(not step.where and step.event not in ENGAGEMENT for step in query.steps)


def _columns(reader: Reader, cache: ColumnCache, app_id: str, query: FunnelQuery) -> FunnelColumns:
    # Every day: a visit that starts before `since` can hold a step after it, and the
    # days an app keeps are bounded by its retention and the cache's budget.
    frame = cache.frame(reader.dialect, reader.execute, app_id, None, None)
    bots = query.include_bots
    events = {step.event: _event_times(frame, step.event, bots) for step in query.steps}
    if query.breakdown is None:
        return FunnelColumns(events)
    starts = without_gc(_starts, reader, frame, app_id, query)
    in_range = query.starts_in_range(events[query.steps[0].event].ts)
    if (starts[0].person < 0).any() or int(in_range.sum()) != len(starts[0].ts):
        raise RuntimeError(f"the events and the hits of {app_id} disagree on a funnel's start")
    return FunnelColumns(events, *starts)


def _starts(
    reader: Reader, frame: Frame, app_id: str, query: FunnelQuery
) -> tuple[EventTimes, np.ndarray, list[str | None]]:
    """The first step's events with their breakdown values, from SQL, as columns in
    (person, ts, commit order): the starts, each one's value code, the values."""
    rows = reader.funnel_starts(app_id, query)
    persons, times, commits, raws = (list(map(itemgetter(i), rows)) for i in range(4))
    n = len(rows)
    who = np.fromiter(map(frame.codes["person"].get, persons, repeat(-1)), np.int64, count=n)
    ts, commit = np.array(times, dtype=np.int64), np.array(commits, dtype=np.int64)
    values = list(dict.fromkeys(raws))
    value = np.fromiter(map({v: i for i, v in enumerate(values)}.__getitem__, raws), np.int64, n)
    order = np.lexsort((commit, ts, who))
    return EventTimes(who[order], ts[order]), value[order], values


def _event_times(frame: Frame, name: str, include_bots: bool) -> EventTimes:
    """The occurrences of one event name in the frame, by (person, ts); kept with the
    frame, which a repeated query on unchanged days finds again."""
    key = ("event times", name, include_bots)
    found: EventTimes | None = frame.derived.get(key)
    if found is None:
        c = frame.columns
        chosen = c.hit_event == frame.codes["event"].get(name, -1)
        if not include_bots:
            chosen &= ~c.bot[c.hit_visit]
        at = np.flatnonzero(chosen)
        who, ts = c.person[c.hit_visit[at]].astype(np.int64), c.hit_ts[at]
        order = np.lexsort((ts, who))
        if len(frame.derived) >= _DERIVED:
            frame.derived.clear()
        found = frame.derived[key] = EventTimes(who[order], ts[order])
    return found
