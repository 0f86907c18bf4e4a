"""Fuzzing against a real server (tests/fuzz.py says what is sent and checked), on both
backends. Seeded and short here (`make test`); `make fuzz` sets FUZZ_CASES=100000 and a
seed of its own (FUZZ_SEED)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import fuzz
from tests.conftest import BACKENDS, ORIGIN
from tests.server import CollectorProcess, create_app

pytestmark = pytest.mark.slow

CASES = int(os.environ.get("FUZZ_CASES", "1200"))
SEED = int(os.environ.get("FUZZ_SEED", "20"))
PROPERTY_SHARE = 0.2  # of CASES drawn by hypothesis, the rest by mutation
WARM_UP_SHARE = 0.5  # of the mutation cases, before memory is first measured
# From this many cases, the warm-up also fills the caches that take a request an entry
# (24,000 requests): in `make test`'s short run they would take longer than the run.
FILL_EVERY_CACHE = 20_000


@pytest.fixture(params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CollectorProcess, dict]]:
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    db = (
        cluster.create_database()
        if cluster is not None
        else str(Path(tmp_path_factory.mktemp("fuzz")) / "t.db")
    )
    limits = ("--rate-limit-app", "0", "--rate-limit-ip", "0", "--rate-limit-events", "0")
    app = create_app(db, "fuzz", "--origin", ORIGIN, *limits)
    with CollectorProcess(db, workers=1) as server:
        yield server, app
    if cluster is not None:
        cluster.drop_database(db)


def test_fuzzed_requests_never_break_the_collector(served: tuple[CollectorProcess, dict]) -> None:
    server, app = served
    tally = fuzz.Tally()
    (worker,) = server.worker_pids()
    mutator = fuzz.Mutator(random.Random(SEED), app["app_id"], app["api_key"], ORIGIN)
    property_count = int(CASES * PROPERTY_SHARE)
    mutations = CASES - property_count
    warm_up = int(mutations * WARM_UP_SHARE)

    # Warm-up: the bounded caches filled to their bounds (only the ones batches fill in
    # a short run), then half the mutation cases; memory is compared from there.
    fill_rss = fuzz.rss_kb(worker)
    filling = fuzz.Tally()
    fill = fuzz.cache_filling_cases(
        app["app_id"], app["api_key"], ORIGIN, SEED, per_request=CASES >= FILL_EVERY_CACHE
    )
    fuzz.run_cases(server.url, fill, filling)
    assert filling.failures == [] and max(filling.by_status) < 500, filling.failures
    fuzz.run_cases(server.url, fuzz.mutation_cases(mutator, warm_up), tally)
    warm_rss = fuzz.rss_kb(worker)
    fuzz.run_cases(server.url, fuzz.mutation_cases(mutator, mutations - warm_up), tally)
    cases = fuzz.property_cases(app["app_id"], app["api_key"], property_count, SEED)
    fuzz.run_cases(server.url, cases, tally)
    end_rss = fuzz.rss_kb(worker)

    log_tail = server.output()[-3000:]
    assert tally.failures == [], "\n".join(tally.failures) + "\nserver log:\n" + log_tail
    assert tally.sent >= CASES * 0.9  # hypothesis may draw a few fewer than asked
    assert max(tally.by_status) < 500, tally.by_status
    assert tally.by_status.get(202, 0) > 0 and tally.by_status.get(400, 0) > 0, tally.by_status
    assert "Traceback" not in server.output()
    # Everything acknowledged is stored, and nothing invalid is.
    r = httpx.get(
        server.url + "/v1/events",
        params={"limit": "1000", "include_bots": "true"},
        headers={"Authorization": f"Bearer {app['api_key']}"},
        timeout=60,
    )
    stored: list[dict] = []
    while True:
        assert r.status_code == 200, r.text
        stored += r.json()["events"]
        if not r.json()["next"]:
            break
        r = httpx.get(
            server.url + "/v1/events",
            params={"limit": "1000", "include_bots": "true", "cursor": r.json()["next"]},
            headers={"Authorization": f"Bearer {app['api_key']}"},
            timeout=60,
        )
    assert fuzz.invalid_stored(stored) == []
    assert tally.acknowledged, "no event was acknowledged: the check below would be empty"
    assert tally.acknowledged <= {e["id"] for e in stored}
    assert (worker,) == tuple(server.worker_pids())  # the worker never died
    print(
        f"{tally.sent} cases: {tally.by_status}; RSS {fill_rss} kB before the warm-up, "
        f"{warm_rss} kB after it, {end_rss} kB at the end"
    )
    assert end_rss <= warm_rss * 1.10, (
        f"RSS {warm_rss} kB after the warm-up, {end_rss} kB at the end"
    )
