"""Web analytics speed: 30 days of generated traffic, 1,000,000 page views by 100,000
visitors, then the overview and every breakdown, each the median of `--runs` runs.

    python -m bench.analytics_bench [--visitors 100000] [--page-views 1000000] [--runs 5]
                                    [--db-url sqlite] [--db-url postgresql] [--db PATH]

With `--db PATH` (or a `--db-url` of a database that holds the app already) the
generated traffic is kept and reused by the next run.

The traffic goes in through the store's write path (5,000 events a batch, then
`index_all`), in time order as a live site sends it, so visits and hits are maintained
as in production; the time that took, and the share of it the visits cost, are printed
too. Visits last 1-8 pages, 5-120 s apart, and end with the SDK's engagement event;
a visitor comes back 1-6 times in the month; sources, campaigns, countries, browsers
and devices are drawn from realistic shares; 2% of visitors are crawlers."""

from __future__ import annotations

import argparse
import contextlib
import heapq
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import backends
from collector.models import Event
from collector.query.types import DIMENSIONS, AnalyticsQuery
from collector.store import visits
from tests.factories import ev

END = 1_793_491_200_000  # 2026-11-01T00:00:00Z
DAY = 86_400_000
BATCH = 5_000
PAGES = ["/", "/pricing", "/docs", "/blog", "/about", "/signup", "/docs/api", "/blog/launch"]
PAGES += [f"/blog/post-{i}" for i in range(40)] + [f"/docs/page-{i}" for i in range(60)]
SOURCES = [  # (referrer host, channel, weight)
    (None, "Direct", 40),
    ("google.com", "Organic Search", 30),
    ("bing.com", "Organic Search", 4),
    ("twitter.com", "Social", 6),
    ("news.ycombinator.com", "Referral", 5),
    ("github.com", "Referral", 5),
    ("reddit.com", "Social", 4),
]
COUNTRIES = ["US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "NL", "ES", "IT", "PL", "SE", "AU"]
BROWSERS = [("Chrome", "Windows", "desktop"), ("Safari", "iOS", "mobile"),
            ("Firefox", "Linux", "desktop"), ("Chrome", "Android", "mobile"),
            ("Safari", "Mac OS X", "desktop"), ("Edge", "Windows", "desktop")]  # fmt: skip


def _visits(
    app_id: str, visitors: int, page_views: int, rng: random.Random
) -> Iterator[list[Event]]:
    """Each visit's events, visits in order of their first event."""
    per_visitor = page_views / visitors
    starts: list[tuple[int, int, int]] = []  # (start, visitor, pages)
    for visitor in range(visitors):
        n_visits = rng.randint(1, 6)
        pages = max(1, round(per_visitor / n_visits))
        for _ in range(n_visits):
            start = END - 30 * DAY + rng.randrange(30 * DAY)
            starts.append((start, visitor, max(1, int(rng.expovariate(1 / pages)))))
    heapq.heapify(starts)
    weights = [w for _, _, w in SOURCES]
    while starts:
        start, visitor, pages = heapq.heappop(starts)
        rng_v = random.Random(visitor)
        browser, os_name, device = rng_v.choice(BROWSERS)
        country = COUNTRIES[min(int(rng_v.expovariate(0.4)), len(COUNTRIES) - 1)]
        bot = rng_v.random() < 0.02
        referrer, channel, _ = rng.choices(SOURCES, weights)[0]
        context: dict[str, Any] = {"referrer_host": referrer, "channel": channel,
                                   "country": country, "browser": browser, "os": os_name,
                                   "device_type": "bot" if bot else device}  # fmt: skip
        if rng.random() < 0.1:
            context.update(utm_source="newsletter", utm_medium="email", utm_campaign="october",
                           channel="Email")  # fmt: skip
        events: list[Event] = []
        at = start
        for i in range(pages):
            path = rng.choice(PAGES[:8]) if rng.random() < 0.6 else rng.choice(PAGES)
            ctx = {**context, "path": path} if i == 0 else {"path": path, "country": country}
            events.append(ev(app_id, "page_viewed", at, anon=f"v{visitor}", context=ctx, bot=bot))
            at += rng.randint(5_000, 120_000)
        if rng.random() < 0.05:
            events.append(
                ev(app_id, "signed_up", at, anon=f"v{visitor}", context={"path": "/signup"})
            )
        events.append(ev(app_id, "page_left", at + 1000, anon=f"v{visitor}",
                         props={"engaged_ms": at - start}, bot=bot))  # fmt: skip
        yield events


def _generate(store: Any, app_id: str, visitors: int, page_views: int) -> dict[str, float]:
    rng = random.Random(7)
    batch: list[Event] = []
    events = views = 0
    spent = [0.0]
    keep = visits.index

    def timed(tx: Any, rows: Any) -> None:  # the visits' share of indexing
        began = time.perf_counter()
        keep(tx, rows)
        spent[0] += time.perf_counter() - began

    visits.index = timed  # type: ignore[assignment]
    began = time.perf_counter()
    for visit in _visits(app_id, visitors, page_views, rng):
        batch.extend(visit)
        views += sum(e.name == "page_viewed" for e in visit)
        if len(batch) >= BATCH:
            store.write(batch)
            events += len(batch)
            batch = []
            backends.index_all(store)
    if batch:
        store.write(batch)
        events += len(batch)
    backends.index_all(store)
    visits.index = keep  # type: ignore[assignment]
    return {
        "events": events,
        "page views": views,
        "write + index (s)": time.perf_counter() - began,
        "of which visits (s)": spent[0],
    }


def _time(fn: Any, runs: int) -> tuple[float, float]:
    """The median wall time and process CPU time of `runs` calls, after a warm one. The
    CPU time is the honest cost on a machine that other work shares (the store's reads
    and the figures run in this process, but for PostgreSQL's server side)."""
    fn()  # warm
    walls, cpus = [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - began_cpu)
    return statistics.median(walls), statistics.median(cpus)


def _run(url: str, visitors: int, page_views: int, runs: int) -> dict[str, Any]:
    store = backends.open_store(url)
    apps = [a for a in store.list_apps() if a.name == "Analytics bench"]
    result: dict[str, Any] = {}
    if apps:
        app = apps[0]
    else:
        app = store.create_app("Analytics bench", ["https://bench.example"], {})
        result.update(_generate(store, app.app_id, visitors, page_views))
    q = AnalyticsQuery(since=END - 30 * DAY, until=END)
    # The first answer of a process reads the month's columns from the database; the
    # medians after it are answered from them (store/columns.py).
    began, began_cpu = time.perf_counter(), time.process_time()
    store.analytics_overview(app.app_id, q)
    result["overview, first in the process (reads the columns)"] = (
        time.perf_counter() - began,
        time.process_time() - began_cpu,
    )
    result["overview"] = _time(lambda: store.analytics_overview(app.app_id, q), runs)
    result["overview, filtered (country=DE)"] = _time(
        lambda: store.analytics_overview(
            app.app_id, AnalyticsQuery(since=q.since, until=q.until, filters=(("country", "DE"),))
        ),
        runs,
    )
    for by in DIMENSIONS:
        result[f"breakdown by {by}"] = _time(
            lambda by=by: store.analytics_breakdown(app.app_id, q, by), runs
        )
    answer = store.analytics_overview(app.app_id, q)["results"]
    result["visits"] = answer["visits"]
    result["unique visitors"] = answer["unique_visitors"]
    result.update(_dashboard_pages(store, url, app.app_id, runs))
    store.close()
    return result


def _dashboard_pages(store: Any, url: str, app_id: str, runs: int) -> dict[str, Any]:
    """Each dashboard page for the 30 days, through the app in-process (the HTTP server
    adds no more than for any page), logged in as an admin."""
    import re
    from datetime import UTC, datetime

    from starlette.testclient import TestClient

    from collector.dashboard.passwords import hash_password
    from collector.settings import Settings
    from collector.web.app import create_app

    email, password = "bench@example.com", "bench password, long enough"
    store.create_admin(email, hash_password(password))
    day = lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()  # noqa: E731
    period = f"period=custom&from={day(END - 30 * DAY)}&to={day(END - 1)}"
    base = f"/dashboard/apps/{app_id}"
    pages = {
        "overview": f"{base}/?{period}",
        "overview, filtered": f"{base}/?{period}&country=DE",
        "live": f"{base}/live",
        "events": f"{base}/events?{period}",
        "people": f"{base}/people",
        "person": f"{base}/people/anon:v1",
        "funnels": f"{base}/funnels?{period}&step=page_viewed&step=signed_up",
        "settings": f"{base}/settings",
    }
    found: dict[str, Any] = {}
    with TestClient(create_app(Settings(db=url))) as client:
        form = client.get("/dashboard/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        client.post(
            "/dashboard/login",
            data={"email": email, "password": password, "csrf": csrf.group(1)},
            follow_redirects=False,
        )
        for name, path in pages.items():

            def get(path: str = path) -> None:
                answer = client.get(path)
                assert answer.status_code == 200, (path, answer.status_code)

            found[f"page: {name}"] = _time(get, runs)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--page-views", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db-url", action="append", default=[])
    parser.add_argument("--db", help="SQLite: keep the generated database here (reused if present)")
    args = parser.parse_args()
    databases, skipped = backends.select([*args.db_url, *([args.db] if args.db else [])])
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="analytics-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        for i, database in enumerate(databases):
            made = database.make(Path(tmp), stack, f"analyticsbench{i}")
            results[database.backend.name] = _run(
                made.url, args.visitors, args.page_views, args.runs
            )
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for line in skipped:
        print(line)
    names = list(next(iter(results.values())))
    width = max(len(n) for n in names)
    print(f"{'':<{width}}" + "".join(f"  {b + ' wall (cpu)':>20}" for b in results))
    for name in names:
        cells = []
        for r in results.values():
            value = r.get(name, "")
            if isinstance(value, tuple):
                cells.append(f"{value[0]:>11.3f} ({value[1]:.3f})")
            elif isinstance(value, float) and value < 1000:
                cells.append(f"{value:>20.3f}")
            else:
                cells.append(f"{int(value):>20,}" if value != "" else f"{'':>20}")
        print(f"{name:<{width}}" + "  ".join(["", *cells]))
    print(
        "(seconds: the median of the runs, timed at the store, with this process's CPU "
        "time; target ≤ 0.300 on SQLite)"
    )


if __name__ == "__main__":
    main()
