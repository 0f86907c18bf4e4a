"""The web figures' columns: an app's visits and hits as numpy arrays, read one UTC day
at a time and kept in memory while that day's version in `visit_days` stands.

Why: the figures count distinct visitors and visits per page, source, country, ... over
a month of traffic. In SQL each of those is a sort of up to a million rows (2.5 s for
the pages of 1,000,000 page views on SQLite); over integer-coded columns it is a scatter
into a bitmap, a few milliseconds. Every write to visits or hits raises the version of
the day the visit starts in (store/visits.py, in the writing transaction), so a day is
read again only after it changed: in practice today's, and a past day when a late
event, a login, a deletion or a purge reached it. The versions are read in the caller's
snapshot before the rows, so what is cached is never older than its version says.

Each process keeps its own cache (`ColumnCache`), bounded in bytes; strings become
dense integer codes per column family (0 is NULL), the codes kept as long as the
app's entry is."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from collector.store.sql import Cursor, Dialect
from collector.store.visits import ATTRIBUTES, DAY_MS, PAGE_VIEW

Execute = Callable[[str, Sequence[Any]], Cursor]
T = TypeVar("T")

# Visit columns coded as strings, by family: a page path is coded the same whether it
# is an entry, an exit or a hit's page, so a filter on one can match the others.
_FAMILY = {"entry_page": "path", "exit_page": "path", **{a: a for a in ATTRIBUTES}}
STRING_COLUMNS: tuple[str, ...] = tuple(_FAMILY)
DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024
_FRAMES = 4  # assembled ranges kept (the dashboard asks one range 13 times at once)


class Codes(dict[str | None, int]):
    """Strings to dense codes in the order first seen; None is 0."""

    def __init__(self) -> None:
        super().__init__({None: 0})
        self.strings: list[str | None] = [None]

    def __missing__(self, key: str | None) -> int:
        code = len(self.strings)
        self[key] = code
        self.strings.append(key)
        return code

    def coded(self, values: Sequence[str | None]) -> np.ndarray:
        return np.fromiter(map(self.__getitem__, values), dtype=np.int32, count=len(values))


@dataclass
class Columns:
    """Visits (those with an event: a stretch of engagement alone is no visit) in
    (start, person, bot) order, and their hits, each with its visit's index."""

    person: np.ndarray  # int32 codes
    bot: np.ndarray  # bool
    start: np.ndarray  # int64, epoch ms
    end: np.ndarray
    page_views: np.ndarray  # int32
    events: np.ndarray
    strings: dict[str, np.ndarray]  # STRING_COLUMNS → int32 codes
    hit_visit: np.ndarray  # int32, an index into the visits
    hit_ts: np.ndarray  # int64, epoch ms
    hit_event: np.ndarray  # int32 codes
    hit_path: np.ndarray
    # Whether a hit is its visit's first of its event name, and (for page views) its
    # visit's first view of its path: a query keeps or drops whole visits, so counting
    # the visits of each page or event is a sum of these, not a distinct count.
    hit_first_event: np.ndarray  # bool
    hit_first_view: np.ndarray

    @property
    def nbytes(self) -> int:
        arrays = [self.person, self.bot, self.start, self.end, self.page_views, self.events]
        arrays += [*self.strings.values(), self.hit_visit, self.hit_ts, self.hit_event]
        arrays.append(self.hit_path)
        arrays += [self.hit_first_event, self.hit_first_view]
        return sum(a.nbytes for a in arrays)


def _empty() -> Columns:
    i32, i64, no = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, bool)
    strings = {c: i32 for c in STRING_COLUMNS}
    return Columns(i32, no, i64, i64, i32, i32, strings, i32, i64, i32, i32, no, no)


def _concat(parts: Sequence[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0, *(len(p.start) for p in parts[:-1])])
    return Columns(
        np.concatenate([p.person for p in parts]),
        np.concatenate([p.bot for p in parts]),
        np.concatenate([p.start for p in parts]),
        np.concatenate([p.end for p in parts]),
        np.concatenate([p.page_views for p in parts]),
        np.concatenate([p.events for p in parts]),
        {c: np.concatenate([p.strings[c] for p in parts]) for c in STRING_COLUMNS},
        np.concatenate(
            [p.hit_visit + np.int32(o) for p, o in zip(parts, offsets, strict=True)]
        ).astype(np.int32, copy=False),
        np.concatenate([p.hit_ts for p in parts]),
        np.concatenate([p.hit_event for p in parts]),
        np.concatenate([p.hit_path for p in parts]),
        np.concatenate([p.hit_first_event for p in parts]),
        np.concatenate([p.hit_first_view for p in parts]),
    )


@dataclass
class Frame:
    """The columns of a range of days, with the codes to read them back."""

    columns: Columns
    codes: dict[str, Codes]  # "person", "event", "path" and each attribute
    # What queries derive from these columns alone, kept while the frame is (a frame is
    # never changed: a change to its days makes a new one).
    derived: dict[Any, Any] = field(default_factory=dict)


@dataclass
class _App:
    codes: dict[str, Codes] = field(
        default_factory=lambda: {n: Codes() for n in ("person", "event", *set(_FAMILY.values()))}
    )
    days: dict[int, tuple[int, Columns]] = field(default_factory=dict)  # day → (version, cols)


class ColumnCache:
    """One process's cache of column days, for every app it was asked about."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.budget = budget_bytes
        self._apps: dict[str, _App] = {}
        self._lru: OrderedDict[tuple[str, int], int] = OrderedDict()  # (app, day) → bytes
        self._frames: OrderedDict[tuple[Any, ...], Frame] = OrderedDict()
        self._lock = threading.Lock()
        self.days_read = 0  # how many days were read from the database (tests, benchmarks)

    def frame(
        self, d: Dialect, run: Execute, app_id: str, since: int | None, until: int | None
    ) -> Frame:
        """The columns of every visit starting in the UTC days that [since, until)
        touches (None: no bound on that side), as of the caller's snapshot."""
        first = None if since is None else since // DAY_MS
        last = None if until is None else (until - 1) // DAY_MS
        sql = f"SELECT day, version FROM visit_days WHERE app_id = {d.mark}"
        params: list[Any] = [app_id]
        for bound, op in ((first, ">="), (last, "<=")):
            if bound is not None:
                sql += f" AND day {op} {d.mark}"
                params.append(bound)
        versions = {int(day): int(version) for day, version in run(sql, params)}
        key = (app_id, first, last, tuple(sorted(versions.items())))
        with self._lock:
            found = self._frames.get(key)
            if found is not None:
                self._frames.move_to_end(key)
                return found
            self._forget_gone(app_id, first, last, versions)
            app = self._apps.setdefault(app_id, _App())
            stale = [
                day
                for day, version in sorted(versions.items())
                if app.days.get(day, (None,))[0] != version
            ]
            for day in stale:  # a day at a time: what a read holds at once stays small
                app.days[day] = (versions[day], without_gc(self._read, d, run, app, app_id, day))
                self._lru[(app_id, day)] = app.days[day][1].nbytes
                self.days_read += 1
            parts = [app.days[day][1] for day in sorted(versions)]
            for day in versions:
                self._lru.move_to_end((app_id, day))
            frame = Frame(_concat(parts) if parts else _empty(), app.codes)
            self._frames[key] = frame
            while len(self._frames) > _FRAMES:
                self._frames.popitem(last=False)
            self._evict()
            return frame

    def _read(self, d: Dialect, run: Execute, app: _App, app_id: str, day: int) -> Columns:
        """One day's visits and hits, coded."""
        m, collate = d.mark, d.collate
        lo, hi = day * DAY_MS, (day + 1) * DAY_MS

        def read(columns: str, table: str, start: str, where: str = "") -> list[Sequence[Any]]:
            """The day's rows of `table`, column by column, ordered by visit."""
            rows = run(
                f"SELECT {columns} FROM {table} WHERE app_id = {m} AND {start} >= {m} "
                f"AND {start} < {m}{where} ORDER BY {start}, person{collate}, is_bot",
                [app_id, lo, hi],
            ).fetchall()
            return list(zip(*rows, strict=True)) if rows else [()] * len(columns.split(","))

        cols = read(
            f"person, is_bot, start_ts, end_ts, page_views, events, {', '.join(STRING_COLUMNS)}",
            "visits",
            "start_ts",
            " AND events > 0",
        )
        # Hits in the same order as the visits: a hit's visit is the how-manyth change of
        # (start, person, bot) it is (every visit with an event has that event's hit, and
        # hits are kept for events only), checked against the visits below.
        hits = read("visit_start, person, is_bot, event, path, ts", "hits", "visit_start")
        codes = app.codes
        start = np.array(cols[2], dtype=np.int64)
        person = codes["person"].coded(cols[0])
        bot = np.array(cols[1], dtype=np.int8).astype(bool)
        hit_start = np.array(hits[0], dtype=np.int64)
        hit_person = codes["person"].coded(hits[1])
        hit_bot = np.array(hits[2], dtype=np.int8).astype(bool)
        change = np.ones(len(hit_start), dtype=bool)
        change[1:] = (
            (hit_start[1:] != hit_start[:-1])
            | (hit_person[1:] != hit_person[:-1])
            | (hit_bot[1:] != hit_bot[:-1])
        )
        hit_visit = np.cumsum(change) - 1
        if len(hit_visit) and (
            hit_visit[-1] >= len(start)
            or not np.array_equal(start[hit_visit], hit_start)
            or not np.array_equal(person[hit_visit], hit_person)
            or not np.array_equal(bot[hit_visit], hit_bot)
        ):
            raise RuntimeError(f"visits and hits of {app_id} disagree on day {day}")
        hit_event = codes["event"].coded(hits[3])
        hit_path = codes["path"].coded(hits[4])
        views = hit_event == codes["event"].get(PAGE_VIEW, -1)
        return Columns(
            person,
            bot,
            start,
            np.array(cols[3], dtype=np.int64),
            np.array(cols[4], dtype=np.int32),
            np.array(cols[5], dtype=np.int32),
            {
                name: codes[_FAMILY[name]].coded(cols[6 + i])
                for i, name in enumerate(STRING_COLUMNS)
            },
            hit_visit.astype(np.int32),
            np.array(hits[5], dtype=np.int64),
            hit_event,
            hit_path,
            _firsts(hit_visit, hit_event),
            _firsts(hit_visit, hit_path, views),
        )

    def _forget_gone(
        self, app_id: str, first: int | None, last: int | None, versions: dict[int, int]
    ) -> None:
        """Drop the cached days in [first, last] that no longer have a version: their
        visits were purged, or their app deleted (`collector apps delete`). No read
        would serve them again, but they hold people's ids until evicted; an app left
        with none drops its codes too."""
        app = self._apps.get(app_id)
        if app is None:
            return
        gone = [
            day
            for day in app.days
            if day not in versions
            and (first is None or day >= first)
            and (last is None or day <= last)
        ]
        for day in gone:
            del app.days[day]
            self._lru.pop((app_id, day), None)
        if gone and not app.days:
            del self._apps[app_id]
            self._frames = OrderedDict((k, f) for k, f in self._frames.items() if k[0] != app_id)

    def _evict(self) -> None:
        """Drop the least recently used days past the budget; an app left with none
        drops its codes too (they only grow)."""
        total = sum(self._lru.values())
        while total > self.budget and len(self._lru) > 1:
            (app_id, day), size = self._lru.popitem(last=False)
            total -= size
            app = self._apps[app_id]
            app.days.pop(day, None)
            if not app.days:
                del self._apps[app_id]
                self._frames = OrderedDict(
                    (k, f) for k, f in self._frames.items() if k[0] != app_id
                )


def without_gc(read: Callable[..., T], *args: Any) -> T:
    """`read(*args)` with the cyclic garbage collector paused: a day's read makes a few
    hundred thousand row tuples that hold no cycles and are gone when it returns, and
    the collections their allocation triggers cost a quarter of the read (measured on
    a month of 1,000,000 page views: 6.2 → 4.6 CPU seconds)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return read(*args)
    finally:
        if was_enabled:
            gc.enable()


def _firsts(visit: np.ndarray, value: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
    """Whether each item is the first (visit, value) pair of its kind (among those
    `among` marks; the others are False)."""
    chosen = np.arange(len(visit)) if among is None else np.flatnonzero(among)
    pairs = visit[chosen].astype(np.int64) * (int(value.max(initial=0)) + 1) + value[chosen]
    _, first = np.unique(pairs, return_index=True)
    found = np.zeros(len(visit), dtype=bool)
    found[chosen[first]] = True
    return found
