"""The `collector` command line: a thin layer over the store and the app.

Stable: scripts and tests rely on these commands and their --json output."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from collector import __version__, native
from collector.backup import backup_sqlite
from collector.errors import StoreUnavailable
from collector.ingest.auth import normalise_origin
from collector.models import DEFAULT_APP_SETTINGS, App
from collector.settings import CONFIG_ENV, DEFAULT_DB, Settings, read_config, setting_fields
from collector.store import Store, display, is_url, transfer
from collector.store import open_store as store_for
from collector.store.core import parse_throttle_ms
from collector.timeutil import now_ms, parse_duration_ms, parse_timestamp

F = TypeVar("F", bound=Callable[..., Any])

DEMO_EVENT = '{"event": "user_signed_up", "user": {"id": "u_1", "traits": {"plan": "pro"}}}'

DEFAULT_RULES: list[dict[str, Any]] = [
    # Seed 002's standard events: a confirmation counts once per orderId; email opens at
    # most once per 20 minutes per user (email clients re-open mail constantly).
    {"event": "confirmation", "dedupe_key": "orderId"},
    {"event": "email_opened", "throttle_ms": 20 * 60 * 1000},
]


DB_HELP = "SQLite database file or postgresql:// URL (env: COLLECTOR_DB)."


def _db_from_main(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A command's own --db first; else `collector --db X COMMAND`'s; else COLLECTOR_DB;
    else the `db` of the settings file in COLLECTOR_CONFIG (as `serve` reads it); else
    the default. So the database can be named before the command, as it can after, and
    a settings file names it for every command."""
    source = ctx.get_parameter_source(param.name or "db")
    named_first = ctx.find_root().params.get("db")
    if named_first and source in (
        click.core.ParameterSource.ENVIRONMENT,
        click.core.ParameterSource.DEFAULT,
    ):
        return str(named_first)
    config = os.environ.get(CONFIG_ENV)
    if source == click.core.ParameterSource.DEFAULT and config:
        try:
            configured = read_config(config).get("db")
        except (ValueError, OSError) as exc:
            raise click.ClickException(f"{CONFIG_ENV}={config}: {exc}") from None
        if configured:
            return str(configured)
    return value


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db",
        envvar="COLLECTOR_DB",
        default=DEFAULT_DB,
        show_default=True,
        callback=_db_from_main,
        help=DB_HELP,
    )(func)


def open_store(db: str, *, create: bool = False) -> Store:
    """The store behind `--db`, migrated. A SQLite file that does not exist is created
    only by the commands that start a database (`serve`, `apps create`), and they say so:
    a mistyped path never passes for an empty database."""
    if not is_url(db) and db != ":memory:":
        path = Path(db).expanduser().resolve()
        if not path.exists():
            if not create:
                raise click.ClickException(
                    f"no database at {path} (check --db or COLLECTOR_DB; "
                    "`collector serve` or `collector apps create` creates one)"
                )
            if not path.parent.is_dir():
                raise click.ClickException(f"cannot create {path}: {path.parent} is not a folder")
            click.echo(f"collector: creating a new SQLite database at {path}", err=True)
            # The database holds the apps' key hashes and the cursor secret: readable by
            # its owner only, as are the WAL and shared-memory files SQLite gives its mode.
            try:
                path.touch(mode=0o600)
            except OSError as exc:
                raise click.ClickException(f"cannot create {path}: {exc.strerror}") from None
    try:
        store = store_for(db)
        store.migrate()
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except (sqlite3.Error, OSError) as exc:
        # A file that is no database, or one we may not read or write: one line, no trace.
        raise click.ClickException(f"cannot open the database {db}: {exc}") from None
    return store


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _app_dict(app: App, store: Store | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "app_id": app.app_id,
        "name": app.name,
        "origins": app.origins,
        "settings": app.settings,
        "rules": [
            {
                "id": r.id,
                "event": r.event,
                "kind": r.kind,
                "dedupe_key": r.dedupe_key,
                "throttle_ms": r.throttle_ms,
            }
            for r in app.rules
        ],
        "created_at": app.created_at,
    }
    if store is not None:
        out["keys"] = store.list_keys(app.app_id)
    return out


def _require_app(store: Store, app_id: str) -> App:
    app = store.get_app(app_id)
    if app is None:
        raise click.ClickException(f"no app {app_id!r} (see `collector apps list`)")
    return app


def _origins(values: tuple[str, ...], option: str = "--origin") -> list[str]:
    try:
        return [normalise_origin(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def app_settings_options(func: F) -> F:
    """Per-app settings, shared by `apps create` and `apps update`."""
    options = [
        click.option(
            "--bot-policy",
            type=click.Choice(["flag", "drop"]),
            help="flag (default): store bots, exclude them from queries; drop: never store them.",
        ),
        click.option(
            "--require-known-user/--allow-unknown-users",
            default=None,
            help="Answer 404 to events for users never identified.",
        ),
        click.option(
            "--ip-mode",
            type=click.Choice(["full", "truncate", "none"]),
            help="Store the full IP, a truncated one (/24, /48), or none.",
        ),
        click.option(
            "--rate-limit-app",
            type=int,
            help="Requests per second for the whole app (0: no limit).",
        ),
        click.option(
            "--rate-limit-ip", type=int, help="Requests per second per client IP (0: no limit)."
        ),
        click.option(
            "--rate-limit-events",
            type=int,
            help="Events per second for the whole app, a batch counted per event (0: no limit).",
        ),
        click.option(
            "--retention-days",
            type=click.IntRange(min=0),
            help="Delete events older than this many days, in the background (0: keep all).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings_from(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in DEFAULT_APP_SETTINGS and v is not None}


@click.group()
@click.version_option(__version__, prog_name="collector")
@click.option("--db", "db", default=None, metavar="DB", help=DB_HELP + " For every command.")
def main(db: str | None) -> None:
    """Telltale collector: serve, manage apps and keys, export and delete data."""


# serve ------------------------------------------------------------------------------


def serve_options(func: F) -> F:
    """`collector serve` options, generated from the declared settings (settings.py)."""
    for name, env, help_text, cli_name, multiple in reversed(setting_fields()):
        if cli_name is None:
            continue
        default = getattr(Settings, name, None) if name != "trusted_proxies" else None
        if isinstance(default, bool):
            func = click.option(
                f"{cli_name}/--no-{cli_name[2:]}",
                name,
                default=None,
                help=f"{help_text} [env: {env}]",
            )(func)
        elif multiple:
            func = click.option(cli_name, name, multiple=True, help=f"{help_text} [env: {env}]")(
                func
            )
        else:
            func = click.option(
                cli_name,
                name,
                type=type(default) if default is not None else str,
                default=None,
                help=f"{help_text} [env: {env}; default: {default}]",
            )(func)
    return func


@main.command()
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False),
    envvar=CONFIG_ENV,
    help=f"TOML file of settings; options and env vars win over it [env: {CONFIG_ENV}]",
)
@serve_options
def serve(config: str | None, **options: Any) -> None:
    """Serve the collector (uvicorn)."""
    if options.get("db") is None:  # `collector --db X serve`; env and config come later
        options["db"] = click.get_current_context().find_root().params.get("db")
    if not options.get("trusted_proxies"):
        options.pop("trusted_proxies", None)
    try:
        settings = Settings.from_env(config=config, **options)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    _check_port(settings.host, settings.port)
    store = open_store(settings.db, create=True)
    demo_fill: subprocess.Popen[bytes] | None = None
    if settings.demo:
        from collector.web.demo import (
            DEMO_DAYS,
            DEMO_PAGE_VIEWS,
            ensure_demo_admin,
            ensure_demo_app,
            needs_demo_data,
        )

        app, key, revoked = ensure_demo_app(store, settings)
        email, password = ensure_demo_admin(store)
        base = f"http://{settings.host}:{settings.port}"
        banner = ""
        if needs_demo_data(app):
            # Filled by a process of its own, so the server answers at once. The app is
            # marked once the fill is done: a fill cut short runs again on the next start,
            # and what it had stored is not stored twice (the seeded generator gives the
            # same message ids).
            demo_fill = subprocess.Popen(
                [
                    *(sys.executable, "-m", "collector", "demo-data", app.app_id),
                    *("--days", str(DEMO_DAYS), "--page-views", str(DEMO_PAGE_VIEWS)),
                    "--mark-demo",
                ],
                env={**os.environ, "COLLECTOR_DB": settings.db},
                stdout=subprocess.DEVNULL,
                # Behind the server for the CPU: its first answers come first.
                preexec_fn=lambda: os.nice(10),
            )
            banner += (
                f"\nFilling the demo app with {DEMO_DAYS} days of generated traffic "
                "in the background (a few seconds).\n"
            )
        banner += (
            f"\nDashboard: {base}/dashboard/\n"
            f"  email:    {email}\n"
            f"  password: {password}   (new for this run)\n"
        )
        if revoked:
            banner += (
                f"\nThe demo app's earlier key ({', '.join(revoked)}) is revoked: "
                "keys are stored hashed, so a new one is shown for this run.\n"
            )
        banner += (
            f"\nTelltale demo app: {app.app_id}\n"
            f"API key (shown once): {key}\n"
            f"Demo page (open it, watch the console): {base}/\n"
            f"Send an event:\n"
            f"  curl -X POST {base}/v1/event -H 'Authorization: Bearer {key}' "
            f"-H 'Content-Type: application/json' "
            f"-d '{DEMO_EVENT}'\n"
        )
        # Shown once the server answers, so that the curl works when it is read.
        _when_answering(settings.host, settings.port, lambda: click.echo(banner))
    store.close()
    # Workers are separate processes: they read the same settings from the environment.
    os.environ.update(settings.to_env())
    # Each process of this run (workers, indexer) keeps its metrics in a file of this
    # folder, and /metrics adds them up; a new folder per run, so that no count of an
    # earlier run is added in.
    # The client picks its storage when first imported: in this process too (the only
    # worker when --workers is 1), that must come after this.
    if "prometheus_client" in sys.modules:
        raise RuntimeError("the metrics client was imported before its folder was set")
    metrics_dir = tempfile.mkdtemp(prefix="telltale-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # The indexer runs beside the workers, while the CPU has room (collector/indexer.py).
    indexer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.indexer",
            "-" if is_url(settings.db) else settings.db,  # a URL's password stays out of ps
            str(os.getpid()),
        ]
    )

    def stop() -> None:
        if demo_fill is not None and demo_fill.poll() is None:
            demo_fill.terminate()
            demo_fill.wait(timeout=30)
        indexer.terminate()
        indexer.wait(timeout=30)
        shutil.rmtree(metrics_dir, ignore_errors=True)

    _stop_on_sigterm(stop)
    try:
        _serve(settings)
    finally:
        stop()


def _stop_on_sigterm(stop: Callable[[], None]) -> None:
    """Run `stop` when SIGTERM ends this process, then die of the signal as before. A
    single worker's uvicorn runs in this process and, once it has shut down, raises the
    SIGTERM it caught again, which would end the process before any `finally`. (With
    several workers the supervisor handles SIGTERM and returns instead.)"""

    def handler(signum: int, frame: object) -> None:
        stop()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, handler)


def _when_answering(host: str, port: int, then: Callable[[], None]) -> None:
    """Call `then` from a daemon thread once `GET /healthz` on (host, port) answers 200:
    the workers start in processes of their own, a second or more after this one."""
    import http.client
    import threading
    import time

    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"

    def wait() -> None:
        while True:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    then()
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.05)  # not answering yet: the workers are starting

    threading.Thread(target=wait, name="collector-ready", daemon=True).start()


def _check_port(host: str, port: int) -> None:
    """Refuse a port in use before anything is printed or created (the demo's key and
    curl would otherwise be shown for a server that never starts)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None


def uvicorn_config(settings: Settings) -> Any:
    """The uvicorn.Config of `collector serve` (bench/serve.py serves its baselines alike;
    tests/test_bench.py checks the two agree)."""
    import uvicorn

    return uvicorn.Config(
        "collector.web.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # X-Forwarded-For is decided in enrich.client_ip from --trusted-proxy, not here.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # Header and body timeouts, a header size cap, connections per client address.
        http="collector.web.protocol:GuardedHttpToolsProtocol",
    )


def _serve(settings: Settings) -> None:
    from collector.web.protocol import raise_open_file_limit
    from collector.workers import Workers, listeners

    raise_open_file_limit()  # inherited by the worker processes
    config = uvicorn_config(settings)
    # A listening socket per worker (collector/workers.py), so connections are spread
    # evenly over the workers; a supervisor restarts any worker that dies, one worker too.
    try:
        socks = listeners(settings.host, settings.port, settings.workers)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port}: {exc}"
        ) from None
    port = socks[0].getsockname()[1]
    # Once a worker answers: the sockets listen only in the workers, a few seconds on, and
    # a script that waits for this line must find the port open.
    _when_answering(
        settings.host,
        port,
        lambda: click.echo(
            f"Serving on http://{settings.host}:{port} "
            f"with {settings.workers} worker{'s' if settings.workers > 1 else ''}; "
            f"hot modules: {native.status()}",
            err=True,
        ),
    )
    status = Workers(config, socks).run()
    if status:
        raise SystemExit(status)


# apps -------------------------------------------------------------------------------


@main.group()
def apps() -> None:
    """Create, list, show, update and delete apps."""


@apps.command("create")
@click.argument("name")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    help="Allowed browser origin (repeatable), e.g. https://*.example.com",
)
@app_settings_options
@click.option(
    "--no-default-rules",
    is_flag=True,
    help="Skip the confirmation/orderId dedupe and email_opened 20m throttle rules.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (app_id, api_key, ...)."
)
@db_option
def apps_create(
    name: str,
    origins: tuple[str, ...],
    no_default_rules: bool,
    as_json: bool,
    db: str,
    **settings: Any,
) -> None:
    """Create an app with its first API key (shown once)."""
    store = open_store(db, create=True)
    app = store.create_app(name, _origins(origins), _settings_from(**settings))
    if not no_default_rules:
        for rule in DEFAULT_RULES:
            store.add_rule(
                app.app_id,
                rule["event"],
                dedupe_key=rule.get("dedupe_key"),
                throttle_ms=rule.get("throttle_ms"),
            )
    key_id, secret = store.create_key(app.app_id)
    app = _require_app(store, app.app_id)
    if as_json:
        _echo_json({**_app_dict(app), "api_key": secret, "key_id": key_id})
    else:
        click.echo(
            f"app_id:  {app.app_id}\n"
            f"api_key: {secret}  (shown once; stored hashed)\n"
            f"key_id:  {key_id}"
        )


@apps.command("list")
@click.option("--json", "as_json", is_flag=True)
@db_option
def apps_list(as_json: bool, db: str) -> None:
    """List apps."""
    store = open_store(db)
    items = store.list_apps()
    if as_json:
        _echo_json([_app_dict(a) for a in items])
        return
    for app in items:
        click.echo(f"{app.app_id}\t{app.name}\t{' '.join(app.origins)}")


@apps.command("show")
@click.argument("app_id")
@click.option("--json", "as_json", is_flag=True)
@db_option
def apps_show(app_id: str, as_json: bool, db: str) -> None:
    """Show an app: origins, settings, rules, keys and discard counts."""
    store = open_store(db)
    app = _require_app(store, app_id)
    # One JSON document either way: an app's settings and rules nest too deeply for a
    # table; --json is accepted so scripts can say what they rely on.
    _echo_json({**_app_dict(app, store), "discarded": store.discard_counts(app_id)})


@apps.command("update")
@click.argument("app_id")
@click.option("--name")
@click.option(
    "--origin", "origins", multiple=True, help="Replace the allowed origins (repeatable)."
)
@click.option("--add-origin", "add_origins", multiple=True, help="Add an allowed origin.")
@click.option("--remove-origin", "remove_origins", multiple=True, help="Remove an allowed origin.")
@app_settings_options
@click.option("--json", "as_json", is_flag=True)
@db_option
def apps_update(
    app_id: str,
    name: str | None,
    origins: tuple[str, ...],
    add_origins: tuple[str, ...],
    remove_origins: tuple[str, ...],
    as_json: bool,
    db: str,
    **settings: Any,
) -> None:
    """Change an app's name, origins or settings."""
    store = open_store(db)
    app = _require_app(store, app_id)
    new_origins: list[str] | None = None
    if origins or add_origins or remove_origins:
        current = _origins(origins) if origins else list(app.origins)
        current += [o for o in _origins(add_origins, "--add-origin") if o not in current]
        removed = set(_origins(remove_origins, "--remove-origin"))
        new_origins = [o for o in current if o not in removed]
    app = store.update_app(
        app_id, name=name, origins=new_origins, settings=_settings_from(**settings) or None
    )
    if as_json:
        _echo_json(_app_dict(app))
    else:
        click.echo(f"updated {app.app_id}")


@apps.command("delete")
@click.argument("app_id")
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@db_option
def apps_delete(app_id: str, yes: bool, as_json: bool, db: str) -> None:
    """Delete an app and everything of it: events (pending ones too), people, users,
    identity links, visits, rules, saved segments, keys and the app itself."""
    # Imported here: the pipeline loads the bot patterns, which no other command needs.
    from collector.ingest import pipeline
    from collector.store.app_deletion import LABELS

    store = open_store(db)
    app = _require_app(store, app_id)
    if not yes:
        # The one command that cannot be undone in part: an app's data has no other copy.
        click.confirm(
            f"Delete app {app_id} ({app.name}) and all its data? This cannot be undone",
            abort=True,
            err=True,
        )
    names_app = pipeline.bucket_names_app(app_id)
    counts = store.delete_app(app_id, names_app)
    # A running collector serves the app from its cache for up to CACHE_TTL seconds
    # more, so it may accept an event or two for it meanwhile: once every cache has
    # expired (and a request authenticated before then has been committed), the same
    # deletion again takes what they accepted.
    wait = pipeline.CACHE_TTL + COMMIT_GRACE_S
    click.echo(f"waiting {wait:g} s for running collectors to forget the app", err=True)
    time.sleep(wait)
    for kind, n in store.delete_app(app_id, names_app).items():
        counts[kind] += n
    if as_json:
        _echo_json({"app_id": app_id, "deleted": counts})
        return
    click.echo(f"deleted app {app_id} ({app.name})")
    for kind, label in LABELS.items():
        click.echo(f"  {counts[kind]} {label}")


# What `apps delete` waits past the app cache's lifetime before its second pass: time
# for a request authenticated just before the cache expired to be committed.
COMMIT_GRACE_S = 1.0


# keys -------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Create, list and revoke server API keys."""


@keys.command("create")
@click.argument("app_id")
@click.option("--json", "as_json", is_flag=True)
@db_option
def keys_create(app_id: str, as_json: bool, db: str) -> None:
    """Create an API key (shown once)."""
    store = open_store(db)
    _require_app(store, app_id)
    key_id, secret = store.create_key(app_id)
    if as_json:
        _echo_json({"app_id": app_id, "key_id": key_id, "api_key": secret})
    else:
        click.echo(f"key_id:  {key_id}\napi_key: {secret}  (shown once; stored hashed)")


@keys.command("list")
@click.argument("app_id")
@click.option("--json", "as_json", is_flag=True)
@db_option
def keys_list(app_id: str, as_json: bool, db: str) -> None:
    """List an app's keys (ids and prefixes only)."""
    store = open_store(db)
    _require_app(store, app_id)
    items = store.list_keys(app_id)
    if as_json:
        _echo_json(items)
        return
    for k in items:
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
        click.echo(f"{k['key_id']}\t{k['prefix']}…\t{k['created_at']}\t{state}")


@keys.command("revoke")
@click.argument("key_id")
@db_option
def keys_revoke(key_id: str, db: str) -> None:
    """Revoke a key (takes effect within 2 seconds on a running server)."""
    store = open_store(db)
    if not store.revoke_key(key_id):
        raise click.ClickException(f"no active key {key_id!r}")
    click.echo(f"revoked {key_id}")


# rules ------------------------------------------------------------------------------


@main.group()
def rules() -> None:
    """Per-app event rules: dedupe by a property, throttle per user."""


@rules.command("add")
@click.argument("app_id")
@click.option("--event", required=True, help="Event name the rule applies to.")
@click.option("--dedupe-key", help="Discard a second event with the same value of this property.")
@click.option("--throttle", help="Keep at most one such event per user in this window, e.g. 20m.")
@click.option("--json", "as_json", is_flag=True)
@db_option
def rules_add(
    app_id: str, event: str, dedupe_key: str | None, throttle: str | None, as_json: bool, db: str
) -> None:
    """Add a rule: --dedupe-key PROP or --throttle 20m."""
    if (dedupe_key is None) == (throttle is None):
        raise click.UsageError("give exactly one of --dedupe-key and --throttle")
    throttle_ms = None
    if throttle is not None:
        try:
            throttle_ms = parse_throttle_ms(throttle)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--throttle") from None
    store = open_store(db)
    _require_app(store, app_id)
    rule = store.add_rule(app_id, event, dedupe_key=dedupe_key, throttle_ms=throttle_ms)
    if as_json:
        _echo_json(
            {
                "id": rule.id,
                "app_id": app_id,
                "event": event,
                "kind": rule.kind,
                "dedupe_key": dedupe_key,
                "throttle_ms": throttle_ms,
            }
        )
    else:
        click.echo(f"rule {rule.id}: {event} {rule.kind}")


@rules.command("list")
@click.argument("app_id")
@db_option
def rules_list(app_id: str, db: str) -> None:
    """List an app's rules."""
    store = open_store(db)
    for r in _require_app(store, app_id).rules:
        detail = (
            f"dedupe by {r.dedupe_key}" if r.kind == "dedupe" else f"throttle {r.throttle_ms} ms"
        )
        click.echo(f"{r.id}\t{r.event}\t{detail}")


@rules.command("remove")
@click.argument("app_id")
@click.argument("rule_id", type=int)
@db_option
def rules_remove(app_id: str, rule_id: int, db: str) -> None:
    """Remove a rule."""
    store = open_store(db)
    if not store.remove_rule(app_id, rule_id):
        raise click.ClickException(f"no rule {rule_id} in {app_id}")
    click.echo(f"removed rule {rule_id}")


# data -------------------------------------------------------------------------------


def _time_option(value: str | None, name: str) -> int | None:
    """A time: ISO 8601, epoch ms, or a duration back from now (`2d`), as purge takes."""
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        try:
            return now_ms() - parse_duration_ms(value)
        except ValueError:
            raise click.BadParameter(
                f"{exc}, or a duration back from now such as 2d", param_hint=name
            ) from None


EXPORT_FIELDS = [
    "id",
    "message_id",
    "event",
    "user_id",
    "anonymous_id",
    "timestamp",
    "received_at",
    "properties",
    "context",
]


@main.command()
@click.argument("app_id")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option("--since", help="ISO 8601 time, epoch ms, or a duration ago: 2d (inclusive).")
@click.option("--until", help="ISO 8601 time, epoch ms, or a duration ago: 1h (exclusive).")
@db_option
def export(app_id: str, fmt: str, since: str | None, until: str | None, db: str) -> None:
    """Export an app's events, oldest first."""
    store = open_store(db)
    _require_app(store, app_id)
    rows = store.export_events(
        app_id, _time_option(since, "--since"), _time_option(until, "--until")
    )
    out = sys.stdout
    if fmt == "jsonl":
        for row in rows:
            out.write(orjson.dumps({k: row[k] for k in EXPORT_FIELDS}).decode() + "\n")
        return
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow([_csv_cell(row[k]) for k in EXPORT_FIELDS])


# A cell a spreadsheet would run as a formula ("=HYPERLINK(...)", "+1", "@SUM(...)"):
# event names, ids and properties come from anyone who can send an event.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """One CSV cell: objects as JSON; text a spreadsheet would read as a formula starts
    with an apostrophe, which spreadsheets show as text (OWASP's advice)."""
    if isinstance(value, dict | list):
        value = orjson.dumps(value).decode()
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


@main.command()
@click.argument("app_id", required=False)
@click.option(
    "--older-than", help="Delete events older than this, e.g. 90d (default: the app's retention)."
)
@db_option
def purge(app_id: str | None, older_than: str | None, db: str) -> None:
    """Delete an app's events older than a duration, or past its retention_days; with no
    APP_ID, every app's events past its retention_days (what the server does in the
    background)."""
    cutoff = None
    if older_than is not None:
        if app_id is None:
            raise click.UsageError("--older-than needs an APP_ID")
        try:
            cutoff = now_ms() - parse_duration_ms(older_than)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
    # Imported here: it brings the metrics client, which `serve` must import only once
    # PROMETHEUS_MULTIPROC_DIR is set (the client picks its storage at import).
    from collector import retention

    store = open_store(db)
    if app_id is None:
        purged = retention.enforce(store)
        for each, n in purged.items():
            click.echo(f"{each}: purged {n} events")
        click.echo(f"purged {sum(purged.values())} events")
        return
    app = _require_app(store, app_id)
    if cutoff is None:
        cutoff = retention.cutoff_ms(app, now_ms())
        if cutoff is None:
            raise click.ClickException(
                f"{app_id} keeps its events for ever: give --older-than, or set "
                "`collector apps update --retention-days N`"
            )
        click.echo(f"purged {retention.enforce_app(store, app, cutoff)} events")
        return
    click.echo(f"purged {store.purge(app_id, cutoff)} events")


@main.group()
def users() -> None:
    """Manage users."""


@users.command("delete")
@click.argument("app_id")
@click.argument("user_id")
@db_option
def users_delete(app_id: str, user_id: str, db: str) -> None:
    """Delete a user (or an anonymous visitor, anon:ID), their events, the ids aliased
    to them and their linked anonymous ids."""
    store = open_store(db)
    _require_app(store, app_id)
    store.index_all()  # a user only pending in the inbox is a user too
    known = store.user_exists(app_id, user_id)
    deleted = store.delete_user(app_id, user_id)
    if not known and not deleted:
        raise click.ClickException(f"no user {user_id!r} in {app_id}")
    click.echo(f"deleted user {user_id} and {deleted} events")


# dashboard ----------------------------------------------------------------------------


@main.command("demo-data")
@click.argument("app_id")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=30,
    show_default=True,
    help="Spread the traffic over this many days up to now.",
)
@click.option(
    "--page-views",
    type=click.IntRange(1),
    default=30_000,
    show_default=True,
    help="About this many page views (bots' included).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="The same seed, days and size give the same visitors and events.",
)
@click.option("--mark-demo", is_flag=True, hidden=True)  # serve --demo's fill: mark it done
@db_option
def demo_data(app_id: str, days: int, page_views: int, seed: int, mark_demo: bool, db: str) -> None:
    """Fill an app with realistic generated traffic (collector/demo/traffic.py)."""
    from collector.demo.traffic import generate, ingest

    store = open_store(db)
    app = _require_app(store, app_id)
    stored = ingest(store, app, generate(days=days, page_views=page_views, seed=seed))
    if mark_demo:
        store.update_app(app_id, settings={"demo_data": days})
    click.echo(f"stored {stored} generated events in {app_id} over {days} days")


@main.group()
def admins() -> None:
    """Dashboard accounts (log in at /dashboard/)."""


def _email(value: str) -> str:
    from collector.dashboard.accounts import normalise_email

    email = normalise_email(value)
    if email is None:
        raise click.BadParameter(f"{value!r} is not an email address", param_hint="EMAIL")
    return email


def _new_password(from_stdin: bool) -> str:
    from collector.dashboard.passwords import check_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = check_password(password)
    if problem:
        raise click.BadParameter(f"the password {problem}", param_hint="password")
    return password


@admins.command("create")
@click.argument("email")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@db_option
def admins_create(email: str, password_stdin: bool, db: str) -> None:
    """Create a dashboard admin (asks for the password unless --password-stdin)."""
    from collector.dashboard.passwords import hash_password

    address = _email(email)
    store = open_store(db, create=True)
    if store.get_admin(address) is not None:
        raise click.ClickException(f"an admin {address} exists (see `collector admins passwd`)")
    if not store.create_admin(address, hash_password(_new_password(password_stdin))):
        raise click.ClickException(f"an admin {address} exists")
    click.echo(f"created admin {address}")


@admins.command("list")
@click.option("--json", "as_json", is_flag=True)
@db_option
def admins_list(as_json: bool, db: str) -> None:
    """List dashboard admins, with their open sessions."""
    found = open_store(db).list_admins()
    if as_json:
        _echo_json(found)
        return
    for admin in found:
        click.echo(f"{admin['email']}\t{admin['created_at']}\t{admin['sessions']} sessions")


@admins.command("delete")
@click.argument("email")
@db_option
def admins_delete(email: str, db: str) -> None:
    """Delete an admin; their sessions end at once."""
    address = _email(email)
    if not open_store(db).delete_admin(address):
        raise click.ClickException(f"no admin {address}")
    click.echo(f"deleted admin {address}")


@admins.command("passwd")
@click.argument("email")
@click.option(
    "--password-stdin", is_flag=True, help="Read the new password from the first line of stdin."
)
@db_option
def admins_passwd(email: str, password_stdin: bool, db: str) -> None:
    """Change an admin's password; their sessions end at once."""
    from collector.dashboard.passwords import hash_password

    address = _email(email)
    store = open_store(db)
    if store.get_admin(address) is None:
        raise click.ClickException(f"no admin {address}")
    store.set_admin_password(address, hash_password(_new_password(password_stdin)))
    click.echo(f"changed the password of {address}; their sessions are ended")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@db_option
def backup(path: str, db: str) -> None:
    """Copy a SQLite database to PATH and its inbox file to PATH-inbox, consistently,
    while it is served (SQLite's online backup API). To restore, stop the collector and
    serve the copy (`--db PATH`), or move both files into the database's place. For
    PostgreSQL, use pg_dump (docs/operations.md, Backups)."""
    if is_url(db):
        raise click.ClickException(
            "collector backup copies SQLite files; for PostgreSQL use "
            "pg_dump --format=custom (docs/operations.md, Backups)"
        )
    open_store(db).close()  # the same refusal of a missing file as every command
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise click.ClickException(f"cannot back up to {path}: {folder} is not a folder")
    try:
        size = backup_sqlite(db, path)
    except (OSError, ValueError, sqlite3.Error) as exc:
        raise click.ClickException(f"backup to {path} failed: {exc}") from None
    click.echo(f"backed up {db} to {path} and {path}-inbox ({size} bytes)")


@main.command("migrate-data")
@click.option("--from", "source", required=True, help="The database to copy: a path or URL.")
@click.option("--to", "target", required=True, help="An empty database: a path or URL.")
def migrate_data(source: str, target: str) -> None:
    """Copy every app, key, rule, user and event from one database into an empty one
    (e.g. a SQLite file into PostgreSQL). Stop the collectors writing to the source
    first: events accepted during the copy would not be in the target."""
    if source == target:
        raise click.ClickException("--from and --to name the same database")
    src = open_store(source)
    dst = open_store(target, create=True)
    try:
        counts = transfer.transfer(
            src, dst, lambda table, n: click.echo(f"{table}: {n} rows", err=True)
        )
    except ValueError as exc:
        raise click.ClickException(f"{exc}: {display(target)}") from None
    finally:
        src.close()
        dst.close()
    click.echo(f"copied {counts['events']} events of {counts['apps']} apps to {display(target)}")
