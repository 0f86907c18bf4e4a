"""Deleting an app and everything of it (`collector apps delete`), written once for every
backend: which tables hold its rows, in what order they go, and what is counted.

Each backend calls `erase` inside a write transaction of its own that has indexed every
pending event first (an accepted event is a stored one: deleting only the indexed rows
would leave the inbox to bring the rest back). The deletion is idempotent: run again, it
finds nothing, or only what a collector that still had the app cached accepted meanwhile
(the CLI runs it again once every collector's app cache has expired)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# Runs one statement with its parameters; returns the rows it selected (a SELECT) and
# how many rows it changed (anything else).
Execute = Callable[[str, Sequence[Any]], tuple[list[tuple[Any, ...]], int]]

# Every table whose rows name an app in an `app_id` column, in the order they are
# deleted: what refers to the app by foreign key (api_keys, rules, saved_segments) before
# `apps`. tests/test_apps_delete.py compares this list with each backend's schema (every
# table with an app_id column), so a table added later and not listed here fails it.
APP_TABLES = (
    "events",
    "identifies",
    "person_event_stats",
    "persons",
    "visits",
    "hits",
    "visit_days",
    "identities",
    "user_aliases",
    "users",
    "message_ids",
    "call_owners",
    "discards",
    "saved_segments",
    "api_keys",
    "rules",
    "apps",
)

# What `collector apps delete` prints, in this order, for each table (rule_state and
# rate_buckets have no app_id column: they are found through the app's rules and by the
# keys that name it).
LABELS = {
    "events": "events",
    "identifies": "identify calls",
    "persons": "people",
    "users": "users",
    "identities": "identity links",
    "user_aliases": "aliases",
    "person_event_stats": "person summaries",
    "visits": "visits",
    "hits": "hits",
    "visit_days": "visit days",
    "message_ids": "message ids",
    "call_owners": "call owners",
    "discards": "discard counts",
    "rule_state": "rule states",
    "rules": "rules",
    "saved_segments": "saved segments",
    "api_keys": "API keys",
    "rate_buckets": "rate buckets",
    "apps": "apps",
}


def erase(
    run: Execute, mark: str, app_id: str, bucket_names_app: Callable[[str], bool]
) -> dict[str, int]:
    """Delete every row of `app_id`, in the caller's transaction; how many of each table
    (LABELS' keys). `mark` is the backend's placeholder; `bucket_names_app` tells the
    shared rate buckets' keys that belong to the app (the ingest layer decides them)."""
    counts: dict[str, int] = {}
    # A rule's state is keyed by the rule's id alone. Besides the app's rules' state, the
    # state no rule owns any more goes too: a collector that still had the app cached
    # may have written some after its rules went (a rule id is never given out again,
    # so such rows can only be garbage).
    counts["rule_state"] = run(
        f"DELETE FROM rule_state WHERE rule_id IN (SELECT id FROM rules WHERE app_id = {mark}) "
        "OR rule_id NOT IN (SELECT id FROM rules)",
        (app_id,),
    )[1]
    for table in APP_TABLES:
        counts[table] = run(f"DELETE FROM {table} WHERE app_id = {mark}", (app_id,))[1]
    # Few rows (refilled buckets are swept): read the keys and let the ingest layer judge
    # them, rather than teach SQL its key format.
    keys = [k for (k,) in run("SELECT key FROM rate_buckets", ())[0] if bucket_names_app(k)]
    counts["rate_buckets"] = sum(
        run(f"DELETE FROM rate_buckets WHERE key = {mark}", (k,))[1] for k in keys
    )
    return counts
