"""Three collectors on three hosts of their own sharing one PostgreSQL on a fourth
(network namespaces, tests/netns.py), under load and faults:

(a) one collector killed with SIGKILL: every acknowledged event is stored exactly once,
    and the others answer without a 5xx;
(b) PostgreSQL stopped for 10 s: 503 + Retry-After meanwhile, then each collector
    reconnects by itself, and nothing acknowledged is lost;
(c) one collector's cable to the database pulled, then plugged back: the same;
(d) one message id sent to two collectors at once: stored once, both acknowledged.

Traffic goes only to the test's own addresses (10.231.X.0/24 and X+1). Every host and
link is removed afterwards, failed or not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.dbrows import rows
from tests.load import Load, wait_for
from tests.netns import Network, unavailable
from tests.pgcluster import PostgresCluster, find_bindir
from tests.server import CollectorProcess, create_app, index_all

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(unavailable() is not None, reason=unavailable() or ""),
    pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries"),
]

COLLECTORS = ("c1", "c2", "c3")
PORT = 8000
# How soon a collector gives up on a database it cannot reach over the network (a pulled
# cable sends no reset): libpq's settings in the URL, shortened from the collector's
# defaults (15 s) so that the test takes seconds.
FAST_FAILURE = (
    "connect_timeout=2&keepalives_idle=1&keepalives_interval=1&keepalives_count=2"
    "&tcp_user_timeout=3000"
)


@dataclass
class Hosts:
    net: Network
    pg: PostgresCluster
    db: str  # the URL the collectors use
    collectors: dict[str, CollectorProcess]

    def start(self, name: str) -> CollectorProcess:
        front = self.net.hosts[name]["front"]
        assert front is not None
        proc = CollectorProcess(
            self.db, host=front, port=PORT, prefix=self.net.exec_prefix(name)
        ).start(timeout=90)
        self.collectors[name] = proc
        return proc

    def urls(self, *names: str) -> dict[str, str]:
        return {n: self.collectors[n].url for n in names or COLLECTORS}


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    with Network() as net:
        _, pg_address = net.add_host("pg", 10, front=False)
        for number, name in enumerate(COLLECTORS, start=11):
            net.add_host(name, number)
        cluster = PostgresCluster(
            host=pg_address, netns=net.namespace("pg"), allow=f"{net.back_net}.0/24"
        )
        with cluster:
            db = cluster.create_database("scaleout") + "?" + FAST_FAILURE
            hosts = Hosts(net, cluster, db, {})
            try:
                for name in COLLECTORS:
                    hosts.start(name)
                yield hosts
            finally:
                for proc in hosts.collectors.values():
                    proc.stop()


@pytest.fixture
def running(hosts: Hosts) -> Hosts:
    """Every collector running and the database up, whatever the last test did."""
    if not hosts.pg.running:
        hosts.pg.start()
    for name in COLLECTORS:
        hosts.net.set_link(name, "b", up=True)
        proc = hosts.collectors[name]
        if proc.proc is None or proc.proc.poll() is not None:
            hosts.start(name)
    return hosts


def new_app(hosts: Hosts, name: str) -> tuple[str, str]:
    app = create_app(hosts.db, name, "--rate-limit-app", "0", "--rate-limit-ip", "0")
    return app["app_id"], app["api_key"]


def assert_stored_once(hosts: Hosts, app_id: str, acked: list[str]) -> None:
    index_all(hosts.db)
    stored = [
        r[0] for r in rows(hosts.db, "SELECT message_id FROM events WHERE app_id = ?", (app_id,))
    ]
    assert len(stored) == len(set(stored)), "an event stored twice"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged events lost"


def test_a_collector_killed_under_load(running: Hosts) -> None:
    app_id, key = new_app(running, "kill")
    with Load(running.urls(), key) as load:
        wait_for(
            "every collector to acknowledge",
            lambda: min(len(t.acked) for t in load.targets.values()) >= 100,
        )
        running.collectors["c1"].kill9()
        after = {n: load.acked(n) for n in ("c2", "c3")}
        wait_for(
            "the others to go on",
            lambda: all(load.acked(n) >= after[n] + 300 for n in ("c2", "c3")),
        )
    for name in ("c2", "c3"):
        target = load.targets[name]
        assert set(target.statuses) == {202}, (name, target.statuses)
        assert target.refused == 0, name
    assert not load.bad(), load.bad()[:5]
    assert_stored_once(running, app_id, load.all_acked())


def test_postgresql_stopped_for_ten_seconds_under_load(running: Hosts) -> None:
    app_id, key = new_app(running, "outage")
    with Load(running.urls(), key) as load:
        wait_for(
            "every collector to acknowledge",
            lambda: min(len(t.acked) for t in load.targets.values()) >= 100,
        )
        stopped = time.monotonic()
        running.pg.stop(remove=False, mode="immediate")  # as if the server crashed
        wait_for(
            "503 from every collector",
            lambda: all(t.statuses[503] >= 5 for t in load.targets.values()),
        )
        # The outage lasts 10 s: the scenario's length, not a wait for something.
        load.stop.wait(max(0.0, 10.0 - (time.monotonic() - stopped)))
        during = {n: t.statuses[503] for n, t in load.targets.items()}
        acked = {n: load.acked(n) for n in COLLECTORS}
        running.pg.start()
        wait_for(
            "every collector to reconnect by itself",
            lambda: all(load.acked(n) >= acked[n] + 200 for n in COLLECTORS),
        )
    assert all(n >= 5 for n in during.values()), during
    assert not load.bad(), load.bad()[:5]
    assert_stored_once(running, app_id, load.all_acked())


def test_a_collectors_link_to_the_database_cut_and_restored(running: Hosts) -> None:
    app_id, key = new_app(running, "cable")
    with Load(running.urls(), key) as load:
        wait_for(
            "every collector to acknowledge",
            lambda: min(len(t.acked) for t in load.targets.values()) >= 100,
        )
        running.net.set_link("c1", "b", up=False)
        wait_for("503 from the cut-off collector", lambda: load.targets["c1"].statuses[503] >= 5)
        others = {n: load.acked(n) for n in ("c2", "c3")}
        wait_for(
            "the others to go on meanwhile",
            lambda: all(load.acked(n) >= others[n] + 200 for n in ("c2", "c3")),
        )
        acked = load.acked("c1")
        running.net.set_link("c1", "b", up=True)
        wait_for(
            "the cut-off collector to reconnect by itself", lambda: load.acked("c1") >= acked + 200
        )
    for name in ("c2", "c3"):
        assert set(load.targets[name].statuses) == {202}, (name, load.targets[name].statuses)
    assert not load.bad(), load.bad()[:5]
    assert_stored_once(running, app_id, load.all_acked())


def test_one_message_id_sent_to_two_collectors_at_once(running: Hosts) -> None:
    app_id, key = new_app(running, "twice")
    urls = running.urls("c2", "c3")
    answers: list[tuple[str, int, dict]] = []
    lock = threading.Lock()

    def send(url: str, message_id: str, barrier: threading.Barrier) -> None:
        body = {"event": "paid", "user": "u", "message_id": message_id}
        with httpx.Client(base_url=url, timeout=30) as client:
            barrier.wait()
            r = client.post("/v1/event", json=body, headers={"Authorization": f"Bearer {key}"})
        with lock:
            answers.append((message_id, r.status_code, r.json()))

    message_ids = [f"twice-{i}" for i in range(30)]
    for message_id in message_ids:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=send, args=(url, message_id, barrier)) for url in urls.values()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(answers) == 2 * len(message_ids)
    assert all(status == 202 and body["success"] for _, status, body in answers), answers[:4]
    for message_id in message_ids:
        pair = [body for mid, _, body in answers if mid == message_id]
        # One of the two stored it; the other was told it is stored already.
        assert sorted(bool(b.get("duplicate")) for b in pair) == [False, True], pair
    index_all(running.db)
    stored = rows(
        running.db,
        "SELECT message_id, count(*) FROM events WHERE app_id = ? GROUP BY message_id",
        (app_id,),
    )
    assert sorted(stored) == sorted((m, 1) for m in message_ids)
