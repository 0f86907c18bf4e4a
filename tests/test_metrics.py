"""`GET /metrics` and the access log: in-process on each backend, and across the worker
processes of a real `collector serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from collector.errors import StorageFailed
from collector.models import App
from collector.store import Store
from tests.conftest import auth, browser
from tests.server import ROOT, CollectorProcess, create_app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(get: Callable[[str], httpx.Response]) -> dict:
    r = get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def value(s: dict, name: str, **labels: str) -> float:
    return s.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_events_bots_and_commits(
    client: TestClient, store: Store, app: App, key: str
) -> None:
    # The counters are this process's (no multiprocess folder): compare before and after.
    before = scrape(client.get)
    message = {"event": "signup", "user_id": "u1", "message_id": f"m-{uuid.uuid4()}"}
    assert client.post("/v1/event", json=message, headers=auth(key)).status_code == 202
    assert client.post("/v1/event", json=message, headers=auth(key)).status_code == 202
    batch = {"batch": [{"event": "ok", "user_id": "u1"}, {"user_id": "u1"}]}
    answer = client.post("/v1/events", json=batch, headers=auth(key)).json()
    assert len(answer["errors"]) == 1, answer
    headless = browser(ua="HeadlessChrome/124.0")
    body = orjson.dumps({"app_id": app.app_id, "event": "page_viewed", "anonymous_id": "a"})
    assert client.post("/v1/event", content=body, headers=headless).status_code == 202
    assert client.post("/v1/event", json=message).status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client.get)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "telltale_http_requests_total"
    assert delta(total, path="/v1/event", status="202") == 3
    assert delta(total, path="/v1/event", status="401") == 1
    assert delta(total, path="/healthz", status="200") == 1
    assert delta(total, path="other", status="404") == 1
    assert delta("telltale_events_total", outcome="accepted") == 3
    assert delta("telltale_events_total", outcome="duplicate") == 1
    assert delta("telltale_events_total", outcome="invalid") == 1
    assert delta("telltale_bots_total", reason="headless") == 1
    assert delta("telltale_group_commit_events_count") == 4  # one commit per request here
    assert delta("telltale_group_commit_events_sum") == 4
    assert delta("telltale_group_commit_seconds_count") == 4
    assert ("telltale_write_queue_events", ()) in after
    assert ("telltale_indexer_backlog_events", ()) in after
    assert value(after, "telltale_database_up") == 1


def test_a_scrape_while_the_database_is_down_leaves_out_only_the_backlog(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> int:  # what the PostgreSQL store raises while its server is away
        raise StorageFailed(1, "Database unavailable, retry later")

    monkeypatch.setattr(store, "backlog", down)
    client.app.state.collector.store = store  # type: ignore[attr-defined]
    after = scrape(client.get)
    assert value(after, "telltale_database_up") == 0
    assert ("telltale_indexer_backlog_events", ()) not in after
    assert ("telltale_write_queue_events", ()) in after


def test_a_route_with_a_parameter_counts_as_its_template(
    client: TestClient, app: App, key: str
) -> None:
    client.get("/v1/users/u_secret_1", headers=auth(key))
    client.get("/v1/users/u_secret_2", headers=auth(key))
    text = client.get("/metrics").text
    assert 'path="/v1/users/{user_id:path}"' in text
    assert "u_secret" not in text


@pytest.mark.slow
def test_metrics_add_up_every_worker_and_the_access_log_has_no_secret(db: str) -> None:
    app = create_app(db, "metrics", "--rate-limit-app", "0", "--rate-limit-ip", "0")
    key = app["api_key"]
    with CollectorProcess(db, workers=2, extra=("--access-log",)) as server:
        pids: set[int] = set()
        sent = 0
        deadline = time.monotonic() + 60
        # New connections until both workers have answered: each counts its own.
        while len(pids) < 2 or sent < 10:
            with httpx.Client(base_url=server.url) as client:
                r = client.post(
                    "/v1/event?app_id=x",
                    json={"event": "e", "user_id": f"u{sent}"},
                    headers=auth(key),
                )
                assert r.status_code == 202, r.text
                sent += 1
                pids.add(client.get("/healthz").json()["worker"])
            assert time.monotonic() < deadline, f"only workers {pids} answered"

        def total() -> float:
            s = samples(httpx.get(server.url + "/metrics").text)
            return value(s, "telltale_http_requests_total", path="/v1/event", status="202")

        # Each worker hands its counts over within a second: wait for the sum.
        deadline = time.monotonic() + 30
        while total() != sent:
            assert time.monotonic() < deadline, f"{total()} of {sent}"
            time.sleep(0.05)
        s = samples(httpx.get(server.url + "/metrics").text)
        assert value(s, "telltale_events_total", outcome="accepted") == sent
        assert value(s, "telltale_group_commit_events_sum") == sent

        lines: list[str] = []
        while not any('"/v1/event"' in line for line in lines):
            assert time.monotonic() < deadline, server.output()
            lines = [x for x in server.output().splitlines() if x.startswith("{")]
        logged = [json.loads(x) for x in lines]
        posts = [x for x in logged if x["method"] == "POST"]
        assert {x["worker"] for x in logged} == pids
        assert posts[0]["path"] == "/v1/event" and posts[0]["status"] == 202
        assert isinstance(posts[0]["duration_ms"], float)
        assert key not in server.output()
        assert "app_id=x" not in server.output()  # no query string


@pytest.mark.slow
def test_a_single_worker_serves_its_own_counts_and_the_indexers(db: str) -> None:
    # With one worker, the server process itself serves: the metrics client must have
    # been imported only after `serve` set the run's folder, or its counts would be
    # missing from the scrape.
    app = create_app(db, "one", "--rate-limit-app", "0", "--rate-limit-ip", "0")
    with CollectorProcess(db) as server, httpx.Client(base_url=server.url) as client:
        for i in range(3):
            r = client.post(
                "/v1/event", json={"event": "e", "user_id": f"u{i}"}, headers=auth(app["api_key"])
            )
            assert r.status_code == 202
        deadline = time.monotonic() + 30
        while True:
            s = samples(client.get("/metrics").text)
            if value(s, "telltale_events_total", outcome="accepted") == 3:
                break
            assert time.monotonic() < deadline, s
        # The indexer's retention pass at start is counted in the same folder.
        while value(s, "telltale_retention_runs_total") < 1:
            assert time.monotonic() < deadline, s
            s = samples(client.get("/metrics").text)


def test_importing_the_command_line_does_not_import_the_metrics_client() -> None:
    code = "import sys, collector.cli; assert 'prometheus_client' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_observing_many_at_once_equals_observing_each() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from collector.ingest.metrics import observe_many

    values = [0.0, 1.0, 1.5, 2.0, 2.0, 7.0, 10.0, 11.0, 1e9]
    outputs = []
    for bulk in (False, True):
        registry = CollectorRegistry()
        h = Histogram("h", "test", buckets=(1, 2, 5, 10), registry=registry)
        if bulk:
            observe_many(h, values)
        else:
            for v in values:
                h.observe(v)
        outputs.append(
            [x for x in generate_latest(registry).decode().splitlines() if "_created" not in x]
        )
    assert outputs[0] == outputs[1]
    assert 'h_bucket{le="1.0"} 2.0' in outputs[1] and 'h_bucket{le="+Inf"} 9.0' in outputs[1]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_runs_metrics_folder_is_removed_when_the_server_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    db = tmp_path / "t.db"
    create_app(db)
    runs = tmp_path / "tmp"
    runs.mkdir()
    monkeypatch.setenv("TMPDIR", str(runs))  # where the server makes the run's folder
    with CollectorProcess(db, workers=workers):
        [folder] = list(runs.glob("telltale-metrics-*"))
        deadline = time.monotonic() + 30
        while not list(folder.glob("counter_*.db")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert not folder.exists()
