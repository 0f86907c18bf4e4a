"""Realistic generated traffic for a demo app and for benchmarks.

`generate()` yields events in the wire format a server sends (`POST /v1/events` with a
server key: `type`, `event`, `anonymous_id`, `user`, `timestamp`, `properties`,
`context` with the page, and the visitor's `ip` and `ua`), seeded, so the same
arguments give the same events. `ingest()` stores them through the same steps as a
request (normalize → build_events: enrichment with country, source, User-Agent and bot
verdict) and the store's group write, without HTTP.

What it makes: visitors with one to several visits, more than 30 minutes apart; page
views of a small product site (paths and titles); landing referrers from search
engines, social networks, other sites or none, utm_* on some landing URLs; IPs of
several countries; desktop, mobile and tablet browsers; signups (the SDK's setUserId:
an identify call, then the user id on every event), purchases with revenue; and a few
bots (crawlers, headless browsers, HTTP libraries)."""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.ingest.normalize import parse_payload
from collector.ingest.pipeline import Caller, build_events
from collector.models import App
from collector.store.base import Store

DAY_MS = 86_400_000
MINUTE_MS = 60_000
SITE = "https://shop.example.com"

# (path, title, weight as a landing page, weight as a next page)
PAGES: tuple[tuple[str, str, int, int], ...] = (
    ("/", "Acme · Analytics for small teams", 40, 10),
    ("/pricing", "Pricing · Acme", 10, 18),
    ("/features", "Features · Acme", 6, 14),
    ("/features/funnels", "Funnels · Features · Acme", 2, 5),
    ("/features/segments", "Segments · Features · Acme", 2, 4),
    ("/blog", "Blog · Acme", 4, 6),
    ("/blog/privacy-first-analytics", "Privacy-first analytics · Acme blog", 9, 3),
    ("/blog/funnel-mistakes", "Five funnel mistakes · Acme blog", 6, 2),
    ("/blog/self-hosting-guide", "A guide to self-hosting · Acme blog", 5, 2),
    ("/docs", "Documentation · Acme", 5, 8),
    ("/docs/install", "Install · Acme docs", 3, 6),
    ("/docs/api", "API reference · Acme docs", 2, 5),
    ("/about", "About us · Acme", 1, 3),
    ("/contact", "Contact · Acme", 1, 2),
    ("/signup", "Sign up · Acme", 2, 6),
    ("/login", "Log in · Acme", 3, 3),
    ("/app", "Dashboard · Acme", 0, 5),
    ("/checkout", "Checkout · Acme", 0, 2),
)

# (referrer URL or None, utm query or "", weight)
SOURCES: tuple[tuple[str | None, str, int], ...] = (
    (None, "", 34),
    ("https://www.google.com/", "", 22),
    ("https://www.bing.com/", "", 4),
    ("https://duckduckgo.com/", "", 3),
    ("https://t.co/x1y2z3", "", 4),
    ("https://www.facebook.com/", "", 3),
    ("https://www.linkedin.com/feed/", "", 3),
    ("https://www.reddit.com/r/analytics/", "", 3),
    ("https://news.ycombinator.com/", "", 5),
    ("https://github.com/acme/acme", "", 3),
    ("https://blog.example.org/tools-we-use", "", 2),
    (None, "utm_source=newsletter&utm_medium=email&utm_campaign=december_launch", 5),
    ("https://www.google.com/", "utm_source=google&utm_medium=cpc&utm_campaign=brand", 3),
    (
        "https://www.facebook.com/",
        "utm_source=facebook&utm_medium=social&utm_campaign=winter_promo",
        2,
    ),
)

# (first three octets of a /24 the country data places in the country, country, weight)
NETWORKS: tuple[tuple[str, str, int], ...] = (
    ("24.1.2", "US", 20),
    ("72.1.2", "US", 10),
    ("81.2.69", "GB", 10),
    ("5.9.10", "DE", 10),
    ("51.15.20", "FR", 8),
    ("2.16.0", "NL", 4),
    ("88.1.2", "ES", 4),
    ("151.1.2", "IT", 4),
    ("177.10.20", "BR", 6),
    ("133.1.2", "JP", 5),
    ("61.1.2", "IN", 7),
    ("1.1.1", "AU", 3),
)

# (User-Agent, weight)
BROWSERS: tuple[tuple[str, int], ...] = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        30,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.6 Safari/605.1.15",
        12,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 6),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        7,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        20,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        17,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        4,
    ),
)

BOTS: tuple[str, ...] = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36",
)
BOT_SHARE = 0.02  # of visitors
PLANS = (("starter", 19.0), ("pro", 49.0), ("team", 199.0))
PAGE_VIEWS_PER_VISITOR = 5.4  # about, over all their visits (sizing the visitor count)


@dataclass(frozen=True, slots=True)
class _Choice:
    """Weighted choice by bisect over cumulative weights (random.choices re-sums the
    weights on every call)."""

    items: tuple[Any, ...]
    cumulative: tuple[int, ...]

    @classmethod
    def of(cls, items: Iterable[Any], weights: Iterable[int]) -> _Choice:
        return cls(tuple(items), tuple(itertools.accumulate(weights)))

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


_LANDING = _Choice.of(PAGES, (p[2] for p in PAGES))
_NEXT = _Choice.of(PAGES, (p[3] for p in PAGES))
_SOURCES = _Choice.of(SOURCES, (s[2] for s in SOURCES))
_NETWORKS = _Choice.of(NETWORKS, (n[2] for n in NETWORKS))
_BROWSERS = _Choice.of(BROWSERS, (b[1] for b in BROWSERS))
# Busier in the (European and American) day than at night, by UTC hour.
_HOURS = _Choice.of(
    range(24), (2, 1, 1, 1, 1, 2, 3, 5, 7, 9, 10, 10, 10, 10, 10, 11, 11, 10, 9, 8, 6, 5, 4, 3)
)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


class _Visitor:
    __slots__ = ("anonymous_id", "ip", "plan", "rng", "ua", "user_id")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        network = _NETWORKS.pick(rng)
        self.ip = f"{network[0]}.{rng.randrange(1, 255)}"
        self.ua: str = _BROWSERS.pick(rng)[0]
        self.user_id: str | None = None
        self.plan: str | None = None

    def item(
        self, event: str, ts: int, page: dict[str, Any], properties: dict[str, Any]
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "track",
            "event": event,
            "anonymous_id": self.anonymous_id,
            "message_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "timestamp": _iso(ts),
            "properties": properties,
            "context": {**page, "locale": "en-US", "library": {"name": "telltale-demo"}},
            "ip": self.ip,
            "ua": self.ua,
        }
        if self.user_id is not None:
            item["user"] = self.user_id
        return item


def _page(path: str, title: str, referrer: str | None, query: str = "") -> dict[str, Any]:
    url = SITE + path + (("?" + query) if query else "")
    return {"url": url, "path": path, "title": title, "referrer": referrer or ""}


def _visit(
    v: _Visitor, start: int, until: int, users: itertools.count[int]
) -> tuple[list[dict[str, Any]], int]:
    """One visit: a landing page from a source, then pages and events a few seconds to
    minutes apart. Its items, and the time of its last."""
    out: list[dict[str, Any]] = []
    end = _walk(v, start, until, users, out)
    return out, end


def _walk(
    v: _Visitor, start: int, until: int, users: itertools.count[int], out: list[dict[str, Any]]
) -> int:
    rng = v.rng
    referrer, utm, _ = _SOURCES.pick(rng)
    path, title, _, _ = _LANDING.pick(rng)
    page = _page(path, title, referrer, utm)
    ts = start
    out.append(v.item("page_viewed", ts, page, dict(page)))
    # About 40% of visits bounce; the others see a few pages.
    views = 1 if rng.random() < 0.4 else 2 + int(rng.expovariate(1 / 2.5))
    for _ in range(views - 1):
        ts += int(rng.uniform(8, 150) * 1000)
        if ts >= until:
            return ts
        previous = page["url"]
        path, title, _, _ = _NEXT.pick(rng)
        page = _page(path, title, previous)
        out.append(v.item("page_viewed", ts, page, dict(page)))
        if path == "/pricing" and rng.random() < 0.25:
            ts += int(rng.uniform(3, 40) * 1000)
            out.append(
                v.item("cta_clicked", ts, page, {"cta": "start_trial", "location": "pricing"})
            )
        if v.user_id is None and path in ("/signup", "/pricing") and rng.random() < 0.18:
            out.extend(_signup(v, ts + int(rng.uniform(20, 120) * 1000), page, users))
            ts += 120_000
        elif (
            v.user_id is not None
            and path in ("/pricing", "/checkout", "/app")
            and (rng.random() < 0.3)
        ):
            ts += int(rng.uniform(30, 240) * 1000)
            plan, price = rng.choice(PLANS)
            v.plan = plan
            out.append(
                v.item(
                    "purchase",
                    ts,
                    page,
                    {"plan": plan, "revenue": price, "currency": "USD", "orderId": f"o_{ts:x}"},
                )
            )
    return ts


def _signup(
    v: _Visitor, ts: int, page: dict[str, Any], users: itertools.count[int]
) -> Iterator[dict[str, Any]]:
    """A signup, then what the SDK's setUserId sends: an identify call linking the
    anonymous id to the new user id, whose id every later event carries."""
    n = next(users)
    yield v.item("signup", ts, page, {"method": v.rng.choice(("email", "google", "github"))})
    v.user_id = f"user_{n:06d}"
    identify = v.item("identify", ts + 1, page, {})
    identify["type"] = "identify"
    del identify["event"], identify["properties"]
    identify["traits"] = {
        "email": f"user{n}@example.com",
        "name": f"Demo user {n}",
        "plan": "free",
    }
    yield identify


def _bot(rng: random.Random, start: int, until: int) -> Iterator[dict[str, Any]]:
    """A crawler walking many pages a second or two apart."""
    v = _Visitor(rng)
    v.ua = rng.choice(BOTS)
    ts = start
    for _ in range(rng.randrange(3, 25)):
        path, title, _, _ = _NEXT.pick(rng)
        page = _page(path, title, None)
        yield v.item("page_viewed", ts, page, dict(page))
        ts += int(rng.uniform(0.5, 3) * 1000)
        if ts >= until:
            return


def _start(rng: random.Random, since: int, days: int) -> int:
    day = rng.randrange(days)
    return since + day * DAY_MS + int(_HOURS.pick(rng)) * 3_600_000 + rng.randrange(3_600_000)


def generate(
    *,
    days: int = 30,
    page_views: int = 20_000,
    seed: int = 1,
    until_ms: int | None = None,
) -> Iterator[dict[str, Any]]:
    """About `page_views` page views (bots' included) over the `days` before `until_ms`
    (default now), visitor by visitor, each visitor's events in time order."""
    rng = random.Random(seed)
    until = int(time.time() * 1000) if until_ms is None else until_ms
    since = until - days * DAY_MS
    visitors = max(1, math.ceil(page_views / PAGE_VIEWS_PER_VISITOR))
    users = itertools.count(1)
    for _ in range(visitors):
        if rng.random() < BOT_SHARE:
            yield from _bot(rng, _start(rng, since, days), until)
            continue
        v = _Visitor(rng)
        visits = 1 + min(7, int(rng.expovariate(1 / 1.3)))
        starts = sorted(_start(rng, since, days) for _ in range(visits))
        last_end = -DAY_MS
        for start in starts:
            # A new visit begins after more than 30 minutes of quiet.
            start = max(start, last_end + 31 * MINUTE_MS + rng.randrange(3_600_000))
            if start >= until:
                break
            items, last_end = _visit(v, start, until, users)
            yield from items


def ingest(store: Store, app: App, items: Iterable[dict[str, Any]], chunk: int = 2_000) -> int:
    """Store `items` as a server-key request would: normalized, enriched (country from
    `ip`, User-Agent, source, bot verdict), through the app's rules, in group writes of
    `chunk`. Returns how many were stored."""
    caller = Caller(app, "server", None)
    stored = 0
    it = iter(items)
    while batch := list(itertools.islice(it, chunk)):
        payload = parse_payload({"events": batch}, source="server")
        events, errors, _ = build_events(
            payload,
            caller,
            store=store,
            peer_ip=None,
            header_ua=None,
            headers={},
            received_at=int(time.time() * 1000),
        )
        if errors:
            first = next(iter(errors.values()))
            raise ValueError(f"generated an invalid event: {first}")
        outcomes = store.write([e for e in events if e is not None])
        stored += sum(1 for o in outcomes if o.status == "accepted")
    return stored
