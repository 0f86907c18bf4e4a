"""Serve a benchmark app exactly as `collector serve` serves the collector: the same
uvicorn settings (`config`, from collector/cli.py), and one worker process per
`SO_REUSEPORT` socket (collector/workers.py), so the bare baseline and the collector
without storage get the same server, and the same even spread of connections, as the
collector. The bare app tunes the garbage collector as the collector's workers do
(bench/bare_app.py); the storage-free collector is the collector's own app.

    python -m bench.serve MODULE:APP [--factory] --port PORT [--workers 2]
"""

from __future__ import annotations

import argparse

import uvicorn

from collector.settings import Settings
from collector.workers import Workers, listeners


def config(app: str, *, factory: bool, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
    """uvicorn's settings as `collector serve` gives them with its defaults
    (collector/cli.py's `uvicorn_config`, for another app; tests/test_bench.py checks
    that the two agree). Left on, uvicorn's proxy-header
    middleware and its `server` header cost every request, so a baseline served with
    uvicorn's defaults is slower than the collector's server and flatters every ratio."""
    return uvicorn.Config(
        app,
        factory=factory,
        host=host,
        port=port,
        log_level=Settings().log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        http="collector.web.protocol:GuardedHttpToolsProtocol",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app")
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    served = config(args.app, factory=args.factory, host=args.host, port=args.port)
    raise SystemExit(Workers(served, listeners(args.host, args.port, args.workers)).run())


if __name__ == "__main__":
    main()
