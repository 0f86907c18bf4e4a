"""collector/workers.py in-process: the listening sockets, and a failed start-up."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from collector.workers import STARTUP_FAILURE, listeners, run_server
from tests.server import CollectorProcess


def test_listeners_share_one_port_with_reuseport() -> None:
    socks = listeners("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(ports) == 1 and 0 not in ports  # port 0: one free port for all
        for s in socks:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert s.get_inheritable()
    finally:
        for s in socks:
            s.close()


def test_a_port_held_without_reuseport_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError):
            listeners("127.0.0.1", other.getsockname()[1], 2)


@asynccontextmanager
async def _failing(app: Starlette) -> AsyncIterator[None]:
    raise RuntimeError("the database is not there")
    yield  # pragma: no cover


def test_a_server_whose_app_cannot_start_exits_with_startup_failure() -> None:
    # The supervisor stops on this status instead of restarting the worker forever.
    config = uvicorn.Config(Starlette(lifespan=_failing), port=0, log_level="critical")
    with pytest.raises(SystemExit) as exc:
        run_server(config)
    assert exc.value.code == STARTUP_FAILURE


def test_serve_stops_on_sigterm_sent_twice(tmp_path: Path) -> None:
    # `make serve` stopped with SIGTERM: the process group's signal, then make's own to
    # its child. The second one, arriving inside the first one's handler, once hung it.
    with CollectorProcess(tmp_path / "t.db") as server:
        assert server.proc is not None
        for _ in range(2):
            os.kill(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(timeout=30) is not None


def test_the_serving_line_comes_once_the_port_answers(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "collector", "serve", "--db", str(tmp_path / "t.db")),
            *("--port", str(port), "--workers", "2"),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # a script waiting for the line, as a user's would
            if line.startswith("Serving on"):
                break
        else:
            raise AssertionError("no Serving on line")
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # open now
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)  # reads the rest of stderr, and closes it
