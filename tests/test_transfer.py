"""`collector migrate-data`: a SQLite database moved whole into an empty database of
either backend answers every question as the original did."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from click.testing import CliRunner

from collector.cli import main
from collector.ids import hash_key
from collector.models import Event
from collector.query.funnels import parse_funnel_query, run_funnel
from collector.query.segments import parse_segment_query
from collector.query.types import AnalyticsQuery, EventsQuery
from collector.store import Store, open_store
from tests.test_segments import DAY, NOW, ev

FIGURES = AnalyticsQuery(since=NOW - 7 * DAY, until=NOW + DAY, include_bots=True)


def ruled(store: Store, event: Event) -> Event:
    """The event with its app's rules, as the pipeline hands it over."""
    app = store.get_app(event.app_id)
    assert app is not None
    return dataclasses.replace(event, rules=tuple(r for r in app.rules if r.event == event.name))


def _seed(store: Store) -> tuple[str, str]:
    app = store.create_app("Shop", ["https://shop.example.com"], {"ip_mode": "truncate"})
    store.add_rule(app.app_id, "confirmation", dedupe_key="orderId")
    _, key = store.create_key(app.app_id)
    store.write(
        [
            ev(app.app_id, "page_viewed", NOW - 3 * DAY, anon="a1", props={"path": "/"}),
            ev(app.app_id, "signup_completed", NOW - 2 * DAY, user="u1", anon="a1"),
            ev(app.app_id, "plan_upgraded", NOW - DAY, user="u1", traits={"plan": "pro"}),
            ev(app.app_id, "page_viewed", NOW - DAY, anon="a2", bot=True),
            ruled(store, ev(app.app_id, "confirmation", NOW, user="u2", props={"orderId": 7})),
        ]
    )
    store.index_all()
    # Accepted but not indexed yet: the copy must not leave it behind.
    store.write([ev(app.app_id, "page_viewed", NOW, user="u2", props={"path": "/late"})])
    return app.app_id, key


def _answers(store: Store, app_id: str) -> dict[str, object]:
    segment = parse_segment_query(
        {"match": "all", "conditions": [{"has_done": {"event": "page_viewed"}}]}, NOW
    )
    funnel = parse_funnel_query({"steps": ["page_viewed", "signup_completed"]})
    events = store.events_page(app_id, EventsQuery(include_bots=True, limit=50)).events
    return {
        "export": list(store.export_events(app_id)),
        "segment": store.segment(app_id, segment),
        "funnel": run_funnel(store, app_id, funnel),
        "profile": store.user_profile(app_id, "u1"),
        "events": [(e["id"], e["event"], e["person"]) for e in events],
        # The figures read visits by their day's version (visit_days), which moves too.
        "figures": store.analytics_overview(app_id, FIGURES)["results"],
        "pages": store.analytics_breakdown(app_id, FIGURES, "page")["results"],
        "apps": [(a.app_id, a.name, a.origins, a.settings, a.rules) for a in store.list_apps()],
        "secret": store.secret(),
    }


def test_a_sqlite_database_moves_whole_into_an_empty_one(tmp_path: Path, db: str) -> None:
    source_path = str(tmp_path / "old.db")
    source = open_store(source_path)
    source.migrate()
    app_id, key = _seed(source)
    before = _answers(source, app_id)
    source.close()

    result = CliRunner().invoke(main, ["migrate-data", "--from", source_path, "--to", db])
    assert result.exit_code == 0, result.output
    assert "copied 6 events of 1 apps" in result.stdout

    target = open_store(db)
    try:
        assert _answers(target, app_id) == before
        found = target.app_for_key(hash_key(key))
        assert found is not None and found.app_id == app_id  # keys move hashed
        # The dedupe rule's state moved too, and new rules do not reuse moved ids.
        again = ruled(target, ev(app_id, "confirmation", NOW, user="u3", props={"orderId": 7}))
        outcome = target.write([again])
        assert outcome[0].status == "discarded"
        rule = target.add_rule(app_id, "email_opened", throttle_ms=1000)
        assert rule.id > max(r.id for r in before["apps"][0][4])  # type: ignore[index]
    finally:
        target.close()

    refused = CliRunner().invoke(main, ["migrate-data", "--from", source_path, "--to", db])
    assert refused.exit_code != 0 and "not empty" in refused.output
