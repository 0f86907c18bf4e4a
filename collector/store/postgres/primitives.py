"""core.Primitives in PostgreSQL, and the transactions built on them: the inbox and its
indexing, and what deletes share (message ids released, person summaries rebuilt).

Many collectors run these at once. Accepting needs no lock of its own: message ids,
rule keys and users are claimed row by row (INSERT … ON CONFLICT waits on a concurrent
claim of the same key until that transaction ends), each kind of row in key order, so
two groups sharing keys queue instead of deadlocking. Indexing is serialised across
processes and hosts by a transaction-level advisory lock (`INDEX_LOCK`): no two
collectors index the same inbox rows, and event `seq` numbers are handed out in commit
order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from collector.models import Event
from collector.store import codec, core, person_deletion, visits
from collector.store.postgres import migrations, partitions
from collector.store.postgres.visits import VisitTables

# Fixed and arbitrary: every collector must use the same key.
INDEX_LOCK = 0x7E11_7A1E_0002
CHANNEL = "telltale_events"  # NOTIFY'd after an indexing commit that stored events

_NEVER = -(2**63)  # rule_state.last_ts of a key claimed in this transaction, not yet set
_MAX_ID = 2**63 - 1


def lock_indexing(conn: psycopg.Connection[Any], wait: bool) -> bool:
    """Take the indexing lock for the rest of the transaction; whether it was taken."""
    if wait:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK,))
        return True
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (INDEX_LOCK,)).fetchone()
    return bool(row and row[0])


class PartitionsMissing(Exception):
    """Indexing needs partitions that do not exist (raised only when asked to)."""

    def __init__(self, months: list[partitions.Month]) -> None:
        super().__init__(months)
        self.months = months


def backlog(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(sum(n), 0) FROM inbox").fetchone()
    return int(row[0]) if row else 0


def last_inbox_id(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute("SELECT max(id) FROM inbox").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def index_pending(
    conn: psycopg.Connection[Any],
    at_least: int | None = None,
    *,
    until: int | None = None,
    create_partitions: bool = True,
) -> int:
    """Index the oldest inbox rows, whole rows until `at_least` events (None: all), none
    after inbox id `until`, in the caller's transaction, which holds the indexing lock;
    return how many events were indexed. With create_partitions=False, missing
    partitions raise PartitionsMissing instead of being made here (see partitions.py)."""
    last = _MAX_ID if until is None else until
    if at_least is None:
        rows = conn.execute(
            "SELECT id, data FROM inbox WHERE id <= %s ORDER BY id", (last,)
        ).fetchall()
    else:
        # Whole rows up to the first whose running total reaches at_least: the window
        # streams the primary key in order and stops there.
        rows = conn.execute(
            "SELECT id, data FROM inbox WHERE id <= %(last)s AND id <= coalesce(("
            " SELECT id FROM (SELECT id, sum(n) OVER (ORDER BY id) AS upto FROM inbox"
            "  WHERE id <= %(last)s) AS running"
            " WHERE upto >= %(at_least)s ORDER BY id LIMIT 1), %(last)s) ORDER BY id",
            {"last": last, "at_least": at_least},
        ).fetchall()
    if not rows:
        return 0
    events = [ev for _, data in rows for ev in codec.decode(bytes(data))]
    needed = partitions.missing(
        conn, partitions.wanted(ev.ts for ev in events if ev.kind == "track")
    )
    if needed:
        if not create_partitions:
            raise PartitionsMissing(needed)
        partitions.create(conn, needed)
    core.index(Primitives(conn), events)
    # By id, not "id <= last": a row of a transaction that commits after this read has a
    # smaller id than rows read here, and must stay for the next round.
    conn.execute("DELETE FROM inbox WHERE id = ANY(%b::bigint[])", ([r[0] for r in rows],))
    if any(ev.kind == "track" for ev in events):
        conn.execute(f"NOTIFY {CHANNEL}")  # delivered at commit
    return len(events)


def forget_message_ids(
    conn: psycopg.Connection[Any], table: str, app_id: str, where: str, params: Sequence[Any]
) -> None:
    """Release the message ids of the rows of `table` about to be deleted: a deleted
    event is not kept as a duplicate."""
    kind = core.KIND["identify" if table == "identifies" else "track"]
    conn.execute(
        f"DELETE FROM message_ids WHERE app_id = %s AND kind = {kind} AND message_id IN "
        f"(SELECT message_id FROM {table} WHERE app_id = %s AND {where} "
        "AND message_id IS NOT NULL)",
        (app_id, app_id, *params),
    )


def forget_call_owners(
    conn: psycopg.Connection[Any], app_id: str, where: str, params: Sequence[Any]
) -> None:
    """Release the message ids of the unstored calls (core.OwnerRow) matching `where`,
    and forget who they named."""
    conn.execute(
        "DELETE FROM message_ids WHERE app_id = %s AND (kind, message_id) IN "
        f"(SELECT kind, message_id FROM call_owners WHERE app_id = %s AND {where})",
        (app_id, app_id, *params),
    )
    conn.execute(f"DELETE FROM call_owners WHERE app_id = %s AND {where}", (app_id, *params))


def purge_people(conn: psycopg.Connection[Any], app_id: str, cutoff: int) -> None:
    """Retention's last step: the people left with no events and no identify calls,
    their users rows last seen before the cutoff, links, aliases and persons rows."""
    found = [
        r[0]
        for r in conn.execute(
            person_deletion.GONE.format(m="%(app)s", cutoff="%(cutoff)s"),
            {"app": app_id, "cutoff": cutoff},
        )
    ]
    aliases = {
        p: u
        for p, u in conn.execute(
            "SELECT previous_id, user_id FROM user_aliases WHERE app_id = %s", (app_id,)
        )
    }
    gone = person_deletion.gone_people(found, aliases)
    if not gone:
        return
    anon_ids = [
        core.ANON + r[0]
        for r in conn.execute(
            "SELECT anonymous_id FROM identities WHERE app_id = %s AND user_id = ANY(%s)",
            (app_id, gone),
        )
    ]
    for table in ("users", "identities"):
        conn.execute(f"DELETE FROM {table} WHERE app_id = %s AND user_id = ANY(%s)", (app_id, gone))
    conn.execute(
        "DELETE FROM user_aliases WHERE app_id = %s "
        "AND (user_id = ANY(%s) OR previous_id = ANY(%s))",
        (app_id, gone, gone),
    )
    restat_persons(conn, app_id, [*gone, *anon_ids])


def restat_persons(conn: psycopg.Connection[Any], app_id: str, persons: Iterable[str]) -> None:
    """Rebuild the persons' person_event_stats rows from their events (after deletes)."""
    chosen = sorted(set(persons))
    if not chosen:
        return
    conn.execute(
        "DELETE FROM person_event_stats WHERE app_id = %s AND person = ANY(%s)", (app_id, chosen)
    )
    conn.execute(
        f"INSERT INTO person_event_stats ({core.STAT_COLUMNS}) "
        "SELECT app_id, person, event, is_bot, count(*), min(ts), max(ts) FROM events "
        "WHERE app_id = %s AND person = ANY(%s) GROUP BY app_id, person, event, is_bot",
        (app_id, chosen),
    )
    _restat_scope(conn, app_id, chosen)


def _restat_scope(conn: psycopg.Connection[Any], app_id: str, persons: list[str]) -> None:
    """The persons rows of these persons, from their summaries and users rows."""
    conn.execute("DELETE FROM persons WHERE app_id = %s AND person = ANY(%s)", (app_id, persons))
    conn.execute(
        f"INSERT INTO persons ({core.PERSON_COLUMNS}) "
        "SELECT %s, person, max(human), max(bot), max(known) FROM ("
        " SELECT person, max(CASE WHEN is_bot = 0 THEN 1 ELSE 0 END) AS human,"
        " max(is_bot) AS bot, 0 AS known FROM person_event_stats"
        " WHERE app_id = %s AND person = ANY(%s) GROUP BY person"
        " UNION ALL SELECT user_id, 0, 0, 1 FROM users WHERE app_id = %s AND user_id = ANY(%s)"
        ") AS found GROUP BY person",
        (app_id, app_id, persons, app_id, persons),
    )


class BacklogGauge:
    """When an accepting transaction should count the backlog exactly.

    Counting sums `n` over every inbox row: ~20 ms at a million pending browser events,
    too much for every commit. So each process keeps the last count and adds what it has
    appended since; it counts again once that estimate passes the bound, or when the
    count is older than `RECOUNT_S` (other collectors append too). A lone collector
    keeps the bound exactly; several may pass it by what the others appended within
    the last `RECOUNT_S`."""

    RECOUNT_S = 1.0

    def __init__(self, max_backlog: int) -> None:
        self.max_backlog = max_backlog
        self._lock = threading.Lock()
        self._counted = 0
        self._counted_at = -1e9
        self._added = 0

    def should_count(self, n: int) -> bool:
        with self._lock:
            self._added += n
            return (
                self._counted + self._added > self.max_backlog
                or time.monotonic() - self._counted_at > self.RECOUNT_S
            )

    def counted(self, pending: int) -> None:
        with self._lock:
            self._counted = pending
            self._counted_at = time.monotonic()
            self._added = 0


# Shared rate limits (ingest/ratelimit.py, the dashboard's login limits). A bucket is
# refilled by the server's clock, so collectors' clocks need not agree. Its debt is
# floored at DEBT_FLOOR capacities. A row whose bucket has refilled is the same as no
# row: every RATE_SWEEP_S each process deletes such rows, so per-IP buckets do not pile
# up. (A bucket refilled in minutes, a login account's, must not be swept by age.)
DEBT_FLOOR = 4.0
RATE_SWEEP_S = 60.0
_sweep = {"at": 0.0}

_SHARE_RATE_USAGE = """
WITH u AS (
  SELECT * FROM unnest(%b::text[], %b::float8[], %b::float8[], %b::float8[])
    AS u(key, spent, rate, cap)
), t AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO rate_buckets AS b (key, tokens, rate, cap, updated)
SELECT u.key, greatest(u.cap - u.spent, -%b * u.cap), u.rate, u.cap, t.now FROM u, t
ON CONFLICT (key) DO UPDATE SET
  tokens = greatest(
    least(excluded.cap, b.tokens + greatest(excluded.updated - b.updated, 0) * excluded.rate)
      - (excluded.cap - excluded.tokens),
    -%b * excluded.cap),
  rate = excluded.rate, cap = excluded.cap, updated = excluded.updated
RETURNING key, tokens
"""


def share_rate_usage(
    conn: psycopg.Connection[Any], usage: Sequence[tuple[str, float, float, float]]
) -> dict[str, float]:
    """Take each key's spending from the bucket every collector shares; what each holds.
    One statement, keys in order (as every multi-row write here: two collectors syncing
    the same keys never deadlock). A bucket's first row starts full, less the spending:
    `excluded.tokens` carries cap - spent into the update. A spending below 0 gives
    tokens back (the login limits' refunds); a bucket holds no more than its capacity
    at its next use."""
    ordered = sorted(usage)
    keys, spent, rates, caps = _columns(ordered, 4) if ordered else ([], [], [], [])
    rows = conn.execute(
        _SHARE_RATE_USAGE, (keys, spent, rates, caps, DEBT_FLOOR, DEBT_FLOOR)
    ).fetchall()
    now = time.monotonic()
    if now - _sweep["at"] >= RATE_SWEEP_S:
        _sweep["at"] = now
        conn.execute(
            "DELETE FROM rate_buckets"
            " WHERE tokens + (extract(epoch FROM clock_timestamp()) - updated) * rate >= cap"
        )
    return {str(key): float(tokens) for key, tokens in rows}


def accept_plain(conn: psycopg.Connection[Any], events: Sequence[Event]) -> bool:
    """Accept a plain group (core.is_plain) in one statement, which commits as it ends
    (the connection is in autocommit): whether it did. False, with nothing stored, if
    one of its message ids is taken: the caller then judges it with core.accept."""
    claims = sorted(core.claims(events), key=lambda c: c[:3])
    try:
        conn.execute(
            "SELECT accept_plain(%b::text[], %b::smallint[], %b::text[], %b::text[], %s, %b)",
            (*_columns(claims, 4), len(events), codec.encode(events)),
        )
    except psycopg.DatabaseError as exc:
        if exc.sqlstate != migrations.ACCEPT_REPEATS:
            raise
        return False
    return True


# A group of more events than this waits for the indexing lock past the bound: one of
# batches (a server's, a flood's); a smaller one, the trickle of browser events most
# apps send, waits only past twice the bound.
WAIT_GROUP = 50


def bound_backlog(conn: psycopg.Connection[Any], gauge: BacklogGauge, group: int) -> None:
    """A bounded backlog, once the gauge says to count (`should_count`), in a transaction
    of its own after the group of `group` events committed (they are stored whatever
    happens here): past the bound, the commit also indexes what it adds before its
    events are answered, so reads have little to catch up on.

    An indexer under pressure holds the indexing lock chunk after chunk, so a commit
    that only tried the lock let the backlog grow without end under sustained load. A
    big group waits for the lock, and pays the indexing its size calls for: a flood of
    big batches is slowed, not the other apps' trickle of small groups, which wait only
    when the backlog is past twice the bound (then everything waits: the indexer is not
    keeping up at all, and readiness says so too)."""
    pending = backlog(conn)
    gauge.counted(pending)
    over = pending - gauge.max_backlog
    if over <= 0:
        return
    wait = group > WAIT_GROUP or over > gauge.max_backlog
    if not lock_indexing(conn, wait=wait):
        return  # a small group: the indexer has the lock and is taking the backlog down
    if wait:
        pending = backlog(conn)  # what the indexer took down while this one waited
        over = pending - gauge.max_backlog
    if over > 0:
        pending -= index_pending(conn, over)
    gauge.counted(pending)


class Primitives(VisitTables):
    """core.Primitives on one connection, inside the transaction it has open."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    # Idempotency --------------------------------------------------------------------

    def claim_message_ids(self, claims: Sequence[core.Claim]) -> int:
        # Sorted by key (a stable sort): a message id repeated within the group goes to
        # its first event, as in the group's order.
        ordered = sorted(claims, key=lambda c: c[:3])
        cur = self.conn.execute(
            "INSERT INTO message_ids (app_id, kind, message_id, event_id) "
            "SELECT * FROM unnest(%b::text[], %b::smallint[], %b::text[], %b::text[]) "
            "ON CONFLICT DO NOTHING",
            _columns(ordered, 4),
        )
        return cur.rowcount

    def message_id_owners(self, claims: Sequence[core.Claim]) -> dict[tuple[str, int, str], str]:
        keys = sorted({(a, k, m) for a, k, m, _ in claims})
        rows = self.conn.execute(
            "SELECT m.app_id, m.kind, m.message_id, m.event_id FROM message_ids m "
            "JOIN unnest(%b::text[], %b::smallint[], %b::text[]) AS c(app_id, kind, message_id) "
            "USING (app_id, kind, message_id)",
            _columns(keys, 3),
        ).fetchall()
        return {(a, int(k), m): e for a, k, m, e in rows}

    def release_message_id(self, claim: core.Claim) -> None:
        self.conn.execute(
            "DELETE FROM message_ids WHERE app_id = %s AND kind = %s AND message_id = %s "
            "AND event_id = %s",
            claim,
        )

    # Rules ----------------------------------------------------------------------------

    def claim_rule_key(self, rule_id: int, key: str, ts: int) -> bool:
        cur = self.conn.execute(
            "INSERT INTO rule_state (rule_id, key, last_ts) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (rule_id, key, ts),
        )
        return cur.rowcount > 0

    def rule_last_ts(self, rule_id: int, key: str) -> int | None:
        # Locks the key's row, making it first if need be: two collectors throttling the
        # same person at once take turns, and the second sees the first one's time. A
        # row made here holds _NEVER only until set_rule_ts, which core calls next.
        row = self.conn.execute(
            "INSERT INTO rule_state AS s (rule_id, key, last_ts) VALUES (%s, %s, %s) "
            "ON CONFLICT (rule_id, key) DO UPDATE SET last_ts = s.last_ts RETURNING last_ts",
            (rule_id, key, _NEVER),
        ).fetchone()
        return None if row is None or row[0] == _NEVER else int(row[0])

    def set_rule_ts(self, rule_id: int, key: str, ts: int) -> None:
        self.conn.execute(
            "INSERT INTO rule_state (rule_id, key, last_ts) VALUES (%s, %s, %s) "
            "ON CONFLICT (rule_id, key) DO UPDATE SET last_ts = excluded.last_ts",
            (rule_id, key, ts),
        )

    # Identities -------------------------------------------------------------------------

    def links(self, app_id: str, anonymous_ids: Sequence[str]) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT anonymous_id, user_id FROM identities "
            "WHERE app_id = %s AND anonymous_id = ANY(%b::text[])",
            (app_id, list(anonymous_ids)),
        ).fetchall()
        return {a: u for a, u in rows}

    def index_accepted(self) -> None:
        lock_indexing(self.conn, wait=True)
        index_pending(self.conn)

    # Users and counters -----------------------------------------------------------------

    def merge_users(self, updates: Sequence[core.UserUpdate]) -> None:
        ordered = sorted(updates, key=lambda u: (u[0], u[1]))
        # A new user gets the patch applied to {} (its nulls dropped); an existing one
        # gets the patch itself, nulls and all, which `excluded` no longer holds: hence
        # the patch looked up again from the statement's own input.
        self.conn.execute(
            "WITH patch AS (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]::jsonb[], "
            " %b::bigint[], %b::bigint[]) AS p(app_id, user_id, traits, first_seen, last_seen)) "
            "INSERT INTO users AS u (app_id, user_id, traits, first_seen, last_seen) "
            "SELECT app_id, user_id, jsonb_merge_patch('{}', traits), first_seen, last_seen "
            "FROM patch "
            "ON CONFLICT (app_id, user_id) DO UPDATE SET "
            "traits = jsonb_merge_patch(u.traits, (SELECT p.traits FROM patch p "
            " WHERE p.app_id = excluded.app_id AND p.user_id = excluded.user_id)), "
            "first_seen = least(u.first_seen, excluded.first_seen), "
            "last_seen = greatest(u.last_seen, excluded.last_seen)",
            _columns([(a, u, core.json_text(t), f, la) for a, u, t, f, la in ordered], 5),
        )

    def absorb_users(self, absorbs: Sequence[core.Absorb]) -> None:
        # jsonb_merge_patch(previous, user's): the user's own traits win.
        for app_id, previous, user in absorbs:
            if previous == user:
                continue
            self.conn.execute(
                "INSERT INTO users AS u (app_id, user_id, traits, first_seen, last_seen) "
                "SELECT app_id, %s, traits, first_seen, last_seen FROM users "
                "WHERE app_id = %s AND user_id = %s "
                "ON CONFLICT (app_id, user_id) DO UPDATE SET "
                "traits = jsonb_merge_patch(excluded.traits, u.traits), "
                "first_seen = least(u.first_seen, excluded.first_seen), "
                "last_seen = greatest(u.last_seen, excluded.last_seen)",
                (user, app_id, previous),
            )
            if previous.startswith(core.ANON):
                self.conn.execute(
                    "DELETE FROM users WHERE app_id = %s AND user_id = %s", (app_id, previous)
                )

    def count_discards(self, counts: Sequence[core.DiscardCount]) -> None:
        self.conn.execute(
            "INSERT INTO discards AS d (app_id, day, reason, n) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[]) "
            "ON CONFLICT (app_id, day, reason) DO UPDATE SET n = d.n + excluded.n",
            _columns(sorted(counts), 4),
        )

    # Accepted events ------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        self.conn.execute(
            "INSERT INTO inbox (n, data) VALUES (%s, %b)", (len(events), codec.encode(events))
        )

    # Indexing -------------------------------------------------------------------------

    def insert_events(self, rows: Sequence[core.EventRow]) -> None:
        # Positions for the stream, in order. Taking a block at once is safe only because
        # indexing is serialised (the caller holds INDEX_LOCK).
        row = self.conn.execute(
            "SELECT setval('event_seq', nextval('event_seq') + %s - 1)", (len(rows),)
        ).fetchone()
        assert row is not None
        first = int(row[0]) - len(rows) + 1
        with self.conn.cursor().copy(f"COPY events (seq, {core.EVENT_COLUMNS}) FROM STDIN") as copy:
            for seq, event_row in enumerate(rows, first):
                copy.write_row((seq, *event_row))

    def index_visits(self, rows: Sequence[core.EventRow]) -> None:
        visits.index(self, rows)

    def insert_identifies(self, rows: Sequence[core.IdentifyRow]) -> None:
        with self.conn.cursor().copy(
            f"COPY identifies ({core.IDENTIFY_COLUMNS}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)

    def add_person_stats(self, rows: Sequence[core.StatRow]) -> None:
        self.conn.execute(
            f"INSERT INTO person_event_stats AS s ({core.STAT_COLUMNS}) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::smallint[], "
            " %b::bigint[], %b::bigint[], %b::bigint[]) " + _STATS_MERGE,
            _columns(sorted(rows), 7),
        )

    def add_persons(self, rows: Sequence[core.PersonRow]) -> None:
        # The WHERE leaves a row that already has the flags untouched: no new version.
        self.conn.execute(
            f"INSERT INTO persons AS p ({core.PERSON_COLUMNS}) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::smallint[], %b::smallint[], "
            " %b::smallint[]) ON CONFLICT (app_id, person) DO UPDATE SET "
            "human = greatest(p.human, excluded.human), bot = greatest(p.bot, excluded.bot), "
            "known = greatest(p.known, excluded.known) WHERE excluded.human > p.human "
            "OR excluded.bot > p.bot OR excluded.known > p.known",
            _columns(sorted(rows), 5),
        )

    def add_call_owners(self, rows: Sequence[core.OwnerRow]) -> None:
        self.conn.execute(
            "INSERT INTO call_owners (app_id, person, kind, message_id, ts) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::smallint[], %b::text[], "
            " %b::bigint[]) ON CONFLICT DO NOTHING",
            _columns(sorted(set(rows)), 5),
        )

    def link(self, links: Sequence[core.Link]) -> None:
        ordered = sorted(links)
        self.conn.execute(
            "INSERT INTO identities (app_id, anonymous_id, user_id, linked_at) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[]) "
            "ON CONFLICT DO NOTHING",
            _columns(ordered, 4),
        )
        # What the visitor did before logging in now belongs to the user.
        self.move_persons([(user, app, core.ANON + anon) for app, anon, user, _ in ordered])

    # User aliases (core.apply_aliases) ----------------------------------------------

    def user_aliases(self, app_id: str, previous_ids: Sequence[str]) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT previous_id, user_id FROM user_aliases "
            "WHERE app_id = %s AND previous_id = ANY(%s)",
            (app_id, list(previous_ids)),
        ).fetchall()
        return {p: u for p, u in rows}

    def add_user_alias(self, alias: core.Alias) -> None:
        app_id, previous, user, _ = alias
        self.conn.execute(
            "INSERT INTO user_aliases (app_id, previous_id, user_id, aliased_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            alias,
        )
        self.conn.execute(
            "UPDATE user_aliases SET user_id = %s WHERE app_id = %s AND user_id = %s",
            (user, app_id, previous),
        )

    def move_persons(self, moves: Sequence[core.Move]) -> None:
        columns = _columns([(app, old, new) for new, app, old in sorted(moves)], 3)
        unnest = "unnest(%b::text[], %b::text[], %b::text[]) AS m(app_id, person, user_id)"
        self.conn.execute(
            f"UPDATE events e SET person = m.user_id FROM {unnest} "
            "WHERE e.app_id = m.app_id AND e.person = m.person",
            columns,
        )
        # Two persons moved to one user at once fold into one row each.
        self.conn.execute(
            f"INSERT INTO person_event_stats AS s ({core.STAT_COLUMNS}) "
            "SELECT s.app_id, m.user_id, s.event, s.is_bot, sum(s.n), min(s.first_ts), "
            f"max(s.last_ts) FROM person_event_stats s JOIN {unnest} "
            "ON s.app_id = m.app_id AND s.person = m.person "
            "GROUP BY s.app_id, m.user_id, s.event, s.is_bot " + _STATS_MERGE,
            columns,
        )
        self.conn.execute(
            f"DELETE FROM person_event_stats s USING {unnest} "
            "WHERE s.app_id = m.app_id AND s.person = m.person",
            columns,
        )
        visits.move(self, moves)
        self._move_scope(columns, unnest)

    def _move_scope(self, columns: list[list[Any]], unnest: str) -> None:
        """The persons rows' side of move_persons: the new person gains the old one's
        event flags; the old one, left without events, stays only as a known user."""
        self.conn.execute(
            f"INSERT INTO persons AS p ({core.PERSON_COLUMNS}) "
            "SELECT o.app_id, m.user_id, max(o.human), max(o.bot), 0 FROM persons o "
            f"JOIN {unnest} ON o.app_id = m.app_id AND o.person = m.person "
            "WHERE o.human = 1 OR o.bot = 1 GROUP BY o.app_id, m.user_id "
            "ON CONFLICT (app_id, person) DO UPDATE SET "
            "human = greatest(p.human, excluded.human), bot = greatest(p.bot, excluded.bot)",
            columns,
        )
        self.conn.execute(
            f"DELETE FROM persons p USING {unnest} "
            "WHERE p.app_id = m.app_id AND p.person = m.person AND p.known = 0",
            columns,
        )
        self.conn.execute(
            f"UPDATE persons p SET human = 0, bot = 0 FROM {unnest} "
            "WHERE p.app_id = m.app_id AND p.person = m.person",
            columns,
        )


_STATS_MERGE = (
    "ON CONFLICT (app_id, event, person, is_bot) DO UPDATE SET n = s.n + excluded.n, "
    "first_ts = least(s.first_ts, excluded.first_ts), "
    "last_ts = greatest(s.last_ts, excluded.last_ts)"
)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as column arrays, for `unnest`: one statement however many rows."""
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns
