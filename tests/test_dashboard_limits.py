"""The dashboard's login limits hold in total, however many processes answer: a
collector with two workers (SQLite and PostgreSQL) and two collectors on one
PostgreSQL, each login attempt sent over a connection whose worker is known, in turn."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from collector.dashboard import accounts
from tests.server import ROOT, CollectorProcess

EMAIL = "owner@example.com"
PASSWORD = "a long enough password"


class Attempts:
    """One kept-alive connection per worker process: a login attempt goes to each in
    turn, and says which process answered it."""

    def __init__(self, urls: list[str], processes: int) -> None:
        self.clients: list[httpx.Client] = []
        self.served: set[tuple[str, int]] = set()
        seen: set[tuple[str, int]] = set()
        for _ in range(40 * processes):  # new connections until each worker has one
            url = urls[len(self.clients) % len(urls)]
            client = httpx.Client(base_url=url, timeout=30)
            worker = (url, client.get("/healthz").json()["worker"])
            if worker in seen:
                client.close()
                continue
            seen.add(worker)
            self.clients.append(client)
            if len(self.clients) == processes:
                break
        assert len(self.clients) == processes, seen
        self.turn = 0

    def login(self, email: str, password: str) -> int:
        client = self.clients[self.turn % len(self.clients)]
        self.turn += 1
        worker = client.get("/healthz").json()["worker"]  # the same connection: its worker
        form = client.get("/dashboard/login")
        found = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert found, form.text[:300]
        answer = client.post(
            "/dashboard/login",
            data={"email": email, "password": password, "csrf": found.group(1)},
        )
        self.served.add((str(client.base_url), worker))
        return answer.status_code

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture(params=["sqlite-2-workers", "postgres-2-workers", "postgres-2-collectors"])
def attempts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Attempts]:
    layout = str(request.param)
    if layout.startswith("sqlite"):
        db = str(tmp_path / "t.db")
    else:
        db = request.getfixturevalue("pg_url")
    _create_admin(db)
    with ExitStack() as stack:
        if layout.endswith("2-workers"):
            servers = [stack.enter_context(CollectorProcess(db, workers=2))]
        else:
            servers = [stack.enter_context(CollectorProcess(db)) for _ in range(2)]
        found = Attempts([s.url for s in servers], 2)
        stack.callback(found.close)
        yield found


def _create_admin(db: str) -> None:
    command = ["-m", "collector", "admins", "create", EMAIL, "--password-stdin", "--db", db]
    subprocess.run(
        [sys.executable, *command],
        input=PASSWORD + "\n",
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
    )


def test_an_accounts_failures_are_counted_across_processes(attempts: Attempts) -> None:
    # One failure comes back every 3 minutes: far longer than these attempts take.
    codes = [attempts.login(EMAIL, "wrong password") for _ in range(accounts.ACCOUNT_FAILURES)]
    assert codes == [401] * accounts.ACCOUNT_FAILURES
    # Each process saw only some of the failures; together they are the limit.
    assert len(attempts.served) == 2
    assert attempts.login(EMAIL, PASSWORD) == 429
    assert attempts.login(EMAIL, PASSWORD) == 429


def test_an_ips_attempts_are_counted_across_processes(attempts: Attempts) -> None:
    """20 attempts, then one every 15 s: the bucket refills while the attempts run, so
    the test bounds what passed by what separate limits would have let through (20 in
    each process, 40 in all), not by an exact count that a slow machine could miss."""
    allowed = 0
    while allowed < 2 * accounts.IP_ATTEMPTS:
        code = attempts.login(f"guess{allowed}@example.com", "x" * 8)
        if code == 429:
            break
        assert code == 401
        allowed += 1
    assert len(attempts.served) == 2
    assert accounts.IP_ATTEMPTS <= allowed < 2 * accounts.IP_ATTEMPTS, allowed
