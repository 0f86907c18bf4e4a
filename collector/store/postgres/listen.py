"""Wake live streams when any collector indexes events: LISTEN on a connection of its
own, in a thread.

A thread with a blocking connection rather than psycopg's AsyncConnection: the store
is shared by threads and may serve more than one event loop (each test client runs its
own), while an async connection belongs to the loop that made it. One listener per
store wakes the waiters of every loop with `call_soon_threadsafe`, and its reconnection
is plain blocking code. While it is not connected, waiters sleep their whole timeout,
which is the polling the SQLite backend does anyway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import psycopg

from collector.store.postgres.connections import Database

log = logging.getLogger("collector.store.postgres")

_POLL_S = 0.2  # how often the thread looks at its stop flag while nothing arrives
_RECONNECT_S = 1.0


class Listener:
    def __init__(self, db: Database, channel: str) -> None:
        self.db = db
        self.channel = channel
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="telltale-pg-listen", daemon=True
                )
                self._thread.start()

    async def wait(self, timeout_s: float) -> None:
        """Return at the next notification, or after timeout_s."""
        self.start()
        if not self.listening:
            await asyncio.sleep(timeout_s)
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (loop, waiter)
        with self._lock:
            self._waiters.add(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout_s)
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_resolve, waiter)

    def _run(self) -> None:
        while not self._stop.is_set():
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = self.db.connect(autocommit=True)
                conn.execute(f"LISTEN {self.channel}")
                self._listening.set()
                # Events indexed while this was not listening: waiters look now.
                self._wake()
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=_POLL_S):
                        self._wake()
            except psycopg.Error as exc:
                if self._listening.is_set():
                    log.warning("live stream notifications stopped: %s", exc)
            finally:
                self._listening.clear()
                if conn is not None:
                    conn.close()
            self._stop.wait(_RECONNECT_S)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
