"""Group commit: requests hand their events to one writer and wait for the commit.

Requests that arrive together share a transaction: the first one to queue events
schedules a flush with `loop.call_soon`, which runs once every handler that was ready in
the same loop turn has queued its events too. So one commit (and one fsync) covers many
requests, and no request is answered before its events are on disk. While a commit runs,
new requests pile up for the next one. The queue is bounded: past `queue_size` waiting
events a request is refused with 503 + Retry-After rather than held in memory.

The writer is shared fairly between apps: requests wait in a queue per app, a group takes
one request from each waiting app in turn, and one app may hold at most APP_SHARE of the
queue. An app that floods the collector with big batches fills its own queue and gets
the 503s; another app's request still joins the next group.

Where the transaction runs depends on the store (`Store.commit_in_thread`). SQLite's is
mostly computation in this process: it runs on the event loop itself, as a plain
callback, because a writer task woken by an event costs more a request, and a writer
thread costs more in hand-offs than it gains in overlap (docs/benchmarks.md has the
measurements); while another worker process has the write turn, the loop keeps serving
requests and tries again shortly. PostgreSQL's is mostly waiting on the server (round
trips, its flush to disk): it runs on one writer thread, one group at a time, while the
loop keeps reading requests into the next group."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from collector.errors import StorageFailed, Unavailable
from collector.ingest.metrics import Tally
from collector.models import Event, Outcome
from collector.store.base import Store

log = logging.getLogger("collector.ingest.writer")

_LOCK_RETRY_S = 0.0005

Pending = tuple[Sequence[Event], "asyncio.Future[list[Outcome]]"]

# The share of `queue_size` one app may hold, so that another app always finds room.
APP_SHARE = 0.5


class Writer:
    def __init__(
        self,
        store: Store,
        *,
        queue_size: int = 50_000,
        commit_batch: int = 5_000,
        tally: Tally | None = None,
    ) -> None:
        self.store = store
        self.tally = tally or Tally()  # each commit is recorded here (ingest/metrics.py)
        self.queue_size = queue_size
        self.commit_batch = commit_batch
        # Waiting requests by app, apps in turn order (a dict keeps insertion order).
        self._pending: dict[str, deque[Pending]] = {}
        self._pending_by_app: dict[str, int] = {}
        self._group: list[Pending] = []
        self._pending_events = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._closing = False
        self._drained: asyncio.Future[None] | None = None
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="group-commit")
            if store.commit_in_thread
            else None
        )

    @property
    def pending(self) -> int:
        return self._pending_events

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def submit(self, events: Sequence[Event]) -> list[Outcome]:
        """Queue events; return their outcomes once committed (raises Unavailable if full)."""
        if not events:
            return []
        if self._closing or self._loop is None:
            raise Unavailable(1, "Collector is shutting down, retry later")
        app_id = events[0].app_id
        waiting = self._pending_by_app.get(app_id, 0)
        if self._pending_events + len(events) > self.queue_size or (
            waiting and waiting + len(events) > self.queue_size * APP_SHARE
        ):
            raise Unavailable(1)
        future: asyncio.Future[list[Outcome]] = self._loop.create_future()
        queue = self._pending.get(app_id)
        if queue is None:
            queue = self._pending[app_id] = deque()
        queue.append((events, future))
        self._pending_by_app[app_id] = waiting + len(events)
        self._pending_events += len(events)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return await future

    async def stop(self) -> None:
        """Refuse new work, write everything already queued, then stop."""
        self._closing = True
        if self._loop is not None and self._scheduled:
            self._drained = self._loop.create_future()
            await self._drained
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    def _flush(self) -> None:
        """Commit one group (a loop callback); schedule the next while work remains."""
        assert self._loop is not None
        if self._thread is not None:
            self._flush_in_thread()
            return
        self._group = []
        started = time.perf_counter()
        try:
            outcomes = self.store.try_write(self._take)
        except Exception:  # the store failed: nothing of this group is stored
            log.exception("group commit of %d requests failed", len(self._group))
            for _, future in self._group:
                if not future.done():
                    future.set_exception(StorageFailed(1))
        else:
            if outcomes is None:
                # Another worker process is mid-transaction (a few ms at most).
                self._loop.call_later(_LOCK_RETRY_S, self._flush)
                return
            self.tally.commit(outcomes, time.perf_counter() - started, self._pending_events)
            start = 0
            for events, future in self._group:
                if not future.done():
                    future.set_result(outcomes[start : start + len(events)])
                start += len(events)
        self._group = []
        self._next()

    def _next(self) -> None:
        """After a commit: the next group if requests are waiting, else idle."""
        assert self._loop is not None
        if self._pending:
            self._loop.call_soon(self._flush)
            return
        self._scheduled = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _flush_in_thread(self) -> None:
        """Hand the next group to the writer thread; `_committed` answers it, on the
        loop, once the commit returns."""
        assert self._thread is not None and self._loop is not None
        group = self._take_group()
        events = [ev for batch, _ in group for ev in batch]
        started = time.perf_counter()
        done = self._thread.submit(self._write, events)
        loop = self._loop
        done.add_done_callback(
            lambda f: loop.call_soon_threadsafe(self._committed, group, f, started)
        )

    def _write(self, events: Sequence[Event]) -> list[Outcome]:
        while True:  # a store that commits in a thread does not take turns; just in case
            outcomes = self.store.try_write(lambda: events)
            if outcomes is not None:
                return outcomes

    def _committed(self, group: list[Pending], done: Future[list[Outcome]], started: float) -> None:
        exc = done.exception()
        if exc is not None:  # the store failed: nothing of this group is stored
            log.error("group commit of %d requests failed", len(group), exc_info=exc)
        else:
            self.tally.commit(done.result(), time.perf_counter() - started, self._pending_events)
        start = 0
        for events, future in group:
            if not future.done():
                if exc is not None:
                    future.set_exception(StorageFailed(1))
                else:
                    future.set_result(done.result()[start : start + len(events)])
            start += len(events)
        self._next()

    def _take(self) -> list[Event]:
        """The next group, taken once the write lock is held: whatever arrived while
        another worker process was writing joins it, so contention makes groups bigger
        (and commits fewer) instead of adding rounds."""
        self._group = self._take_group()
        return [ev for events, _ in self._group for ev in events]

    def _take_group(self) -> list[Pending]:
        """Up to `commit_batch` events (always at least one request): one request from
        each waiting app in turn. An app that still waits afterwards goes to the back of
        the turn order, so the next group starts with the others."""
        group: list[Pending] = []
        count = 0
        full = False
        while self._pending and not full:
            for app_id in list(self._pending):
                queue = self._pending[app_id]
                events = queue[0][0]
                if group and count + len(events) > self.commit_batch:
                    full = True
                    break
                group.append(queue.popleft())
                count += len(events)
                left = self._pending_by_app[app_id] - len(events)
                del self._pending[app_id]
                if queue:
                    self._pending[app_id] = queue  # to the back of the turn order
                    self._pending_by_app[app_id] = left
                else:
                    del self._pending_by_app[app_id]
        self._pending_events -= count
        return group
