from __future__ import annotations

from collector.ingest.enrich import apply_ip_mode, client_ip, enrich_context, parse_networks

TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1/32"])


def test_socket_ip_without_trusted_proxies() -> None:
    assert client_ip("203.0.113.9", "198.51.100.1", ()) == "203.0.113.9"


def test_forwarded_for_only_from_a_trusted_proxy() -> None:
    assert client_ip("10.1.2.3", "198.51.100.1", TRUSTED) == "198.51.100.1"
    assert client_ip("203.0.113.9", "198.51.100.1", TRUSTED) == "203.0.113.9"


def test_forwarded_for_takes_the_rightmost_untrusted_hop() -> None:
    # The client may forge hops on the left; only hops added by our proxies are believed.
    assert client_ip("10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", TRUSTED) == "198.51.100.1"
    assert client_ip("10.1.2.3", "garbage, 10.9.9.9", TRUSTED) == "10.1.2.3"


def test_ip_modes() -> None:
    assert apply_ip_mode("203.0.113.77", "full") == "203.0.113.77"
    assert apply_ip_mode("203.0.113.77", "truncate") == "203.0.113.0"
    assert apply_ip_mode("2001:db8:abcd:12::1", "truncate") == "2001:db8:abcd::"
    assert apply_ip_mode("203.0.113.77", "none") is None
    assert apply_ip_mode("not-an-ip", "truncate") is None


def test_server_event_without_ua_is_not_a_bot() -> None:
    ctx: dict = {}
    assert enrich_context(ctx, source="server", ip=None, user_agent=None, ip_mode="full") == (
        False,
        None,
    )
    assert ctx["source"] == "server" and ctx["is_bot"] is False


def test_server_event_with_visitor_crawler_ua() -> None:
    ctx: dict = {}
    is_bot, reason = enrich_context(
        ctx,
        source="server",
        ip="203.0.113.1",
        user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ip_mode="truncate",
    )
    assert (is_bot, reason) == (True, "crawler")
    assert ctx["ip"] == "203.0.113.0"
    assert ctx["device_type"] == "bot"
