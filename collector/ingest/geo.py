"""Geography: an event's country, from its IP, before `ip_mode` truncates or drops it.

The data is `iptocc`'s, built into its wheel from the five Regional Internet Registries'
delegation files (nothing is downloaded at run time). A registry records the country an
address block was *assigned* to, which is where its holder is registered: right for
almost every home and mobile connection, wrong for a multinational's or a VPN's block
used abroad. Private, loopback and unassigned addresses have no country.
"""

from __future__ import annotations

from functools import lru_cache

from iptocc import country_code

__all__ = ["CACHE_SIZE", "cache_clear", "country_for_ip"]

CACHE_SIZE = 8192


@lru_cache(maxsize=CACHE_SIZE)
def _country_cached(ip: str) -> str | None:
    code = country_code(ip)
    # ISO 3166-1 alpha-2 only: the registries also use "EU" and "AP" for blocks assigned
    # to a region, and those are not countries.
    if code is None or len(code) != 2 or code in ("EU", "AP", "ZZ"):
        return None
    return code


def country_for_ip(ip: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 code of the country `ip` is assigned to, or None (no
    address, not an address, or a private, reserved or unassigned one)."""
    if not ip:
        return None
    if ip.startswith("::ffff:") and "." in ip:
        # An IPv4 client seen through a dual-stack socket.
        ip = ip[7:]
    return _country_cached(ip)


def cache_clear() -> None:
    """Empty the per-IP cache (benchmarks and tests)."""
    _country_cached.cache_clear()
