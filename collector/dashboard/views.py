"""The dashboard's pages: plain async functions over the store and the query layer the
Query API uses (parsers, run_funnel, the store's reads); no query of their own."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from collector.dashboard import accounts
from collector.dashboard.params import (
    OPERATORS,
    PERIODS,
    FunnelStep,
    funnel_steps,
    include_bots,
    parse_period,
    property_filter,
    unknown_funnel_params,
)
from collector.dashboard.passwords import verify_password
from collector.dashboard.web import (
    MAX_LOGIN_BODY,
    STATIC,
    BadForm,
    Session,
    collector,
    current_session,
    error_page,
    is_https,
    keys,
    page,
    person_key,
    read_form,
    redirect,
    render,
)
from collector.errors import FieldError, InvalidRequest, field_error
from collector.ingest.auth import normalise_origin
from collector.ingest.enrich import client_ip
from collector.models import App
from collector.query.analytics import parse_filters
from collector.query.funnels import parse_funnel_query, run_funnel
from collector.query.segments import (
    MAX_INT,
    MAX_TIME_MS,
    decode_cursor,
    encode_cursor,
    fingerprint,
    next_cursor,
    parse_event_name,
    parse_segment_query,
)
from collector.query.types import DAY_MS, NONE_VALUE, AnalyticsQuery, EventsQuery, StatsQuery
from collector.store.core import parse_throttle_ms
from collector.timeutil import now_ms
from collector.web.api import CredentialGuard, event_stream
from collector.web.api import run_query as _run

PAGE_SIZE = 50
PAGE_VIEW = "page_viewed"


# Login and logout ------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Where to go after login: only a dashboard path of this site."""
    if value and value.startswith("/dashboard/") and not value.startswith("//"):
        return value
    return "/dashboard/"


async def login(request: Request) -> Response:
    k = await keys(request)
    nonce = request.cookies.get(accounts.LOGIN_COOKIE) or ""
    fresh = not (20 <= len(nonce) <= 100)
    if fresh:
        nonce = accounts.new_token()
    context: dict[str, Any] = {
        "next": _safe_next(request.query_params.get("next")),
        "email": "",
        "error": None,
    }
    status = 200
    form: FormData | None = None
    if request.method == "POST":
        try:
            form = await read_form(request, MAX_LOGIN_BODY)
        except BadForm as e:
            context["error"], status = e.message, e.status
    if form is not None:
        email = str(form.get("email", ""))[:254]
        password = str(form.get("password", ""))
        context.update(next=_safe_next(str(form.get("next", ""))), email=email)
        address = accounts.normalise_email(email) or email.strip().lower()
        peer = request.client.host if request.client else None
        ip = client_ip(peer, request.headers.get("x-forwarded-for"), collector(request).trusted)
        store = collector(request).store
        limiter = accounts.LoginLimiter(store)
        if fresh or not k.csrf_ok("login:" + nonce, form.get("csrf")):
            context["error"] = "This form has expired: please try again."
            status = 403
        elif not await _run(limiter.attempt, ip or "?", address):
            context["error"] = "Too many attempts: wait a few minutes and try again."
            status = 429
        else:
            admin = await _run(store.get_admin, address)
            stored = admin["password_hash"] if admin else None
            if await _run(verify_password, password, stored) and admin is not None:
                await _run(limiter.succeeded, ip or "?", address)
                token = accounts.new_token()
                now = now_ms()
                await _run(
                    store.create_session,
                    accounts.token_hash(token),
                    address,
                    now,
                    now + accounts.SESSION_TTL_S * 1000,
                )
                answer = redirect(context["next"])
                answer.set_cookie(
                    accounts.SESSION_COOKIE,
                    k.sign_session(token),
                    max_age=accounts.SESSION_TTL_S,
                    path="/dashboard/",
                    httponly=True,
                    samesite="lax",
                    secure=is_https(request),
                )
                answer.delete_cookie(accounts.LOGIN_COOKIE, path="/dashboard/")
                return answer
            context["error"] = "Wrong email or password."
            status = 401
    context["csrf"] = k.csrf("login:" + nonce)
    page_ = render(request, "login.html", context, status)
    page_.set_cookie(
        accounts.LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path="/dashboard/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )
    return page_


@page
async def logout(request: Request, session: Session) -> Response:
    await _run(collector(request).store.delete_session, accounts.token_hash(session.token))
    answer = redirect("/dashboard/login")
    answer.delete_cookie(accounts.SESSION_COOKIE, path="/dashboard/")
    return answer


# Apps ------------------------------------------------------------------------------------


@page
async def index(request: Request, session: Session) -> Response:
    """The app picker (`?app=` goes to that app); straight to the app's overview when
    there is one app."""
    chosen = request.query_params.get("app")
    if any(a.app_id == chosen for a in session.apps):
        return redirect(f"/dashboard/apps/{chosen}/")
    if len(session.apps) == 1:
        return redirect(f"/dashboard/apps/{session.apps[0].app_id}/")
    return render(request, "apps.html", {"app": None, "nav": "apps"}, session=session)


def _app(request: Request, session: Session) -> App | None:
    app_id = request.path_params["app_id"]
    return next((a for a in session.apps if a.app_id == app_id), None)


def _base(request: Request, session: Session, app: App, nav: str) -> dict[str, Any]:
    """What every app page's template is given: the app, the nav entry, the bot toggle."""
    bots = include_bots(request.query_params)
    # A repeated parameter (a funnel's `step`s and their filters) stays a list, which the
    # links built from `params` (query_string) repeat.
    params: dict[str, str | list[str]] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    return {"app": app, "nav": nav, "bots": bots, "params": params}


def _unknown_app(request: Request, session: Session) -> Response:
    return error_page(request, 404, "No such app (see the list of apps).", session)


def _bad(request: Request, session: Session, errors: list[FieldError]) -> Response:
    message = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return error_page(request, 400, message, session)


def _field_errors(
    errors: list[FieldError], field_id: Callable[[str], str | None]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A form's errors for its template: the summary's items, each with the id of the
    field it names (or None), and each field's messages by id. The field shows its
    message beside it and names it in aria-describedby, so a screen reader reads the
    problem with the field, not only in the summary at the top."""
    items: list[dict[str, Any]] = []
    by_id: dict[str, str] = {}
    for e in errors:
        target = field_id(e["field"])
        items.append({"field": e["field"], "message": e["message"], "target": target})
        if target is not None:
            # Beside a field that is the whole of what it names, the message alone;
            # a part of it (a condition of the rules) is named first.
            whole = re.fullmatch(r"\w+(\[\d+\])?", e["field"])
            text = e["message"] if whole else f"{e['field']} {e['message']}"
            by_id[target] = f"{by_id[target]}; {text}" if target in by_id else text
    return items, by_id


# Overview --------------------------------------------------------------------------------


# What the overview breaks its range down by, each a table with its title.
OVERVIEW_TABLES = (
    ("page", "Top pages"),
    ("entry_page", "Entry pages"),
    ("exit_page", "Exit pages"),
    ("referrer", "Sources"),
    ("channel", "Channels"),
    ("utm_campaign", "UTM campaigns"),
    ("country", "Countries"),
    ("browser", "Browsers"),
    ("os", "Operating systems"),
    ("device", "Devices"),
    ("event", "Custom events"),
)
OVERVIEW_ROWS = 10


def _rows_query(query: AnalyticsQuery, by: str) -> AnalyticsQuery:
    """The query of one table: the custom events card asks for one more row, since
    page_viewed, which it leaves out, can be among the top ten event names."""
    if by == "event":
        return dataclasses.replace(query, limit=OVERVIEW_ROWS + 1)
    return query


@page
async def overview(request: Request, session: Session) -> Response:
    """Visitors, visits, page views, views per visit, bounce rate and visit duration
    for the period against the one before; the series; the breakdowns. Each row filters
    the whole page by its value (a query parameter named after the dimension), so the
    URL holds the view."""
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    errors: list[FieldError] = []
    period = parse_period(request.query_params, errors)
    filters = parse_filters(request.query_params, errors, empty_is_unset=True)
    if errors:
        return _bad(request, session, errors)
    base = _base(request, session, app, "overview")
    until = period.until if period.until is not None else now_ms()
    query = AnalyticsQuery(
        since=period.since,
        until=until,
        interval="hour" if until - period.since <= DAY_MS else "day",
        filters=filters,
        include_bots=base["bots"],
        limit=OVERVIEW_ROWS,
    )
    store = collector(request).store
    # Side by side on the query threads: each is a read of its own.
    answer, reasons, *breakdowns = await asyncio.gather(
        _run(store.analytics_overview, app.app_id, query),
        _run(store.bot_reasons, app.app_id, StatsQuery(since=period.since, until=until)),
        *(
            _run(store.analytics_breakdown, app.app_id, _rows_query(query, by), by)
            for by, _ in OVERVIEW_TABLES
        ),
    )
    tables = []
    for (by, title), found in zip(OVERVIEW_TABLES, breakdowns, strict=True):
        rows = found["results"]
        if by == "event":
            rows = [r for r in rows if r["value"] != PAGE_VIEW][:OVERVIEW_ROWS]
        tables.append((by, title, rows))
    context = {
        **base,
        "period": period,
        "periods": PERIODS,
        "filters": filters,
        "figures": answer["results"],
        "previous": answer["previous"],
        "current_visitors": answer["current_visitors"],
        "series": answer["series"],
        "interval": query.interval,
        "tables": tables,
        "bot_reasons": reasons,
        "none_value": NONE_VALUE,
    }
    return render(request, "overview.html", context, session=session)


# Live ------------------------------------------------------------------------------------


@page
async def live(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    base = _base(request, session, app, "live")
    store = collector(request).store
    # Without script, the page shows the latest events and a reload link; with it, the
    # stream prepends what arrives after them.
    position = await _run(store.stream_position)
    recent = await _run(
        store.events_page,
        app.app_id,
        EventsQuery(include_bots=base["bots"], limit=PAGE_SIZE),
    )
    today = now_ms() // DAY_MS * DAY_MS
    reasons = await _run(store.bot_reasons, app.app_id, StatsQuery(since=today))
    context = {**base, "events": recent.events, "position": position, "bot_reasons": reasons}
    return render(request, "live.html", context, session=session)


@page
async def live_stream(request: Request, session: Session) -> Response:
    """The live stream of /v1/stream behind the session instead of a key; it ends when
    the session does (logout, the admin deleted or their password changed)."""
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    params = request.query_params
    store = collector(request).store
    resume = request.headers.get("last-event-id") or params.get("after") or ""
    after = int(resume) if resume.isdigit() and int(resume) <= MAX_INT else None
    if after is None:
        after = await _run(store.stream_position)
    token_hash = accounts.token_hash(session.token)

    async def still_valid() -> bool:
        return await _run(store.session_admin, token_hash, now_ms()) is not None

    return event_stream(
        store, app.app_id, after, (), include_bots(params), CredentialGuard(still_valid)
    )


# Events explorer -----------------------------------------------------------------------


@page
async def events(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    params = request.query_params
    errors: list[FieldError] = []
    period = parse_period(params, errors)
    names = tuple(parse_event_name(n, "event", errors) for n in params.getlist("event")[:20] if n)
    person = params.get("person", "").strip() or None
    key, op, value = params.get("prop", ""), params.get("op", "eq"), params.get("value", "")
    where = property_filter(key, op, value, errors)
    base = _base(request, session, app, "events")
    query = EventsQuery(
        user=person,
        events=names,
        since=period.since,
        until=period.until,
        include_bots=base["bots"],
        where=where,
        limit=PAGE_SIZE,
    )
    fp = fingerprint("dashboard-events", person, names, period.since, period.until, key, op, value)
    if params.get("cursor"):
        cursor = decode_cursor(params["cursor"], fp, errors)
        match cursor.get("at"):
            case [int(ts), int(rowid)] if 0 <= ts <= MAX_TIME_MS and 0 <= rowid <= MAX_INT:
                query = dataclasses.replace(query, after=(ts, rowid))
            case _ if cursor:
                errors.append(field_error("cursor", "is not a valid cursor"))
    if errors:
        return _bad(request, session, errors)
    store = collector(request).store
    found = await _run(store.events_page, app.app_id, query)
    bot_reasons = await _run(
        store.bot_reasons,
        app.app_id,
        StatsQuery(events=names, since=period.since, until=period.until),
    )
    more = encode_cursor({"at": list(found.last), "q": fp}) if found.last else None
    context = {
        **base,
        "period": period,
        "periods": PERIODS,
        "operators": OPERATORS,
        "found": found.events,
        "more": more,
        "names": names,
        "person": person or "",
        "prop": key,
        "op": op,
        "value": value,
        "event_names": sorted({e["event"] for e in found.events}),
        "bot_reasons": bot_reasons,
    }
    return render(request, "events.html", context, session=session)


# People ----------------------------------------------------------------------------------

EVERYONE: dict[str, Any] = {"match": "all", "conditions": []}


@page
async def people(request: Request, session: Session) -> Response:
    """Everyone the app has seen (a segment with no condition), or a search: a user id,
    an anonymous id, or an email trait, each matched exactly."""
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    base = _base(request, session, app, "people")
    store = collector(request).store
    q = request.query_params.get("q", "").strip()[:255]
    if q:
        # Exact first (a user id, an anonymous id), then everyone whose id or email
        # starts with what was typed.
        people = [q, "anon:" + q]
        # One more than a page is looked up, to tell "the first 50" from "all 50".
        people += await _run(store.find_people, app.app_id, q, base["bots"], PAGE_SIZE + 1)
        found: dict[str, dict[str, Any]] = {}
        for person in dict.fromkeys(people):
            if len(found) > PAGE_SIZE:
                break
            profile = await _run(store.user_profile, app.app_id, person, base["bots"])
            # A linked visitor's anonymous id answers for their user: listed once.
            if profile is not None:
                found.setdefault(person_key(profile), profile)
        context = {
            **base,
            "q": q,
            "users": list(found.values())[:PAGE_SIZE],
            "count": min(len(found), PAGE_SIZE),
            "capped": len(found) > PAGE_SIZE,
            "more": None,
            "bot_reasons": await _run(store.bot_reasons, app.app_id, StatsQuery()),
        }
        return render(request, "people.html", context, session=session)
    body = {**EVERYONE, "include_bots": base["bots"], "limit": PAGE_SIZE}
    if request.query_params.get("cursor"):
        body["cursor"] = request.query_params["cursor"]
    try:
        query = parse_segment_query(body, now_ms())
    except InvalidRequest as exc:
        return _bad(request, session, exc.errors)
    everyone = await _run(store.segment, app.app_id, query)
    context = {
        **base,
        "q": "",
        "capped": False,
        "users": everyone.users,
        "count": everyone.count,
        "more": next_cursor(query, everyone.last),
        "bot_reasons": await _run(store.bot_reasons, app.app_id, StatsQuery()),
    }
    return render(request, "people.html", context, session=session)


@page
async def person(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    base = _base(request, session, app, "people")
    who = request.path_params["person"]
    store = collector(request).store
    profile = await _run(store.user_profile, app.app_id, who, base["bots"])
    if profile is None:
        return error_page(request, 404, f"{who} is not a person of this app.", session)
    if person_key(profile) != who:
        # An id the person no longer goes by (a visitor's anonymous id before they logged
        # in, a user id aliased since): the store answered for who they became, whose
        # page is the one to bookmark.
        target = f"/dashboard/apps/{app.app_id}/people/{quote(person_key(profile), safe='')}"
        kept = request.url.query
        return redirect(target + (f"?{kept}" if kept else ""))
    errors: list[FieldError] = []
    query = EventsQuery(user=who, include_bots=base["bots"], limit=PAGE_SIZE)
    fp = fingerprint("dashboard-person", who, base["bots"])
    if request.query_params.get("cursor"):
        cursor = decode_cursor(request.query_params["cursor"], fp, errors)
        match cursor.get("at"):
            case [int(ts), int(rowid)] if 0 <= ts <= MAX_TIME_MS and 0 <= rowid <= MAX_INT:
                query = dataclasses.replace(query, after=(ts, rowid))
            case _ if cursor:
                errors.append(field_error("cursor", "is not a valid cursor"))
    if errors:
        return _bad(request, session, errors)
    timeline = await _run(store.events_page, app.app_id, query)
    more = encode_cursor({"at": list(timeline.last), "q": fp}) if timeline.last else None
    reasons = await _run(store.bot_reasons, app.app_id, StatsQuery(), who)
    context = {
        **base,
        "who": who,
        "profile": profile,
        "timeline": timeline.events,
        "more": more,
        "bot_reasons": reasons,
    }
    return render(request, "person.html", context, session=session)


# Segments --------------------------------------------------------------------------------


def _rules_text(value: str | None) -> tuple[str, Any]:
    text = (value or "").strip() or orjson.dumps(EVERYONE).decode()
    try:
        return text, orjson.loads(text)
    except orjson.JSONDecodeError:
        return text, None


@page
async def segments(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    base = _base(request, session, app, "segments")
    store = collector(request).store
    saved = await _run(store.list_segments, app.app_id)
    params = request.query_params
    chosen = next((s for s in saved if s["segment_id"] == params.get("segment")), None)
    if chosen is not None:
        text = orjson.dumps(chosen["rules"], option=orjson.OPT_INDENT_2).decode()
        rules: Any = chosen["rules"]
    else:
        text, rules = _rules_text(params.get("rules"))
    result = None
    errors: list[FieldError] = []
    if "rules" in params or chosen is not None:
        if not isinstance(rules, dict):
            errors.append(field_error("rules", "must be a JSON object of segment rules"))
        else:
            body = {
                **{k: v for k, v in rules.items() if k in ("match", "conditions")},
                "include_bots": base["bots"],
                "limit": PAGE_SIZE,
            }
            if params.get("cursor"):
                body["cursor"] = params["cursor"]
            try:
                query = parse_segment_query(body, now_ms())
            except InvalidRequest as exc:
                errors.extend(exc.errors)
            else:
                found = await _run(store.segment, app.app_id, query)
                result = {
                    "count": found.count,
                    "users": found.users,
                    "more": next_cursor(query, found.last),
                }
    bot_reasons = await _run(store.bot_reasons, app.app_id, StatsQuery()) if result else None
    return _segments_page(
        request,
        session,
        {**base, "saved": saved, "chosen": chosen, "result": result, "bot_reasons": bot_reasons},
        text,
        chosen["name"] if chosen else "",
        errors,
    )


def _segments_page(
    request: Request,
    session: Session,
    context: dict[str, Any],
    rules_text: str,
    name: str,
    errors: list[FieldError],
    status: int = 200,
) -> Response:
    """The segments page, its errors beside the field they name: the name, or else the
    rules (every other field an error names is a part of them)."""
    items, by_id = _field_errors(
        errors, lambda field: "segment-name" if field == "name" else "rules"
    )
    context = {
        **context,
        "rules_text": rules_text,
        "name": name,
        "errors": items,
        "field_errors": by_id,
    }
    return render(request, "segments.html", context, status, session=session)


@page
async def segment_save(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    form = await read_form(request)
    name = str(form.get("name", "")).strip()
    text, rules = _rules_text(str(form.get("rules", "")))
    errors: list[FieldError] = []
    if not 1 <= len(name) <= 100:
        errors.append(field_error("name", "must be 1 to 100 characters"))
    if not isinstance(rules, dict):
        errors.append(field_error("rules", "must be a JSON object of segment rules"))
    else:
        rules = {k: v for k, v in rules.items() if k in ("match", "conditions")}
        try:
            parse_segment_query(rules, now_ms())  # saved only if the Query API takes it
        except InvalidRequest as exc:
            errors.extend(exc.errors)
    if errors:
        # The page again, with what was typed (the builder draws the rules again) and
        # the errors beside the fields, as the settings page does.
        saved = await _run(collector(request).store.list_segments, app.app_id)
        context = {
            **_base(request, session, app, "segments"),
            "saved": saved,
            "chosen": None,
            "result": None,
            "bot_reasons": None,
        }
        return _segments_page(request, session, context, text, name, errors, 400)
    segment_id = await _run(collector(request).store.save_segment, app.app_id, name, rules)
    return redirect(f"/dashboard/apps/{app.app_id}/segments?segment={segment_id}")


@page
async def segment_delete(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    segment_id = request.path_params["segment_id"]
    await _run(collector(request).store.delete_segment, app.app_id, segment_id)
    return redirect(f"/dashboard/apps/{app.app_id}/segments")


# Funnels ---------------------------------------------------------------------------------


@page
async def funnels(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    base = _base(request, session, app, "funnels")
    params = request.query_params
    errors: list[FieldError] = []
    period = parse_period(params, errors)
    unknown_funnel_params(params, errors)
    steps = funnel_steps(params)
    step_errors: list[FieldError] = []
    within = params.get("within_days", "7")
    breakdown = params.get("breakdown", "").strip()
    result = None
    bot_reasons: dict[str, int] | None = None
    if steps:
        try:
            days: Any = float(within)
        except ValueError:
            days = within
        body: dict[str, Any] = {
            "steps": [step.body(f"steps[{i}]", step_errors) for i, step in enumerate(steps)],
            "within_days": days,
            "since": period.since,
            "include_bots": base["bots"],
        }
        if period.until is not None:
            body["until"] = period.until
        if breakdown:
            body["breakdown"] = breakdown
        try:
            query = parse_funnel_query(body)
        except InvalidRequest as exc:
            step_errors.extend(exc.errors)
        errors.extend(step_errors)
        if not errors:
            store = collector(request).store
            result = await _run(run_funnel, store, app.app_id, query)
            names = tuple(dict.fromkeys(step.event for step in steps))
            bot_reasons = await _run(
                store.bot_reasons,
                app.app_id,
                StatsQuery(events=names, since=period.since, until=period.until),
            )
    items, by_id = _field_errors(errors, _funnel_field_id)
    context = {
        **base,
        "period": period,
        "periods": PERIODS,
        "operators": OPERATORS,
        "steps": steps or [FunnelStep(""), FunnelStep("")],
        "within_days": within,
        "breakdown": breakdown,
        "result": result,
        "bot_reasons": bot_reasons,
        "errors": items,
        "field_errors": by_id,
    }
    return render(request, "funnels.html", context, session=session)


def _funnel_field_id(field: str) -> str | None:
    """The funnel form's field an error names: the window, or a step's event (steps[0]
    is the field step-1; the list as a whole, the first step)."""
    if field == "within_days":
        return "within"
    if field == "breakdown":
        return "breakdown"
    step = re.match(r"steps\[(\d+)\]", field)
    if step:
        return f"step-{int(step.group(1)) + 1}"
    return "step-1" if field == "steps" else None


# Settings --------------------------------------------------------------------------------

BOT_POLICIES = ("flag", "drop")
IP_MODES = ("full", "truncate", "none")
# The settings page's fields by the name an error gives them.
_SETTINGS_IDS = {
    **{f: f for f in ("name", "origins", "bot_policy", "ip_mode", "retention_days")},
    "event": "rule-event",
    "dedupe_key": "rule-dedupe",
    "throttle": "rule-throttle",
}


async def _settings_page(
    request: Request,
    session: Session,
    app: App,
    *,
    new_key: str | None = None,
    errors: list[FieldError] | None = None,
    status: int = 200,
    submitted: dict[str, str] | None = None,
) -> Response:
    """The settings page; after a refused form, its fields hold what was submitted (not
    the saved values), so a typo is corrected rather than typed again."""
    store = collector(request).store
    api_keys = await _run(store.list_keys, app.app_id)
    fresh = await _run(store.get_app, app.app_id) or app
    host = request.headers.get("host", request.url.netloc)
    scheme = "https" if is_https(request) else "http"
    items, by_id = _field_errors(errors or [], _SETTINGS_IDS.get)
    form = {
        "name": fresh.name,
        "origins": "\n".join(fresh.origins),
        "bot_policy": str(fresh.setting("bot_policy")),
        "ip_mode": str(fresh.setting("ip_mode")),
        "retention_days": str(fresh.setting("retention_days")),
        "event": "",
        "dedupe_key": "",
        "throttle": "",
        **(submitted or {}),
    }
    context = {
        **_base(request, session, fresh, "settings"),
        "form": form,
        "api_keys": api_keys,
        "new_key": new_key,
        "errors": items,
        "field_errors": by_id,
        "saved": request.query_params.get("saved"),
        "bot_policies": BOT_POLICIES,
        "ip_modes": IP_MODES,
        "script_tag": (
            f'<script async src="{scheme}://{host}/sdk.js" data-app-id="{fresh.app_id}"></script>'
        ),
        "discards": await _run(store.discard_counts, app.app_id),
    }
    return render(request, "settings.html", context, status, session=session)


@page
async def settings(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    new_key = (await keys(request)).flash(request.cookies.get(accounts.FLASH_COOKIE))
    answer = await _settings_page(request, session, app, new_key=new_key)
    if new_key is not None:
        answer.delete_cookie(accounts.FLASH_COOKIE, path=f"/dashboard/apps/{app.app_id}/settings")
    return answer


@page
async def settings_save(request: Request, session: Session) -> Response:
    """Name, origins, bot policy, IP mode and retention, as `collector apps update`."""
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    form = await read_form(request)
    errors: list[FieldError] = []
    name = str(form.get("name", "")).strip()
    if not 1 <= len(name) <= 200:
        errors.append(field_error("name", "must be 1 to 200 characters"))
    origins = []
    for line in str(form.get("origins", "")).splitlines():
        if line.strip():
            try:
                origins.append(normalise_origin(line.strip()))
            except ValueError as exc:
                errors.append(field_error("origins", str(exc)))
    changes: dict[str, Any] = {}
    if form.get("bot_policy") in BOT_POLICIES:
        changes["bot_policy"] = form.get("bot_policy")
    else:
        errors.append(field_error("bot_policy", f"must be one of {', '.join(BOT_POLICIES)}"))
    if form.get("ip_mode") in IP_MODES:
        changes["ip_mode"] = form.get("ip_mode")
    else:
        errors.append(field_error("ip_mode", f"must be one of {', '.join(IP_MODES)}"))
    retention = str(form.get("retention_days", "0")).strip()
    if retention.isdigit() and int(retention) <= 36_500:
        changes["retention_days"] = int(retention)
    else:
        errors.append(field_error("retention_days", "must be a whole number of days (0: keep all)"))
    if errors:
        submitted = {
            k: str(form.get(k, ""))
            for k in ("name", "origins", "bot_policy", "ip_mode", "retention_days")
        }
        return await _settings_page(
            request, session, app, errors=errors, status=400, submitted=submitted
        )
    await _run(
        lambda: collector(request).store.update_app(
            app.app_id, name=name, origins=sorted(set(origins)), settings=changes
        )
    )
    return redirect(f"/dashboard/apps/{app.app_id}/settings?saved=1")


@page
async def key_create(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    _, secret = await _run(collector(request).store.create_key, app.app_id)
    # Keys are stored hashed: the next page shows it once, and a reload makes no other.
    answer = redirect(f"/dashboard/apps/{app.app_id}/settings")
    answer.set_cookie(
        accounts.FLASH_COOKIE,
        (await keys(request)).sign_flash(secret),
        max_age=accounts.FLASH_TTL_S,
        path=f"/dashboard/apps/{app.app_id}/settings",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return answer


@page
async def key_revoke(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    store = collector(request).store
    key_id = request.path_params["key_id"]
    mine = {k["key_id"] for k in await _run(store.list_keys, app.app_id)}
    if key_id in mine:
        await _run(store.revoke_key, key_id)
    return redirect(f"/dashboard/apps/{app.app_id}/settings?saved=1")


@page
async def rule_add(request: Request, session: Session) -> Response:
    """A rule, as `collector rules add`: a dedupe key or a throttle window."""
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    form = await read_form(request)
    errors: list[FieldError] = []
    event = parse_event_name(str(form.get("event", "")).strip(), "event", errors)
    dedupe = str(form.get("dedupe_key", "")).strip() or None
    throttle = str(form.get("throttle", "")).strip() or None
    throttle_ms = None
    if (dedupe is None) == (throttle is None):
        errors.append(field_error("dedupe_key", "give exactly one of a dedupe key and a throttle"))
    elif throttle is not None:
        try:
            throttle_ms = parse_throttle_ms(throttle)
        except ValueError as exc:
            errors.append(field_error("throttle", str(exc)))
    if errors:
        submitted = {k: str(form.get(k, "")) for k in ("event", "dedupe_key", "throttle")}
        return await _settings_page(
            request, session, app, errors=errors, status=400, submitted=submitted
        )
    store = collector(request).store
    await _run(
        lambda: store.add_rule(app.app_id, event, dedupe_key=dedupe, throttle_ms=throttle_ms)
    )
    return redirect(f"/dashboard/apps/{app.app_id}/settings?saved=1")


@page
async def rule_remove(request: Request, session: Session) -> Response:
    app = _app(request, session)
    if app is None:
        return _unknown_app(request, session)
    rule_id = request.path_params["rule_id"]
    await _run(collector(request).store.remove_rule, app.app_id, rule_id)
    return redirect(f"/dashboard/apps/{app.app_id}/settings?saved=1")


async def to_index(request: Request) -> Response:
    return redirect("/dashboard/")


async def not_found(request: Request) -> Response:
    session = await current_session(request)
    if session is None:
        return redirect("/dashboard/login")
    return error_page(request, 404, f"{request.url.path} is not a page.", session)


def routes() -> list[BaseRoute]:
    a = "/dashboard/apps/{app_id}"
    return [
        Route("/dashboard/login", login, methods=["GET", "POST"]),
        Route("/dashboard/logout", logout, methods=["POST"]),
        Route("/dashboard/", index, methods=["GET"]),
        Route(a + "/", overview, methods=["GET"]),
        Route(a + "/live", live, methods=["GET"]),
        Route(a + "/live/stream", live_stream, methods=["GET"]),
        Route(a + "/events", events, methods=["GET"]),
        Route(a + "/people", people, methods=["GET"]),
        Route(a + "/people/{person:path}", person, methods=["GET"]),
        Route(a + "/segments", segments, methods=["GET"]),
        Route(a + "/segments", segment_save, methods=["POST"]),
        Route(a + "/segments/{segment_id}/delete", segment_delete, methods=["POST"]),
        Route(a + "/funnels", funnels, methods=["GET"]),
        Route(a + "/settings", settings, methods=["GET"]),
        Route(a + "/settings", settings_save, methods=["POST"]),
        Route(a + "/keys", key_create, methods=["POST"]),
        Route(a + "/keys/{key_id}/revoke", key_revoke, methods=["POST"]),
        Route(a + "/rules", rule_add, methods=["POST"]),
        Route(a + "/rules/{rule_id:int}/delete", rule_remove, methods=["POST"]),
        Mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static"),
        Route("/dashboard", to_index, methods=["GET"]),
        Route("/dashboard/{rest:path}", not_found, methods=["GET"]),
    ]
