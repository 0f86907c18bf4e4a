"""Backups: `collector backup` copies a SQLite database while it is served, and the copy
is served again (the restore); PostgreSQL's pg_dump / pg_restore, as docs/operations.md says."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.store import open_store
from collector.timeutil import now_ms
from tests.conftest import auth
from tests.factories import ev
from tests.pgcluster import PostgresCluster
from tests.server import CollectorProcess, cli, create_app, index_all


def _message_ids(db: str | Path, app_id: str) -> set[str]:
    index_all(db)
    store = open_store(str(db))
    try:
        return {row["message_id"] for row in store.export_events(app_id)}
    finally:
        store.close()


@pytest.mark.slow
def test_backup_while_serving_is_consistent_and_serves_again(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    copy = tmp_path / "backup.db"
    app = create_app(db, "shop", "--rate-limit-app", "0", "--rate-limit-ip", "0")
    acked: list[str] = []
    stop = threading.Event()
    with CollectorProcess(db, workers=2) as server:

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    mid = str(uuid.uuid4())
                    r = client.post(
                        "/v1/event",
                        json={"event": "e", "user_id": "u", "message_id": mid},
                        headers=auth(app["api_key"]),
                    )
                    assert r.status_code == 202, r.text
                    acked.append(mid)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            while len(acked) < 50:  # traffic is flowing before and during the backup
                stop.wait(0.01)
            before = list(acked)
            out = cli(db, "backup", str(copy))
            after = len(acked)
        finally:
            stop.set()
            sender.join()
    assert "backed up" in out and after > len(before)
    # A whole database that checks out, in two files (the database and its inbox).
    for path in (copy, tmp_path / "backup.db-inbox"):
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        conn.close()
    # Every event acknowledged before the backup began is in it; none from after the end.
    stored = _message_ids(copy, app["app_id"])
    assert set(before) <= stored
    assert stored <= set(acked[:after])

    # The restore: serve the copy, and it takes events again with the same key.
    with CollectorProcess(copy) as restored:
        r = httpx.post(
            restored.url + "/v1/event",
            json={"event": "e", "user_id": "u", "message_id": "after-restore"},
            headers=auth(app["api_key"]),
        )
        assert r.status_code == 202, r.text
    assert "after-restore" in _message_ids(copy, app["app_id"])


def test_backup_refuses_an_existing_target_a_missing_database_and_a_url(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "t.db"
    create_app(db)
    target = tmp_path / "exists.db"
    target.write_bytes(b"keep me")
    result = runner.invoke(main, ["backup", str(target), "--db", str(db)])
    assert result.exit_code == 1 and "exists" in result.output
    assert target.read_bytes() == b"keep me"
    result = runner.invoke(main, ["backup", str(tmp_path / "b.db"), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and "no database" in result.output
    assert not (tmp_path / "b.db").exists()
    url = "postgresql://u@127.0.0.1:1/x"
    result = runner.invoke(main, ["backup", str(tmp_path / "b.db"), "--db", url])
    assert result.exit_code == 1 and "pg_dump" in result.output


def test_pg_dump_and_pg_restore_as_documented(pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    source = pg_cluster.create_database()
    target = pg_cluster.create_database()
    try:
        store = open_store(source)
        store.migrate()
        app = store.create_app("shop", [], {})
        key = store.create_key(app.app_id)[1]
        store.write([ev(app.app_id, "signup", now_ms(), user="u1", message_id="m1")])
        store.close()
        dump = tmp_path / "telltale.dump"
        bindir = pg_cluster.bindir
        subprocess.run([bindir / "pg_dump", "--format=custom", "--file", dump, source], check=True)
        subprocess.run([bindir / "pg_restore", "--no-owner", "--dbname", target, dump], check=True)
        assert _message_ids(target, app.app_id) == {"m1"}
        restored = open_store(target)
        try:
            restored.migrate()
            found = restored.get_app(app.app_id)
            assert found is not None and found.name == "shop"
        finally:
            restored.close()
        # Keys are stored hashed: the restored app lists the same key.
        out = cli(target, "keys", "list", app.app_id)
        assert key[:7] in out
    finally:
        pg_cluster.drop_database(source)
        pg_cluster.drop_database(target)
