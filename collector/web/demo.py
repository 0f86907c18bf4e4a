"""The demo app that `collector serve --demo` (and `make serve`) creates on first run."""

from __future__ import annotations

import secrets

from collector.models import App
from collector.settings import Settings
from collector.store.base import Store

DEMO_NAME = "Demo"


def find_demo_app(store: Store) -> App | None:
    for app in store.list_apps():
        if app.settings.get("demo"):
            return app
    return None


def ensure_demo_app(store: Store, settings: Settings) -> tuple[App, str, list[str]]:
    """The demo app (created on first run), a fresh API key for it, and the ids of the
    keys that were revoked to make way for it.

    Keys are stored hashed, so a key printed on an earlier run can't be shown again: each
    run revokes the demo app's old keys and prints a new one that works."""
    origins = [f"http://127.0.0.1:{settings.port}", f"http://localhost:{settings.port}"]
    app = find_demo_app(store)
    if app is None:
        app = store.create_app(DEMO_NAME, origins, {"demo": True})
        store.add_rule(app.app_id, "confirmation", dedupe_key="orderId")
        store.add_rule(app.app_id, "email_opened", throttle_ms=20 * 60 * 1000)
    elif sorted(app.origins) != sorted(set(app.origins) | set(origins)):
        app = store.update_app(app.app_id, origins=sorted(set(app.origins) | set(origins)))
    revoked = []
    for key in store.list_keys(app.app_id):
        if key["revoked_at"] is None:
            store.revoke_key(key["key_id"])
            revoked.append(key["key_id"])
    _, secret = store.create_key(app.app_id)
    return app, secret, revoked


DEMO_ADMIN = "demo@telltale.invalid"
# Events the demo app is filled with on its first run (about a month of a small site).
DEMO_PAGE_VIEWS = 30_000
DEMO_DAYS = 30


def ensure_demo_admin(store: Store) -> tuple[str, str]:
    """The demo admin's email and a new password for this run (hashes can't be shown
    again, as with the demo key); a new password ends the sessions of earlier runs."""
    from collector.dashboard.passwords import hash_password

    password = secrets.token_urlsafe(12)
    if not store.create_admin(DEMO_ADMIN, hash_password(password)):
        store.set_admin_password(DEMO_ADMIN, hash_password(password))
    return DEMO_ADMIN, password


def needs_demo_data(app: App) -> bool:
    return not app.settings.get("demo_data")
