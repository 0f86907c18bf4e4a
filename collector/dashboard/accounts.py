"""Dashboard sessions, CSRF tokens and the login rate limit.

A session is a random token in a signed (itsdangerous), HttpOnly, SameSite=Lax cookie,
Secure over HTTPS; the store keeps only its SHA-256 and expiry, so logging out,
deleting the admin or changing their password ends it at once, on every worker. CSRF
tokens are an HMAC of the session token (or, before login, of a random cookie): a page
of another site can neither read nor compute one."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner

SESSION_COOKIE = "telltale_session"
LOGIN_COOKIE = "telltale_login"  # the nonce the login form's CSRF token is made from
SESSION_TTL_S = 12 * 3600
# A new API key travels to the page that shows it (once) in this cookie, so that the
# POST that made it answers with a redirect and a reload makes no second key.
FLASH_COOKIE = "telltale_new_key"
FLASH_TTL_S = 60

# Login attempts: per client IP, and per account (a botnet spread over many addresses
# still meets the account's limit). Failed attempts count; a success clears the account.
IP_ATTEMPTS, IP_WINDOW_S = 20, 300.0
ACCOUNT_FAILURES, ACCOUNT_WINDOW_S = 5, 900.0
MAX_TRACKED = 10_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Keys:
    """What signs cookies and CSRF tokens, from the database's secret (shared by every
    worker and collector on the database)."""

    secret: str

    def _signer(self) -> TimestampSigner:
        return TimestampSigner(self.secret, salt="telltale.dashboard.session")

    def sign_session(self, token: str) -> str:
        return self._signer().sign(token).decode()

    def session_token(self, cookie: str | None) -> str | None:
        """The token of a well-signed session cookie younger than the session TTL."""
        if not cookie or len(cookie) > 512:
            return None
        try:
            return self._signer().unsign(cookie, max_age=SESSION_TTL_S).decode()
        except BadSignature:
            return None

    def _flash(self) -> TimestampSigner:
        return TimestampSigner(self.secret, salt="telltale.dashboard.flash")

    def sign_flash(self, text: str) -> str:
        return self._flash().sign(text).decode()

    def flash(self, cookie: str | None) -> str | None:
        """A message for the next page only, at most a minute old."""
        if not cookie or len(cookie) > 512:
            return None
        try:
            return self._flash().unsign(cookie, max_age=FLASH_TTL_S).decode()
        except BadSignature:
            return None

    def csrf(self, bound_to: str) -> str:
        mac = hmac.new(self.secret.encode(), b"csrf:" + bound_to.encode(), hashlib.sha256)
        return mac.hexdigest()

    def csrf_ok(self, bound_to: str, given: object) -> bool:
        return isinstance(given, str) and hmac.compare_digest(self.csrf(bound_to), given)


def normalise_email(value: str) -> str | None:
    """The email as accounts are keyed (trimmed, lower case), or None if it is not one."""
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not (local and at and domain) or len(email) > 254 or any(c.isspace() for c in email):
        return None
    return email


def new_token() -> str:
    return secrets.token_urlsafe(32)


class LoginLimiter:
    """Sliding windows of login attempts per IP and failures per account, in this
    process (each worker counts its own)."""

    def __init__(self) -> None:
        self._ips: OrderedDict[str, deque[float]] = OrderedDict()
        self._accounts: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _recent(table: OrderedDict[str, deque[float]], key: str, window: float) -> deque[float]:
        now = time.monotonic()
        times = table.get(key)
        if times is None:
            times = table[key] = deque()
            if len(table) > MAX_TRACKED:
                table.popitem(last=False)
        table.move_to_end(key)
        while times and times[0] <= now - window:
            times.popleft()
        return times

    def allowed(self, ip: str, email: str) -> bool:
        """Whether an attempt may be tried now; counts it against the IP."""
        ip_times = self._recent(self._ips, ip, IP_WINDOW_S)
        account = self._recent(self._accounts, email, ACCOUNT_WINDOW_S)
        if len(ip_times) >= IP_ATTEMPTS or len(account) >= ACCOUNT_FAILURES:
            return False
        ip_times.append(time.monotonic())
        return True

    def failed(self, email: str) -> None:
        self._recent(self._accounts, email, ACCOUNT_WINDOW_S).append(time.monotonic())

    def succeeded(self, email: str) -> None:
        self._accounts.pop(email, None)
