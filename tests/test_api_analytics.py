"""GET /v1/analytics/overview and /v1/analytics/breakdown over HTTP, on both backends:
events posted through the ingestion API (so enrichment decides source, country and
browser), figures read back; errors name their field; a key reads its own app only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from collector.settings import Settings
from collector.store import Store, open_store
from collector.timeutil import now_ms
from collector.web.app import create_app
from tests.factories import ev
from tests.load import wait_for
from tests.test_api_query import assert_error, post_events

MIN = 60_000
T0 = 1_790_035_200_000  # 2026-09-22T00:00:00Z
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
RANGE = {"since": T0, "until": T0 + 86_400_000}


@pytest.fixture
def setup(db: str) -> Iterator[tuple[TestClient, Store, str, dict[str, str]]]:
    store = open_store(db)
    store.migrate()
    app = store.create_app("Shop", ["https://shop.example"], {})
    _, key = store.create_key(app.app_id)
    with TestClient(create_app(Settings(db=db)), raise_server_exceptions=False) as client:
        yield client, store, app.app_id, {"Authorization": f"Bearer {key}"}
    store.close()


def page(at: int, path: str, *, referrer: str = "", anon: str = "", user: str = "",
         ip: str = "8.8.8.8", ua: str = CHROME, name: str = "page_viewed",
         props: dict[str, Any] | None = None, query: str = "") -> dict[str, Any]:  # fmt: skip
    event: dict[str, Any] = {
        "event": name,
        "timestamp": at,
        "ip": ip,
        "ua": ua,
        "properties": props or {},
        "context": {
            "url": "https://shop.example" + path + query,
            "path": path,
            "referrer": referrer,
        },
    }
    if user:
        event["user"] = user
    if anon:
        event["anonymous_id"] = anon
    return event


def traffic() -> list[dict[str, Any]]:
    """Four visits by three visitors, and a crawler:
    - a: from Google with a campaign, / then /pricing, signs up: two views, no bounce;
    - b: direct, one view and the SDK's engagement 40 s later: a bounce of 40 s;
    - c: anonymous on /docs, logs in as u1 and views /app 5 minutes later: one visit,
      one visitor; then back 2 hours later from a newsletter: a second visit;
    - a crawler, which the figures leave out unless asked."""
    google = "https://www.google.com/"
    campaign = "?utm_source=launch&utm_medium=cpc&utm_campaign=spring"
    return [
        page(T0 + 10 * MIN, "/", query=campaign, referrer=google, anon="a"),
        {**page(T0 + 12 * MIN, "/pricing", anon="a"), "context": {
            "url": "https://shop.example/pricing", "path": "/pricing",
            "referrer": "https://shop.example/"}},
        page(T0 + 13 * MIN, "/pricing", anon="a", name="signed_up"),
        page(T0 + 20 * MIN, "/", anon="b", ip="81.2.69.160", ua=FIREFOX),
        page(T0 + 20 * MIN + 40_000, "/", anon="b", ip="81.2.69.160", ua=FIREFOX,
             name="page_left", props={"engaged_ms": 40_000, "scroll_depth": 80}),
        page(T0 + 60 * MIN, "/docs", anon="c"),
        page(T0 + 65 * MIN, "/app", anon="c", user="u1"),
        page(T0 + 185 * MIN, "/app", query="?utm_medium=email&utm_source=newsletter", user="u1"),
        page(T0 + 30 * MIN, "/", anon="bot", ua=BOT),
    ]  # fmt: skip


def test_overview_and_breakdowns(setup: Any) -> None:
    client, _, _, headers = setup
    post_events(client, headers, traffic())

    r = client.get("/v1/analytics/overview", params=RANGE, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"] == {
        "unique_visitors": 3,
        "visits": 4,
        "page_views": 6,
        "views_per_visit": 1.5,
        "bounce_rate": 0.5,  # b's visit and c's second one
        "visit_duration": (3 * 60 + 40 + 5 * 60 + 0) / 4,
    }
    assert body["previous"]["visits"] == 0
    assert len(body["series"]) == 1 and body["series"][0]["visits"] == 4
    hourly = client.get(
        "/v1/analytics/overview", params={**RANGE, "interval": "hour"}, headers=headers
    ).json()
    assert len(hourly["series"]) == 24
    assert [p["visits"] for p in hourly["series"][:4]] == [2, 1, 0, 1]

    with_bots = client.get(
        "/v1/analytics/overview", params={**RANGE, "include_bots": "true"}, headers=headers
    ).json()
    assert with_bots["results"]["visits"] == 5

    def rows(by: str, **params: Any) -> dict[Any, tuple[int, int, int, int]]:
        r = client.get(
            "/v1/analytics/breakdown", params={**RANGE, "by": by, **params}, headers=headers
        )
        assert r.status_code == 200, r.text
        return {
            x["value"]: (x["visitors"], x["visits"], x["page_views"], x["events"])
            for x in r.json()["results"]
        }

    assert rows("page") == {"/": (2, 2, 2, 2), "/pricing": (1, 1, 1, 1), "/docs": (1, 1, 1, 1),
                            "/app": (1, 2, 2, 2)}  # fmt: skip
    assert rows("entry_page") == {"/": (2, 2, 3, 4), "/docs": (1, 1, 2, 2), "/app": (1, 1, 1, 1)}
    assert rows("exit_page") == {"/pricing": (1, 1, 2, 3), "/": (1, 1, 1, 1), "/app": (1, 2, 3, 3)}
    assert rows("channel") == {
        "Paid": (1, 1, 2, 3),
        "Direct": (2, 2, 3, 3),
        "Email": (1, 1, 1, 1),
    }
    assert rows("referrer") == {"google.com": (1, 1, 2, 3), None: (2, 3, 4, 4)}
    assert rows("utm_campaign") == {"spring": (1, 1, 2, 3), None: (2, 3, 4, 4)}
    assert rows("utm_source")["newsletter"] == (1, 1, 1, 1)
    assert rows("country") == {"US": (2, 3, 5, 6), "GB": (1, 1, 1, 1)}
    assert rows("browser") == {"Chrome": (2, 3, 5, 6), "Firefox": (1, 1, 1, 1)}
    assert rows("event") == {"page_viewed": (3, 4, 6, 6), "signed_up": (1, 1, 0, 1)}

    # A visit attribute keeps whole visits; a page filters the page views.
    assert rows("page", channel="Paid") == {"/": (1, 1, 1, 1), "/pricing": (1, 1, 1, 1)}
    pricing = client.get(
        "/v1/analytics/overview", params={**RANGE, "page": "/pricing"}, headers=headers
    ).json()
    assert pricing["results"]["visits"] == 1 and pricing["results"]["page_views"] == 1
    direct = client.get(
        "/v1/analytics/overview", params={**RANGE, "referrer": "(none)"}, headers=headers
    ).json()
    assert direct["results"]["visits"] == 3


def test_current_visitors(setup: Any) -> None:
    client, _, _, headers = setup
    event = page(0, "/", anon="live")
    del event["timestamp"]
    post_events(client, headers, [event])
    body = client.get("/v1/analytics/overview", headers=headers).json()
    assert body["current_visitors"] == 1
    assert body["results"]["visits"] == 1  # the last 7 days by default


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"by": "nonsense"}, "by"),
        ({"by": "page", "since": "yesterday"}, "since"),
        ({"by": "page", "interval": "week"}, "interval"),
        ({"by": "page", "since": T0, "until": T0}, "since"),
        ({"by": "page", "include_bots": "maybe"}, "include_bots"),
        ({"by": "page", "limit": "0"}, "limit"),
        ({"by": "page", "country": ""}, "country"),
        # A filter named after no dimension would answer for every visit.
        ({"by": "page", "source": "google.com"}, "source"),
        ({"by": "page", "contry": "US"}, "contry"),
    ],
)
def test_bad_parameters_name_their_field(setup: Any, params: dict[str, Any], field: str) -> None:
    client, _, _, headers = setup
    assert_error(client.get("/v1/analytics/breakdown", params=params, headers=headers), 400, field)


def test_the_overview_refuses_a_parameter_it_does_not_read(setup: Any) -> None:
    client, _, _, headers = setup
    r = client.get("/v1/analytics/overview", params={"by": "page"}, headers=headers)
    assert_error(r, 400, "by")
    assert "country" in r.json()["errors"][0]["message"]  # what it does take


def test_the_series_cap_counts_its_points_and_binds_only_the_overview(setup: Any) -> None:
    client, _, _, headers = setup
    hour = 3_600_000
    since = 1_790_000_000_000 // hour * hour + hour // 2  # inside an hour
    # 1,999 whole hours and two part-hours: 2,001 points, one past the cap.
    params = {"interval": "hour", "since": since, "until": since + 2_000 * hour}
    r = client.get("/v1/analytics/overview", params=params, headers=headers)
    assert_error(r, 400, "interval")
    params["until"] -= hour  # 2,000 points
    body = client.get("/v1/analytics/overview", params=params, headers=headers).json()
    assert len(body["series"]) == 2_000
    # A breakdown has no series: a long range at any interval is fine.
    long = {"by": "page", "since": 0, "until": 10**13, "interval": "hour"}
    assert client.get("/v1/analytics/breakdown", params=long, headers=headers).status_code == 200


def test_server_key_and_own_app_only(setup: Any) -> None:
    client, store, _, headers = setup
    post_events(client, headers, traffic())
    for path in ("/v1/analytics/overview", "/v1/analytics/breakdown?by=page"):
        assert_error(client.get(path), 401, "authorization")
    other = store.create_app("Other", ["https://other.example"], {})
    _, key = store.create_key(other.app_id)
    theirs = client.get(
        "/v1/analytics/overview", params=RANGE, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert theirs["results"]["visits"] == 0


def test_a_started_collector_reads_the_days_into_the_figures_cache(db: str) -> None:
    store = open_store(db)
    store.migrate()
    app_id = store.create_app("Shop", ["https://shop.example"], {}).app_id
    store.write([ev(app_id, "page_viewed", now_ms() - 3_600_000, anon="a")])
    # A day far older than any overview's range: funnels read every day.
    store.write([ev(app_id, "page_viewed", now_ms() - 400 * 86_400_000, anon="b")])
    assert store.columns.days_read == 0
    with TestClient(create_app(Settings(db=db), store=store)):
        # Without a request: the warm-up runs beside serving, from the start.
        wait_for("both days' columns read", lambda: store.columns.days_read == 2, 60)
