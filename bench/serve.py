"""Serve a benchmark app the way `collector serve` serves the collector: one worker
process per `SO_REUSEPORT` socket (collector/workers.py), so the bare baseline and the
collector without storage get the same even spread of connections as the collector.

    python -m bench.serve MODULE:APP [--factory] --port PORT [--workers 2]
"""

from __future__ import annotations

import argparse

import uvicorn

from collector.workers import Workers, listeners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app")
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = uvicorn.Config(args.app, factory=args.factory, log_level="warning", access_log=False)
    raise SystemExit(Workers(config, listeners(args.host, args.port, args.workers)).run())


if __name__ == "__main__":
    main()
