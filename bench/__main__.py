"""`make bench`: every benchmark in one run, so the ratios share one machine state.

python -m bench [--only ingest|store|ua|query]
"""

from __future__ import annotations

import argparse
import sys

from bench import ingest_bench, query_bench, store_bench, ua_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["ingest", "store", "ua", "query"])
    args = parser.parse_args()
    jobs = {
        "ingest": ("Ingest throughput (wrk, 2 uvicorn workers)", ingest_bench.main),
        "store": ("SQLite store cost per event, by traffic shape", store_bench.main),
        "ua": ("User-Agent parsing and bot detection", ua_bench.main),
        "query": ("Queries on 1,000,000 events for 100,000 users", query_bench.main),
    }
    for name, (title, job) in jobs.items():
        if args.only and name != args.only:
            continue
        print(f"\n== {title}", flush=True)
        # Each bench parses its own options: the defaults, and for ingest the rows with
        # storage taken out too (what storage costs, in the same run).
        sys.argv = [f"bench.{name}", *(["--without-storage"] if name == "ingest" else [])]
        job()


if __name__ == "__main__":
    main()
