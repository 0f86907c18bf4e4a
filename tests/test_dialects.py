"""The dialects' common ground (ingest/dialects/): any JSON body is either items or a
CollectorError naming a field, never an exception of another kind; every path of the
table reaches the endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from collector.errors import CollectorError
from collector.ingest.dialects.routes import ROUTES
from collector.ingest.normalize import Item
from collector.models import App
from collector.store import Store
from collector.timeutil import parse_timestamp
from collector.web.app import _INGEST
from tests.conftest import ORIGIN, auth

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
KEYS = st.sampled_from(
    [
        "type", "event", "userId", "anonymousId", "previousId", "groupId", "messageId",
        "timestamp", "sentAt", "context", "page", "traits", "properties", "name", "batch",
        "writeKey", "distinct_id", "uuid", "$set", "$set_once", "alias", "$device_id",
        "$anon_distinct_id", "$group_key", "api_key", "library", "screen", "url", "ip",
        "userAgent", "$current_url", "$lib", "sent_at", "token",
    ]
)  # fmt: skip
VALUES = st.recursive(
    st.one_of(SCALARS, st.sampled_from(["track", "identify", "page", "alias", "$identify"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(KEYS, st.text()), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(
    body=VALUES, path=st.sampled_from(sorted(ROUTES)), source=st.sampled_from(["server", "browser"])
)
def test_any_body_is_items_or_a_field_error(body: Any, path: str, source: Any) -> None:
    route = ROUTES[path]
    try:
        route.dialect.write_key(body)
        route.dialect.speaks(body)
        payload = route.dialect.payload(body, source, route.message_type, 100)
    except CollectorError as exc:
        assert exc.errors and all(e["field"] for e in exc.errors)
        assert route.dialect.error(exc)["code"]
        return
    for item in payload.items:
        assert isinstance(item, Item) or (item and all(e["field"] for e in item))


def test_every_dialect_path_is_routed_to_the_endpoint() -> None:
    assert set(ROUTES) <= _INGEST


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("path", sorted(ROUTES))
def test_a_send_time_json_cannot_hold_is_a_field_error(value: float, path: str) -> None:
    # inf and nan are Python's, not JSON's (orjson refuses them), yet a dialect handed
    # one answers with the field, not an OverflowError.
    route = ROUTES[path]
    for key in ("sent_at", "sentAt"):
        try:
            route.dialect.payload({key: value}, "server", route.message_type, 100)
        except CollectorError as exc:
            assert exc.errors and all(e["field"] for e in exc.errors)
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/event/", {"event": "a", "user": "u"}),
        ("/v1/events/", {"events": [{"event": "a", "user": "u"}]}),
        ("/v1/identify/", {"user": "u", "traits": {"a": 1}}),
        ("/events/", {"event": "a", "user": "u"}),
        ("/api/v1/events/", {"event": "a", "user": "u"}),
        ("/v1/track/", {"event_name": "a", "user_id": "u"}),
        ("/v1/track/", {"type": "track", "event": "a", "userId": "u"}),
        ("/v1/batch/", {"batch": [{"type": "track", "event": "a", "userId": "u"}]}),
        ("/v1/page/", {"userId": "u", "name": "Home"}),
        ("/v1/t/", {"event": "a", "userId": "u"}),
        ("/v1/b/", {"batch": [{"event": "a", "userId": "u"}]}),
    ],
)
def test_a_trailing_slash_is_the_same_path(
    client: TestClient, store: Store, app: App, key: str, path: str, body: dict[str, Any]
) -> None:
    # A redirect would lose the event: curl without -L and most server libraries do not
    # follow one with the body.
    r = client.post(path, json=body, headers=auth(key), follow_redirects=False)
    assert r.status_code in (200, 202), (r.status_code, r.text)
    assert r.json()["success"] is True
    if path != "/v1/identify/":
        assert len(list(store.export_events(app.app_id))) == 1
    preflight = client.options(
        path,
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        follow_redirects=False,
    )
    assert preflight.status_code == 204
