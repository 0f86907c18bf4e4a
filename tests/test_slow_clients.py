"""Slow and greedy clients against a real server process (collector/web/protocol.py):
connections that send nothing, or their headers or body too slowly, are answered 408 and
closed; one address holds a bounded number of connections; oversized headers are a 431;
and through all of it another client is served."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server import ROOT, CollectorProcess, create_app

pytestmark = pytest.mark.slow

ATTACKER = "127.0.0.2"  # the whole of 127/8 is loopback: a second client address
PER_IP = 40
SLOW = 300  # connections the attacker opens


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorProcess, dict]]:
    db = str(Path(tmp_path_factory.mktemp("slow")) / "t.db")
    app = create_app(db, "slow", "--rate-limit-app", "0", "--rate-limit-ip", "0")
    extra = ("--header-timeout", "2", "--body-timeout", "2")
    extra += ("--max-connections-per-ip", str(PER_IP))
    with CollectorProcess(db, extra=extra) as server:
        yield server, app


def connect(server: CollectorProcess, source: str = ATTACKER) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), source_address=(source, 0))
    sock.settimeout(30)  # a failure bound: the server is expected to answer far sooner
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def status_and_field(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)["errors"][0]["field"]


def legitimate_event(server: CollectorProcess, app: dict) -> None:
    r = httpx.post(
        server.url + "/v1/event",
        json={"event": "still_served", "user": "u"},
        headers={"Authorization": f"Bearer {app['api_key']}"},
        timeout=30,
    )
    assert r.status_code == 202, r.text


def test_slow_headers_are_timed_out_and_one_address_is_capped(
    served: tuple[CollectorProcess, dict],
) -> None:
    """Today 3,000 connections sending headers slowly were held for 60 s, and 1,100 idle
    ones made every legitimate request fail."""
    server, app = served
    socks = [connect(server) for _ in range(SLOW)]
    try:
        for i, sock in enumerate(socks):
            # Half say nothing at all, half start a request and stall in its headers.
            if i % 2:
                sock.sendall(b"POST /v1/event HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        legitimate_event(server, app)  # served while the attacker holds its connections
        answers = [answer(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    refused = [status_and_field(a) for a in answers if a.startswith(b"HTTP/1.1 429")]
    assert len(refused) == SLOW - PER_IP
    assert set(refused) == {(429, "connections")}
    held = [a for a in answers if not a.startswith(b"HTTP/1.1 429")]
    assert len(held) == PER_IP
    # Those that started a request are told why; those that said nothing are just closed.
    assert {status_and_field(a) for a in held if a} == {(408, "headers")}
    assert b"" in held
    # Every slot is free again: the attacker's address may connect and be served.
    r = httpx.get(server.url + "/healthz", timeout=30)
    assert r.status_code == 200
    legitimate_event(server, app)


def test_a_slow_body_is_timed_out(served: tuple[CollectorProcess, dict]) -> None:
    server, app = served
    sock = connect(server)
    try:
        sock.sendall(
            b"POST /v1/event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + app["api_key"].encode() + b"\r\n"
            b'Content-Length: 100\r\n\r\n{"event": '
        )
        assert status_and_field(answer(sock)) == (408, "body")
    finally:
        sock.close()
    legitimate_event(server, app)


def test_oversized_headers_are_refused(served: tuple[CollectorProcess, dict]) -> None:
    server, app = served
    sock = connect(server)
    try:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        try:
            for _ in range(200):  # 200 KB of headers, a KB at a time
                sock.sendall(b"X-Pad: " + b"a" * 1024 + b"\r\n" if head == b"" else head)
                head = b""
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        assert status_and_field(answer(sock)) == (431, "headers")
    finally:
        sock.close()
    legitimate_event(server, app)


def test_a_big_body_sent_with_its_headers_in_one_write_is_no_header_overflow(
    served: tuple[CollectorProcess, dict],
) -> None:
    """The header cap counts the request line and headers, not the body that arrives in
    the same read: a 1,000-event batch (~75 KB) sent at once on a new connection was
    answered 431, found by a test that sends such batches (tests/test_server.py)."""
    server, app = served
    pad = {"note": "x" * 100}
    events = [
        {"event": "big_write", "user": "u", "message_id": f"m{i:04d}", "properties": pad}
        for i in range(1_000)
    ]
    body = orjson.dumps({"events": events})
    assert len(body) > 2 * 64 * 1024
    request = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n"
        + f"Authorization: Bearer {app['api_key']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    sock = connect(server, "127.0.0.1")
    try:
        sock.sendall(request)
        raw = answer(sock)
    finally:
        sock.close()
    assert int(raw.split(b" ", 2)[1]) == 202, raw[:300]


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    """1,100 idle connections used up a soft limit of 1,024 descriptors; `serve` raises
    the soft limit to the hard one first (inherited by its workers)."""
    code = (
        "import resource\n"
        "from collector.web.protocol import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "raise_open_file_limit()\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    soft, hard = (int(v) for v in out.split())
    if hard == resource.RLIM_INFINITY:
        assert soft >= 65_536
    else:
        assert soft == hard > 64
