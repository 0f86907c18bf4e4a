from __future__ import annotations

import dataclasses

import pytest
import user_agents

from collector.ingest import useragent
from collector.ingest.useragent import ParsedUA, parse_user_agent, to_user_agent

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
# No "Mobile" token: that is how Android tablets tell themselves apart.
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

SAMPLES = (
    CHROME_WINDOWS,
    FIREFOX_LINUX,
    SAFARI_MAC,
    IPHONE_SAFARI,
    IPAD_SAFARI,
    ANDROID_PHONE,
    ANDROID_TABLET,
    GOOGLEBOT,
    "curl/8.4.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Opera/9.80 (J2ME/MIDP; Opera Mini/4.2.14912/870; U; id) Presto/2.4.15",
)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        pytest.param(
            CHROME_WINDOWS,
            ParsedUA("Chrome", "120.0.6099", "Windows", "10", "desktop", False),
            id="chrome-windows",
        ),
        pytest.param(
            FIREFOX_LINUX,
            ParsedUA("Firefox", "121.0", "Linux", None, "desktop", False),
            id="firefox-linux",
        ),
        pytest.param(
            SAFARI_MAC,
            ParsedUA("Safari", "17.1", "Mac OS X", "10.15.7", "desktop", False, "Mac"),
            id="safari-mac",
        ),
        pytest.param(
            IPHONE_SAFARI,
            ParsedUA("Mobile Safari", "17.1", "iOS", "17.1", "mobile", False, "iPhone"),
            id="iphone-safari",
        ),
        pytest.param(
            IPAD_SAFARI,
            ParsedUA("Mobile Safari", "16.6", "iOS", "16.6", "tablet", False, "iPad"),
            id="ipad",
        ),
        pytest.param(
            ANDROID_PHONE,
            ParsedUA("Chrome Mobile", "120.0.6099", "Android", "14", "mobile", False, "Pixel 8"),
            id="android-phone",
        ),
        pytest.param(
            ANDROID_TABLET,
            ParsedUA("Chrome", "120.0.0", "Android", "13", "tablet", False, "SM-X700"),
            id="android-tablet",
        ),
        pytest.param(
            GOOGLEBOT,
            ParsedUA("Googlebot", "2.1", None, None, "bot", True, "Spider"),
            id="googlebot",
        ),
        pytest.param(
            "curl/8.4.0",
            ParsedUA("curl", "8.4.0", None, None, "other", False),
            id="curl-not-a-bot-to-user-agents",
        ),
    ],
)
def test_parse_named_cases(ua: str, expected: ParsedUA) -> None:
    assert parse_user_agent(ua) == expected


@pytest.mark.parametrize("ua", [None, "", "   ", "\t\n"])
def test_missing_user_agent_gives_empty_fields(ua: str | None) -> None:
    parsed = parse_user_agent(ua)
    assert parsed == ParsedUA(None, None, None, None, "other", False)


def test_repeated_string_comes_from_the_cache() -> None:
    useragent.cache_clear()
    first = parse_user_agent(CHROME_WINDOWS)
    before = useragent.cache_info()
    second = parse_user_agent(CHROME_WINDOWS)
    after = useragent.cache_info()
    assert second is first
    assert after.hits == before.hits + 1
    assert after.misses == before.misses
    assert after.maxsize == useragent.CACHE_SIZE


def test_surrounding_whitespace_shares_the_cache_entry() -> None:
    assert parse_user_agent(f"  {IPHONE_SAFARI} ") is parse_user_agent(IPHONE_SAFARI)


def test_cache_is_bounded() -> None:
    useragent.cache_clear()
    for i in range(useragent.CACHE_SIZE + 10):
        parse_user_agent(f"probe/{i}")
    assert useragent.cache_info().currsize == useragent.CACHE_SIZE


def test_parsed_ua_is_immutable() -> None:
    parsed = parse_user_agent(CHROME_WINDOWS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.browser = "Other"  # type: ignore[misc]


@pytest.mark.parametrize("ua", SAMPLES)
def test_fast_path_matches_user_agents_legacy_parse(ua: str) -> None:
    # The point of to_user_agent is the same answers as user_agents.parse, sooner.
    fast, legacy = to_user_agent(ua), user_agents.parse(ua)
    assert (fast.browser, fast.os, fast.device) == (legacy.browser, legacy.os, legacy.device)
    for prop in ("is_mobile", "is_tablet", "is_pc", "is_bot", "is_touch_capable"):
        assert getattr(fast, prop) == getattr(legacy, prop), prop
