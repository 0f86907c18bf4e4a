"""Worker processes for `collector serve --workers N`, each with a listening socket of its
own.

uvicorn's own supervisor binds one socket and shares it among its workers, so whichever
worker wakes first accepts a burst of new connections, and keep-alive holds that split
for as long as the connections live (with wrk's 64 connections, splits such as 61/3
between two workers; a worker holding most connections needs more than one core). Here
every worker listens on a socket of its own, all bound to the address with
`SO_REUSEPORT`, and the kernel spreads connections over them by a hash of their
addresses, as nginx's `reuseport` does.

What that costs: a connection the kernel has queued for a worker that died waits in that
socket's queue until the replacement (started within half a second) accepts it, where a
shared socket would have handed it to another worker. And with `SO_REUSEPORT` a second
server of the same user on the same port shares the traffic instead of failing to bind.

The supervisor uses uvicorn's public API only (`Config`, `Server.run(sockets=...)`): it
starts the workers, starts a new one in the place of any that exits, and on SIGINT or
SIGTERM asks each to shut down gracefully (uvicorn drains requests; the collector's
writer commits what is queued) and waits for them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn

log = logging.getLogger("collector.workers")

STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that could not start
_POLL_S = 0.5


def listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets bound to (host, port) with SO_REUSEPORT, not yet listening (each
    worker's server listens on its own). Port 0 takes a free port for all of them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            for other in socks:
                other.close()
            raise
        port = sock.getsockname()[1]
        sock.set_inheritable(True)
        socks.append(sock)
    return socks


def run_server(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> None:
    """Serve until told to stop; exit with STARTUP_FAILURE if the server never started
    (the app's start-up failed), as `uvicorn.run` does."""
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def _worker(config: uvicorn.Config, sock: socket.socket) -> None:
    config.configure_logging()
    run_server(config, [sock])


class Workers:
    """One worker process per listening socket, kept running until a signal."""

    def __init__(self, config: uvicorn.Config, socks: list[socket.socket]) -> None:
        self.config = config
        self.socks = socks
        self.context = multiprocessing.get_context("spawn")
        self.stop = threading.Event()
        # Set by the signal handler, which must take no lock: a second signal arriving
        # while the first one's handler held the Event's lock (make forwards SIGTERM to
        # its child, which the process group's SIGTERM reached already) deadlocked.
        self.signalled = False

    def _start(self, index: int) -> SpawnProcess:
        process = self.context.Process(
            target=_worker, args=(self.config, self.socks[index]), name=f"collector-{index}"
        )
        process.start()
        log.info("started worker process [%s]", process.pid)
        return process

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; return the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        processes = [self._start(i) for i in range(len(self.socks))]
        status = 0
        while not self.stop.wait(_POLL_S) and not self.signalled:
            for i, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("worker [%s] failed to start; stopping", process.pid)
                    status = STARTUP_FAILURE
                    self.stop.set()
                    break
                log.warning(
                    "worker [%s] exited (%s); starting another", process.pid, process.exitcode
                )
                _forget_live_metrics(process.pid)
                processes[i] = self._start(i)
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for process in processes:
            process.join()
        for sock in self.socks:
            sock.close()
        return status

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signalled = True  # seen within _POLL_S by run's loop


def _forget_live_metrics(pid: int | None) -> None:
    """A dead worker's gauges (its write queue) no longer count; its counters do."""
    if pid is not None and "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
