"""What the SQLite store costs per event, without HTTP, in its two halves, on a real file
with the collector's schema and durable commits: accepting (`SQLiteStore.write`, the call
the group-commit writer makes before a request is answered) and indexing
(`SQLiteStore.index_all`, what the indexer process does later). It isolates storage from
the rest of the pipeline, and shows how the shape of the traffic changes that cost:

- browser events in groups of 22 (the mean group measured under the ingest benchmark's
  single-event load), 1,000 visitors, `message_id`s either time-ordered (the SDK's
  version 7 UUIDs) or random (version 4, as some server libraries send them);
- server events in groups of 1,000 (a commit's worth of 50-event batches under load)
  for 100,000 users, time-ordered ids.

Each shape writes into its own database, first warmed with `--warm` events so the indexes
have a realistic size; then the shapes take turns, `--rounds` times, and each figure is
the median of its rounds. CPU is this process's CPU time (what the collector's workers,
or its indexer, would spend); the accept wall time includes waiting for fsync.

    python -m bench.store_bench [--events 44000] [--warm 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from collector.models import Event
from collector.store import SQLiteStore
from tests.factories import ev

UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# What enrichment leaves in a browser event's context (see collector/enrich.py).
BROWSER_CONTEXT = {
    "path": "/pricing",
    "title": "Pricing",
    "source": "browser",
    "ip": "127.0.0.1",
    "user_agent": UA,
    "browser": "Chrome",
    "browser_version": "124.0.0",
    "os": "Mac OS X",
    "os_version": "10.15.7",
    "device_type": "desktop",
    "is_bot": False,
    "bot_reason": None,
    "locale": "en",
}


def uuid7() -> str:
    """A version 7 UUID as the SDK makes it: 48 bits of milliseconds, then random bits."""
    value = (int(time.time() * 1000) << 80) | uuid.uuid4().int & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7 (uuid4's variant bits stay)
    return str(uuid.UUID(int=value))


def uuid4() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Shape:
    name: str
    group: int
    make: Callable[[int], Event]


def browser_event(message_id: Callable[[], str]) -> Callable[[int], Event]:
    def make(n: int) -> Event:
        return ev(
            "app_bench",
            "page_viewed",
            int(time.time() * 1000),
            anon=f"a{n % 1000}",
            props={"plan": "pro", "n": n},
            context=dict(BROWSER_CONTEXT),
            message_id=message_id(),
        )

    return make


def server_event(n: int) -> Event:
    return ev(
        "app_bench",
        "export_completed",
        int(time.time() * 1000),
        user=f"u{(n * 7919) % 100_000}",
        props={"format": "csv", "rows": n % 50},
        context={"source": "server", "ip": "127.0.0.1", "user_agent": None, "is_bot": False},
        message_id=uuid7(),
    )


UNBOUNDED = 2**62  # max_backlog: accepting never indexes (see measure)

SHAPES = [
    Shape("browser, groups of 22, time-ordered ids (v7)", 22, browser_event(uuid7)),
    Shape("browser, groups of 22, random ids (v4)", 22, browser_event(uuid4)),
    Shape("server, groups of 1000, 100k users", 1000, server_event),
]


def groups(shape: Shape, counter: Iterator[int], events: int) -> list[list[Event]]:
    return [
        [shape.make(next(counter)) for _ in range(shape.group)]
        for _ in range(events // shape.group)
    ]


def measure(store: SQLiteStore, batches: list[list[Event]]) -> tuple[float, float, float]:
    """Per event: (CPU µs, wall µs) to accept the groups, one commit each, as the
    group-commit writer does; then CPU µs to index them, as the indexer does."""
    events = sum(len(b) for b in batches)
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        outcomes = store.write(batch)
        assert all(o.status == "accepted" for o in outcomes), "every event must be new"
    accept_cpu = (time.process_time() - cpu) / events * 1e6
    accept_wall = (time.perf_counter() - wall) / events * 1e6
    cpu = time.process_time()
    indexed = store.index_all()
    assert indexed == events, f"indexed {indexed} of {events}"
    return accept_cpu, accept_wall, (time.process_time() - cpu) / events * 1e6


def stored(store: SQLiteStore) -> int:
    store.index_all()
    return int(store.conn().execute("SELECT count(*) FROM events").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=44_000, help="per shape and round")
    parser.add_argument("--warm", type=int, default=200_000, help="events written first")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="telltale-store-bench-") as tmp:
        stores, counters = [], []
        for i, shape in enumerate(SHAPES):
            # Unbounded: the two halves are measured apart, so no commit may index.
            store = SQLiteStore(str(Path(tmp) / f"{i}.db"), max_backlog=UNBOUNDED)
            store.migrate()
            counter = itertools.count()
            for batch in groups(shape, counter, args.warm):
                store.write(batch)
            store.index_all()
            stores.append(store)
            counters.append(counter)

        results: list[list[tuple[float, float, float]]] = [[] for _ in SHAPES]
        written = [stored(s) for s in stores]
        for _ in range(args.rounds):
            for i, shape in enumerate(SHAPES):
                batches = groups(shape, counters[i], args.events)
                results[i].append(measure(stores[i], batches))
                written[i] += sum(len(b) for b in batches)

        head = "shape (per event, median of rounds)"
        print(
            f"{head:48s} {'accept CPU µs':>13s} {'wall µs':>8s} {'index CPU µs':>13s}"
            "  rounds (accept / index CPU µs)"
        )
        cpu_by_shape = []
        for shape, rounds in zip(SHAPES, results, strict=True):
            cpu, wall, index = (statistics.median(r[k] for r in rounds) for k in range(3))
            cpu_by_shape.append(cpu)
            spread = " / ".join(f"{r[0]:.1f}+{r[2]:.1f}" for r in rounds)
            print(f"{shape.name:48s} {cpu:13.1f} {wall:8.1f} {index:13.1f}  {spread}")
        ratio = cpu_by_shape[1] / cpu_by_shape[0]
        print(f"random vs time-ordered ids, browser events: x{ratio:.2f} CPU")
        for i, store in enumerate(stores):
            count = stored(store)
            assert count == written[i], (
                f"{SHAPES[i].name}: {count} rows stored, {written[i]} written"
            )
            store.close()
        print(f"rows stored: {', '.join(str(w) for w in written)} (every event written)")


if __name__ == "__main__":
    main()
