"""Deleting an app (`Store.delete_app`, store/app_deletion.py; `collector apps delete`): every
row of it goes from every table that names an app, its pending events included, and no
row of another app changes. The tables are read from each backend's live schema, so a
table added later with an `app_id` column is checked without editing this file."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from collector.ingest.pipeline import bucket_names_app
from collector.ingest.ratelimit import KEY_SEP
from collector.models import Event
from collector.query.types import AnalyticsQuery
from collector.store import Store, is_url
from collector.store.app_deletion import APP_TABLES, LABELS
from tests.dbrows import rows, scalar
from tests.factories import DAY, ev
from tests.server import ROOT, CollectorProcess, create_app, index_all

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FIGURES = AnalyticsQuery(since=T0 - DAY, until=T0 + 7 * DAY, include_bots=True)


def app_tables(db: str) -> list[str]:
    """Every table of the live schema with an `app_id` column (PostgreSQL: partitions
    are read through their parent)."""
    if is_url(db):
        found = rows(
            db,
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE a.attname = 'app_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')"
            " AND NOT c.relispartition AND n.nspname = current_schema()",
        )
    else:
        found = [
            r
            for schema in ("main", "inbox")
            for r in rows(
                db,
                f"SELECT m.name FROM {schema}.sqlite_master AS m WHERE m.type = 'table'"
                f" AND EXISTS (SELECT 1 FROM pragma_table_info(m.name, '{schema}')"
                " WHERE name = 'app_id')",
            )
        ]
    return sorted(r[0] for r in found)


def alias(app_id: str, previous: str, user: str, ts: int) -> Any:
    return dataclasses.replace(
        ev(app_id, "alias", ts, user=user, anon=previous), kind="alias", name="alias"
    )


def populate(store: Store, app_id: str) -> None:
    """Something in every table an app has rows in, indexed."""
    rules = [
        store.add_rule(app_id, "confirmation", dedupe_key="orderId"),
        store.add_rule(app_id, "email_opened", throttle_ms=20 * 60 * 1000),
    ]

    def ruled(event: Event) -> Event:  # as the pipeline hands it over, with its rules
        return dataclasses.replace(event, rules=tuple(r for r in rules if r.event == event.name))

    store.create_key(app_id)
    store.save_segment(
        app_id, "Signed up", {"match": "all", "conditions": [{"has_done": {"event": "signup"}}]}
    )
    store.write(
        [
            ev(app_id, "page_viewed", T0, anon="a1", context={"path": "/"}, message_id="m1"),
            ev(app_id, "page_viewed", T0 + 1000, anon="a1", context={"path": "/p"}),
            ev(app_id, "identify", T0 + 2000, user="u1", anon="a1", traits={"email": "u@x.io"}),
            ev(app_id, "signup", T0 + 3000, user="u1", message_id="m2"),
            ruled(ev(app_id, "confirmation", T0 + 4000, user="u1", props={"orderId": "o1"})),
            ruled(ev(app_id, "confirmation", T0 + 5000, user="u1", props={"orderId": "o1"})),
            ruled(ev(app_id, "email_opened", T0 + 6000, user="u1")),
            ev(app_id, "page_viewed", T0 + 7000, anon="bot", bot=True, context={"path": "/"}),
            # with a message id: the call's owner is recorded (call_owners)
            dataclasses.replace(alias(app_id, "old-u1", "u1", T0 + 8000), message_id="m3"),
        ]
    )
    store.share_rate_usage(
        [
            (KEY_SEP.join(("app", app_id)), 1, 1, 10),
            (KEY_SEP.join(("ip", app_id, "10.0.0.0/24")), 1, 1, 10),
        ]
    )
    store.index_all()


def rule_ids(store: Store, app_id: str) -> list[int]:
    app = store.get_app(app_id)
    assert app is not None
    return [r.id for r in app.rules]


def rows_of(db: str, table: str, app_id: str) -> list[str]:
    return sorted(repr(r) for r in rows(db, f"SELECT * FROM {table} WHERE app_id = ?", [app_id]))


def snapshot(db: str, store: Store, app_id: str) -> dict[str, list[str]]:
    """Every row of the app, in every table that names apps (and its rules' state)."""
    taken = {t: rows_of(db, t, app_id) for t in app_tables(db)}
    ids = rule_ids(store, app_id)
    taken["rule_state"] = sorted(
        repr(r) for r in rows(db, "SELECT * FROM rule_state") if r[0] in ids
    )
    taken["rate_buckets"] = sorted(
        r[0] for r in rows(db, "SELECT key FROM rate_buckets") if bucket_names_app(app_id)(r[0])
    )
    return taken


def test_every_table_with_an_app_id_is_erased(db: str, store: Store) -> None:
    assert app_tables(db) == sorted(APP_TABLES)
    assert set(LABELS) == {*APP_TABLES, "rule_state", "rate_buckets"}


def test_delete_app_takes_every_row_of_it_and_nothing_else(db: str, store: Store) -> None:
    gone = store.create_app("Gone", ["https://gone.example.com"], {})
    kept = store.create_app("Kept", ["https://kept.example.com"], {})
    populate(store, kept.app_id)
    populate(store, gone.app_id)
    # A login limit's bucket names no app: it stays.
    store.share_rate_usage([(KEY_SEP.join(("login-ip", "10.0.0.0/24")), 1, 1, 10)])
    # The figures' column cache holds the app's days in this process.
    assert store.analytics_overview(gone.app_id, FIGURES)["results"]["unique_visitors"] > 0
    # Accepted, not indexed: on both backends these wait in the inbox.
    store.write(
        [
            ev(gone.app_id, "page_viewed", T0 + DAY, anon="a2", context={"path": "/late"}),
            ev(gone.app_id, "identify", T0 + DAY, user="u2", anon="a2", traits={"plan": "pro"}),
        ]
    )
    assert store.backlog() == 2

    before = snapshot(db, store, gone.app_id)
    assert [t for t, found in before.items() if not found] == [], "the test seeds every table"
    gone_rules = rule_ids(store, gone.app_id)
    kept_before = snapshot(db, store, kept.app_id)
    events = scalar(db, "SELECT count(*) FROM events WHERE app_id = ?", [gone.app_id])

    counts = store.delete_app(gone.app_id, bucket_names_app(gone.app_id))

    assert counts["events"] == events + 1  # the pending page view too
    assert counts["identifies"] == 2
    assert counts["apps"] == 1
    assert counts["persons"] >= 3  # a1 as u1, the bot, u2
    assert counts["rule_state"] >= 2 and counts["rate_buckets"] == 2
    after = snapshot(db, store, kept.app_id)
    assert after == kept_before
    for table in app_tables(db):
        assert rows_of(db, table, gone.app_id) == [], table
    assert [r for r in rows(db, "SELECT rule_id FROM rule_state") if r[0] in gone_rules] == []
    assert sorted(r[0] for r in rows(db, "SELECT key FROM rate_buckets")) == sorted(
        [KEY_SEP.join(("login-ip", "10.0.0.0/24")), *kept_before["rate_buckets"]]
    )
    # No inbox row is left to bring the pending events back.
    assert store.backlog() == 0
    assert scalar(db, "SELECT count(*) FROM inbox") == 0
    assert store.get_app(gone.app_id) is None
    assert [a.app_id for a in store.list_apps()] == [kept.app_id]
    # The cache no longer holds the app's days, nor serves them.
    assert store.analytics_overview(gone.app_id, FIGURES)["results"]["unique_visitors"] == 0
    cached = store.columns._apps.get(gone.app_id)
    assert cached is None or (not cached.days and cached.codes["person"].strings == [None])
    # Idempotent: again, nothing is found.
    assert set(store.delete_app(gone.app_id, bucket_names_app(gone.app_id)).values()) == {0}


def test_the_events_of_deleted_apps_partitions_stay_for_the_others(db: str, store: Store) -> None:
    if not is_url(db):
        pytest.skip("PostgreSQL's monthly partitions")
    gone = store.create_app("Gone", [], {})
    kept = store.create_app("Kept", [], {})
    store.write([ev(a.app_id, "signup", T0, user="u") for a in (gone, kept)])
    store.index_all()
    parts = rows(db, "SELECT relname FROM pg_class WHERE relispartition ORDER BY 1")
    store.delete_app(gone.app_id, bucket_names_app(gone.app_id))
    assert rows(db, "SELECT relname FROM pg_class WHERE relispartition ORDER BY 1") == parts
    assert rows(db, "SELECT app_id FROM events") == [(kept.app_id,)]


def test_a_deleted_apps_key_stops_authenticating_on_a_running_server(db: str) -> None:
    """Through a real server process: the CLI returns once every collector's app cache
    has expired, and an event accepted meanwhile (the cache still held the app) is
    deleted by its second pass."""
    created = create_app(db, "Gone")
    kept = create_app(db, "Kept")
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    body = {"events": [{"event": "signup", "user": "u1"}]}
    with CollectorProcess(db) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/v1/events", json=body, headers=headers).status_code == 202
        kept_auth = {"Authorization": f"Bearer {kept['api_key']}"}
        assert client.post("/v1/events", json=body, headers=kept_auth).status_code == 202
        deleting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "collector",
                "apps",
                "delete",
                created["app_id"],
                "--yes",
                "--db",
                db,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # While the CLI waits out the caches, the server may still accept for the app.
        statuses = set()
        while deleting.poll() is None:
            statuses.add(client.post("/v1/events", json=body, headers=headers).status_code)
            time.sleep(0.1)
        out, err = deleting.communicate()
        assert deleting.returncode == 0, out + err
        assert statuses <= {202, 401}
        refused = client.post("/v1/events", json=body, headers=headers)
        assert refused.status_code == 401, refused.text
        assert client.post("/v1/events", json=body, headers=kept_auth).status_code == 202
    index_all(db)  # what is pending, as a read would first
    for table in app_tables(db):
        assert rows_of(db, table, created["app_id"]) == [], table
    assert scalar(db, "SELECT count(*) FROM events WHERE app_id = ?", [kept["app_id"]]) == 2
