from __future__ import annotations

import orjson
import pytest
from starlette.testclient import TestClient

from collector.ingest.enrich import enrich_context
from collector.ingest.geo import country_for_ip
from collector.models import App
from collector.store import Store
from tests.conftest import CHROME_UA, auth


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("8.8.8.8", "US"),  # Google Public DNS
        ("2001:4860:4860::8888", "US"),  # the same, IPv6
        ("193.0.6.139", "NL"),  # RIPE NCC, Amsterdam
        ("81.2.69.142", "GB"),  # MaxMind's own test address
        ("133.11.0.1", "JP"),  # the University of Tokyo
        ("::ffff:8.8.8.8", "US"),  # IPv4 through a dual-stack socket
    ],
)
def test_well_known_addresses(ip: str, country: str) -> None:
    assert country_for_ip(ip) == country


@pytest.mark.parametrize(
    "ip", [None, "", "not-an-ip", "127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "testclient"]
)
def test_no_country(ip: str | None) -> None:
    assert country_for_ip(ip) is None


@pytest.mark.parametrize("mode", ["full", "truncate", "none"])
def test_country_is_decided_before_ip_mode(mode: str) -> None:
    ctx: dict = {}
    enrich_context(ctx, source="server", ip="193.0.6.139", user_agent=CHROME_UA, ip_mode=mode)  # type: ignore[arg-type]
    assert ctx["country"] == "NL"
    assert ctx["ip"] == {"full": "193.0.6.139", "truncate": "193.0.6.0", "none": None}[mode]


def test_stored_with_the_event_and_never_from_the_client(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    store.update_app(app.app_id, settings={"ip_mode": "none"})
    body = {
        "events": [
            {"event": "signed_up", "user": "u1", "ip": "193.0.6.139", "ua": CHROME_UA},
            {"event": "signed_up", "user": "u2", "context": {"country": "FR"}},
        ]
    }
    r = client.post("/v1/events", content=orjson.dumps(body), headers=auth(key))
    assert r.status_code == 202, r.text
    rows = {row["user_id"]: row["context"] for row in store.export_events(app.app_id)}
    assert rows["u1"]["country"] == "NL" and rows["u1"]["ip"] is None
    assert rows["u2"]["country"] is None
