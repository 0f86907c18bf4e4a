"""PostgreSQL's read side (store/postgres/queries.py) against SQLite's: the same events in
both databases, every query asked of both, the answers compared.

The events go in through SQLiteStore's write path and indexer (identity links, person
rewrites, summaries); the indexed rows are then copied as they are into a PostgreSQL
database of the store's schema, each event's rowid as its seq: any difference is the
read side's. The PostgreSQL database is made twice: with the cluster's C collation, and
with an ICU language collation whose text order is not code point order (what the
queries' COLLATE "C" is for)."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from collector.models import Event
from collector.query.funnels import compute_funnel, compute_funnel_columns, parse_funnel_query
from collector.query.segments import parse_segment_query
from collector.query.types import EventsQuery, FunnelQuery, SegmentQuery, StatsQuery
from collector.store import SQLiteStore
from collector.store.columns import ColumnCache
from collector.store.funnels import readable_as_columns
from collector.store.postgres import migrations, partitions
from collector.store.postgres import queries as pg
from collector.store.sqlite import queries as lite
from collector.store.tables import TABLES
from tests.factories import DAY, ev
from tests.pgcluster import PostgresCluster

NOW = 1_790_000_000_000  # 2026-09-21T12:53:20Z; the data crosses into October
OCTOBER = 1_790_812_800_000  # 2026-10-01T00:00:00Z: a partition boundary

# People whose code point order is not a language's: "Zed" < "alice" < "Émile" in C.
USERS = ("u1", "u2", "u3", "Zed", "alice", "bob", "Émile", "ßtraße", "ü")
# The first few are linked to users at some point; the rest stay anonymous people.
ANONS = ("a1", "a2", "a3", "A4", "é5", *(f"z{i}" for i in range(25)), "Z", "ÿ")
LINKED = ANONS[:5]
EVENTS = ("signup", "view", "export", "upgrade", "Zebra", "apple")
# Typed values: strings that look like numbers, numbers that look like booleans, floats
# SQLite and jsonb print differently (1e-7, 1e+20), unicode, containers.
VALUES: tuple[Any, ...] = (
    "pro", "free", "Pro", "é", "Zed", "1", 1, 1.0, 2.5, 0, -3, 1e-07, 1e20, 0.1,
    True, False, None, [1, "x"], {"a": 1}, {"b": 1, "aa": [2]}, "",
)  # fmt: skip
KEYS = ("plan", "amount", "it's.odd key", "ключ")


# The two databases ------------------------------------------------------------------------


def _events(app_id: str, rng: random.Random) -> list[Event]:
    out = []
    for _ in range(700):
        user: str | None = rng.choice((None, None, *USERS))
        anon: str | None
        if user is None:
            anon = rng.choice(ANONS)
        else:
            anon = rng.choice(LINKED) if rng.random() < 0.2 else None
        # Times around day boundaries too (the stats' buckets).
        ts = NOW + rng.randrange(-20 * DAY, 12 * DAY)
        if rng.random() < 0.1:
            ts -= ts % DAY + rng.choice((0, 1, -1))
        if user is not None and rng.random() < 0.08:
            traits = {
                "plan": rng.choice(("pro", "free", "Pro", 1, None)),
                "seats": rng.randrange(0, 5),
                "score": rng.choice((0.5, 2, 1e-07, "3")),
                "vip": rng.choice((True, False)),
            }
            if rng.random() < 0.3:
                del traits["plan"]
            out.append(ev(app_id, "identify", ts, user=user, anon=anon, traits=traits))
            continue
        props = {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.7}
        out.append(
            ev(app_id, rng.choice(EVENTS), ts, user=user, anon=anon, props=props,
               bot=rng.random() < 0.08)
        )  # fmt: skip
    return out


def _schema(conn: psycopg.Connection[Any]) -> None:
    """The store's schema, with September's partition: October's events (a month with no
    partition of its own) sit in the default one, so queries read both kinds."""
    migrations.migrate(conn)
    partitions.create(conn, [partitions.month_of(NOW)])


def _copy(source: SQLiteStore, conn: psycopg.Connection[Any]) -> None:
    """The indexed tables the queries read, row for row; an event's rowid is its seq."""
    lconn = source.conn()
    for table in TABLES:
        if table.name not in (
            *("events", "person_event_stats", "persons", "users", "identities"),
            *("visits", "hits", "visit_days"),  # what funnels read as columns
        ):
            continue
        columns = ", ".join(table.columns)
        select = f"SELECT {columns} FROM {table.name}"
        if table.name == "events":
            columns, select = f"seq, {columns}", f"SELECT rowid, {columns} FROM events"
        rows = lconn.execute(select).fetchall()
        assert rows, table.name
        marks = ", ".join(["%s"] * len(rows[0]))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)


@dataclasses.dataclass
class World:
    lite: sqlite3.Connection
    pg: psycopg.Connection[Any]
    store: SQLiteStore
    app_id: str
    other_app: str


@pytest.fixture(scope="module", params=["C", "ICU en-US"])
def world(
    request: pytest.FixtureRequest,
    pg_cluster: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    store = SQLiteStore(str(tmp_path_factory.mktemp("pgq") / "t.db"))
    store.migrate()
    app_id = store.create_app("Shop", ["http://localhost"], {}).app_id
    other = store.create_app("Other", ["http://localhost"], {}).app_id
    rng = random.Random(20260921)
    store.write(_events(app_id, rng))
    store.write(_events(other, rng))  # the same people and events in another app
    store.index_all()

    if request.param == "C":
        url = pg_cluster.create_database()
    else:
        url = pg_cluster.url_for("icu_" + str(id(store)))
        try:
            with psycopg.connect(pg_cluster.url, autocommit=True) as admin:
                admin.execute(
                    pgsql.SQL(
                        "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' "
                        "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
                    ).format(pgsql.Identifier(url.rsplit("/", 1)[1]))
                )
        except psycopg.errors.FeatureNotSupported:
            store.close()
            pytest.skip("this PostgreSQL server was built without ICU")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            # As the store configures its connections: orjson reads jsonb, so a number
            # jsonb prints as 100000000000000000000 comes back the float it was.
            set_json_loads(orjson.loads, conn)
            _schema(conn)
            _copy(store, conn)
            for table in (partitions.name(partitions.month_of(NOW)), "events_default"):
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() > (100,)
            conn.execute("ANALYZE")
            if request.param != "C":  # the language order really differs here
                assert conn.execute("SELECT 'Zed' < 'alice'").fetchone() == (False,)
            yield World(store.conn(), conn, store, app_id, other)
    finally:
        store.close()
        pg_cluster.drop_database(url)


def same(a: Any, b: Any) -> None:
    """Equal, and equal as JSON too (1 is not 1.0 there); keys in any order, as jsonb
    keeps an object's keys in an order of its own."""
    assert a == b
    option = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    assert orjson.dumps(a, option=option) == orjson.dumps(b, option=option)


# Segments ---------------------------------------------------------------------------------

WHERES: list[dict[str, Any]] = [
    {"plan": "pro"},
    {"plan": 1},
    {"plan": "1"},
    {"plan": True},
    {"plan": None},
    {"plan": {"neq": "pro"}},
    {"plan": {"neq": None}},
    {"plan": {"in": ["pro", 1, True, None, "é"]}},
    {"plan": {"in": []}},
    {"plan": {"not_in": ["free", 0, False]}},
    {"plan": {"not_in": []}},
    {"plan": {"exists": True}},
    {"plan": {"exists": False}},
    {"plan": {"gt": "Pro"}},
    {"plan": {"lte": "Zed"}},
    {"plan": {"gte": "a", "lt": "é"}},
    {"amount": {"gt": 0}},
    {"amount": {"gte": 1, "lte": 2.5}},
    {"amount": {"lt": 1e-06}},
    {"amount": {"eq": 1e20}},
    {"amount": 0.1},
    {"amount": {"gt": "0"}},
    {"it's.odd key": {"exists": True}, "ключ": {"neq": "free"}},
    {"ключ": {"in": ["pro", 2.5]}, "plan": "free"},
]
TRAITS: list[dict[str, Any]] = [
    {"key": "plan", "eq": "pro"},
    {"key": "plan", "eq": 1},
    {"key": "plan", "eq": None},
    {"key": "plan", "neq": "pro"},
    {"key": "plan", "in": ["Pro", "free"]},
    {"key": "plan", "not_in": ["pro"]},
    {"key": "plan", "exists": True},
    {"key": "plan", "exists": False},
    {"key": "plan", "gt": "a"},
    {"key": "seats", "gte": 2, "lt": 4},
    {"key": "score", "lt": 1},
    {"key": "score", "eq": "3"},
    {"key": "vip", "eq": True},
    {"key": "nowhere", "neq": 1},
]


def _conditions() -> list[list[dict[str, Any]]]:
    single: list[dict[str, Any]] = []
    for kind in ("has_done", "has_not_done", "first_done_within", "last_done_within"):
        for where in (None, {"plan": "pro"}, {"amount": {"gte": 1}}):
            body: dict[str, Any] = {"event": "view"}
            if where:
                body["where"] = where
            if kind.endswith("_within"):
                body["days"] = 7
            single.append({kind: body})
            if kind.startswith("has"):
                single.append({kind: {**body, "within_days": 3.5}})
    for compare in ({"gt": 3}, {"gte": 1, "lte": 4}, {"lt": 2}, {"eq": 0}, {"lte": 1}):
        for extra in ({}, {"within_days": 10}, {"where": {"plan": {"neq": "free"}}}):
            single.append({"count": {"event": "export", **compare, **extra}})
    single += [{"has_done": {"event": "signup", "where": w}} for w in WHERES]
    single += [{"trait": t} for t in TRAITS]
    nested: list[list[dict[str, Any]]] = [
        [
            {"has_done": {"event": "view"}},
            {"not": {"has_done": {"event": "Zebra", "where": {"plan": "pro"}}}},
            {
                "match": "any",
                "conditions": [
                    {"trait": {"key": "plan", "neq": "free"}},
                    {"count": {"event": "apple", "lt": 2, "within_days": 5}},
                    {"match": "all", "conditions": []},
                ],
            },
        ],
        [{"match": "any", "conditions": []}],
        [],
    ]
    return [[c] for c in single] + nested


def _pages(read: Any, query: SegmentQuery) -> list[Any]:
    """Every page, following the cursors."""
    pages = [read(query)]
    while pages[-1].last is not None:
        assert len(pages) <= pages[0].count, "the cursor does not advance"
        pages.append(read(dataclasses.replace(query, after=pages[-1].last)))
    return pages


def test_segments_give_the_same_people_and_pages(world: World) -> None:
    counts = set()
    cases = 0
    for conditions in _conditions():
        for include_bots in (False, True):
            body = {"conditions": conditions, "include_bots": include_bots, "limit": 4}
            query = parse_segment_query(body, NOW)
            ours = _pages(lambda q: lite.segment(world.lite, world.app_id, q), query)
            theirs = _pages(lambda q: pg.segment(world.pg, world.app_id, q), query)
            assert ours == theirs, conditions
            counts.add(ours[0].count)
            cases += 1
    # Not vacuous: the cases select many different numbers of people.
    assert cases == 2 * len(_conditions()) and len(counts) > 20, sorted(counts)


# Funnels ----------------------------------------------------------------------------------

FUNNELS: list[dict[str, Any]] = [
    {"steps": ["signup", "view"]},
    {"steps": ["signup", "view", "export", "upgrade"], "within_days": 3},
    {"steps": ["view", "view", "view"], "include_bots": True},
    *({"steps": ["signup", "view", "export"], "breakdown": key} for key in KEYS),
    {"steps": ["view", "export"], "breakdown": "plan", "include_bots": True},
    {
        "steps": [{"event": "view", "where": {"plan": {"in": ["pro", 1]}}}, "export"],
        "breakdown": "amount",
    },
    {"steps": ["signup", {"event": "Zebra", "where": {"amount": {"gt": 0}}}, "apple"]},
    {"steps": ["signup", "view"], "since": NOW - 10 * DAY, "until": NOW, "within_days": 1},
    {"steps": ["apple", "Zebra"], "since": NOW, "breakdown": "plan"},
]


def _funnel(module: Any, conn: Any, app_id: str, query: FunnelQuery) -> tuple[Any, Any]:
    with module.funnel_events(conn, None, app_id, query) as found:  # no cache: rows
        rows = list(found.rows)
        return rows, compute_funnel(query, rows)


def _funnel_columns(module: Any, conn: Any, app_id: str, query: FunnelQuery) -> Any:
    with module.funnel_events(conn, ColumnCache(), app_id, query) as found:
        assert found.columns is not None
        return compute_funnel_columns(query, found.columns)


@pytest.mark.parametrize("body", FUNNELS)
def test_funnels_read_the_same_rows_and_answer_alike(world: World, body: dict[str, Any]) -> None:
    query = parse_funnel_query(body)
    rows, answer = _funnel(lite, world.lite, world.app_id, query)
    assert _funnel(pg, world.pg, world.app_id, query) == (rows, answer)
    same(_funnel(pg, world.pg, world.app_id, query)[1], answer)
    assert rows and answer["steps"][1]["users"] > 0
    if query.breakdown is not None:
        assert len(answer["breakdown"]) > 1
    if readable_as_columns(query):  # the same answer read as columns, on both backends
        assert _funnel_columns(lite, world.lite, world.app_id, query) == answer
        assert _funnel_columns(pg, world.pg, world.app_id, query) == answer


def test_breakdown_values_name_the_buckets_as_sqlite_does() -> None:
    assert pg.sqlite_json("0.0000001") == "1e-7"
    assert pg.sqlite_json("100000000000000000000") == "1e+20"
    assert pg.sqlite_json("1.0") == "1.0"
    assert pg.sqlite_json('"\\u00e9"') == '"é"'
    assert pg.sqlite_json('[1, {"a": 2}]') == '[1,{"a":2}]'
    assert pg.sqlite_json(None) is None


# Profiles, event pages, stats -------------------------------------------------------------


def _persons(world: World) -> list[str]:
    rows = world.lite.execute(
        "SELECT person FROM person_event_stats WHERE app_id = ? "
        "UNION SELECT user_id FROM users WHERE app_id = ?",
        (world.app_id, world.app_id),
    )
    return sorted(r[0] for r in rows)


def test_profiles(world: World) -> None:
    persons = _persons(world)
    assert len(persons) > 10 and any(p.startswith("anon:") for p in persons)
    for person in [*persons, "nobody", "anon:nobody"]:
        for include_bots in (False, True):
            ours = lite.user_profile(world.lite, world.app_id, person, include_bots)
            theirs = pg.user_profile(world.pg, world.app_id, person, include_bots)
            same(theirs, ours)
    assert pg.user_profile(world.pg, world.app_id, "nobody", True) is None


PAGES = [
    EventsQuery(limit=50),
    EventsQuery(limit=37, order="asc", include_bots=True),
    EventsQuery(user="Émile", limit=3),
    EventsQuery(user="anon:z3", include_bots=True, limit=2, order="asc"),
    EventsQuery(anonymous_id="a1", limit=4),
    EventsQuery(anonymous_id="z7", limit=2, include_bots=True),
    EventsQuery(events=("view",), limit=9),
    EventsQuery(events=("view", "Zebra"), since=NOW - 3 * DAY, until=OCTOBER + DAY, limit=11),
]


@pytest.mark.parametrize("query", PAGES)
def test_event_pages_and_their_cursors(world: World, query: EventsQuery) -> None:
    pages = 0
    while True:
        ours = lite.events_page(world.lite, world.app_id, query)
        theirs = pg.events_page(world.pg, world.app_id, query)
        same(theirs.events, ours.events)
        assert theirs.last == ours.last
        pages += 1
        if ours.last is None:
            break
        query = dataclasses.replace(query, after=ours.last)
    assert pages > 1


@pytest.mark.parametrize(
    "query",
    [
        StatsQuery(),
        StatsQuery(include_bots=True),
        StatsQuery(events=("view", "apple"), since=NOW - 5 * DAY, until=OCTOBER + 2 * DAY),
    ],
)
def test_daily_stats(world: World, query: StatsQuery) -> None:
    ours = lite.event_stats(world.lite, world.app_id, query)
    assert len(ours["days"]) > 5
    same(pg.event_stats(world.pg, world.app_id, query), ours)


# The live stream and the export ----------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "include_bots"), [((), False), ((), True), (("view", "signup"), False)]
)
def test_stream(world: World, events: tuple[str, ...], include_bots: bool) -> None:
    end = lite.stream_position(world.lite)
    assert pg.stream_position(world.pg) == end > 0
    after, seen = 0, 0
    while True:
        ours = lite.stream_events(world.lite, world.app_id, after, events, include_bots, 25)
        same(pg.stream_events(world.pg, world.app_id, after, events, include_bots, 25), ours)
        if not ours:
            break
        seen += len(ours)
        after = ours[-1][0]
    assert seen > 25


@pytest.mark.parametrize(("since", "until"), [(None, None), (NOW - 2 * DAY, OCTOBER + 1)])
def test_export(world: World, since: int | None, until: int | None) -> None:
    ours = list(world.store.export_events(world.app_id, since, until))
    assert len(ours) > 50
    same(list(pg.export_rows(world.pg, world.app_id, since, until)), ours)
    assert pg.stream_position(world.pg) > 0  # the cursor's transaction ended
    assert _status(world.pg) == TransactionStatus.IDLE


def test_every_query_reads_one_app(world: World) -> None:
    # The other app holds the same people and event names: only app_id tells them apart.
    theirs = {e["id"] for e in pg.export_rows(world.pg, world.other_app)}
    page = pg.events_page(world.pg, world.app_id, EventsQuery(include_bots=True, limit=1000))
    streamed = pg.stream_events(world.pg, world.app_id, 0, (), True, 10_000)
    ours = {e["id"] for e in page.events} | {e["id"] for _, e in streamed}
    assert theirs and ours and not theirs & ours


# Snapshots and connections --------------------------------------------------------------


def _status(conn: psycopg.Connection[Any]) -> TransactionStatus:
    return conn.info.transaction_status


def test_a_funnel_reads_in_one_read_only_snapshot(world: World) -> None:
    query = parse_funnel_query({"steps": ["signup", "view"], "breakdown": "plan"})
    for cache in (None, ColumnCache()):  # as rows, and as columns
        with pg.funnel_events(world.pg, cache, world.app_id, query):
            isolation = world.pg.execute("SHOW transaction_isolation").fetchone()
            assert isolation == ("repeatable read",)
            assert world.pg.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert _status(world.pg) == TransactionStatus.IDLE


def test_inside_the_callers_transaction_and_with_any_row_factory(world: World) -> None:
    query = parse_segment_query({"conditions": [{"has_done": {"event": "view"}}]}, NOW)
    expected = lite.segment(world.lite, world.app_id, query)
    url = world.pg.info.dsn
    with psycopg.connect(url, row_factory=dict_row) as conn:  # not autocommit
        set_json_loads(orjson.loads, conn)
        conn.execute("SELECT 1")  # psycopg opened a transaction: the queries join it
        assert pg.segment(conn, world.app_id, query) == expected
        assert _status(conn) == TransactionStatus.INTRANS
        conn.rollback()
        assert pg.segment(conn, world.app_id, query) == expected  # a snapshot of its own
        assert _status(conn) == TransactionStatus.IDLE
