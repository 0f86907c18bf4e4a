from __future__ import annotations

import base64

import pytest

from collector.ingest.auth import (
    OriginPattern,
    key_from_authorization,
    normalise_origin,
    origin_allowed,
    request_origin,
)


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer sk_abc", "sk_abc"),
        ("bearer   sk_abc ", "sk_abc"),
        ("Token sk_abc", "sk_abc"),
        ('Token token="sk_abc"', "sk_abc"),
        ("Basic " + base64.b64encode(b"sk_abc:").decode(), "sk_abc"),
        ("Basic " + base64.b64encode(b":sk_abc").decode(), "sk_abc"),
        ("Basic !!!", None),
        ("Digest x", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_key_from_authorization(header: str | None, key: str | None) -> None:
    assert key_from_authorization(header) == key


@pytest.mark.parametrize(
    ("allowed", "origin", "ok"),
    [
        ("https://example.com", "https://example.com", True),
        ("https://example.com", "https://example.com:443", True),
        ("https://example.com", "http://example.com", False),
        ("https://example.com", "https://www.example.com", False),
        ("https://*.example.com", "https://www.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://badexample.com", False),
        ("http://localhost:3000", "http://localhost:3000", True),
        ("http://localhost:3000", "http://localhost:3001", False),
        ("https://EXAMPLE.com", "https://example.COM", True),
    ],
)
def test_origin_matching(allowed: str, origin: str, ok: bool) -> None:
    caller = request_origin(origin, None)
    assert caller is not None
    assert origin_allowed([allowed], caller) is ok


def test_referer_fallback_and_null_origin() -> None:
    assert request_origin(None, "https://shop.example.com/a/b?c") == OriginPattern(
        "https", "shop.example.com", 443
    )
    assert request_origin("null", None) is None
    assert request_origin(None, None) is None


@pytest.mark.parametrize(
    "bad", ["example.com", "ftp://example.com", "https://example.com/path", "https://"]
)
def test_bad_allowed_origins_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_origin(bad)


def test_normalise_origin() -> None:
    assert normalise_origin("https://Shop.Example.com:443/") == "https://shop.example.com"
    assert normalise_origin("http://localhost:3000") == "http://localhost:3000"
