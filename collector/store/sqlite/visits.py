"""SQLite's visits and hits (store/visits.py decides what they hold)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from collector.store import visits
from collector.store.visits import Extension, Hit, HitRow, Key, Visit

# Both tables are clustered by (app, visit start): the figures of a date range read one
# contiguous stretch of each. Keeping them up to date finds a person's visits by
# visits_person, and a visit's hits by the hits' key (app, visit start, person, bot).
SCHEMA = (
    f"""
    CREATE TABLE visits (
        app_id TEXT NOT NULL,
        person TEXT NOT NULL,
        is_bot INTEGER NOT NULL,
        start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL,
        page_views INTEGER NOT NULL,
        events INTEGER NOT NULL,
        entry_page TEXT,
        exit_page TEXT,
        landing_id TEXT,
        {", ".join(a + " TEXT" for a in visits.ATTRIBUTES)},
        PRIMARY KEY (app_id, start_ts, person, is_bot)
    ) WITHOUT ROWID
    """,
    "CREATE UNIQUE INDEX visits_person ON visits(app_id, person, is_bot, start_ts)",
    """
    CREATE TABLE hits (
        app_id TEXT NOT NULL,
        visit_start INTEGER NOT NULL,
        person TEXT NOT NULL,
        is_bot INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        id TEXT NOT NULL,
        event TEXT NOT NULL,
        path TEXT,
        PRIMARY KEY (app_id, visit_start, person, is_bot, ts, id)
    ) WITHOUT ROWID
    """,
    visits.VISIT_DAYS_SCHEMA,
)
_BUMP = visits.BUMP_DAY_SQL.format(m="?")

_VISIT_MARKS = ", ".join("?" * len(visits.VISIT_COLUMNS.split(",")))
_V_COLUMNS = ", ".join("v." + c.strip() for c in visits.VISIT_COLUMNS.split(","))
_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in [c.strip() for c in visits.VISIT_COLUMNS.split(",")][4:]
)
_CHUNK = 300  # keys in one statement (three parameters each)


class VisitTables:
    """visits.VisitPrimitives on one connection, inside its open write transaction."""

    conn: sqlite3.Connection

    def last_visits(self, keys: Sequence[Key]) -> dict[Key, Visit]:
        found: dict[Key, Visit] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            params = [p for key in chunk for p in key]
            for row in self.conn.execute(
                f"WITH k(app_id, person, is_bot) AS (VALUES {values}) "
                f"SELECT {_V_COLUMNS} FROM k JOIN visits v INDEXED BY visits_person "
                "ON v.app_id = k.app_id AND v.person = k.person AND v.is_bot = k.is_bot "
                "AND v.start_ts = (SELECT max(start_ts) FROM visits w INDEXED BY visits_person "
                "WHERE w.app_id = k.app_id AND w.person = k.person AND w.is_bot = k.is_bot)",
                params,
            ):
                visit = visits.visit_from_row(row)
                found[visit.key] = visit
        return found

    def visits_touching(self, key: Key, lo: int, hi: int) -> list[Visit]:
        return [
            visits.visit_from_row(row)
            for row in self.conn.execute(
                f"SELECT {visits.VISIT_COLUMNS} FROM visits INDEXED BY visits_person "
                "WHERE app_id = ? AND person = ? AND is_bot = ? AND end_ts > ? AND start_ts < ? "
                "ORDER BY start_ts",
                (*key, lo, hi),
            )
        ]

    def hits_of(self, key: Key, starts: Sequence[int]) -> list[Hit]:
        app_id, person, is_bot = key
        return [
            (int(row[0]), row[1], row[2], row[3])
            for start in starts
            for row in self.conn.execute(
                "SELECT ts, id, event, path FROM hits WHERE app_id = ? AND visit_start = ? "
                "AND person = ? AND is_bot = ?",
                (app_id, start, person, is_bot),
            )
        ]

    def landing_contexts(self, events: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for app_id, person, event_id in events:
            row = self.conn.execute(
                "SELECT context FROM events WHERE app_id = ? AND person = ? AND id = ?",
                (app_id, person, event_id),
            ).fetchone()
            if row is not None:
                found[event_id] = row[0]
        return found

    def bump_days(self, app_starts: Sequence[tuple[str, int]]) -> None:
        """Raise the version of each (app, day) these visit starts fall in."""
        self.conn.executemany(_BUMP, visits.days_of(app_starts))

    def delete_visits(self, key: Key, starts: Sequence[int]) -> None:
        app_id, person, is_bot = key
        self.bump_days([(app_id, start) for start in starts])
        rows = [(app_id, start, person, is_bot) for start in starts]
        self.conn.executemany(
            "DELETE FROM visits WHERE app_id = ? AND start_ts = ? AND person = ? AND is_bot = ?",
            rows,
        )
        self.conn.executemany(
            "DELETE FROM hits WHERE app_id = ? AND visit_start = ? AND person = ? AND is_bot = ?",
            rows,
        )

    def take_person(self, app_id: str, person: str) -> dict[int, tuple[list[Hit], tuple[int, int]]]:
        taken: dict[int, tuple[list[Hit], tuple[int, int]]] = {}
        rows = self.conn.execute(
            "SELECT is_bot, start_ts, end_ts FROM visits INDEXED BY visits_person "
            "WHERE app_id = ? AND person = ?",
            (app_id, person),
        ).fetchall()
        for is_bot, start, end in rows:
            key = (app_id, person, int(is_bot))
            hits, (lo, hi) = taken.get(int(is_bot), ([], (start, end)))
            hits.extend(self.hits_of(key, [start]))
            taken[int(is_bot)] = (hits, (min(lo, start), max(hi, end)))
            self.delete_visits(key, [start])
        return taken

    def engagement_hits(self, key: Key, lo: int, hi: int) -> list[Hit]:
        return [
            (int(ts), event_id, event, None)
            for ts, event_id, event in self.conn.execute(
                "SELECT ts, id, event FROM events WHERE app_id = ? AND person = ? "
                f"AND is_bot = ? AND event IN ({visits.ENGAGEMENT_SQL}) AND ts BETWEEN ? AND ?",
                (*key, lo, hi),
            )
        ]

    def upsert_visits(self, rows: Sequence[tuple[Any, ...]]) -> None:
        # An upsert changes an extended visit in place; INSERT OR REPLACE would delete
        # and insert it again, index entry included.
        self.bump_days([(row[0], row[3]) for row in rows])
        self.conn.executemany(
            f"INSERT INTO visits ({visits.VISIT_COLUMNS}) VALUES ({_VISIT_MARKS}) "
            f"ON CONFLICT (app_id, start_ts, person, is_bot) DO UPDATE SET {_UPDATES}",
            rows,
        )

    def extend_visits(self, rows: Sequence[Extension]) -> None:
        self.bump_days([(row[4], row[5]) for row in rows])
        self.conn.executemany(
            "UPDATE visits SET end_ts = ?, page_views = ?, events = ?, exit_page = ? "
            "WHERE app_id = ? AND start_ts = ? AND person = ? AND is_bot = ?",
            rows,
        )

    def insert_hits(self, rows: Sequence[HitRow]) -> None:
        self.conn.executemany(
            f"INSERT OR REPLACE INTO hits ({visits.HIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def event_hits(self, key: Key, lo: int, hi: int) -> list[Hit]:
        return [
            (int(ts), event_id, event, visits.path_of(visits.context_of(context)))
            for ts, event_id, event, context in self.conn.execute(
                "SELECT ts, id, event, context FROM events WHERE app_id = ? AND person = ? "
                "AND is_bot = ? AND ts BETWEEN ? AND ?",
                (*key, lo, hi),
            )
        ]

    def visits_straddling(self, app_id: str, cutoff: int) -> list[tuple[Key, int]]:
        return [
            ((app_id, person, int(bot)), int(end))
            for person, bot, end in self.conn.execute(
                "SELECT person, is_bot, end_ts FROM visits "
                "WHERE app_id = ? AND start_ts < ? AND end_ts >= ?",
                (app_id, cutoff, cutoff),
            )
        ]

    def delete_before(self, app_id: str, cutoff: int) -> None:
        self.conn.execute(
            "UPDATE visit_days SET version = version + 1 WHERE app_id = ? AND day <= ?",
            (app_id, (cutoff - 1) // visits.DAY_MS),
        )
        self.conn.execute("DELETE FROM hits WHERE app_id = ? AND visit_start < ?", (app_id, cutoff))
        self.conn.execute("DELETE FROM visits WHERE app_id = ? AND start_ts < ?", (app_id, cutoff))

    def windows_of(
        self, app_id: str, where: str, params: Sequence[Any]
    ) -> list[tuple[Key, int, int]]:
        """Each (key, first ts, last ts) of the app's events matching `where`."""
        return [
            ((app_id, person, int(bot)), int(lo), int(hi))
            for person, bot, lo, hi in self.conn.execute(
                "SELECT person, is_bot, min(ts), max(ts) FROM events "
                f"WHERE app_id = ? AND ({where}) GROUP BY person, is_bot",
                (app_id, *params),
            )
        ]


def tables(conn: sqlite3.Connection) -> VisitTables:
    found = VisitTables()
    found.conn = conn
    return found


def rebuild(conn: sqlite3.Connection) -> int:
    """Visits and hits recomputed from every stored event."""
    conn.execute("DELETE FROM visits")
    conn.execute("DELETE FROM hits")
    conn.execute("UPDATE visit_days SET version = version + 1")
    rows = conn.execute(
        "SELECT app_id, person, is_bot, ts, id, event, context FROM events "
        "ORDER BY app_id, person, is_bot, ts, id"
    )
    return visits.rebuild(tables(conn), rows)
