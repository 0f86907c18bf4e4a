"""Query speed on a generated app: 1,000,000 events from 100,000 users.

    python -m bench.query_bench [--users 100000] [--events 1000000] [--runs 3]
                                [--db-url sqlite] [--db-url postgresql://…] [--db PATH]

The data goes in through the store's own write path (`write`, 5,000 events a batch, then
`index_all`, the indexer's work), so identity links, `person` rewrites and the per-person
summaries are maintained exactly as in production. About a quarter
of the users browse anonymously before signing up (those events count for them once
linked); 2% of the traffic is bots. Each figure is the median of `--runs` runs after one
warm-up run, in seconds, timed at the store (the HTTP layer adds JSON encoding of one
page only).
With `--db PATH` the generated SQLite file is kept and reused by the next run; a
`--db-url` database is reused too if it holds the app already. With several backends
(bench/backends.py; by default a scratch database of each), the figures are side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import backends
from collector.models import Event
from collector.query.funnels import parse_funnel_query, run_funnel
from collector.query.segments import parse_segment_query
from collector.query.types import DAY_MS
from collector.store import SQLiteStore
from tests.factories import ev

AS_OF = 1_793_491_200_000  # 2026-11-01T00:00:00Z: windows count back from here
SPAN_DAYS = 90
BATCH = 5_000
PLANS = ("free", "free", "free", "pro", "pro", "enterprise")
FEATURES = (
    ("page_viewed", 40),
    ("feature_used", 15),
    ("export_completed", 10),
    ("report_created", 8),
    ("button_clicked", 8),
    ("form_submitted", 5),
    ("advanced_export_viewed", 3),
    ("advanced_export_used", 1),
    ("purchase_completed", 1),
    ("plan_upgraded", 1),
)


class _Generator:
    def __init__(self, app_id: str, seed: int) -> None:
        self.app_id = app_id
        self.rng = random.Random(seed)
        self.batch: list[Event] = []
        self.events = 0

    def add(
        self,
        name: str,
        ts: int,
        *,
        user: str | None = None,
        anon: str | None = None,
        props: dict[str, Any] | None = None,
        traits: dict[str, Any] | None = None,
        bot: bool = False,
    ) -> None:
        self.batch.append(
            ev(self.app_id, name, ts, user=user, anon=anon, props=props, traits=traits,
               bot=bot, context={"source": "server"})
        )  # fmt: skip
        if name != "identify":
            self.events += 1


def generate(store: Any, users: int, events: int, seed: int = 7) -> str:
    """Create an app and fill it; returns its app id."""
    if isinstance(store, SQLiteStore):
        # A throwaway file: durability buys nothing here, and fsyncs would dominate.
        store.conn().execute("PRAGMA synchronous=OFF")
    app = store.create_app("query-bench", ["http://localhost"], {})
    gen = _Generator(app.app_id, seed)
    rng = gen.rng
    names = [n for n, _ in FEATURES]
    weights = [w for _, w in FEATURES]
    start = AS_OF - SPAN_DAYS * DAY_MS
    bot_events = int(events * 0.02)
    # Funnel steps and anonymous browsing come first; the rest of the budget is spread
    # over users with a long tail (a few power users, many light ones).
    per_user_budget = (events - bot_events) / users - 3.2
    for u in range(users):
        user = f"u{u:06d}"
        plan = rng.choice(PLANS)
        signup = start + rng.randrange(SPAN_DAYS * DAY_MS)
        if rng.random() < 0.25:
            anon = f"a{u:06d}"
            for _ in range(rng.randint(1, 4)):
                gen.add(
                    "page_viewed",
                    signup - rng.randrange(1, 3 * DAY_MS),
                    anon=anon,
                    props={"path": "/pricing", "plan": plan},
                )
            gen.add("signup_completed", signup, user=user, anon=anon, props={"plan": plan})
        else:
            gen.add("signup_completed", signup, user=user, props={"plan": plan})
        gen.add("identify", signup, user=user, traits={"plan": plan, "country": "fr"})
        t = signup
        for step in ("onboarding_started", "onboarding_completed"):
            if rng.random() > 0.7:
                break
            t += rng.randrange(60_000, 4 * DAY_MS)
            gen.add(step, t, user=user, props={"plan": plan})
        # One user in twenty is a power user with eight times the activity.
        mean = per_user_budget * (8 if rng.random() < 0.05 else 0.6 / 0.95)
        n = int(rng.expovariate(1 / mean)) if mean > 0 else 0
        for name in rng.choices(names, weights, k=n):
            ts = signup + rng.randrange(max(1, AS_OF - signup))
            gen.add(name, ts, user=user, props={"plan": plan, "path": "/app"})
        if len(gen.batch) >= BATCH:
            store.write(gen.batch)
            gen.batch = []
    while gen.events < events:
        gen.add(
            "page_viewed",
            start + rng.randrange(SPAN_DAYS * DAY_MS),
            anon=f"bot{rng.randrange(2_000)}",
            props={"path": "/"},
            bot=True,
        )
        if len(gen.batch) >= BATCH:
            store.write(gen.batch)
            gen.batch = []
    if gen.batch:
        store.write(gen.batch)
    backends.index_all(store)  # index it all now, so no query below pays for it
    return app.app_id


SEGMENTS: dict[str, list[dict[str, Any]]] = {
    "has_done": [{"has_done": {"event": "advanced_export_viewed"}}],
    "has_not_done": [{"has_not_done": {"event": "advanced_export_used"}}],
    "count gt 10 (power users)": [{"count": {"event": "export_completed", "gt": 10}}],
    "count gte 3 within 30 days": [
        {"count": {"event": "export_completed", "gte": 3, "within_days": 30}}
    ],
    "count lt 2 (zero included)": [{"count": {"event": "report_created", "lt": 2}}],
    "first_done_within 7 days": [{"first_done_within": {"event": "signup_completed", "days": 7}}],
    "last_done_within 7 days": [{"last_done_within": {"event": "page_viewed", "days": 7}}],
    "last_done_within 7 days, where": [
        {"last_done_within": {"event": "page_viewed", "days": 7, "where": {"plan": "pro"}}}
    ],
    "has_done, where in": [
        {"has_done": {"event": "feature_used", "where": {"plan": {"in": ["pro", "enterprise"]}}}}
    ],
    "trait eq": [{"trait": {"key": "plan", "eq": "pro"}}],
    "nested segment": [
        {"has_done": {"event": "advanced_export_viewed"}},
        {"has_not_done": {"event": "advanced_export_used"}},
        {"count": {"event": "export_completed", "gt": 2, "within_days": 30}},
        {"trait": {"key": "plan", "neq": "free"}},
        {
            "match": "any",
            "conditions": [
                {"has_done": {"event": "plan_upgraded"}},
                {"last_done_within": {"event": "page_viewed", "days": 7}},
            ],
        },
    ],
}
FUNNEL = {
    "steps": ["signup_completed", "onboarding_started", "onboarding_completed", "export_completed"],
    "within_days": 7,
}
FUNNELS: dict[str, dict[str, Any]] = {
    "4-step funnel": FUNNEL,
    "4-step funnel, breakdown": {**FUNNEL, "breakdown": "plan"},
}


def _median_time(func: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Median wall-clock and CPU seconds. The CPU figure is what the query costs; the
    wall figure also holds whatever else the machine was doing."""
    result = func()  # warm-up: page cache, SQLite's schema and statement caches
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = func()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def run(
    users: int = 100_000, events: int = 1_000_000, db: str | None = None, runs: int = 3
) -> dict[str, float]:
    """Generate (or reuse) the data in database `db` (a SQLite path or a database URL;
    None: a scratch SQLite file) and time every query; keys are figure names, values
    seconds (CPU seconds of this process under `... cpu`, people matched under
    `... users`)."""
    with tempfile.TemporaryDirectory(prefix="query-bench-") as tmp:
        return _run(users, events, db or os.path.join(tmp, "bench.db"), runs)


def _run(users: int, events: int, db: str, runs: int) -> dict[str, float]:
    store = backends.open_store(db)
    r: dict[str, float] = {}
    try:
        apps = [a for a in store.list_apps() if a.name == "query-bench"]
        if apps:
            app_id = apps[0].app_id
        else:
            t0 = time.perf_counter()
            app_id = generate(store, users, events)
            r["generate (s)"] = time.perf_counter() - t0
        r["events"] = backends.stored_events(store, app_id)
        if isinstance(store, SQLiteStore):
            r["persons"] = (
                store.conn()
                .execute("SELECT COUNT(DISTINCT person) FROM person_event_stats")
                .fetchone()[0]
            )
        for name, conditions in SEGMENTS.items():
            query = parse_segment_query({"match": "all", "conditions": conditions}, AS_OF)
            r[name], r[f"{name} cpu"], page = _median_time(
                lambda q=query: store.segment(app_id, q), runs
            )
            r[f"{name} users"] = page.count  # type: ignore[attr-defined]
        # The first funnel reads every day of the app into the column cache
        # (store/funnels.py); later ones read only the days that changed.
        wall, cpu = time.perf_counter(), time.process_time()
        run_funnel(store, app_id, parse_funnel_query(FUNNEL))
        r["funnel, first read (s)"] = time.perf_counter() - wall
        r["funnel, first read cpu (s)"] = time.process_time() - cpu
        for name, body in FUNNELS.items():
            funnel = parse_funnel_query(body)
            r[name], r[f"{name} cpu"], answer = _median_time(
                lambda f=funnel: run_funnel(store, app_id, f), runs
            )
            r[f"{name} users"] = answer["steps"][-1]["users"]  # type: ignore[index]
    finally:
        store.close()
    return r


def run_backends(
    users: int, events: int, runs: int, db_urls: list[str]
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """`run` on each selected backend's database (bench/backends.py), one after the other;
    the results by backend name, and the lines saying which backends did not run."""
    databases, skipped = backends.select(db_urls)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="query-bench-") as tmp, contextlib.ExitStack() as stack:
        for i, database in enumerate(databases):
            made = database.make(Path(tmp), stack, f"querybench{i}")
            name = database.backend.name
            if name in results:
                name = f"{name} ({made.url})"
            results[name] = _run(users, events, made.url, runs)
    return results, skipped


def report(results: dict[str, dict[str, float]], skipped: list[str]) -> str:
    lines = [f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"]
    for backend, r in results.items():
        if "generate (s)" in r:
            lines.append(f"{backend}: generated in {r['generate (s)']:.1f} s (through its write)")
        persons = f", {int(r['persons']):,} persons" if "persons" in r else ""
        lines.append(f"{backend}: {int(r['events']):,} events{persons}")
    names = [*SEGMENTS, *FUNNELS]
    width = max(len(n) for n in names)
    header = f"{'query':<{width}}"
    for backend in results:
        wall = f"{backend} wall s"
        header += f"  {wall:>{len(wall)}}  {'cpu s':>6}  {'users':>8}"
    lines.append(header)
    for name in names:
        line = f"{name:<{width}}"
        for backend, r in results.items():
            line += (
                f"  {r[name]:>{len(backend) + 7}.3f}  {r[name + ' cpu']:>6.3f}  "
                f"{int(r[name + ' users']):>8,}"
            )
        lines.append(line)
    for backend, r in results.items():
        lines.append(
            f"{backend}: the first funnel, reading the column cache, "
            f"{r['funnel, first read (s)']:.2f} s ({r['funnel, first read cpu (s)']:.2f} s CPU)"
        )
    lines.append("(funnels: users who reached the last step; cpu s: this process's, so for a")
    lines.append(" server database only the client's share)")
    lines.extend(skipped)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", help="SQLite: keep the generated database here (reused if present)")
    parser.add_argument(
        "--db-url",
        action="append",
        default=[],
        help="a backend's database (repeatable): sqlite or postgresql (a scratch one), a "
        "SQLite path, or a database URL; default: a scratch database of each backend",
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    urls = [*args.db_url, *([args.db] if args.db else [])]
    results, skipped = run_backends(args.users, args.events, args.runs, urls)
    print(report(results, skipped))


if __name__ == "__main__":
    main()
