"""Who is speaking: a server with an API key, or a browser on an allowed origin."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def key_from_authorization(header: str | None) -> str | None:
    """The API key from `Bearer KEY`, `Token KEY` or HTTP Basic with the key as user name."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme in {"bearer", "token"}:
        # Userpilot's header is `Token KEY`; some clients send `Token token=KEY`.
        if value.startswith("token="):
            value = value[len("token=") :].strip('"')
        return value or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        return user or password or None
    return None


@dataclass(frozen=True, slots=True)
class OriginPattern:
    scheme: str
    host: str  # lower-case; leading "*." for a wildcard
    port: int

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        """`https://example.com`, `https://*.example.com`, `http://localhost:3000`."""
        parts = urlsplit(text.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an origin: {text!r} (e.g. https://example.com)")
        if parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise ValueError(f"an origin has no path: {text!r}")
        # urlsplit lower-cases hostname; "*." survives it.
        netloc_host = parts.netloc.rsplit("@", 1)[-1]
        wildcard = netloc_host.startswith("*.")
        host = parts.hostname
        if wildcard and not host.startswith("*."):
            host = "*." + host
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError(f"bad port in origin: {text!r}") from None
        return cls(parts.scheme, host, port)

    def matches(self, origin: OriginPattern) -> bool:
        if origin.scheme != self.scheme or origin.port != self.port:
            return False
        if self.host.startswith("*."):
            # A wildcard covers subdomains at any depth, not the apex itself.
            return origin.host.endswith(self.host[1:])
        return origin.host == self.host


# An origin is a scheme, a host name (at most 253 characters) and a port: anything longer
# is refused before it reaches a cache.
MAX_ORIGIN = 300


def request_origin(origin: str | None, referer: str | None) -> OriginPattern | None:
    """The caller's origin from `Origin`, else from `Referer`; None if neither parses.

    A request that carries an Origin is judged by it alone: `Origin: null` (a sandboxed
    frame, a file: page, a redirect across origins) or one that does not parse is refused,
    never rescued by a Referer, which the same page could have chosen."""
    if origin:
        if origin == "null" or len(origin) > MAX_ORIGIN:
            return None
        return _caller_origin(origin)
    if not referer:
        return None
    part = _origin_part(referer)
    if len(part) > MAX_ORIGIN:
        return None
    return _caller_origin(part)


def _origin_part(url: str) -> str:
    # A Referer carries a path and query that vary per page; cache on its origin only.
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def canonical_origin(origin: OriginPattern) -> str:
    """`scheme://host[:port]`, lower-case, the default port left out: how browsers
    serialise an origin, and so what `Access-Control-Allow-Origin` must say."""
    port = "" if origin.port == _DEFAULT_PORTS[origin.scheme] else f":{origin.port}"
    return f"{origin.scheme}://{origin.host}{port}"


# A host name's letters, digits, dots and dashes (or an IPv6 literal): an Origin with
# anything else, a path or credentials is not one a browser sends.
_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")


@lru_cache(maxsize=4096)
def _caller_origin(text: str) -> OriginPattern | None:
    parts = urlsplit(text)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    if _HOST.fullmatch(parts.hostname) is None:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return OriginPattern(parts.scheme, parts.hostname, port)


@lru_cache(maxsize=4096)
def _allowed_pattern(text: str) -> OriginPattern | None:
    try:
        return OriginPattern.parse(text)
    except ValueError:
        return None


def origin_allowed(allowed: Iterable[str], caller: OriginPattern) -> bool:
    for text in allowed:
        pattern = _allowed_pattern(text)
        if pattern is not None and pattern.matches(caller):
            return True
    return False


def normalise_origin(text: str) -> str:
    """Validate an allowed origin and return it in canonical form (raises ValueError)."""
    return canonical_origin(OriginPattern.parse(text))
