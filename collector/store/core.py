"""What every backend must guarantee, decided once: idempotency, event rules (dedupe and
throttle), traits merging, identity linking and person resolution.

A backend supplies the primitives (`Primitives`), each a few statements of its own SQL
run inside the transaction it opened; the functions here decide with them. Two
transactions use them:

- `accept`, the group commit, before the answer: claims message ids, applies rules,
  merges traits and appends the accepted events for indexing;
- `index`, later (or at once, if a backend chooses): stores the events with their
  person (the user id, or "anon:" + anonymous id until that id is linked to a user),
  makes new identity links and moves what the linked anonymous id did to the user.

A backend also promises that every read sees every acknowledged event: whatever it
has accepted but not indexed is indexed before a read runs."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeAlias

import orjson

from collector import ids
from collector.models import DEFAULT_APP_SETTINGS, App, Event, Outcome
from collector.store.codec import Accepted
from collector.timeutil import iso, parse_duration_ms

# (app_id, kind, message_id, event_id): an event's claim on its message id. Events and
# identify calls are two namespaces (a track and an identify may share a message id).
Claim: TypeAlias = tuple[str, int, str, str]
KIND = {"track": 0, "identify": 1, "alias": 2}

# (app_id, user_id, traits patch, first ts, last ts): merged into the users table.
UserUpdate: TypeAlias = tuple[str, str, dict[str, Any], int, int]
# (app_id, day "YYYY-MM-DD", reason, n): discarded events counted, not stored.
DiscardCount: TypeAlias = tuple[str, str, str, int]
# (app_id, anonymous_id, user_id, linked_at ms): a new identity link.
Link: TypeAlias = tuple[str, str, str, int]
# (app_id, previous_id, user_id, aliased_at ms): an alias call, what `previous_id` did
# counts for `user_id`.
Alias: TypeAlias = tuple[str, str, str, int]
# (app_id, previous id, user id): a users row folded into the user's, that of an alias
# call's previous user id or of an identified visitor (`anon:ID`).
Absorb: TypeAlias = tuple[str, str, str]
# (new person, app_id, old person): a person whose events and summaries move to another.
Move: TypeAlias = tuple[str, str, str]
# An event as stored: (id, app_id, message_id, event, user_id, anonymous_id, person, ts,
# timestamp, sent_at, received_at, properties JSON, context JSON, is_bot 0|1).
EventRow: TypeAlias = tuple[
    str, str, str | None, str, str | None, str | None, str, int, str | None, str | None,
    int, str, str, int,
]  # fmt: skip
EVENT_COLUMNS = (
    "id, app_id, message_id, event, user_id, anonymous_id, person, ts, timestamp, sent_at, "
    "received_at, properties, context, is_bot"
)
# An identify call as stored: (id, app_id, message_id, user_id, anonymous_id,
# traits JSON, ts, received_at, context JSON).
IdentifyRow: TypeAlias = tuple[str, str, str | None, str, str | None, str, int, int, str]
IDENTIFY_COLUMNS = "id, app_id, message_id, user_id, anonymous_id, traits, ts, received_at, context"
# (app_id, person, event, is_bot, n, first ts, last ts): one person's summary of one
# event, added to what is stored.
StatRow: TypeAlias = tuple[str, str, str, int, int, int, int]
STAT_COLUMNS = "app_id, person, event, is_bot, n, first_ts, last_ts"
# (app_id, person, human, bot, known, each 0|1): a person a segment can find, with events
# not from a bot, events from one, a users row. Flags only grow while indexing, so most
# batches find every row already as they would leave it.
PersonRow: TypeAlias = tuple[str, str, int, int, int]
PERSON_COLUMNS = "app_id, person, human, bot, known"
# (app_id, person, kind, message_id, ts): a call that leaves no stored row (an identify
# naming only its anonymous id, an alias call) names this person; what releases its
# message id when the person is deleted or the call is past retention.
OwnerRow: TypeAlias = tuple[str, str, int, str, int]

ANON = "anon:"


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def now_iso() -> str:
    """Now, as the admin tables store their times (apps, keys, rules, migrations)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_segment_id() -> str:
    """A saved segment's id: random text, so a database moved between backends keeps
    making new ones without a sequence to advance."""
    return "seg_" + secrets.token_hex(8)


def new_app(name: str, origins: Sequence[str], settings: dict[str, Any]) -> App:
    """An app about to be stored: a new id, the default settings under the given ones."""
    return App(
        app_id=ids.app_id(),
        name=name,
        origins=list(origins),
        settings={**DEFAULT_APP_SETTINGS, **settings},
        created_at=now_iso(),
    )


class Primitives(Protocol):
    """A backend's statements, run in the transaction it has open."""

    # Idempotency.
    def claim_message_ids(self, claims: Sequence[Claim]) -> int:
        """Record each claim whose (app, kind, message id) is free; return how many
        were recorded."""

    def message_id_owners(self, claims: Sequence[Claim]) -> dict[tuple[str, int, str], str]:
        """(app, kind, message id) → the event id that holds it, for these claims."""

    def release_message_id(self, claim: Claim) -> None:
        """Free a message id this very event claimed (it was discarded, so a retry is
        judged again)."""

    # Rules: one state row per (rule, key).
    def claim_rule_key(self, rule_id: int, key: str, ts: int) -> bool:
        """Record the key if the rule has never seen it; whether it was new."""

    def rule_last_ts(self, rule_id: int, key: str) -> int | None: ...
    def set_rule_ts(self, rule_id: int, key: str, ts: int) -> None: ...

    # Identities.
    def links(self, app_id: str, anonymous_ids: Sequence[str]) -> dict[str, str]:
        """anonymous id → the user it is linked to, for those that are linked."""

    def index_accepted(self) -> None:
        """Index every accepted event not yet indexed (it may hold a new link)."""

    # Users and counters.
    def merge_users(self, updates: Sequence[UserUpdate]) -> None:
        """Upsert users: traits merged as a JSON merge patch (RFC 7396: a null removes
        a trait, on a new user too), first seen the earliest, last seen the latest."""

    def absorb_users(self, absorbs: Sequence[Absorb]) -> None:
        """For each (app, previous, user) of an alias call (a previous user id) or of an
        identify call (`anon:ID`, the visitor it identifies): the previous row's traits
        and seen times folded into the user's row (made if need be), whose own traits
        win; a previous id without a row adds nothing. A previous user's row stays (a
        later event may still name it); an anonymous visitor's goes, now the user's."""

    def count_discards(self, counts: Sequence[DiscardCount]) -> None: ...

    # Accepted events, for indexing.
    def append(self, events: Sequence[Event]) -> None: ...

    # Indexing.
    def insert_events(self, rows: Sequence[EventRow]) -> None: ...
    def index_visits(self, rows: Sequence[EventRow]) -> None:
        """Bring visits and hits up to date with just-inserted events (store/visits.py)."""
        ...

    def insert_identifies(self, rows: Sequence[IdentifyRow]) -> None: ...
    def add_person_stats(self, rows: Sequence[StatRow]) -> None:
        """Add to the summaries: n summed, first_ts the least, last_ts the greatest."""

    def add_persons(self, rows: Sequence[PersonRow]) -> None:
        """Add to the persons: each flag the greater of the stored and the new one."""

    def add_call_owners(self, rows: Sequence[OwnerRow]) -> None:
        """Record who each unstored call names (a row already there stays)."""

    def link(self, links: Sequence[Link]) -> None:
        """Store new links (an anonymous id already linked keeps its user), then move
        each linked anonymous person's events and summaries to the user."""

    # User aliases (`apply_aliases`).
    def user_aliases(self, app_id: str, previous_ids: Sequence[str]) -> dict[str, str]:
        """previous user id → the user it is an alias of, for those that are."""

    def add_user_alias(self, alias: Alias) -> None:
        """Store the alias unless its previous id already has one, and point the aliases
        that named the previous id as their user at the new user."""

    def move_persons(self, moves: Sequence[Move]) -> None:
        """Give each old person's events to the new person and fold its summaries and its
        persons row's event flags into the new person's (the old one keeps `known`)."""


def rule_kind(dedupe_key: str | None, throttle_ms: int | None) -> Literal["dedupe", "throttle"]:
    """A new rule's kind: either a dedupe key or a throttle, never both or neither."""
    if (dedupe_key is None) == (throttle_ms is None):
        raise ValueError("a rule is either a dedupe key or a throttle")
    return "dedupe" if dedupe_key is not None else "throttle"


def parse_throttle_ms(text: str) -> int:
    """A throttle rule's window from its text ("20m", "500ms"). ValueError unless it is
    a duration longer than 0: a zero window throttles nothing, a rule that never applies."""
    window = parse_duration_ms(text)
    if window <= 0:
        raise ValueError("must be longer than 0 (e.g. 500ms, 20m)")
    return window


def person_of(ev: Event, links: dict[tuple[str, str], str]) -> str:
    """The resolved identity an event counts for."""
    return (
        ev.user_id
        or links.get((ev.app_id, ev.anonymous_id or ""))
        or ANON + (ev.anonymous_id or "")
    )


def person_fields(person: str) -> tuple[str | None, str | None]:
    """(user id, anonymous id) of a person key."""
    if person.startswith(ANON):
        return None, person[len(ANON) :]
    return person, None


# Accepting ------------------------------------------------------------------------------


def accept(tx: Primitives, events: Sequence[Event]) -> list[Outcome]:
    """The group commit's decisions, one outcome per event in order: idempotency, rules
    and user traits now; the accepted events appended for indexing."""
    outcomes: list[Outcome | None] = [None] * len(events)
    repeats = False

    # Idempotency: claim every message id at once. The usual group has no repeat, and
    # the count of new claims proves it; otherwise the owners say which events repeat.
    group_claims = claims(events)
    if group_claims and tx.claim_message_ids(group_claims) != len(group_claims):
        owners = tx.message_id_owners(group_claims)
        for i, ev in enumerate(events):
            if ev.message_id:
                owner = owners[(ev.app_id, KIND[ev.kind], ev.message_id)]
                if owner != ev.id:
                    outcomes[i] = Outcome("duplicate", owner)
                    repeats = True

    if repeats or not is_plain(events):
        accepted = _judge(tx, events, outcomes)
    else:  # the usual group: nothing to judge, every event is new and accepted
        accepted = list(events)
        outcomes[:] = all_accepted(events)
    if accepted:
        tx.append(accepted)
    return [o for o in outcomes if o is not None]


def is_plain(events: Sequence[Event]) -> bool:
    """A group with nothing to judge but its message ids: no rule, no traits, no
    identify or alias call. If none of its ids is taken, every event is accepted as it
    is, and a backend may then accept it in one statement (`claims` and `all_accepted`)."""
    return not any(e.rules or e.traits or e.kind != "track" for e in events)


def claims(events: Sequence[Event]) -> list[Claim]:
    """The group's claims on its message ids."""
    return [(e.app_id, KIND[e.kind], e.message_id, e.id) for e in events if e.message_id]


def all_accepted(events: Sequence[Event]) -> list[Outcome]:
    return [Outcome("accepted", e.id) for e in events]


def _judge(tx: Primitives, events: Sequence[Event], outcomes: list[Outcome | None]) -> list[Event]:
    """Rules and user traits for the events not yet decided (None in `outcomes`, which
    this fills in); return the accepted ones."""
    links: dict[tuple[str, str], str] | None = None  # what throttle rules need, if any
    users: dict[tuple[str, str], list[Any]] = {}  # → [first, last, traits]
    absorbs: list[Absorb] = []
    discards: dict[tuple[str, str, str], int] = {}
    accepted: list[Event] = []
    for i, ev in enumerate(events):
        if outcomes[i] is not None:
            continue
        if ev.kind == "track" and ev.rules:
            if links is None:
                links = _links_for_rules(tx, events)
            reason = _apply_rules(tx, ev, links)
            if reason is not None:
                outcomes[i] = Outcome("discarded", reason=reason)
                key = (ev.app_id, iso(ev.received_at)[:10], reason)
                discards[key] = discards.get(key, 0) + 1
                if ev.message_id:  # not stored, so a retry is judged again
                    tx.release_message_id((ev.app_id, KIND["track"], ev.message_id, ev.id))
                continue

        # The users table holds identified users and their traits, written now rather
        # than at indexing: "require known user" checks it for the next request. Track
        # events without traits skip it: their first/last times are in the summaries.
        # An alias makes its new user known, as an identify does.
        # An identify that names only its anonymous id keeps its traits on that visitor,
        # under the person's own name (`anon:ID`), which trait conditions then find.
        holder = ev.user_id
        if holder is None and ev.kind == "identify" and ev.anonymous_id is not None:
            holder = ANON + ev.anonymous_id
        if holder is not None and (ev.kind != "track" or ev.traits):
            entry = users.get((ev.app_id, holder))
            if entry is None:
                users[(ev.app_id, holder)] = [ev.ts, ev.ts, dict(ev.traits or {})]
            else:
                entry[0] = min(entry[0], ev.ts)
                entry[1] = max(entry[1], ev.ts)
                if ev.traits:
                    entry[2].update(ev.traits)
        if ev.kind == "identify" and ev.user_id is not None and ev.anonymous_id is not None:
            # The visitor identified as the user: what it was told before is the user's
            # (what it did follows the link, at indexing).
            absorbs.append((ev.app_id, ANON + ev.anonymous_id, ev.user_id))
        if ev.kind == "alias":
            # What the previous id was told (its traits) now describes the user, as what
            # it did does (apply_aliases): a trait condition finds the merged user.
            assert ev.user_id is not None and ev.anonymous_id is not None  # validation
            absorbs.append((ev.app_id, ev.anonymous_id, ev.user_id))
        accepted.append(ev)
        outcomes[i] = Outcome("accepted", ev.id)

    if users:
        tx.merge_users([(a, u, v[2], v[0], v[1]) for (a, u), v in users.items()])
    if absorbs:  # after the group's own traits, which may be the previous id's
        tx.absorb_users(absorbs)
    if discards:
        tx.count_discards([(a, d, r, n) for (a, d, r), n in discards.items()])
    return accepted


def _links_for_rules(tx: Primitives, events: Sequence[Event]) -> dict[tuple[str, str], str]:
    """Identity links for throttled events that name no user: their person is the user
    their anonymous id is linked to. Accepted events may hold a new link, so they are
    indexed first (rare: a throttle rule on browser events)."""
    anon_only = [e for e in events if e.rules and e.user_id is None and e.anonymous_id]
    if not anon_only:
        return {}
    tx.index_accepted()
    return links_of(tx, anon_only)


def _apply_rules(tx: Primitives, ev: Event, links: dict[tuple[str, str], str]) -> str | None:
    """A discard reason if one of the event's rules drops it, else None (state updated)."""
    for rule in ev.rules:
        if rule.kind == "dedupe" and rule.dedupe_key:
            value = ev.properties.get(rule.dedupe_key)
            if value is None:
                continue
            if not tx.claim_rule_key(rule.id, json_text(value), ev.ts):
                return f"duplicate {rule.dedupe_key}"
        elif rule.kind == "throttle" and rule.throttle_ms:
            person = person_of(ev, links)
            last = tx.rule_last_ts(rule.id, person)
            # Both directions: an event that arrives late (a queue that was offline, a
            # server that batches) is throttled by a kept one just after it too. The state
            # is the latest event kept, so a late one never moves it back; one more than a
            # window older than it is judged against it alone.
            if last is not None and abs(ev.ts - last) < rule.throttle_ms:
                return "throttled"
            tx.set_rule_ts(rule.id, person, ev.ts if last is None else max(last, ev.ts))
    return None


def links_of(
    tx: Primitives, events: Iterable[Event] | Iterable[Accepted]
) -> dict[tuple[str, str], str]:
    """(app, anonymous_id) → the user it is linked to, for the events' anonymous ids."""
    by_app: dict[str, set[str]] = {}
    for ev in events:
        if ev.anonymous_id:
            by_app.setdefault(ev.app_id, set()).add(ev.anonymous_id)
    links: dict[tuple[str, str], str] = {}
    for app_id, anons in by_app.items():
        for anon, user in tx.links(app_id, sorted(anons)).items():
            links[(app_id, anon)] = user
    return links


# Indexing -------------------------------------------------------------------------------


@dataclass(slots=True)
class IndexPlan:
    """What indexing a run of accepted events writes, worked out before writing."""

    events: list[EventRow]
    identifies: list[IdentifyRow]
    stats: list[StatRow]
    persons: list[PersonRow]
    links: list[Link]
    aliases: list[Alias]  # applied after the rest is written (apply_aliases)
    owners: list[OwnerRow]


def index(tx: Primitives, events: Sequence[Accepted]) -> None:
    """Accepted events, in the order they were accepted, into the stored events and
    identify calls, with identity links, each event's person and the summaries."""
    write_index(tx, plan_index(tx, events))


def plan_index(tx: Primitives, events: Sequence[Accepted]) -> IndexPlan:
    """The rows, summaries and new links for `events`. It only reads (the links made so
    far), so a backend may plan before it takes its write lock, and write the plan under
    the lock if no other indexing committed in between (each one changes the links)."""
    links = links_of(tx, events)
    event_rows: list[EventRow] = []
    identify_rows: list[IdentifyRow] = []
    new_links: list[Link] = []
    aliases: list[Alias] = []
    owners: list[OwnerRow] = []
    for ev in events:
        app_id, user_id, anonymous_id = ev.app_id, ev.user_id, ev.anonymous_id
        if user_id is not None and anonymous_id is not None:
            link_key = (app_id, anonymous_id)
            if link_key not in links:
                # The first user an anonymous id is linked to keeps it (as PostHog does):
                # a shared device that never called reset() does not merge two people.
                links[link_key] = user_id
                new_links.append((app_id, anonymous_id, user_id, ev.received_at))

        if ev.kind == "alias":
            # Its previous id, as an anonymous id, was linked just above; as a user id,
            # apply_aliases gives what it did to the new user.
            assert user_id is not None and anonymous_id is not None  # validation
            aliases.append((app_id, anonymous_id, user_id, ev.received_at))
            if ev.message_id is not None:  # both ids: deleting either releases it
                for named in (anonymous_id, user_id):
                    owners.append((app_id, named, KIND["alias"], ev.message_id, ev.ts))
        elif ev.kind == "identify":
            if user_id is None:  # only an anonymous visitor's traits, kept at accepting
                if ev.message_id is not None and anonymous_id is not None:
                    owners.append(
                        (app_id, ANON + anonymous_id, KIND["identify"], ev.message_id, ev.ts)
                    )
                continue
            identify_rows.append(
                (
                    ev.id,
                    app_id,
                    ev.message_id,
                    user_id,
                    anonymous_id,
                    ev.traits or "{}",
                    ev.ts,
                    ev.received_at,
                    ev.context,
                )
            )
        else:
            person = (
                user_id or links.get((app_id, anonymous_id or "")) or ANON + (anonymous_id or "")
            )
            event_rows.append(
                (
                    ev.id,
                    app_id,
                    ev.message_id,
                    ev.name,
                    user_id,
                    anonymous_id,
                    person,
                    ev.ts,
                    ev.timestamp,
                    ev.sent_at,
                    ev.received_at,
                    ev.properties,
                    ev.context,
                    1 if ev.is_bot else 0,
                )
            )

    stats = person_stats(event_rows) if event_rows else []
    persons = person_rows(stats, events)
    return IndexPlan(event_rows, identify_rows, stats, persons, new_links, aliases, owners)


def write_index(tx: Primitives, plan: IndexPlan) -> None:
    if plan.events:
        tx.insert_events(plan.events)
        tx.index_visits(plan.events)
    if plan.identifies:
        tx.insert_identifies(plan.identifies)
    if plan.stats:
        tx.add_person_stats(plan.stats)
    if plan.persons:
        tx.add_persons(plan.persons)
    if plan.owners:
        tx.add_call_owners(plan.owners)
    if plan.links:
        tx.link(plan.links)
    apply_aliases(tx, plan.aliases, plan.events, plan.links)


def apply_aliases(
    tx: Primitives, aliases: Sequence[Alias], rows: Sequence[EventRow], links: Sequence[Link]
) -> None:
    """Alias calls (Segment's `alias`, PostHog's `$create_alias`): what the previous user
    id did, and does from now on, counts for the new one. It runs after the plan is
    written, under the write lock (it reads the aliases it writes). The aliases are
    stored in the order they came; then every user person this run touched (its events'
    persons, the users of its new links, the aliases' previous ids) that is an aliased
    previous id moves to its user. A run without aliases, whose users are not aliased,
    costs one lookup per app."""
    for app_id, previous, user, ts in aliases:
        # A chain resolves to its end (a → b, then b → c: a → c); a cycle is ignored.
        target = tx.user_aliases(app_id, [user]).get(user, user)
        if target != previous:
            tx.add_user_alias((app_id, previous, target, ts))
    by_app: dict[str, set[str]] = {}
    for row in rows:
        if not row[6].startswith(ANON):
            by_app.setdefault(row[1], set()).add(row[6])
    for app_id, _, user, _ in links:
        by_app.setdefault(app_id, set()).add(user)
    for app_id, previous, _, _ in aliases:
        by_app.setdefault(app_id, set()).add(previous)
    moves: list[Move] = []
    for app_id, persons in sorted(by_app.items()):
        for previous, user in sorted(tx.user_aliases(app_id, sorted(persons)).items()):
            if previous != user:
                moves.append((user, app_id, previous))
    if moves:
        tx.move_persons(moves)


def person_stats(rows: Sequence[EventRow]) -> list[StatRow]:
    """Event rows folded into summary rows: one per (app, person, event, bot flag), so a
    batch costs one upsert per person and event, not one per event."""
    groups: dict[tuple[str, str, str, int], list[int]] = {}
    for row in rows:
        key = (row[1], row[6], row[3], row[13])
        ts = row[7]
        group = groups.get(key)
        if group is None:
            groups[key] = [1, ts, ts]
        else:
            group[0] += 1
            group[1] = min(group[1], ts)
            group[2] = max(group[2], ts)
    return [(*key, n, first, last) for key, (n, first, last) in groups.items()]


def person_rows(stats: Sequence[StatRow], events: Sequence[Accepted]) -> list[PersonRow]:
    """The persons rows a run of accepted events adds: the event flags of each person in
    its summaries, and `known` for each user `accept` gave a users row (the same events
    as `_judge` merges: an identify or alias call, or an event with traits)."""
    rows: dict[tuple[str, str], list[int]] = {}
    for app_id, person, _, is_bot, *_ in stats:
        flags = rows.get((app_id, person))
        if flags is None:
            flags = rows[(app_id, person)] = [0, 0, 0]
        flags[1 if is_bot else 0] = 1
    for ev in events:
        if ev.user_id is not None and (ev.kind != "track" or ev.traits not in (None, "{}")):
            flags = rows.get((ev.app_id, ev.user_id))
            if flags is None:
                flags = rows[(ev.app_id, ev.user_id)] = [0, 0, 0]
            flags[2] = 1
    return [(app_id, person, f[0], f[1], f[2]) for (app_id, person), f in rows.items()]


def event_dict(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event in the export shape (the spec's JSONL fields)."""
    properties, context = row["properties"], row["context"]
    return {
        "id": row["id"],
        "message_id": row["message_id"],
        "event": row["event"],
        "user_id": row["user_id"],
        "anonymous_id": row["anonymous_id"],
        "person": row["person"],
        "timestamp": iso(row["ts"]),
        "client_timestamp": row["timestamp"],
        "sent_at": row["sent_at"],
        "received_at": iso(row["received_at"]),
        # JSON text (SQLite) or already decoded (PostgreSQL's jsonb)
        "properties": orjson.loads(properties) if isinstance(properties, str) else properties,
        "context": orjson.loads(context) if isinstance(context, str) else context,
    }
