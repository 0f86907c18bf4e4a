"""The dashboard's accounts and pages, on both backends: admins in the store, sessions
that end with a logout, a deleted admin or a new password, CSRF on every POST, the
login rate limits, and pages answering from the query layer (the browser tests in
e2e/test_dashboard.py show the same pages in Chromium)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from starlette.testclient import TestClient

from collector.dashboard import accounts
from collector.dashboard.passwords import check_password, hash_password, verify_password
from collector.errors import FieldError
from collector.models import App
from collector.query.types import EventsQuery, PropertyTest, StatsQuery
from collector.settings import Settings
from collector.store import Store
from collector.web.app import create_app
from tests.conftest import ORIGIN, auth
from tests.server import ROOT

EMAIL = "owner@example.com"
PASSWORD = "a long enough password"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def login(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> int:
    form = client.get("/dashboard/login")
    answer = client.post(
        "/dashboard/login",
        data={"email": email, "password": password, "csrf": _csrf(form.text)},
        follow_redirects=False,
    )
    return answer.status_code


@pytest.fixture
def admin(store: Store) -> str:
    assert store.create_admin(EMAIL, hash_password(PASSWORD))
    return EMAIL


@pytest.fixture
def dash(client: TestClient, admin: str, app: App, key: str) -> Iterator[TestClient]:
    """A client logged in, with an app holding a few events."""
    events = [
        {"event": "page_viewed", "anonymous_id": "a1", "properties": {"path": "/"}},
        {"event": "page_viewed", "anonymous_id": "a1", "properties": {"path": "/pricing"}},
        {"event": "signup", "user": {"id": "u1", "traits": {"email": "u1@example.com"}}},
        {
            "event": "page_viewed",
            "anonymous_id": "bot",
            "ua": "python-requests/2.32",
            "properties": {"path": "/"},
        },
    ]
    assert client.post("/v1/events", json={"events": events}, headers=auth(key)).is_success
    assert login(client) == 303
    yield client


# Passwords --------------------------------------------------------------------------------


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "!", first)
    assert not verify_password(PASSWORD, None)  # an unknown account
    assert not verify_password(PASSWORD, "md5$garbage")
    assert check_password("short") == "must be at least 8 characters"
    assert check_password(PASSWORD) is None


# The store --------------------------------------------------------------------------------


def test_admins_in_the_store(store: Store) -> None:
    assert store.create_admin(EMAIL, "h1")
    assert not store.create_admin(EMAIL, "h2")  # one admin per email
    found = store.get_admin(EMAIL)
    assert found is not None and found["password_hash"] == "h1"
    store.create_session("t1", EMAIL, 1_000, 10_000)
    store.create_session("t2", EMAIL, 1_000, 2_000)
    assert store.session_admin("t1", 5_000) == EMAIL
    assert store.session_admin("t2", 5_000) is None  # expired
    assert store.session_admin("nope", 5_000) is None
    assert store.list_admins()[0]["email"] == EMAIL
    # A new password ends every session of the admin.
    assert store.set_admin_password(EMAIL, "h3")
    assert store.session_admin("t1", 5_000) is None
    store.create_session("t3", EMAIL, 1_000, 10_000)
    store.delete_session("t3")
    assert store.session_admin("t3", 5_000) is None
    store.create_session("t4", EMAIL, 1_000, 10_000)
    assert store.delete_admin(EMAIL)
    assert store.session_admin("t4", 5_000) is None
    assert store.get_admin(EMAIL) is None
    assert not store.delete_admin(EMAIL)
    assert not store.set_admin_password(EMAIL, "h4")


def test_saved_segments_per_app(store: Store, app: App) -> None:
    other = store.create_app("Other", [], {})
    rules = {"match": "all", "conditions": [{"has_done": {"event": "signup"}}]}
    seg = store.save_segment(app.app_id, "Signed up", rules)
    store.save_segment(other.app_id, "Elsewhere", rules)
    assert [(s["segment_id"], s["name"], s["rules"]) for s in store.list_segments(app.app_id)] == [
        (seg, "Signed up", rules)
    ]
    assert not store.delete_segment(other.app_id, seg)  # not that app's
    assert store.delete_segment(app.app_id, seg)
    assert store.list_segments(app.app_id) == []


def test_events_page_filters_by_property(
    store: Store, app: App, client: TestClient, key: str
) -> None:
    events = [
        {"event": "purchase", "user": "u1", "properties": {"plan": "pro", "revenue": 49}},
        {"event": "purchase", "user": "u2", "properties": {"plan": "team", "revenue": 199}},
        {"event": "purchase", "user": "u3", "properties": {"plan": "pro", "revenue": "49"}},
    ]
    assert client.post("/v1/events", json={"events": events}, headers=auth(key)).is_success
    page = store.events_page(app.app_id, EventsQuery(where=(PropertyTest("revenue", "gt", 40),)))
    assert sorted(e["user_id"] for e in page.events) == ["u1", "u2"]  # "49" is a string
    page = store.events_page(
        app.app_id,
        EventsQuery(where=(PropertyTest("plan", "eq", "pro"), PropertyTest("revenue", "eq", 49))),
    )
    assert [e["user_id"] for e in page.events] == ["u1"]


# Logging in -------------------------------------------------------------------------------


def test_pages_redirect_to_the_login(client: TestClient, app: App) -> None:
    for path in ("/dashboard/", f"/dashboard/apps/{app.app_id}/events", "/dashboard/anything"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/dashboard/login")
    assert client.get("/dashboard/login").status_code == 200


def test_login_wrong_password_and_unknown_account(client: TestClient, admin: str) -> None:
    assert login(client, password="wrong password") == 401
    assert login(client, email="nobody@example.com") == 401
    form = client.get("/dashboard/login")
    answer = client.post(
        "/dashboard/login", data={"email": EMAIL, "password": "wrong", "csrf": _csrf(form.text)}
    )
    assert "Wrong email or password." in answer.text
    assert "telltale_session" not in client.cookies


def test_forms_over_their_cap_are_refused_before_they_are_read(client: TestClient) -> None:
    # The login form is read before anyone is known: a body past 16 KB is refused
    # whether Content-Length announces it or a chunked body runs past it.
    form = client.get("/dashboard/login")
    big = {"email": EMAIL, "password": "x" * 20_000, "csrf": _csrf(form.text)}
    answer = client.post("/dashboard/login", data=big)
    assert answer.status_code == 413
    assert "This form is over 16 KB." in answer.text

    def chunks() -> Iterator[bytes]:
        yield b"email=a%40b.example&password="
        for _ in range(40):
            yield b"x" * 1000

    answer = client.post(
        "/dashboard/login",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413


def test_a_logged_in_form_has_a_cap_too(dash: TestClient, app: App) -> None:
    page_ = dash.get(f"/dashboard/apps/{app.app_id}/settings")
    answer = dash.post(
        f"/dashboard/apps/{app.app_id}/settings",
        data={"csrf": _csrf(page_.text), "name": "x" * 300_000},
    )
    assert answer.status_code == 413
    assert "This form is over 256 KB." in answer.text


def test_nul_characters_are_refused_naming_the_field(
    client: TestClient, admin: str, app: App
) -> None:
    # PostgreSQL's text cannot hold NUL: a login or a page naming one is a 400, never an
    # error in the database (on SQLite too, so both backends answer the same).
    form = client.get("/dashboard/login")
    answer = client.post(
        "/dashboard/login",
        data={"email": "a\x00b@example.com", "password": "whatever1", "csrf": _csrf(form.text)},
    )
    assert answer.status_code == 400
    assert "email: must not contain NUL characters." in answer.text
    assert accounts.normalise_email("a\x00b@example.com") is None
    assert login(client) == 303
    base = f"/dashboard/apps/{app.app_id}"
    for path, field in (
        (base + "/events?person=%00", "person"),
        (base + "/people?q=a%00", "q"),
        (base + "/people/%00", "person"),
    ):
        answer = client.get(path)
        assert answer.status_code == 400, (path, answer.status_code)
        assert f"{field}: must not contain NUL characters." in answer.text, path


def test_the_session_cookie(client: TestClient, admin: str) -> None:
    form = client.get("/dashboard/login")
    answer = client.post(
        "/dashboard/login",
        data={"email": " Owner@Example.com ", "password": PASSWORD, "csrf": _csrf(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("telltale_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie
    assert "Secure" not in cookie  # plain HTTP here


def _login_cookie(client: TestClient, headers: dict[str, str]) -> str:
    """The session cookie's Set-Cookie. The client talks plain HTTP to the collector (as
    a proxy does), so it keeps the cookies as if they were not Secure."""
    client.cookies.clear()
    form = client.get("/dashboard/login", headers=headers)
    client.cookies.set("telltale_login", form.cookies["telltale_login"], path="/dashboard/")
    answer = client.post(
        "/dashboard/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf": _csrf(form.text)},
        headers=headers,
        follow_redirects=False,
    )
    assert answer.status_code == 303
    client.cookies.set("telltale_session", answer.cookies["telltale_session"], path="/dashboard/")
    return next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("telltale_session=")
    )


@pytest.mark.parametrize("peer", ["10.1.2.3", "192.0.2.7"])
def test_x_forwarded_proto_is_believed_only_from_a_trusted_proxy(
    db: str, store: Store, admin: str, app: App, peer: str
) -> None:
    trusted = peer.startswith("10.")
    settings = Settings(db=db, trusted_proxies=("10.0.0.0/8",))
    with TestClient(create_app(settings), client=(peer, 40000)) as client:
        https = {"X-Forwarded-Proto": "https"}
        assert ("Secure" in _login_cookie(client, https)) is trusted
        # The settings page's script tag takes its scheme the same way.
        tag = client.get(f"/dashboard/apps/{app.app_id}/settings", headers=https).text
        scheme = "https" if trusted else "http"
        assert f'src="{scheme}://testserver/sdk.js"' in html.unescape(tag)
        # The nearest proxy's value is the last one: a client's own "https" before it
        # is not believed.
        forged = {"X-Forwarded-Proto": "https, http"}
        assert "Secure" not in _login_cookie(client, forged)


def test_a_tampered_cookie_opens_nothing(dash: TestClient, app: App) -> None:
    value = dash.cookies["telltale_session"]
    dash.cookies.set("telltale_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    answer = dash.get(f"/dashboard/apps/{app.app_id}/events", follow_redirects=False)
    assert answer.status_code == 303


@pytest.fixture
def no_refill(monkeypatch: pytest.MonkeyPatch) -> None:
    """Login buckets that do not refill during the test (one attempt every 15 s
    otherwise), so that their counts are exact however slow the machine."""
    monkeypatch.setattr(accounts, "IP_WINDOW_S", 1e9)
    monkeypatch.setattr(accounts, "ACCOUNT_WINDOW_S", 1e9)


@pytest.mark.usefixtures("no_refill")
def test_login_is_rate_limited_per_account(client: TestClient, admin: str) -> None:
    for _ in range(accounts.ACCOUNT_FAILURES):
        assert login(client, password="wrong password") == 401
    # Now even the right password waits: guessing has to stop.
    assert login(client) == 429


@pytest.mark.usefixtures("no_refill")
def test_guesses_from_one_network_do_not_lock_the_owner_out_elsewhere(
    db: str, store: Store, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts, "ACCOUNT_TOTAL_FAILURES", 8)
    monkeypatch.setattr(accounts, "ACCOUNT_TOTAL_WINDOW_S", 1e9)
    settings = Settings(db=db, trusted_proxies=("10.0.0.0/8",))
    with TestClient(create_app(settings), client=("10.0.0.1", 40000)) as client:

        def from_(address: str, password: str = PASSWORD) -> int:
            client.cookies.clear()
            headers = {"X-Forwarded-For": address}
            form = client.get("/dashboard/login", headers=headers)
            client.cookies.set("telltale_login", form.cookies["telltale_login"], path="/dashboard/")
            return client.post(
                "/dashboard/login",
                data={"email": EMAIL, "password": password, "csrf": _csrf(form.text)},
                headers=headers,
                follow_redirects=False,
            ).status_code

        # An attacker's addresses in one /24 share its count: after 5 guesses that
        # network waits, even with the right password...
        for i in range(accounts.ACCOUNT_FAILURES):
            assert from_(f"203.0.113.{i + 1}", "wrong password") == 401
        assert from_("203.0.113.200") == 429
        # ...and the owner, elsewhere, still gets in (an IPv6 /64 is one network too).
        assert from_("198.51.100.7") == 303
        assert from_("2001:db8::1", "wrong password") == 401
        assert from_("2001:db8::2") == 303
        # Guesses spread over enough networks meet the account's total (8 in this test;
        # 6 failures so far): then everyone waits, the owner too.
        assert from_("192.0.1.1", "wrong password") == 401
        assert from_("192.0.2.1", "wrong password") == 401
        assert from_("198.51.100.7") == 429


@pytest.mark.usefixtures("no_refill")
def test_a_login_clears_the_accounts_failures(client: TestClient, admin: str) -> None:
    for _ in range(accounts.ACCOUNT_FAILURES - 1):
        assert login(client, password="wrong password") == 401
    assert login(client) == 303
    client.cookies.clear()
    for _ in range(accounts.ACCOUNT_FAILURES):
        assert login(client, password="wrong password") == 401
    assert login(client) == 429


@pytest.mark.usefixtures("no_refill")
def test_login_is_rate_limited_per_ip(client: TestClient, admin: str) -> None:
    codes = [login(client, email=f"guess{i}@example.com") for i in range(accounts.IP_ATTEMPTS + 1)]
    assert codes[:-1] == [401] * accounts.IP_ATTEMPTS
    assert codes[-1] == 429


def test_the_login_form_needs_its_csrf_token(client: TestClient, admin: str) -> None:
    client.get("/dashboard/login")
    answer = client.post("/dashboard/login", data={"email": EMAIL, "password": PASSWORD})
    assert answer.status_code == 403
    assert "telltale_session" not in client.cookies


def test_logout_ends_the_session(dash: TestClient, app: App) -> None:
    page = f"/dashboard/apps/{app.app_id}/people"
    cookie = dash.cookies["telltale_session"]
    csrf = _csrf(dash.get(page).text)
    assert dash.post("/dashboard/logout", data={"csrf": csrf}).status_code == 200
    dash.cookies.set("telltale_session", cookie)  # a copy kept by an attacker
    assert dash.get(page, follow_redirects=False).status_code == 303


@pytest.mark.parametrize("change", ["delete", "passwd"])
def test_deleting_an_admin_or_a_new_password_ends_their_sessions(
    dash: TestClient, app: App, store: Store, change: str
) -> None:
    page = f"/dashboard/apps/{app.app_id}/events"
    assert dash.get(page, follow_redirects=False).status_code == 200
    if change == "delete":
        store.delete_admin(EMAIL)
    else:
        store.set_admin_password(EMAIL, hash_password("another password"))
    assert dash.get(page, follow_redirects=False).status_code == 303


def test_a_post_without_this_sessions_csrf_token_is_refused(
    dash: TestClient, app: App, store: Store
) -> None:
    before = store.list_keys(app.app_id)
    for data in ({}, {"csrf": "forged"}, {"csrf": accounts.Keys("another").csrf("x")}):
        answer = dash.post(f"/dashboard/apps/{app.app_id}/keys", data=data)
        assert answer.status_code == 403
    assert store.list_keys(app.app_id) == before


def test_the_query_api_still_needs_a_server_key(dash: TestClient) -> None:
    # A dashboard session opens the dashboard, not the API.
    assert dash.get("/v1/stats").status_code == 401


# Pages ------------------------------------------------------------------------------------


def test_every_page_answers(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    for path in (
        "/dashboard/",
        base + "/",
        base + "/?period=today",
        base + "/?period=custom&from=2026-01-01&to=2026-01-31",
        base + "/live",
        base + "/events?event=page_viewed&prop=path&op=eq&value=/pricing",
        base + "/people",
        base + "/people?q=u1@example.com",
        base + "/people/u1",
        base + "/people/anon:a1",
        base + '/segments?rules={"match":"any","conditions":[{"not":{"has_done":{"event":"x"}}}]}',
        base + "/funnels?step=page_viewed&step=signup&breakdown=path",
        base + "/settings",
    ):
        answer = dash.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert "Content-Security-Policy" in answer.headers
        # style-src 'self' refuses style attributes: the browser would log each one.
        assert not re.search(r"<[^>]+\sstyle=", answer.text), path


def test_pages_name_their_own_icon(dash: TestClient, app: App) -> None:
    # Without a <link rel="icon">, a browser asks for /favicon.ico on every page: a 404.
    for path in ("/dashboard/login", f"/dashboard/apps/{app.app_id}/"):
        link = re.search(r'<link rel="icon" href="([^"]+)"', dash.get(path).text)
        assert link is not None and link.group(1).startswith("/dashboard/static/"), path
        icon = dash.get(link.group(1))
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"


def test_bad_input_is_a_page_naming_the_field(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    for path, field in (
        (base + "/events?period=forever", "period"),
        (base + "/events?period=custom&from=x&to=y", "from"),
        (base + "/events?prop=plan&op=like&value=x", "op"),
        (base + "/events?cursor=forged", "cursor"),
        (base + "/segments?rules=[1]", "rules"),
        (base + '/segments?rules={"match":"all","conditions":[{"count":{"event":"x"}}]}', "count"),
        (base + "/funnels?step=a", "steps"),
    ):
        answer = dash.get(path)
        assert answer.status_code in (200, 400), path
        assert field in answer.text, (path, answer.text[:400])
    assert dash.get(base + "/people/nobody").status_code == 404
    assert dash.get("/dashboard/apps/app_nope/events").status_code == 404


def test_pages_show_the_figures(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    overview = dash.get(base + "/").text
    assert 'data-metric="unique_visitors">2<' in overview  # a1 and u1; the bot left out
    assert 'data-metric="page_views">2<' in overview
    assert 'data-bots-filtered="1"' in overview and "http_library 1" in overview
    with_bots = dash.get(base + "/?bots=1").text
    assert 'data-metric="page_views">3<' in with_bots
    events = dash.get(base + "/events?event=page_viewed&prop=path&op=eq&value=/pricing").text
    assert events.count("<tr>") == 2  # the header and one event
    people = dash.get(base + "/people").text
    assert 'data-people-count="2"' in people
    # Every page with the bot toggle says what it left out, by reason.
    for path, scope in (("/people", "so far"), ("/segments?rules=", "so far"), ("/live", "today")):
        shown = dash.get(base + path).text
        assert 'data-bots-filtered="1"' in shown, path
        assert f"1 bot event {scope}: http_library 1" in shown, path
    assert 'data-bots-filtered="0"' in dash.get(base + "/people/u1").text
    bot = dash.get(base + "/people/anon:bot?bots=1").text
    assert "1 bot event of theirs: http_library 1" in bot
    person = dash.get(base + "/people/u1").text
    assert "u1@example.com" in person
    funnel = dash.get(base + "/funnels?step=page_viewed&step=signup").text
    assert re.findall(r"data-users>(\d+)<", funnel) == ["1", "0"]


def test_funnel_steps_take_property_filters(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}/funnels"
    # a1 viewed / and /pricing (the fixture's events share their timestamp).
    plain = dash.get(base + "?step=page_viewed&step=page_viewed").text
    assert re.findall(r"data-users>(\d+)<", plain) == ["1", "1"]
    url = base + "?step=page_viewed&step=page_viewed&w2.key=path&w2.op=eq&w2.value=/nowhere"
    filtered = dash.get(url).text
    assert re.findall(r"data-users>(\d+)<", filtered) == ["1", "0"]
    assert 'path eq "/nowhere"' in html.unescape(filtered)
    # The form shows the filter back, under its step, plus a blank row for another.
    assert 'name="w2.key" value="path"' in filtered
    assert [filtered.count(f'name="w{n}.key"') for n in (1, 2, 3)] == [1, 2, 1]
    # Several tests on a step; a blank step between is left out, its filters with it.
    two = (
        base + "?step=page_viewed&w1.key=path&w1.op=neq&w1.value=/pricing"
        "&w1.key=path&w1.op=exists&w1.value=true&step=&w2.key=x&step=page_viewed"
        "&w3.key=path&w3.op=eq&w3.value="
    )
    assert re.findall(r"data-users>(\d+)<", dash.get(two + "/pricing").text) == ["1", "1"]
    assert re.findall(r"data-users>(\d+)<", dash.get(two + "/nowhere").text) == ["1", "0"]
    first = base + "?step=page_viewed&w1.key=path&w1.op=eq&w1.value=/nowhere&step=page_viewed"
    assert re.findall(r"data-users>(\d+)<", dash.get(first).text) == ["0", "0"]
    # in and not_in take values split on commas, or a JSON array.
    for op, values, users in (
        ("in", "/nowhere, /pricing", ["1", "1"]),
        ("in", '["/nowhere"]', ["1", "0"]),
        ("not_in", "/,/pricing", ["1", "0"]),
    ):
        answer = dash.get(
            base + f"?step=page_viewed&step=page_viewed&w2.key=path&w2.op={op}&w2.value={values}"
        )
        assert re.findall(r"data-users>(\d+)<", answer.text) == users, (op, values)
    events = dash.get(
        f"/dashboard/apps/{app.app_id}/events?event=page_viewed&prop=path&op=in&value=/,/pricing"
    ).text
    assert events.count("<tr>") == 3  # the header and two events
    # A clear property drops its filter.
    cleared = dash.get(url.replace("w2.key=path", "w2.key=")).text
    assert re.findall(r"data-users>(\d+)<", cleared) == ["1", "1"]
    # Bad input names its field; nothing is computed.
    for query, field in (
        ("&w2.key=path&w2.op=like&w2.value=x", "steps[1].where.path"),
        ("&w2.key=path&w2.op=gt&w2.value=true", "steps[1].where.path.gt"),
        ('&w2.key=a"b&w2.op=eq&w2.value=x', "steps[1].where"),
    ):
        answer = dash.get(base + "?step=page_viewed&step=signup" + query)
        assert answer.status_code == 200 and field in html.unescape(answer.text), query
        assert "data-users" not in answer.text


def test_the_funnels_page_names_a_parameter_it_does_not_take(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}/funnels?step=page_viewed&step=signup"
    for query, field in (
        ("&window=-1", "window"),
        ("&window=abc", "window"),
        ("&within_days=-1", "within_days"),
        ("&within_days=abc", "within_days"),
        ("&within_days=nan", "within_days"),
        ("&period=forever", "period"),
        ("&w2.kee=path", "w2.kee"),
    ):
        answer = dash.get(base + query)
        assert answer.status_code == 200, query
        alert = re.search(r'role="alert"[^>]*>(.*?)</div>', answer.text, re.S)
        assert alert is not None and f"<code>{field}</code>" in alert.group(1), query
        assert "data-users" not in answer.text, query  # nothing computed
    # What the form sends is taken.
    sent = "&within_days=3&breakdown=&period=custom&from=2026-01-01&to=2026-01-02&bots=1"
    assert 'role="alert"' not in dash.get(base + sent + "&w1.key=&w1.op=eq&w1.value=").text


def test_the_bot_toggle_keeps_every_step_of_a_funnel(dash: TestClient, app: App) -> None:
    page = dash.get(f"/dashboard/apps/{app.app_id}/funnels?step=page_viewed&step=signup").text
    toggle = re.search(r'href="([^"]*bots=1[^"]*)"', page)
    assert toggle is not None
    assert html.unescape(toggle.group(1)).count("step=") == 2, toggle.group(1)


def test_people_search_finds_by_the_start_of_an_id_or_email(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}/people"

    def found(q: str, bots: str = "") -> list[str]:
        page = dash.get(base, params={"q": q, "bots": bots}).text
        return [unquote(p) for p in re.findall(r'/people/([^"?]+)', page)]

    assert found("u1") == ["u1"]  # exact
    assert found("u") == ["u1"]  # the start of a user id
    assert found("U1@EXAMPLE") == ["u1"]  # the start of an email, in any case
    assert found("a") == ["anon:a1"]  # the start of an anonymous id
    assert found("bo") == []  # a bot, left out...
    assert found("bo", "1") == ["anon:bot"]  # ...unless bots are included
    assert found("zz") == []
    assert found("1@example.com") == []  # the start, not anywhere


def test_segments_are_saved_counted_and_deleted(dash: TestClient, app: App, store: Store) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    csrf = _csrf(dash.get(base + "/segments").text)
    rules = '{"match":"all","conditions":[{"trait":{"key":"email","eq":"u1@example.com"}}]}'
    saved = dash.post(
        base + "/segments",
        data={"csrf": csrf, "name": "U1", "rules": rules},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = dash.get(saved.headers["location"]).text
    assert 'data-segment-count="1"' in page
    (seg,) = store.list_segments(app.app_id)
    # Saved again under its name, it is the same segment with the new rules.
    again = '{"match":"all","conditions":[{"trait":{"key":"email","eq":"u2@example.com"}}]}'
    resaved = dash.post(
        base + "/segments",
        data={"csrf": csrf, "name": "U1", "rules": again},
        follow_redirects=False,
    )
    assert resaved.headers["location"] == saved.headers["location"]
    (seg,) = store.list_segments(app.app_id)
    assert seg["rules"]["conditions"][0]["trait"]["eq"] == "u2@example.com"
    refused = dash.post(base + "/segments", data={"csrf": csrf, "name": "Bad", "rules": "{}"})
    assert refused.status_code == 400 and "conditions" in refused.text
    dash.post(base + f"/segments/{seg['segment_id']}/delete", data={"csrf": csrf})
    assert store.list_segments(app.app_id) == []


def test_settings_change_the_app_as_the_cli_does(dash: TestClient, app: App, store: Store) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    csrf = _csrf(dash.get(base + "/settings").text)
    form = {
        "csrf": csrf,
        "name": "Shop 2",
        "origins": "https://a.example.com\nhttps://*.example.net",
        "bot_policy": "drop",
        "ip_mode": "none",
        "retention_days": "30",
    }
    assert dash.post(base + "/settings", data=form).status_code == 200
    changed = store.get_app(app.app_id)
    assert changed is not None and changed.name == "Shop 2"
    assert changed.origins == ["https://*.example.net", "https://a.example.com"]
    assert changed.setting("bot_policy") == "drop" and changed.setting("ip_mode") == "none"
    assert changed.setting("retention_days") == 30
    bad = dash.post(base + "/settings", data={**form, "origins": "not an origin"})
    assert bad.status_code == 400 and "origins" in bad.text
    dash.post(base + "/rules", data={"csrf": csrf, "event": "ping", "throttle": "10m"})
    rule = next(r for r in store.get_app(app.app_id).rules if r.event == "ping")  # type: ignore[union-attr]
    assert rule.throttle_ms == 600_000
    dash.post(base + f"/rules/{rule.id}/delete", data={"csrf": csrf})
    assert all(r.event != "ping" for r in store.get_app(app.app_id).rules)  # type: ignore[union-attr]


def test_a_new_key_is_shown_once(dash: TestClient, app: App, store: Store) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    csrf = _csrf(dash.get(base + "/settings").text)
    shown = dash.post(base + "/keys", data={"csrf": csrf})
    key = re.search(r"data-new-key>([^<]+)<", shown.text)
    assert key is not None
    assert dash.get("/v1/stats", headers=auth(key.group(1))).status_code == 200
    assert "data-new-key" not in dash.get(base + "/settings").text
    key_id = store.list_keys(app.app_id)[-1]["key_id"]
    dash.post(base + f"/keys/{key_id}/revoke", data={"csrf": csrf})
    assert store.list_keys(app.app_id)[-1]["revoked_at"] is not None


def test_the_settings_script_tag_is_the_one_the_readme_gives(dash: TestClient, app: App) -> None:
    readme = (ROOT / "README.md").read_text()
    documented = re.search(
        r'<script [^>]*src="https://stats\.example\.com/sdk\.js"[^>]*></script>', readme
    )
    assert documented is not None
    expected = (
        documented.group(0)
        .replace("https://stats.example.com", "http://testserver")
        .replace("app_…", app.app_id)
    )
    shown = re.search(
        r"data-script-tag>([^<]+)<", dash.get(f"/dashboard/apps/{app.app_id}/settings").text
    )
    assert shown is not None and html.unescape(shown.group(1)) == expected


# The CLI ----------------------------------------------------------------------------------


def _cli(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args, "--db", db],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_admins_cli(db: str, store: Store) -> None:
    made = _cli(db, "admins", "create", "Me@Example.com", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert "created admin me@example.com" in made.stdout
    again = _cli(db, "admins", "create", "me@example.com", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1 and "exists" in again.stderr
    short = _cli(db, "admins", "create", "x@example.com", "--password-stdin", stdin="short")
    assert short.returncode == 2 and "at least 8" in short.stderr
    assert (
        _cli(db, "admins", "create", "not-an-email", "--password-stdin", stdin=PASSWORD).returncode
        == 2
    )
    assert "me@example.com" in _cli(db, "admins", "list").stdout
    changed = _cli(
        db, "admins", "passwd", "me@example.com", "--password-stdin", stdin="new password!"
    )
    assert changed.returncode == 0
    found = store.get_admin("me@example.com")
    assert found is not None and verify_password("new password!", found["password_hash"])
    assert _cli(db, "admins", "delete", "me@example.com").returncode == 0
    assert _cli(db, "admins", "delete", "me@example.com").returncode == 1
    assert store.get_admin("me@example.com") is None


def test_bot_reasons_read_the_bot_events_alone(
    store: Store, app: App, client: TestClient, key: str
) -> None:
    events = [
        {
            "event": "page_viewed",
            "user": "human",
            "ua": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        },
        {"event": "page_viewed", "user": "c", "ua": "Mozilla/5.0 (compatible; Googlebot/2.1)"},
        {"event": "signup", "user": "r", "ua": "python-requests/2.32"},
    ]
    assert client.post("/v1/events", json={"events": events}, headers=auth(key)).is_success
    everything = store.event_stats(app.app_id, StatsQuery())
    assert store.bot_reasons(app.app_id, StatsQuery()) == everything["bot_reasons"]
    assert store.bot_reasons(app.app_id, StatsQuery()) == {"crawler": 1, "http_library": 1}
    assert store.bot_reasons(app.app_id, StatsQuery(events=("signup",))) == {"http_library": 1}
    assert store.bot_reasons(app.app_id, StatsQuery(until=1)) == {}


def test_the_overview_filters_by_any_row(dash: TestClient, app: App, key: str) -> None:
    """Known traffic (tests/test_api_analytics.py) on the page: the figures, a row that
    filters the whole page, the filter shown with its remove link, the URL as state."""
    from tests.test_api_analytics import T0, traffic

    events = traffic()
    for e in events:  # the shop's pages, on this test app's origin
        e["context"]["url"] = e["context"]["url"].replace("https://shop.example", ORIGIN)
        if e["context"].get("referrer", "").startswith("https://shop.example"):
            e["context"]["referrer"] = ORIGIN + "/"
    assert dash.post("/v1/events", json={"events": events}, headers=auth(key)).is_success
    day = datetime.fromtimestamp(T0 / 1000, tz=UTC).date().isoformat()
    base = f"/dashboard/apps/{app.app_id}/?period=custom&from={day}&to={day}"
    page = dash.get(base).text
    assert 'data-metric="unique_visitors">3<' in page
    assert 'data-metric="visits">4<' in page
    assert 'data-metric="bounce_rate">50%<' in page
    assert 'data-metric="visit_duration">2m 10s<' in page
    for table in ("page", "entry_page", "exit_page", "referrer", "channel", "utm_campaign",
                  "country", "browser", "os", "device", "event"):  # fmt: skip
        assert f'data-table="{table}"' in page
    paid = re.search(r'href="([^"]*)" data-filter="channel">Paid<', page)
    assert paid is not None
    link = html.unescape(paid.group(1))
    assert "channel=Paid" in link and "period=custom" in link
    filtered = dash.get(f"/dashboard/apps/{app.app_id}/{link}").text
    assert 'data-metric="unique_visitors">1<' in filtered
    assert 'data-metric="page_views">2<' in filtered
    assert 'data-remove-filter="channel"' in filtered
    direct = dash.get(base + "&referrer=(none)").text
    assert 'data-metric="visits">3<' in direct


def _table_labels(page: str, by: str) -> list[str]:
    table = re.search(rf'data-table="{by}">.*?</table>', page, re.S)
    assert table is not None, by
    return [html.unescape(t) for t in re.findall(r'data-filter="[^"]+">([^<]*)<', table.group(0))]


def test_the_custom_events_card_shows_ten_custom_events(
    dash: TestClient, app: App, key: str
) -> None:
    # page_viewed has the most visitors, so it is in the store's top ten of event names.
    views = [
        {"event": "page_viewed", "anonymous_id": f"v{n}", "context": {"url": ORIGIN + "/"}}
        for n in range(5)
    ]
    custom = [{"event": f"custom_{n:02d}", "anonymous_id": "v0"} for n in range(11)]
    sent = dash.post("/v1/events", json={"events": views + custom}, headers=auth(key))
    assert sent.is_success
    shown = _table_labels(dash.get(f"/dashboard/apps/{app.app_id}/").text, "event")
    assert len(shown) == 10 and "page_viewed" not in shown


def test_a_visit_without_a_channel_is_none_not_direct(dash: TestClient, app: App, key: str) -> None:
    # The fixture's visits have no page (no URL), so no channel and no referrer; this
    # one has a page and no referrer: Direct.
    direct = {"event": "page_viewed", "anonymous_id": "d1", "context": {"url": ORIGIN + "/"}}
    assert dash.post("/v1/events", json={"events": [direct]}, headers=auth(key)).is_success
    page = dash.get(f"/dashboard/apps/{app.app_id}/").text
    assert sorted(_table_labels(page, "channel")) == ["(none)", "Direct"]
    assert _table_labels(page, "referrer") == ["Direct / none"]
    filtered = dash.get(f"/dashboard/apps/{app.app_id}/?channel=(none)").text
    assert re.search(r'class="badge">channel: \(none\)<', filtered)


def test_a_custom_range_is_at_most_as_many_days_as_a_series_has_points(
    dash: TestClient, app: App
) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    # 355,000 days of daily points took seconds and 126 MB; the page names the field.
    for page in ("/", "/events", "/funnels"):
        far = dash.get(base + page + "?period=custom&from=2026-01-01&to=2999-12-31")
        assert far.status_code in (200, 400) and len(far.content) < 100_000, page
        assert re.search(
            r"<code>to</code> a custom range is at most 2,000 days: from 2026-01-01, "
            r"to 2031-06-23 at the latest|to: a custom range is at most 2,000 days",
            far.text,
        ), page
    assert dash.get(base + "/?period=custom&from=2026-01-01&to=2031-06-23").status_code == 200
    for dates, field in (
        ("from=0001-01-01&to=0001-01-02", "from"),
        ("from=9999-12-01&to=9999-12-31", "to"),
    ):
        answer = dash.get(base + "/?period=custom&" + dates)
        assert answer.status_code == 400 and f"{field}: must be" in answer.text, dates
    assert dash.get(base + "/?period=custom&from=9999-12-01&to=9999-12-30").status_code == 200


def test_periods() -> None:
    from starlette.datastructures import QueryParams

    from collector.dashboard.params import parse_period, scalar

    now = 1_796_000_000_000  # 2026-11-30T00:53:20Z
    errors: list[FieldError] = []
    week = parse_period(QueryParams("period=7d"), errors, now)
    assert (week.start, week.end, week.until) == ("2026-11-24", "2026-11-30", None)
    today = parse_period(QueryParams("period=today"), errors, now)
    assert today.start == today.end == "2026-11-30" and today.since == 1_795_996_800_000
    custom = parse_period(QueryParams("period=custom&from=2026-11-01&to=2026-11-02"), errors, now)
    assert custom.until is not None and custom.until - custom.since == 2 * 86_400_000
    before = custom.previous()
    assert (before.start, before.end, before.until) == ("2026-10-30", "2026-10-31", custom.since)
    assert errors == []
    longest = parse_period(QueryParams("period=custom&from=2026-01-01&to=2031-06-23"), errors, now)
    assert longest.until is not None and longest.until - longest.since == 2_000 * 86_400_000
    assert errors == []
    parse_period(QueryParams("period=custom&from=2026-11-05&to=2026-11-01"), errors, now)
    parse_period(QueryParams("period=ever"), errors, now)
    parse_period(QueryParams("period=custom&from=2026-01-01&to=2031-06-24"), errors, now)
    assert [e["field"] for e in errors] == ["to", "period", "to"]
    assert [scalar(t) for t in ("42", '"42"', "true", "pro", "null", "[1]")] == [
        42,
        "42",
        True,
        "pro",
        None,
        "[1]",
    ]


def _field(page: str, field_id: str) -> str:
    """The value a form field of a page holds (an input's value, a textarea's text, a
    select's selected option)."""
    tag = re.search(rf'<(input|textarea|select)\b[^>]*\bid="{field_id}"[^>]*>', page)
    assert tag is not None, field_id
    if tag.group(1) == "textarea":
        end = page.index("</textarea>", tag.end())
        return html.unescape(page[tag.end() : end])
    if tag.group(1) == "select":
        end = page.index("</select>", tag.end())
        chosen = re.search(r'<option value="([^"]*)" selected', page[tag.end() : end])
        return html.unescape(chosen.group(1)) if chosen else ""
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else ""


def test_a_refused_settings_form_keeps_what_was_typed(
    dash: TestClient, app: App, store: Store
) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    csrf = _csrf(dash.get(base + "/settings").text)
    form = {
        "csrf": csrf,
        "name": "Renamed",
        "origins": "https://ok.example.com\nnot an origin",
        "bot_policy": "drop",
        "ip_mode": "none",
        "retention_days": "abc",
    }
    bad = dash.post(base + "/settings", data=form)
    assert bad.status_code == 400
    assert "<code>origins</code>" in bad.text and "<code>retention_days</code>" in bad.text
    assert _field(bad.text, "name") == "Renamed"
    assert _field(bad.text, "origins") == "https://ok.example.com\nnot an origin"
    assert _field(bad.text, "bot_policy") == "drop" and _field(bad.text, "ip_mode") == "none"
    assert _field(bad.text, "retention_days") == "abc"
    assert re.search(r'id="retention_days"[^>]*aria-invalid="true"', bad.text)
    assert not re.search(r'id="name"[^>]*aria-invalid', bad.text)
    unchanged = store.get_app(app.app_id)
    assert unchanged is not None and unchanged.name == app.name  # nothing saved


def test_a_refused_rule_keeps_its_fields_and_a_zero_throttle_is_refused(
    dash: TestClient, app: App, store: Store
) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    csrf = _csrf(dash.get(base + "/settings").text)
    for throttle in ("0s", "0", "0ms", "soon"):
        bad = dash.post(base + "/rules", data={"csrf": csrf, "event": "ping", "throttle": throttle})
        assert bad.status_code == 400 and "<code>throttle</code>" in bad.text, throttle
        assert _field(bad.text, "rule-event") == "ping"
        assert _field(bad.text, "rule-throttle") == throttle
    both = dash.post(
        base + "/rules",
        data={"csrf": csrf, "event": "order", "dedupe_key": "orderId", "throttle": "1m"},
    )
    assert both.status_code == 400
    assert _field(both.text, "rule-dedupe") == "orderId"
    rules = store.get_app(app.app_id).rules  # type: ignore[union-attr]
    assert not [r for r in rules if r.event in ("ping", "order")]
    # A window under a second is kept to the millisecond and shown so.
    for throttle in ("500ms", "90s", "20m", "2h"):
        dash.post(base + "/rules", data={"csrf": csrf, "event": "ping", "throttle": throttle})
    page = dash.get(base + "/settings").text
    shown = re.findall(r"<td>ping</td><td>at most one per person every ([^<]+)</td>", page)
    assert shown == ["500 ms", "90 s", "20 min", "2 h"]


def test_an_anonymous_id_of_a_linked_visitor_leads_to_the_user(
    dash: TestClient, app: App, key: str
) -> None:
    """Events sent before a login name the visitor's anonymous id; the person page, the
    events filter and the search follow it to the user it became, as the Query API does."""
    events = [
        {"event": "page_viewed", "anonymous_id": "anon_03", "properties": {"path": "/"}},
        {"type": "identify", "anonymous_id": "anon_03", "user": "u_03"},
        {"event": "purchase", "anonymous_id": "anon_03", "user": "u_03"},
    ]
    assert dash.post("/v1/events", json={"events": events}, headers=auth(key)).is_success
    base = f"/dashboard/apps/{app.app_id}"
    moved = dash.get(base + "/people/anon:anon_03?bots=1", follow_redirects=False)
    assert moved.status_code in (302, 303, 307)
    assert moved.headers["location"] == base + "/people/u_03?bots=1"
    assert "<h1>u_03" in dash.get(base + "/people/anon:anon_03").text
    for person in ("anon:anon_03", "  anon:anon_03 ", "u_03"):
        page = dash.get(base + "/events", params={"person": person}).text
        assert page.count("<tr>") - 1 == 2, person  # the page view and the purchase
    # Searched for in full or by its start, the anonymous id finds the user, listed once.
    for q in ("anon_03", "anon_0", "anon:anon_03", "u_03"):
        page = dash.get(base + "/people", params={"q": q}).text
        assert re.findall(r'/people/([^"?]+)', page) == ["u_03"], q


def test_a_people_search_past_a_page_says_it_shows_the_first(
    dash: TestClient, app: App, key: str
) -> None:
    base = f"/dashboard/apps/{app.app_id}/people"
    events = [{"event": "signup", "user": f"m_{i:03d}"} for i in range(51)]
    assert dash.post("/v1/events", json={"events": events}, headers=auth(key)).is_success
    capped = dash.get(base, params={"q": "m_"}).text
    assert len(re.findall(r"/people/m_", capped)) == 50
    assert "the first 50 are shown" in capped and "50 people found" not in capped
    exact = dash.get(base, params={"q": "m_0"}).text  # m_000 to m_050: 51 again
    assert "the first 50 are shown" in exact
    some = dash.get(base, params={"q": "m_04"}).text  # m_040 to m_049
    assert "10 people found" in some and "the first" not in some


def test_dates_with_another_period_are_named_as_ignored(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    dates = "from=2020-01-01&to=2020-01-31"
    for page in ("/", "/events", "/funnels"):
        answer = dash.get(f"{base}{page}?period=30d&{dates}")
        assert answer.status_code == 200
        assert "data-dates-ignored" in answer.text, page
        assert "Showing Last 30 days: the From and To dates apply" in answer.text
        custom = dash.get(f"{base}{page}?period=custom&{dates}").text
        assert "data-dates-ignored" not in custom
        assert "data-dates-ignored" not in dash.get(f"{base}{page}?period=7d").text
    # The form sends the period's own days with it: nothing was ignored.
    plain = dash.get(base + "/").text
    start = re.search(r'id="from" type="date" name="from" value="([^"]+)"', plain)
    end = re.search(r'id="to" type="date" name="to" value="([^"]+)"', plain)
    assert start and end
    again = dash.get(f"{base}/?period=30d&from={start.group(1)}&to={end.group(1)}").text
    assert "data-dates-ignored" not in again


# Accessibility of the markup (the behaviour in Chromium: e2e/test_dashboard.py) --------


def _tag(page: str, field_id: str) -> str:
    tag = re.search(rf'<(?:input|textarea|select)\b[^>]*\bid="{field_id}"[^>]*>', page)
    assert tag is not None, field_id
    return tag.group(0)


def _described(page: str, field_id: str) -> str:
    """The message a field is described by, which must be on the page; the field must
    be marked invalid."""
    tag = _tag(page, field_id)
    assert 'aria-invalid="true"' in tag, tag
    ref = re.search(r'aria-describedby="([^"]+)"', tag)
    assert ref is not None, tag
    message = re.search(rf'id="{ref.group(1)}"[^>]*>(.*?)</', page, re.S)
    assert message is not None, ref.group(1)
    return html.unescape(message.group(1))


def test_a_login_error_is_read_with_the_fields(client: TestClient, admin: str) -> None:
    form = client.get("/dashboard/login").text
    assert "<title>Log in" in form and "aria-invalid" not in form
    wrong = client.post(
        "/dashboard/login", data={"email": EMAIL, "password": "nope", "csrf": _csrf(form)}
    ).text
    assert "<title>Error: Log in" in wrong
    assert _described(wrong, "email") == "Wrong email or password."
    assert _described(wrong, "password") == "Wrong email or password."


def test_settings_errors_stand_beside_their_fields(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    csrf = _csrf(dash.get(base + "/settings").text)
    form = {"csrf": csrf, "name": "", "origins": "", "bot_policy": "flag", "ip_mode": "full"}
    bad = dash.post(base + "/settings", data={**form, "retention_days": "abc"}).text
    assert "<title>Error: " in bad
    assert _described(bad, "name") == "must be 1 to 200 characters"
    assert _described(bad, "retention_days") == "must be a whole number of days (0: keep all)"
    assert "aria-invalid" not in _tag(bad, "ip_mode")
    # The summary can take focus (dashboard.js gives it) and links to each field.
    summary = re.search(r'<div class="error" role="alert" tabindex="-1"[^>]*>(.*?)</div>', bad)
    assert summary is not None
    assert re.findall(r'href="#([\w-]+)"', summary.group(1)) == ["name", "retention_days"]
    rule = dash.post(base + "/rules", data={"csrf": csrf, "event": "ping", "throttle": "soon"})
    assert _described(rule.text, "rule-throttle").startswith("not a duration: 'soon'")


def test_a_refused_segment_is_the_page_again_with_what_was_typed(
    dash: TestClient, app: App, store: Store
) -> None:
    base = f"/dashboard/apps/{app.app_id}"
    csrf = _csrf(dash.get(base + "/segments").text)
    rules = '{"match":"all","conditions":[{"has_done":{"event":""}}]}'
    bad = dash.post(base + "/segments", data={"csrf": csrf, "name": "Buyers", "rules": rules})
    assert bad.status_code == 400
    assert "<h1>" in bad.text and "<small>Segments</small>" in bad.text  # not error.html
    assert _field(bad.text, "segment-name") == "Buyers"
    assert _field(bad.text, "rules") == rules  # the builder draws it again
    assert "must be an event name" in _described(bad.text, "rules")
    # The summary is in the builder's card, beside the form, before the results.
    card = bad.text.index("<h2>Builder</h2>")
    assert card < bad.text.index('role="alert"') < bad.text.index('id="segment-form"')
    unnamed = dash.post(base + "/segments", data={"csrf": csrf, "name": " ", "rules": rules}).text
    assert _described(unnamed, "segment-name") == "must be 1 to 100 characters"
    assert store.list_segments(app.app_id) == []
    # A GET with bad rules marks the rules too.
    page = dash.get(base + "/segments?rules=[1]").text
    assert _described(page, "rules") == "must be a JSON object of segment rules"


def test_funnel_errors_stand_beside_the_window_and_the_step(dash: TestClient, app: App) -> None:
    base = f"/dashboard/apps/{app.app_id}/funnels"
    page = dash.get(base + "?step=page_viewed&step=signup&within_days=-1").text
    assert "<title>Error: " in page
    assert "more than 0" in _described(page, "within")
    assert "aria-invalid" not in _tag(page, "step-1")
    long = "x" * 300
    page = dash.get(f"{base}?step=page_viewed&step={long}").text
    assert "must be an event name" in _described(page, "step-2")
    assert "aria-invalid" not in _tag(page, "within")


def test_the_app_picker_moves_only_when_asked(dash: TestClient, app: App) -> None:
    page = dash.get(f"/dashboard/apps/{app.app_id}/").text
    picker = re.search(r"<form class=\"picker\".*?</form>", page, re.S)
    assert picker is not None
    # Go stays visible: dashboard.js no longer hides it and navigates on change.
    assert '<button type="submit">Go</button>' in picker.group(0)
    assert "data-hide-with-js" not in page


def test_the_overview_says_better_or_worse_in_words(dash: TestClient, app: App, key: str) -> None:
    from tests.test_api_analytics import T0, page, traffic

    # Three visitors on the day, one (a bounce) the day before.
    events = [*traffic(), page(T0 - 12 * 3600_000, "/", anon="earlier")]
    assert dash.post("/v1/events", json={"events": events}, headers=auth(key)).is_success
    day = datetime.fromtimestamp(T0 / 1000, tz=UTC).date().isoformat()
    shown = dash.get(f"/dashboard/apps/{app.app_id}/?period=custom&from={day}&to={day}").text
    visitors = re.search(r'data-metric="unique_visitors">3</span>(.*?)</div>', shown, re.S)
    assert visitors is not None
    change = re.sub(r"<[^>]+>", " ", visitors.group(1))
    assert " ".join(change.split()) == "+200% better vs 1 before"
    assert 'data-change="better"' in visitors.group(1)
    # For the bounce rate lower is better: 2 bounces of 4 visits against 1 of 1.
    bounce = re.search(r'data-metric="bounce_rate">50%</span>(.*?)</div>', shown, re.S)
    assert bounce is not None and 'data-change="better"' in bounce.group(1)
    assert "vs 100% before" in bounce.group(1)
    metrics = shown.split('<section class="metrics"')[1].split("</section>")[0]
    assert "title=" not in metrics  # the previous figure is not in a tooltip alone
