"""A real collector process on a free port, for integration tests and the benchmark."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from collector.store import open_store

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli(db: str | Path, *args: str) -> str:
    """Run `collector ARGS --db DB` and return its stdout (raises with its output)."""
    proc = subprocess.run(
        [sys.executable, "-m", "collector", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"collector {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def index_all(db: str | Path) -> int:
    """Index every accepted event, as each read does first (`Store.index_all`), so a test
    or benchmark can read the tables themselves; return how many it indexed."""
    store = open_store(str(db))
    try:
        return store.index_all()
    finally:
        store.close()


def create_app(db: str | Path, name: str = "test", *extra: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cli(db, "apps", "create", name, "--json", *extra))
    return out


class CollectorProcess:
    """`collector serve` in its own process group, so a kill -9 takes its workers too."""

    def __init__(
        self,
        db: str | Path,
        *,
        workers: int = 1,
        extra: tuple[str, ...] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        """host, port: where it listens (a free port of 127.0.0.1 by default); prefix: a
        command it runs under, such as `ip netns exec NS` (tests/netns.py), which execs
        it, so the process (and group) is still the collector's."""
        self.db = str(db)
        self.workers = workers
        self.extra = extra
        self.host = host
        self.port = port or free_port()
        self.prefix = prefix
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self._final_output = ""

    def start(self, timeout: float = 30.0) -> CollectorProcess:
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "collector",
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--db",
                self.db,
                "--workers",
                str(self.workers),
                *self.extra,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._finish()
                raise RuntimeError(f"collector exited early:\n{self.output()}")
            if len(self.worker_pids()) >= self.workers:
                return self
            time.sleep(0.05)  # polling for readiness, not waiting a fixed time
        raise RuntimeError(f"collector did not become ready:\n{self.output()}")

    def worker_pids(self, probes: int = 8) -> set[int]:
        """The workers that answer /healthz, each probe on a new connection (the kernel
        spreads new connections over the workers' sockets). Ready means all of them."""
        pids: set[int] = set()
        for _ in range(probes):
            try:
                r = httpx.get(self.url + "/healthz", timeout=1)
            except httpx.HTTPError:
                return pids
            if r.status_code == 200:
                pids.add(r.json()["worker"])
            if len(pids) >= self.workers:
                break
        return pids

    def output(self) -> str:
        if self._log.closed:
            return self._final_output
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _finish(self) -> None:
        if not self._log.closed:
            self._final_output = self.output()
            self._log.close()

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._finish()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._finish()

    def __enter__(self) -> CollectorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
