"""`make bench`: every benchmark in one run, so the ratios share one machine state.

python -m bench [--only ingest|store|ua|query|abuse|analytics|scaleout]
                [--db-url sqlite] [--db-url postgresql…]

`--db-url` (repeatable) chooses the backends of the ingest and query benchmarks
(bench/backends.py); by default they run on a scratch database of each backend and print
the backends side by side. The store benchmark measures the SQLite store in-process.
"""

from __future__ import annotations

import argparse
import sys

from bench import (
    abuse_bench,
    analytics_bench,
    ingest_bench,
    query_bench,
    scaleout_bench,
    store_bench,
    ua_bench,
)
from collector import native


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        choices=["ingest", "store", "ua", "query", "abuse", "analytics", "scaleout"],
    )
    parser.add_argument(
        "--db-url", action="append", default=[], help="a backend's database (repeatable)"
    )
    args = parser.parse_args()
    jobs = {
        "ingest": ("Ingest throughput, sustained (wrk, 2 uvicorn workers)", ingest_bench.main),
        "store": ("SQLite store cost per event, by traffic shape", store_bench.main),
        "ua": ("User-Agent parsing and bot detection", ua_bench.main),
        "query": ("Queries on 1,000,000 events for 100,000 users", query_bench.main),
        "abuse": ("Each attack of issue 20 beside a steady app (2 workers)", abuse_bench.main),
        "analytics": (
            "Web analytics on 30 days, 1,000,000 page views by 100,000 visitors",
            analytics_bench.main,
        ),
        "scaleout": (
            "1, 2 and 3 collectors on one PostgreSQL: events/s, CPU per event, projection",
            scaleout_bench.main,
        ),
    }
    backends = [arg for url in args.db_url for arg in ("--db-url", url)]
    options = {
        # The rows with storage taken out too: what storage costs, in the same run.
        "ingest": ["--without-storage", *backends],
        "query": backends,
        "analytics": backends,
    }
    # Which build is measured: `make bench` compiles the hot modules first.
    print(f"collector's hot modules: {native.status()} (collector/native.py)", flush=True)
    for name, (title, job) in jobs.items():
        if args.only and name != args.only:
            continue
        print(f"\n== {title}", flush=True)
        # Each bench parses its own options: the defaults, and those above.
        sys.argv = [f"bench.{name}", *options.get(name, [])]
        job()


if __name__ == "__main__":
    main()
