"""Group commit: outcomes after the commit, a bounded queue, a drain on stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pytest

from collector.errors import StorageFailed, Unavailable
from collector.ingest.writer import BIG_REQUEST, SLICE, Writer
from collector.models import Event, Outcome


def event(i: int, app_id: str = "app") -> Event:
    return Event(
        kind="track",
        name="e",
        app_id=app_id,
        user_id="u",
        anonymous_id=None,
        message_id=None,
        ts=0,
        received_at=0,
        timestamp=None,
        sent_at=None,
        properties={},
        context={},
        id=f"evt_{i}",
    )


class GatedStore:
    """A store whose write lock is held elsewhere (another worker process, as far as the
    writer can tell) until the test opens the gate."""

    commit_threads = 0

    def at_backlog_bound(self) -> bool:
        return False

    def exceeds_bound(self, count: int) -> bool:
        return False

    def commit_waiting(self) -> bool:
        return False

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.groups: list[list[str]] = []

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        self.entered.set()
        if not self.gate.is_set():
            return None
        events = take()
        self.groups.append([e.id for e in events])
        return [Outcome("accepted", e.id) for e in events]


def test_requests_wait_for_the_commit_and_share_it() -> None:
    async def scenario() -> None:
        store = GatedStore()
        writer = Writer(store, queue_size=100)  # type: ignore[arg-type]
        await writer.start()
        first = asyncio.create_task(writer.submit([event(0)]))
        while not store.entered.is_set():  # wait until the first group is in flight
            await asyncio.sleep(0.001)
        rest = [asyncio.create_task(writer.submit([event(i)])) for i in range(1, 6)]
        await asyncio.sleep(0)
        assert not first.done()  # not answered before its commit
        store.gate.set()
        results = await asyncio.gather(first, *rest)
        assert [r[0].event_id for r in results] == [f"evt_{i}" for i in range(6)]
        # The group is taken once the lock is held: what arrived while another process
        # held it joins, so six requests share one commit.
        assert store.groups == [[f"evt_{i}" for i in range(6)]]
        await writer.stop()

    asyncio.run(scenario())


def test_full_queue_answers_503_with_retry_after() -> None:
    async def scenario() -> None:
        store = GatedStore()
        writer = Writer(store, queue_size=4)  # type: ignore[arg-type]
        await writer.start()
        waiting = asyncio.create_task(writer.submit([event(0)]))
        while not store.entered.is_set():
            await asyncio.sleep(0.001)
        # Another app's three events: one app alone may hold only half the queue.
        queued = asyncio.create_task(writer.submit([event(i, "other") for i in (1, 2, 3)]))
        await asyncio.sleep(0)
        with pytest.raises(Unavailable) as info:
            await writer.submit([event(4, "third")])
        assert info.value.status == 503
        assert info.value.headers["Retry-After"] == "1"
        store.gate.set()
        assert len(await queued) == 3
        await waiting
        await writer.stop()

    asyncio.run(scenario())


def test_stop_drains_everything_queued() -> None:
    async def scenario() -> None:
        store = GatedStore()
        writer = Writer(store, queue_size=1000, commit_batch=10)  # type: ignore[arg-type]
        await writer.start()
        tasks = [asyncio.create_task(writer.submit([event(i)])) for i in range(50)]
        await asyncio.sleep(0)
        store.gate.set()
        await writer.stop()
        assert all(t.done() for t in tasks)
        assert sum(len(g) for g in store.groups) == 50
        assert max(len(g) for g in store.groups) <= 10
        with pytest.raises(Unavailable):
            await writer.submit([event(99)])

    asyncio.run(scenario())


def test_a_failed_commit_is_503_not_500() -> None:
    class Broken:
        commit_threads = 0

        def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
            take()
            raise OSError("disk full")

    async def scenario() -> None:
        writer = Writer(Broken(), queue_size=10)  # type: ignore[arg-type]
        await writer.start()
        with pytest.raises(Unavailable):
            await writer.submit([event(0)])
        await writer.stop()

    asyncio.run(scenario())


class SlowServer:
    """A store whose commit waits on a server (as PostgreSQL's does) until the test opens
    the gate; it commits on the writer's thread."""

    commit_threads = 2

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.groups: list[list[str]] = []
        self.threads: set[str] = set()

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.gate.wait()
        events = take()
        if self.fail:
            raise OSError("server gone")
        self.groups.append([e.id for e in events])
        return [Outcome("accepted", e.id) for e in events]


def test_a_commit_on_the_writer_thread_leaves_the_loop_serving() -> None:
    async def scenario() -> None:
        store = SlowServer()
        writer = Writer(store, queue_size=100)  # type: ignore[arg-type]
        await writer.start()
        first = asyncio.create_task(writer.submit([event(0)]))
        while not store.entered.is_set():  # the first commit is waiting on the server
            await asyncio.sleep(0.001)
        # The loop is free meanwhile: five more requests queue up behind the commit.
        rest = [asyncio.create_task(writer.submit([event(i)])) for i in range(1, 6)]
        while writer.pending < 5:
            await asyncio.sleep(0.001)
        assert not first.done() and not any(t.done() for t in rest)
        store.gate.set()
        results = await asyncio.gather(first, *rest)
        assert [r[0].event_id for r in results] == [f"evt_{i}" for i in range(6)]
        # One group in flight at a time: what queued meanwhile is the next commit.
        assert store.groups == [["evt_0"], [f"evt_{i}" for i in range(1, 6)]]
        assert all(name.startswith("group-commit") for name in store.threads)
        await writer.stop()

    asyncio.run(scenario())


class FailingStore:
    """A store whose commit fails (a full disk, a database file gone)."""

    commit_threads = 0

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        take()
        raise OSError(28, "No space left on device")


def test_a_failed_commit_answers_503_naming_storage() -> None:
    async def scenario() -> None:
        writer = Writer(FailingStore(), queue_size=100)  # type: ignore[arg-type]
        await writer.start()
        try:
            with pytest.raises(StorageFailed) as exc:
                await writer.submit([event(0)])
        finally:
            await writer.stop()
        assert exc.value.status == 503
        assert [e["field"] for e in exc.value.body()["errors"]] == ["storage"]
        assert exc.value.headers["Retry-After"] == "1"

    asyncio.run(scenario())


def test_a_failed_commit_on_the_writer_thread_is_503_and_stop_drains() -> None:
    async def scenario() -> None:
        store = SlowServer(fail=True)
        store.gate.set()
        writer = Writer(store, queue_size=100)  # type: ignore[arg-type]
        await writer.start()
        tasks = [asyncio.create_task(writer.submit([event(i)])) for i in range(20)]
        await asyncio.sleep(0)  # every request queued before the drain starts
        await writer.stop()
        assert all(t.done() for t in tasks)
        for task in tasks:
            with pytest.raises(Unavailable) as info:
                task.result()
            assert info.value.status == 503
        with pytest.raises(Unavailable):
            await writer.submit([event(99)])

    asyncio.run(scenario())


def test_a_flooding_app_cannot_crowd_another_out_of_the_writer() -> None:
    """Today one app's 2,000-event batches filled the queue and every group before
    another app's single event, whose p99 rose from 7 ms to 285 ms."""

    async def scenario() -> None:
        store = GatedStore()
        writer = Writer(store, queue_size=10_000, commit_batch=2_000)  # type: ignore[arg-type]
        await writer.start()
        flood = [
            asyncio.create_task(writer.submit([event(b * 1000 + i, "flood") for i in range(1000)]))
            for b in range(5)
        ]
        while not store.entered.is_set():
            await asyncio.sleep(0.001)
        more = [  # past half the queue the flood is refused, and nobody else
            asyncio.create_task(writer.submit([event(b * 1000 + i, "flood") for i in range(1000)]))
            for b in range(5, 20)
        ]
        quiet = asyncio.create_task(writer.submit([event(1, "quiet")]))
        await asyncio.sleep(0)
        assert all(t.done() and isinstance(t.exception(), Unavailable) for t in more)
        assert not quiet.done()
        store.gate.set()
        await quiet
        await asyncio.gather(*flood)
        await writer.stop()
        first_group = store.groups[0]
        assert "evt_1" in first_group  # the quiet app's event: in the first commit
        assert len(first_group) <= 2_000

    asyncio.run(scenario())


class GatedByApp:
    """A store that commits on the writer's threads, side by side, and holds any group
    holding one of `held`'s events until the test opens the gate (a long commit)."""

    commit_threads = 2

    def at_backlog_bound(self) -> bool:
        return False

    def exceeds_bound(self, count: int) -> bool:
        return False

    def commit_waiting(self) -> bool:
        return False

    def __init__(self, held: str) -> None:
        self.held = held
        self.gate = threading.Event()
        self.holding = threading.Event()
        self.lock = threading.Lock()
        self.groups: list[list[str]] = []

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        events = take()
        if any(e.app_id == self.held for e in events):
            self.holding.set()
            self.gate.wait()
        with self.lock:
            self.groups.append([e.id for e in events])
        return [Outcome("accepted", e.id) for e in events]


def test_another_app_commits_beside_a_long_commit_and_one_app_never_has_two() -> None:
    """PostgreSQL: one app's 2,000-event batches took 100-400 ms a commit on a busy
    machine, and another app's single event waited for one of them and then shared the
    next (its p99 238 ms): now it commits on the other lane meanwhile."""

    async def scenario() -> None:
        store = GatedByApp("flood")
        writer = Writer(store, queue_size=10_000, commit_batch=5_000)  # type: ignore[arg-type]
        await writer.start()
        first = asyncio.create_task(writer.submit([event(i, "flood") for i in range(2000)]))
        while not store.holding.is_set():
            await asyncio.sleep(0.001)
        second = asyncio.create_task(writer.submit([event(2000 + i, "flood") for i in range(2000)]))
        # Answered while the flood's commit is held (the timeout only ends a hang).
        quiet = await asyncio.wait_for(writer.submit([event(9999, "quiet")]), 60)
        assert [o.event_id for o in quiet] == ["evt_9999"]
        assert store.groups == [["evt_9999"]]  # alone: it shares no commit with the flood
        assert not first.done() and not second.done()
        assert writer.pending == 2000  # the flood's second batch waits for its first
        store.gate.set()
        await asyncio.gather(first, second)
        await writer.stop()
        assert store.groups[1] == [f"evt_{i}" for i in range(2000)]
        assert store.groups[2] == [f"evt_{i}" for i in range(2000, 4000)]

    asyncio.run(scenario())


class RecordingStore:
    """Commits on the event loop (SQLite's way), every group recorded; `after` runs once
    inside the first commit (a request that arrives while it runs)."""

    commit_threads = 0

    def at_backlog_bound(self) -> bool:
        return False

    def exceeds_bound(self, count: int) -> bool:
        return False

    def commit_waiting(self) -> bool:
        return False

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.after: Callable[[], None] | None = None

    def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
        events = take()
        self.groups.append([e.id for e in events])
        if self.after is not None:
            after, self.after = self.after, None
            after()
        return [Outcome("accepted", e.id) for e in events]


def batch(app_id: str, first: int, count: int) -> list[Event]:
    return [event(first + i, app_id) for i in range(count)]


def test_small_requests_commit_before_a_big_batch_and_never_share_its_commit() -> None:
    """SQLite, flood of 2,000-event batches: another app's single event shared a
    commit with two of them (4,001 events, every one of its requests waiting for all),
    its p99 540 ms on a quiet machine. Now the waiting small requests commit first, in
    a group of their own, and a big batch commits alone."""
    big = BIG_REQUEST + 1

    async def scenario() -> None:
        store = GatedStore()
        writer = Writer(store, queue_size=100_000, commit_batch=5_000)  # type: ignore[arg-type]
        await writer.start()
        first = asyncio.create_task(writer.submit(batch("flood", 0, big)))
        while not store.entered.is_set():  # the lock is taken elsewhere: everyone waits
            await asyncio.sleep(0.001)
        tasks = [
            asyncio.create_task(writer.submit(batch("flood", 1_000, big))),
            asyncio.create_task(writer.submit(batch("quiet", 10_000, 1))),
            asyncio.create_task(writer.submit(batch("other", 20_000, 3))),
            asyncio.create_task(writer.submit(batch("flood2", 30_000, big))),
            asyncio.create_task(writer.submit(batch("quiet", 10_001, 1))),
        ]
        await asyncio.sleep(0)
        store.gate.set()
        await asyncio.gather(first, *tasks)
        await writer.stop()
        sizes = [len(g) for g in store.groups]
        # The small requests first, together (one of each app in turn); then each big
        # batch alone, in slices, apps in turn (the flood's second batch after flood2's).
        assert store.groups[0] == ["evt_10000", "evt_20000", "evt_20001", "evt_20002", "evt_10001"]
        assert sizes[1:] == [SLICE, SLICE, big - 2 * SLICE] * 3
        assert [g[0] for g in store.groups[1::3]] == ["evt_0", "evt_30000", "evt_1000"]

    asyncio.run(scenario())


def test_big_batches_and_small_requests_take_turns_while_both_wait() -> None:
    """Small requests go first, but a stream of them cannot hold a big batch back: while
    both wait, a group of small requests and a big batch take turns."""
    big = BIG_REQUEST + 1

    async def scenario() -> None:
        store = RecordingStore()
        writer = Writer(store, queue_size=100_000, commit_batch=5_000)  # type: ignore[arg-type]
        await writer.start()
        late: list[asyncio.Task[list[Outcome]]] = []
        # While the first group commits, another small request and a batch arrive.
        store.after = lambda: late.extend(
            [
                asyncio.ensure_future(writer.submit(batch("quiet", 3, 1))),
                asyncio.ensure_future(writer.submit(batch("flood", 5_000, big))),
            ]
        )
        tasks = [
            asyncio.create_task(writer.submit(batch("flood", 0, big))),
            asyncio.create_task(writer.submit(batch("quiet", 1, 1))),
        ]
        await asyncio.gather(*tasks)
        await asyncio.gather(*late)
        await writer.stop()
        firsts = [g[0] for g in store.groups]
        # Small first; then the big batch whose turn it is, though a small one waits (its
        # first slice); then the small one, though the batch is not all committed; then
        # the batch's other slices, and the next batch's.
        assert firsts == [
            "evt_1",
            "evt_0",
            "evt_3",
            f"evt_{SLICE}",
            f"evt_{2 * SLICE}",
            "evt_5000",
            f"evt_{5000 + SLICE}",
            f"evt_{5000 + 2 * SLICE}",
        ]

    asyncio.run(scenario())


def test_a_big_request_is_committed_in_slices_and_answered_once_all_are() -> None:
    """SQLite, flood of 2,000-event batches: each was one commit, which held the loop
    and the group commit's lock 30-56 ms, and a single event of another app, on either
    worker, waited that out. Now it commits between two slices of the batch; the batch
    is answered once its last slice is, its outcomes in order."""
    count = 2_000

    async def scenario() -> None:
        store = RecordingStore()
        writer = Writer(store, queue_size=100_000, commit_batch=5_000)  # type: ignore[arg-type]
        await writer.start()
        quiet: list[asyncio.Task[list[Outcome]]] = []
        # A single event arrives while the batch's first slice commits.
        store.after = lambda: quiet.append(
            asyncio.ensure_future(writer.submit(batch("quiet", 90_000, 1)))
        )
        flood = asyncio.create_task(writer.submit(batch("flood", 0, count)))
        while not quiet:
            await asyncio.sleep(0)
        answer = await quiet[0]
        assert [o.event_id for o in answer] == ["evt_90000"]
        assert not flood.done()  # the single event went between two slices
        outcomes = await flood
        await writer.stop()
        assert [o.event_id for o in outcomes] == [f"evt_{i}" for i in range(count)]
        assert [len(g) for g in store.groups] == [SLICE, 1] + [SLICE] * (count // SLICE - 1)

    asyncio.run(scenario())


def test_a_sliced_request_whose_slice_fails_is_answered_503() -> None:
    """Its earlier slices are stored: its retry finds them as duplicates (their message
    ids are claimed once), and stores the rest."""

    class FailsSecondSlice(RecordingStore):
        def try_write(self, take: Callable[[], Sequence[Event]]) -> list[Outcome] | None:
            if len(self.groups) == 1:
                take()
                self.groups.append([])
                raise OSError(28, "No space left on device")
            return super().try_write(take)

    async def scenario() -> None:
        store = FailsSecondSlice()
        writer = Writer(store, queue_size=100_000)  # type: ignore[arg-type]
        await writer.start()
        with pytest.raises(StorageFailed):
            await writer.submit(batch("flood", 0, 3 * SLICE))
        # The writer goes on: the next request is taken whole, from its first event.
        outcomes = await writer.submit(batch("flood", 0, 3 * SLICE))
        await writer.stop()
        assert len(outcomes) == 3 * SLICE
        assert [g[0] for g in store.groups if g][1:] == [f"evt_{i * SLICE}" for i in range(3)]

    asyncio.run(scenario())
