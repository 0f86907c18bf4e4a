"""Dashboard sessions, CSRF tokens and the login rate limit.

A session is a random token in a signed (itsdangerous), HttpOnly, SameSite=Lax cookie,
Secure over HTTPS; the store keeps only its SHA-256 and expiry, so logging out,
deleting the admin or changing their password ends it at once, on every worker. CSRF
tokens are an HMAC of the session token (or, before login, of a random cookie): a page
of another site can neither read nor compute one. The login limits are counted in the
database, so they hold across workers and collectors."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner

from collector.ingest.ratelimit import KEY_SEP, Usage
from collector.store.base import Store

SESSION_COOKIE = "telltale_session"
LOGIN_COOKIE = "telltale_login"  # the nonce the login form's CSRF token is made from
SESSION_TTL_S = 12 * 3600
# A new API key travels to the page that shows it (once) in this cookie, so that the
# POST that made it answers with a redirect and a reload makes no second key.
FLASH_COOKIE = "telltale_new_key"
FLASH_TTL_S = 60

# Login attempts: per client network (an IPv4 address's /24, an IPv6 address's /64: one
# host often holds a whole /64), and failures per account. An account's failures are
# counted per network, so that one network's guesses lock out that network alone, not
# the account's owner elsewhere; and in total, so that a botnet spread over many
# networks still meets a limit, one that needs many networks to reach. A success
# clears its network's count.
IP_ATTEMPTS, IP_WINDOW_S = 20, 300.0
ACCOUNT_FAILURES, ACCOUNT_WINDOW_S = 5, 900.0
ACCOUNT_TOTAL_FAILURES, ACCOUNT_TOTAL_WINDOW_S = 50, 1000.0


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
    if not (local and at and domain) or len(email) > 254:
        return None
    if any(c.isspace() or c < " " or c == "\x7f" for c in email):
        return None
    return email


def new_token() -> str:
    return secrets.token_urlsafe(32)


class LoginLimiter:
    """Login attempts per client IP and failed attempts per account, counted in token
    buckets every worker and every collector of the database shares (the ingestion
    limits' buckets: `Store.share_rate_usage`). A bucket holds the limit and refills
    over its window: 20 attempts at once from a network, then one every 15 s; 5 failures
    on an account from a network, then one every 3 minutes; 50 failures on an account
    from anywhere, then one every 20 s (more than one network's refill, so one network
    alone cannot keep its owner out). Each attempt asks the database as it comes,
    so the count is exact with any number of processes (logins are rare, and each costs
    a 50 ms hash already). An attempt takes its tokens first and gives them back when it
    is refused, so concurrent attempts cannot all pass on the last token."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _take(self, usage: list[Usage]) -> bool:
        left = self._store.share_rate_usage(usage)
        if all(left[key] >= 0 for key, *_ in usage):
            return True
        self._store.share_rate_usage([(key, -spent, rate, cap) for key, spent, rate, cap in usage])
        return False

    def attempt(self, ip: str, email: str) -> bool:
        """Whether an attempt may be tried now. If it may, it is counted against the
        client's network and, until `succeeded`, as a failure of the account (so that
        attempts under way count too)."""
        net = network(ip)
        return self._take(
            [_ip_bucket(net, 1.0), _account_bucket(email, net, 1.0), _total_bucket(email, 1.0)]
        )

    def succeeded(self, ip: str, email: str) -> None:
        """A success clears the account's failures from the client's network, and gives
        back the one it counted in the total."""
        self._store.share_rate_usage(
            [
                _account_bucket(email, network(ip), -float(ACCOUNT_FAILURES)),
                _total_bucket(email, -1.0),
            ]
        )


def network(ip: str) -> str:
    """The network an address is limited as: its /24 (IPv4) or /64 (IPv6); anything
    else (no address known) as it is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _ip_bucket(net: str, spent: float) -> Usage:
    return (KEY_SEP.join(("login-ip", net)), spent, IP_ATTEMPTS / IP_WINDOW_S, IP_ATTEMPTS)


def _account_bucket(email: str, net: str, spent: float) -> Usage:
    key = KEY_SEP.join(("login-account", email, net))
    return (key, spent, ACCOUNT_FAILURES / ACCOUNT_WINDOW_S, ACCOUNT_FAILURES)


def _total_bucket(email: str, spent: float) -> Usage:
    key = KEY_SEP.join(("login-account-total", email))
    rate = ACCOUNT_TOTAL_FAILURES / ACCOUNT_TOTAL_WINDOW_S
    return (key, spent, rate, ACCOUNT_TOTAL_FAILURES)
