"""The indexer: one process beside the workers, started by `collector serve`, that moves
accepted events from the inbox into the indexed tables (`SQLiteStore.catch_up`).

Ingest commits a group of events as one inbox row, which is what keeps the acknowledged
write cheap; indexing them (events and its indexes, identity links, person summaries)
is the expensive half, and it runs here, at a lower CPU priority than the workers. When
the machine has spare CPU the indexer follows the inbox within a poll interval; when the
workers need every core, ingest goes first and the backlog grows, up to the store's
`max_backlog`, past which every commit indexes as much as it adds. Reads never depend on
it: each one catches up first.

    python -m collector.indexer DB PARENT_PID
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import sys
import time
from types import FrameType

from collector.store import SQLiteStore

log = logging.getLogger("collector.indexer")

NICE = 10  # below the workers (0): under full load ingest gets the CPU first
POLL_S = 0.05  # how often an idle indexer looks at the inbox


def run(db: str, parent: int, poll_s: float = POLL_S) -> None:
    """Index until SIGTERM/SIGINT or until the parent process is gone."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    store = SQLiteStore(db)
    try:
        while not stopping and os.getppid() == parent:
            try:
                indexed = store.catch_up()
            except sqlite3.Error:
                # The inbox keeps the events; the next round (or a read) indexes them.
                log.exception("indexing failed; retrying")
                indexed = 0
            if not indexed:
                time.sleep(poll_s)
    finally:
        store.close()


def main() -> None:
    db, parent = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")
    os.nice(NICE)
    run(db, parent)


if __name__ == "__main__":
    main()
