"""User-Agent parsing: browser, OS and device type through the `user-agents` library.

`user-agents` 2.2 parses with ua-parser's legacy pure-Python API, about 0.7 ms for a string
it has not seen. Its device-type rules (`is_mobile`, `is_tablet`, `is_pc`, `is_bot`) are
what we want, so we keep its `UserAgent` class and feed it from ua-parser 1.x's resolver,
which runs the same uap-core regexes in Rust (`ua-parser-rs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import _CacheInfo, lru_cache
from typing import Any

import ua_parser
from ua_parser import Domain
from user_agents.parsers import (
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

__all__ = [
    "MAX_USER_AGENT",
    "ParsedUA",
    "cache_clear",
    "cache_info",
    "parse_user_agent",
    "to_user_agent",
]

CACHE_SIZE = 8192
# Real browsers send a few hundred characters (at most 392 in data/ua/). Parsing costs
# time in proportion to the length, and the caches keep the strings: past this, only the
# first MAX_USER_AGENT characters are parsed, cached and stored (bots.detect_bot flags the
# rest as "oversized_user_agent"). Bounds each cache to CACHE_SIZE x this many characters.
MAX_USER_AGENT = 1024


@dataclass(frozen=True, slots=True)
class ParsedUA:
    """What an event stores about its User-Agent."""

    browser: str | None
    browser_version: str | None
    os: str | None
    os_version: str | None
    device_type: str  # "desktop", "mobile", "tablet", "bot" or "other"
    is_bot: bool  # user-agents' own verdict (device family "Spider")
    # uap-core's device family ("iPhone", "Samsung SM-G991B", "Generic Feature Phone"),
    # None when it recognises none; bot detection reads it, events do not store it.
    device: str | None = None


_EMPTY = ParsedUA(
    browser=None,
    browser_version=None,
    os=None,
    os_version=None,
    device_type="other",
    is_bot=False,
)


def _build_resolver() -> Any:
    # No ua-parser cache here: parse_user_agent's lru_cache sits in front of it, and a
    # second cache would only duplicate the memory.
    if ua_parser.RegexResolver is not None:
        return ua_parser.RegexResolver(ua_parser.load_lazy_builtins())
    # ua-parser-rs is a declared dependency; the pure-Python fallback is correct, only slow.
    return ua_parser.BasicResolver(ua_parser.load_builtins())


_resolver = _build_resolver()


def to_user_agent(ua: str) -> UserAgent:
    """Build a `user_agents.UserAgent` for `ua` through the fast resolver (not cached).

    Same fields as `user_agents.parse(ua)`: family "Other" and empty versions where a
    domain did not match, as the legacy parser reports them.
    """
    result = _resolver(ua, Domain.ALL).complete().with_defaults()
    b, o, d = result.user_agent, result.os, result.device
    # UserAgent.__init__ would run the slow legacy parse; the instance only needs these four
    # attributes for every property we read.
    agent: UserAgent = UserAgent.__new__(UserAgent)
    agent.ua_string = ua
    agent.browser = parse_browser(b.family, b.major, b.minor, b.patch, b.patch_minor)
    agent.os = parse_operating_system(o.family, o.major, o.minor, o.patch, o.patch_minor)
    agent.device = parse_device(d.family, d.brand, d.model)
    return agent


def _device_type(agent: UserAgent) -> str:
    # Bots first: Googlebot-Mobile also says is_mobile.
    if agent.is_bot:
        return "bot"
    if agent.is_tablet:
        return "tablet"
    if agent.is_mobile:
        return "mobile"
    if agent.is_pc:
        return "desktop"
    return "other"


def _known(value: str) -> str | None:
    return None if not value or value == "Other" else value


@lru_cache(maxsize=CACHE_SIZE)
def _parse_cached(ua: str) -> ParsedUA:
    agent = to_user_agent(ua)
    return ParsedUA(
        browser=_known(agent.browser.family),
        browser_version=agent.browser.version_string or None,
        os=_known(agent.os.family),
        os_version=agent.os.version_string or None,
        device_type=_device_type(agent),
        is_bot=bool(agent.is_bot),
        device=_known(agent.device.family),
    )


def parse_user_agent(ua: str | None) -> ParsedUA:
    """Parse a User-Agent header into browser, OS and device type.

    Only the first MAX_USER_AGENT characters are read. Results are kept in a bounded LRU
    cache (`CACHE_SIZE` strings), so a repeated string
    returns the same `ParsedUA` object. `None` or a blank string gives all-None fields and
    device type "other".
    """
    if ua is None:
        return _EMPTY
    ua = ua[:MAX_USER_AGENT].strip()
    if not ua:
        return _EMPTY
    return _parse_cached(ua)


def cache_info() -> _CacheInfo:
    """Hits, misses and size of parse_user_agent's cache."""
    return _parse_cached.cache_info()


def cache_clear() -> None:
    """Empty parse_user_agent's cache (benchmarks and tests)."""
    _parse_cached.cache_clear()
