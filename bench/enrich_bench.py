"""What the country and the source add to enriching one event, in-process.

Run from the repository root: ``python -m bench.enrich_bench``. Each figure is a mean over
many calls in one process, in µs; "unseen" empties the per-IP or per-host caches first.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from collector.ingest import geo, sources
from collector.ingest.enrich import enrich_context
from collector.ingest.geo import country_for_ip
from collector.ingest.sources import own_hosts, source_fields

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
OWN = own_hosts(("https://shop.example.com",))
REFERRERS = (
    "https://www.google.com/",
    "https://www.bing.com/search?q=shoes",
    "https://t.co/Ab12",
    "https://news.ycombinator.com/item?id=1",
    "https://blog.example.net/post/7",
    "https://shop.example.com/pricing",  # a self-referral or SPA navigation
    "",
)


def _ips(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.1" for _ in range(n)]
    return out


def _pages(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """SDK page views: a URL (a fifth with UTM tags) and a referrer from the mix above."""
    rng = random.Random(seed)
    pages = []
    for i in range(n):
        url = f"https://shop.example.com/p/{i}"
        if i % 5 == 0:
            url += f"?utm_source=newsletter&utm_medium=email&utm_campaign=c{i % 40}"
        pages.append((url, rng.choice(REFERRERS)))
    return pages


def _mean_us(func: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        func()
    return (time.perf_counter_ns() - start) / calls / 1000


def _each_us(func: Callable[[Any], Any], items: Sequence[Any]) -> float:
    start = time.perf_counter_ns()
    for item in items:
        func(item)
    return (time.perf_counter_ns() - start) / len(items) / 1000


def run(n: int = 50_000) -> dict[str, float]:
    ips, pages = _ips(n), _pages(n)
    r: dict[str, float] = {}
    geo.cache_clear()
    r["country_unseen_ip_us"] = _each_us(country_for_ip, ips)
    r["country_repeated_ip_us"] = _mean_us(lambda: country_for_ip("193.0.6.139"), n)
    sources.cache_clear()
    r["source_page_view_us"] = _each_us(lambda p: source_fields(p[0], p[1], OWN), pages)
    r["source_no_page_us"] = _mean_us(lambda: source_fields(None, None, OWN), n)

    def enrich(page: tuple[str, str], ip: str, with_page: bool) -> None:
        ctx: dict[str, Any] = {"url": page[0], "referrer": page[1]} if with_page else {}
        enrich_context(
            ctx, source="browser", ip=ip, user_agent=CHROME, ip_mode="truncate", own_hosts=OWN
        )

    geo.cache_clear()
    sources.cache_clear()
    pairs = list(zip(pages, ips, strict=True))
    r["enrich_page_view_us"] = _each_us(lambda p: enrich(p[0], p[1], True), pairs)
    r["enrich_no_page_us"] = _each_us(lambda p: enrich(p[0], p[1], False), pairs)
    return r


_ROWS = (
    ("country_unseen_ip_us", "country, an IP not seen before"),
    ("country_repeated_ip_us", "country, a repeated IP"),
    ("source_page_view_us", "source of a page view (mixed referrers, a fifth with UTM)"),
    ("source_no_page_us", "source_fields with no page"),
    ("enrich_page_view_us", "enrich_context, page view, every IP new"),
    ("enrich_no_page_us", "enrich_context, no page, same IPs (cached)"),
)


def main() -> None:
    results = run()
    width = max(len(label) for _, label in _ROWS)
    print(f"Python {sys.version.split()[0]}; µs per call")
    for key, label in _ROWS:
        print(f"{label:<{width}}  {results[key]:>8.2f}")


if __name__ == "__main__":
    main()
