"""Connections to PostgreSQL: two pools, what this process believes about the server
being reachable, and the errors callers get when it is not.

- The `main` pool serves reads, indexing and administration, from any thread.
- The `ingest` pool holds a connection for each of the group-commit writer's threads
  (`PostgresStore.commit_threads`): a commit never queues behind queries for a
  connection, so a burst of slow reads cannot stall ingestion.

When a connection breaks or cannot be had, the server is taken to be down: both pools
are closed and every call fails at once with `Unavailable` (a 503 with Retry-After)
instead of waiting on the loop for a connect timeout. A thread then tries to connect
every `PROBE_S`; once it can, fresh pools are made on the next call. Fresh pools rather
than the old ones' own reconnection: theirs backs off exponentially (1, 2, 4… s), so a
server back after a minute would wait up to another half minute to be used again.

A connection that sat unused for `STALE_S` is checked (one empty round trip) when it is
taken from its pool: after the server restarted while this process was idle, every
pooled connection is dead, and the first request to use one would otherwise take the
server for down and answer 503, it and every request until the probe's next try. Busy
connections are not checked: a restart under load is the outage above.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import IsolationLevel
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from collector.errors import StorageFailed, StoreUnavailable, Unavailable

log = logging.getLogger("collector.store.postgres")

Role = Literal["main", "ingest"]

MAIN_POOL_SIZE = 8
PROBE_S = 0.1  # while the server is down, how often to try it again
STALE_S = 2.0  # a pooled connection unused this long is checked before it is used
_GETCONN_TIMEOUT_S = {"main": 30.0, "ingest": 5.0}
_RETRY_AFTER_S = 1

# Unless the URL says otherwise. Keepalives and tcp_user_timeout turn a server that
# vanished from the network (no reset ever arrives) into an error within ~15 s, rather
# than a commit that hangs on the event loop for the kernel's default of many minutes.
_CONNECT_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}


def safe_url(url: str) -> str:
    """The URL without its password (in the user part or as a `password` parameter)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparseable (a broken IPv6 address): drop any "user:password@"
        return re.sub(r"^([^:/]+://)[^@/]*@", r"\1", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}@{hosts}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _reason(exc: BaseException, url: str) -> str:
    """The first line of a driver error, without the URL's password should it appear
    (libpq quotes a URL it cannot parse whole)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.removeprefix("connection failed: ").replace(url, safe_url(url))
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Explicit, whatever the server's default: a commit returns (and the request that
    # waits on it is answered) only once it is durable.
    conn.execute("SET synchronous_commit = on")
    # A funnel sorts the events of its steps by person (~10 MB for 300,000 of them):
    # with the default 4 MB the sort spills to disk. JIT compiling takes longer than
    # the collector's queries gain from it (they run for well under a second).
    conn.execute("SET work_mem = '32MB'")
    conn.execute("SET jit = off")
    set_json_loads(orjson.loads, conn)


def _reset(conn: psycopg.Connection[Any]) -> None:
    # Read transactions set these; the next user of the connection starts clean.
    conn.isolation_level = None
    conn.read_only = None


class Database:
    """One PostgreSQL database as this process reaches it."""

    def __init__(
        self, url: str, *, main_pool_size: int = MAIN_POOL_SIZE, ingest_pool_size: int = 1
    ) -> None:
        self.url = url
        self.safe_url = safe_url(url)
        self.main_pool_size = main_pool_size
        self.ingest_pool_size = ingest_pool_size
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"invalid PostgreSQL URL {self.safe_url}: {_reason(exc, url)}"
            ) from None
        self.kwargs: dict[str, Any] = {k: v for k, v in _CONNECT_DEFAULTS.items() if k not in given}
        self._lock = threading.Lock()
        self._pools: dict[Role, ConnectionPool[psycopg.Connection[Any]]] = {}
        self._down = False
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        # When each pooled connection was last given back (see _check).
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    # Direct connections (migrations, LISTEN) --------------------------------------------

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pools (psycopg's errors as they are)."""
        conn: psycopg.Connection[Any] = psycopg.connect(self.url, **{**self.kwargs, **kwargs})
        return conn

    def unreachable(self, exc: BaseException) -> StoreUnavailable:
        """The one-line error of a server that cannot be reached (no password in it)."""
        return StoreUnavailable(
            f"cannot connect to PostgreSQL at {self.safe_url}: {_reason(exc, self.url)}"
        )

    # Pooled connections ------------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self, role: Role = "main") -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit: open transactions explicitly). A server that
        cannot be reached, or a connection that breaks, raises `Unavailable`."""
        pool = self._pool(role)
        try:
            conn = pool.getconn(_GETCONN_TIMEOUT_S[role])
        except PoolTimeout as exc:
            self._lost(exc)
            raise self._unavailable() from exc
        except PoolClosed as exc:  # another thread found the server gone meanwhile
            raise self._unavailable() from exc
        try:
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # OperationalError also covers deadlocks and serialization failures: the
            # connection is fine then, and the caller may simply try again.
            if conn.broken or conn.closed:
                self._lost(exc)
            raise self._unavailable() from exc
        finally:
            self._returned[conn] = time.monotonic()
            pool.putconn(conn)

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's check on checkout: a connection idle for STALE_S (or never used)
        makes a round trip first; a dead one raises, and the pool replaces it."""
        returned = self._returned.get(conn)
        if returned is None or time.monotonic() - returned > STALE_S:
            ConnectionPool.check_connection(conn)

    @contextlib.contextmanager
    def transaction(
        self, role: Role = "main", *, snapshot: bool = False
    ) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside a transaction, committed when the block ends (rolled back
        on error). snapshot=True: a read-only transaction that sees one snapshot
        throughout (REPEATABLE READ), for reads made of several statements."""
        with self.connection(role) as conn:
            if snapshot:
                conn.isolation_level = IsolationLevel.REPEATABLE_READ
                conn.read_only = True
            with conn.transaction():
                yield conn

    def _pool(self, role: Role) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._lock:
            if self._down:
                raise self._unavailable()
            pool = self._pools.get(role)
            if pool is None:
                pool = ConnectionPool(
                    self.url,
                    kwargs={**self.kwargs, "autocommit": True},
                    min_size=1,
                    max_size=self.main_pool_size if role == "main" else self.ingest_pool_size,
                    open=False,
                    configure=_configure,
                    check=self._check,
                    # Only reads change what _reset undoes. With a reset, the pool hands
                    # every returned connection to a worker thread, and the next commit
                    # waits for that thread to give it back.
                    reset=_reset if role == "main" else None,
                    name=f"telltale-{role}",
                    # Its few connections need one thread to replace them, not three.
                    num_workers=3 if role == "main" else 1,
                )
                pool.open(wait=False)
                self._pools[role] = pool
            return pool

    def _unavailable(self) -> Unavailable:
        # The storage's 503 (field "storage"), for reads as for group commits.
        return StorageFailed(_RETRY_AFTER_S, "Database unavailable, retry later")

    def _lost(self, exc: BaseException) -> None:
        """The server is down (or this host cannot reach it): stop using the pools."""
        with self._lock:
            if self._down or self._stop.is_set():
                return
            self._down = True
            pools = list(self._pools.values())
            self._pools.clear()
            self._prober = threading.Thread(
                target=self._probe, args=(pools,), name="telltale-pg-probe", daemon=True
            )
            self._prober.start()
        log.warning("PostgreSQL at %s unreachable: %s", self.safe_url, _reason(exc, self.url))

    def _probe(self, pools: list[ConnectionPool[psycopg.Connection[Any]]]) -> None:
        # Closed here, off the caller's thread (the event loop): closing waits for the
        # pools' workers. Connections still in use are closed when they are returned.
        for pool in pools:
            pool.close(timeout=5.0)
        # At once first: a connection that broke may be the only thing gone (a server
        # restarted between two uses).
        while not self._stop.is_set():
            try:
                self.connect(connect_timeout=2).close()
            except psycopg.Error:
                self._stop.wait(PROBE_S)
                continue
            with self._lock:
                self._down = False
                self._prober = None
            log.warning("PostgreSQL at %s reachable again", self.safe_url)
            return

    @property
    def down(self) -> bool:
        with self._lock:
            return self._down

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
            prober = self._prober
        for pool in pools:
            pool.close(timeout=5.0)
        if prober is not None:
            prober.join(timeout=5.0)
