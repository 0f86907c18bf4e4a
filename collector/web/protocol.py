"""The HTTP protocol the server runs: uvicorn's httptools protocol with the limits it lacks.

uvicorn times out a keep-alive connection between requests, but nothing else: a client
that connects and sends nothing, or sends its headers or its body a byte at a time, holds
a connection (a file descriptor, a slot of the worker) for as long as it likes, and one
address may open as many as the process has descriptors. Here, per connection:

- the request line and headers must arrive within `header_timeout` seconds of the
  connection (or of the previous response) and weigh at most MAX_HEADER_BYTES;
- the body within `body_timeout` seconds of the headers;
- one client address holds at most `max_connections_per_ip` connections in each worker
  process (trusted proxies, which carry many clients, are exempt).

A request that breaks one is answered (408, 431 or 429, in the one error shape) and its
connection closed; the handler, if it was reading the body, sees a disconnect. What the
application does once the request is read is not timed here.

The limits are read from the `COLLECTOR_*` environment once per process: uvicorn builds
the protocol from its import path (`cli._serve`), in every worker process."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import resource
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collector.settings import Settings

MAX_HEADER_BYTES = 64 * 1024  # the request line and every header, as sent
# After a refusal, how long what the client still sends is read and dropped before the
# connection closes: closing with unread input would send a reset, which may destroy the
# answer before the client reads it (a lingering close, as nginx does).
LINGER_S = 1.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Limits:
    def __init__(self, settings: Settings) -> None:
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.per_ip = settings.max_connections_per_ip
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies
        )

    def exempt(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)


def _answer(status: int, reason: str, field: str, message: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps(
        {"success": False, "message": reason, "errors": [{"field": field, "message": message}]}
    )
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n%s\r\n%s" % (status, reason.encode(), len(body), extra, body)
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header and body timeouts, a header size cap and a cap on
    connections per client address (see the module's docstring)."""

    _limits: ClassVar[_Limits | None] = None
    # Open connections by client address, in this process.
    open_by_ip: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedHttpToolsProtocol._limits is None:
            GuardedHttpToolsProtocol._limits = _Limits(Settings.from_env())
        self.limits: _Limits = GuardedHttpToolsProtocol._limits
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0
        self._counted: str | None = None
        self._lingering = False

    # Connections per address -----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ip = self.client[0] if self.client else None
        if ip is not None and not self.limits.exempt(ip):
            count = self.open_by_ip.get(ip, 0)
            if count >= self.limits.per_ip:
                self._refuse(
                    _answer(
                        429,
                        "Too Many Requests",
                        "connections",
                        f"at most {self.limits.per_ip} open connections from one address",
                        b"retry-after: 1\r\n",
                    )
                )
                return
            self.open_by_ip[ip] = count + 1
            self._counted = ip
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            left = self.open_by_ip.get(self._counted, 1) - 1
            if left > 0:
                self.open_by_ip[self._counted] = left
            else:
                self.open_by_ip.pop(self._counted, None)
            self._counted = None
        super().connection_lost(exc)

    # Timeouts and the header cap ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._in_headers:
            # Only the headers count: a client that writes its request at once hands over
            # headers and the start of its body in one read, which may well pass 64 KB.
            end = data.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end + 4
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(
                    _answer(
                        431,
                        "Request Header Fields Too Large",
                        "headers",
                        f"the request line and headers exceed {MAX_HEADER_BYTES // 1024} KB",
                    )
                )
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._start_headers()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(self.limits.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _start_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        self._arm(self.limits.header_timeout, "headers")

    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        if seconds > 0:
            self._deadline = self.loop.call_later(seconds, self._timed_out, part, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self, part: str, seconds: float) -> None:
        self._deadline = None
        answered = self.cycle is not None and self.cycle.response_started
        if (part == "headers" and self._header_bytes == 0) or (part == "body" and answered):
            # Nothing was asked, or it was answered already (a 413 before the whole body
            # came): no answer is owed, the connection just ends.
            self.transport.close()
            return
        self._refuse(
            _answer(408, "Request Timeout", part, f"was not received within {seconds:g} s")
        )

    def _refuse(self, answer: bytes) -> None:
        self._disarm()
        self._in_headers = False
        if self.transport.is_closing() or self._lingering:
            return
        self.transport.write(answer)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._lingering = True
        if self.cycle is not None and not self.cycle.response_complete:
            # The handler reading this body sees a disconnect, and what it answers is
            # dropped: the client has its answer already.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._deadline = self.loop.call_later(LINGER_S, self.transport.close)


def raise_open_file_limit() -> None:
    """Let the process use as many file descriptors as the system allows it (the soft
    limit is often 1,024 while the hard one is far higher): with the caps above, honest
    clients then keep finding a free descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        with contextlib.suppress(ValueError, OSError):  # a limit we may not raise: keep it
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
