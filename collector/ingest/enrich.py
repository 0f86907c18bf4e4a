"""Enrichment: where an event's IP, country, source, User-Agent and bot verdict are decided —
here only (the country by geo.py, the source by sources.py)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from collector.ingest.bots import detect_bot
from collector.ingest.geo import country_for_ip
from collector.ingest.sources import source_fields
from collector.ingest.useragent import MAX_USER_AGENT, parse_user_agent
from collector.models import IpMode, Source

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The socket peer, unless it is a trusted proxy: then the right-most untrusted hop of
    `X-Forwarded-For` (hops further left could be forged by the client)."""
    if peer is None or not trusted or not forwarded_for:
        return peer
    if not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _valid_ip(hop):
            break
        if not _in(hop, trusted):
            return hop
    return peer


def forwarded_https(
    peer: str | None, forwarded_proto: str | None, trusted: Sequence[Network]
) -> bool:
    """Whether a trusted proxy says the client's request came over HTTPS (it ended TLS):
    `X-Forwarded-Proto` believed only from a `--trusted-proxy` peer, as X-Forwarded-For
    is; its last value, the one the nearest proxy set or appended."""
    if peer is None or not forwarded_proto or not _in(peer, trusted):
        return False
    return forwarded_proto.split(",")[-1].strip().lower() == "https"


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(ip: str, networks: Sequence[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


@lru_cache(maxsize=4096)
def apply_ip_mode(ip: str | None, mode: IpMode) -> str | None:
    """`full` keeps the address; `truncate` zeroes the host part (IPv4 /24, IPv6 /48);
    `none` stores no address at all."""
    if ip is None or mode == "none":
        return None
    if mode == "full":
        return ip
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


def enrich_context(
    context: dict[str, Any],
    *,
    source: Source,
    ip: str | None,
    user_agent: str | None,
    ip_mode: IpMode,
    headers: Mapping[str, str] | None = None,
    own_hosts: tuple[str, ...] = (),
) -> tuple[bool, str | None]:
    """Fill the enrichment keys of `context` in place; return (is_bot, bot_reason).

    `ip` and `user_agent` are the visitor's: from the socket and headers on the browser
    path, from the body on the server path (never the posting server's own). The country
    comes from the full `ip`, before `ip_mode` truncates or drops it. An event that
    carries a page (`url` or `referrer` in its context) gets its source; `own_hosts`
    (`sources.own_hosts(app.origins)`) are the site's own, never a source."""
    webdriver = context.pop("webdriver", None) is True
    parsed = parse_user_agent(user_agent)
    reason = detect_bot(
        user_agent,
        webdriver=webdriver,
        browser_path=source == "browser",
        headers=headers,
    )
    if source == "server" and user_agent is None and not webdriver:
        # A backend event with no visitor UA says nothing about bots.
        reason = None
    context["source"] = source
    context["country"] = country_for_ip(ip)
    context["ip"] = apply_ip_mode(ip, ip_mode)
    # Stored as parsed: no more than MAX_USER_AGENT characters (the verdict says why).
    context["user_agent"] = user_agent[:MAX_USER_AGENT] if user_agent is not None else None
    context["browser"] = parsed.browser
    context["browser_version"] = parsed.browser_version
    context["os"] = parsed.os
    context["os_version"] = parsed.os_version
    context["device_type"] = "bot" if reason else parsed.device_type
    context["is_bot"] = reason is not None
    context["bot_reason"] = reason
    url = context.get("url")
    referrer = context.get("referrer")
    if url is not None or referrer is not None:
        context.update(source_fields(url, referrer, own_hosts))
    return reason is not None, reason
