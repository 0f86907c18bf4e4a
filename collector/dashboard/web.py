"""What every dashboard page shares: the templates, the session check, CSRF on every
POST, and answers (a page, a redirect, an error page)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2
import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from collector.dashboard import accounts
from collector.ingest.enrich import forwarded_https
from collector.models import App
from collector.timeutil import now_ms
from collector.web.api import nul_parameters, read_capped
from collector.web.api import run_query as _run

if TYPE_CHECKING:
    from collector.web.ingest import Collector

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
MAX_FORM_FIELDS = 200
# A dashboard form is a few fields someone typed: the largest, a segment's rules, is a
# few KB. The login form is read before anyone is known, so its cap is smaller; without
# caps Starlette keeps up to 200 fields of 1 MB each in memory for one request.
MAX_FORM_BODY = 256 * 1024
MAX_LOGIN_BODY = 16 * 1024


class BadForm(Exception):
    """A form refused before any handler sees it: too large, or a value no database
    column can hold (PostgreSQL's text refuses NUL)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(("html",)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def collector(request: Request) -> Collector:
    c: Collector = request.app.state.collector
    return c


async def keys(request: Request) -> accounts.Keys:
    """The signing keys, made once per process from the database's secret."""
    found: accounts.Keys | None = getattr(request.app.state, "dashboard_keys", None)
    if found is None:
        found = accounts.Keys(await _run(collector(request).store.secret))
        request.app.state.dashboard_keys = found
    return found


def is_https(request: Request) -> bool:
    """Whether the client's request came over HTTPS: to this server, or to a trusted
    proxy (`--trusted-proxy`) that ended TLS and says so in X-Forwarded-Proto. From any
    other client the header is ignored (it decides the session cookie's Secure flag and
    the scheme of the script tag shown in settings)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    proto = request.headers.get("x-forwarded-proto")
    return forwarded_https(peer, proto, collector(request).trusted)


@dataclass
class Session:
    email: str
    token: str
    csrf: str
    apps: list[App] = field(default_factory=list)


async def current_session(request: Request) -> Session | None:
    k = await keys(request)
    token = k.session_token(request.cookies.get(accounts.SESSION_COOKIE))
    if token is None:
        return None
    email = await _run(collector(request).store.session_admin, accounts.token_hash(token), now_ms())
    if email is None:
        return None
    return Session(email, token, k.csrf(token))


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    session: Session | None = None,
) -> HTMLResponse:
    defaults: dict[str, Any] = {"app": None, "nav": "", "bots": False, "params": {}}
    html = _env.get_template(template).render(
        {**defaults, **context, "request": request, "session": session}
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            # Only our own files: no inline script, no third party, not framed.
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, status: int, message: str, session: Session | None) -> Response:
    return render(request, "error.html", {"status": status, "message": message}, status, session)


def query_string(params: dict[str, Any]) -> str:
    """`?a=1&b=2` of the non-empty values (lists repeat their key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for v in value if isinstance(value, list | tuple) else [value]:
            if v not in (None, "", False):
                pairs.append((key, "1" if v is True else str(v)))
    return "?" + urlencode(pairs) if pairs else ""


def person_key(user: dict[str, Any]) -> str:
    """How a person is named in URLs and the Query API: the user id, or anon:ID."""
    if user.get("id") is not None:
        return str(user["id"])
    return "anon:" + str(user["anonymous_id"])


def compact(value: Any) -> str:
    """A JSON value on one line, for tables."""
    return orjson.dumps(value).decode()


def when(text: str | None) -> str:
    """An ISO time as `2026-12-07 10:00:00` (UTC)."""
    return "" if not text else text.replace("T", " ")[:19]


def every(ms: int) -> str:
    """A throttle window as a person reads it: `500 ms`, `30 s`, `20 min`, `2 h`, `1 d`
    (the largest unit that divides it, so none rounds a stored window)."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size:,} {unit}"
    return f"{ms:,} ms"


_env.globals.update(qs=query_string, person_key=person_key)
_env.filters.update(compact=compact, when=when, every=every, quote=lambda s: quote(str(s), safe=""))

Handler = Callable[[Request, Session], Awaitable[Response]]


async def read_form(request: Request, limit: int = MAX_FORM_BODY) -> FormData:
    """The form, its body read chunk by chunk and refused (BadForm, 413) as soon as it
    passes `limit`, whatever Content-Length says; a value holding NUL is refused (400)."""
    too_large = BadForm(413, f"This form is over {limit // 1024} KB.")
    # Starlette's own cache of the body, which form() then parses instead of the stream
    # (already consumed).
    request._body = await read_capped(request, limit, too_large)
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    nul = sorted({name for name, value in form.multi_items() if "\x00" in str(value)})
    if nul:
        raise BadForm(400, f"{', '.join(nul)}: must not contain NUL characters.")
    return form


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page behind the login: without a session, a redirect to it (back here after);
    a POST without this session's CSRF token is refused."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        session = await current_session(request)
        if session is None:
            if request.method != "GET":
                return error_page(request, 403, "Your session has ended: log in again.", None)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect("/dashboard/login" + query_string({"next": target}))
        nul = nul_parameters(request)
        if nul:
            message = f"{', '.join(nul)}: must not contain NUL characters."
            return error_page(request, 400, message, session)
        try:
            if request.method == "POST":
                form = await read_form(request)
                k = await keys(request)
                if not k.csrf_ok(session.token, form.get("csrf")):
                    return error_page(
                        request, 403, "This form has expired or came from another site.", session
                    )
            session.apps = await _run(collector(request).store.list_apps)
            return await handler(request, session)
        except BadForm as e:
            return error_page(request, e.status, e.message, session)

    return wrapped
