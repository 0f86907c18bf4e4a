"""Steady ingest load on one or more collectors, remembering every answer: what was
acknowledged, and every answer that breaks the contract."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import httpx


class Target:
    """What one collector answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[str] = []  # message ids of events answered 202
        self.statuses: Counter[int] = Counter()
        self.refused = 0  # connections refused, reset or timed out: nothing acknowledged
        self.bad: list[str] = []  # answers the contract forbids (a 5xx without Retry-After…)
        self.lock = threading.Lock()


class Load:
    """`threads` clients per collector, each posting batches of `batch` new events with
    an API key, one after another, until stopped. Only 202 and 503 with Retry-After are
    answers the contract allows under faults; a refused connection is allowed (the
    collector is gone), and the client then tries again a little later, as the SDK does."""

    def __init__(self, urls: dict[str, str], key: str, threads: int = 2, batch: int = 10) -> None:
        self.key = key
        self.batch = batch
        self.targets = {name: Target(url) for name, url in urls.items()}
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(target,), daemon=True)
            for target in self.targets.values()
            for _ in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self, target: Target) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=target.url, timeout=30) as client:
            while not self.stop.is_set():
                mids = [uuid.uuid4().hex for _ in range(self.batch)]
                body = {"events": [{"event": "e", "user": "u", "message_id": m} for m in mids]}
                try:
                    r = client.post("/v1/events", json=body, headers=headers)
                except httpx.TransportError:
                    with target.lock:
                        target.refused += 1
                    self.stop.wait(0.05)  # a client's back-off, not a test's timing
                    continue
                with target.lock:
                    target.statuses[r.status_code] += 1
                    if r.status_code == 202:
                        target.acked.extend(mids)
                    elif r.status_code != 503 or "retry-after" not in r.headers:
                        target.bad.append(f"{r.status_code} {r.text[:200]}")
                if r.status_code == 503:
                    self.stop.wait(0.05)

    def acked(self, *names: str) -> int:
        return sum(len(self.targets[n].acked) for n in names or self.targets)

    def all_acked(self) -> list[str]:
        return [m for t in self.targets.values() for m in t.acked]

    def bad(self) -> list[str]:
        return [f"{n}: {b}" for n, t in self.targets.items() for b in t.bad]


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling a condition
