"""A throwaway PostgreSQL cluster for tests and benchmarks.

`PostgresCluster` runs `initdb` into a temporary folder and starts a server on a free
port of 127.0.0.1; leaving the `with` block stops it and deletes the folder. It uses the
server binaries of Debian's `postgresql` package (`make apt` installs them), which live
off PATH in /usr/lib/postgresql/<version>/bin; `PG_BINDIR` points it elsewhere.

    python -m tests.pgcluster    # start one, print its URL, wait for Ctrl-C
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Literal

import psycopg
from psycopg import sql


class PostgresClusterError(RuntimeError):
    """initdb, pg_ctl or the server failed; the message carries their output or log."""


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binary folder (`PG_BINDIR`, else Debian's), or None."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]

    # Numeric, not textual, order: "9.6" < "15".
    def version(bindir: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name))

    return max(found, key=version, default=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """A private PostgreSQL server, as a context manager (start on enter, remove on exit).

    fsync stays on, as in production: the collector promises that what it acknowledged
    survives a crash, and tests that stop the server mid-load should see real durability.
    """

    def __init__(
        self,
        bindir: Path | None = None,
        *,
        max_connections: int = 200,
        host: str = "127.0.0.1",
        netns: str | None = None,
        allow: str | None = None,
    ) -> None:
        """host: the address it listens on; netns: the network namespace it runs in
        (`ip netns exec`; tests/netns.py), where it takes port 5432; allow: a CIDR whose
        clients may connect too (trust, as 127.0.0.1)."""
        found = bindir or find_bindir()
        if found is None:
            raise PostgresClusterError("no PostgreSQL server binaries (apt-get install postgresql)")
        self.bindir = found
        self.max_connections = max_connections
        self.host = host
        self.netns = netns
        self.allow = allow
        self.root: Path | None = None  # the temporary folder: data/, sock/, postgres.log
        self.port = 0
        self.running = False

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "the cluster was never started"
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "the cluster was never started"
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        """The URL of the `postgres` database (for administration)."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        """The URL of database `dbname` on this server (which need not exist yet)."""
        return f"postgresql://postgres@{self.host}:{self.port}/{dbname}"

    def start(self) -> None:
        """Create the cluster on first use, then start the server and wait until it accepts
        connections. After `stop(remove=False)` it starts on the same data and port, so
        URLs handed out earlier still work."""
        if self.running:
            return
        if self.root is None:
            self.root = self._initdb()
            # A namespace of its own has every port free.
            self.port = 5432 if self.netns else _free_port()
            # Stop the server even if the process exits without leaving the `with` block.
            atexit.register(self.stop)
        options = (
            f"-p {self.port} -k {shlex.quote(str(self.root / 'sock'))} "
            f"-c listen_addresses={self.host} -c max_connections={self.max_connections}"
        )
        proc = self._run(
            "pg_ctl", "start", "-w", "-D", self.data_dir, "-l", self.log_path, "-o", options
        )
        if proc.returncode != 0:
            raise PostgresClusterError(
                f"pg_ctl start failed on port {self.port}:\n{proc.stdout}\n"
                f"--- {self.log_path} ---\n{self.log_tail()}"
            )
        self.running = True

    def stop(self, remove: bool = True, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stop the server; with remove=False keep its data for `start()`.

        mode="immediate" kills it without a checkpoint, as a crash would; the next start
        then runs crash recovery from the WAL."""
        if self.running:
            proc = self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", self.data_dir)
            # pg_ctl removes postmaster.pid once the server has gone; if it is still
            # there, the server may still be running and deleting its folder would hide it.
            if (self.data_dir / "postmaster.pid").exists():
                raise PostgresClusterError(f"pg_ctl stop failed:\n{proc.stdout}")
            self.running = False
        if remove and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            atexit.unregister(self.stop)

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a unique random name when None) and return its URL."""
        name = name or f"test_{secrets.token_hex(6)}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, given its name or its URL; does nothing if it does not exist.

        FORCE ends its remaining sessions, so a test that left a pool open cannot make
        the drop fail."""
        name = name.rsplit("/", 1)[-1] if "://" in name else name
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, for error messages."""
        if self.root is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _initdb(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="telltale-pg-"))
        (root / "sock").mkdir()
        if os.geteuid() == 0:
            # initdb refuses to run as root, so the server runs as Debian's postgres user,
            # which must own the folder (mkdtemp makes it 0700). TMPDIR must be a folder
            # that user can reach (the default /tmp is).
            for path in (root, root / "sock"):
                shutil.chown(path, "postgres", "postgres")
        # trust (no passwords): a throwaway server on 127.0.0.1 and a private socket.
        # --no-locale: sorting and case rules that do not depend on the host's locales.
        # --no-sync skips only initdb's final flush of the files it made (~0.35 s here): a
        # throwaway folder need not survive the host crashing while it is being made. The
        # server itself runs with fsync on.
        args = ["-A", "trust", "-U", "postgres", "--no-locale", "-E", "UTF8", "--no-sync"]
        proc = self._run("initdb", "-D", root / "data", *args, cwd=root)
        if proc.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresClusterError(f"initdb failed:\n{proc.stdout}")
        if self.allow:
            with (root / "data" / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.allow} trust\n")
        return root

    def _run(
        self, program: str, *args: str | Path, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / program), *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        # cwd: the postgres user may not be allowed into the caller's working folder.
        return subprocess.run(
            command,
            cwd=cwd or self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )

    def _admin(self, statement: sql.Composed) -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction, hence autocommit.
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement)


def main() -> None:
    """Start a cluster, print its URL on stdout, and keep it until Ctrl-C or SIGTERM."""
    # SIGTERM (from a benchmark that started us) cleans up the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with PostgresCluster() as cluster:
        print(cluster.url, flush=True)
        print(f"data in {cluster.root}; Ctrl-C stops and removes it", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
