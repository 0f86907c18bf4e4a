"""Sources: where a page view came from, decided once at ingestion.

From an event's `context.url` (the page) and `context.referrer` this fills:

- ``referrer_host``: the referrer's host, lower-case, without ``www.``, when it is another
  site's. A referrer on the page's own host or on one of the app's allowed origins is a
  self-referral and is no source; so is every single-page-app navigation, whose referrer
  the SDK sets to the previous URL of the same page.
- ``referrer_name``: the search engine, social network or AI assistant it is, when the
  list knows it ("Google", "Facebook", "ChatGPT").
- ``utm_source``, ``utm_medium``, ``utm_campaign``, ``utm_term``, ``utm_content`` and
  ``ref``: read from the page URL's query, each only when present.
- ``channel``: Direct, Organic Search, Social, Email, Paid or Referral. UTM first, then
  the referrer, else Direct (the order GA4 and Plausible use); see `channel_for`.

The search engines, social networks and AI assistants are Matomo's community list
(`data/referrers.json`, CC0; its source is noted in the file). Nothing here rejects an
event: a referrer or URL that does not parse is no source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "CHANNELS",
    "SOURCE_KEYS",
    "UTM_KEYS",
    "ReferrerInfo",
    "cache_clear",
    "channel_for",
    "classify_host",
    "own_hosts",
    "source_fields",
]

CHANNELS: tuple[str, ...] = ("Direct", "Organic Search", "Social", "Email", "Paid", "Referral")
UTM_KEYS: tuple[str, ...] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "ref",
)
# Every context key this module may set: only enrichment sets them.
SOURCE_KEYS: tuple[str, ...] = ("referrer_host", "referrer_name", "channel", *UTM_KEYS)

_MAX_LABELS = 6
MAX_VALUE = 255  # a UTM value longer than this is cut: it is a label, not a payload
CACHE_SIZE = 8192

# Through the package, not __file__: a module compiled by mypyc has no __file__ of its own.
_DATA = Path(str(files("collector.ingest") / "data" / "referrers.json"))

# Webmail read in a browser: a link clicked there is an email's. Matomo's lists have no
# such category (Gmail's host would otherwise count as Google, a search engine).
_WEBMAIL: dict[str, str] = {
    "mail.google.com": "Gmail",
    "com.google.android.gm": "Gmail",
    "outlook.live.com": "Outlook.com",
    "outlook.office.com": "Outlook",
    "outlook.office365.com": "Outlook",
    "mail.yahoo.com": "Yahoo Mail",
    "mail.yandex.ru": "Yandex Mail",
    "mail.proton.me": "Proton Mail",
    "mail.zoho.com": "Zoho Mail",
    "mail.aol.com": "AOL Mail",
}

# utm_medium values, lower-cased (GA4's default channel rules, Plausible's too).
_EMAIL_MEDIUMS = frozenset({"email", "e-mail", "e_mail", "e mail", "mail", "newsletter"})
_PAID_MEDIUMS = frozenset(
    {"cpc", "ppc", "cpm", "cpv", "cpa", "cpp", "paid", "retargeting", "display", "banner", "ads"}
)
_SOCIAL_MEDIUMS = frozenset(
    {
        "social",
        "sm",
        "social-network",
        "social_network",
        "social network",
        "social-media",
        "social_media",
        "social media",
        "organic_social",
        "organic-social",
    }
)
# Ad platforms' auto-tagging: a click id in the URL is a paid click even without UTM.
_CLICK_IDS: tuple[str, ...] = ("gclid", "gbraid", "wbraid", "dclid", "msclkid")

_KIND_CHANNEL = {
    "search": "Organic Search",
    "social": "Social",
    "webmail": "Email",
    "ai_assistant": "Referral",
}


@dataclass(frozen=True, slots=True)
class ReferrerInfo:
    """What the list says about a host: its kind ("search", "social", "ai_assistant",
    "webmail") and its name, or neither."""

    kind: str | None
    name: str | None


_UNKNOWN = ReferrerInfo(None, None)


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _load() -> tuple[dict[str, ReferrerInfo], dict[str, ReferrerInfo]]:
    """Host patterns → info, and lower-cased source names → info (for `utm_source`)."""
    raw: dict[str, Any] = json.loads(_DATA.read_text(encoding="utf-8"))
    hosts: dict[str, ReferrerInfo] = {}
    names: dict[str, ReferrerInfo] = {}
    # The first list that names a host wins: the specific ones before the search engines,
    # whose list also holds a few sites' own search pages (www.facebook.com: Facebook).
    lists: list[tuple[str, dict[str, str]]] = [
        ("webmail", _WEBMAIL),
        ("ai_assistant", raw["ai_assistant"]),
        ("social", raw["social"]),
        ("search", raw["search"]),
    ]
    labels: dict[str, ReferrerInfo] = {}
    for kind, entries in lists:
        for pattern, name in entries.items():
            info = ReferrerInfo(kind, name)
            # Hosts are looked up without "www.", so the patterns are kept that way too.
            hosts.setdefault(_strip_www(pattern), info)
            names.setdefault(name.lower(), info)
            # "facebook.com" → "facebook", so utm_source=facebook is known too.
            label = _strip_www(pattern.removeprefix("{}.")).split(".")[0]
            if len(label) >= 4 and label != "{}":
                labels.setdefault(label, info)
    for label, info in labels.items():
        names.setdefault(label, info)
    return hosts, names


_HOSTS, _NAMES = _load()


def _candidates(labels: list[str]) -> list[str]:
    """The list's patterns that could name a host: the host itself, then each parent
    domain; each with one label as `{}` (a country subdomain or TLD) and with the last
    two as `{}` (`google.{}` covers google.co.uk)."""
    out: list[str] = []
    for start in range(len(labels) - 1):
        suffix = labels[start:]
        out.append(".".join(suffix))
        for i in range(len(suffix)):
            out.append(".".join([*suffix[:i], "{}", *suffix[i + 1 :]]))
        if len(suffix) > 2:
            out.append(".".join([*suffix[:-2], "{}"]))
    return out


@lru_cache(maxsize=CACHE_SIZE)
def classify_host(host: str) -> ReferrerInfo:
    """The list's verdict on a lower-case host name (cached per host)."""
    hit = _HOSTS.get(host)
    if hit is not None:
        return hit
    # The list's longest entry has six labels: a longer host is matched on its tail, so
    # a made-up host of a hundred labels costs no more than a real one.
    for candidate in _candidates(host.split(".")[-_MAX_LABELS:]):
        hit = _HOSTS.get(candidate)
        if hit is not None:
            return hit
    return _UNKNOWN


def _origin_part(url: str) -> str:
    # Pages and referrers differ by path and query far more than by host: the cache is
    # keyed on what comes before them.
    scheme, sep, rest = url.strip().partition("://")
    return scheme + sep + rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


@lru_cache(maxsize=CACHE_SIZE)
def _host_of_origin(origin: str) -> str | None:
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return None
    if not host:
        return None
    return _strip_www(host.rstrip("."))


def _host_of(url: str) -> str | None:
    return _host_of_origin(_origin_part(url))


@lru_cache(maxsize=1024)
def own_hosts(origins: tuple[str, ...]) -> tuple[str, ...]:
    """The hosts of an app's allowed origins, without `www.`; a wildcard origin
    (`https://*.example.com`) gives `.example.com`, which covers its subdomains."""
    out: list[str] = []
    for origin in origins:
        wildcard = "://*." in origin
        try:
            host = urlsplit(origin.strip().replace("://*.", "://", 1)).hostname
        except ValueError:
            continue
        if host:
            host = host.rstrip(".")
            out.append("." + host if wildcard else _strip_www(host))
    return tuple(out)


def _is_own(host: str, page_host: str | None, own: tuple[str, ...]) -> bool:
    if host == page_host:
        return True
    for entry in own:
        if entry.startswith("."):
            if host.endswith(entry) or host == entry[1:]:
                return True
        elif host == entry:
            return True
    return False


def _query_fields(url: str) -> tuple[dict[str, str], bool]:
    """UTM fields and `ref` of a page URL, and whether it carries an ad click id."""
    _, _, rest = url.partition("?")
    if not rest:
        return {}, False
    query = rest.split("#", 1)[0]
    found: dict[str, str] = {}
    click = False
    for key, value in parse_qsl(query, keep_blank_values=False):
        key = key.lower()
        if key in UTM_KEYS:
            value = value.strip()
            if value and key not in found:
                found[key] = value[:MAX_VALUE]
        elif key in _CLICK_IDS:
            click = True
    return found, click


def channel_for(
    utm_medium: str | None,
    utm_source: str | None,
    referrer_kind: str | None,
    has_referrer: bool,
    paid_click: bool = False,
) -> str:
    """The channel: UTM medium first, an ad click id, then the referrer's kind, then what
    `utm_source` (or `ref`) names, else Direct."""
    if utm_medium:
        medium = utm_medium.strip().lower()
        if medium in _EMAIL_MEDIUMS:
            return "Email"
        if medium in _PAID_MEDIUMS or medium.startswith("paid"):
            return "Paid"
        if medium in _SOCIAL_MEDIUMS:
            return "Social"
        if medium == "organic":
            return "Organic Search"
    if paid_click:
        return "Paid"
    if has_referrer:
        return _KIND_CHANNEL.get(referrer_kind or "", "Referral")
    if utm_source:
        source = utm_source.strip().lower()
        if source in _EMAIL_MEDIUMS:
            return "Email"
        info = _NAMES.get(source) or classify_host(_strip_www(source))
        return _KIND_CHANNEL.get(info.kind or "", "Referral")
    if utm_medium:
        return "Referral"
    return "Direct"


def source_fields(url: object, referrer: object, own: tuple[str, ...] = ()) -> dict[str, str]:
    """The source keys for an event whose context has this page `url` and `referrer`
    (either may be missing or not a string); `own` is `own_hosts(app.origins)`."""
    page = url if isinstance(url, str) else ""
    page_host = _host_of(page) if page else None
    fields: dict[str, str] = {}
    paid_click = False
    if page:
        fields, paid_click = _query_fields(page)
    info = _UNKNOWN
    host = _host_of(referrer) if isinstance(referrer, str) and referrer else None
    if host is not None and not _is_own(host, page_host, own):
        info = classify_host(host)
        fields["referrer_host"] = host
        if info.name is not None:
            fields["referrer_name"] = info.name
    else:
        host = None
    fields["channel"] = channel_for(
        fields.get("utm_medium"),
        fields.get("utm_source") or fields.get("ref"),
        info.kind,
        host is not None,
        paid_click,
    )
    return fields


def cache_clear() -> None:
    """Empty the per-host caches (benchmarks and tests)."""
    classify_host.cache_clear()
    _host_of_origin.cache_clear()
