"""The generated demo traffic (collector/demo/traffic.py): seeded, realistic in the ways
the dashboard shows, and stored through the same enrichment as a request."""

from __future__ import annotations

import collections
import itertools
from datetime import datetime
from typing import Any

from collector.demo.traffic import NETWORKS, generate, ingest
from collector.ingest.geo import country_for_ip
from collector.models import App
from collector.query.types import StatsQuery
from collector.store import Store

DAY_MS = 86_400_000
UNTIL = 1_796_000_000_000  # a fixed "now", so the test never depends on the clock


def _ms(item: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)


def test_the_same_seed_gives_the_same_events() -> None:
    one = list(generate(days=7, page_views=500, seed=3, until_ms=UNTIL))
    assert one == list(generate(days=7, page_views=500, seed=3, until_ms=UNTIL))
    assert one != list(generate(days=7, page_views=500, seed=4, until_ms=UNTIL))


def test_every_network_is_in_its_country() -> None:
    for prefix, country, _ in NETWORKS:
        for last in (1, 77, 254):
            assert country_for_ip(f"{prefix}.{last}") == country, prefix


def test_visitors_visits_sources_and_events() -> None:
    items = list(generate(days=30, page_views=5_000, seed=1, until_ms=UNTIL))
    views = [i for i in items if i.get("event") == "page_viewed"]
    assert 4_000 <= len(views) <= 6_000
    assert all(_ms(i) >= UNTIL - 30 * DAY_MS for i in items)
    by_visitor: dict[str, list[int]] = collections.defaultdict(list)
    for i in items:
        by_visitor[i["anonymous_id"]].append(_ms(i))
    # Each visitor's events come in time order; a gap over 30 minutes starts a new visit,
    # and many visitors come back.
    visits = collections.Counter()
    for times in by_visitor.values():
        assert times == sorted(times)
        visits[1 + sum(1 for a, b in itertools.pairwise(times) if b - a > 1_800_000)] += 1
    assert visits[1] > 0 and sum(n for k, n in visits.items() if k > 1) > len(by_visitor) // 5
    referrers = {i["context"]["referrer"] for i in views}
    assert {"", "https://www.google.com/", "https://news.ycombinator.com/"} <= referrers
    assert any("utm_campaign=" in i["context"]["url"] for i in views)
    assert len({i["context"]["path"] for i in views}) >= 15
    names = collections.Counter(i.get("event", i["type"]) for i in items)
    assert names["signup"] > 0 and names["purchase"] > 0
    assert names["identify"] == names["signup"]  # setUserId after each signup
    purchase = next(i for i in items if i.get("event") == "purchase")
    assert purchase["user"].startswith("user_") and purchase["properties"]["revenue"] > 0
    assert any("Googlebot" in i["ua"] or "python-requests" in i["ua"] for i in items)


def test_ingest_stores_through_the_enrichment(store: Store, app: App) -> None:
    items = list(generate(days=5, page_views=600, seed=2, until_ms=UNTIL))
    assert ingest(store, app, items, chunk=250) == len(items)
    rows = list(store.export_events(app.app_id))
    assert len(rows) == sum(1 for i in items if i["type"] == "track")
    countries = collections.Counter(r["context"]["country"] for r in rows)
    assert {"US", "GB", "DE"} <= set(countries) and None not in countries
    channels = {r["context"].get("channel") for r in rows if r["event"] == "page_viewed"}
    assert {"Direct", "Organic Search", "Social"} <= channels
    devices = {r["context"]["device_type"] for r in rows}
    assert {"desktop", "mobile", "bot"} <= devices
    stats = store.event_stats(app.app_id, StatsQuery())
    assert stats["bot_reasons"] and stats["totals"]["page_viewed"] > 0
    # A signed-up visitor's anonymous past counts for their user id.
    user = next(i for i in items if i["type"] == "identify")
    profile = store.user_profile(app.app_id, user["user"])
    assert profile is not None and user["anonymous_id"] in profile["anonymous_ids"]
    assert profile["event_counts"]["page_viewed"] >= 1


def test_a_second_fill_stores_nothing_twice(store: Store, app: App) -> None:
    # serve --demo runs the fill again when one was cut short: the seeded generator gives
    # the same message ids (the times are relative to now), which are stored once.
    first = ingest(store, app, generate(days=3, page_views=200, seed=5, until_ms=UNTIL))
    again = generate(days=3, page_views=200, seed=5, until_ms=UNTIL + 3_600_000)
    assert first > 0 and ingest(store, app, again) == 0
