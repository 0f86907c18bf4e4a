"""What an anonymous or hostile client can do, in process, on both backends: memory stays
bounded whatever ids, origins and User-Agents it invents; input that is stored is valid;
CORS answers only allowed origins, in their canonical form; the query API reads a body in
bounded chunks. (Slow connections and revocation need a real server: test_slow_clients.py
and test_revocation.py.)"""

from __future__ import annotations

import asyncio
import gc
import random
import string
import tracemalloc
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from collector.ingest import bots, pipeline, useragent
from collector.ingest.enrich import enrich_context
from collector.ingest.ratelimit import RateLimiter
from collector.models import App
from collector.settings import Settings
from collector.store import Store
from collector.web.api import MAX_QUERY_BODY
from collector.web.app import create_app
from tests.conftest import CHROME_UA, ORIGIN, auth, browser

MB = 1024 * 1024


def events(store: Store, app: App) -> list[dict]:
    return list(store.export_events(app.app_id))


def _junk(size: int, rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=size))


def _retained(action: Any) -> int:
    """Bytes still allocated after `action` ran and garbage was collected."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


# 1. Memory is bounded against unauthenticated input ---------------------------------


def test_invented_app_ids_origins_and_referers_leave_nothing_behind(
    client: TestClient, app: App
) -> None:
    """Today's app cache kept every unknown app id for good (500 ids of 200 KB: +70 MB)."""
    rng = random.Random(1)
    cache = client.app.state.collector.cache  # type: ignore[attr-defined]

    def attack() -> None:
        for _ in range(40):
            big = "app_" + _junk(200_000, rng)
            body = orjson.dumps({"app_id": big, "event": "x", "anonymous_id": "a"})
            r = client.post("/v1/event", content=body, headers=browser())
            assert r.status_code == 403
            assert r.json()["errors"][0]["field"] == "app_id"
            query = f"/v1/event?app_id={big[:60_000]}"  # the client's URL length cap
            r = client.options(query, headers={"Origin": ORIGIN})
            assert r.status_code == 403
            host = _junk(100_000, rng)
            for headers in (
                {"Origin": f"https://{host}.example.org"},
                {"Referer": f"https://{host}.example.org/page"},
            ):
                body = orjson.dumps({"app_id": app.app_id, "event": "x", "anonymous_id": "a"})
                r = client.post(
                    "/v1/event", content=body, headers={**headers, "Content-Type": "text/plain"}
                )
                assert r.status_code == 403
                assert r.json()["errors"][0]["field"] == "origin"

    retained = _retained(attack)
    assert len(cache) == 1  # the real app; the invented ids were refused before any lookup
    assert retained < 2 * MB, f"{retained / MB:.1f} MB retained after 16 MB of invented ids"


class _NoApps:
    def get_app(self, app_id: str) -> None:
        return None

    def app_for_key(self, key_hash: str) -> None:
        return None


def test_app_cache_is_bounded_by_entries() -> None:
    cache = pipeline.AppCache(_NoApps())  # type: ignore[arg-type]
    for i in range(pipeline.CACHE_ENTRIES + 500):
        assert cache.by_id(f"app_{i:016x}") is None
        assert cache.by_key(f"sk_{i}") is None
    assert len(cache) == 2 * pipeline.CACHE_ENTRIES
    assert cache.by_key("sk_" + "k" * 10_000) is None  # no key is that long: not hashed
    assert len(cache) == 2 * pipeline.CACHE_ENTRIES


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("app_0123456789abcdef", True),
        ("app_demo-1", True),
        ("app_", False),
        ("0123456789abcdef", False),
        ("app_" + "a" * 61, False),
        ("app_<script>", False),
        ("app_a b", False),
    ],
)
def test_what_can_be_an_app_id(text: str, ok: bool) -> None:
    assert pipeline.is_app_id(text) is ok


# 2. User-Agent length ----------------------------------------------------------------


def test_an_oversized_user_agent_is_capped_flagged_and_not_cached_whole() -> None:
    """Today 9,000 random 60 KB User-Agents added 470 MB to the caches and each cost
    ~27 ms of bot detection."""
    rng = random.Random(2)
    useragent.cache_clear()
    bots.cache_clear()
    uas = [CHROME_UA + " " + _junk(60_000, rng) for _ in range(60)]
    contexts: list[dict[str, Any]] = []

    def attack() -> None:
        for ua in uas:
            context: dict[str, Any] = {}
            verdict = enrich_context(
                context, source="browser", ip="203.0.113.9", user_agent=ua, ip_mode="full"
            )
            assert verdict == (True, "oversized_user_agent")
            contexts.append(context)

    retained = _retained(attack)
    for context in contexts:
        assert len(context["user_agent"]) == useragent.MAX_USER_AGENT
        assert context["browser"] == "Chrome"  # the part a browser would send is parsed
    # What is kept: 60 stored contexts of 1 KB and the caches' capped keys, not 7 MB.
    assert retained < 1 * MB, f"{retained / MB:.1f} MB retained for 3.6 MB of User-Agents"
    assert "oversized_user_agent" in bots.BOT_REASONS


def test_oversized_user_agent_over_http_is_stored_capped(
    client: TestClient, store: Store, app: App
) -> None:
    ua = CHROME_UA + " x" * 30_000
    body = {"app_id": app.app_id, "event": "page_viewed", "anonymous_id": "a"}
    r = client.post("/v1/event", content=orjson.dumps(body), headers=browser(ua=ua))
    assert r.status_code == 202, r.text
    (row,) = events(store, app)
    assert row["context"]["user_agent"] == ua[: useragent.MAX_USER_AGENT]
    assert row["context"]["bot_reason"] == "oversized_user_agent"


def test_a_long_real_user_agent_is_not_flagged() -> None:
    context: dict[str, Any] = {}
    ua = CHROME_UA + " FBAN/FBIOS;FBDV/iPhone14,2" * 20  # ~700 characters: in-app browsers
    assert len(ua) < useragent.MAX_USER_AGENT
    verdict = enrich_context(context, source="server", ip=None, user_agent=ua, ip_mode="full")
    assert verdict == (False, None)
    assert context["user_agent"] == ua


# 6. Input that is stored is validated ---------------------------------------------------


@pytest.mark.parametrize(
    "ip", ["not-an-ip <script>", "", "1.2.3", "fe80::1%<script>", "1.2.3.4 ", 12345]
)
def test_server_ip_must_be_an_ip_address(
    client: TestClient, store: Store, app: App, key: str, ip: Any
) -> None:
    r = client.post("/v1/event", json={"event": "x", "user": "u1", "ip": ip}, headers=auth(key))
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["ip"]
    batch = {"events": [{"event": "x", "user": "u1", "ip": ip}, {"event": "y", "user": "u1"}]}
    r = client.post("/v1/events", json=batch, headers=auth(key))
    assert r.status_code == 202, r.text
    assert r.json()["errors"][0]["index"] == 0
    assert [e["event"] for e in events(store, app)] == ["y"]  # the valid one beside it


@pytest.mark.parametrize("ip", ["203.0.113.7", "2001:db8::1", "::ffff:192.0.2.1"])
def test_server_ip_addresses_are_stored(
    client: TestClient, store: Store, app: App, key: str, ip: str
) -> None:
    r = client.post("/v1/event", json={"event": "x", "user": "u1", "ip": ip}, headers=auth(key))
    assert r.status_code == 202, r.text
    (row,) = events(store, app)
    assert row["context"]["ip"] == ip


def test_origin_null_is_refused_even_with_an_allowed_referer(
    client: TestClient, store: Store, app: App
) -> None:
    body = orjson.dumps({"app_id": app.app_id, "event": "page_viewed", "anonymous_id": "a"})
    for origin in ("null", "https://shop.example.com/path", "https://u@shop.example.com"):
        headers = {**browser(origin=origin), "Referer": ORIGIN + "/page"}
        r = client.post("/v1/event", content=body, headers=headers)
        assert r.status_code == 403, (origin, r.text)
        assert r.json()["errors"][0]["field"] == "origin"
        assert "access-control-allow-origin" not in r.headers
        r = client.options("/v1/event", headers={"Origin": origin})
        assert r.status_code == 403
        assert "access-control-allow-origin" not in r.headers
    assert events(store, app) == []


def test_cors_echoes_the_origin_in_canonical_form(client: TestClient, app: App) -> None:
    body = orjson.dumps({"app_id": app.app_id, "event": "page_viewed", "anonymous_id": "a"})
    for sent, canonical in (
        ("HTTPS://Shop.Example.COM:443", ORIGIN),
        ("https://Deep.Sub.Example.org", "https://deep.sub.example.org"),
    ):
        r = client.post("/v1/event", content=body, headers=browser(origin=sent))
        assert r.status_code == 202, r.text
        assert r.headers["access-control-allow-origin"] == canonical
        r = client.options(f"/v1/event?app_id={app.app_id}", headers={"Origin": sent})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == canonical


# 4. The query API reads a body in bounded chunks ---------------------------------------


def _post_chunks(app: Any, path: str, key: str, chunks: int, headers: list) -> tuple[int, int]:
    """POST `chunks` chunks of 64 KB straight to the ASGI app; (status, bytes it read)."""
    pulled = 0
    sent = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled, sent
        sent += 1
        pulled += 65_536
        return {"type": "http.request", "body": b" " * 65_536, "more_body": sent < chunks}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("203.0.113.5", 5000),
        "headers": [(b"authorization", f"Bearer {key}".encode()), *headers],
    }
    asyncio.run(app(scope, receive, send))
    return status, pulled


@pytest.mark.parametrize("path", ["/v1/segments/query", "/v1/funnels"])
def test_query_body_is_read_in_bounded_chunks(db: str, key: str, path: str) -> None:
    """Today a 500 MB body was read whole (1.2 GB RSS) before the 413."""
    with TestClient(create_app(Settings(db=db))) as c:
        asgi = c.app
        status, pulled = _post_chunks(asgi, path, key, chunks=160, headers=[])  # 10 MB
        assert status == 413
        assert pulled <= MAX_QUERY_BODY + 65_536
        length = [(b"content-length", b"524288000")]  # 500 MB announced: nothing read
        status, pulled = _post_chunks(asgi, path, key, chunks=8000, headers=length)
        assert status == 413
        assert pulled == 0


# 7. Floods are measured in events -----------------------------------------------------


def _stopped_clock(client: TestClient) -> None:
    """No bucket refills while the test runs: what passes depends on the requests only."""
    collector = client.app.state.collector  # type: ignore[attr-defined]
    collector.limiter = RateLimiter(clock=lambda: 1000.0)


def test_rate_limit_counts_events_not_only_requests(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    """Today one app got 978,000 events through in 10 s in batches of 2,000."""
    _stopped_clock(client)
    store.update_app(app.app_id, settings={"rate_limit_events": 100, "rate_limit_ip": 0})
    other = store.create_app("Quiet", [], {"rate_limit_events": 100})
    other_key = store.create_key(other.app_id)[1]

    def batch(n: int, k: str = key) -> Any:
        body = {
            "events": [{"event": "e", "user": "u", "message_id": _junk(12, rng)} for _ in range(n)]
        }
        return client.post("/v1/events", json=body, headers=auth(k))

    rng = random.Random(7)
    assert batch(150).status_code == 202  # a burst of two seconds' worth: 200 events
    limited = batch(100)
    assert limited.status_code == 429  # 2 requests: far under the request limit
    assert limited.json()["errors"][0]["field"] == "rate_limit"
    assert int(limited.headers["retry-after"]) >= 1
    assert batch(50).status_code == 202  # what is left of the burst
    assert (
        client.post("/v1/event", json={"event": "e", "user": "u"}, headers=auth(key)).status_code
        == 429
    )
    assert len(events(store, app)) == 200
    # Another app is not charged for this app's flood; a batch over the whole burst still
    # passes once, on a full bucket.
    assert batch(500, other_key).status_code == 202
    assert batch(1, other_key).status_code == 429


# Found by the fuzzer (tests/test_fuzz.py) -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"user": "u", "event": {"confirmation": {"orderId": "o"}}, "properties": [1]},
            "properties",
        ),
        ({"user": "u", "event": {"update": {"plan": "pro"}}, "traits": [1]}, "traits"),
    ],
)
def test_seed_002_shape_with_a_non_object_beside_it_is_a_400(
    client: TestClient, store: Store, app: App, key: str, body: dict, field: str
) -> None:
    r = client.post("/v1/event", json=body, headers=auth(key))
    assert r.status_code == 400, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert events(store, app) == []


def test_a_flood_is_refused_before_its_body_is_read_once_the_budget_is_spent(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    _stopped_clock(client)
    store.update_app(app.app_id, settings={"rate_limit_events": 10, "rate_limit_ip": 0})
    items = [{"event": "e", "user": "u"} for _ in range(20)]
    assert client.post("/v1/events", json={"events": items}, headers=auth(key)).status_code == 202
    # Not even valid JSON: refused for the budget, before anything reads the body.
    r = client.post("/v1/events", content=b"{not json", headers=auth(key))
    assert r.status_code == 429, r.text
    assert r.json()["errors"][0]["field"] == "rate_limit"


def test_a_body_cut_short_by_a_disconnect_is_never_processed(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {
                "type": "http.request",
                "body": b'{"event": "partial", "user": "u"}',
                "more_body": True,
            },
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/event",
        "query_string": b"",
        "client": ("203.0.113.5", 5000),
        "headers": [(b"authorization", f"Bearer {key}".encode())],
    }
    asyncio.run(client.app.ingest(scope, receive, send))  # type: ignore[attr-defined]
    assert sent == []  # nobody to answer
    assert events(store, app) == []


@pytest.mark.parametrize("field", ["ua", "user_agent", "userAgent"])
def test_a_server_user_agent_with_a_nul_is_a_400(
    client: TestClient, store: Store, app: App, key: str, field: str
) -> None:
    """Found by `make fuzz` on PostgreSQL: acknowledged, then refused by every indexing
    transaction (a NUL cannot be stored as text), so every read answered 500."""
    body = {"event": "x", "user": "u", field: "Mozilla/5.0 \u0000 (X11)"}
    r = client.post("/v1/event", json=body, headers=auth(key))
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["ua"]
    batch = {"events": [body, {"event": "y", "user": "u"}]}
    r = client.post("/v1/events", json=batch, headers=auth(key))
    assert r.status_code == 202, r.text
    assert [e["event"] for e in events(store, app)] == ["y"]  # and every read still works


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/stats?event=a%00b", "event"),
        ("/v1/events?user=u%00", "user"),
        ("/v1/events?anonymous_id=%00", "anonymous_id"),
        ("/v1/users/u%001", "user_id"),
    ],
)
def test_a_nul_in_a_query_parameter_is_a_400(
    client: TestClient, key: str, path: str, field: str
) -> None:
    """Found by `make fuzz` on PostgreSQL, which refuses a NUL in text: a 500."""
    r = client.get(path, headers=auth(key))
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_a_nul_in_a_query_body_is_a_400(client: TestClient, key: str) -> None:
    body = {"conditions": [{"has_done": {"event": "e", "where": {"plan": "a\u0000"}}}]}
    r = client.post("/v1/segments/query", json=body, headers=auth(key))
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "conditions[0].has_done.where.plan"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/funnels", {"steps": ["a", "b\u0000"]}, "steps[1]"),
        ("/v1/funnels", {"steps": [{"event": "\u0000"}, "b"]}, "steps[0].event"),
        ("/v1/segments/query", {"conditions": [{"has_done": {"event": "e\u0000"}}]},
         "conditions[0].has_done.event"),
    ],
)  # fmt: skip
def test_a_nul_in_an_event_name_of_a_query_is_a_400(
    client: TestClient, key: str, path: str, body: dict, field: str
) -> None:
    """Found by make fuzz on PostgreSQL: a funnel step named with a NUL was a 500."""
    r = client.post(path, json=body, headers=auth(key))
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_a_batch_over_the_budget_left_is_refused_before_its_events_are_validated(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    """A flood's refused 2,000-event batch cost 15-20 ms of CPU to validate and enrich
    before its 429, on the worker that serves the other apps too: a known caller's batch
    is counted, and charged, before anything reads its events."""
    _stopped_clock(client)
    store.update_app(app.app_id, settings={"rate_limit_events": 10, "rate_limit_ip": 0})

    def batch(n: int, **envelope: Any) -> Any:
        body = {"events": [{"event": "e", "user": "u"} for _ in range(n)], **envelope}
        return client.post("/v1/events", json=body, headers=auth(key))

    assert batch(15).status_code == 202  # 5 of the 20-event burst left
    # An envelope that validation would refuse (400): the events are over the budget
    # first, and nothing is charged for a refused batch.
    over = batch(10, sent_at="not a time")
    assert over.status_code == 429, over.text
    assert over.json()["errors"][0]["field"] == "rate_limit"
    assert batch(5).status_code == 202
    assert len(events(store, app)) == 20


def test_a_big_batch_is_refused_for_the_backlog_before_its_events_are_validated(
    client: TestClient, store: Store, app: App, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.ingest.writer import BIG_REQUEST

    collector = client.app.state.collector  # type: ignore[attr-defined]
    monkeypatch.setattr(collector.store, "at_backlog_bound", lambda: True)
    body = {"events": [{"event": "e", "user": "u"}] * (BIG_REQUEST + 1), "sent_at": "no"}
    r = client.post("/v1/events", json=body, headers=auth(key))
    assert r.status_code == 503, r.text
    assert r.json()["errors"][0]["field"] == "queue"
    assert "retry-after" in r.headers
    small = {"events": [{"event": "e", "user": "u"}] * BIG_REQUEST}
    assert client.post("/v1/events", json=small, headers=auth(key)).status_code == 202
    assert len(events(store, app)) == BIG_REQUEST
