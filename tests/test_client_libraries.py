"""Other products' official libraries, unmodified, sending to a real collector process
on both backends: Segment's Python and Node libraries, RudderStack's Python library and
PostHog's. Each makes every call it has, flushes, and must have seen no error; then what
was stored is read from the database. Only the host (and the key) is changed, as the
"Coming from Segment / RudderStack / PostHog" in docs/ingestion.md says."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from collector.store import open_store
from tests.dbrows import json_value, rows
from tests.server import CollectorProcess

CLIENTS = Path(__file__).resolve().parent / "clients"


class Served(NamedTuple):
    server: CollectorProcess
    db: str
    app_id: str
    key: str


@pytest.fixture
def served(db: str) -> Iterator[Served]:
    store = open_store(db)
    store.migrate()
    app = store.create_app("libraries", [], {"rate_limit_ip": 0})
    key = store.create_key(app.app_id)[1]
    store.close()
    with CollectorProcess(db) as server:
        yield Served(server, db, app.app_id, key)


def stored(s: Served) -> dict[str, list[dict[str, Any]]]:
    """Stored events by name (the store indexes what is pending before it reads)."""
    store = open_store(s.db)
    try:
        by_name: dict[str, list[dict[str, Any]]] = {}
        for event in store.export_events(s.app_id):
            by_name.setdefault(event["event"], []).append(event)
        return by_name
    finally:
        store.close()


def traits(s: Served, user_id: str) -> dict[str, Any]:
    (row,) = rows(
        s.db, "SELECT traits FROM users WHERE app_id = ? AND user_id = ?", [s.app_id, user_id]
    )
    value: dict[str, Any] = json_value(row[0])
    return value


def linked(s: Served, user_id: str) -> set[str]:
    found = rows(
        s.db,
        "SELECT anonymous_id FROM identities WHERE app_id = ? AND user_id = ?",
        [s.app_id, user_id],
    )
    return {r[0] for r in found}


def library_errors(caplog: pytest.LogCaptureFixture, *loggers: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.split(".")[0] in loggers
    ]


def assert_segment_calls(s: Served, prefix: str) -> None:
    """What `segment_calls` sent, as stored."""
    events = stored(s)
    user = f"{prefix}-u"
    (order,) = events["order_completed"]
    assert order["user_id"] == user and order["properties"] == {"total": 10}
    assert order["message_id"]  # the library's messageId
    assert order["context"]["source"] == "server"
    (page,) = events["page_viewed"]
    assert page["properties"]["name"] == "Pricing" and page["properties"]["category"] == "Docs"
    assert page["context"]["url"] == "https://shop.example.com/pricing"
    (screen,) = events["screen_viewed"]
    assert screen["properties"]["name"] == "Settings"
    (group,) = events["group_identified"]
    assert group["properties"]["group_id"] == f"g-{prefix}"
    assert traits(s, user) == {"plan": "pro"}
    assert f"{prefix}-anon" in linked(s, user)
    # The alias: what the previous id did counts for the user.
    (trial,) = events["trial_started"]
    assert trial["user_id"] == f"{prefix}-prev"
    persons = rows(
        s.db, "SELECT person FROM events WHERE app_id = ? AND event = 'trial_started'", [s.app_id]
    )
    assert persons == [(user,)]


def segment_calls(client: Any, prefix: str) -> None:
    """Every call of Segment's Python API (RudderStack's is the same)."""
    user = f"{prefix}-u"
    client.track(f"{prefix}-prev", "trial_started", {"plan": "pro"})
    client.identify(user, {"plan": "pro"}, anonymous_id=f"{prefix}-anon")
    client.track(user, "order_completed", {"total": 10})
    client.page(user, "Docs", "Pricing", {"url": "https://shop.example.com/pricing"})
    client.screen(user, "App", "Settings", {"tab": "billing"})
    client.group(user, f"g-{prefix}", {"name": "Acme"})
    client.alias(f"{prefix}-prev", user)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_segment_analytics_python(
    served: Served, gzip: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from segment.analytics import Client

    errors: list[Any] = []
    client = Client(
        write_key=served.key,
        host=served.server.url,
        gzip=gzip,
        on_error=lambda error, batch: errors.append(error),
        max_retries=1,
    )
    segment_calls(client, "py")
    client.shutdown()  # flushes the queue and joins the consumer
    assert errors == [] and library_errors(caplog, "segment") == []
    assert_segment_calls(served, "py")


def test_rudder_sdk_python_gzips_by_default(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    from rudderstack.analytics import Client

    errors: list[Any] = []
    client = Client(
        write_key=served.key,
        host=served.server.url,
        on_error=lambda error, batch: errors.append(error),
        max_retries=1,
    )
    assert client.gzip is True
    segment_calls(client, "rs")
    client.shutdown()
    assert errors == [] and library_errors(caplog, "rudderstack") == []
    assert_segment_calls(served, "rs")


def test_a_refused_batch_is_an_error_the_libraries_can_read(served: Served) -> None:
    # RudderStack's client reads `code` and `message` from an error body (and crashed on
    # one without `code`); Segment's does too.
    from rudderstack.analytics import Client as Rudder
    from segment.analytics import Client as Segment

    for make in (Rudder, Segment):
        errors: list[Any] = []
        client = make(
            write_key="sk_not_a_key",
            host=served.server.url,
            on_error=lambda error, batch, errors=errors: errors.append(error),
            max_retries=0,
        )
        client.track("u", "a_done")
        client.shutdown()
        assert len(errors) == 1, make
        assert (errors[0].status, errors[0].code) == (401, "unauthorized")
        assert "API key" in errors[0].message


def test_posthog_python(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    from posthog import Posthog

    errors: list[Any] = []
    client = Posthog(
        served.key,
        host=served.server.url,
        on_error=lambda error, batch: errors.append(error),
        max_retries=1,
        flush_interval=0.05,
    )
    client.capture("trial_started", distinct_id="ph-prev", properties={"plan": "pro"})
    client.capture(
        "$pageview",
        distinct_id="ph-u",
        properties={"$current_url": "https://shop.example.com/pricing", "plan": "pro"},
    )
    client.capture(
        "$identify",
        distinct_id="ph-u",
        properties={"$anon_distinct_id": "ph-anon", "$set": {"email": "a@example.com"}},
    )
    client.set(distinct_id="ph-u", properties={"plan": "pro"})
    client.set_once(distinct_id="ph-u", properties={"first_touch": "ad"})
    client.group_identify("company", "acme", {"size": 12}, distinct_id="ph-u")
    client.alias(previous_id="ph-prev", distinct_id="ph-u")
    client.shutdown()
    assert errors == [] and library_errors(caplog, "posthog") == []

    events = stored(served)
    (page,) = events["page_viewed"]
    assert page["user_id"] == "ph-u" and page["properties"] == {"plan": "pro"}
    assert page["context"]["url"] == "https://shop.example.com/pricing"
    assert page["message_id"]  # the library's uuid
    (group,) = events["group_identified"]
    assert group["properties"]["group_id"] == "acme"
    assert traits(served, "ph-u") == {"email": "a@example.com", "plan": "pro", "first_touch": "ad"}
    assert "ph-anon" in linked(served, "ph-u")
    persons = rows(
        served.db,
        "SELECT person FROM events WHERE app_id = ? AND event = 'trial_started'",
        [served.app_id],
    )
    assert persons == [("ph-u",)]


def test_posthog_python_personless_events_make_no_user(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    from posthog import Posthog

    errors: list[Any] = []
    client = Posthog(
        served.key,
        host=served.server.url,
        on_error=lambda error, batch: errors.append(error),
        max_retries=1,
        flush_interval=0.05,
    )
    for i in range(3):  # no distinct id: a random one each, flagged personless
        client.capture("report_exported", properties={"i": i})
    client.shutdown()
    assert errors == [] and library_errors(caplog, "posthog") == []
    exported = stored(served)["report_exported"]
    assert sorted(e["properties"]["i"] for e in exported) == [0, 1, 2]
    assert {e["user_id"] for e in exported} == {None}
    assert len({e["anonymous_id"] for e in exported}) == 3
    assert rows(served.db, "SELECT count(*) FROM users WHERE app_id = ?", [served.app_id]) == [(0,)]


def node_script(name: str) -> Callable[[dict[str, str]], dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (CLIENTS / "node_modules" / "@segment").is_dir():
        pytest.fail("node and tests/clients/node_modules are needed (make install)")

    def run(env: dict[str, str]) -> dict[str, Any]:
        done = subprocess.run(
            [node, str(CLIENTS / name)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return out

    return run


def test_segment_analytics_node(served: Served) -> None:
    report = node_script("segment_node.mjs")(
        {"TELLTALE_HOST": served.server.url, "TELLTALE_KEY": served.key}
    )
    assert report["errors"] == []
    assert report["responses"] and all("/v1/batch" in url for url in report["responses"])
    assert_segment_calls(served, "node")
