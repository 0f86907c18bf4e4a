from __future__ import annotations

import json

import orjson
import pytest
from starlette.testclient import TestClient

from collector.ingest import sources
from collector.ingest.enrich import enrich_context
from collector.ingest.sources import channel_for, own_hosts, source_fields
from collector.models import App
from collector.store import Store
from tests.conftest import CHROME_UA, ORIGIN, browser

PAGE = "https://shop.example.com/pricing"
OWN = own_hosts((ORIGIN, "https://*.example.org"))


@pytest.mark.parametrize(
    ("referrer", "host", "name", "channel"),
    [
        ("https://www.google.com/", "google.com", "Google", "Organic Search"),
        ("https://www.google.co.uk/search?q=x", "google.co.uk", "Google", "Organic Search"),
        ("https://www.bing.com/search?q=x", "bing.com", "Bing", "Organic Search"),
        ("https://duckduckgo.com/", "duckduckgo.com", "DuckDuckGo", "Organic Search"),
        ("https://t.co/AbC", "t.co", "Twitter", "Social"),
        ("https://www.facebook.com/", "facebook.com", "Facebook", "Social"),
        ("https://l.facebook.com/l.php?u=x", "l.facebook.com", "Facebook", "Social"),
        ("https://news.ycombinator.com/item?id=1", "news.ycombinator.com", "Hacker News", "Social"),
        ("https://mail.google.com/mail/u/0/", "mail.google.com", "Gmail", "Email"),
        ("android-app://com.google.android.gm/", "com.google.android.gm", "Gmail", "Email"),
        ("https://chatgpt.com/", "chatgpt.com", "ChatGPT", "Referral"),
        ("https://blog.example.net/post", "blog.example.net", None, "Referral"),
    ],
)
def test_referrer_host_name_and_channel(
    referrer: str, host: str, name: str | None, channel: str
) -> None:
    fields = source_fields(PAGE, referrer, OWN)
    assert fields.get("referrer_host") == host
    assert fields.get("referrer_name") == name
    assert fields["channel"] == channel


@pytest.mark.parametrize(
    "referrer",
    [
        "https://shop.example.com/",  # the page's own host: an SPA navigation or a link
        "https://www.shop.example.com/x",  # the same host with www.
        "https://a.example.org/",  # a wildcard allowed origin
        "https://example.org/",  # its apex
        "",
        None,
        "not a url",
        "http://[::1",  # urlsplit raises on this one
        42,
    ],
)
def test_self_referrals_and_bad_referrers_are_no_source(referrer: object) -> None:
    assert source_fields(PAGE, referrer, OWN) == {"channel": "Direct"}


def test_the_page_host_counts_as_own_without_origins() -> None:
    assert source_fields("https://a.test/x", "https://a.test/", ()) == {"channel": "Direct"}
    assert source_fields("https://a.test/x", "https://b.test/", ())["channel"] == "Referral"


def test_utm_fields_and_ref_from_the_page_url() -> None:
    url = (
        PAGE + "?utm_source=Newsletter&utm_medium=email&utm_campaign=launch%202026"
        "&utm_term=shoes&utm_content=hero&ref=friend&utm_source=second#utm_medium=cpc"
    )
    assert source_fields(url, None, OWN) == {
        "utm_source": "Newsletter",
        "utm_medium": "email",
        "utm_campaign": "launch 2026",
        "utm_term": "shoes",
        "utm_content": "hero",
        "ref": "friend",
        "channel": "Email",
    }


def test_a_long_utm_value_is_cut() -> None:
    fields = source_fields(PAGE + "?utm_campaign=" + "x" * 1000, None, OWN)
    assert fields["utm_campaign"] == "x" * sources.MAX_VALUE


@pytest.mark.parametrize(
    ("medium", "source", "kind", "has_referrer", "click", "channel"),
    [
        ("email", None, "search", True, False, "Email"),  # UTM before the referrer
        ("Newsletter", None, None, False, False, "Email"),
        ("cpc", None, "search", True, False, "Paid"),
        ("ppc", None, None, False, False, "Paid"),
        ("paid_social", None, "social", True, False, "Paid"),
        ("social", None, None, False, False, "Social"),
        ("organic", "google", None, False, False, "Organic Search"),
        (None, None, "search", True, True, "Paid"),  # gclid on a Google referral
        (None, None, "search", True, False, "Organic Search"),
        (None, None, "social", True, False, "Social"),
        (None, None, None, True, False, "Referral"),
        (None, "facebook", None, False, False, "Social"),
        (None, "bing", None, False, False, "Organic Search"),
        (None, "newsletter", None, False, False, "Email"),
        (None, "producthunt", None, False, False, "Referral"),
        ("banana", None, None, False, False, "Referral"),
        (None, None, None, False, False, "Direct"),
    ],
)
def test_channel_rules(
    medium: str | None,
    source: str | None,
    kind: str | None,
    has_referrer: bool,
    click: bool,
    channel: str,
) -> None:
    assert channel_for(medium, source, kind, has_referrer, click) == channel


def test_click_id_in_the_url_is_paid() -> None:
    assert source_fields(PAGE + "?gclid=abc", "https://www.google.com/", OWN)["channel"] == "Paid"


def test_the_list_ships_with_its_source_and_licence() -> None:
    data = sources._DATA.parent
    raw = json.loads((data / "referrers.json").read_text())
    assert "matomo-org/searchengine-and-social-list" in raw["source"]
    assert "CC0" in (data / "LICENSE-searchengine-and-social-list").read_text()
    assert len(raw["search"]) > 500 and len(raw["social"]) > 100


def test_enrich_only_gives_a_source_to_events_with_a_page() -> None:
    ctx: dict = {}
    enrich_context(ctx, source="server", ip=None, user_agent=None, ip_mode="full")
    assert "channel" not in ctx and "referrer_host" not in ctx
    ctx = {"url": PAGE, "referrer": "https://t.co/x"}
    enrich_context(ctx, source="browser", ip=None, user_agent=CHROME_UA, ip_mode="full")
    assert (ctx["referrer_host"], ctx["channel"]) == ("t.co", "Social")


def test_stored_at_ingestion_from_the_sdk_fields(
    client: TestClient, store: Store, app: App
) -> None:
    """What the SDK sends: the first page view's referrer is document.referrer; after an
    SPA navigation it is the previous URL, which is the site's own and no source."""
    landing = PAGE + "?utm_source=hn&utm_medium=social&utm_campaign=launch"
    body = {
        "app_id": app.app_id,
        "events": [
            {
                "event": "page_viewed",
                "anonymous_id": "a",
                "context": {"url": landing, "referrer": "https://news.ycombinator.com/"},
            },
            {
                "event": "page_viewed",
                "anonymous_id": "a",
                "context": {"url": ORIGIN + "/signup", "referrer": landing},
            },
            {
                "event": "clicked",
                "anonymous_id": "a",
                # A client cannot claim a source: enrichment's keys are dropped.
                "context": {"channel": "Paid", "referrer_host": "evil.test", "utm_source": "x"},
            },
        ],
    }
    r = client.post("/v1/events", content=orjson.dumps(body), headers=browser())
    assert r.status_code == 202, r.text
    first, spa, other = (row["context"] for row in store.export_events(app.app_id))
    assert first["referrer_host"] == "news.ycombinator.com"
    assert first["referrer_name"] == "Hacker News"
    assert (first["utm_source"], first["utm_medium"], first["utm_campaign"]) == (
        "hn",
        "social",
        "launch",
    )
    assert first["channel"] == "Social"
    assert "referrer_host" not in spa and spa["channel"] == "Direct"
    assert not {"channel", "referrer_host", "utm_source"} & set(other)


def test_a_long_made_up_host_is_matched_on_its_tail() -> None:
    host = ".".join(["a"] * 120) + ".google.com"
    fields = source_fields(PAGE, f"https://{host}/", OWN)
    assert fields["referrer_name"] == "Google"
    assert fields["channel"] == "Organic Search"
