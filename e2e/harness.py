"""The end-to-end harness: a real `collector serve` process and the CLI on its database,
a test site on another origin (so CORS is real), and small page helpers.

Every test asserts on what the collector stored (`collector export`), not only on what
the browser sent."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import ConsoleMessage, Page, Request

from collector.store import open_store

ROOT = Path(__file__).resolve().parent.parent
SITE_DIR = Path(__file__).resolve().parent / "site"
WAIT_SECONDS = 20.0

# Playwright sets navigator.webdriver = true, which the SDK reports and the collector
# rightly flags as a bot. Tests about ordinary visitors remove it with this init script;
# the bot test keeps it.
NOT_WEBDRIVER = "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    condition: Callable[[], Any],
    what: str,
    timeout: float = WAIT_SECONDS,
    pause: Callable[[float], None] = lambda ms: time.sleep(ms / 1000),
) -> Any:
    """Polls `condition` until it returns something truthy (and returns that)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        pause(100)


@dataclass
class App:
    app_id: str
    api_key: str


class Collector:
    """A `collector serve` subprocess and the CLI on the same database."""

    def __init__(self, db: Path, log: Path) -> None:
        self.db = db
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "COLLECTOR_DB": str(db),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        # While a test's page is open, polls pause with page.wait_for_timeout: the sync
        # Playwright API runs route handlers and event listeners only inside its calls.
        self.pause: Callable[[float], None] = lambda ms: time.sleep(ms / 1000)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "collector", *args, "--db", str(self.db)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            raise AssertionError(f"collector {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        # The database made and migrated before the server and the CLI share it.
        store = open_store(str(self.db))
        store.migrate()
        store.close()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "collector", "serve", "--demo"),
                    *("--host", "127.0.0.1", "--port", str(self.port), "--db", str(self.db)),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"collector exited:\n{self.log.read_text()}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, "the collector to answer /healthz")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def create_app(self, *origins: str) -> App:
        args = ["apps", "create", "e2e"]
        for origin in origins:
            args += ["--origin", origin]
        created = json.loads(self.cli(*args, "--json"))
        return App(created["app_id"], created["api_key"])

    def export(self, app: App) -> list[dict[str, Any]]:
        out = self.cli("export", app.app_id, "--format", "jsonl")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def events(self, app: App, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.export(app) if name is None or e["event"] == name]

    def wait_events(
        self, app: App, name: str, count: int = 1, timeout: float = WAIT_SECONDS
    ) -> list[dict[str, Any]]:
        """Waits until at least `count` events named `name` are stored; returns them all."""
        rows: list[dict[str, Any]] = wait_for(
            lambda: rows if len(rows := self.events(app, name)) >= count else None,
            f"{count} stored {name!r} event(s)",
            timeout,
            self.pause,
        )
        return rows


class Site:
    """The test site, on http://localhost:PORT (the collector is on 127.0.0.1: another
    origin). Pages live under /a/APP_ID/ and have {{APP_ID}}, {{COLLECTOR}} and
    {{SDK_SRC}} filled in; a POST answers with a redirect to thanks.html; /stats/...
    is a first-party proxy to the collector."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                parts = path.split("/", 3)
                if len(parts) != 4 or parts[1] != "a" or not (SITE_DIR / parts[3]).is_file():
                    self.send_error(404)
                    return
                app_id, name = parts[2], parts[3]
                text = (SITE_DIR / name).read_text()
                body = (
                    text.replace("{{APP_ID}}", app_id)
                    .replace("{{SDK_SRC}}", site.collector.url + "/sdk.js")
                    .replace("{{COLLECTOR}}", site.collector.url)
                ).encode()
                kind = "text/html" if name.endswith(".html") else "application/javascript"
                self.send_response(200)
                self.send_header("Content-Type", kind + "; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlsplit(self.path).path
                if path.startswith("/stats/"):
                    self.proxy(path.removeprefix("/stats"), body)
                    return
                # A form post: answer like a server-rendered site would.
                self.send_response(303)
                self.send_header("Location", path.rsplit("/", 1)[0] + "/thanks.html")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def proxy(self, path: str, body: bytes) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", site.collector.port, timeout=10)
                keep = ("content-type", "origin", "referer", "user-agent")
                headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
                try:
                    conn.request("POST", path, body, headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    # Before answering the browser, which may have gone (a beacon sent as
                    # its page closed): a write that fails must not leave this open.
                    conn.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, app: App, page: str) -> str:
        return f"{self.origin}/a/{app.app_id}/{page}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ready(page: Page) -> None:
    """Waits until the SDK has loaded and replaced any pre-load stub."""
    page.wait_for_function("window.telltale && typeof window.telltale.trackEvent == 'function'")


def flush(page: Page) -> bool:
    """telltale.flush(): True when everything queued was delivered."""
    delivered: bool = page.evaluate("telltale.flush()")
    return delivered


def is_ingest(url: str) -> bool:
    return urlsplit(url).path.endswith("/v1/events")


def ingest_requests(page: Page, event: str = "request") -> list[Request]:
    """The page's ingest requests (or, with event="requestfailed", the failed ones), as
    they happen."""
    seen: list[Request] = []

    def record(request: Request) -> None:
        if is_ingest(request.url):
            seen.append(request)

    page.on(event, record)  # type: ignore[call-overload]
    return seen


def debug_lines(page: Page) -> list[ConsoleMessage]:
    """The SDK's console lines ("[telltale] ..."), as they are printed."""
    seen: list[ConsoleMessage] = []

    def record(message: ConsoleMessage) -> None:
        if message.text.startswith("[telltale]"):
            seen.append(message)

    page.on("console", record)
    return seen
