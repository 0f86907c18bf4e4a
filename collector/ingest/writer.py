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
the 503s; another app's request still joins the next group. A big request (more than
BIG_REQUEST events) is committed in a group of its own, and the small ones waiting go
first: groups of small requests and single big ones take turns while both wait. So a
single event never shares a commit with a 2,000-event batch, nor waits for more than the
one big commit already under way (on SQLite every commit holds the one write lock, and
the loop, for as long as it takes), and a flood of small requests cannot hold a big one
back for long either.

While SQLite's backlog of events waiting to be indexed is at its bound, a big request is
refused (503, `BacklogFull`): past the bound every commit also indexes as much as it
adds, on the loop and holding the lock, so a flood's 2,000-event commit held every other
app back for 1-2 s on a busy machine. The app that sends big batches waits for the
indexer instead; small requests are still taken.

Where the transaction runs depends on the store (`Store.commit_threads`). SQLite's is
mostly computation in this process: it runs on the event loop itself, as a plain
callback, because a writer task woken by an event costs more a request, and a writer
thread costs more in hand-offs than it gains in overlap (docs/benchmarks.md has the
measurements); while another worker process has the write turn, the loop keeps serving
requests and tries again shortly. PostgreSQL's is mostly waiting on the server (round
trips, its flush to disk): it runs on writer threads while the loop keeps reading
requests into the next group. Commits there may run side by side (the server admits
concurrent writers), a lane each, but an app has at most one group in flight: so its
requests are committed in the order they came, and an app whose 2,000-event batch keeps
one lane busy for a long commit leaves the other lane to everyone else, whose requests
no longer wait for that commit, nor share one with it."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from collector.errors import BacklogFull, StorageFailed, Unavailable
from collector.ingest.metrics import Tally
from collector.models import Event, Outcome
from collector.store.base import Store

log = logging.getLogger("collector.ingest.writer")

_LOCK_RETRY_S = 0.0005

Pending = tuple[Sequence[Event], "asyncio.Future[list[Outcome]]"]

# The share of `queue_size` one app may hold, so that another app always finds room.
APP_SHARE = 0.5
# Events past which a request is big: committed alone, taking turns with the small ones.
# SDKs send a few events a request; a 250-event batch takes ~3 ms of CPU to commit.
BIG_REQUEST = 250
# Where the commit runs on the event loop (SQLite), a big request is committed in slices
# of this many events, each a transaction of its own, and answered once all are: a
# 2,000-event commit held the loop and the group commit's lock 30-56 ms under a flood,
# and every other app's request on either worker waited that out. Between two slices
# the small requests waiting go first. (An inbox row holds as many: store INBOX_ROW.)
SLICE = 100


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
        self.lanes = store.commit_threads
        self._thread = (
            ThreadPoolExecutor(self.lanes, thread_name_prefix="group-commit")
            if self.lanes
            else None
        )
        self._busy_lanes = 0
        self._in_flight: set[str] = set()  # apps with a group on a lane
        self._big_turn = False  # whether a big request goes next if one waits
        self._slicing: _Slicing | None = None  # the big request being committed in slices
        self._slice = 0  # events of that request in the group under way (0: not a slice)

    @property
    def pending(self) -> int:
        return self._pending_events

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def check_backlog(self, count: int) -> None:
        """BacklogFull for a request of `count` events that `submit` would refuse for the
        backlog: asked before the request's events are validated and enriched (15-20 ms
        of CPU for 2,000 of them), which a refused flood would otherwise cost every time
        it tries again."""
        if count > BIG_REQUEST and self.store.at_backlog_bound():
            raise BacklogFull(1)

    async def submit(self, events: Sequence[Event]) -> list[Outcome]:
        """Queue events; return their outcomes once committed (raises Unavailable if full)."""
        if not events:
            return []
        if self._closing or self._loop is None:
            raise Unavailable(1, "Collector is shutting down, retry later")
        self.check_backlog(len(events))
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
        if self._loop is not None and (self._scheduled or self._busy_lanes):
            self._drained = self._loop.create_future()
            await self._drained
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    def _flush(self) -> None:
        """Commit one group (a loop callback); schedule the next while work remains."""
        assert self._loop is not None
        if self._thread is not None:
            self._scheduled = False
            self._start_commits()
            return
        self._group = []
        self._slice = 0
        started = time.perf_counter()
        try:
            outcomes = self.store.try_write(self._take)
        except Exception:  # the store failed: nothing of this group is stored
            log.exception("group commit of %d requests failed", len(self._group))
            # A sliced request whose earlier slices were stored fails too: its retry
            # finds them as duplicates of themselves (message ids are claimed once).
            failed = [f for _, f in self._group]
            if self._slice and self._slicing is not None:
                failed.append(self._slicing.request[1])
                self._slicing = None
            for future in failed:
                if not future.done():
                    future.set_exception(StorageFailed(1))
        else:
            if outcomes is None:
                # Another worker process is mid-transaction (a few ms at most).
                self._loop.call_later(_LOCK_RETRY_S, self._flush)
                return
            self.tally.commit(outcomes, time.perf_counter() - started, self._pending_events)
            if self._slice:
                self._sliced(outcomes)
            start = 0
            for events, future in self._group:
                if not future.done():
                    future.set_result(outcomes[start : start + len(events)])
                start += len(events)
        self._group = []
        self._slice = 0
        self._next()

    def _sliced(self, outcomes: list[Outcome]) -> None:
        """A slice of the big request committed: answered once its last one is."""
        sliced = self._slicing
        assert sliced is not None
        sliced.outcomes.extend(outcomes)
        sliced.done += self._slice
        if sliced.done >= len(sliced.request[0]):
            self._slicing = None
            if not sliced.request[1].done():
                sliced.request[1].set_result(sliced.outcomes)

    def _next(self) -> None:
        """After a commit: the next group if requests are waiting, else idle."""
        assert self._loop is not None
        if self._slicing is not None and self.store.commit_waiting():
            # A group commit of another worker waits for the lock this one just let go:
            # flock is not fair, and this loop would take it back at once, slice after
            # slice, while that one tries every _LOCK_RETRY_S.
            self._loop.call_later(2 * _LOCK_RETRY_S, self._flush)
            return
        if self._pending or self._slicing is not None:
            self._loop.call_soon(self._flush)
            return
        self._scheduled = False
        self._idle()

    def _start_commits(self) -> None:
        """Hand groups to the free lanes (writer threads), each from the waiting apps that
        have no group in flight; `_committed` answers a group, on the loop, once its
        commit returns, and frees its lane."""
        assert self._thread is not None and self._loop is not None
        loop = self._loop
        while self._busy_lanes < self.lanes:
            group = self._take_group(skip=self._in_flight)
            if not group:
                break
            apps = {batch[0].app_id for batch, _ in group}
            self._in_flight |= apps
            self._busy_lanes += 1
            events = [ev for batch, _ in group for ev in batch]
            started = time.perf_counter()
            done = self._thread.submit(self._write, events)
            done.add_done_callback(
                functools.partial(self._answer_on_loop, loop, group, apps, started)
            )
        if not self._busy_lanes and not self._pending:
            self._idle()

    def _answer_on_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        group: list[Pending],
        apps: set[str],
        started: float,
        done: Future[list[Outcome]],
    ) -> None:
        loop.call_soon_threadsafe(self._committed, group, apps, done, started)

    def _write(self, events: Sequence[Event]) -> list[Outcome]:
        while True:  # a store that commits in a thread does not take turns; just in case
            outcomes = self.store.try_write(lambda: events)
            if outcomes is not None:
                return outcomes

    def _committed(
        self,
        group: list[Pending],
        apps: set[str],
        done: Future[list[Outcome]],
        started: float,
    ) -> None:
        self._busy_lanes -= 1
        self._in_flight -= apps
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
        if not self._scheduled:  # else a flush is coming anyway, with this loop turn's work
            self._start_commits()

    def _idle(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _take(self) -> list[Event]:
        """The next group, taken once the write lock is held: whatever arrived while
        another worker process was writing joins it, so contention makes groups bigger
        (and commits fewer) instead of adding rounds. A big request that would take the
        backlog past its bound is refused here (BacklogFull), where the backlog is read
        under the lock: the big requests let in while it was still short of the bound
        (from every worker) took it past, and each of their commits then indexed up to
        2,000 events too, on the loop and holding the lock (40-80 ms of CPU, 0.1-0.7 s
        on the busy machine); the next group is taken instead. A group of small requests
        is taken whatever its size, as at the bound."""
        if self._slicing is not None:
            return self._take_sliced(self._slicing)
        while True:
            self._group = self._take_group()
            events = [ev for batch, _ in self._group for ev in batch]
            big = len(self._group) == 1 and len(events) > BIG_REQUEST  # else small ones
            if not big:
                return events
            if not self.store.exceeds_bound(len(events)):
                self._slicing = _Slicing(self._group[0])
                self._group = []
                self._big_turn = True  # its turn: its first slice now
                return self._take_sliced(self._slicing)
            for _, future in self._group:
                if not future.done():
                    future.set_exception(BacklogFull(1))

    def _take_sliced(self, sliced: _Slicing) -> list[Event]:
        """While a big request is committed in slices: its next slice, or the small
        requests waiting (of other apps: an app's requests are stored in the order they
        came), the two in turns while both wait."""
        app_id = sliced.request[0][0].app_id
        if not self._big_turn and self._has_small({app_id}):
            self._group = self._take_small({app_id})
            self._big_turn = True
            return [ev for batch, _ in self._group for ev in batch]
        self._big_turn = False
        events = sliced.request[0][sliced.done : sliced.done + SLICE]
        self._slice = len(events)
        return list(events)

    def _take_group(self, skip: set[str] | None = None) -> list[Pending]:
        """The next group, from the apps not in `skip`: small requests (one from each
        waiting app in turn, up to `commit_batch` events), or one big request alone.
        While both wait they take turns; otherwise whichever waits goes. An app's
        requests are taken in the order they came, so an app whose next request is big
        offers no small one meanwhile. Empty if nothing can be taken."""
        big = self._first_big(skip)
        if big is not None and (self._big_turn or not self._has_small(skip)):
            self._big_turn = False
            return [self._pop(big)]
        group = self._take_small(skip)
        self._big_turn = big is not None
        return group

    def _first_big(self, skip: set[str] | None) -> str | None:
        """The first app in turn order whose next request is big (not in `skip`)."""
        for app_id, queue in self._pending.items():
            if len(queue[0][0]) > BIG_REQUEST and not (skip and app_id in skip):
                return app_id
        return None

    def _has_small(self, skip: set[str] | None) -> bool:
        return any(
            len(queue[0][0]) <= BIG_REQUEST and not (skip and app_id in skip)
            for app_id, queue in self._pending.items()
        )

    def _take_small(self, skip: set[str] | None) -> list[Pending]:
        """Small requests, one from each app in turn, up to `commit_batch` events. An
        app that still waits afterwards goes to the back of the turn order, so the next
        group starts with the others."""
        group: list[Pending] = []
        count = 0
        took = True
        while took:
            took = False
            for app_id in list(self._pending):
                if skip and app_id in skip:
                    continue
                queue = self._pending.get(app_id)
                if queue is None or len(queue[0][0]) > BIG_REQUEST:
                    continue
                if group and count + len(queue[0][0]) > self.commit_batch:
                    return group
                group.append(self._pop(app_id))
                count += len(group[-1][0])
                took = True
        return group

    def _pop(self, app_id: str) -> Pending:
        """The next request of `app_id`; the app goes to the back of the turn order."""
        queue = self._pending.pop(app_id)
        request = queue.popleft()
        size = len(request[0])
        self._pending_events -= size
        if queue:
            self._pending[app_id] = queue
            self._pending_by_app[app_id] -= size
        else:
            del self._pending_by_app[app_id]
        return request


class _Slicing:
    """A big request committed in slices: how many of its events are, their outcomes."""

    __slots__ = ("done", "outcomes", "request")

    def __init__(self, request: Pending) -> None:
        self.request = request
        self.done = 0
        self.outcomes: list[Outcome] = []
