"""Retention: each app's `retention_days`, enforced by `collector purge` and in the
background by the server's indexer process, on each backend."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from click.testing import CliRunner

from collector import retention
from collector.cli import main
from collector.store import Store, open_store
from collector.timeutil import now_ms
from tests.factories import DAY, ev
from tests.server import CollectorProcess, cli, create_app


def _seed(store: Store, app_id: str, now: int) -> None:
    store.write(
        [
            ev(app_id, "ancient", now - 40 * DAY, user="u1"),
            ev(app_id, "old", now - 8 * DAY, user="u1"),
            ev(app_id, "recent", now - 2 * DAY, user="u1"),
        ]
    )


def _names(store: Store, app_id: str) -> list[str]:
    return [row["event"] for row in store.export_events(app_id)]


def test_enforce_deletes_only_what_each_app_keeps_no_longer(store: Store) -> None:
    now = now_ms()
    week = store.create_app("week", [], {"retention_days": 7})
    month = store.create_app("month", [], {"retention_days": 30})
    forever = store.create_app("forever", [], {})
    for app in (week, month, forever):
        _seed(store, app.app_id, now)
    purged = retention.enforce(store, now)
    assert purged == {week.app_id: 2, month.app_id: 1}
    assert _names(store, week.app_id) == ["recent"]
    assert _names(store, month.app_id) == ["old", "recent"]
    assert _names(store, forever.app_id) == ["ancient", "old", "recent"]
    assert retention.enforce(store, now) == {week.app_id: 0, month.app_id: 0}


def test_retention_days_is_an_app_setting_and_purge_applies_it(db: str) -> None:
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, [*args, "--db", db], catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.stdout if ok else result.output

    app = json.loads(run("apps", "create", "Shop", "--retention-days", "7", "--json"))
    assert app["settings"]["retention_days"] == 7
    other = json.loads(run("apps", "create", "Other", "--json"))
    assert other["settings"]["retention_days"] == 0
    store = open_store(db)
    now = now_ms()
    _seed(store, app["app_id"], now)
    _seed(store, other["app_id"], now)
    store.close()

    # An app that keeps everything: purge needs --older-than.
    assert "for ever" in run("purge", other["app_id"], ok=False)
    # APP_ID alone: that app's retention; no APP_ID: every app's.
    assert "purged 2 events" in run("purge", app["app_id"])
    run("apps", "update", other["app_id"], "--retention-days", "30")
    out = run("purge")
    assert f"{other['app_id']}: purged 1 events" in out and "purged 1 events" in out
    store = open_store(db)
    assert _names(store, app["app_id"]) == ["recent"]
    assert _names(store, other["app_id"]) == ["old", "recent"]
    store.close()
    run("apps", "update", app["app_id"], "--retention-days", "-1", ok=False)


@pytest.mark.slow
def test_the_server_enforces_retention_in_the_background(db: str) -> None:
    app = create_app(db, "bg")
    cli(db, "apps", "update", app["app_id"], "--retention-days", "7")
    store = open_store(db)
    _seed(store, app["app_id"], now_ms())
    store.close()
    with CollectorProcess(db, extra=("--retention-interval", "0.2")) as server:
        deadline = time.monotonic() + 60
        while "retention: deleted 2 events" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        store = open_store(db)
        try:
            assert _names(store, app["app_id"]) == ["recent"]
        finally:
            store.close()
        # Counted: the indexer's counters are in the run's metrics folder too.
        text = ""
        while f'telltale_retention_purged_events_total{{app_id="{app["app_id"]}"}} 2.0' not in text:
            assert time.monotonic() < deadline, text
            text = server_metrics(server.url)


def server_metrics(url: str) -> str:
    return httpx.get(url + "/metrics").text
