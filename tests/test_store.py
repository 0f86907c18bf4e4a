"""What every backend guarantees (store/core.py), through the `store` fixture: each test
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collector.store import Store
from tests.factories import ev
from tests.test_segments import NOW


def _traits(store: Store, app_id: str, user: str) -> dict[str, object]:
    profile = store.user_profile(app_id, user)
    assert profile is not None
    traits: dict[str, object] = profile["traits"]
    return traits


def test_traits_merge_as_a_json_merge_patch(store: Store) -> None:
    app_id = store.create_app("Shop", ["https://shop.example.com"], {}).app_id
    store.write(
        [ev(app_id, "identify", NOW, user="u1", traits={"plan": "pro", "seats": 3, "org": None})]
    )
    # A null on a new user is dropped, as on an existing one.
    assert _traits(store, app_id, "u1") == {"plan": "pro", "seats": 3}
    store.write([ev(app_id, "identify", NOW + 1, user="u1", traits={"plan": None, "seats": 5})])
    assert _traits(store, app_id, "u1") == {"seats": 5}
    # Nested objects merge key by key.
    store.write([ev(app_id, "identify", NOW + 2, user="u1", traits={"org": {"name": "A"}})])
    store.write([ev(app_id, "identify", NOW + 3, user="u1", traits={"org": {"size": 9}})])
    assert _traits(store, app_id, "u1") == {"seats": 5, "org": {"name": "A", "size": 9}}


def test_a_retry_is_stored_once_and_answered_with_the_original_id(store: Store) -> None:
    app_id = store.create_app("Shop", ["https://shop.example.com"], {}).app_id
    first = ev(app_id, "signed_up", NOW, user="u1", message_id="m-1")
    retry = ev(app_id, "signed_up", NOW, user="u1", message_id="m-1")
    assert store.write([first])[0].status == "accepted"
    outcome = store.write([retry])[0]
    assert (outcome.status, outcome.event_id) == ("duplicate", first.id)
    assert [e["id"] for e in store.export_events(app_id)] == [first.id]


def test_a_removed_rules_id_is_never_given_to_a_new_rule(store: Store) -> None:
    app_id = store.create_app("Shop", ["https://shop.example.com"], {}).app_id
    store.add_rule(app_id, "confirmation", dedupe_key="orderId")
    last = store.add_rule(app_id, "email_opened", throttle_ms=60_000)
    # The throttle has seen u1: a rule that took its id would inherit that state.
    store.write([ev(app_id, "email_opened", NOW, user="u1")])
    assert store.remove_rule(app_id, last.id)
    again = store.add_rule(app_id, "email_opened", throttle_ms=60_000)
    assert again.id > last.id
    outcome = store.write([ev(app_id, "email_opened", NOW + 1_000, user="u1")])[0]
    assert outcome.status == "accepted"
