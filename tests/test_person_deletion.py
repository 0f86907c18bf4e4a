"""What `users delete` and retention's purge leave of a person (store/person_deletion.py), on
both backends: nothing of any id the person had (an aliased previous id, linked
anonymous ids), in any table; no rules' state their events left; their calls' message
ids released, so a retry is stored again."""

from __future__ import annotations

import dataclasses
from typing import Any

from collector.models import App, Event, Rule
from collector.query.segments import parse_segment_query
from collector.store import Store
from collector.store.tables import TABLES
from tests.dbrows import rows
from tests.factories import DAY, ev

NOW = 1_790_000_000_000
OLD, NEW, ANON = "olduser", "newuser", "device-1"


def alias(app_id: str, previous: str, user: str, ts: int, message_id: str) -> Event:
    return dataclasses.replace(
        ev(app_id, "alias", ts, user=user, anon=previous, message_id=message_id),
        kind="alias",
        name="alias",
    )


def ruled(event: Event, *rules: Rule) -> Event:
    return dataclasses.replace(event, rules=rules)


def retry(event: Event) -> Event:
    """The same call sent again: the same message id, a new event id."""
    return dataclasses.replace(event, id=ev(event.app_id, "x", event.ts).id)


def people(store: Store, app_id: str) -> set[str]:
    page = store.segment(app_id, parse_segment_query({"conditions": [], "limit": 1000}, NOW))
    return {u["id"] if u["id"] is not None else "anon:" + u["anonymous_id"] for u in page.users}


def mentions(db: str, text: str) -> dict[str, list[Any]]:
    """Every row of every table (the store's list of them) that holds `text` anywhere."""
    found: dict[str, list[Any]] = {}
    for table in TABLES:
        for row in rows(db, f"SELECT {', '.join(table.columns)} FROM {table.name}"):
            if any(text in str(value) for value in row):
                found.setdefault(table.name, []).append(row)
    return found


def test_deleting_an_aliased_user_leaves_nothing_of_the_old_id(
    store: Store, app: App, db: str
) -> None:
    a = app.app_id
    context = {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0 (old device)"}
    store.write([ev(a, "identify", NOW - 3 * DAY, user=OLD, anon=ANON, message_id="m-id-old",
                    traits={"email": "old@example.com"}, context=context)])  # fmt: skip
    store.write([ev(a, "view", NOW - 3 * DAY, user=OLD, message_id="m-ev-old")])
    store.write([alias(a, OLD, NEW, NOW - 2 * DAY, "m-alias")])
    store.write([ev(a, "view", NOW - DAY, user=NEW, message_id="m-ev-new")])
    store.write([ev(a, "view", NOW - DAY, user="bystander")])
    store.index_all()
    assert store.user_profile(a, OLD) is None or OLD not in people(store, a)

    store.delete_user(a, NEW)

    for gone in (OLD, NEW, ANON, "old@example.com", "203.0.113.9"):
        assert mentions(db, gone) == {}, gone
    assert rows(db, "SELECT message_id FROM message_ids") == [] or {
        r[0] for r in rows(db, "SELECT message_id FROM message_ids")
    }.isdisjoint({"m-id-old", "m-ev-old", "m-alias", "m-ev-new"})
    assert store.user_profile(a, OLD) is None and store.user_profile(a, NEW) is None
    assert people(store, a) == {"bystander"}
    assert store.find_people(a, "old", True, 10) == []
    # Every message id is free again: a retry is a new call, stored.
    for retry in (
        ev(a, "identify", NOW, user=OLD, message_id="m-id-old"),
        ev(a, "view", NOW, user=OLD, message_id="m-ev-old"),
        alias(a, OLD, NEW, NOW, "m-alias"),
    ):
        assert store.write([retry])[0].status == "accepted"


def test_deleting_a_user_releases_their_anonymous_identify_and_alias_calls(
    store: Store, app: App
) -> None:
    a = app.app_id
    calls = [
        ev(a, "identify", NOW - DAY, anon=ANON, traits={"name": "Ann"}, message_id="m-anon"),
        ev(a, "view", NOW - DAY, user="ann", anon=ANON),  # links the device to ann
        alias(a, "ann-before", "ann", NOW - DAY, "m-alias-ann"),
    ]
    for call in calls:
        store.write([call])
    store.index_all()
    assert store.write([retry(calls[0])])[0].status == "duplicate"
    assert store.write([retry(calls[2])])[0].status == "duplicate"

    store.delete_user(a, "ann")

    assert store.write([retry(calls[0])])[0].status == "accepted"
    assert store.write([retry(calls[2])])[0].status == "accepted"


def test_deleting_an_anonymous_visitor_by_its_anon_id(store: Store, app: App, db: str) -> None:
    a = app.app_id
    store.write([ev(a, "identify", NOW - DAY, anon=ANON, traits={"email": "v@example.com"},
                    message_id="m-v")])  # fmt: skip
    store.write([ev(a, "view", NOW - DAY, anon=ANON)])
    store.delete_user(a, "anon:" + ANON)
    assert mentions(db, ANON) == {} and mentions(db, "v@example.com") == {}
    assert people(store, a) == set()


def test_deleting_a_user_forgets_their_throttle_keys_and_dedupe_values(
    store: Store, app: App, db: str
) -> None:
    a = app.app_id
    dedupe = store.add_rule(a, "order", dedupe_key="orderId")
    throttle = store.add_rule(a, "view", throttle_ms=DAY)
    order = ruled(ev(a, "order", NOW - DAY, user="buyer", props={"orderId": "A-17"}), dedupe)
    store.write([ruled(ev(a, "view", NOW - DAY, anon=ANON), throttle)])  # before login
    store.write([order, ruled(ev(a, "view", NOW - DAY, user="buyer", anon=ANON), throttle)])
    store.write([alias(a, "buyer-before", "buyer", NOW - DAY, "m-a")])
    store.write([ruled(ev(a, "view", NOW - DAY, user="buyer-before"), throttle)])
    store.index_all()
    keys = {k for _, k in rows(db, "SELECT rule_id, key FROM rule_state")}
    assert {"anon:" + ANON, "buyer", '"A-17"'} <= keys
    resent = retry(order)
    assert store.write([resent])[0].status == "discarded"

    store.delete_user(a, "buyer")

    assert rows(db, "SELECT rule_id, key FROM rule_state") == []
    assert store.write([resent])[0].status == "accepted"
    again = ruled(ev(a, "view", NOW - DAY + 1, anon=ANON), throttle)
    assert store.write([again])[0].status == "accepted"


def test_retention_takes_the_people_it_leaves_with_nothing(store: Store, app: App, db: str) -> None:
    a = app.app_id
    old, cutoff = NOW - 40 * DAY, NOW - 30 * DAY
    dedupe = store.add_rule(a, "order", dedupe_key="email")
    throttle = store.add_rule(a, "view", throttle_ms=60_000)
    store.write([ev(a, "identify", old, user="gone", anon="d-gone",
                    traits={"email": "gone@example.com"})])  # fmt: skip
    store.write([ruled(ev(a, "order", old, user="gone", props={"email": "gone@example.com"}),
                       dedupe)])  # fmt: skip
    store.write([ruled(ev(a, "view", old, user="gone"), throttle)])
    store.write([alias(a, "gone-before", "gone", old, "m-gone")])
    store.write([ev(a, "identify", old, anon="d-anon", traits={"name": "anon"}, message_id="m-an")])
    # Stays: old anonymous events, linked at login, and recent ones.
    store.write([ev(a, "view", old, anon="d-stays")])
    store.write([ev(a, "identify", old, user="stays", anon="d-stays", traits={"plan": "pro"})])
    store.write([ev(a, "view", NOW - DAY, user="stays")])
    store.index_all()

    store.purge(a, cutoff)

    for gone in ("gone", "d-gone", "gone@example.com", "d-anon", "m-an"):
        assert mentions(db, gone) == {}, gone
    assert people(store, a) == {"stays"}
    assert store.user_profile(a, "gone") is None
    profile = store.user_profile(a, "stays")
    assert profile is not None and profile["traits"] == {"plan": "pro"}
    assert rows(db, "SELECT user_id FROM identities") == [("stays",)]
    # The dedupe value went with its event: sent again, it is stored.
    again = ruled(ev(a, "order", NOW, user="other", props={"email": "gone@example.com"}), dedupe)
    assert store.write([again])[0].status == "accepted"
    assert store.write([ev(a, "identify", NOW, anon="d-anon", message_id="m-an")])[0].status == (
        "accepted"
    )
