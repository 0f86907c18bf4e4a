"""PostgreSQL's visits and hits (store/visits.py decides what they hold)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from collector.store import visits
from collector.store.visits import Extension, Hit, HitRow, Key, Visit

SCHEMA = (
    f"""
    CREATE TABLE visits (
        app_id text NOT NULL, person text NOT NULL, is_bot smallint NOT NULL,
        start_ts bigint NOT NULL, end_ts bigint NOT NULL,
        page_views integer NOT NULL, events integer NOT NULL,
        entry_page text, exit_page text, landing_id text,
        {", ".join(a + " text" for a in visits.ATTRIBUTES)},
        PRIMARY KEY (app_id, person, is_bot, start_ts)
    )
    """,
    "CREATE INDEX visits_start ON visits (app_id, start_ts)",
    """
    CREATE TABLE hits (
        app_id text NOT NULL, visit_start bigint NOT NULL, person text NOT NULL,
        is_bot smallint NOT NULL, ts bigint NOT NULL, id text NOT NULL, event text NOT NULL,
        path text,
        PRIMARY KEY (app_id, visit_start, person, is_bot, ts, id)
    )
    """,
    visits.VISIT_DAYS_SCHEMA,
)
_BUMP = visits.BUMP_DAY_SQL.format(m="%s")

_KEYS = "unnest(%b::text[], %b::text[], %b::smallint[]) AS k(app_id, person, is_bot)"


def _keys(keys: Sequence[Key]) -> list[list[Any]]:
    return [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]]


class VisitTables:
    """visits.VisitPrimitives on one connection, inside its open transaction."""

    conn: psycopg.Connection[Any]

    def last_visits(self, keys: Sequence[Key]) -> dict[Key, Visit]:
        cols = ", ".join("v." + c.strip() for c in visits.VISIT_COLUMNS.split(","))
        rows = self.conn.execute(
            f"SELECT {cols} FROM {_KEYS} CROSS JOIN LATERAL (SELECT * FROM visits v "
            "WHERE v.app_id = k.app_id AND v.person = k.person AND v.is_bot = k.is_bot "
            "ORDER BY v.start_ts DESC LIMIT 1) v",
            _keys(keys),
        ).fetchall()
        found = {}
        for row in rows:
            visit = visits.visit_from_row(row)
            found[visit.key] = visit
        return found

    def visits_touching(self, key: Key, lo: int, hi: int) -> list[Visit]:
        return [
            visits.visit_from_row(row)
            for row in self.conn.execute(
                f"SELECT {visits.VISIT_COLUMNS} FROM visits WHERE app_id = %s AND person = %s "
                "AND is_bot = %s AND end_ts > %s AND start_ts < %s ORDER BY start_ts",
                (*key, lo, hi),
            )
        ]

    def hits_of(self, key: Key, starts: Sequence[int]) -> list[Hit]:
        if not starts:
            return []
        app_id, person, is_bot = key
        return [
            (int(ts), event_id, event, path)
            for ts, event_id, event, path in self.conn.execute(
                "SELECT ts, id, event, path FROM hits WHERE app_id = %s "
                "AND visit_start = ANY(%b::bigint[]) AND person = %s AND is_bot = %s",
                (app_id, list(starts), person, is_bot),
            )
        ]

    def landing_contexts(self, events: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
        rows = self.conn.execute(
            "SELECT e.id, e.context FROM unnest(%b::text[], %b::text[], %b::text[]) "
            "AS k(app_id, person, id) JOIN events e ON e.app_id = k.app_id "
            "AND e.person = k.person AND e.id = k.id",
            [[e[0] for e in events], [e[1] for e in events], [e[2] for e in events]],
        ).fetchall()
        return {event_id: context for event_id, context in rows}

    def bump_days(self, app_starts: Sequence[tuple[str, int]]) -> None:
        """Raise the version of each (app, day) these visit starts fall in."""
        days = visits.days_of(app_starts)
        if days:
            with self.conn.cursor() as cur:
                cur.executemany(_BUMP, days)

    def delete_visits(self, key: Key, starts: Sequence[int]) -> None:
        if not starts:
            return
        app_id, person, is_bot = key
        self.bump_days([(app_id, start) for start in starts])
        for table, column in (("visits", "start_ts"), ("hits", "visit_start")):
            self.conn.execute(
                f"DELETE FROM {table} WHERE app_id = %s AND {column} = ANY(%b::bigint[]) "
                "AND person = %s AND is_bot = %s",
                (app_id, list(starts), person, is_bot),
            )

    def take_person(self, app_id: str, person: str) -> dict[int, tuple[list[Hit], tuple[int, int]]]:
        taken: dict[int, tuple[list[Hit], tuple[int, int]]] = {}
        by_bot: dict[int, list[tuple[int, int]]] = {}
        for is_bot, start, end in self.conn.execute(
            "SELECT is_bot, start_ts, end_ts FROM visits WHERE app_id = %s AND person = %s",
            (app_id, person),
        ):
            by_bot.setdefault(int(is_bot), []).append((int(start), int(end)))
        for is_bot, spans in by_bot.items():
            key = (app_id, person, is_bot)
            starts = [start for start, _ in spans]
            span = (min(starts), max(end for _, end in spans))
            taken[is_bot] = (self.hits_of(key, starts), span)
            self.delete_visits(key, starts)
        return taken

    def engagement_hits(self, key: Key, lo: int, hi: int) -> list[Hit]:
        return [
            (int(ts), event_id, event, None)
            for ts, event_id, event in self.conn.execute(
                "SELECT ts, id, event FROM events WHERE app_id = %s AND person = %s "
                f"AND is_bot = %s AND event IN ({visits.ENGAGEMENT_SQL}) AND ts BETWEEN %s AND %s",
                (*key, lo, hi),
            )
        ]

    def upsert_visits(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = [c.strip() for c in visits.VISIT_COLUMNS.split(",")]
        types = ["text", "text", "smallint", "bigint", "bigint", "integer", "integer"]
        types += ["text"] * (len(columns) - len(types))
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[4:])
        self.bump_days([(row[0], row[3]) for row in rows])
        self.conn.execute(
            f"INSERT INTO visits ({visits.VISIT_COLUMNS}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT (app_id, person, is_bot, start_ts) DO UPDATE SET {updates}",
            [list(column) for column in zip(*rows, strict=True)],
        )

    def extend_visits(self, rows: Sequence[Extension]) -> None:
        if not rows:
            return
        self.bump_days([(row[4], row[5]) for row in rows])
        # Written as an upsert whose insert never happens (each row exists, and nothing
        # deletes visits without the indexing lock this transaction holds): it finds
        # each row through the primary key whatever the table's size, where an UPDATE
        # joined to the rows was planned as a scan of the whole table. No indexed
        # column changes, so with the table's fillfactor the update is HOT.
        self.conn.execute(
            "INSERT INTO visits (end_ts, page_views, events, exit_page, app_id, start_ts, "
            "person, is_bot) SELECT * FROM unnest(%b::bigint[], %b::integer[], "
            "%b::integer[], %b::text[], %b::text[], %b::bigint[], %b::text[], "
            "%b::smallint[]) ON CONFLICT (app_id, person, is_bot, start_ts) DO UPDATE SET "
            "end_ts = excluded.end_ts, page_views = excluded.page_views, "
            "events = excluded.events, exit_page = excluded.exit_page",
            [list(column) for column in zip(*rows, strict=True)],
        )

    def insert_hits(self, rows: Sequence[HitRow]) -> None:
        if not rows:
            return
        with self.conn.cursor().copy(f"COPY hits ({visits.HIT_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def event_hits(self, key: Key, lo: int, hi: int) -> list[Hit]:
        return [
            (int(ts), event_id, event, visits.path_of(visits.context_of(context)))
            for ts, event_id, event, context in self.conn.execute(
                "SELECT ts, id, event, context FROM events WHERE app_id = %s AND person = %s "
                "AND is_bot = %s AND ts BETWEEN %s AND %s",
                (*key, lo, hi),
            )
        ]

    def visits_straddling(self, app_id: str, cutoff: int) -> list[tuple[Key, int]]:
        return [
            ((app_id, person, int(bot)), int(end))
            for person, bot, end in self.conn.execute(
                "SELECT person, is_bot, end_ts FROM visits "
                "WHERE app_id = %s AND start_ts < %s AND end_ts >= %s",
                (app_id, cutoff, cutoff),
            )
        ]

    def delete_before(self, app_id: str, cutoff: int) -> None:
        self.conn.execute(
            "UPDATE visit_days SET version = version + 1 WHERE app_id = %s AND day <= %s",
            (app_id, (cutoff - 1) // visits.DAY_MS),
        )
        self.conn.execute(
            "DELETE FROM hits WHERE app_id = %s AND visit_start < %s", (app_id, cutoff)
        )
        self.conn.execute(
            "DELETE FROM visits WHERE app_id = %s AND start_ts < %s", (app_id, cutoff)
        )

    def windows_of(
        self, app_id: str, where: str, params: Sequence[Any]
    ) -> list[tuple[Key, int, int]]:
        """Each (key, first ts, last ts) of the app's events matching `where`."""
        return [
            ((app_id, person, int(bot)), int(lo), int(hi))
            for person, bot, lo, hi in self.conn.execute(
                "SELECT person, is_bot, min(ts), max(ts) FROM events "
                f"WHERE app_id = %s AND ({where}) GROUP BY person, is_bot",
                (app_id, *params),
            )
        ]


def tables(conn: psycopg.Connection[Any]) -> VisitTables:
    found = VisitTables()
    found.conn = conn
    return found


def rebuild(conn: psycopg.Connection[Any]) -> int:
    """Visits and hits recomputed from every stored event."""
    conn.execute("DELETE FROM visits")
    conn.execute("DELETE FROM hits")
    conn.execute("UPDATE visit_days SET version = version + 1")
    with conn.cursor(name="visits_rebuild") as cur:
        cur.execute(
            "SELECT app_id, person, is_bot, ts, id, event, context FROM events "
            'ORDER BY app_id, person, is_bot, ts, id COLLATE "C"'
        )
        return visits.rebuild(tables(conn), cur)
