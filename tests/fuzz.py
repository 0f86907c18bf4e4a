"""Fuzzing every endpoint of a real collector: bodies and header sets made by mutation of
valid requests of every dialect (ours, Segment's and RudderStack's, PostHog's: on every
path of `ingest/dialects/routes.py`), byte and JSON-level, some gzip- or
deflate-compressed (rightly, wrongly, or past the size limit once inflated); and by
hypothesis from grammars of event-like JSON in each dialect. `tests/test_fuzz.py` runs a
seeded, short round in `make test`; `make fuzz` runs 100,000 cases (FUZZ_CASES).

What is checked, request by request and at the end:
- no answer is a 5xx; a 4xx is the one error shape, each error naming its field; no answer
  carries a traceback, nor does the server's log;
- every event acknowledged (as "Event tracked successfully") is stored, and nothing
  invalid is: every stored event has a name of 1-255 characters, an IP that is an IP, a
  capped User-Agent, object properties;
- the worker's memory at the end is within 10% of what it was after a warm-up: requests
  that fill every bounded cache to its bound (`cache_filling_cases`), then the first half
  of the mutation cases; after it, nothing may keep growing.
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import random
import string
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from collector.ingest import auth
from collector.ingest.auth import MAX_ORIGIN
from collector.ingest.bots import CACHE_SIZE as BOT_CACHE_SIZE
from collector.ingest.dialects.routes import ROUTES
from collector.ingest.geo import CACHE_SIZE as GEO_CACHE_SIZE
from collector.ingest.normalize import MAX_REQUEST_BYTES
from collector.ingest.pipeline import CACHE_ENTRIES as APP_CACHE_ENTRIES
from collector.ingest.sources import CACHE_SIZE as SOURCES_CACHE_SIZE
from collector.ingest.useragent import CACHE_SIZE as UA_CACHE_SIZE
from collector.ingest.useragent import MAX_USER_AGENT

ORIGIN_CACHE_SIZE: int = auth._caller_origin.cache_parameters()["maxsize"]

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
ORIGIN_URL = "https://shop.example.com/pricing?x=1"
OWN_PATHS = ("/v1/event", "/v1/events", "/events", "/api/v1/events", "/v1/track", "/v1/identify")
# Every path of each dialect (ingest/dialects/routes.py), /v1/track and /v1/identify shared.
SEGMENT_PATHS = tuple(sorted(p for p, r in ROUTES.items() if r.dialect.name == "segment"))
POSTHOG_PATHS = tuple(sorted(p for p, r in ROUTES.items() if r.dialect.name == "posthog"))
INGEST_PATHS = tuple(dict.fromkeys((*OWN_PATHS, *SEGMENT_PATHS, *POSTHOG_PATHS)))
PATHS_OF = {"own": OWN_PATHS, "segment": SEGMENT_PATHS, "posthog": POSTHOG_PATHS}
QUERY_PATHS = ("/v1/segments/query", "/v1/funnels")
GET_PATHS = ("/v1/events", "/v1/stats", "/v1/users/u1", "/healthz", "/sdk.js", "/v1/nope")


def seed_bodies(app_id: str) -> list[dict[str, Any]]:
    """One valid body of each shape our own paths accept (SPEC: Ingestion API)."""
    event = {
        "event": "user_signed_up",
        "user": {"id": "u1", "traits": {"plan": "pro"}},
        "timestamp": "2026-11-22T10:00:00Z",
        "properties": {"amount": 9.5, "tags": ["a", "b"], "nested": {"k": True}},
        "message_id": "m-1",
        "context": {"url": "https://shop.example.com/a", "locale": "en-GB"},
    }
    return [
        event,
        {"events": [event, {"event": "page_viewed", "user": "u2"}], "sent_at": 1764000000000},
        {"event_name": "purchase_completed", "user_id": "u3", "ip": "192.0.2.1", "ua": CHROME},
        {"eventKey": "purchase_completed", "externalId": "u4", "metadata": {"plan": "team"}},
        {"user": {"email": "a@example.com"}, "event": {"update": {"firstname": "al"}}},
        {"user": {"_id": "u5"}, "event": {"confirmation": {"orderId": "o1", "total": 3}}},
        {
            "user": {"email": "b@example.com"},
            "event": {"generic": {"generic": {"event_name": "g"}}},
        },
        {"app_id": app_id, "event": "page_viewed", "anonymous_id": "anon-1"},
        {"app_id": app_id, "events": [{"event": "clicked", "anonymous_id": "anon-2"}]},
        {"user": "u6", "traits": {"plan": "free"}},
    ]


def segment_messages() -> list[dict[str, Any]]:
    """One message of each Segment type, as its libraries (and RudderStack's) send them."""
    context = {
        "library": {"name": "analytics-python", "version": "2.4.0"},
        "ip": "203.0.113.9",
        "userAgent": CHROME,
        "page": {"path": "/pricing", "referrer": "https://search.example/", "url": ORIGIN_URL},
        "traits": {"email": "a@example.com"},
    }
    return [
        {
            "type": "track",
            "event": "order_completed",
            "userId": "u1",
            "properties": {"total": 30.5, "items": [{"sku": "a"}]},
            "messageId": "seg-m-1",
            "timestamp": "2026-11-22T10:00:00Z",
            "context": context,
            "integrations": {"All": True},
        },
        {"type": "identify", "userId": "u1", "anonymousId": "anon-1", "traits": {"plan": "pro"}},
        {"type": "page", "anonymousId": "anon-1", "name": "Pricing", "properties": {"x": 1}},
        {"type": "screen", "userId": "u1", "name": "Settings", "category": "App"},
        {"type": "group", "userId": "u1", "groupId": "g-42", "traits": {"name": "Acme"}},
        {"type": "alias", "previousId": "anon-2", "userId": "u1"},
    ]


def posthog_events(token: str | None) -> list[dict[str, Any]]:
    """PostHog events as its libraries send them; `token` in the properties as posthog-js
    puts its project key there."""
    props: dict[str, Any] = {"$current_url": ORIGIN_URL, "$lib": "web", "plan": "pro"}
    if token is not None:
        props["token"] = token
    return [
        {
            "event": "$pageview",
            "distinct_id": "u1",
            "uuid": "0190b2d6-0000-7000-8000-000000000001",
            "timestamp": "2026-11-22T10:00:00Z",
            "properties": {**props, "$ip": "203.0.113.7", "$raw_user_agent": CHROME},
        },
        {
            "event": "$identify",
            "distinct_id": "u1",
            "properties": {**props, "$anon_distinct_id": "anon-1", "$set": {"a": 1}},
        },
        {"event": "$set", "distinct_id": "u1", "$set": {"plan": "pro"}, "properties": props},
        {
            "event": "$groupidentify",
            "distinct_id": "u1",
            "properties": {**props, "$group_type": "company", "$group_key": "acme"},
        },
        {"event": "$create_alias", "distinct_id": "u1", "properties": {**props, "alias": "u9"}},
        {"event": "button_clicked", "distinct_id": "u2", "properties": props},
    ]


@dataclass
class Seed:
    """A valid request: its dialect (the paths it belongs on), body, and caller."""

    dialect: str  # "own", "segment" or "posthog"
    body: Any
    browser: bool = False  # from a page (Origin, the app id as key) rather than a server
    basic_auth: bool = False  # Segment's server libraries: the key as Basic auth's user


def seeds(app_id: str, api_key: str) -> list[Seed]:
    own = [Seed("own", b, browser="app_id" in b) for b in seed_bodies(app_id)]
    messages = segment_messages()
    segment = [
        Seed("segment", {"batch": messages, "sentAt": "2026-11-22T10:00:05Z"}, basic_auth=True),
        Seed("segment", {"batch": messages[:2], "writeKey": api_key}),
        *(Seed("segment", m, basic_auth=True) for m in messages),
        Seed("segment", {**messages[0], "writeKey": api_key}),
        # analytics.js from a page: the app id as write key, on every message of a batch.
        Seed("segment", {**messages[2], "writeKey": app_id}, browser=True),
        Seed("segment", {"batch": [{**m, "writeKey": app_id} for m in messages]}, browser=True),
    ]
    server_events = posthog_events(None)
    browser_events = posthog_events(app_id)
    posthog = [
        Seed("posthog", {"api_key": api_key, "batch": server_events, "sent_at": "2026-11-22"}),
        *(Seed("posthog", {"api_key": api_key, **e}) for e in server_events[:3]),
        Seed("posthog", {"token": api_key, **server_events[5]}),
        # posthog-js: a bare list, or one event, the key in each event's properties.
        Seed("posthog", browser_events, browser=True),
        Seed("posthog", browser_events[0], browser=True),
    ]
    return own + segment + posthog


QUERY_BODIES: list[dict[str, Any]] = [
    {"match": "all", "conditions": [{"has_done": {"event": "user_signed_up"}}]},
    {"match": "any", "conditions": [{"count": {"event": "e", "gt": 1, "within_days": 30}}]},
    {"steps": ["user_signed_up", "purchase_completed"], "within_days": 7, "breakdown": "plan"},
]

JUNK_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    1e308,
    -0.0,
    "",
    " ",
    "x" * 300,
    "é\u0000\ud7ff",
    [],
    {},
    [[[]]],
    {"a": {"b": {"c": {"d": {"e": {}}}}}},
    "2026-13-45T99:99:99Z",
    "not-an-ip <script>",
    "\u202e",
    "app_" + "a" * 70,
    "🙂" * 50,
    "null",
    "NaN",
]


@dataclass
class Case:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""


@dataclass
class Tally:
    sent: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)  # ids of events answered as stored
    failures: list[str] = field(default_factory=list)

    def fail(self, case: Case, why: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(f"{case.method} {case.path}: {why}; body={case.body[:200]!r}")


class Mutator:
    """Valid requests, then changed: a value, a key, a byte, the headers."""

    def __init__(self, rng: random.Random, app_id: str, api_key: str, origin: str) -> None:
        self.rng = rng
        self.app_id = app_id
        self.api_key = api_key
        self.origin = origin
        self.seeds = seeds(app_id, api_key)

    def value(self) -> Any:
        r = self.rng
        choice = r.random()
        if choice < 0.5:
            return r.choice(JUNK_VALUES)
        if choice < 0.7:
            return "".join(r.choices(string.printable, k=r.randint(0, 40)))
        if choice < 0.8:
            return r.randint(-(2**70), 2**70)
        if choice < 0.9:
            return "x" * r.choice([255, 256, 1024, 33_000])
        return {"k" * r.randint(1, 300): [r.random()] * r.randint(0, 5)}

    def mutate_json(self, value: Any, depth: int = 0) -> Any:
        r = self.rng
        if isinstance(value, dict) and value and depth < 4:
            out = dict(value)
            key = r.choice(list(out))
            action = r.random()
            if action < 0.4:
                out[key] = self.mutate_json(out[key], depth + 1)
            elif action < 0.6:
                out[key] = self.value()
            elif action < 0.75:
                del out[key]
            else:
                out[r.choice([key.upper(), key + "_", "ip", "ua", "app_id", "user", "event"])] = (
                    self.value()
                )
            return out
        if isinstance(value, list) and value and depth < 4:
            out_list = list(value)
            i = r.randrange(len(out_list))
            action = r.random()
            if action < 0.5:
                out_list[i] = self.mutate_json(out_list[i], depth + 1)
            elif action < 0.7:
                out_list = out_list * r.randint(1, 30)
            else:
                out_list.append(self.value())
            return out_list
        return self.value()

    def mutate_bytes(self, raw: bytes) -> bytes:
        r = self.rng
        data = bytearray(raw)
        for _ in range(r.randint(1, 4)):
            action = r.random()
            if not data or action < 0.3:
                data[r.randrange(len(data) + 1) : r.randrange(len(data) + 1)] = r.randbytes(
                    r.randint(1, 8)
                )
            elif action < 0.6:
                data[r.randrange(len(data))] = r.randrange(256)
            elif action < 0.8:
                del data[r.randrange(len(data)) :]
            else:
                data += b"\xff\xfe" + r.randbytes(r.randint(1, 16))
        return bytes(data)

    def headers(self, browser: bool, basic_auth: bool = False) -> dict[str, str]:
        r = self.rng
        h: dict[str, str] = {}
        if basic_auth and r.random() < 0.8:
            h["Authorization"] = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
            browser = False
        if browser:
            h["Origin"] = r.choice(
                [
                    self.origin,
                    self.origin,
                    "null",
                    "https://evil.example.net",
                    self.origin.upper() + ":443",
                    "https://" + "a" * 400 + ".example.com",
                    "",
                ]
            )
            if r.random() < 0.3:
                h["Referer"] = self.origin + "/page?x=1"
            h["Accept-Language"] = "en"
        else:
            h["Authorization"] = r.choice(
                [
                    f"Bearer {self.api_key}",
                    f"Bearer {self.api_key}",
                    f"Token {self.api_key}",
                    "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode(),
                    "Bearer sk_nope",
                    "Basic !!!",
                    "Bearer " + "k" * 5000,
                    "Digest x",
                ]
            )
        h["Content-Type"] = r.choice(
            [
                "application/json",
                "application/json",
                "text/plain;charset=UTF-8",
                "application/x-www-form-urlencoded",
                "",
                "application/json; charset=latin-1",
            ]
        )
        # A third of the User-Agents are new: the bounded caches fill in the first half of
        # a long run, so that memory after it may not grow.
        if r.random() < 1 / 3:
            h["User-Agent"] = (
                CHROME + " " + "".join(r.choices(string.ascii_letters, k=r.randint(1, 3000)))
            )
        else:
            h["User-Agent"] = r.choice([CHROME, CHROME, "curl/8.0", "", "Googlebot/2.1"])
        return {k: v for k, v in h.items() if v}

    def ingest_case(self) -> Case:
        r = self.rng
        seed = r.choice(self.seeds)
        browser = seed.browser and r.random() < 0.8
        if r.random() < 0.85:
            value = self.mutate_json(seed.body)
            raw = json.dumps(value, default=str).encode("utf-8", "surrogatepass")
        else:
            raw = self.mutate_bytes(json.dumps(seed.body).encode())
        if r.random() < 0.05:
            raw = raw * r.randint(100, 2000)  # over 512 KB some of the time
        headers = self.headers(browser, seed.basic_auth)
        # Mostly a path of the body's own dialect, else any ingestion path.
        paths = PATHS_OF[seed.dialect] if r.random() < 0.8 else INGEST_PATHS
        path = r.choice(paths)
        query = f"app_id={self.app_id}" if browser and r.random() < 0.2 else ""
        if r.random() < 0.2:
            raw, headers, query = self.compress(raw, headers, query, path)
        return Case("POST", path, headers, raw, query)

    def compress(
        self, raw: bytes, headers: dict[str, str], query: str, path: str
    ) -> tuple[bytes, dict[str, str], str]:
        """The body compressed as a library would (gzip, deflate, posthog-js's gzip-js
        said in the query string), or compressed wrongly: said and not done, cut short,
        a bomb that inflates past the size limit, an encoding we do not read."""
        r = self.rng
        action = r.random()
        encoding = "gzip"
        if action < 0.45:
            raw = gzip.compress(raw)
        elif action < 0.55:
            raw = zlib.compress(raw)
            encoding = "deflate"
        elif action < 0.65:
            raw = gzip.compress(raw)
            raw = raw[: r.randrange(len(raw))]
        elif action < 0.75:
            raw = self.mutate_bytes(gzip.compress(raw))
        elif action < 0.82:
            raw = gzip.compress(b"[" + b" " * (MAX_REQUEST_BYTES + r.randint(1, 100_000)) + b"]")
        elif action < 0.9:
            encoding = r.choice(["br", "gzip, gzip", "x-gzip", "identity", "GZIP", "compress"])
            if encoding.lower() in ("x-gzip", "gzip"):
                raw = gzip.compress(raw)
        else:
            pass  # said, and not done
        if path in POSTHOG_PATHS and r.random() < 0.5:
            query = "&".join(q for q in (query, "compression=gzip-js") if q)
        else:
            headers = {**headers, "Content-Encoding": encoding}
        return raw, headers, query

    def other_case(self) -> Case:
        r = self.rng
        action = r.random()
        key = {"Authorization": f"Bearer {self.api_key}"}
        if action < 0.4:
            value = self.mutate_json(r.choice(QUERY_BODIES))
            raw = json.dumps(value, default=str).encode("utf-8", "surrogatepass")
            return Case("POST", r.choice(QUERY_PATHS), key, raw)
        if action < 0.7:
            params = ["since", "until", "event", "limit", "cursor", "include_bots", "order"]
            query = "&".join(
                f"{r.choice(params)}={r.choice(['1', 'x', '-5', '2026-01-01', 'true', '%00'])}"
                for _ in range(r.randint(0, 4))
            )
            path = r.choice(
                [
                    *GET_PATHS,
                    f"/v1/projects/{self.app_id}/settings",
                    "/v1/projects/"
                    + quote(str(r.choice(JUNK_VALUES)), safe="", errors="surrogatepass")
                    + "/settings",
                ]
            )
            return Case("GET", path, key, b"", query)
        origin = r.choice([self.origin, "null", "https://evil.example.net"])
        query = r.choice(["", f"app_id={self.app_id}", "app_id=app_" + "z" * 200])
        return Case("OPTIONS", r.choice(INGEST_PATHS), {"Origin": origin}, b"", query)

    def case(self) -> Case:
        return self.ingest_case() if self.rng.random() < 0.85 else self.other_case()


# Property-based: hypothesis draws event-like JSON from a grammar -------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_event = st.fixed_dictionaries(
    {},
    optional={
        "event": st.one_of(st.text(max_size=300), _json),
        "user": st.one_of(st.text(max_size=20), _json),
        "anonymous_id": _json,
        "timestamp": st.one_of(st.integers(), st.text(max_size=30), _json),
        "properties": _json,
        "context": _json,
        "message_id": _json,
        "ip": st.one_of(st.ip_addresses().map(str), st.text(max_size=50), _json),
        "ua": _json,
    },
)
BODIES = st.one_of(
    _event,
    st.fixed_dictionaries({"events": st.lists(_event, max_size=5)}, optional={"sent_at": _json}),
    _json,
)
_segment_message = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(
            st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]), _json
        ),
        "event": st.one_of(st.text(max_size=300), _json),
        "userId": st.one_of(st.text(max_size=20), _json),
        "anonymousId": st.one_of(st.text(max_size=20), _json),
        "previousId": st.one_of(st.text(max_size=20), _json),
        "groupId": _json,
        "messageId": _json,
        "timestamp": st.one_of(st.text(max_size=30), _json),
        "name": _json,
        "category": _json,
        "properties": _json,
        "traits": _json,
        "context": st.one_of(
            _json,
            st.fixed_dictionaries(
                {},
                optional={
                    "ip": st.one_of(st.ip_addresses().map(str), _json),
                    "userAgent": _json,
                    "library": _json,
                    "page": _json,
                    "traits": _json,
                },
            ),
        ),
        "integrations": _json,
    },
)
SEGMENT_BODIES = st.one_of(
    _segment_message,
    st.fixed_dictionaries(
        {"batch": st.lists(_segment_message, max_size=5)},
        optional={"sentAt": _json, "context": _json},
    ),
    _json,
)
_POSTHOG_PROPERTIES = [
    "$set", "$set_once", "$anon_distinct_id", "alias", "$ip", "$current_url",
    "$raw_user_agent", "$group_type", "$group_key", "distinct_id", "plan",
]  # fmt: skip
_posthog_event = st.fixed_dictionaries(
    {},
    optional={
        "event": st.one_of(
            st.sampled_from(["$pageview", "$identify", "$set", "$create_alias", "$groupidentify"]),
            st.text(max_size=300),
            _json,
        ),
        "distinct_id": st.one_of(st.text(max_size=20), _json),
        "uuid": st.one_of(st.uuids().map(str), _json),
        "timestamp": st.one_of(st.text(max_size=30), _json),
        "properties": st.one_of(
            _json,
            st.dictionaries(st.sampled_from(_POSTHOG_PROPERTIES), _json, max_size=5),
        ),
        "$set": _json,
        "$set_once": _json,
    },
)
POSTHOG_BODIES = st.one_of(
    _posthog_event,
    st.fixed_dictionaries(
        {"batch": st.lists(_posthog_event, max_size=5)}, optional={"sent_at": _json}
    ),
    st.lists(_posthog_event, max_size=5),
    _json,
)


def _keyed(body: Any, dialect: str, key: str, server: bool) -> Any:
    """The body with its caller's key where the dialect's libraries put it."""
    if dialect == "own":
        return body if server or not isinstance(body, dict) else {**body, "app_id": key}
    if dialect == "segment":
        return {**body, "writeKey": key} if isinstance(body, dict) else body
    if isinstance(body, dict) and server:
        return {**body, "api_key": key}
    if isinstance(body, list):  # posthog-js: the key in each event's properties
        return [
            {**e, "properties": {**(e.get("properties") or {}), "token": key}}
            if isinstance(e, dict) and isinstance(e.get("properties", {}), dict)
            else e
            for e in body
        ]
    return {**body, "token": key} if isinstance(body, dict) else body


def property_cases(app_id: str, api_key: str, count: int, rng_seed: int) -> list[Case]:
    """`count` cases drawn by hypothesis (seeded: the same cases every run), in every
    dialect, on its paths; a fifth of them gzip-compressed."""
    cases: list[Case] = []
    grammar = st.one_of(
        st.tuples(st.just("own"), BODIES, st.sampled_from(OWN_PATHS)),
        st.tuples(st.just("segment"), SEGMENT_BODIES, st.sampled_from(SEGMENT_PATHS)),
        st.tuples(st.just("posthog"), POSTHOG_BODIES, st.sampled_from(POSTHOG_PATHS)),
    )

    @seed(rng_seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(drawn=grammar, server=st.booleans(), compressed=st.integers(0, 4))
    def draw(drawn: tuple[str, Any, str], server: bool, compressed: int) -> None:
        dialect, body, path = drawn
        headers = {"Content-Type": "application/json", "User-Agent": CHROME}
        if server:
            if dialect == "own" or not isinstance(body, dict):
                headers["Authorization"] = f"Bearer {api_key}"
            else:
                body = _keyed(body, dialect, api_key, server)
        else:
            headers.update({"Origin": "https://shop.example.com", "Accept-Language": "en"})
            body = _keyed(body, dialect, app_id, server)
        raw = json.dumps(body, default=str).encode("utf-8", "surrogatepass")
        if compressed == 0:
            raw = gzip.compress(raw)
            headers["Content-Encoding"] = "gzip"
        cases.append(Case("POST", path, headers, raw))

    draw()
    return cases


# Sending and checking ---------------------------------------------------------------------


def check(case: Case, response: httpx.Response, tally: Tally) -> None:
    tally.sent += 1
    tally.by_status[response.status_code] = tally.by_status.get(response.status_code, 0) + 1
    text = response.text
    if response.status_code >= 500:
        tally.fail(case, f"status {response.status_code}: {text[:200]}")
        return
    if "Traceback" in text or 'File "' in text:
        tally.fail(case, "a traceback in the answer")
    if case.method == "POST" and case.path in INGEST_PATHS:
        try:
            answer = response.json()
        except ValueError:
            tally.fail(case, f"not JSON: {text[:100]}")
            return
        if response.status_code >= 400:
            errors = answer.get("errors")
            if answer.get("success") is not False or not errors:
                tally.fail(case, f"not the error shape: {answer}")
            elif not all(isinstance(e.get("field"), str) and e["field"] for e in errors):
                tally.fail(case, f"an error without its field: {answer}")
        elif answer.get("message") == "Event tracked successfully":
            # A stored event (an identify call is stored as traits, and a batch's ids do not
            # say which of its items were identify calls: those are not followed here).
            tally.acknowledged.add(answer["event_id"])


def run_cases(
    base_url: str, cases: Iterator[Case] | list[Case], tally: Tally, connections: int = 4
) -> None:
    """Send every case, `connections` at a time (the cases are made in this thread, in
    their seeded order; only the order they are answered in varies)."""
    lock = threading.Lock()
    local = threading.local()
    clients: list[httpx.Client] = []

    def send(case: Case) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=60)
            with lock:
                clients.append(client)
        url = case.path + (f"?{case.query}" if case.query else "")
        try:
            response = client.request(case.method, url, headers=case.headers, content=case.body)
        except httpx.HTTPError as exc:
            with lock:
                tally.fail(case, f"transport error {exc!r}")
            return
        with lock:
            check(case, response, tally)

    with ThreadPoolExecutor(connections) as pool:
        pending: set[Future[None]] = set()
        for case in cases:
            pending.add(pool.submit(send, case))
            if len(pending) >= connections * 4:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        for future in pending:
            future.result()
    for client in clients:
        client.close()


def mutation_cases(mutator: Mutator, count: int) -> Iterator[Case]:
    for _ in range(count):
        yield mutator.case()


def cache_filling_cases(
    app_id: str, api_key: str, origin: str, rng_seed: int, *, per_request: bool
) -> Iterator[Case]:
    """Requests that fill each bounded per-process cache of the collector to its bound,
    with entries as large as it keeps: User-Agents and bot verdicts (1,024 characters),
    countries by IP and referrer hosts, in server batches; with `per_request`, also the
    caches one request adds one entry to: origins (300 characters), and the app caches'
    misses by id and by key. Memory measured after these is what the rest of a run must
    not outgrow: a 100,000-case run adds only a few thousand new User-Agents, so without
    them the caches would still be filling at the end (+20 MB on SQLite) and a check
    against a measurement taken halfway would read that as a leak."""
    r = random.Random(rng_seed)
    letters = string.ascii_lowercase + string.digits

    def junk(k: int) -> str:
        return "".join(r.choices(letters, k=k))

    auth = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    per_batch = 250  # 250 events of ~1.5 KB: well under the body limit
    entries = max(UA_CACHE_SIZE, BOT_CACHE_SIZE, GEO_CACHE_SIZE, SOURCES_CACHE_SIZE) + 500
    for start in range(0, entries, per_batch):
        events = [
            {
                "event": "cache_fill",
                "user": f"fill{i % 50}",
                "user_agent": (CHROME + " " + junk(MAX_USER_AGENT))[:MAX_USER_AGENT],
                "ip": str(ipaddress.IPv4Address(0x0B000000 + i)),
                "context": {"referrer": f"https://{junk(60)}.{junk(60)}.example/"},
            }
            for i in range(start, start + per_batch)
        ]
        yield Case("POST", "/v1/events", auth, json.dumps({"events": events}).encode())
    if not per_request:
        return
    for _ in range(ORIGIN_CACHE_SIZE + 100):
        host = f"{junk(60)}.{junk(60)}.{junk(60)}.{junk(60)}.example"[: MAX_ORIGIN - 8]
        body = json.dumps({"app_id": app_id, "event": "x", "anonymous_id": "a"}).encode()
        yield Case("POST", "/v1/event", {"Origin": f"https://{host}"}, body)
    for _ in range(APP_CACHE_ENTRIES + 100):
        invented = {"app_id": "app_" + junk(60), "event": "x", "anonymous_id": "a"}
        yield Case("POST", "/v1/event", {"Origin": origin}, json.dumps(invented).encode())
    for _ in range(APP_CACHE_ENTRIES + 100):
        headers = {"Authorization": f"Bearer sk_{junk(32)}", "Content-Type": "application/json"}
        yield Case("POST", "/v1/event", headers, b'{"event": "x", "user": "u"}')


def invalid_stored(events: list[dict[str, Any]]) -> list[str]:
    """What is wrong with stored events (an empty list when everything is valid)."""
    problems: list[str] = []
    for e in events:
        name = e.get("event")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            problems.append(f"{e['id']}: event name {name!r}")
        ctx = e.get("context") or {}
        ip = ctx.get("ip")
        if ip is not None:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                problems.append(f"{e['id']}: ip {ip!r}")
        ua = ctx.get("user_agent")
        if ua is not None and len(ua) > MAX_USER_AGENT:
            problems.append(f"{e['id']}: user_agent of {len(ua)} characters")
        if not isinstance(e.get("properties"), dict):
            problems.append(f"{e['id']}: properties {e.get('properties')!r}")
    return problems


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


Progress = Callable[[str], None]
